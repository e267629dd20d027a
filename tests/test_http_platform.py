"""The platform over HTTP: runs with ``transport: http`` (in-process and on Ray), ``lab serve``
and ``lab bench http``, with API keys that never reach a stored result."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lab import Experiment
from lab.store.result_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
SHORT = ["experiment.duration_s=2", "experiment.warmup_s=0.5", "topology.transport=http"]
SECRET = "never-stored-0123456789"


def _run(tmp_path, layout, monkeypatch, extra=()):
    monkeypatch.setenv("LAB_API_KEYS", json.dumps({SECRET: [1, 2, 3]}))
    url = f"sqlite:///{tmp_path}/results.sqlite"
    experiment = Experiment.from_yaml(
        QUICKSTART, layout=layout, overrides=[*SHORT, f"results.url={url}", *extra]
    )
    result = experiment.run()
    with ResultStore.open(url) as store:
        stored = json.dumps(store.get_run(result.run_id))
    return result, stored


@pytest.mark.parametrize("layout", ["in-process", "single-host"])
def test_a_run_over_http_answers_every_order_and_stores_no_key(
    layout, tmp_path, monkeypatch, request
):
    if layout == "single-host":
        request.getfixturevalue("ray_session")
    result, stored = _run(tmp_path, layout, monkeypatch)
    assert result.status == "ok" and result.errors == 0, result.first_error
    assert result.orders_acked > 0 and result.fills > 0
    assert result.config["topology"]["transport"] == "http"
    assert SECRET not in stored and "<key 1 of" not in stored  # LAB_API_KEYS is not config


def test_keys_in_the_config_are_served_and_stored_masked(tmp_path, monkeypatch):
    from lab.run.stages import gateway_spec

    configured = f"gateway.api_keys={{{SECRET}-config: [4, 5]}}"
    result, stored = _run(tmp_path, "in-process", monkeypatch, [configured])
    assert result.status == "ok" and result.errors == 0, result.first_error
    assert f"{SECRET}-config" not in stored and SECRET not in stored
    assert json.loads(stored)["config"]["gateway"]["api_keys"] == {"<key 1 of 1>": [4, 5]}
    # What the gateways are given: the config's key, LAB_API_KEYS's and the run's own.
    served = gateway_spec(Experiment.from_yaml(QUICKSTART, overrides=[configured]).config)
    assert {k: v for k, v in served["api_keys"].items() if k != served["run_key"]} == {
        f"{SECRET}-config": [4, 5],
        SECRET: [1, 2, 3],
    }


@pytest.mark.parametrize(
    "given, words",
    [("{not json", "LAB_API_KEYS: not JSON"), ('["k"]', "LAB_API_KEYS: expected a JSON object")],
)
def test_a_malformed_lab_api_keys_is_a_config_error(given, words):
    from lab.config import load_config
    from lab.config.platform import api_keys
    from lab.errors import ConfigError

    gateway = load_config(QUICKSTART).gateway
    with pytest.raises(ConfigError, match=words):
        api_keys(gateway, env={"LAB_API_KEYS": given})


def test_backends_sharing_one_port_take_every_account(tmp_path, monkeypatch):
    # As on a KubeRay pod behind a Service: the kernel hands each connection to either
    # backend, and the gateway that takes an order forwards it to the account's owner.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shared = [f"gateway.port={port}", "gateway.share_port=true"]
    result, _ = _run(tmp_path, "in-process", monkeypatch, shared)
    assert result.status == "ok" and result.errors == 0, result.first_error
    assert result.orders_acked > 0 and result.fills > 0
    assert result.config["gateway"]["share_port"] is True


def test_a_shared_port_must_be_a_fixed_one():
    from lab.config import load_config
    from lab.errors import ConfigError

    with pytest.raises(ConfigError, match="share_port needs a fixed gateway.port"):
        load_config(QUICKSTART, ["gateway.share_port=true"])


def _post(url, body, key):
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"X-API-Key": key, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


@pytest.mark.parametrize(
    "layout", ["in-process", pytest.param("single-host", marks=pytest.mark.slow)]
)
def test_lab_serve_prints_where_it_serves_takes_orders_and_stops_on_ctrl_c(layout):
    env = {**os.environ, "LAB_API_KEYS": json.dumps({SECRET: "*"})}
    serving = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", str(QUICKSTART), "--layout", layout],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal's Ctrl-C finds it, even under a shell that ignored SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while not any(line.startswith("serving") for line in lines):
            assert time.monotonic() < deadline and serving.poll() is None, serving.stderr.read()
            lines.append(serving.stdout.readline())
        gateways = [line.split()[1] for line in lines if line.startswith("gateway")]
        assert len(gateways) == 2  # one per backend
        assert any(line.startswith("openapi") for line in lines)
        (dashboard,) = [line.split(maxsplit=1)[1].strip() for line in lines if "dashboard" in line]
        if layout == "in-process":
            assert dashboard == "none (no Ray on this layout)"
        else:
            assert dashboard.startswith("http://")
        # Each gateway takes orders of both backends' accounts, forwarding what is not its own.
        sell = {"symbol": "S3", "side": "S", "price": 10_000, "qty": 2, "account": 5}
        buy = {"symbol": "S3", "side": "B", "price": 10_000, "qty": 1, "account": 4}
        for gateway, order in [(gateways[1], sell), (gateways[0], sell), (gateways[1], buy)]:
            status, body = _post(f"{gateway}/orders", order, SECRET)
            assert status == 200 and body["reports"][0]["kind"] == "ACK", body
        assert [r["kind"] for r in body["reports"]] == ["ACK", "FILL"]
        status, body = _post(f"{gateways[0]}/orders/batch", {"orders": [buy, sell]}, SECRET)
        assert status == 200 and body["count"] >= 2
        with urllib.request.urlopen(f"{gateways[0]}/healthz", timeout=30) as answer:
            assert json.loads(answer.read())["status"] == "ok"
        serving.send_signal(signal.SIGINT)
        assert serving.wait(timeout=60) == 0
        assert "stopped" in serving.stderr.read()
        assert SECRET not in "".join(lines)
    finally:
        if serving.poll() is None:
            serving.kill()


def test_lab_serve_without_a_key_says_how_to_give_one():
    env = {k: v for k, v in os.environ.items() if k != "LAB_API_KEYS"}
    done = subprocess.run(
        [sys.executable, "-m", "lab", "serve", str(QUICKSTART), "--layout", "in-process"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "LAB_API_KEYS" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_lab_bench_http_prints_its_three_figures():
    figures = _bench_json("http", "--layout", "in-process", "--duration", "1")
    assert figures["bare_rps"] > 0 and figures["per_order_rps"] > 0
    assert figures["batch_orders_per_s"] == pytest.approx(figures["batch_rps"] * 1000)
    assert figures["in_flight"] == 64
    assert figures["batch_of_one_rps"] == figures["batch_of_one"]["rps"] > 0
    for leg in ("bare", "per_order", "batch", "batch_of_one"):
        assert figures[leg]["failed"] == 0, figures[leg]
        assert 0 < figures[leg]["host_busy"] <= 1  # the host's CPUs, all of its processes


@pytest.mark.slow
def test_lab_bench_serve_measures_uvicorn_in_an_actor_and_ray_serve():
    figures = _bench_json("serve", "--duration", "1", "--repeats", "1", "--in-flight", "4")
    for leg in ("uvicorn_actor", "ray_serve"):
        (run,) = figures["runs"][leg]
        assert run["failed"] == 0 and run["statuses"] == {"200": run["rps"] * run["seconds"]}
        assert figures[f"{leg}_rps"] == run["rps"] > 0
    assert figures["faster"] == max(
        ("uvicorn_actor", "ray_serve"), key=lambda leg: figures[f"{leg}_rps"]
    )


def _bench_json(*args: str) -> dict:
    """``lab bench ARGS --json`` in a process of its own; the object it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "lab", "bench", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)
