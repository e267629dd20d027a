"""The pipeline of one run, assembled in one place, stage by stage.

1. engine shards: each owns the symbols that ``shard_of_symbol`` routes to it;
2. backends: risk and routing, each holding every shard;
3. load generators: each holding every backend;
4. a collector that polls all of them every interval.

Actors are named ``engine-0``, ``backend-3``, ``loadgen-1`` … in a namespace
per run, so a run can be found in the Ray dashboard while it runs.
"""

from pathlib import Path

import ray

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
from lab.emulated import node_resource
from lab.errors import LabError
from lab.workload import FlowParams

__all__ = ["Pipeline", "flow_params"]

_READY_TIMEOUT_S = 300.0
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
            max_concurrency=1 if cls is ShardActor else 1000,
            **self.placement.options(kind, index),
        )
        return remote_class(cls, **options).remote(**kwargs)

    def wait_ready(self) -> None:
        refs = [h.ready.remote() for h in self._all]
        done, pending = ray.wait(refs, num_returns=len(refs), timeout=_READY_TIMEOUT_S)
        if pending:
            raise LabError(
                f"{len(pending)} of {len(refs)} actors did not start within "
                f"{_READY_TIMEOUT_S:.0f} s: the layout probably lacks the CPUs or memory that "
                f"`resources` asks for (cluster has {ray.cluster_resources()})"
            )
        ray.get(done)  # raises an actor's constructor error, if any

    def nodes(self) -> dict[str, dict]:
        """Host name and Ray node id of every actor."""
        places = ray.get([h.where.remote() for h in self._all])
        return dict(zip(self.names, places, strict=True))

    def run(self, on_progress=None) -> dict:
        """Drive the run to its end; returns the generators' tallies and the collector's series.

        Each generator and the collector take the start signal on their own
        clocks (``_START_LEAD_S`` from when it reaches them).
        """
        exp = self.config.experiment
        collecting = self.collector.run.remote(_START_LEAD_S)
        runs = [
            g.run.remote(_START_LEAD_S, exp.warmup_s, exp.duration_s, exp.drain_s)
            for g in self.generators
        ]
        pending = list(runs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            if on_progress is not None:
                on_progress(ray.get(self.collector.progress.remote()))
        tallies = ray.get(runs)
        resting = ray.get([s.resting.remote() for s in self.shards])
        ray.get(self.collector.stop.remote())
        ray.get(collecting)
        journals = []
        if self.config.topology.journal:
            directory = str(Path(self.config.topology.journal_dir) / self.run_id)
            journals = ray.get([s.write_journal.remote(directory) for s in self.shards])
        return {
            "tallies": tallies,
            "journals": journals,
            "resting": {f"engine-{i}": n for i, n in enumerate(resting)},
            **ray.get(self.collector.summary.remote()),
        }

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
    from lab.workload import OrderFlow

    EngineShard(0, 1, 1).warm_up()
    Backend(0, 1, [], 1, 1).warm_up()
    LoadGenerator(0, [], OrderFlow(), None, 1, 0.0).warm_up()


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

    def options(self, kind: str, index: int) -> dict:
        lay = self.layout
        config_kind = {"loadgen": "generator"}.get(kind, kind)
        if lay.kind == "emulated":
            if lay.placement == "explicit" and config_kind in (lay.explicit or {}):
                nodes = lay.explicit[config_kind]
                node = nodes[index % len(nodes)]
            elif lay.placement == "spread":
                node = self._dealt % lay.nodes
                self._dealt += 1
            else:
                node = 0
            return {"resources": {node_resource(node): 1}}
        if lay.placement == "spread":
            return {"scheduling_strategy": "SPREAD"}
        return {}
