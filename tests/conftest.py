"""Shared fixtures, and the check that the services the suite needs are up.

The suite talks to a real PostgreSQL and a real Redis. Where either is
missing, the run stops at once with a message that names it and says how to
point the tests elsewhere, instead of failing test by test.
"""

import os
import socket
import sys

import pytest

POSTGRES_URL = os.environ.get("LAB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _missing_services() -> list[str]:
    missing = []
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means the suite cannot use it
        missing.append(
            f"PostgreSQL at {POSTGRES_URL} ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            "start it, or set LAB_TEST_POSTGRES_URL"
        )
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        missing.append(
            f"Redis at {REDIS_URL} ({type(exc).__name__}: {exc}); "
            "start it, or set LAB_TEST_REDIS_URL"
        )
    return missing


def pytest_sessionstart(session):
    missing = _missing_services()
    if missing:
        lines = "\n  - ".join(missing)
        sys.stderr.write(
            f"\nThe test suite needs these services, which are not reachable:\n  - {lines}\n"
        )
        pytest.exit("required services missing (see above)", returncode=3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return POSTGRES_URL


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
