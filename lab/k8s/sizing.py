"""How many Ray worker pods a ``kuberay`` layout needs for one experiment.

Every actor of a run asks Ray for ``resources.<kind>.num_cpus`` and
``memory_mb``: ``topology.engines`` engine shards, ``topology.backends``
backends, ``topology.generators`` load generators and one collector. Worker
pods are all alike (the layout's ``cpus_per_node`` and ``memory_mb_per_node``)
and an actor cannot span two pods, so the count is a bin packing (first fit,
largest first), not just the total divided by the pod size. The head pod takes
no actor that needs a CPU (``num-cpus: 0``): it runs the GCS, the dashboard and
the job's driver.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from lab.config import ActorKind, ExperimentConfig, Layout
from lab.errors import ConfigError

__all__ = ["WorkerSizing", "ActorRequest", "actor_requests", "size_workers", "RAY_RESERVED_MB"]

#: MiB of a worker pod kept for Ray itself (raylet, idle workers), never offered to actors.
RAY_RESERVED_MB = 512


class ActorRequest(NamedTuple):
    """What the actors of one kind ask Ray for, each."""

    kind: ActorKind
    count: int
    num_cpus: float
    memory_mb: int


class WorkerSizing(NamedTuple):
    """The worker group of a RayCluster, sized for one experiment on one layout."""

    cpus_needed: float  #: CPUs all actors ask for together
    memory_mb_needed: int  #: MiB all actors ask for together (0 when none set memory_mb)
    pods_needed: int  #: worker pods the actors pack into
    replicas: int  #: worker pods at start
    min_replicas: int
    max_replicas: int
    pod_cpus: int  #: CPUs of one worker pod (request = limit = Ray's num-cpus)
    pod_memory_mb: int  #: memory of one worker pod (request = limit)
    ray_memory_mb: int  #: of which Ray offers actors this much (its ``memory`` resource)
    object_store_mb: int  #: of which the object store takes this much


def actor_requests(config: ExperimentConfig) -> list[ActorRequest]:
    """The actors of one run of ``config``, by kind (the pipeline starts one collector)."""
    t, r = config.topology, config.resources
    counts: dict[ActorKind, int] = {
        "engine": t.engines,
        "backend": t.backends,
        "generator": t.generators,
        "collector": 1,
    }
    return [
        ActorRequest(kind, count, r.for_kind(kind).num_cpus, r.for_kind(kind).memory_mb)
        for kind, count in counts.items()
    ]


def size_workers(config: ExperimentConfig, layout: Layout, name: str) -> WorkerSizing:
    """Size the worker group of layout ``name`` for ``config``; ConfigError if it cannot fit."""
    where = f"{config.source}: layouts.{name}"
    kuberay = layout.kuberay
    if kuberay is None:  # the caller checks the kind; this keeps type checkers honest
        raise ConfigError(f"{where}: not a kuberay layout")
    if not float(layout.cpus_per_node).is_integer():
        # Ray's --num-cpus is an integer, and whole CPUs give the pod Guaranteed QoS
        # (and exclusive cores under the kubelet's static CPU manager).
        raise ConfigError(
            f"{where}.cpus_per_node: a KubeRay worker pod needs a whole number of CPUs, "
            f"got {layout.cpus_per_node:g}"
        )
    pod_cpus = int(layout.cpus_per_node)
    ray_memory_mb = layout.memory_mb_per_node - layout.object_store_mb - RAY_RESERVED_MB
    if ray_memory_mb < 1:
        raise ConfigError(
            f"{where}.memory_mb_per_node: {layout.memory_mb_per_node} MiB leaves nothing for "
            f"actors after the object store ({layout.object_store_mb} MiB) and "
            f"{RAY_RESERVED_MB} MiB kept for Ray"
        )

    requests = actor_requests(config)
    items: list[tuple[int, int]] = []  # (millicores, MiB) of each actor that needs either
    for req in requests:
        milli = _millicores(req.num_cpus)
        if milli > pod_cpus * 1000:
            raise ConfigError(
                f"{config.source}: resources.{req.kind}.num_cpus: {req.num_cpus:g} CPUs do not "
                f"fit a worker pod of layouts.{name} ({pod_cpus} CPUs); an actor cannot span pods"
            )
        if req.memory_mb > ray_memory_mb:
            raise ConfigError(
                f"{config.source}: resources.{req.kind}.memory_mb: {req.memory_mb} MiB do not fit "
                f"a worker pod of layouts.{name} ({ray_memory_mb} MiB for actors)"
            )
        if milli or req.memory_mb:  # actors asking for nothing can run anywhere, even the head
            items.extend([(milli, req.memory_mb)] * req.count)
    pods_needed = _first_fit_decreasing(items, pod_cpus * 1000, ray_memory_mb)

    replicas = max(pods_needed, kuberay.worker_replicas)
    if kuberay.autoscaling:
        low, high = kuberay.min_replicas, kuberay.max_replicas
        if replicas > high:
            raise ConfigError(
                f"{where}.kuberay.max_replicas: {high} is below the {replicas} worker pods this "
                f"experiment needs ({_cpus(items):g} CPUs in pods of {pod_cpus}); "
                "raise it or the pod size"
            )
    else:
        low = high = replicas  # without the autoscaler, KubeRay keeps exactly `replicas`
    return WorkerSizing(
        cpus_needed=sum(r.count * _millicores(r.num_cpus) for r in requests) / 1000,
        memory_mb_needed=sum(r.count * r.memory_mb for r in requests),
        pods_needed=pods_needed,
        replicas=replicas,
        min_replicas=low,
        max_replicas=high,
        pod_cpus=pod_cpus,
        pod_memory_mb=layout.memory_mb_per_node,
        ray_memory_mb=ray_memory_mb,
        object_store_mb=layout.object_store_mb,
    )


def _millicores(cpus: float) -> int:
    # round() first: 0.1 * 1000 is 100.00000000000001, which must not become 101.
    return math.ceil(round(cpus * 1000, 6))


def _cpus(items: list[tuple[int, int]]) -> float:
    return sum(milli for milli, _ in items) / 1000


def _first_fit_decreasing(items: list[tuple[int, int]], cpu_cap: int, mem_cap: int) -> int:
    """Pods needed to hold ``items`` (millicores, MiB), each pod ``cpu_cap`` x ``mem_cap``."""
    free: list[list[int]] = []  # per pod: [millicores, MiB] still free
    for milli, mem in sorted(items, reverse=True):
        for pod in free:
            if pod[0] >= milli and pod[1] >= mem:
                pod[0] -= milli
                pod[1] -= mem
                break
        else:
            free.append([cpu_cap - milli, mem_cap - mem])
    return len(free)
