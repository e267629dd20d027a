"""Does a topology fit its cluster? Checked before any actor starts.

Ray schedules an actor only where its ``num_cpus`` and ``memory`` fit, and
an actor that fits nowhere waits without a word. So the run first adds up
what the topology asks for, per actor kind and, on an emulated layout, per
node under the layout's placement, and compares it with what the cluster
has; where it cannot fit, it fails at once, naming the shortfall and the
settings that change it. Ray's CPUs are logical: fractions let actors share
the cores, which is how the shipped configs fit a 2-core machine.
"""

from collections import defaultdict

from lab.config import ExperimentConfig, Layout
from lab.errors import ConfigError
from lab.layouts.emulated import node_resource

__all__ = ["ResourceError", "actors_of", "check_fit"]

_MB = 1024 * 1024
_EPS = 1e-9
#: Actor kinds in creation order, with their config names (``resources.<kind>``).
_KINDS = (("engine", "engine"), ("backend", "backend"), ("loadgen", "generator"))


class ResourceError(ConfigError):
    """The topology asks for more than the cluster has (exit status 2, like a bad config)."""


def actors_of(config: ExperimentConfig) -> list[tuple[str, int, float, int]]:
    """(kind, index, CPUs, memory MB) of every actor, in the order the pipeline starts them."""
    t, r = config.topology, config.resources
    counts = {"engine": t.engines, "backend": t.backends, "loadgen": t.generators}
    out = []
    for kind, config_kind in _KINDS:
        need = r.for_kind(config_kind)
        out += [(kind, i, need.num_cpus, need.memory_mb) for i in range(counts[kind])]
    out.append(("collector", 0, r.collector.num_cpus, r.collector.memory_mb))
    return out


def _breakdown(actors: list) -> str:
    by_kind: dict[str, list] = defaultdict(list)
    for kind, _, cpus, _ in actors:
        by_kind[kind].append(cpus)
    parts = [f"{len(c)} {kind} × {c[0]:g}" for kind, c in by_kind.items() if c and c[0]]
    return ", ".join(parts) or "nothing"


def _advice(config: ExperimentConfig, what: str) -> str:
    kinds = "engine, backend or generator"
    return (
        f"lower resources.<kind>.{what} ({kinds}; Ray's CPUs are logical, so fractions share "
        "the cores), or topology.engines / backends / generators, or choose a layout with "
        f"more (--layout; this config has {', '.join(sorted(config.layouts))})"
    )


def check_fit(
    config: ExperimentConfig, layout: Layout, cluster: dict, nodes: list[dict], placement
) -> None:
    """Raise :class:`ResourceError` when the topology cannot be placed on the cluster.

    ``cluster`` is ``ray.cluster_resources()``, ``nodes`` the ``Resources`` of
    each live node, ``placement`` a fresh ``Placement`` for the layout (it
    deals actors to emulated nodes as the pipeline will).
    """
    actors = actors_of(config)
    cpus = sum(a[2] for a in actors)
    memory = sum(a[3] for a in actors)
    have_cpus = float(cluster.get("CPU", 0.0))
    have_memory = float(cluster.get("memory", 0.0)) / _MB
    if cpus > have_cpus + _EPS:
        raise ResourceError(
            f"the topology needs {cpus:g} CPUs ({_breakdown(actors)}) but the cluster has "
            f"{have_cpus:g}, {cpus - have_cpus:g} short: {_advice(config, 'num_cpus')}"
        )
    if memory > have_memory + _EPS:
        raise ResourceError(
            f"the topology needs {memory:,} MB of memory but the cluster has "
            f"{have_memory:,.0f} MB: {_advice(config, 'memory_mb')}"
        )
    if layout.kind == "emulated":
        _check_nodes(config, layout, actors, nodes, placement)
        return
    biggest = max((float(n.get("CPU", 0.0)) for n in nodes), default=have_cpus)
    for kind, _, need, _ in actors:
        if need > biggest + _EPS:
            raise ResourceError(
                f"one {kind} asks for {need:g} CPUs but the largest node has {biggest:g}: "
                f"{_advice(config, 'num_cpus')}"
            )


def _check_nodes(config, layout, actors, nodes, placement) -> None:
    dealt: dict[int, list] = defaultdict(list)
    for actor in actors:
        dealt[placement.node(actor[0], actor[1])].append(actor)
    for node, placed in sorted(dealt.items()):
        res = next((n for n in nodes if node_resource(node) in n), None)
        have = float(res.get("CPU", 0.0)) if res else 0.0
        need = sum(a[2] for a in placed)
        if need > have + _EPS:
            raise ResourceError(
                f"emulated node {node} gets {need:g} CPUs of actors under placement "
                f"{layout.placement!r} ({_breakdown(placed)}) but has {have:g}: "
                f"{_advice(config, 'num_cpus')}, or layouts.<name>.cpus_per_node"
            )
