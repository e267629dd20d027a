"""ResultStore: the same tests on a SQLite file and on the real PostgreSQL."""

import datetime as dt
import re
import uuid

import numpy as np
import psycopg
import pytest

from lab.errors import ConfigError, LabError
from lab.store.result_store import ResultStore, new_run_id
from tests.conftest import POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request, tmp_path):
    """Opens stores on one database; PostgreSQL gets a schema of its own, dropped afterwards."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path}/results/lab.sqlite", None
    else:
        url, schema = POSTGRES_URL, f"lab_test_{uuid.uuid4().hex[:12]}"
    opened = []

    def open_store() -> ResultStore:
        opened.append(ResultStore.open(url, schema=schema))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()
    if schema is not None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def store(store_factory):
    return store_factory()


def result(run_id: str, **extra) -> dict:
    return {
        "run_id": run_id,
        "name": "baseline",
        "orders_per_s": 125_000.5,
        "latency_ms": {"p50": 0.2, "p99": 1.75},
        "topology": {"engines": 2, "backends": 4},
        **extra,
    }


def test_save_get_round_trip(store):
    saved = result("run-20260101-000000-aaaaaa", errors=0, ok=True, note=None)
    assert store.save_run(saved) == saved["run_id"]
    assert store.get_run(saved["run_id"]) == saved


def test_numpy_values_are_stored_as_plain_json(store):
    run_id = store.save_run(result("run-np", counts=np.arange(3), rate=np.float64(2.5)))
    stored = store.get_run(run_id)
    assert stored["counts"] == [0, 1, 2] and stored["rate"] == 2.5


def test_list_runs_newest_first_with_listing_columns(store):
    for index in range(3):
        store.save_run(result(f"run-{index}", name=f"r{index}", latency_ms={"p99": index}))
    listed = store.list_runs()
    assert [row["run_id"] for row in listed] == ["run-2", "run-1", "run-0"]
    assert listed[0]["name"] == "r2" and listed[0]["p99_ms"] == 2.0
    assert listed[0]["orders_per_s"] == 125_000.5 and listed[0]["kind"] == "run"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", listed[0]["created_at"])
    assert len(store.list_runs(limit=2)) == 2


def test_list_runs_of_a_sweep(store):
    store.save_run(result("run-a", kind="sweep-point", sweep_id="sweep-1"))
    store.save_run(result("run-b", kind="sweep-point", sweep_id="sweep-2"))
    store.save_run(result("run-c"))
    assert [row["run_id"] for row in store.list_runs(sweep_id="sweep-1")] == ["run-a"]
    assert [row["run_id"] for row in store.list_runs(kind="run")] == ["run-c"]


def test_missing_listing_fields_are_null(store):
    store.save_run({"run_id": "run-bare"})
    (row,) = store.list_runs()
    assert row["name"] is None and row["orders_per_s"] is None and row["p99_ms"] is None


def test_saving_again_replaces_the_run(store):
    store.save_run(result("run-x", orders_per_s=1.0))
    store.save_run(result("run-x", orders_per_s=2.0))
    assert [row["orders_per_s"] for row in store.list_runs()] == [2.0]
    assert store.get_run("run-x")["orders_per_s"] == 2.0


def test_a_run_without_id_gets_one(store):
    run = result("ignored")
    del run["run_id"]
    run_id = store.save_run(run)
    assert run_id.startswith("run-") and store.get_run(run_id)["run_id"] == run_id
    assert "run_id" not in run  # the caller's dict is left alone


def test_prefix_lookup(store):
    store.save_run(result("run-20260101-000000-aaaaaa"))
    store.save_run(result("run-20260101-000000-abbbbb"))
    assert store.get_run("run-20260101-000000-aa")["run_id"] == "run-20260101-000000-aaaaaa"
    with pytest.raises(LabError, match="ambiguous"):
        store.get_run("run-20260101-000000-a")


def test_unknown_id(store):
    store.save_run(result("run-1"))
    with pytest.raises(LabError, match="^no run run-2$"):
        store.get_run("run-2")
    with pytest.raises(LabError, match="^no run RUN-1$"):
        store.get_run("RUN-1")  # prefixes are case-sensitive on both databases
    with pytest.raises(LabError, match="^no sweep sweep-9$"):
        store.get_sweep("sweep-9")


def test_sweeps(store):
    summary = {"sweep_id": "sweep-20260101-000000-cccccc", "name": "backends", "points": [1, 2]}
    assert store.save_sweep(summary) == summary["sweep_id"]
    store.save_sweep({"sweep_id": "sweep-20260102-000000-dddddd", "name": "engines"})
    assert store.get_sweep(summary["sweep_id"]) == summary
    assert store.get_sweep("sweep-20260101")["name"] == "backends"
    listed = store.list_sweeps()
    assert [row["sweep_id"] for row in listed] == [
        "sweep-20260102-000000-dddddd",
        "sweep-20260101-000000-cccccc",
    ]
    assert set(listed[0]) == {"sweep_id", "created_at", "name"}
    generated = store.save_sweep({"name": "no id"})
    assert generated.startswith("sweep-") and store.get_sweep(generated)["name"] == "no id"


def test_results_persist_across_connections(store_factory):
    with store_factory() as first:
        first.save_run(result("run-kept"))
    with store_factory() as second:
        assert second.get_run("run-kept")["name"] == "baseline"


def test_relative_sqlite_url_is_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ResultStore.open("sqlite:///results/deep/lab.sqlite") as store:
        store.save_run(result("run-1"))
    assert (tmp_path / "results" / "deep" / "lab.sqlite").is_file()


def test_absolute_sqlite_url(tmp_path):
    path = tmp_path / "abs" / "lab.sqlite"
    with ResultStore.open(f"sqlite:///{path}") as store:  # sqlite:////tmp/...
        store.save_run(result("run-1"))
    assert path.is_file()


def test_unsupported_url():
    with pytest.raises(ConfigError, match="mysql"):
        ResultStore.open("mysql://localhost/db")


def test_unreachable_postgres_is_a_lab_error_without_the_password():
    with pytest.raises(LabError) as info:
        ResultStore.open("postgresql://user:secret@127.0.0.1:1/none")
    assert "secret" not in str(info.value) and "***" in str(info.value)


def test_new_run_id_is_sortable():
    early = new_run_id(now=dt.datetime(2026, 11, 25, 18, 30, 12, tzinfo=dt.timezone.utc))
    late = new_run_id(now=dt.datetime(2026, 11, 25, 18, 30, 13, tzinfo=dt.timezone.utc))
    assert re.fullmatch(r"run-20261125-183012-[0-9a-f]{6}", early)
    assert early < late
    assert new_run_id("sweep").startswith("sweep-")
