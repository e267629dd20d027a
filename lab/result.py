"""``Result``: what one run measured, built from the pipeline's raw figures."""

from dataclasses import asdict, dataclass, field

from lab.histogram import LatencyHistogram

__all__ = ["Result", "summarize_actors"]


@dataclass
class Result:
    run_id: str
    name: str
    layout: str
    orders_per_s: float  #: acknowledged orders per second over the measured window
    orders_sent: int
    orders_acked: int
    rejects: int
    errors: int
    fills: int
    latency_ms: dict  #: p50, p90, p99, p999, max
    measured_s: float
    actors: dict = field(default_factory=dict)  #: per actor: node, busy, queue, service times
    series: list = field(default_factory=list)  #: one point per interval
    config: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    thresholds_missed: list = field(default_factory=list)
    first_error: str = ""  #: what the first failed call raised, if any
    journals: list = field(default_factory=list)  #: per shard, paths of its journal files
    created_at: str = ""
    kind: str = "run"
    sweep_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def from_tallies(cls, tallies: list[dict], measured_s: float, **fields) -> "Result":
        latency = LatencyHistogram()
        totals = dict.fromkeys(("sent", "acked", "rejects", "fills", "errors"), 0)
        first_error = next((t["first_error"] for t in tallies if t.get("first_error")), "")
        for tally in tallies:
            latency.merge(LatencyHistogram.from_dict(tally["latency"]))
            for key in totals:
                totals[key] += tally[key]
        return cls(
            orders_per_s=round(totals["acked"] / measured_s, 1),
            orders_sent=totals["sent"],
            orders_acked=totals["acked"],
            rejects=totals["rejects"],
            errors=totals["errors"],
            fills=totals["fills"],
            latency_ms={k: round(v, 4) for k, v in latency.percentiles_ms().items()},
            measured_s=measured_s,
            first_error=first_error,
            **fields,
        )


def summarize_actors(actor_series: dict, nodes: dict, warmup_s: float) -> dict:
    """Per actor over the measured intervals: mean busy fraction, worst queue, service times."""
    out = {
        name: {
            **where,
            "busy": 0.0,
            "max_queue": 0,
            "batches": 0,
            "messages": 0,
            "batch_service_ms": {"p50": 0.0, "p99": 0.0},
            "us_per_message": 0.0,
        }
        for name, where in nodes.items()
    }
    for name, points in actor_series.items():
        measured = [p for p in points if p["t_s"] > warmup_s and "busy" in p] or [
            p for p in points if "busy" in p
        ]
        service = LatencyHistogram()
        for p in measured:
            service.merge(LatencyHistogram.from_dict(p["service"]))
        messages = sum(p["messages"] for p in measured)
        batches = sum(p["batches"] for p in measured)
        ms = service.percentiles_ms()
        out[name] = {
            **nodes.get(name, {}),
            "busy": round(sum(p["busy"] for p in measured) / len(measured), 4) if measured else 0,
            "max_queue": max((p["max_queue"] for p in measured), default=0),
            "batches": batches,
            "messages": messages,
            "batch_service_ms": {"p50": round(ms["p50"], 4), "p99": round(ms["p99"], 4)},
            "us_per_message": round(service.total / messages / 1e3, 3) if messages else 0,
        }
    return out
