"""KubeRay manifests for a ``kuberay`` layout, as written by ``lab k8s render``.

``render_manifests`` is pure: from a config, a layout name and the config's
path inside the image it returns the documents to apply, in this order:

1. the Namespace, PostgreSQL and Redis (:mod:`lab.k8s.services`);
2. the RayCluster: a head pod and one worker group sized by :mod:`lab.k8s.sizing`;
3. the RayJob running ``python -m lab run CONFIG --layout NAME`` on that
   RayCluster (``clusterSelector``; k8s/README.md says why it does not embed one),
   or ``python -m lab serve CONFIG --layout NAME`` when rendered to serve;
4. where the gateways run (``topology.transport: http``, or serving), the
   ClusterIP Service ``<name>-gateway`` over the worker pods' gateway port.

A config that turns on ``platform.cache`` or ``platform.journal`` gets the
Redis and PostgreSQL rendered beside it instead of the ones it names.

Nothing is exposed outside the cluster: every Service, the Ray head's too, is
ClusterIP and there is no Ingress. The PostgreSQL password is in the Secret
``postgres-credentials`` (key ``password``) that whoever deploys creates with
``kubectl create secret``; the manifests only reference it. Every pod runs as
a non-root user without privilege escalation or capabilities, and every
container has CPU and memory requests and limits. ``validate_manifests``
(:mod:`lab.k8s.validate`) checks all of that, and the schemas.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from lab.config import ExperimentConfig, Layout, for_layout
from lab.errors import ConfigError
from lab.k8s.services import (
    GATEWAY_SECRET,
    GATEWAY_SECRET_KEY,
    POSTGRES_SECRET,
    POSTGRES_SECRET_KEY,
    common_labels,
    container_security,
    gateway_service,
    guaranteed_resources,
    journal_url,
    namespace_manifest,
    pod_security,
    postgres_manifests,
    redis_manifests,
    redis_url,
    results_url,
)
from lab.k8s.sizing import WorkerSizing, size_workers
from lab.k8s.validate import validate_manifests

__all__ = [
    "render_manifests",
    "write_manifests",
    "validate_manifests",
    "manifest_file_name",
    "resource_name",
    "POSTGRES_SECRET",
    "POSTGRES_SECRET_KEY",
    "APP_DIR",
    "RAY_VERSION",
]

#: Where k8s/Dockerfile puts the project; the RayJob's config path is relative to it.
APP_DIR = "/home/ray/lab"
#: The Ray of k8s/Dockerfile's base image, for images whose tag does not say.
RAY_VERSION = "2.60.0"

_LABEL_PREFIX = "hft-scaling-lab"
_RAY_UID, _RAY_GID = 1000, 100  # user "ray", group "users" of the rayproject/ray images
_JOB_SLACK_S = 1800  # start-up (100+ pods, image pulls) and result storage on top of the run
# KubeRay appends "-head-svc" and the like to a RayCluster's name, and five characters
# to a RayJob's; names up to 47 characters stay within its limits.
_NAME_MAX = 47
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def render_manifests(
    config: ExperimentConfig, layout_name: str, config_path: str, serve: bool = False
) -> list[dict[str, Any]]:
    """The manifests of ``config`` on kuberay layout ``layout_name``, in apply order.

    ``config_path`` is the config's path inside the image, relative to
    :data:`APP_DIR` (e.g. ``configs/x.yaml``): the RayJob runs
    ``python -m lab run <config_path> --layout <layout_name>`` (``lab serve``
    with ``serve``). The layout's ``overrides`` are applied before the cluster
    is sized.
    """
    layout = config.layout(layout_name)  # ConfigError naming the layouts if unknown
    if layout.kind != "kuberay":
        raise ConfigError(
            f"{config.source}: layouts.{layout_name}.kind: is {layout.kind!r}; only "
            "'kuberay' layouts have Kubernetes manifests"
        )
    config = for_layout(config, layout_name)
    layout = config.layout(layout_name)
    assert layout.kuberay is not None  # a kuberay layout always has its settings
    namespace = layout.kuberay.namespace
    if not _DNS_LABEL.match(namespace):
        raise ConfigError(
            f"{config.source}: layouts.{layout_name}.kuberay.namespace: {namespace!r} is not a "
            "Kubernetes namespace name (lowercase letters, digits and '-', at most 63)"
        )
    sizing = size_workers(config, layout, layout_name)
    name = resource_name(config.experiment.name, layout_name)
    labels = {
        **common_labels("ray"),
        f"{_LABEL_PREFIX}/experiment": _label_value(config.experiment.name),
        f"{_LABEL_PREFIX}/layout": _label_value(layout_name),
    }
    command = "serve" if serve else "run"
    entrypoint = (
        f"python -m lab {command} {shlex.quote(config_path)} --layout {shlex.quote(layout_name)}"
    )
    gateway_port = _gateway_port(config, layout_name, serve)
    deadline = None if serve else config.experiment.duration_s  # a server runs until stopped
    docs = [
        namespace_manifest(namespace),
        *postgres_manifests(namespace),
        *redis_manifests(namespace),
        _ray_cluster(name, namespace, labels, layout, sizing, config, gateway_port),
        _ray_job(name, namespace, labels, layout, entrypoint, deadline),
    ]
    if gateway_port is not None:
        docs.append(gateway_service(name, namespace, gateway_port))
    # Plain data sharing nothing (the label maps are reused above): callers may edit
    # one document freely, and the YAML gets no anchors.
    return json.loads(json.dumps(docs))


def write_manifests(docs: Iterable[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write each document to ``out_dir/<NN>-<kind>-<name>.yaml``; the paths, in apply order.

    The numbered names sort in apply order, so ``kubectl apply -f out_dir``
    creates the Namespace first. Other files in ``out_dir`` are left alone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, doc in enumerate(docs):
        path = out / manifest_file_name(index, doc)
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def manifest_file_name(index: int, doc: dict[str, Any]) -> str:
    """``03-service-redis.yaml``: the position, kind and name of one document."""
    kind = str(doc.get("kind", "object")).lower()
    name = str(doc.get("metadata", {}).get("name", "unnamed"))
    return f"{index:02d}-{kind}-{name}.yaml"


def resource_name(experiment: str, layout: str) -> str:
    """The RayCluster and RayJob name: ``<experiment>-<layout>`` as a DNS-1035 label."""
    name = re.sub(r"[^a-z0-9]+", "-", f"{experiment}-{layout}".lower()).strip("-")
    if not name[:1].isalpha():
        name = f"lab-{name}".rstrip("-")
    if len(name) > _NAME_MAX:  # keep distinct long names distinct
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        name = f"{name[: _NAME_MAX - 7].rstrip('-')}-{digest}"
    return name


def _gateway_port(config: ExperimentConfig, layout_name: str, serve: bool) -> int | None:
    """The port every worker pod's gateways share, or None where no gateway runs."""
    if not serve and config.topology.transport != "http":
        return None
    gateway = config.gateway
    if not (gateway.port and gateway.share_port):
        raise ConfigError(
            f"{config.source}: layouts.{layout_name}: the gateways on KubeRay share one port "
            "per pod, behind a Service: give the layout overrides gateway.port: 8000 and "
            "gateway.share_port: true"
        )
    return gateway.port


def _platform_env(config: ExperimentConfig, namespace: str) -> list[dict[str, Any]]:
    """The in-cluster Redis and PostgreSQL, for the stores the config turns on."""
    env = []
    if config.platform.cache is not None:
        env.append({"name": "LAB_PLATFORM__CACHE", "value": redis_url(namespace)})
    if config.platform.journal is not None:
        env.append({"name": "LAB_PLATFORM__JOURNAL", "value": journal_url(namespace)})
    return env


def _postgres_password() -> dict[str, Any]:
    ref = {"secretKeyRef": {"name": POSTGRES_SECRET, "key": POSTGRES_SECRET_KEY}}
    return {"name": "PGPASSWORD", "valueFrom": ref}


def _ray_cluster(
    name: str,
    namespace: str,
    labels: dict[str, str],
    layout: Layout,
    sizing: WorkerSizing,
    config: ExperimentConfig,
    gateway_port: int | None,
) -> dict[str, Any]:
    kuberay = layout.kuberay
    assert kuberay is not None
    mib = 1024 * 1024
    head_cpus, head_memory_mb = _head_size(sizing.replicas)
    head_env = [
        # The job's driver runs on the head pod and stores the results there.
        {
            "name": "LAB_RESULTS__URL",
            "value": results_url(namespace),
        },
        _postgres_password(),
        *_platform_env(config, namespace),
    ]
    # The backends on the workers write the journal with the same password.
    worker_env = [_postgres_password()] if config.platform.journal is not None else []
    worker_ports = None
    if gateway_port is not None:
        worker_ports = [{"name": "gateway", "containerPort": gateway_port}]
        # The driver reads the keys (LAB_API_KEYS) and hands them to the gateways.
        keys = {"name": GATEWAY_SECRET, "key": GATEWAY_SECRET_KEY, "optional": True}
        head_env.append({"name": "LAB_API_KEYS", "valueFrom": {"secretKeyRef": keys}})
    head = {
        "serviceType": "ClusterIP",  # the dashboard is reached by kubectl port-forward only
        "enableIngress": False,
        "rayStartParams": {
            "dashboard-host": "0.0.0.0",  # inside the pod, so the ClusterIP service reaches it
            "num-cpus": "0",  # no actors on the head: it carries the GCS and the driver
            "object-store-memory": str(min(sizing.object_store_mb, head_memory_mb // 4) * mib),
        },
        "template": _ray_pod(
            "ray-head",
            kuberay.image,
            guaranteed_resources(str(head_cpus), head_memory_mb),
            labels,
            env=head_env,
            ports=[
                {"name": "gcs-server", "containerPort": 6379},
                {"name": "dashboard", "containerPort": 8265},
                {"name": "client", "containerPort": 10001},
            ],
        ),
    }
    workers = {
        "groupName": "workers",
        "replicas": sizing.replicas,
        "minReplicas": sizing.min_replicas,
        "maxReplicas": sizing.max_replicas,
        # Stated rather than left to KubeRay's guess from the limits, so Ray schedules
        # exactly what lab.k8s.sizing packed.
        "rayStartParams": {
            "num-cpus": str(sizing.pod_cpus),
            "memory": str(sizing.ray_memory_mb * mib),
            "object-store-memory": str(sizing.object_store_mb * mib),
        },
        "template": _ray_pod(
            "ray-worker",
            kuberay.image,
            guaranteed_resources(str(sizing.pod_cpus), sizing.pod_memory_mb),
            labels,
            env=worker_env,
            ports=worker_ports,
        ),
    }
    spec: dict[str, Any] = {
        "rayVersion": _ray_version(kuberay.image),
        "enableInTreeAutoscaling": kuberay.autoscaling,
    }
    if kuberay.autoscaling:
        spec["autoscalerOptions"] = {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": 60,
            "resources": guaranteed_resources("500m", 512),
            "securityContext": container_security(),
        }
    spec["headGroupSpec"] = head
    spec["workerGroupSpecs"] = [workers]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def _ray_pod(
    container_name: str,
    image: str,
    resources: dict[str, Any],
    labels: dict[str, str],
    env: list[dict[str, Any]] | None = None,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": container_name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "workingDir": APP_DIR,
        "resources": resources,
        "securityContext": container_security(),
    }
    if env:
        container["env"] = env
    if ports:
        container["ports"] = ports
    return {
        "metadata": {"labels": labels},
        "spec": {
            "securityContext": pod_security(_RAY_UID, _RAY_GID),
            "containers": [container],
        },
    }


def _ray_job(
    name: str,
    namespace: str,
    labels: dict[str, str],
    layout: Layout,
    entrypoint: str,
    duration_s: float | None,
) -> dict[str, Any]:
    kuberay = layout.kuberay
    assert kuberay is not None
    resources = guaranteed_resources("500m", 512)
    submitter = _ray_pod("ray-job-submitter", kuberay.image, resources, labels)
    # KubeRay fills in the submitter's command (`ray job submit ...`) when it has none.
    submitter["spec"]["restartPolicy"] = "Never"
    spec: dict[str, Any] = {
        "entrypoint": entrypoint,
        # Run on the RayCluster above (ray.io/cluster is KubeRay's name label).
        "clusterSelector": {"ray.io/cluster": name},
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": False,  # the cluster is not the job's to delete
    }
    if duration_s is not None:  # a run has an end; `lab serve` serves until deleted
        spec["activeDeadlineSeconds"] = math.ceil(duration_s) + _JOB_SLACK_S
    spec["submitterPodTemplate"] = submitter
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def _head_size(workers: int) -> tuple[int, int]:
    """CPUs and MiB of the head pod: the GCS and the driver grow with the cluster."""
    cpus = 2 if workers <= 16 else 4 if workers <= 64 else 8
    return cpus, cpus * 2048


def _ray_version(image: str) -> str:
    found = re.match(r"^(?:docker\.io/)?rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)", image)
    return found.group(1) if found else RAY_VERSION
