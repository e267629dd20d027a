"""NetnsCluster: nodes in their own network namespaces, capped links, and a clean teardown."""

import ipaddress
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import ray

from lab.config import Layout
from lab.errors import LabError
from lab.layouts.emulated import EmulatedCluster
from lab.layouts.netns import NetnsCluster, _marked_pids

SIZE = 50 * 1024 * 1024  #: bytes moved between two nodes
CAP_MBIT = 200.0


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces and a bridge"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (`ip`, `tc`)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        return "`ip netns` is not available on this host"
    return None


_UNAVAILABLE = _netns_unavailable()
needs_netns = pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"NetnsCluster {_UNAVAILABLE}")


def _layout(**changes) -> Layout:
    fields = dict(
        kind="emulated",
        nodes=3,
        cpus_per_node=1.0,
        memory_mb_per_node=1024,
        object_store_mb=100,
        netns=True,
    )
    return Layout(**{**fields, **changes})


def _leftovers(run: dict) -> list[str]:
    """Whatever the cluster of ``run`` created that still exists."""
    left, tag = [], run["tag"]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left += [f"netns {line.split()[0]}" for line in namespaces.splitlines() if tag in line]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if tag in line]
    for pid in sorted(run["pids"]):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone
        if state != "Z":  # a zombie is dead, only not yet reaped by its parent
            left.append(f"process {pid}")
    tmpdir = run["tmpdir"]
    if tmpdir and (os.path.exists(tmpdir) or _marked_pids(tmpdir)):
        left.append(f"temp dir or processes of {tmpdir}")
    return left


@ray.remote(num_cpus=0)
def _where() -> tuple[str, str]:
    """This worker's node IP and network namespace."""
    return ray.util.get_node_ip_address(), os.readlink("/proc/self/ns/net")


@ray.remote(num_cpus=0)
def _make(size: int) -> np.ndarray:
    return np.ones(size, dtype=np.uint8)


@ray.remote(num_cpus=0)
def _fetch(refs: list) -> tuple[float, int]:
    # The ref comes wrapped in a list so that Ray does not fetch it before the timer starts.
    start = time.perf_counter()
    array = ray.get(refs[0])
    return time.perf_counter() - start, array.nbytes


def _transfer_s() -> float:
    """Seconds to move SIZE bytes from node 1's object store to a task on node 2."""
    ref = _make.options(resources={"lab_node_1": 1}).remote(SIZE)
    ray.wait([ref], fetch_local=False)  # made and sealed on node 1, not yet moved
    seconds, nbytes = ray.get(_fetch.options(resources={"lab_node_2": 1}).remote([ref]))
    assert nbytes == SIZE
    return seconds


def _in_fresh_process(scenario, *args):
    """Run ``scenario(*args)`` in a new Python process and return its result.

    The scenario's driver must own its Ray: this pytest process may already
    have joined one (the session's ``ray_session``), and Ray allows one per process.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(scenario, *args).result(timeout=400)


def _facts(cluster: NetnsCluster, **more) -> dict:
    """What the parent needs to check the teardown (a NetnsCluster does not pickle)."""
    return {"tag": cluster.tag, "tmpdir": cluster.tmpdir, "pids": cluster.pids, **more}


def _run_capped_cluster() -> dict:
    cluster = NetnsCluster(_layout(link_mbit=CAP_MBIT))
    try:
        cluster.start()
        active = EmulatedCluster.active is cluster
        nodes = [node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]]
        seen = [ray.get(_where.options(resources={f"lab_node_{k}": 1}).remote()) for k in range(3)]
        expected_ips = [cluster.node_ip(k) for k in range(3)]
        capped = _transfer_s()
        cluster.set_link_mbit(None)
        uncapped = _transfer_s()
    finally:
        cluster.stop()
    after = EmulatedCluster.active is None and not ray.is_initialized()
    cluster.stop()  # idempotent
    return _facts(
        cluster,
        active=active,
        nodes=nodes,
        seen=seen,
        expected_ips=expected_ips,
        subnet=str(cluster.subnet),
        capped=capped,
        uncapped=uncapped,
        cleared=after,
    )


@pytest.mark.slow
@needs_netns
def test_nodes_get_their_own_namespaces_and_the_link_cap_holds():
    run = _in_fresh_process(_run_capped_cluster)
    assert run["active"] and run["cleared"]

    subnet = ipaddress.ip_network(run["subnet"])
    assert len(run["nodes"]) == 3 and len(set(run["nodes"])) == 3
    assert all(ipaddress.ip_address(ip) in subnet for ip in run["nodes"])
    assert [ip for ip, _ in run["seen"]] == run["expected_ips"]  # each task ran on its node
    assert len({netns for _, netns in run["seen"]}) == 3  # in three network namespaces

    floor = SIZE * 8 / (CAP_MBIT * 1e6)
    print(
        f"\n{SIZE >> 20} MiB node 1 -> node 2: {run['capped']:.2f} s at {CAP_MBIT:g} Mbit/s "
        f"(floor {floor:.2f} s), {run['uncapped']:.2f} s uncapped"
    )
    # That the cap is applied, not a speed target.
    assert run["capped"] >= 0.7 * floor
    assert run["uncapped"] < run["capped"] / 2

    assert run["pids"]  # the processes were tracked...
    assert _leftovers(run) == []  # ...and, like everything else, are gone


def _fail_halfway() -> dict:
    start_node, spawn = NetnsCluster._start_node, NetnsCluster._spawn
    heads = []

    def head_slow_at_first(self, name, argv, env):
        if name == "node0":
            heads.append(argv)
            if len(heads) == 1:  # what `ray start` says when the GCS is too slow for it
                message = "Exception: The current node timed out during startup."
                argv = [sys.executable, "-c", f"raise SystemExit({message!r})"]
        return spawn(self, name, argv, env)

    def fail_on_the_last_node(self, k, env):
        if k == 2:  # the head and node 1 are running by now
            raise RuntimeError("injected failure")
        start_node(self, k, env)

    NetnsCluster._start_node, NetnsCluster._spawn = fail_on_the_last_node, head_slow_at_first
    cluster, error = NetnsCluster(_layout(link_mbit=100.0)), None
    try:
        cluster.start()
    except RuntimeError as exc:
        error = str(exc)
    return _facts(cluster, error=error, cleared=EmulatedCluster.active is None, heads=len(heads))


@pytest.mark.slow
@needs_netns
def test_a_start_that_fails_halfway_leaves_nothing_behind():
    run = _in_fresh_process(_fail_halfway)
    assert run["heads"] == 2  # a head that timed out waiting for its GCS is started again
    assert run["error"] == "injected failure" and run["cleared"]
    assert run["pids"] and _leftovers(run) == []


def _node_refuses_to_start() -> dict:
    # Past the config's validation: `ray start` itself refuses a negative CPU count.
    cluster, error = NetnsCluster(_layout().model_copy(update={"cpus_per_node": -1.0})), None
    try:
        cluster.start()
    except LabError as exc:
        error = str(exc)
    return _facts(cluster, error=error)


@pytest.mark.slow
@needs_netns
def test_a_node_that_cannot_start_is_reported_and_cleaned_up():
    run = _in_fresh_process(_node_refuses_to_start)
    assert "`ray start` of node 0 exited" in run["error"]
    assert "nonnegative" in run["error"]  # with the tail of its log
    assert _leftovers(run) == []


def test_without_root_it_refuses_before_creating_anything(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cluster = NetnsCluster(_layout())
    with pytest.raises(LabError, match="needs root"):
        cluster.start()
    assert cluster.tmpdir is None and cluster.namespaces == []
