"""KubeRay manifests: rendering every shipped kuberay layout, validating, the rules, the CLI."""

import copy
import hashlib
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lab.cli.k8s import k8s_app
from lab.config import ExperimentConfig, config_from_dict, for_layout, load_config
from lab.errors import ConfigError
from lab.k8s.render import (
    APP_DIR,
    POSTGRES_SECRET,
    RAY_VERSION,
    render_manifests,
    resource_name,
    validate_manifests,
    write_manifests,
)
from lab.k8s.sizing import size_workers
from lab.k8s.validate import validate_paths

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "k8s" / "base"


def _shipped_cases() -> list[tuple[str, str]]:
    """(config path relative to the repo, layout name) for every kuberay layout shipped."""
    cases = []
    for path in sorted((REPO / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        if set(raw) <= {"layouts", "include"}:  # a fragment for `include:`, not an experiment
            continue
        config = load_config(path, env={})
        for name, layout in config.layouts.items():
            if layout.kind == "kuberay":
                cases.append((path.relative_to(REPO).as_posix(), name))
    return cases


CASES = _shipped_cases()


def _render(config_path: str, layout: str) -> list[dict]:
    return render_manifests(load_config(REPO / config_path, env={}), layout, config_path)


def _config(text: str = "") -> ExperimentConfig:
    return config_from_dict(yaml.safe_load(text) or {}, source="configs/t.yaml")


def _one(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def _pods(node, path=""):
    """Every pod spec (a mapping with a `containers` list) anywhere in ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield path, node
        for key, value in node.items():
            yield from _pods(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _pods(value, f"{path}[{i}]")


@pytest.fixture(scope="module")
def quickstart_cloud() -> list[dict]:
    return _render("configs/quickstart.yaml", "cloud-100")


# ---------------------------------------------------------------------------
# Everything shipped validates.


def test_the_shipped_configs_have_the_kuberay_layouts():
    assert ("configs/quickstart.yaml", "cloud-100") in CASES
    assert ("configs/quickstart.yaml", "performance-pod") in CASES


@pytest.mark.parametrize(("config_path", "layout"), CASES)
def test_every_shipped_kuberay_layout_renders_valid_manifests(config_path, layout):
    docs = _render(config_path, layout)
    http = load_config(REPO / config_path, env={}).topology.transport == "http"
    gateway = ["Service"] if http else []
    assert [d["kind"] for d in docs] == [
        "Namespace", "Service", "StatefulSet", "Service", "Deployment", "RayCluster", "RayJob",
        *gateway,
    ]  # fmt: skip
    assert validate_manifests(docs) == []


def test_the_static_base_manifests_validate():
    assert validate_paths([BASE]) == []
    kinds = [
        d["kind"] for f in sorted(BASE.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
    ]
    assert {"Namespace", "StatefulSet", "Deployment", "RayCluster"} <= set(kinds)


def test_the_static_base_services_match_what_render_writes(quickstart_cloud):
    # Hand-written files keep their comments; this keeps them from drifting.
    static = [d for f in sorted(BASE.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    assert [d for d in static if d["kind"] != "RayCluster"] == quickstart_cloud[:5]


def test_the_crds_are_the_unmodified_kuberay_ones():
    crds = REPO / "k8s" / "crds"
    listed = dict(
        reversed(m.groups())
        for m in re.finditer(r"^([0-9a-f]{64})\s+(\S+)$", (crds / "SOURCE.txt").read_text(), re.M)
    )
    assert set(listed) == {p.name for p in crds.glob("*.yaml")}
    for name, digest in listed.items():
        assert hashlib.sha256((crds / name).read_bytes()).hexdigest() == digest, name


def test_the_dockerfile_matches_what_the_manifests_assume():
    text = (REPO / "k8s" / "Dockerfile").read_text()
    assert re.search(rf"^FROM rayproject/ray:{re.escape(RAY_VERSION)}-py311$", text, re.M)
    assert re.search(rf"^WORKDIR {re.escape(APP_DIR)}$", text, re.M)
    assert re.search(r"^RUN pip install .*\.", text, re.M)


# ---------------------------------------------------------------------------
# The validator catches mistakes.


def test_an_unknown_field_in_a_raycluster_spec_is_an_error(quickstart_cloud):
    docs = copy.deepcopy(quickstart_cloud)
    _one(docs, "RayCluster")["spec"]["headGroupSpec"]["rayStartParam"] = {}
    (error,) = validate_manifests(docs)
    assert "RayCluster/quickstart-cloud-100: spec.headGroupSpec:" in error
    assert "'rayStartParam' was unexpected" in error


def test_a_wrong_type_in_a_raycluster_is_an_error(quickstart_cloud):
    docs = copy.deepcopy(quickstart_cloud)
    _one(docs, "RayCluster")["spec"]["workerGroupSpecs"][0]["replicas"] = "five"
    assert validate_manifests(docs) == [
        "<rendered>: RayCluster/quickstart-cloud-100: spec.workerGroupSpecs[0].replicas: "
        "'five' is not of type 'integer'"
    ]


def test_an_unknown_field_deep_in_a_rayjob_pod_is_an_error(quickstart_cloud):
    docs = copy.deepcopy(quickstart_cloud)
    pod = _one(docs, "RayJob")["spec"]["submitterPodTemplate"]["spec"]
    pod["containers"][0]["imagePullPolcy"] = "Always"
    (error,) = validate_manifests(docs)
    assert "spec.submitterPodTemplate.spec.containers[0]" in error and "imagePullPolcy" in error


def test_a_misspelt_field_in_a_deployment_is_an_error(quickstart_cloud):
    docs = copy.deepcopy(quickstart_cloud)
    _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resourses"] = {}
    (error,) = validate_manifests(docs)
    assert error.startswith("<rendered>: Deployment/redis: spec.template.spec.containers[0]: ")
    assert "'resourses' was unexpected" in error


def test_an_unknown_kind_or_a_document_without_one_is_an_error():
    errors = validate_manifests(
        [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, ["x"]]
    )
    assert "Widget/w: apiVersion: no Kubernetes 1.32 schema for example.com/v1" in errors[0]
    assert "document 2: expected a mapping with apiVersion and kind" in errors[1]


def test_kuberay_admission_rules_are_checked(quickstart_cloud):
    docs = copy.deepcopy(quickstart_cloud)
    cluster, job = _one(docs, "RayCluster"), _one(docs, "RayJob")
    cluster["metadata"]["name"] = "9-" + "x" * 60
    cluster["spec"]["workerGroupSpecs"][0]["minReplicas"] = 50
    job["spec"]["rayClusterSpec"] = copy.deepcopy(cluster["spec"])
    text = "\n".join(validate_manifests(docs))
    assert "metadata.name: '9-xxx" in text and "at most 53 characters" in text
    assert "minReplicas 50 > maxReplicas 32" in text
    assert "set exactly one of clusterSelector and rayClusterSpec" in text


def _container(docs: list[dict], kind: str) -> dict:
    return _one(docs, kind)["spec"]["template"]["spec"]["containers"][0]


def _worker_container(docs: list[dict]) -> dict:
    group = _one(docs, "RayCluster")["spec"]["workerGroupSpecs"][0]
    return group["template"]["spec"]["containers"][0]


def _redis_service(docs: list[dict]) -> dict:
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "redis"]
    return service


INGRESS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "dash", "namespace": "hft-lab"},
    "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 8265}}}},
}
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": POSTGRES_SECRET, "namespace": "hft-lab"},
    "stringData": {"password": "hunter2"},
}
BREAKING = {
    "nodeport": (
        lambda d: _redis_service(d)["spec"].update(type="NodePort"),
        "Service/redis: spec.type: NodePort exposes the service outside the cluster",
    ),
    "head-loadbalancer": (
        lambda d: _one(d, "RayCluster")["spec"]["headGroupSpec"].update(serviceType="LoadBalancer"),
        "spec.headGroupSpec.serviceType: LoadBalancer exposes the head",
    ),
    "root": (
        lambda d: _one(d, "Deployment")["spec"]["template"]["spec"]["securityContext"].update(
            runAsUser=0, runAsNonRoot=False
        ),
        "Deployment/redis: spec.template.spec.containers[0]: runAsNonRoot must be true",
    ),
    "capabilities": (
        lambda d: _container(d, "StatefulSet")["securityContext"].pop("capabilities"),
        "securityContext.capabilities.drop: must contain ALL",
    ),
    "limits": (
        lambda d: _worker_container(d)["resources"].pop("limits"),
        "containers[0].resources.limits: missing cpu and memory",
    ),
    "plain-password": (
        lambda d: _container(d, "StatefulSet")["env"].append(
            {"name": "POSTGRES_PASSWORD", "value": "hunter2"}
        ),
        "POSTGRES_PASSWORD is a secret; take it from valueFrom.secretKeyRef",
    ),
    "password-in-url": (
        lambda d: _one(d, "RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][
            0
        ]["env"][0].update(value="postgresql://lab:hunter2@postgres:5432/lab"),
        "LAB_RESULTS__URL holds a password in a URL",
    ),
    "ingress": (lambda d: d.append(copy.deepcopy(INGRESS)), "Ingress/dash: kind: an Ingress"),
    "secret-value": (
        lambda d: d.append(copy.deepcopy(SECRET)),
        "stringData.password: a Secret may only hold a placeholder",
    ),
}


@pytest.mark.parametrize("case", list(BREAKING))
def test_the_lab_rules_are_enforced(quickstart_cloud, case):
    mutate, expected = BREAKING[case]
    docs = copy.deepcopy(quickstart_cloud)
    mutate(docs)
    errors = validate_manifests(docs)
    assert any(expected in e for e in errors), errors


def test_a_secret_holding_only_placeholders_is_allowed():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": POSTGRES_SECRET, "namespace": "hft-lab"},
        "stringData": {"password": "<password>"},
        "data": {"other": "PHNldC1tZT4="},  # base64 of "<set-me>"
    }
    assert validate_manifests([secret]) == []


# ---------------------------------------------------------------------------
# Properties of everything rendered.


@pytest.mark.parametrize(("config_path", "layout"), CASES)
def test_rendered_pods_are_non_root_and_bounded(config_path, layout):
    docs = _render(config_path, layout)
    pods = [(f"{d['kind']}{path}", pod) for d in docs for path, pod in _pods(d)]
    assert len(pods) == 5  # postgres, redis, ray head, ray workers, job submitter
    for where, pod in pods:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, where
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            for part in ("requests", "limits"):
                assert set(container["resources"][part]) >= {"cpu", "memory"}, where


@pytest.mark.parametrize(("config_path", "layout"), CASES)
def test_nothing_is_exposed_and_secrets_are_only_referenced(config_path, layout):
    docs = _render(config_path, layout)
    kinds = {d["kind"] for d in docs}
    assert "Ingress" not in kinds and "Secret" not in kinds
    for service in (d for d in docs if d["kind"] == "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    head = _one(docs, "RayCluster")["spec"]["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP" and head["enableIngress"] is False
    env = {
        e["name"]: e
        for _, pod in (p for d in docs for p in _pods(d))
        for c in pod["containers"]
        for e in c.get("env", [])
    }
    for name in ("PGPASSWORD", "POSTGRES_PASSWORD"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == POSTGRES_SECRET


@pytest.mark.parametrize(("config_path", "layout"), CASES)
def test_the_rayjob_runs_the_config_on_the_rendered_cluster(config_path, layout):
    docs = _render(config_path, layout)
    cluster, job = _one(docs, "RayCluster"), _one(docs, "RayJob")
    assert job["spec"]["entrypoint"] == f"python -m lab run {config_path} --layout {layout}"
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    namespace = _one(docs, "Namespace")["metadata"]["name"]
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in head["env"]}
    assert env["LAB_RESULTS__URL"] == f"postgresql://lab@postgres.{namespace}.svc:5432/lab"
    assert {d["metadata"].get("namespace", namespace) for d in docs} == {namespace}


@pytest.mark.parametrize(("config_path", "layout"), CASES)
def test_the_workers_hold_every_actor(config_path, layout):
    config = for_layout(load_config(REPO / config_path, env={}), layout)
    t, r, kuberay = config.topology, config.resources, config.layout(layout).kuberay
    cpus = (
        t.engines * r.engine.num_cpus
        + t.backends * r.backend.num_cpus
        + t.generators * r.generator.num_cpus
        + r.collector.num_cpus
    )
    group = _one(_render(config_path, layout), "RayCluster")["spec"]["workerGroupSpecs"][0]
    pod_cpus = int(group["rayStartParams"]["num-cpus"])
    assert group["replicas"] * pod_cpus >= cpus
    assert group["replicas"] >= kuberay.worker_replicas
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["cpu"] == str(pod_cpus)


def test_cloud_100_applies_its_overrides_before_sizing(quickstart_cloud):
    group = _one(quickstart_cloud, "RayCluster")["spec"]["workerGroupSpecs"][0]
    # 8 engines x 0.5 + 100 backends x 0.25 + 16 generators x 0.25 = 33 CPUs in 8-CPU pods.
    assert (group["replicas"], group["rayStartParams"]["num-cpus"]) == (5, "8")
    assert _one(quickstart_cloud, "RayCluster")["spec"]["enableInTreeAutoscaling"] is True


# ---------------------------------------------------------------------------
# Sizing.

KUBE = "layouts: {k: {kind: kuberay, cpus_per_node: 1, memory_mb_per_node: 2048, kuberay: %s}}\n"


def test_actors_are_packed_whole_not_by_total_cpus():
    config = _config(
        KUBE % "{}"
        + "topology: {engines: 3, backends: 1, generators: 1}\n"
        + "resources: {engine: {num_cpus: 0.6}, backend: {num_cpus: 0}, generator: {num_cpus: 0}}"
    )
    sizing = size_workers(config, config.layout("k"), "k")
    # 1.8 CPUs would fit 2 pods if actors could be split; three 0.6-CPU actors need 3.
    assert (sizing.cpus_needed, sizing.pods_needed, sizing.replicas) == (1.8, 3, 3)


def test_memory_requests_count_too():
    config = _config(KUBE % "{}" + "resources: {engine: {num_cpus: 0, memory_mb: 1000}}\n"
                     + "topology: {engines: 3}")  # fmt: skip
    # A 2048 MiB pod offers 2048 - 256 (object store) - 512 (Ray) = 1280 MiB: one engine each.
    assert size_workers(config, config.layout("k"), "k").pods_needed == 3


def test_worker_replicas_is_a_floor():
    config = _config(KUBE % "{worker_replicas: 6}")
    assert size_workers(config, config.layout("k"), "k").replicas == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (KUBE % "{}" + "resources: {engine: {num_cpus: 2}}",
         "configs/t.yaml: resources.engine.num_cpus: 2 CPUs do not fit a worker pod of layouts.k"),
        (KUBE.replace("cpus_per_node: 1", "cpus_per_node: 1.5") % "{}",
         "configs/t.yaml: layouts.k.cpus_per_node: a KubeRay worker pod needs a whole number"),
        (KUBE.replace("2048", "700") % "{}",
         "configs/t.yaml: layouts.k.memory_mb_per_node: 700 MiB leaves nothing for actors"),
        (KUBE % "{autoscaling: true, min_replicas: 0, max_replicas: 2}" + "topology: {engines: 6}",
         "configs/t.yaml: layouts.k.kuberay.max_replicas: 2 is below the 4 worker pods"),
        (KUBE % "{namespace: Not_A_Name}",
         "layouts.k.kuberay.namespace: 'Not_A_Name' is not a Kubernetes namespace name"),
    ],
    ids=["actor-too-big", "fractional-cpus", "no-memory-left", "max-too-low", "bad-namespace"],
)  # fmt: skip
def test_impossible_layouts_are_config_errors(text, message):
    with pytest.raises(ConfigError) as caught:
        render_manifests(_config(text), "k", "configs/t.yaml")
    assert message in str(caught.value)


# ---------------------------------------------------------------------------
# The gateways: a Service over the worker pods' shared port, and `lab serve`.


def _containers(cluster: dict, group: str) -> dict:
    spec = cluster["spec"]
    pod = spec["headGroupSpec"] if group == "head" else spec["workerGroupSpecs"][0]
    (container,) = pod["template"]["spec"]["containers"]
    return container


def test_an_http_config_gets_a_service_over_the_workers_gateway_port():
    docs = _render("configs/seed-platform.yaml", "cloud-100")
    assert validate_manifests(docs) == []
    cluster, service = _one(docs, "RayCluster"), docs[-1]
    name = cluster["metadata"]["name"]
    assert service["metadata"]["name"] == f"{name}-gateway"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"ray.io/cluster": name, "ray.io/node-type": "worker"}
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "gateway"}]
    worker, head = _containers(cluster, "workers"), _containers(cluster, "head")
    assert worker["ports"] == [{"name": "gateway", "containerPort": 8000}]
    head_env = {e["name"]: e for e in head["env"]}
    # The keys come from a Secret; the stores are the ones rendered beside the cluster.
    assert head_env["LAB_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "gateway-api-keys"
    assert head_env["LAB_PLATFORM__CACHE"]["value"] == "redis://redis.hft-lab.svc:6379/0"
    assert head_env["LAB_PLATFORM__JOURNAL"]["value"].startswith("postgresql://lab@postgres.")
    assert [e["name"] for e in worker["env"]] == ["PGPASSWORD"]  # the backends journal


def test_an_actor_config_gets_no_gateway_service_nor_store_settings(quickstart_cloud):
    assert [d["kind"] for d in quickstart_cloud].count("Service") == 2  # postgres, redis
    cluster = _one(quickstart_cloud, "RayCluster")
    head_env = {e["name"] for e in _containers(cluster, "head")["env"]}
    assert not head_env & {"LAB_API_KEYS", "LAB_PLATFORM__CACHE", "LAB_PLATFORM__JOURNAL"}
    assert "ports" not in _containers(cluster, "workers")


def test_serving_runs_lab_serve_until_deleted_behind_the_service():
    config = load_config(REPO / "configs/quickstart.yaml", env={})
    docs = render_manifests(config, "cloud-100", "configs/quickstart.yaml", serve=True)
    assert validate_manifests(docs) == []
    job = _one(docs, "RayJob")
    assert job["spec"]["entrypoint"] == (
        "python -m lab serve configs/quickstart.yaml --layout cloud-100"
    )
    assert "activeDeadlineSeconds" not in job["spec"]
    assert docs[-1]["metadata"]["name"].endswith("-gateway")


def test_gateways_on_kuberay_need_a_shared_fixed_port():
    config = _config(KUBE % "{}" + "topology: {transport: http}")
    with pytest.raises(ConfigError, match="gateway.port: 8000 and gateway.share_port: true"):
        render_manifests(config, "k", "configs/t.yaml")


def test_cli_render_says_where_the_gateways_are(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    args = ["render", "configs/quickstart.yaml", "--layout", "cloud-100", "-o", str(tmp_path),
            "--serve"]  # fmt: skip
    result = CliRunner().invoke(k8s_app, args)
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.yaml"))) == 8
    assert "kubectl port-forward -n hft-lab svc/quickstart-cloud-100-gateway 8000" in (
        result.stderr
    )


def test_only_kuberay_layouts_render():
    with pytest.raises(
        ConfigError, match=r"layouts\.single-host\.kind: is 'local'; only 'kuberay'"
    ):
        render_manifests(_config(), "single-host", "configs/t.yaml")
    with pytest.raises(ConfigError, match=r"no layout 'nope' \(available: single-host\)"):
        render_manifests(_config(), "nope", "configs/t.yaml")


def test_resource_names_are_short_dns_labels():
    assert resource_name("quickstart", "cloud-100") == "quickstart-cloud-100"
    assert resource_name("9 Lives_Exp", "x") == "lab-9-lives-exp-x"
    long_a, long_b = resource_name("a" * 60, "one"), resource_name("a" * 60, "two")
    assert long_a != long_b
    for name in (long_a, long_b):
        assert len(name) <= 47 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)


# ---------------------------------------------------------------------------
# Files and the CLI.


def test_write_manifests_names_files_in_apply_order(tmp_path, quickstart_cloud):
    paths = write_manifests(quickstart_cloud, tmp_path)
    assert [p.name for p in paths] == [
        "00-namespace-hft-lab.yaml",
        "01-service-postgres.yaml",
        "02-statefulset-postgres.yaml",
        "03-service-redis.yaml",
        "04-deployment-redis.yaml",
        "05-raycluster-quickstart-cloud-100.yaml",
        "06-rayjob-quickstart-cloud-100.yaml",
    ]
    assert sorted(paths) == paths
    assert [yaml.safe_load(p.read_text()) for p in paths] == quickstart_cloud
    assert not any("&id" in p.read_text() for p in paths)  # no YAML anchors
    assert validate_paths([tmp_path]) == []


def test_cli_render_writes_valid_files(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        k8s_app, ["render", "configs/quickstart.yaml", "--layout", "cloud-100", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.yaml"))) == 7
    job = yaml.safe_load(next(out.glob("*-rayjob-*.yaml")).read_text())
    assert (
        job["spec"]["entrypoint"] == "python -m lab run configs/quickstart.yaml --layout cloud-100"
    )
    assert "5 worker pods of 8 CPUs" in result.stderr


def test_cli_render_takes_set_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    image = "registry.example.com/team/hft-scaling-lab:0.1.0"
    args = ["render", "configs/quickstart.yaml", "--layout", "performance-pod", "-o", str(tmp_path),
            "--set", f"layouts.performance-pod.kuberay.image={image}"]  # fmt: skip
    assert CliRunner().invoke(k8s_app, args).exit_code == 0
    cluster = yaml.safe_load(next(tmp_path.glob("*-raycluster-*.yaml")).read_text())
    assert cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == image


def test_cli_render_of_a_non_kuberay_layout_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(
        k8s_app,
        ["render", "configs/quickstart.yaml", "--layout", "three-node", "-o", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "error: configs/quickstart.yaml: layouts.three-node.kind: is 'emulated'" in result.stderr
    assert not list(tmp_path.iterdir())


def test_cli_render_of_a_config_outside_the_project_needs_its_image_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    args = ["render", str(REPO / "configs/quickstart.yaml"), "--layout", "cloud-100", "-o", "out"]
    result = CliRunner().invoke(k8s_app, args)
    assert result.exit_code == 2 and "pass --config-in-image" in result.stderr
    result = CliRunner().invoke(k8s_app, [*args, "--config-in-image", "configs/quickstart.yaml"])
    assert result.exit_code == 0, result.output


def test_cli_render_refuses_to_write_invalid_manifests(tmp_path, monkeypatch):
    import lab.k8s.render

    real = lab.k8s.render.render_manifests

    def broken(*args, **kwargs):
        docs = real(*args, **kwargs)
        docs[-1]["spec"]["entrypiont"] = docs[-1]["spec"].pop("entrypoint")
        return docs

    monkeypatch.setattr(lab.k8s.render, "render_manifests", broken)
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(
        k8s_app, ["render", "configs/quickstart.yaml", "--layout", "cloud-100", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "the rendered manifests are invalid" in result.stderr
    assert "'entrypiont' was unexpected" in result.stderr
    assert not list(tmp_path.iterdir())


def test_cli_validate(tmp_path):
    runner = CliRunner()
    assert runner.invoke(k8s_app, ["validate", str(BASE)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: dash}\n"
        "spec: {type: LoadBalancer, ports: [{port: 8265}], selectr: {}}\n"
    )
    result = runner.invoke(k8s_app, ["validate", str(BASE), str(bad), str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert f"{bad}: Service/dash: spec: Additional properties" in result.stderr
    assert f"{bad}: Service/dash: spec.type: LoadBalancer exposes" in result.stderr
    assert f"{tmp_path / 'missing'}: no such file or directory" in result.stderr


def test_the_lab_k8s_commands_of_the_readme_work(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    readme = (REPO / "k8s" / "README.md").read_text()
    commands = re.findall(r"^lab k8s (.+)$", readme, re.M)
    assert len(commands) >= 2
    for command in commands:
        args = [str(tmp_path / a) if a.startswith("out/") else a for a in shlex.split(command)]
        result = CliRunner().invoke(k8s_app, args)
        assert result.exit_code == 0, (command, result.output)


def test_the_lab_cli_runs_k8s(tmp_path):
    from lab.cli.main import app

    assert any(group.name == "k8s" for group in app.registered_groups)
    run = [sys.executable, "-m", "lab", "k8s", "render", "configs/quickstart.yaml"]
    ok = subprocess.run([*run, "--layout", "cloud-100", "-o", str(tmp_path)], cwd=REPO,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert len(list(tmp_path.glob("*.yaml"))) == 7
    bad = subprocess.run([*run, "--layout", "single-host", "-o", str(tmp_path / "x")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert "layouts.single-host.kind: is 'local'" in bad.stderr


def test_the_rayjob_has_a_deadline_beyond_the_run(quickstart_cloud):
    config = load_config(REPO / "configs/quickstart.yaml", env={})
    deadline = _one(quickstart_cloud, "RayJob")["spec"]["activeDeadlineSeconds"]
    assert deadline > math.ceil(config.experiment.duration_s)
