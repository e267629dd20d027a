"""The lab's own rules for Kubernetes manifests, on top of their schemas.

A manifest can be valid Kubernetes and still not be one we deploy. These
rules hold for rendered and hand-written manifests alike:

- every pod runs as a non-root user (``runAsNonRoot`` and a non-zero
  ``runAsUser``), and every container drops ALL capabilities and cannot
  escalate privileges;
- every container (init containers and KubeRay's autoscaler too) has CPU and
  memory requests and limits;
- nothing is exposed outside the cluster: no NodePort or LoadBalancer
  Service, no external IPs, no Ingress, no Ray head service or ingress opened
  by a RayCluster;
- secrets are referenced, never written down: a Secret may only carry
  placeholders such as ``<password>``, and an environment variable named like
  a secret, or a URL with a password in it, must come from ``valueFrom``.

A pod spec is found wherever a mapping has a ``containers`` list, so the
rules cover Deployments, StatefulSets, Jobs, RayClusters, RayJobs (and their
submitter pods) without knowing each kind's layout.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["policy_errors", "pod_specs"]

_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY", re.IGNORECASE)
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s:]*:[^/@\s]+@")
_PLACEHOLDER = re.compile(r"^<[^<>]+>$")
_EXPOSED_TYPES = ("NodePort", "LoadBalancer")


def policy_errors(doc: dict[str, Any]) -> list[str]:
    """``"<where>: <what is wrong>"`` for each rule ``doc`` breaks."""
    errors: list[str] = []
    kind = doc.get("kind")
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    if kind == "Ingress":
        errors.append("kind: an Ingress exposes services outside the cluster; use port-forward")
    if kind == "Service":
        if spec.get("type") in _EXPOSED_TYPES:
            errors.append(f"spec.type: {spec['type']} exposes the service outside the cluster")
        if spec.get("externalIPs"):
            errors.append("spec.externalIPs: exposes the service outside the cluster")
    if kind == "Secret":
        errors.extend(_secret_errors(doc))
    for path, pod in pod_specs(doc):
        errors.extend(_pod_errors(path, pod))
    for path, node in _mappings(doc):
        if "headGroupSpec" in node:
            errors.extend(_ray_cluster_errors(path, node))
    return errors


def pod_specs(doc: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every pod spec in ``doc`` (a mapping with a ``containers`` list), with its path."""
    return [
        (path, node) for path, node in _mappings(doc) if isinstance(node.get("containers"), list)
    ]


def _mappings(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _mappings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _mappings(value, f"{path}[{index}]")


def _pod_errors(path: str, pod: dict[str, Any]) -> list[str]:
    errors = []
    pod_security = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            errors.append(f"{path}.{flag}: pods do not share the node's namespaces")
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(group) or []):
            if isinstance(container, dict):
                where = f"{path}.{group}[{index}]"
                errors.extend(_container_errors(where, container, pod_security))
    return errors


def _container_errors(where: str, container: dict[str, Any], pod_security: dict) -> list[str]:
    errors = _resource_errors(where, container.get("resources"))
    security = container.get("securityContext") or {}
    non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    if non_root is not True:
        errors.append(f"{where}: runAsNonRoot must be true (pod or container securityContext)")
    if not isinstance(user, int) or user == 0:
        errors.append(f"{where}: runAsUser must be a non-zero user id (pod or container)")
    errors.extend(_privilege_errors(f"{where}.securityContext", security))
    for index, env in enumerate(container.get("env") or []):
        if isinstance(env, dict) and "value" in env:
            errors.extend(_env_errors(f"{where}.env[{index}]", env))
    return errors


def _privilege_errors(where: str, security: dict[str, Any]) -> list[str]:
    errors = []
    if security.get("privileged"):
        errors.append(f"{where}.privileged: must not be true")
    if security.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{where}.allowPrivilegeEscalation: must be false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        errors.append(f"{where}.capabilities.drop: must contain ALL")
    return errors


def _resource_errors(where: str, resources: Any) -> list[str]:
    resources = resources if isinstance(resources, dict) else {}
    errors = []
    for part in ("requests", "limits"):
        given = resources.get(part) or {}
        missing = [name for name in ("cpu", "memory") if name not in given]
        if missing:
            errors.append(f"{where}.resources.{part}: missing {' and '.join(missing)}")
    return errors


def _env_errors(where: str, env: dict[str, Any]) -> list[str]:
    name, value = str(env.get("name", "")), str(env.get("value", ""))
    if _SECRET_NAME.search(name) and value and not _PLACEHOLDER.match(value):
        return [f"{where}: {name} is a secret; take it from valueFrom.secretKeyRef"]
    if _URL_WITH_PASSWORD.search(value):
        return [f"{where}: {name} holds a password in a URL; pass it as PGPASSWORD or similar"]
    return []


def _secret_errors(doc: dict[str, Any]) -> list[str]:
    errors = []
    for field in ("data", "stringData"):
        for key, value in (doc.get(field) or {}).items():
            text = _decoded(value) if field == "data" else str(value)
            if text is None or not _PLACEHOLDER.match(text.strip()):
                errors.append(
                    f"{field}.{key}: a Secret may only hold a placeholder such as <password>; "
                    "create the real one with kubectl create secret"
                )
    return errors


def _decoded(value: Any) -> str | None:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _ray_cluster_errors(path: str, spec: dict[str, Any]) -> list[str]:
    where = f"{path}." if path else ""
    head = spec.get("headGroupSpec") or {}
    errors = []
    if head.get("serviceType") in _EXPOSED_TYPES:
        errors.append(f"{where}headGroupSpec.serviceType: {head['serviceType']} exposes the head")
    if head.get("enableIngress"):
        errors.append(f"{where}headGroupSpec.enableIngress: exposes the dashboard; port-forward")
    if spec.get("enableInTreeAutoscaling"):
        # KubeRay adds the autoscaler container to the head pod from these options.
        options = spec.get("autoscalerOptions") or {}
        errors.extend(_resource_errors(f"{where}autoscalerOptions", options.get("resources")))
        security = options.get("securityContext") or {}
        errors.extend(_privilege_errors(f"{where}autoscalerOptions.securityContext", security))
    return errors
