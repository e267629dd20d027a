"""A sweep of settings that are not a count: what each choice costs against the first.

When no varied key is a number (``persistence: [none, redis, ...]`` ×
``topology.transport: [actor, http]``) there is nothing to fit a scaling law
to. Each point is instead set against its reference: the point with the same
values but the first value of one varied key. Every key gives its own
reference, so a point ``persistence=redis, transport=http`` is compared with
``persistence=none, transport=http`` (what Redis costs) and with
``persistence=redis, transport=actor`` (what HTTP costs). A change is called
significant only when :func:`lab.analysis.intervals.compare` says so.

Pure functions on plain dicts, like :mod:`lab.analysis.sweep_summary`.
"""

from __future__ import annotations

from lab.analysis.intervals import CONFIDENCE, compare, describe_figure
from lab.analysis.sweep_summary import point_label, point_row

__all__ = ["summarize_comparison", "comparison_findings"]


def summarize_comparison(points: list[dict], keys: list[str]) -> dict:
    """Each point's figure, p99 and its cost against the first value of each key in ``keys``.

    Points keep their order. A row's ``costs[key]`` (for keys where the row is
    not at the key's first value and the reference point was measured) holds
    ``vs`` (the reference's value), ``change`` (relative throughput change),
    ``p99_ratio`` and ``verdict`` ("higher", "lower", "no significant change"
    or "untestable", with ``method`` and ``p``).
    """
    rows = [point_row(p) for p in points]
    firsts = {k: rows[0]["values"].get(k) for k in keys} if rows else {}
    by_values = {_key(r["values"]): r for r in rows}
    for row in rows:
        row["costs"] = {}
        for key in keys:
            if row["values"].get(key) == firsts[key]:
                continue
            ref = by_values.get(_key({**row["values"], key: firsts[key]}))
            if ref is None or ref["orders_per_s"]["mean"] is None:
                continue
            row["costs"][key] = _cost(ref, row, firsts[key])
    # No N, so no "first stage to saturate as N grows".
    summary = {"points": rows, "compare_keys": list(keys), "n_key": None, "bottleneck": {}}
    summary["findings"] = comparison_findings(rows)
    return summary


def _cost(ref: dict, row: dict, ref_value) -> dict:
    result = compare(ref["orders_per_s"], row["orders_per_s"])
    p99, ref_p99 = row["p99_ms"]["mean"], ref["p99_ms"]["mean"]
    return {
        "vs": ref_value,
        "change": result.change,
        "p99_ratio": None if not (p99 and ref_p99) else p99 / ref_p99,
        "verdict": result.verdict,
        "significant": result.significant,
        "method": result.method,
        "p": result.p,
        "note": result.note,
    }


def _key(values: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in values.items()))


def comparison_findings(rows: list[dict]) -> list[str]:
    """One sentence per point and key it differs in: what that choice cost, tested."""
    by_values = {_key(r["values"]): r for r in rows}
    out = []
    for row in rows:
        for key, cost in row["costs"].items():
            ref = by_values[_key({**row["values"], key: cost["vs"]})]
            if cost["verdict"] == "untestable":
                verdict = f"{cost['note']}; not called a cost or a gain"
            elif not cost["significant"]:
                verdict = f"no significant change at {CONFIDENCE:.0%}"
            else:
                verdict = f"significant at {CONFIDENCE:.0%} ({cost['method']})"
            change = "" if cost["change"] is None else f" ({cost['change']:+.0%})"
            ratio = cost["p99_ratio"]
            p99 = "" if ratio is None else f"; p99 {ratio:.2g}× the reference's"
            mine = describe_figure(row["orders_per_s"], unit=" orders/s")
            out.append(
                f"{point_label(row['values'])}: {mine}"
                f" against {describe_figure(ref['orders_per_s'], unit=' orders/s')} with "
                f"{key.rsplit('.', 1)[-1]}={cost['vs']}{change}: {verdict}{p99}."
            )
    return out
