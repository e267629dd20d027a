"""An emulated cluster whose nodes live in their own Linux network namespaces.

:class:`NetnsCluster` is an :class:`~lab.layouts.emulated.EmulatedCluster` (same
``start``/``stop``, same ``lab_node_<i>`` resources, same ``active`` slot) in
which node-to-node traffic crosses a real L2 bridge instead of loopback:

- a bridge ``labbr<tag>`` in the root namespace carries ``<subnet>.1/24``;
  the head (node 0) runs there, bound to that address, with the driver;
- node ``k >= 1`` runs in the namespace ``labns<k>-<tag>``, joined to the
  bridge by a veth pair and addressed ``<subnet>.<10+k>``;
- with ``link_mbit`` a token bucket (``tc`` ``tbf``) caps the egress of both
  ends of every veth, so each node's link is capped in both directions and a
  crowded shared bridge can be reproduced and measured. The head has no veth
  of its own: its traffic is capped by the link of the node at the other end.

Every object it creates (temp dir, bridge, namespaces, veths, qdiscs, Ray
processes) is recorded as it is made and removed in reverse order by
:meth:`NetnsCluster.stop`, which is idempotent, runs at exit, and also runs
when :meth:`NetnsCluster.start` fails halfway. Needs root and ``ip netns``.
"""

import atexit
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ray

from lab.config import Layout
from lab.errors import LabError
from lab.layouts.emulated import EmulatedCluster, node_resource

__all__ = ["NetnsCluster", "tbf_args"]

#: How long the cluster may take to show all its nodes alive.
START_TIMEOUT_S = 120.0
#: How many times the head's ``ray start`` is tried when it gives up on a slow GCS.
HEAD_START_ATTEMPTS = 2
# What `ray start` prints when its raylet did not register within Ray's fixed 30 s:
# a loaded host, not a broken config, so the head is started once more.
_SLOW_START = "timed out during startup"
#: How long ``ray start --block`` gets to stop its node after SIGTERM.
STOP_GRACE_S = 15.0
#: Environment variable that marks every process of one cluster (its value is the temp dir).
MARKER_ENV = "LAB_NETNS_CLUSTER"
_BIN = Path(sys.executable).parent
_log = logging.getLogger(__name__)


def tbf_args(mbit: float) -> list[str]:
    """``tc`` arguments of a token bucket that holds a link to ``mbit`` Mbit/s.

    The bucket must hold at least one timer tick of traffic and one full
    64 KiB GSO segment, or tbf drops instead of shaping; 50 ms of queue
    lets TCP fill the link without the bucket overflowing.
    """
    rate_bytes = mbit * 1e6 / 8
    burst = max(int(rate_bytes / 250), 96 * 1024)  # 4 ms of traffic, at least 96 KiB
    return ["tbf", "rate", f"{mbit:g}mbit", "burst", str(burst), "latency", "50ms"]


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; a failure becomes a :class:`LabError` naming the command."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()}")
    return done


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _pick_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.231.0.0/16 that no address or route on this host overlaps."""
    used = []
    for line in _run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        used.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in _run("ip", "-4", "route", "show").stdout.splitlines():
        dest = line.split()[0]
        if dest != "default":
            used.append(ipaddress.ip_network(dest, strict=False))
    # Start at a pid-derived offset so that two labs starting together rarely collide.
    start = os.getpid() % 200
    for i in range(255):
        net = ipaddress.ip_network(f"10.231.{(start + i) % 255}.0/24")
        if not any(net.overlaps(other) for other in used):
            return net
    raise LabError("no free /24 left in 10.231.0.0/16 for the namespace bridge")


def _marked_pids(marker: str) -> set[int]:
    """Live processes whose environment carries ``MARKER_ENV=marker``."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except OSError:  # gone, or a kernel thread
                pass
    return found


def _kill(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class NetnsCluster(EmulatedCluster):
    """N Ray nodes, node 0 in the root namespace and the others in their own netns."""

    def __init__(self, layout: Layout):
        super().__init__(layout)
        self.tag = secrets.token_hex(3)[:5]  #: short: interface names have 15 characters
        self.bridge = f"labbr{self.tag}"
        self.subnet: ipaddress.IPv4Network | None = None
        self.address: str | None = None  #: the head's GCS address, once it listens
        self.tmpdir: str | None = None
        self.namespaces: list[str] = []  #: node k >= 1 runs in namespaces[k - 1]
        self.pids: set[int] = set()  #: every Ray process seen, filled in by stop()
        self._links: list[tuple[str, str | None]] = []  #: (device, its netns or None)
        self._procs: list[subprocess.Popen] = []
        self._driver = False  #: this process called ray.init for the cluster
        self._undo: list[tuple[str, Callable[[], None]]] = []  #: torn down in reverse

    # -- addresses ---------------------------------------------------------

    def node_ip(self, index: int) -> str:
        """The address of node ``index`` on the bridge (node 0 is the head)."""
        assert self.subnet is not None, "not started"
        return str(self.subnet.network_address + (1 if index == 0 else 10 + index))

    # -- start -------------------------------------------------------------

    def start(self) -> None:
        self._check_host()
        # Registered first so that even a start interrupted by Ctrl-C is cleaned up.
        atexit.register(self.stop)
        try:
            self.tmpdir = tempfile.mkdtemp(prefix="rayns-", dir="/tmp")  # short: socket paths
            self._undo.append(("temp dir", lambda d=self.tmpdir: shutil.rmtree(d, True)))
            self._make_bridge()
            for k in range(1, self.layout.nodes):
                self._make_namespace(k)
            if self.layout.link_mbit is not None:
                self.set_link_mbit(self.layout.link_mbit)
            env = self._ray_env()
            self._start_head(env)
            for k in range(1, self.layout.nodes):
                self._start_node(k, env)
            self._connect_driver()
            EmulatedCluster.active = self
        except BaseException:
            self.stop()
            raise

    def _check_host(self) -> None:
        if os.geteuid() != 0:
            raise LabError("a netns layout needs root (it creates namespaces and a bridge)")
        if shutil.which("ip") is None or _run("ip", "netns", "list", check=False).returncode:
            raise LabError("a netns layout needs `ip netns` (iproute2) on this host")
        if self.layout.link_mbit is not None and shutil.which("tc") is None:
            raise LabError("link_mbit needs `tc` (iproute2) on this host")
        if ray.is_initialized():
            raise LabError("a netns layout starts its own Ray cluster, but Ray is already up")
        if self.layout.nodes > 240:  # node k is <subnet>.<10+k>
            raise LabError(f"a netns layout has at most 240 nodes, not {self.layout.nodes}")

    def _make_bridge(self) -> None:
        self.subnet = _pick_subnet()
        _run("ip", "link", "add", "name", self.bridge, "type", "bridge")
        self._undo.append(("bridge", lambda: _run("ip", "link", "del", self.bridge, check=False)))
        _run("ip", "addr", "add", f"{self.node_ip(0)}/24", "dev", self.bridge)
        # Another lab may have picked the same /24 in the meantime: better stop than share it.
        for line in _run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
            dev, addr = line.split()[1], ipaddress.ip_interface(line.split()[3])
            if dev != self.bridge and addr.network.overlaps(self.subnet):
                raise LabError(f"{self.subnet} is also on {dev}: start again to pick another")
        _run("ip", "link", "set", self.bridge, "up")

    def _make_namespace(self, k: int) -> None:
        ns, host_end, ns_end = f"labns{k}-{self.tag}", f"lab{self.tag}h{k}", f"lab{self.tag}n{k}"
        _run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        self._undo.append((f"netns {ns}", lambda: self._delete_namespace(ns)))
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        # Deleting one end deletes the pair (and the namespace's end goes with the namespace).
        self._undo.append(
            (f"veth {host_end}", lambda: _run("ip", "link", "del", host_end, check=False))
        )
        _run("ip", "link", "set", ns_end, "netns", ns)
        _run("ip", "link", "set", host_end, "master", self.bridge, "up")
        _run("ip", "-n", ns, "addr", "add", f"{self.node_ip(k)}/24", "dev", ns_end)
        _run("ip", "-n", ns, "link", "set", ns_end, "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")  # the node's own agents talk over lo
        # Ray finds its own IP by routing towards 8.8.8.8, else by resolving the
        # host name, whose DNS is unreachable from here and costs seconds per
        # process. A default route via the bridge answers at once; nothing
        # leaves the host through it unless the host forwards packets.
        _run("ip", "-n", ns, "route", "add", "default", "via", self.node_ip(0))
        self._links += [(host_end, None), (ns_end, ns)]

    def set_link_mbit(self, mbit: float | None) -> None:
        """Cap every node link to ``mbit`` Mbit/s each way, or lift the cap (``None``).

        Works on a running cluster too, so one cluster can be measured at several caps.
        """
        if mbit is not None and not any(name == "qdiscs" for name, _ in self._undo):
            self._undo.append(("qdiscs", lambda: self.set_link_mbit(None)))
        for dev, ns in self._links:
            where = ["-n", ns] if ns else []
            if mbit is None:
                _run("tc", *where, "qdisc", "del", "dev", dev, "root", check=False)
            else:
                _run("tc", *where, "qdisc", "replace", "dev", dev, "root", *tbf_args(mbit))

    def _ray_env(self) -> dict[str, str]:
        env = {**os.environ, "RAY_TMPDIR": self.tmpdir, MARKER_ENV: self.tmpdir}
        # A SIGTERMed node would otherwise wait up to 30 s draining; this lab
        # cluster is being thrown away, there is nothing to drain for.
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        env.pop("RAY_ADDRESS", None)
        # The nodes must use the auth mode this process's Ray client already
        # uses: Ray reads RAY_AUTH_MODE once per process, and a driver that
        # joins by explicit address does not switch token auth on by itself.
        # So an unset mode means no auth here (the bridge is host-private);
        # export RAY_AUTH_MODE=token before starting Python for a token cluster.
        mode = "token" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else "disabled"
        env["RAY_AUTH_MODE"] = mode
        if mode == "token" and not (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        ):
            if not (Path.home() / ".ray" / "auth_token").exists():
                _run(str(_BIN / "ray"), "get-auth-token", "--generate")
        return env

    def _node_flags(self, index: int) -> list[str]:
        lay = self.layout
        return [
            f"--node-ip-address={self.node_ip(index)}",
            f"--num-cpus={lay.cpus_per_node:g}",
            f"--memory={lay.memory_mb_per_node * 1024 * 1024}",
            f"--object-store-memory={lay.object_store_mb * 1024 * 1024}",
            f"--resources={json.dumps({node_resource(index): 1000})}",
            "--disable-usage-stats",
            "--block",  # in the foreground, so that we alone stop it (never `ray stop`)
        ]

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(Path(self.tmpdir) / f"{name}.log", "wb")
        with log:
            proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._procs.append(proc)
        return proc

    def _start_head(self, env: dict[str, str]) -> None:
        for attempt in range(1, HEAD_START_ATTEMPTS + 1):
            try:
                return self._start_head_once(env)
            except LabError as exc:
                if _SLOW_START not in str(exc) or attempt == HEAD_START_ATTEMPTS:
                    raise
                _log.warning("the Ray head's node was slow to register; starting it again")
                self._stop_processes()

    def _start_head_once(self, env: dict[str, str]) -> None:
        ip = self.node_ip(0)
        gcs_port = _free_port(ip)
        # The head shares the root namespace with other Rays: every fixed default
        # port (client server 10001, agent 52365, ...) is replaced by a free one.
        ports = {
            "--port": gcs_port,
            "--ray-client-server-port": _free_port(ip),
            "--dashboard-agent-listen-port": _free_port(ip),
            "--dashboard-agent-grpc-port": _free_port(ip),
            "--metrics-export-port": _free_port(ip),
            "--runtime-env-agent-port": _free_port(ip),
        }
        argv = [str(_BIN / "ray"), "start", "--head", "--include-dashboard=false"]
        argv += [f"{flag}={port}" for flag, port in ports.items()] + self._node_flags(0)
        head = self._spawn("node0", argv, env)
        # `ray start` writes the address file for `ray.init("auto")` once its
        # node (GCS and raylet) is up: only then can nodes and driver join.
        ready = Path(self.tmpdir) / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            self._check_alive(head, 0)
            if time.monotonic() > deadline:
                raise LabError(f"the Ray head at {ip}:{gcs_port} did not come up")
            time.sleep(0.2)
        self.address = f"{ip}:{gcs_port}"

    def _start_node(self, k: int, env: dict[str, str]) -> None:
        ns = self.namespaces[k - 1]
        argv = ["ip", "netns", "exec", ns, str(_BIN / "ray"), "start", f"--address={self.address}"]
        # Its own temp dir, as on a separate host (and no race on socket names).
        argv += [f"--temp-dir={Path(self.tmpdir) / f'n{k}'}"] + self._node_flags(k)
        self._spawn(f"node{k}", argv, env)

    def _check_alive(self, proc: subprocess.Popen, index: int) -> None:
        if proc.poll() is not None:
            log = (Path(self.tmpdir) / f"node{index}.log").read_text(errors="replace")
            raise LabError(f"`ray start` of node {index} exited:\n{log[-3000:]}")

    def _connect_driver(self) -> None:
        self._driver = True
        ray.init(
            address=self.address,
            _node_ip_address=self.node_ip(0),  # the head's raylet is this driver's
            log_to_driver=False,
            configure_logging=False,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while sum(node["Alive"] for node in ray.nodes()) < self.layout.nodes:
            for index, proc in enumerate(self._procs):
                self._check_alive(proc, index)
            if time.monotonic() > deadline:
                raise LabError(
                    f"only {sum(n['Alive'] for n in ray.nodes())} of {self.layout.nodes} "
                    f"nodes joined within {START_TIMEOUT_S:g} s (is bridged traffic "
                    "filtered? see net.bridge.bridge-nf-call-iptables)"
                )
            time.sleep(0.2)

    # -- stop --------------------------------------------------------------

    def stop(self) -> None:
        """Stop the driver and the nodes, then remove everything start() created."""
        if EmulatedCluster.active is self:
            EmulatedCluster.active = None
        if self._driver and ray.is_initialized():
            ray.shutdown()
        self._driver, self.address = False, None
        self._stop_processes()
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep going: the rest must still be removed
                _log.warning("could not remove the %s of a netns cluster: %s", what, exc)
        self.namespaces, self._links = [], []
        atexit.unregister(self.stop)

    def _stop_processes(self) -> None:
        if not self._procs:
            return
        marker = self.tmpdir
        self.pids |= {p.pid for p in self._procs} | _marked_pids(marker)
        # The nodes first, then the head (self._procs[0]), so that nodes leave
        # while the GCS still listens instead of waiting for it to time out.
        for group in (self._procs[1:], self._procs[:1]):
            for proc in group:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + STOP_GRACE_S
            for proc in group:
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    pass
        # Whatever outlived its `ray start` (workers, agents) carries the marker.
        for _ in range(50):
            left = _marked_pids(marker) | {p.pid for p in self._procs if p.poll() is None}
            self.pids |= left
            if not left:
                break
            _kill(left, signal.SIGKILL)
            time.sleep(0.1)
        for proc in self._procs:
            proc.poll()  # reap
        self._procs = []

    def _delete_namespace(self, ns: str) -> None:
        # Anything still inside would keep the namespace alive: it is ours, kill it.
        pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
        _kill({int(p) for p in pids}, signal.SIGKILL)
        _run("ip", "netns", "del", ns, check=False)
