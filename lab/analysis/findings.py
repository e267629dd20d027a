"""Plain-language findings of a sweep: does more of N help, and where does the time go.

For each layout in the sweep, the smallest and largest N are compared. A
change is called a regression or a gain only when a test at 95% says so
(:func:`lab.analysis.intervals.compare`: Welch's t-test on log throughput, or capacity
search brackets that do not overlap); otherwise the sentence says there is no
significant change, or that no test was possible (one run per point), and
gives the change with both intervals. A significant change smaller than
:data:`REGRESSION_TOLERANCE` is called small. The busiest stage at the
largest N is named with its CPU busy fraction and its per-message service
time. Layouts are then compared point by point, by the same test.
"""

from collections import defaultdict

from lab.analysis.bottleneck import bottleneck, host_sentence, stage_of
from lab.analysis.intervals import CONFIDENCE, Comparison, compare, describe_figure

__all__ = ["findings", "REGRESSION_TOLERANCE"]

#: A significant change in throughput smaller than this is called small, not a regression.
REGRESSION_TOLERANCE = 0.05


def findings(points: list[dict], n_key: str) -> list[str]:
    """Sentences about a summary's points (as from :func:`lab.analysis.scaling.summarize_sweep`)."""
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


def _figure(point: dict) -> str:
    return describe_figure(point["orders_per_s"], unit=" orders/s")


def _how(result: Comparison) -> str:
    """The test behind a verdict, for the parenthesis after it."""
    if result.p is None:
        overlap = "do not overlap" if result.significant else "overlap"
        return f"the search brackets {overlap}"
    p = "p<0.001" if result.p < 0.001 else f"p={result.p:.2g}"
    return f"{result.method}, {p}"


def _change(result: Comparison) -> str:
    return "" if result.change is None else f" ({result.change:+.0%})"


def _scaling_verdict(result: Comparison, ratio: float, n_key: str) -> str:
    if result.verdict == "untestable":
        return f"{result.note}; not called a regression or a gain"
    if not result.significant:
        return f"no significant change at {CONFIDENCE:.0%} ({_how(result)})"
    size = abs(result.change or 0)
    if size < REGRESSION_TOLERANCE:
        way = "drop" if result.verdict == "lower" else "rise"
        return f"a small but significant {way}, under {REGRESSION_TOLERANCE:.0%} ({_how(result)})"
    if result.verdict == "lower":
        return f"a regression ({_how(result)})"
    return f"a gain of {size:.0%} for {ratio:.1f}x the {n_key} ({_how(result)})"


def _scaling_sentence(layout: str, group: list[dict], n_key: str) -> str:
    first, last = group[0], group[-1]
    if len(group) < 2:
        return f"{layout}: {_figure(last)} at {n_key}={last['n']:g}."
    result = compare(first["orders_per_s"], last["orders_per_s"])
    verdict = _scaling_verdict(result, last["n"] / first["n"], n_key)
    return (
        f"{layout}: {n_key}={last['n']:g} gave {_figure(last)} against {_figure(first)} "
        f"at {n_key}={first['n']:g}{_change(result)}: {verdict}."
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
        cpu = max(a.get("cpu") or 0 for a in actors)
        process = f", its process {cpu:.0%} of a core" if cpu else ""
        parts.append(f"{stage} {busy:.0%} busy{process} ({per_msg:.1f} µs/message)")
    p99 = point["p99_ms"]["mean"]
    latency = f"p99 {p99:.1f} ms" if p99 is not None else "no p99 measured"
    found = bottleneck(point.get("actors") or {})
    full = found["host_saturated"]
    if full:
        sentence = host_sentence(full, found["hosts"][full])
        why = f"No core was free: {sentence}, so the stages waited for one."
    else:
        why = (
            "A stage well below 100% busy while latency grows is waiting on transport and "
            "scheduling rather than on its own work."
        )
    return (
        f"{layout} at {n_key}={point['n']:g}: {latency}; where the time goes, busiest "
        f"first: {', '.join(parts)}. {why}"
    )


def _layout_verdict(result: Comparison) -> str:
    if result.verdict == "untestable":
        return result.note
    if not result.significant:
        return f"no significant difference at {CONFIDENCE:.0%} ({_how(result)})"
    return f"{result.verdict}, significant at {CONFIDENCE:.0%} ({_how(result)})"


def _layout_comparisons(by_layout: dict[str, list[dict]], n_key: str) -> list[str]:
    names = list(by_layout)
    base = names[0]
    at_n = {layout: {p["n"]: p for p in group} for layout, group in by_layout.items()}
    out = []
    for other in names[1:]:
        for n in sorted(set(at_n[base]) & set(at_n[other])):
            pb, po = at_n[base][n], at_n[other][n]
            result = compare(pb["orders_per_s"], po["orders_per_s"])
            out.append(
                f"At {n_key}={n:g}, {other} gave {_figure(po)} against {base}'s "
                f"{_figure(pb)}{_change(result)}: {_layout_verdict(result)}."
            )
    return out
