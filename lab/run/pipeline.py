"""The pipeline of one run, assembled in one place, stage by stage.

1. engine shards: each owns the symbols that ``shard_of_symbol`` routes to it;
2. backends: risk and routing, each holding every shard;
3. load generators: each holding every backend;
4. a collector that polls all of them every interval.

Actors are named ``engine-0``, ``backend-3``, ``loadgen-1`` … in a namespace
per run, so a run can be found in the Ray dashboard while it runs.

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

from actors.order_flow import FlowParams
from actors.ray_actors import (
    BackendActor,
    CollectorActor,
    GeneratorActor,
    ShardActor,
    remote_class,
)
from actors.risk import RiskLimits
from actors.routing import first_order_id
from lab.config import ExperimentConfig, Layout
from lab.errors import LabError, RunFailed
from lab.layouts.emulated import node_resource
from lab.replay.journal import write_journal
from lab.run.fit import check_fit

__all__ = ["Pipeline", "flow_params"]

_READY_TIMEOUT_S = 300.0
#: How long after its duration and drain a run may take to wrap up before it fails.
_WRAP_UP_S = 30.0
#: Deadline of a small call (stats, progress, a tally) to one actor.
_CALL_S = 10.0
#: Layouts whose actors all run on this host, and so share its Numba cache.
_THIS_HOST = ("local", "emulated", "netns")
_START_LEAD_S = 0.5


def flow_params(config: ExperimentConfig) -> FlowParams:
    w = config.workload
    mix = w.mix
    return FlowParams(
        symbols=w.symbols,
        accounts=w.accounts,
        mid_price=w.order_flow.mid_price,
        price_levels=w.order_flow.price_levels,
        price_decay=w.order_flow.price_decay,
        max_qty=w.order_flow.max_qty,
        mix=(mix.limit, mix.market, mix.ioc, mix.cancel, mix.modify),
        mean_lifetime_s=w.order_flow.lifetime_s or 0.0,
    )


class Pipeline:
    """The actors of one run; ``run()`` drives it, ``shutdown()`` removes it."""

    def __init__(self, config: ExperimentConfig, layout: Layout, run_id: str):
        self.config = config
        self.run_id = run_id
        self.namespace = f"lab-{run_id}"
        self.placement = Placement(layout)
        t, r = config.topology, config.resources
        w = config.workload
        live = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        check_fit(config, layout, ray.cluster_resources(), live, Placement(layout))
        if layout.kind in _THIS_HOST and not t.noop:
            _compile_kernels()

        # 1. Engine shards.
        self.shards = [
            self._actor(
                ShardActor,
                "engine",
                i,
                r.engine.ray_options(),
                run_id=run_id,
                shard_id=i,
                n_shards=t.engines,
                n_symbols=w.symbols,
                n_backends=t.backends,
                stp=w.stp,
                noop=t.noop,
                journal=t.journal,
                orders=t.engine_orders,
            )
            for i in range(t.engines)
        ]
        # With the stream transport each stage serves its own TCP stream.
        stream = t.transport == "stream"
        shard_addresses = _stream_addresses(self.shards) if stream else None
        # 2. Backends.
        limits = RiskLimits(**config.risk.model_dump())
        self.backends = [
            self._actor(
                BackendActor,
                "backend",
                i,
                r.backend.ray_options(),
                run_id=run_id,
                shard_handles=self.shards,
                shard_addresses=shard_addresses,
                backend_id=i,
                n_backends=t.backends,
                n_symbols=w.symbols,
                n_accounts=w.accounts,
                limits=limits,
                noop=t.noop,
            )
            for i in range(t.backends)
        ]
        # 3. Load generators: the target rate is shared evenly between them.
        addresses = _stream_addresses(self.backends) if stream else None
        rate = None if w.closed_loop else float(w.rate) / t.generators
        self.generators = [
            self._actor(
                GeneratorActor,
                "loadgen",
                i,
                r.generator.ray_options(),
                run_id=run_id,
                backend_handles=self.backends,
                backend_addresses=addresses,
                gen_id=i,
                flow_params=flow_params(config),
                tracked_orders=w.order_flow.tracked_orders,
                flow_seed=config.experiment.seed * 1000 + i,
                first_order_id=first_order_id(i),
                rate=rate,
                batch_size=t.batch_size,
                batch_wait_s=t.batch_wait_ms / 1e3,
                max_in_flight=t.max_in_flight,
                seed=config.experiment.seed,
            )
            for i in range(t.generators)
        ]
        # 4. Collector.
        sources = {}
        for kind, handles in (
            ("engine", self.shards),
            ("backend", self.backends),
            ("loadgen", self.generators),
        ):
            sources.update({f"{kind}-{i}": h for i, h in enumerate(handles)})
        self.collector = self._actor(
            CollectorActor,
            "collector",
            0,
            r.collector.ray_options(),
            source_handles=sources,
            interval_s=_interval_s(config),
        )
        self.names = list(sources) + ["collector-0"]
        self._all = self.shards + self.backends + self.generators + [self.collector]

    def _actor(self, cls, kind: str, index: int, resources: dict, **kwargs):
        options = dict(
            resources,
            name=f"{kind}-{index}",
            namespace=self.namespace,
            # A shard's methods never await, so two slots never interleave inside one:
            # the second holds the driver's ``watch``.
            max_concurrency=2 if cls is ShardActor else 1000,
            **self.placement.options(kind, index),
        )
        return remote_class(cls, **options).remote(**kwargs)

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
        clocks (``_START_LEAD_S`` from when it reaches them).
        """
        exp = self.config.experiment
        watches = {h.watch.remote(): n for n, h in zip(self.names, self._all, strict=True)}
        collecting = self.collector.run.remote(_START_LEAD_S)
        runs = [
            g.run.remote(_START_LEAD_S, exp.warmup_s, exp.duration_s, exp.drain_s)
            for g in self.generators
        ]
        ends = time.monotonic() + _START_LEAD_S + exp.duration_s + exp.drain_s + _WRAP_UP_S
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


def _interval_s(config: ExperimentConfig) -> float:
    from actors.collector import REPORT_INTERVAL_S

    return min(REPORT_INTERVAL_S, max(config.experiment.duration_s / 10, 0.1))


class Placement:
    """Ray scheduling options for each actor, from the layout's placement policy.

    On an emulated cluster actors are pinned through the nodes' custom
    resources: ``pack`` puts every actor on node 0, ``spread`` deals them out
    round-robin in creation order, ``explicit`` follows the layout's mapping
    (actor kind -> node indices, used in turn). Elsewhere ``spread`` asks Ray
    to spread and ``pack`` leaves Ray's default packing policy.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self._dealt = 0

    def node(self, kind: str, index: int) -> int | None:
        """The emulated node the next actor of ``kind`` goes to (None on other layouts).

        Call it once per actor, in creation order: ``spread`` deals in turn.
        """
        lay = self.layout
        if lay.kind != "emulated":
            return None
        config_kind = {"loadgen": "generator"}.get(kind, kind)
        if lay.placement == "explicit" and config_kind in (lay.explicit or {}):
            nodes = lay.explicit[config_kind]
            return nodes[index % len(nodes)]
        if lay.placement == "spread":
            self._dealt += 1
            return (self._dealt - 1) % lay.nodes
        return 0

    def options(self, kind: str, index: int) -> dict:
        node = self.node(kind, index)
        if node is not None:
            return {"resources": {node_resource(node): 1}}
        if self.layout.placement == "spread":
            return {"scheduling_strategy": "SPREAD"}
        return {}
