"""The plot of a capacity search: what each rate tried got, against what it was offered."""

from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["plot_capacity_search"]


def plot_capacity_search(summary: dict, path) -> Path:
    """Answered rate and p99 against the offered rate, passed and failed rates marked."""
    points = summary["points"]
    fig = Figure(figsize=(7.5, 4.2), dpi=110, layout="constrained")
    answered, latency = fig.subplots(1, 2)
    offered = [p["rate_per_s"] for p in points]
    for ax in (answered, latency):
        ax.set_xlabel("offered (orders/s)")
        ax.grid(True, alpha=0.3)
    answered.set_title("answered vs offered")
    answered.set_ylabel("answered (orders/s)")
    top = max(offered + [p["answered_per_s"] for p in points], default=1)
    answered.plot([0, top], [0, top], color="grey", linestyle=":", label="kept up")
    latency.set_title(f"p99 vs offered (SLO {summary['slo_p99_ms']:g} ms)")
    latency.set_ylabel("p99 (ms)")
    latency.axhline(summary["slo_p99_ms"], color="grey", linestyle="--", label="SLO")
    for passed, marker, label in ((True, "o", "passed"), (False, "x", "failed")):
        chosen = [p for p in points if p["passed"] is passed]
        x = [p["rate_per_s"] for p in chosen]
        answered.scatter(x, [p["answered_per_s"] for p in chosen], marker=marker, label=label)
        latency.scatter(x, [p["p99_ms"] for p in chosen], marker=marker, label=label)
    if summary.get("capacity_orders_per_s"):
        for ax in (answered, latency):
            ax.axvline(summary["capacity_orders_per_s"], color="green", alpha=0.5)
    if points and min(p["p99_ms"] for p in points) > 0:
        latency.set_yscale("log")
    answered.legend(fontsize="small")
    latency.legend(fontsize="small")
    path = Path(path)
    fig.savefig(path, format="png")
    return path
