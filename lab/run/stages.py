"""The stages of one run and their wiring, described once, whatever runs them.

1. engine shards: each owns the symbols that ``shard_of_symbol`` routes to it;
2. backends: risk and routing, each using every shard;
3. load generators: each using every backend (the rate is shared evenly);
4. a collector that polls every other stage once per interval.

A :class:`Stage` holds the constructor arguments of its plain class in
``actors/`` (without the clients it uses) and the names of the stages it
uses. An executor (:mod:`lab.run.executor`) turns the plan into running
stages: Ray actors, or plain objects on one event loop in this process. The
same stage code runs in both; only how ``uses`` become clients differs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from actors.order_flow import FlowParams
from actors.platform_stores import StoresSpec
from actors.risk import RiskLimits
from actors.routing import first_order_id
from lab.config import ExperimentConfig
from lab.config.platform import api_keys

__all__ = [
    "Stage",
    "StagePlan",
    "plan_stages",
    "named",
    "used",
    "gateway_spec",
    "flow_params",
    "START_LEAD_S",
]

#: The start signal reaches every stage this long before its window opens.
START_LEAD_S = 0.5


@dataclass(frozen=True)
class Stage:
    kind: str  #: "engine", "backend", "loadgen" or "collector"
    index: int
    kwargs: dict  #: the plain class's constructor arguments, without its clients
    resources: dict  #: what it asks of its executor (Ray: num_cpus, memory)
    uses: tuple[str, ...] = ()  #: the stages it calls, by name, in order

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index}"


@dataclass(frozen=True)
class StagePlan:
    shards: list[Stage]
    backends: list[Stage]
    generators: list[Stage]
    collector: Stage
    transport: str  #: how generators reach backends: "ray", "stream" or "http"
    interval_s: float  #: the collector's interval
    #: with ``transport: http``, what each backend's gateway serves (see :func:`gateway_spec`)
    gateway: dict | None = None

    def all(self) -> list[Stage]:
        """Every stage, in the order they are started."""
        return [*self.shards, *self.backends, *self.generators, self.collector]


def named(stages: list[Stage], things: list) -> dict:
    """Each stage's thing (a handle, a client, an address), by the stage's name."""
    return {stage.name: thing for stage, thing in zip(stages, things, strict=True)}


def used(stage: Stage, by_name: dict | None) -> list | None:
    """The things of the stages ``stage`` uses, in its order (None: nothing to use)."""
    return None if by_name is None else [by_name[name] for name in stage.uses]


def flow_params(config: ExperimentConfig) -> FlowParams:
    """The order flow the config describes."""
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


def plan_stages(config: ExperimentConfig, serving: bool = False, run_id: str = "") -> StagePlan:
    """Every stage of a run of ``config`` and what it uses.

    ``serving`` (``lab serve``): the platform alone, shards and backends with their
    gateways, and no load generators; outside clients send the orders.
    """
    t, r, w = config.topology, config.resources, config.workload
    shards = [
        Stage(
            "engine",
            i,
            dict(
                shard_id=i,
                n_shards=t.engines,
                n_symbols=w.symbols,
                n_backends=t.backends,
                stp=w.stp,
                noop=t.noop,
                journal=t.journal,
                orders=t.engine_orders,
                publish_tops=config.platform.cache is not None,
            ),
            r.engine.ray_options(),
        )
        for i in range(t.engines)
    ]
    limits = RiskLimits(**config.risk.model_dump())
    stores = stores_spec(config, run_id)
    backends = [
        Stage(
            "backend",
            i,
            dict(
                backend_id=i,
                n_backends=t.backends,
                n_symbols=w.symbols,
                n_accounts=w.accounts,
                limits=limits,
                noop=t.noop,
                stores=stores,
            ),
            r.backend.ray_options(),
            uses=tuple(s.name for s in shards),
        )
        for i in range(t.backends)
    ]
    rate = None if w.closed_loop else float(w.rate) / t.generators
    generators = [
        Stage(
            "loadgen",
            i,
            dict(
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
            ),
            r.generator.ray_options(),
            uses=tuple(b.name for b in backends),
        )
        for i in range(0 if serving else t.generators)
    ]
    polled = tuple(s.name for s in [*shards, *backends, *generators])
    collector = Stage("collector", 0, {}, r.collector.ray_options(), uses=polled)
    gateway = gateway_spec(config) if serving or t.transport == "http" else None
    return StagePlan(
        shards, backends, generators, collector, t.transport, _interval_s(config), gateway
    )


def stores_spec(config: ExperimentConfig, run_id: str) -> StoresSpec | None:
    """The backends' cache and journal, if the config has either."""
    p = config.platform
    if p.cache is None and p.journal is None:
        return None
    return StoresSpec(run_id, p.cache, p.journal, p.durability, p.journal_schema)


def gateway_spec(config: ExperimentConfig) -> dict:
    """What every backend's gateway serves, with a key of the run's own for its generators.

    The run's key trades any account and lives only as long as the run.
    """
    g = config.gateway
    run_key = secrets.token_urlsafe(24)
    return {
        "symbols": config.workload.names,
        "api_keys": {**api_keys(g), run_key: "*"},
        "run_key": run_key,
        "max_body_bytes": g.max_body_bytes,
        "max_batch": g.max_batch,
        "host": g.host,
        "port": g.port,
        "share_port": g.share_port,
    }


def _interval_s(config: ExperimentConfig) -> float:
    from actors.collector import REPORT_INTERVAL_S

    return min(REPORT_INTERVAL_S, max(config.experiment.duration_s / 10, 0.1))
