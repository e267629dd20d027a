"""Which stage of a run saturated first: bottleneck attribution from per-actor busy figures.

Pure functions on plain dicts, no I/O. Actors are grouped into stages by name
(``engine-0`` and ``engine-1`` are the ``engine`` stage); a stage is saturated
when its busiest actor is busy at least :data:`SATURATION_BUSY` of the time.

Busy counts a stage's own work spans only. Where no stage is busy but the
host's cores are all taken (many Python processes on few cores, each parsing
HTTP and JSON outside its spans), the processes' CPU says so: :func:`host_load`
adds up, per host, the CPU of the processes the actors run in.
"""

from __future__ import annotations

import re

__all__ = [
    "SATURATION_BUSY",
    "HOST_SATURATED",
    "host_load",
    "host_sentence",
    "OBSERVER_STAGES",
    "stage_of",
    "bottleneck",
    "first_saturated",
]

SATURATION_BUSY = 0.9  #: a stage whose busiest actor is busy this long is saturated
#: A host whose actors' processes use this share of its CPUs has no core to spare.
HOST_SATURATED = 0.9
#: Stages that watch the pipeline rather than carry orders; never named as the bottleneck.
OBSERVER_STAGES = ("collector",)


def stage_of(actor: str) -> str:
    """The stage an actor belongs to: its name without a trailing ``-<index>``."""
    return re.sub(r"-\d+$", "", actor)


def host_load(actors: dict) -> dict:
    """Per host: how busy its CPUs were, and how many of them the actors' processes used.

    ``share``: the host's CPU time that was not idle, all its processes counted
    (Ray's and the driver's too), as the actors there saw it (``host_busy``);
    where no actor measured it, the actors' processes' CPU over the host's CPUs,
    a lower bound. ``cpu_used`` counts each process once: stages that share one
    (the in-process layout) all report that process. ``cpus`` is what a process
    may run on; in a pod with a CPU limit but no cpuset it is the node's.
    """
    used: dict[tuple, float] = {}
    cpus: dict[str, int] = {}
    busy: dict[str, list[float]] = {}
    for name, a in actors.items():
        if not isinstance(a, dict) or a.get("cpu") is None or not a.get("host"):
            continue
        key = (a["host"], a.get("pid", name))
        used[key] = max(used.get(key, 0.0), float(a["cpu"]))
        if a.get("host_cpus"):
            cpus[a["host"]] = int(a["host_cpus"])
        if a.get("host_busy") is not None:
            busy.setdefault(a["host"], []).append(float(a["host_busy"]))
    hosts: dict[str, dict] = {}
    for (host, _), cpu in sorted(used.items()):
        h = hosts.setdefault(host, {"cpus": cpus.get(host), "cpu_used": 0.0, "processes": 0})
        h["cpu_used"] += cpu
        h["processes"] += 1
    for host, h in hosts.items():
        h["cpu_used"] = round(h["cpu_used"], 3)
        seen = busy.get(host)
        if seen:
            h["share"] = round(sum(seen) / len(seen), 4)
        else:
            h["share"] = round(h["cpu_used"] / h["cpus"], 4) if h["cpus"] else None
    return hosts


def _saturated_host(hosts: dict) -> str | None:
    """The host whose CPUs were most used, if at least :data:`HOST_SATURATED`; else None."""
    full = [(h["share"], name) for name, h in hosts.items() if (h["share"] or 0) >= HOST_SATURATED]
    return max(full)[1] if full else None


def host_sentence(host: str, h: dict) -> str:
    return (
        f"{host}'s CPUs were {h['share']:.0%} busy (its {h['processes']} actor processes "
        f"used {h['cpu_used']:.2f} of its {h['cpus']} CPUs)"
    )


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
    hosts = host_load(actors)
    if not working:
        return {
            "stage": None,
            "busy": None,
            "actor": None,
            "stages": summary,
            "hosts": hosts,
            "host_saturated": None,
            "explanation": "No per-actor figures to judge a bottleneck from.",
        }
    stage = max(working, key=lambda k: (working[k]["busy_max"], working[k]["max_queue"]))
    top = working[stage]
    full = _saturated_host(hosts)
    return {
        "stage": stage,
        "busy": top["busy_max"],
        "actor": top["busiest_actor"],
        "stages": summary,
        "hosts": hosts,
        "host_saturated": full,
        "explanation": _explain(stage, top, working, (full, hosts[full]) if full else None),
    }


def _explain(stage: str, top: dict, working: dict, full: tuple[str, dict] | None) -> str:
    others = sorted(((v["busy_max"], k) for k, v in working.items() if k != stage), reverse=True)
    runner_up = f"; next is {others[0][1]} at {others[0][0]:.0%}" if others else ""
    figures = (
        f"{top['busiest_actor']} busy {top['busy_max']:.0%} of the time "
        f"(stage mean {top['busy_mean']:.0%}), queue up to {top['max_queue']:,}"
    )
    if top["busy_max"] < SATURATION_BUSY and full:
        return (
            f"No stage saturated in its own work: the busiest is {stage} ({figures}"
            f"{runner_up}). But {host_sentence(*full)}: the stages wait for a core, and "
            "the host's CPUs are the limit."
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
