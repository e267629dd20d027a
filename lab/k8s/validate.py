"""Checking Kubernetes manifests before they reach a cluster.

``validate_manifests(docs)`` returns one line per problem; none means valid.

1. ``ray.io`` kinds are checked against the openAPIV3Schema of the KubeRay
   CRDs in ``k8s/crds/``. The API server prunes fields a CRD does not declare,
   but ``kubectl apply`` asks for strict field validation (its default since
   Kubernetes 1.27), which rejects them; so every declared object here is made
   closed (``additionalProperties: false``) before checking. The CRDs' CEL
   rules (immutability, ``managedBy``) are not evaluated.
2. A few rules the KubeRay operator applies on admission: names, replica
   bounds, what a RayJob runs on.
3. Every other kind is checked by kubernetes-validate against its strict
   schemas for :data:`KUBERNETES_VERSION`; it reports the first error of a
   document only.
4. The lab's own rules, :func:`lab.k8s.policy.policy_errors`.

``validate_paths`` does the same for YAML files and directories of them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from lab.k8s.policy import policy_errors

__all__ = ["validate_manifests", "validate_paths", "KUBERNETES_VERSION", "CRD_DIR"]

#: The Kubernetes version whose schemas core kinds are checked against.
KUBERNETES_VERSION = "1.32"
#: The KubeRay CRDs (v1.7.0, unmodified), next to the manifests in the repository.
CRD_DIR = Path(__file__).resolve().parents[2] / "k8s" / "crds"

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# KubeRay's limits: service names are the RayCluster's plus up to "-serve-svc" (63 in
# all); a RayJob's cluster is the job's name plus six characters.
_NAME_LIMITS = {"RayCluster": 53, "RayJob": 47, "RayService": 47, "RayCronJob": 47}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are large
# The ObjectMeta fields people write in manifests; anything else there is a typo.
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": False,
}


def validate_manifests(
    docs: Iterable[Any], source: str = "<rendered>", crd_dir: str | Path | None = None
) -> list[str]:
    """``"<source>: <kind>/<name>: <where>: <problem>"`` for each problem in ``docs``."""
    errors: list[str] = []
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            errors.append(
                f"{source}: document {index + 1}: expected a mapping with apiVersion and kind"
            )
            continue
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        label = f"{source}: {doc['kind']}/{metadata.get('name', f'<document {index + 1}>')}"
        if str(doc["apiVersion"]).startswith("ray.io/"):
            problems = _crd_errors(doc, Path(crd_dir or CRD_DIR)) + _kuberay_errors(doc)
        else:
            problems = _core_errors(doc)
        problems += policy_errors(doc)
        errors.extend(f"{label}: {problem}" for problem in problems)
    return errors


def validate_paths(paths: Iterable[str | Path], crd_dir: str | Path | None = None) -> list[str]:
    """Validate YAML files, and the ``*.yaml``/``*.yml`` files directly in directories."""
    errors: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not files:
                errors.append(f"{path}: no .yaml files in this directory")
        elif path.exists():
            files = [path]
        else:
            errors.append(f"{path}: no such file or directory")
            continue
        for file in files:
            try:
                docs = [d for d in yaml.load_all(file.read_text(encoding="utf-8"), _LOADER) if d]
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                errors.append(f"{file}: cannot read YAML: {exc}")
                continue
            errors.extend(validate_manifests(docs, str(file), crd_dir))
    return errors


# ---------------------------------------------------------------------------
# The three checks.


def _core_errors(doc: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{_dotted(exc.absolute_path)}: {_short(exc.message)}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"apiVersion: no Kubernetes {KUBERNETES_VERSION} schema for {doc['apiVersion']}"]
    return []


def _crd_errors(doc: dict[str, Any], crd_dir: Path) -> list[str]:
    validators = _crd_validators(str(crd_dir))
    validator = validators.get((doc["apiVersion"], doc["kind"]))
    if validator is None:
        known = ", ".join(sorted(f"{kind} ({api})" for api, kind in validators)) or "none"
        return [f"apiVersion: no KubeRay CRD in {crd_dir} serves it (known: {known})"]
    found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_dotted(e.absolute_path)}: {_short(e.message)}" for e in found]


def _kuberay_errors(doc: dict[str, Any]) -> list[str]:
    kind, spec = doc["kind"], doc.get("spec") or {}
    name = str((doc.get("metadata") or {}).get("name", ""))
    errors = []
    limit = _NAME_LIMITS.get(kind)
    if limit and not (_DNS_1035.match(name) and len(name) <= limit):
        errors.append(
            f"metadata.name: {name!r} must be a DNS-1035 label (a lowercase letter, then "
            f"letters, digits or '-') of at most {limit} characters"
        )
    if kind == "RayJob" and isinstance(spec, dict):
        selector, cluster = spec.get("clusterSelector"), spec.get("rayClusterSpec")
        if bool(selector) == bool(cluster):
            errors.append("spec: set exactly one of clusterSelector and rayClusterSpec")
        elif selector and not selector.get("ray.io/cluster"):
            errors.append("spec.clusterSelector: must name the cluster under 'ray.io/cluster'")
        if cluster:
            errors.extend(_worker_group_errors("spec.rayClusterSpec", cluster))
    elif kind == "RayCluster" and isinstance(spec, dict):
        errors.extend(_worker_group_errors("spec", spec))
    return errors


def _worker_group_errors(where: str, spec: dict[str, Any]) -> list[str]:
    errors = []
    for index, group in enumerate(spec.get("workerGroupSpecs") or []):
        if not isinstance(group, dict):
            continue
        low, high, replicas = (group.get(k) for k in ("minReplicas", "maxReplicas", "replicas"))
        if isinstance(low, int) and isinstance(high, int) and low > high:
            errors.append(
                f"{where}.workerGroupSpecs[{index}]: minReplicas {low} > maxReplicas {high}"
            )
        elif isinstance(replicas, int) and isinstance(low, int) and isinstance(high, int):
            if not low <= replicas <= high:
                errors.append(
                    f"{where}.workerGroupSpecs[{index}].replicas: {replicas} is outside "
                    f"minReplicas..maxReplicas ({low}..{high})"
                )
    return errors


# ---------------------------------------------------------------------------
# CRD schemas, made strict.


@functools.lru_cache(maxsize=4)
def _crd_validators(crd_dir: str) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator, for every served version of every CRD in ``crd_dir``."""
    validators = {}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        crd = yaml.load(path.read_text(encoding="utf-8"), _LOADER)
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = _OBJECT_META
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(
                    schema
                )
    return validators


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a structural schema in which declared objects take no other fields."""
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {key: _strict(value) for key, value in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        out["items"] = _strict(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [_strict(branch) for branch in schema[key]]
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]  # OpenAPI's nullable, in JSON Schema terms
    return out


def _dotted(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text or "(top level)"


def _short(message: str, limit: int = 300) -> str:
    # jsonschema quotes whole sub-documents in its messages; a line is enough.
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."
