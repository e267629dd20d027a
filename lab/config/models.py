"""The experiment config: one typed model, read from YAML in exactly one place.

An experiment is described by one YAML file whose top-level sections map onto
the sub-configs below, each with defaults, so an empty file is a valid
experiment. :mod:`lab.config.loader` reads it (includes, ``LAB_*`` environment
variables, ``--set`` overrides, one-line error messages) and derives configs
from configs (``with_overrides``, ``for_layout``); this module knows nothing of
files.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    Strict,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lab.config.base import Bool, Float, Int, Section, Str
from lab.config.platform import GatewayConfig, PlatformConfig
from lab.errors import ConfigError

__all__ = [
    "ActorKind",
    "ExperimentSettings",
    "OrderFlowConfig",
    "MixConfig",
    "WorkloadConfig",
    "TopologyConfig",
    "RiskConfig",
    "ActorResources",
    "ResourcesConfig",
    "ResultsConfig",
    "ThresholdsConfig",
    "CapacityConfig",
    "SweepConfig",
    "KubeRayConfig",
    "Layout",
    "ExperimentConfig",
    "show_value",
]


ActorKind = Literal["engine", "backend", "generator", "collector"]


class ExperimentSettings(Section):
    """The ``experiment`` section: what the run is called and how long it lasts."""

    name: Str = Field("experiment", min_length=1)
    duration_s: Float = Field(10.0, gt=0)  #: total run time, warm-up included
    warmup_s: Float = Field(2.0, ge=0)  #: leading seconds left out of the measurements
    #: after the window, how long the generators wait for replies still out; what is
    #: unanswered by then is reported, not waited for
    drain_s: Float = Field(5.0, ge=0)
    seed: Int = 1

    @field_validator("warmup_s")
    @classmethod
    def _warmup_inside_duration(cls, value: float, info: ValidationInfo) -> float:
        duration = info.data.get("duration_s")
        if duration is not None and value >= duration:
            raise ValueError(f"must be less than duration_s ({duration:g}), got {value:g}")
        return value

    @property
    def measured_s(self) -> float:
        """Seconds of the run that are measured (``duration_s - warmup_s``)."""
        return self.duration_s - self.warmup_s


class OrderFlowConfig(Section):
    """Prices and sizes of generated orders: a geometric band around a mid price."""

    mid_price: Int = Field(10_000, ge=1)  #: in ticks
    #: half-width of the price band in ticks (``tick_spread`` is accepted as a synonym)
    price_levels: Int = Field(
        50, ge=1, validation_alias=AliasChoices("price_levels", "tick_spread")
    )
    price_decay: Float = Field(0.9, gt=0, lt=1)  #: geometric fall-off of order density per tick
    max_qty: Int = Field(100, ge=1)
    #: mean lifetime of a resting order of the flow: each is cancelled at rate 1/this
    #: (a cancellation hazard, which keeps the book stationary); null: no hazard
    mean_lifetime_s: Float | None = Field(1.0, gt=0)
    #: the same hazard given as a rate (cancels per resting order per second)
    cancel_rate: Float | None = Field(None, gt=0)
    #: resting orders each generator tracks; one that must leave to make room is cancelled
    tracked_orders: Int = Field(65536, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _rate_or_lifetime(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cancel_rate") is not None:
            if data.get("mean_lifetime_s") is not None:
                raise ValueError("give mean_lifetime_s or cancel_rate, not both")
            return {**data, "mean_lifetime_s": None}
        return data

    @property
    def lifetime_s(self) -> float | None:
        """The mean lifetime of a resting order, from whichever key gave it; None: no hazard."""
        if self.cancel_rate is not None:
            return 1.0 / self.cancel_rate
        return self.mean_lifetime_s

    @field_validator("price_levels")
    @classmethod
    def _prices_stay_positive(cls, value: int, info: ValidationInfo) -> int:
        mid = info.data.get("mid_price")
        if mid is not None and value >= mid:
            raise ValueError(f"must be less than mid_price ({mid}) so prices stay positive")
        return value


class MixConfig(Section):
    """Fractions of each message kind in the generated flow; they sum to 1."""

    limit: Float = Field(0.6, ge=0, le=1)
    market: Float = Field(0.05, ge=0, le=1)
    ioc: Float = Field(0.05, ge=0, le=1)
    cancel: Float = Field(0.2, ge=0, le=1)
    modify: Float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> MixConfig:
        fractions = self.model_dump()
        total = sum(fractions.values())
        if abs(total - 1.0) > 1e-6:
            terms = " + ".join(f"{key} {value:g}" for key, value in fractions.items())
            raise ValueError(f"fractions must sum to 1, got {total:g} ({terms})")
        return self


def show_value(value: Any) -> str:
    """A value as an error message shows it (YAML spellings, no long reprs)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _check_rate(value: Any) -> Any:
    if value == "max":
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return float(value)
    raise ValueError(f"expected a positive number of orders/s or 'max', got {show_value(value)}")


class WorkloadConfig(Section):
    """The ``workload`` section: the simulated market and its order flow."""

    symbols: Int = Field(8, ge=1)
    accounts: Int = Field(1000, ge=1)
    rate: float | Literal["max"] = "max"  #: orders/s in total, or "max" (closed loop)
    order_flow: OrderFlowConfig = Field(default_factory=OrderFlowConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    stp: Literal["none", "cancel-newest"] = "none"  #: self-trade prevention
    #: the symbols' names over HTTP, one per symbol; default S0, S1, …
    symbol_names: list[Annotated[Str, Field(min_length=1, max_length=64)]] | None = None

    @field_validator("rate", mode="before")
    @classmethod
    def _rate_or_max(cls, value: Any) -> Any:
        return _check_rate(value)

    @model_validator(mode="after")
    def _one_name_per_symbol(self) -> WorkloadConfig:
        names = self.symbol_names
        if names is not None and (len(names) != self.symbols or len(set(names)) != len(names)):
            raise ValueError(f"symbol_names: expected {self.symbols} distinct names")
        return self

    @property
    def names(self) -> list[str]:
        """Every symbol's name."""
        return list(self.symbol_names or (f"S{i}" for i in range(self.symbols)))

    @property
    def closed_loop(self) -> bool:
        """True when generators send as fast as the system answers (``rate: max``)."""
        return self.rate == "max"


class TopologyConfig(Section):
    """The ``topology`` section: how many actors of each kind, and how they batch."""

    engines: Int = Field(1, ge=1)
    backends: Int = Field(1, ge=1)
    generators: Int = Field(1, ge=1)
    batch_size: Int = Field(4096, ge=1)
    batch_wait_ms: Float = Field(5.0, ge=0)
    #: batches a generator keeps outstanding (a batch is out until every backend's part
    #: of it is answered)
    max_in_flight: Int = Field(4, ge=1)
    #: How generators reach backends: Ray actor calls, or a TCP stream per pair
    #: (actors.stream), which costs far less per call.
    transport: Literal["ray", "stream", "http"] = "ray"
    #: Resting orders each engine shard has room for from the start (its pools
    #: double beyond that, which stalls the shard while they are copied).
    engine_orders: Int = Field(65536, ge=1)
    noop: Bool = False  #: engines and backends do nothing (transport benchmark)
    journal: Bool = False  #: engine shards record the batches they processed
    journal_dir: Str = "results/journals"  #: where journals go, one folder per run


class RiskConfig(Section):
    """The ``risk`` section: per-account limits checked by the backends."""

    max_order_qty: Int = Field(1_000_000, ge=1)
    max_open_orders: Int = Field(1_000_000, ge=1)
    max_position: Int = Field(1_000_000_000, ge=1)
    max_order_rate: Float = Field(1e9, gt=0)  #: orders/s per account


class ActorResources(Section):
    """Ray resources requested by one actor."""

    num_cpus: Float = Field(0.0, ge=0)
    memory_mb: Int = Field(0, ge=0)  #: 0 leaves memory unset

    def ray_options(self) -> dict[str, Any]:
        """These resources as keyword arguments for ``ActorClass.options``."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.memory_mb:
            options["memory"] = self.memory_mb * 1024 * 1024
        return options


_DEFAULT_CPUS: dict[str, float] = {
    "engine": 0.5,
    "backend": 0.25,
    "generator": 0.25,
    "collector": 0,
}


class ResourcesConfig(Section):
    """The ``resources`` section: per actor kind; an omitted ``num_cpus`` keeps its default."""

    engine: ActorResources = Field(default_factory=lambda: ActorResources(num_cpus=0.5))
    backend: ActorResources = Field(default_factory=lambda: ActorResources(num_cpus=0.25))
    generator: ActorResources = Field(default_factory=lambda: ActorResources(num_cpus=0.25))
    collector: ActorResources = Field(default_factory=lambda: ActorResources(num_cpus=0))

    @model_validator(mode="before")
    @classmethod
    def _per_kind_cpu_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for kind, cpus in _DEFAULT_CPUS.items():
            given = data.get(kind)
            if given is None and kind in data:
                given = {}
            if isinstance(given, dict) and "num_cpus" not in given:
                data[kind] = {"num_cpus": cpus, **given}
        return data

    def for_kind(self, kind: ActorKind) -> ActorResources:
        """The resources of one actor kind."""
        return getattr(self, kind)


class ResultsConfig(Section):
    """The ``results`` section: where runs are stored."""

    #: ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``postgresql://...``
    url: Str = "sqlite:///results/lab.sqlite"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError(
                f"expected 'sqlite:///<path>' or 'postgresql://...', got {show_value(value)}"
            )
        return value


class ThresholdsConfig(Section):
    """The ``thresholds`` section: a run that misses one fails (exit 99)."""

    p99_ms: Float | None = Field(None, gt=0)
    min_orders_per_s: Float | None = Field(None, ge=0)
    max_errors: Int | None = Field(None, ge=0)
    #: ``false``: the run must keep up with its offered rate (an open-loop run)
    overloaded: Literal[False] | None = None


class CapacityConfig(Section):
    """The ``capacity`` section: how ``lab capacity`` searches for the highest sustainable rate."""

    slo_p99_ms: Float = Field(100.0, gt=0)  #: a rate passes when p99 stays at or below this
    repeat: Int = Field(2, ge=1)  #: runs per rate tried
    #: the first rate tried (orders/s); null: a closed-loop run's throughput
    start_per_s: Float | None = Field(None, gt=0)
    tolerance: Float = Field(0.05, gt=0, lt=1)  #: stop when the bracket is this narrow
    max_points: Int = Field(12, ge=2)  #: rates tried at most


class KubeRayConfig(Section):
    """Settings of a ``kuberay`` layout: the RayCluster to create."""

    namespace: Str = "hft-lab"
    image: Str = "rayproject/ray:2.60.0-py311"
    worker_replicas: Int = Field(1, ge=0)  #: workers at start (all of them without autoscaling)
    min_replicas: Int = Field(1, ge=0)  #: autoscaling lower bound
    max_replicas: Int = Field(4, ge=0)  #: autoscaling upper bound
    autoscaling: Bool = False

    @model_validator(mode="after")
    def _replicas_in_range(self) -> KubeRayConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must not exceed "
                f"max_replicas ({self.max_replicas})"
            )
        if self.autoscaling and not (
            self.min_replicas <= self.worker_replicas <= self.max_replicas
        ):
            raise ValueError(
                f"with autoscaling, worker_replicas ({self.worker_replicas}) must lie "
                f"between min_replicas ({self.min_replicas}) and max_replicas ({self.max_replicas})"
            )
        return self


class Layout(Section):
    """Where the stages run: this host, emulated nodes, a Ray cluster, KubeRay, or in-process."""

    kind: Literal["local", "emulated", "cluster", "kuberay", "inprocess"] = "local"
    nodes: Int = Field(1, ge=1)
    cpus_per_node: Float = Field(2.0, gt=0)
    memory_mb_per_node: Int = Field(4096, ge=1)
    object_store_mb: Int = Field(256, ge=1)
    placement: Literal["pack", "spread", "explicit"] = "pack"
    #: with ``placement: explicit``: actor kind -> node indices, used round-robin
    explicit: dict[ActorKind, list[Annotated[int, Strict(), Field(ge=0)]]] | None = None
    address: Str | None = None  #: Ray address of a ``cluster`` layout, e.g. "auto"
    netns: Bool = False  #: emulated nodes in their own network namespaces
    link_mbit: Float | None = Field(None, gt=0)  #: emulated link bandwidth
    kuberay: KubeRayConfig | None = None
    #: dotted config keys this layout changes, e.g. ``{"topology.backends": 100}``
    overrides: dict[Str, StrictBool | Int | Float | Str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _kuberay_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "kuberay" and "kuberay" not in data:
            return {**data, "kuberay": {}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Layout:
        if self.placement == "explicit" and not self.explicit:
            raise ValueError("placement 'explicit' needs an 'explicit' mapping of kind -> nodes")
        if self.explicit and self.placement != "explicit":
            raise ValueError(
                f"'explicit' is only used with placement 'explicit', not {self.placement!r}"
            )
        for kind, indices in (self.explicit or {}).items():
            if not indices:
                raise ValueError(f"explicit.{kind}: expected at least one node index")
            bad = [i for i in indices if i >= self.nodes]
            if bad:
                raise ValueError(
                    f"explicit.{kind}: node index {bad[0]} is out of range for {self.nodes} nodes"
                )
        if (self.netns or self.link_mbit is not None) and self.kind != "emulated":
            raise ValueError("'netns' and 'link_mbit' apply to emulated layouts only")
        if self.link_mbit is not None and not self.netns:
            raise ValueError("'link_mbit' caps the links between network namespaces: set netns")
        if self.kind == "inprocess" and (self.nodes != 1 or self.placement != "pack"):
            raise ValueError("an 'inprocess' layout is one process: it has no nodes or placement")
        if self.kuberay is not None and self.kind != "kuberay":
            raise ValueError(f"'kuberay' settings given for a {self.kind!r} layout")
        return self


Scalar = StrictBool | Int | Float | Str


class SweepReference(Section):
    """Figures measured elsewhere, set beside a sweep's own (``sweep.reference``)."""

    source: Str  #: where they come from, in words
    key: Str  #: the varied key they are given by, e.g. ``topology.backends``
    orders_per_s: dict[Scalar, Float]  #: that key's value -> the figure


class SweepConfig(Section):
    """The ``sweep`` section: what ``lab sweep CONFIG`` varies when given no ``--vary``."""

    #: dotted config key (or ``layout``, or a name in ``variants``) -> the values it takes
    vary: dict[Str, list[Scalar]] = Field(default_factory=dict)
    repeat: Int = Field(3, ge=1)  #: runs per point (3, so that every point has an interval)
    #: named sets of settings varied as one: ``{persistence: {redis: {platform.cache: …}}}``
    #: lets ``vary`` give ``persistence: [none, redis]``
    variants: dict[Str, dict[Str, dict[Str, Scalar]]] = Field(default_factory=dict)
    reference: SweepReference | None = None

    @model_validator(mode="after")
    def _varied_variants_exist(self) -> SweepConfig:
        for key, values in self.vary.items():
            names = self.variants.get(key)
            unknown = [v for v in values if names is not None and str(v) not in names]
            if unknown:
                raise ValueError(
                    f"vary.{key}: {', '.join(map(str, unknown))} not in variants.{key} "
                    f"(its names: {', '.join(names)})"
                )
        return self


class ExperimentConfig(Section):
    """The whole experiment: one sub-config per YAML section, each with defaults."""

    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    topology: TopologyConfig = Field(default_factory=TopologyConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    thresholds: ThresholdsConfig = Field(default_factory=ThresholdsConfig)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    platform: PlatformConfig = Field(default_factory=PlatformConfig)
    #: named layouts; ``single-host`` (one local Ray node) is always there unless redefined
    layouts: dict[Str, Layout] = Field(default_factory=dict, validate_default=True)

    _source: str = PrivateAttr("<config>")

    @model_validator(mode="after")
    def _overload_verdict_needs_an_open_loop(self) -> ExperimentConfig:
        if self.thresholds.overloaded is False and self.workload.closed_loop:
            raise ValueError(
                "thresholds.overloaded: false needs an open-loop run (a number of orders/s "
                "for workload.rate, not 'max'): a closed loop sets its own pace"
            )
        return self

    @field_validator("layouts")
    @classmethod
    def _single_host_always_there(cls, layouts: dict[str, Layout]) -> dict[str, Layout]:
        return {"single-host": Layout(kind="local"), **layouts}

    # Two configs with the same settings are equal wherever they were read from
    # (pydantic would also compare the private ``_source``).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExperimentConfig):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # layouts is a dict

    @property
    def source(self) -> str:
        """The file this config was read from (or ``<dict>``), as named in errors."""
        return self._source

    def layout(self, name: str) -> Layout:
        """The layout called ``name``; ConfigError naming the available ones if there is none."""
        try:
            return self.layouts[name]
        except KeyError:
            available = ", ".join(sorted(self.layouts)) or "none"
            raise ConfigError(
                f"{self._source}: layouts: no layout {name!r} (available: {available})"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able data; ``loader.config_from_dict`` reads it back."""
        return self.model_dump(mode="json")

    def to_public_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without secrets, for what is stored or printed: API keys masked."""
        out = self.to_dict()
        keys = out["gateway"]["api_keys"]
        masked = {f"<key {i + 1} of {len(keys)}>": v for i, v in enumerate(keys.values())}
        out["gateway"]["api_keys"] = masked
        return out

    def with_source(self, source: str) -> ExperimentConfig:
        """This config, naming ``source`` (the file it came from) in its errors."""
        self._source = source
        return self
