"""The pieces of a lab namespace besides Ray, and the pod hardening all pods share.

The Namespace, PostgreSQL for the results (a headless Service and a
StatefulSet with a volume claim) and Redis (a ClusterIP Service and a
Deployment), as :mod:`lab.k8s.render` renders them; and the labels, security
contexts and resources that its Ray pods use too.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "namespace_manifest",
    "postgres_manifests",
    "redis_manifests",
    "gateway_service",
    "redis_url",
    "journal_url",
    "GATEWAY_SECRET",
    "GATEWAY_SECRET_KEY",
    "results_url",
    "common_labels",
    "pod_security",
    "container_security",
    "guaranteed_resources",
    "POSTGRES_SECRET",
    "POSTGRES_SECRET_KEY",
    "PART_OF",
    "POSTGRES_IMAGE",
    "REDIS_IMAGE",
]

#: The Secret holding the PostgreSQL password, created by hand (see k8s/README.md).
POSTGRES_SECRET = "postgres-credentials"
POSTGRES_SECRET_KEY = "password"
#: The Secret holding the gateway's API keys as LAB_API_KEYS's JSON, created by hand.
GATEWAY_SECRET = "gateway-api-keys"
GATEWAY_SECRET_KEY = "api-keys"
#: ``app.kubernetes.io/part-of`` of everything the lab deploys.
PART_OF = "hft-scaling-lab"
POSTGRES_IMAGE = "postgres:17"
REDIS_IMAGE = "redis:7.4"
_DATA_UID = 999  # user "postgres" and user "redis" of the official images


def results_url(namespace: str) -> str:
    """``results.url`` of runs inside the cluster; the password comes from PGPASSWORD."""
    return f"postgresql://lab@postgres.{namespace}.svc:5432/lab"


def redis_url(namespace: str) -> str:
    """``platform.cache`` of runs inside the cluster: the Redis rendered beside them."""
    return f"redis://redis.{namespace}.svc:6379/0"


def journal_url(namespace: str) -> str:
    """``platform.journal`` of runs inside the cluster (PGPASSWORD holds the password)."""
    return results_url(namespace)


def gateway_service(cluster: str, namespace: str, port: int) -> dict[str, Any]:
    """The ClusterIP Service over the worker pods' gateway port.

    Every backend on a pod serves on that one port (``gateway.share_port``), so
    whichever pod and backend a connection reaches takes the order and forwards
    it to the backend owning its account.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{cluster}-gateway",
            "namespace": namespace,
            "labels": common_labels("gateway"),
        },
        "spec": {
            "type": "ClusterIP",  # reachable inside the cluster, or by port-forward
            # KubeRay's own labels of this cluster's worker pods; no backend runs on the head.
            "selector": {"ray.io/cluster": cluster, "ray.io/node-type": "worker"},
            "ports": [{"name": "http", "port": port, "targetPort": "gateway"}],
        },
    }


def common_labels(component: str) -> dict[str, str]:
    """The ``app.kubernetes.io`` labels of one component (``postgres``, ``ray`` ...)."""
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "lab",
    }


def pod_security(uid: int, gid: int) -> dict[str, Any]:
    """A pod's securityContext: this non-root user, and the runtime's seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,  # volumes (the PostgreSQL claim) become writable by the user
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(read_only_root: bool = False) -> dict[str, Any]:
    """A container's securityContext: no capabilities, no privilege escalation."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
    }


def guaranteed_resources(cpu: str, memory_mb: int) -> dict[str, Any]:
    """Requests and limits, equal, of ``cpu`` (a Kubernetes quantity) and ``memory_mb`` MiB."""
    # Requests equal limits: Guaranteed QoS, so latency figures are not skewed by
    # CPU throttling against neighbours or by eviction under memory pressure.
    amounts = {"cpu": cpu, "memory": f"{memory_mb}Mi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _service(name: str, namespace: str, port: int, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "ClusterIP",  # reachable inside the cluster only
        "selector": {"app.kubernetes.io/name": name},
        "ports": [{"name": name, "port": port, "targetPort": name}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": common_labels(name)},
        "spec": spec,
    }


def namespace_manifest(namespace: str) -> dict[str, Any]:
    """The Namespace, with its Pod Security labels."""
    # Our pods meet "restricted"; KubeRay injects containers of its own (the autoscaler,
    # the wait-gcs-ready init container), so it is only warned about, not enforced.
    labels = {
        **common_labels("namespace"),
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": labels},
    }


def postgres_manifests(namespace: str) -> list[dict[str, Any]]:
    """PostgreSQL's headless Service and StatefulSet (user and database ``lab``)."""
    password = {"secretKeyRef": {"name": POSTGRES_SECRET, "key": POSTGRES_SECRET_KEY}}
    container = {
        "name": "postgres",
        "image": POSTGRES_IMAGE,
        "env": [
            {"name": "POSTGRES_USER", "value": "lab"},
            {"name": "POSTGRES_DB", "value": "lab"},
            {"name": "POSTGRES_PASSWORD", "valueFrom": password},
            # A subdirectory: the volume's root may hold lost+found, which initdb rejects.
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgres", "containerPort": 5432}],
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "-U", "lab", "-d", "lab", "-h", "127.0.0.1"]},
            "periodSeconds": 5,
        },
        "resources": guaranteed_resources("1", 1024),
        "securityContext": container_security(read_only_root=True),
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    labels = common_labels("postgres")
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "postgres", "namespace": namespace, "labels": labels},
        "spec": {
            "serviceName": "postgres",
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": pod_security(_DATA_UID, _DATA_UID),
                    "containers": [container],
                    "volumes": [
                        {"name": "run", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": labels},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            ],
        },
    }
    # Headless: the StatefulSet's governing service, and postgres.<ns>.svc names the pod.
    return [_service("postgres", namespace, 5432, headless=True), statefulset]


def redis_manifests(namespace: str) -> list[dict[str, Any]]:
    """Redis's ClusterIP Service and Deployment."""
    labels = common_labels("redis")
    container = {
        "name": "redis",
        "image": REDIS_IMAGE,
        # A bus and a cache, not a store: nothing is written to disk.
        "args": ["--save", "", "--appendonly", "no"],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 5},
        "resources": guaranteed_resources("500m", 512),
        "securityContext": container_security(read_only_root=True),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "redis", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": pod_security(_DATA_UID, _DATA_UID),
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    return [_service("redis", namespace, 6379), deployment]
