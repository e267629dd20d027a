"""Which stage of a run saturated first: bottleneck attribution from per-actor busy figures.

Pure functions on plain dicts, no I/O. Actors are grouped into stages by name
(``engine-0`` and ``engine-1`` are the ``engine`` stage); a stage is saturated
when its busiest actor is busy at least :data:`SATURATION_BUSY` of the time.
"""

from __future__ import annotations

import re

__all__ = [
    "SATURATION_BUSY",
    "OBSERVER_STAGES",
    "stage_of",
    "bottleneck",
    "first_saturated",
]

SATURATION_BUSY = 0.9  #: a stage whose busiest actor is busy this long is saturated
#: Stages that watch the pipeline rather than carry orders; never named as the bottleneck.
OBSERVER_STAGES = ("collector",)


def stage_of(actor: str) -> str:
    """The stage an actor belongs to: its name without a trailing ``-<index>``."""
    return re.sub(r"-\d+$", "", actor)


def bottleneck(actors: dict) -> dict:
    """Which stage of one run saturated first, from its per-actor summary.

    Actors are grouped by :func:`stage_of`. The stage whose busiest actor has the
    highest busy fraction is named (ties go to the deeper queue); observer stages
    such as the collector are listed but never named. Actors without a ``busy``
    figure (those that errored) are ignored.
    """
    stages: dict[str, dict] = {}
    for name, a in sorted(actors.items()):
        if not isinstance(a, dict) or a.get("busy") is None:
            continue
        s = stages.setdefault(stage_of(name), {"actors": 0, "busy": [], "max_queue": 0})
        s["actors"] += 1
        s["busy"].append((float(a["busy"]), name))
        s["max_queue"] = max(s["max_queue"], int(a.get("max_queue") or 0))
    summary = {}
    for stage, s in stages.items():
        busy_max, hottest = max(s["busy"])
        summary[stage] = {
            "actors": s["actors"],
            "busy_mean": round(sum(b for b, _ in s["busy"]) / len(s["busy"]), 4),
            "busy_max": round(busy_max, 4),
            "busiest_actor": hottest,
            "max_queue": s["max_queue"],
        }
    working = {k: v for k, v in summary.items() if k not in OBSERVER_STAGES}
    if not working:
        return {
            "stage": None,
            "busy": None,
            "actor": None,
            "stages": summary,
            "explanation": "No per-actor figures to judge a bottleneck from.",
        }
    stage = max(working, key=lambda k: (working[k]["busy_max"], working[k]["max_queue"]))
    top = working[stage]
    return {
        "stage": stage,
        "busy": top["busy_max"],
        "actor": top["busiest_actor"],
        "stages": summary,
        "explanation": _explain(stage, top, working),
    }


def _explain(stage: str, top: dict, working: dict) -> str:
    others = sorted(((v["busy_max"], k) for k, v in working.items() if k != stage), reverse=True)
    runner_up = f"; next is {others[0][1]} at {others[0][0]:.0%}" if others else ""
    figures = (
        f"{top['busiest_actor']} busy {top['busy_max']:.0%} of the time "
        f"(stage mean {top['busy_mean']:.0%}), queue up to {top['max_queue']:,}"
    )
    if top["busy_max"] < SATURATION_BUSY:
        return (
            f"No stage saturated: the busiest is {stage} ({figures}{runner_up}). "
            "The limit is elsewhere, e.g. the offered rate, batching waits or the network."
        )
    if stage == "loadgen":
        return (
            f"The load generators saturated ({figures}{runner_up}): they, not the "
            "platform, limit throughput; add generators before trusting the figures."
        )
    return f"{stage} saturated first: {figures}{runner_up}."


def first_saturated(points: list[dict], threshold: float = SATURATION_BUSY) -> dict:
    """The smallest N at which some stage's busiest actor reaches ``threshold`` busy.

    ``points`` are dicts with ``n`` and ``actors`` (as in :func:`summarize_sweep`).
    Returns {"n", "stage", "busy", "threshold", "explanation"}; n and stage are None
    when nothing saturated.
    """
    for point in sorted(points, key=lambda p: p["n"]):
        found = bottleneck(point.get("actors") or {})
        if found["stage"] is not None and found["busy"] >= threshold:
            return {
                "n": point["n"],
                "stage": found["stage"],
                "busy": found["busy"],
                "threshold": threshold,
                "explanation": f"At N={point['n']:g}: {found['explanation']}",
            }
    last = max(points, key=lambda p: p["n"], default=None)
    note = f"No stage reached {threshold:.0%} busy at any N."
    if last is not None:
        found = bottleneck(last.get("actors") or {})
        note += f" At the largest N={last['n']:g}: {found['explanation']}"
    return {"n": None, "stage": None, "busy": None, "threshold": threshold, "explanation": note}
