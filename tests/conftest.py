"""Shared fixtures, and the PostgreSQL and Redis the suite runs against.

The suite talks to a real PostgreSQL and a real Redis: the ones at
``LAB_TEST_POSTGRES_URL`` and ``LAB_TEST_REDIS_URL`` (default: 127.0.0.1's) when they
answer, else throwaway ones that ``tests/servers.py`` starts from packages of the dev
extra and removes at the end. Where neither can be had, the run stops at once with a
message that names what is missing and says how to point the tests elsewhere, instead
of failing test by test.
"""

import os
import socket
import sys

import pytest

try:
    from tests import servers
except ModuleNotFoundError:  # run as `pytest`, not `python -m pytest`: only tests/ is on the path
    import servers

#: The URLs the tests use; resolved (and exported to the environment, for subprocesses
#: and later imports) at session start.
POSTGRES_URL = os.environ.get("LAB_TEST_POSTGRES_URL", servers.POSTGRES_DEFAULT_URL)
REDIS_URL = os.environ.get("LAB_TEST_REDIS_URL", servers.REDIS_DEFAULT_URL)


def pytest_sessionstart(session):
    global POSTGRES_URL, REDIS_URL
    resolved, missing = {}, []
    for name, ensure, url in [
        ("POSTGRES", servers.ensure_postgres, POSTGRES_URL),
        ("REDIS", servers.ensure_redis, REDIS_URL),
    ]:
        try:
            resolved[name] = ensure(url)
        except servers.ServerUnavailable as exc:
            missing.append(str(exc))
    if missing:
        for server in resolved.values():
            if server.throwaway is not None:
                server.throwaway.stop()
        lines = "\n  - ".join(missing)
        sys.stderr.write(
            f"\nThe test suite needs these services, which are not reachable:\n  - {lines}\n"
        )
        pytest.exit("required services missing (see above)", returncode=3)
    POSTGRES_URL, REDIS_URL = resolved["POSTGRES"].url, resolved["REDIS"].url
    os.environ["LAB_TEST_POSTGRES_URL"], os.environ["LAB_TEST_REDIS_URL"] = POSTGRES_URL, REDIS_URL
    sys.stderr.write(f"test servers: {resolved['POSTGRES'].note}; {resolved['REDIS'].note}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole session: small object store, logical CPUs for fractions."""
    import ray

    ray.init(
        num_cpus=4,
        object_store_memory=200 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
