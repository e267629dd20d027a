"""Plain-language findings of a sweep: does more of N help, and where does the time go.

For each layout in the sweep, the smallest and largest N are compared (a
drop beyond :data:`REGRESSION_TOLERANCE` is called a regression), and the
busiest stage at the largest N is named with its CPU busy fraction and its
per-message service time. Layouts are then compared point by point.
"""

from collections import defaultdict

from lab.bottleneck import stage_of

__all__ = ["findings", "REGRESSION_TOLERANCE"]

#: A relative drop in throughput smaller than this is treated as noise.
REGRESSION_TOLERANCE = 0.05


def findings(points: list[dict], n_key: str) -> list[str]:
    by_layout: dict[str, list[dict]] = defaultdict(list)
    for p in points:
        if p["orders_per_s"]["mean"] is not None:
            by_layout[str(p["values"].get("layout", "the layout"))].append(p)
    out = []
    for layout, group in by_layout.items():
        group.sort(key=lambda p: p["n"])
        out.append(_scaling_sentence(layout, group, n_key))
        out.append(_time_sentence(layout, group[-1], n_key))
    if len(by_layout) > 1:
        out.extend(_layout_comparisons(by_layout, n_key))
    return [s for s in out if s]


def _scaling_sentence(layout: str, group: list[dict], n_key: str) -> str:
    first, last = group[0], group[-1]
    x0, x1 = first["orders_per_s"]["mean"], last["orders_per_s"]["mean"]
    if len(group) < 2 or not x0:
        return f"{layout}: {x1:,.0f} orders/s at {n_key}={last['n']:g}."
    change = (x1 - x0) / x0
    verdict = (
        "a regression"
        if change < -REGRESSION_TOLERANCE
        else "no gain"
        if change < REGRESSION_TOLERANCE
        else f"a gain of {change:.0%} for {last['n'] / first['n']:.1f}x the {n_key}"
    )
    return (
        f"{layout}: {n_key}={last['n']:g} gave {x1:,.0f} orders/s against {x0:,.0f} "
        f"at {n_key}={first['n']:g} ({change:+.0%}): {verdict}."
    )


def _time_sentence(layout: str, point: dict, n_key: str) -> str:
    stages: dict[str, list[dict]] = defaultdict(list)
    for name, actor in (point.get("actors") or {}).items():
        if "busy" in actor and actor.get("messages"):
            stages[stage_of(name)].append(actor)
    if not stages:
        return ""
    parts = []
    for stage, actors in sorted(stages.items(), key=lambda kv: -max(a["busy"] for a in kv[1])):
        busy = max(a["busy"] for a in actors)
        per_msg = sum(a["us_per_message"] for a in actors) / len(actors)
        parts.append(f"{stage} {busy:.0%} busy ({per_msg:.1f} µs/message)")
    p99 = point["p99_ms"]["mean"]
    return (
        f"{layout} at {n_key}={point['n']:g}: p99 {p99:.1f} ms; where the time goes, busiest "
        f"first: {', '.join(parts)}. A stage well below 100% busy while latency grows is "
        "waiting on transport and scheduling rather than on its own work."
    )


def _layout_comparisons(by_layout: dict[str, list[dict]], n_key: str) -> list[str]:
    names = list(by_layout)
    base = names[0]
    at_n = {layout: {p["n"]: p for p in group} for layout, group in by_layout.items()}
    out = []
    for other in names[1:]:
        for n in sorted(set(at_n[base]) & set(at_n[other])):
            xb = at_n[base][n]["orders_per_s"]["mean"]
            xo = at_n[other][n]["orders_per_s"]["mean"]
            if xb:
                out.append(
                    f"At {n_key}={n:g}, {other} gave {xo:,.0f} orders/s against {base}'s "
                    f"{xb:,.0f} ({(xo - xb) / xb:+.0%})."
                )
    return out
