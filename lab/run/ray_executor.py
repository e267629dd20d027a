"""The Ray executor: a run's stages (:mod:`lab.run.stages`) as Ray actors.

Actors are named ``engine-0``, ``backend-3``, ``loadgen-1`` … in a namespace
per run, so a run can be found in the Ray dashboard while it runs; each is
placed by the layout's policy (:mod:`lab.run.placement`). With
``topology.transport: stream`` backends reach shards, and generators reach
backends, over :mod:`actors.stream` instead of Ray calls.

Nothing here waits without a deadline. Before any actor starts, the
topology is checked against the cluster (:mod:`lab.run.fit`). While the run
runs, the driver holds one ``watch`` call on every actor, which fails when
the actor dies, so a death ends the run within a poll (half a second) and
names the actor; every other wait has a deadline from the run's duration.
A run that fails keeps what was measured: :class:`~lab.errors.RunFailed`
carries the generators' tallies so far and the collector's series.
"""

import time
from pathlib import Path

import ray

from actors.ray_actors import (
    BackendActor,
    CollectorActor,
    GeneratorActor,
    ShardActor,
    remote_class,
)
from lab.config import ExperimentConfig, Layout
from lab.errors import LabError, RunFailed
from lab.replay.journal import write_journal
from lab.run.fit import check_fit
from lab.run.placement import Placement
from lab.run.stages import START_LEAD_S, Stage, named, plan_stages, used

__all__ = ["RayExecutor"]

_READY_TIMEOUT_S = 300.0
#: How long after its duration and drain a run may take to wrap up before it fails.
_WRAP_UP_S = 30.0
#: Deadline of a small call (stats, progress, a tally) to one actor.
_CALL_S = 10.0
#: Layouts whose actors all run on this host, and so share its Numba cache.
_THIS_HOST = ("local", "emulated", "netns")


class RayExecutor:
    """The actors of one run; ``run()`` drives it, ``shutdown()`` removes it."""

    def __init__(
        self, config: ExperimentConfig, layout: Layout, run_id: str, serving: bool = False
    ):
        self.config = config
        self.run_id = run_id
        self.namespace = f"lab-{run_id}"
        self.placement = Placement(layout)
        live = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        check_fit(config, layout, ray.cluster_resources(), live, Placement(layout))
        if layout.kind in _THIS_HOST and not config.topology.noop:
            _compile_kernels()
        plan = plan_stages(config, serving, run_id)
        # With the stream transport each stage serves its own TCP stream; over HTTP,
        # backends reach shards (and each other's accounts) over streams too.
        stream = plan.transport in ("stream", "http") or plan.gateway is not None
        self.shards = [self._actor(ShardActor, s, run_id=run_id) for s in plan.shards]
        shards = named(plan.shards, self.shards)
        shard_addresses = named(plan.shards, _stream_addresses(self.shards)) if stream else None
        self.backends = [
            self._actor(
                BackendActor,
                s,
                run_id=run_id,
                shard_handles=used(s, shards),
                shard_addresses=used(s, shard_addresses),
            )
            for s in plan.backends
        ]
        backends = named(plan.backends, self.backends)
        addresses = _stream_addresses(self.backends) if stream else None
        self.gateway_urls: list[str] = []
        urls = None
        if plan.gateway is not None:
            # A gateway reaches every backend (by account) and every shard (its queries).
            spec = plan.gateway
            opened = [b.open_gateway.remote(addresses, self.shards, spec) for b in self.backends]
            self.gateway_urls = _get(opened, _READY_TIMEOUT_S, "the backends' gateways")
            urls = named(plan.backends, self.gateway_urls)
        backend_addresses = named(plan.backends, addresses) if addresses else None
        self.generators = [
            self._actor(
                GeneratorActor,
                s,
                run_id=run_id,
                backend_handles=used(s, backends),
                backend_addresses=None if urls else used(s, backend_addresses),
                gateways=_gateways(s, urls, plan.gateway) if urls else None,
            )
            for s in plan.generators
        ]
        polled = self.shards + self.backends + self.generators
        self.names = [s.name for s in plan.all()]
        by_name = named(plan.all()[:-1], polled)  # every stage but the collector
        sources = {name: by_name[name] for name in plan.collector.uses}
        self.collector = self._actor(
            CollectorActor, plan.collector, source_handles=sources, interval_s=plan.interval_s
        )
        self._all = polled + [self.collector]

    def _actor(self, cls, stage: Stage, **clients):
        options = dict(
            stage.resources,
            name=stage.name,
            namespace=self.namespace,
            # A shard's methods never await, so two slots never interleave inside one:
            # the second holds the driver's ``watch``.
            max_concurrency=2 if cls is ShardActor else 1000,
            **self.placement.options(stage.kind, stage.index),
        )
        return remote_class(cls, **options).remote(**stage.kwargs, **clients)

    def wait_ready(self, on_progress=None) -> None:
        """Wait for every actor's constructor, telling ``on_progress`` how many are up."""
        names = {h.ready.remote(): name for name, h in zip(self.names, self._all, strict=True)}
        pending, deadline = list(names), time.monotonic() + _READY_TIMEOUT_S
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            for ref in ready:
                _get(ref, _CALL_S, names[ref])  # a constructor's error, naming the actor
            if on_progress is not None:
                on_progress(
                    {"phase": "starting", "ready": len(names) - len(pending), "total": len(names)}
                )
            if pending and time.monotonic() > deadline:
                waiting = ", ".join(sorted(names[r] for r in pending))
                raise LabError(
                    f"{len(pending)} of {len(names)} actors did not start within "
                    f"{_READY_TIMEOUT_S:.0f} s: {waiting}"
                )

    def nodes(self) -> dict[str, dict]:
        """Host name and Ray node id of every actor."""
        refs = [h.where.remote() for h in self._all]
        return dict(zip(self.names, _get(refs, _CALL_S, "actors' places"), strict=True))

    def run(self, on_progress=None) -> dict:
        """Drive the run to its end; returns the generators' tallies and the collector's series.

        Each generator and the collector take the start signal on their own
        clocks (``START_LEAD_S`` from when it reaches them).
        """
        exp = self.config.experiment
        watches = {h.watch.remote(): n for n, h in zip(self.names, self._all, strict=True)}
        collecting = self.collector.run.remote(START_LEAD_S)
        runs = [
            g.run.remote(START_LEAD_S, exp.warmup_s, exp.duration_s, exp.drain_s)
            for g in self.generators
        ]
        ends = time.monotonic() + START_LEAD_S + exp.duration_s + exp.drain_s + _WRAP_UP_S
        pending = list(runs)
        while pending:
            ready, _ = ray.wait(pending + list(watches), num_returns=len(pending), timeout=0.5)
            dead = [ref for ref in ready if ref in watches]
            if dead:
                names = ", ".join(watches[ref] for ref in dead)
                raise self._failed(f"{names} died: {_cause(dead[0])}")
            pending = [ref for ref in pending if ref not in ready]
            if pending and time.monotonic() > ends:
                late = ", ".join(f"loadgen-{runs.index(r)}" for r in pending)
                raise self._failed(f"{late} did not finish its run by its end and drain")
            if on_progress is not None:
                on_progress(_get(self.collector.progress.remote(), _CALL_S, "collector-0"))
        tallies = [_get(r, _CALL_S, f"loadgen-{i}") for i, r in enumerate(runs)]
        # Every journal and cache write of the run lands before the run counts as done.
        closing = [b.close_stores.remote() for b in self.backends]
        _get(closing, _READY_TIMEOUT_S, "the backends' journal and cache")
        shard_refs = [s.resting.remote() for s in self.shards]
        resting = _get(shard_refs, _CALL_S, "the shards' resting orders")
        _get(self.collector.stop.remote(), _CALL_S, "collector-0")
        _get(collecting, _CALL_S, "collector-0")
        journals = []
        if self.config.topology.journal:
            directory = str(Path(self.config.topology.journal_dir) / self.run_id)
            refs = [s.journal_arrays.remote() for s in self.shards]
            arrays = _get(refs, _READY_TIMEOUT_S, "the shards' journals")
            journals = [write_journal(journal, directory) for journal in arrays]
        return {
            "tallies": tallies,
            "journals": journals,
            "resting": {f"engine-{i}": n for i, n in enumerate(resting)},
            **_get(self.collector.summary.remote(), _CALL_S, "collector-0"),
        }

    def serve(self) -> None:
        """Serve until interrupted (``lab serve``); a stage's death ends it, naming the stage."""
        watches = {h.watch.remote(): n for n, h in zip(self.names, self._all, strict=True)}
        while True:
            dead, _ = ray.wait(list(watches), num_returns=1, timeout=1.0)
            if dead:
                raise LabError(f"{watches[dead[0]]} died: {_cause(dead[0])}")

    def serve_while(self, work):
        """``work()`` while the gateways serve (they do, in their actors); its result."""
        return work()

    def dashboard_url(self) -> str | None:
        url = ray._private.worker.get_dashboard_url()
        return f"http://{url}" if url and "://" not in url else url or None

    def _failed(self, reason: str) -> RunFailed:
        """The error that ends a run, with what was measured up to now (best effort)."""
        partial = {"tallies": [], "series": [], "actors": {}, "failed_polls": 0}
        tallies = [g.tally.remote() for g in self.generators]
        for i, ref in enumerate(tallies):
            try:
                partial["tallies"].append(ray.get(ref, timeout=_CALL_S))
            except Exception:  # that generator is gone too: its figures with it
                partial.setdefault("lost", []).append(f"loadgen-{i}")
        try:
            partial.update(ray.get(self.collector.summary.remote(), timeout=_CALL_S))
        except Exception:
            partial.setdefault("lost", []).append("collector-0")
        return RunFailed(reason, partial)

    def shutdown(self) -> None:
        for handle in self._all:
            ray.kill(handle, no_restart=True)


def _gateways(stage: Stage, urls: dict, spec: dict) -> dict:
    """A generator's gateways: one per backend it uses, with the run's key."""
    return {"urls": used(stage, urls), "api_key": spec["run_key"], "symbols": spec["symbols"]}


def _compile_kernels() -> None:
    """Compile the kernels here, once, before the actors start.

    On a machine whose Numba cache is cold, every engine shard and backend
    would otherwise compile the same kernels at once (about a minute each,
    all competing for the same cores); after this they load them from the
    cache. Elsewhere (a real cluster) each node compiles once, on its own.
    """
    from actors.backend import Backend
    from actors.engine_shard import EngineShard
    from actors.load_generator import LoadGenerator
    from actors.order_flow import OrderFlow

    EngineShard(0, 1, 1).warm_up()
    Backend(0, 1, [], 1, 1).warm_up()
    LoadGenerator(0, [], OrderFlow(), None, 1, 0.0).warm_up()


def _get(refs, timeout_s: float, what: str):
    """``ray.get`` with a deadline; a LabError naming ``what`` when it fails or is late."""
    try:
        return ray.get(refs, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise LabError(f"{what}: no answer within {timeout_s:g} s") from None
    except ray.exceptions.RayError as exc:
        raise LabError(f"{what}: {_first_line(exc)}") from None


def _cause(ref) -> str:
    """Why a watched actor's call failed: the first line Ray gives."""
    try:
        ray.get(ref, timeout=_CALL_S)
    except Exception as exc:  # the watch only ever ends with the actor's death
        return _first_line(exc)
    return "its watch ended"


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a RayTaskError: name the error inside the actor
    if isinstance(cause, Exception):
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[0] if text else ''}"[:500]
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def _stream_addresses(handles: list) -> list[tuple[str, int]]:
    try:
        return ray.get([h.open_stream.remote() for h in handles], timeout=_READY_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise LabError(
            f"actors did not open their streams within {_READY_TIMEOUT_S:.0f} s: the layout "
            f"probably lacks the CPUs or memory that `resources` asks for"
        ) from None
