"""``lab k8s``: the KubeRay manifests of a layout, and checking manifests.

    lab k8s render configs/quickstart.yaml --layout cloud-100 -o out/cloud-100
    lab k8s validate k8s/base out/cloud-100

Both exit 2, listing the problems, when a config or a manifest is invalid.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from lab.errors import ConfigError, LabError

__all__ = ["k8s_app"]

k8s_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="KubeRay manifests: render a layout, validate manifests.",
)


@contextmanager
def _exit_on_lab_error() -> Iterator[None]:
    # sys.exit rather than typer.Exit: `lab`'s main() runs the app with
    # standalone_mode=False, where click returns an Exit's code instead of exiting.
    try:
        yield
    except LabError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


@k8s_app.command("render")
def render(
    config: Path = typer.Argument(..., help="Experiment config (YAML)."),
    layout: str = typer.Option(..., "--layout", help="A layout of kind kuberay."),
    out: Path = typer.Option(..., "-o", "--out", help="Directory to write the manifests to."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: section.key=value."),
    config_in_image: str | None = typer.Option(
        None,
        "--config-in-image",
        help="CONFIG's path inside the image (default: its path relative to this directory).",
    ),
    serve: bool = typer.Option(
        False, "--serve", help="The RayJob runs `lab serve` (and a Service exposes the gateways)."
    ),
) -> None:
    """Write the Namespace, PostgreSQL, Redis, RayCluster and RayJob of LAYOUT to OUT.

    Where the gateways run (transport http, or --serve), also the Service over them.
    """
    from lab.config import load_config
    from lab.k8s.render import render_manifests, validate_manifests, write_manifests

    with _exit_on_lab_error():
        loaded = load_config(config, set_)
        docs = render_manifests(
            loaded, layout, config_in_image or _path_in_image(config), serve=serve
        )
        errors = validate_manifests(docs)
        if errors:  # a bug or an odd config; nothing half-valid gets written
            raise ConfigError("the rendered manifests are invalid:\n  " + "\n  ".join(errors))
        paths = write_manifests(docs, out)
    for path in paths:
        typer.echo(str(path))
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    workers = cluster["spec"]["workerGroupSpecs"][0]
    typer.echo(
        f"RayCluster {cluster['metadata']['name']}: {workers['replicas']} worker pods of "
        f"{workers['rayStartParams']['num-cpus']} CPUs (min {workers['minReplicas']}, "
        f"max {workers['maxReplicas']}); apply with: kubectl apply -f {out}",
        err=True,
    )
    for service in docs:
        if service["kind"] == "Service" and service["metadata"]["name"].endswith("-gateway"):
            name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
            namespace = service["metadata"]["namespace"]
            typer.echo(
                f"gateways: Service {name}, port {port} (from outside the cluster: "
                f"kubectl port-forward -n {namespace} svc/{name} {port})",
                err=True,
            )


@k8s_app.command("validate")
def validate(
    paths: list[Path] = typer.Argument(..., help="Manifest files, or directories of *.yaml."),
) -> None:
    """Check manifests against the Kubernetes and KubeRay schemas and the lab's rules."""
    from lab.k8s.validate import validate_paths

    with _exit_on_lab_error():
        errors = validate_paths(paths)
        if errors:
            raise ConfigError(f"{len(errors)} problem(s):\n  " + "\n  ".join(errors))
    typer.echo(f"valid: {' '.join(map(str, paths))}")


def _path_in_image(config: Path) -> str:
    """CONFIG relative to this directory, which k8s/Dockerfile copies into the image."""
    try:
        return config.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        raise ConfigError(
            f"{config}: is outside this directory, so not in the image; run from the project "
            "root or pass --config-in-image"
        ) from None
