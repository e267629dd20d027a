"""``Result``: what one run measured, built from the pipeline's raw figures.

Throughput is counted by completion: ``orders_per_s`` is the acknowledged
orders whose final reply reached a generator inside the measured window,
divided by that window. An open-loop run also says whether the system kept
up with what was offered (``overloaded``) and whether the generators kept
their own schedule (``generator_limited``); :func:`load_verdicts` puts both
in words for the summary and the report.
"""

from dataclasses import asdict, dataclass, field

from actors.histogram import LatencyHistogram
from actors.load_generator import KEPT_UP

__all__ = [
    "Result",
    "summarize_actors",
    "summarize_book",
    "load_verdicts",
    "KEPT_UP",
    "BACKLOG_GROWTH",
]

# An open-loop run is overloaded when it answers less than KEPT_UP of what it was offered,
#: or when its backlog grew through the window by more than this share of the offered
#: orders, beyond what the generators may keep in flight.
BACKLOG_GROWTH = 0.02


@dataclass
class Result:
    run_id: str
    name: str
    layout: str
    orders_per_s: float  #: acknowledged orders answered inside the window, per second of it
    orders_sent: int  #: orders sent inside the window
    orders_acked: int  #: acknowledged (not rejected) orders answered inside the window
    rejects: int  #: rejected orders answered inside the window
    errors: int  #: orders intended inside the window whose call failed
    fills: int
    latency_ms: dict  #: p50, p90, p99, p999, max
    measured_s: float
    loop: str = "closed"  #: "open" (a Poisson schedule at a rate) or "closed"
    offered_per_s: float | None = None  #: orders intended in the window, per second (open loop)
    sent_per_s: float = 0.0
    answered_per_s: float = 0.0  #: orders answered in the window (acked, rejected or failed)
    overrun_s: float = 0.0  #: how long after the window the last reply came (or the drain ended)
    backlog: int = 0  #: orders intended by the window's end and not answered by then
    backlog_growth: int | None = None  #: how much the backlog grew through the window
    unsent: int = 0  #: orders intended in the window that were never sent
    unanswered: int = 0  #: orders sent and still unanswered when the drain ended
    generator_lag_ms: float | None = None  #: p99 of actual minus intended send time (open loop)
    overloaded: bool | None = None  #: the system did not keep up (open loop; None: closed)
    generator_limited: bool | None = None  #: the generators fell behind their own schedule
    book: dict = field(default_factory=dict)  #: resting orders at the end and how they grew
    actors: dict = field(default_factory=dict)  #: per actor: node, busy, queue, service times
    series: list = field(default_factory=list)  #: one point per interval
    config: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    thresholds_missed: list = field(default_factory=list)
    first_error: str = ""  #: what the first failed call raised, if any
    status: str = "ok"  #: "ok", or "failed": the run ended early, and ``error`` says why
    error: str = ""
    failed_polls: int = 0  #: stats polls that an actor did not answer
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
        """Merge the generators' tallies (``LoadGenerator.run``) into one result."""
        latency, lag = LatencyHistogram(), LatencyHistogram()
        keys = ("sent", "answered", "acked", "rejects", "fills", "errors")
        keys += ("unsent", "unanswered", "in_flight_at_end", "in_flight_cap")
        totals = dict.fromkeys(keys, 0)
        first_error = next((t["first_error"] for t in tallies if t.get("first_error")), "")
        for tally in tallies:
            latency.merge(LatencyHistogram.from_dict(tally["latency"]))
            lag.merge(LatencyHistogram.from_dict(tally["lag"]))
            for key in totals:
                totals[key] += tally[key]
        open_loop = any(t["loop"] == "open" for t in tallies)
        offered = sum(t["offered"] or 0 for t in tallies) if open_loop else None
        verdict = _load_verdict(totals, offered)
        per_s = 1 / measured_s if measured_s > 0 else 0.0  # a run that failed early measured 0 s
        if open_loop:  # see actors.load_generator.LoadGenerator._fell_behind
            verdict["generator_limited"] = any(t["generator_limited"] for t in tallies)
        return cls(
            orders_per_s=round(totals["acked"] * per_s, 1),
            orders_sent=totals["sent"],
            orders_acked=totals["acked"],
            rejects=totals["rejects"],
            errors=totals["errors"],
            fills=totals["fills"],
            latency_ms={k: round(v, 4) for k, v in latency.percentiles_ms().items()},
            measured_s=measured_s,
            loop="open" if open_loop else "closed",
            offered_per_s=None if offered is None else round(offered * per_s, 1),
            sent_per_s=round(totals["sent"] * per_s, 1),
            answered_per_s=round(totals["answered"] * per_s, 1),
            overrun_s=round(max((t["overrun_s"] for t in tallies), default=0.0), 3),
            backlog=totals["in_flight_at_end"] + totals["unsent"],
            unsent=totals["unsent"],
            unanswered=totals["unanswered"],
            generator_lag_ms=round(lag.percentile(99) / 1e6, 3) if open_loop else None,
            first_error=first_error,
            **verdict,
            **fields,
        )


def _load_verdict(totals: dict, offered: int | None) -> dict:
    """``overloaded``, ``generator_limited`` and ``backlog_growth`` of an open-loop run."""
    if offered is None:  # closed loop: the system sets the pace, so it always keeps up
        return {"overloaded": None, "generator_limited": None, "backlog_growth": None}
    kept = totals["answered"] - totals["errors"]
    # Intended minus answered in the window is what the backlog grew by through it.
    growth = offered - totals["answered"]
    tolerance = max(BACKLOG_GROWTH * offered, totals["in_flight_cap"])
    overloaded = kept < KEPT_UP * offered or growth > tolerance
    return {
        "overloaded": bool(overloaded),
        "generator_limited": None,
        "backlog_growth": int(growth),
    }


def load_verdicts(result: Result) -> list[str]:
    """What the run's load figures mean, in words (one sentence each)."""
    config = result.config or {}
    topology = config.get("topology", {})
    if result.loop == "closed":
        in_flight = topology.get("max_in_flight", "?")
        generators = topology.get("generators", "?")
        batch = topology.get("batch_size", "?")
        return [
            f"Closed loop: {generators} generator(s) each keep {in_flight} batches of {batch} "
            "orders in flight, so the latency is the service time under that fixed "
            "concurrency, not the latency at a given load (give workload.rate, or run "
            "`lab capacity`, for that)."
        ]
    offered = result.offered_per_s or 0.0
    share = (result.answered_per_s / offered) if offered else 0.0
    out = []
    if result.overloaded:
        out.append(
            f"OVERLOADED: offered {offered:,.0f} orders/s, answered {result.answered_per_s:,.0f}"
            f"/s ({share:.0%}); the backlog grew by {result.backlog_growth or 0:,} orders "
            f"through the window and {result.backlog:,} were waiting when it closed "
            f"({result.unsent:,} never sent, {result.unanswered:,} still unanswered after the "
            "drain). The throughput is what the system managed past saturation; the latency "
            "grows with the run's length and is not a figure of the system."
        )
    else:
        out.append(
            f"Kept up: offered {offered:,.0f} orders/s, answered {result.answered_per_s:,.0f}/s "
            f"({share:.0%}) with no growing backlog."
        )
    if result.generator_limited:
        out.append(
            f"GENERATOR-LIMITED: the load generators fell behind their own schedule (p99 send "
            f"lag {result.generator_lag_ms or 0:,.1f} ms) with calls to spare, so this run "
            "measures the generators, not the system: add generators or lower the rate."
        )
    return out


def summarize_book(series: list[dict], resting: dict, warmup_s: float, duration_s: float) -> dict:
    """Resting orders at the end (per shard and in all) and whether they levelled off.

    ``growth`` is the mean of the per-interval resting orders over the second
    half of the measured window against the first half, minus 1: near 0 when
    the book is stationary, about +0.5 or more when it grows all the way.
    """
    measured = [
        p["resting_orders"]
        for p in series
        if warmup_s < p.get("t_s", 0) <= duration_s and "resting_orders" in p
    ]
    book = {"resting_orders": int(sum(resting.values())), "per_shard": dict(resting)}
    half = len(measured) // 2
    first, second = measured[:half], measured[len(measured) - half :]
    if half and sum(first):
        book["growth"] = round(sum(second) / sum(first) - 1, 4)
    else:
        book["growth"] = None
    return book


def _mean_of(values) -> float | None:
    """The mean of the figures that were measured (not None), rounded; None if none was."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def summarize_actors(actor_series: dict, nodes: dict, warmup_s: float) -> dict:
    """Per actor over the measured intervals: mean busy fraction, worst queue, service times."""
    out = {
        name: {
            **where,
            "busy": 0.0,
            "cpu": 0.0,
            "host_busy": None,
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
            "cpu": round(sum(p.get("cpu", 0) for p in measured) / len(measured), 4)
            if measured
            else 0,
            "host_busy": _mean_of(p.get("host_busy") for p in measured),
            "max_queue": max((p["max_queue"] for p in measured), default=0),
            "batches": batches,
            "messages": messages,
            "batch_service_ms": {"p50": round(ms["p50"], 4), "p99": round(ms["p99"], 4)},
            "us_per_message": round(service.total / messages / 1e3, 3) if messages else 0,
            "failed_polls": sum(1 for p in points if "error" in p),
        }
    return out
