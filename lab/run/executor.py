"""The execution seam: what runs a run's stages, whatever they run on.

The stages and their wiring are described once (:mod:`lab.run.stages`). An
executor builds them and drives one run:

- :class:`~lab.run.ray_executor.RayExecutor`: Ray actors, on any layout Ray runs;
- :class:`~lab.run.inprocess.InProcessExecutor`: plain objects on one event
  loop in this process (a layout of ``kind: inprocess``), without Ray.

The lab above this seam (experiments, sweeps, capacity searches, reports)
sees only :class:`Executor`.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from lab.config import ExperimentConfig, Layout

__all__ = ["Executor", "open_executor", "runtime_for"]

Progress = Callable[[dict], None] | None


class Executor(Protocol):
    def wait_ready(self, on_progress: Progress = None) -> None:
        """Return once every stage is up (its kernels compiled or loaded)."""

    def nodes(self) -> dict[str, dict]:
        """Where each stage runs: host, node and process."""

    def run(self, on_progress: Progress = None) -> dict:
        """Drive the run; the generators' tallies, the collector's series, the journals.

        Raises :class:`~lab.errors.RunFailed`, with what was measured, when a
        stage dies or a deadline passes.
        """

    def serve(self) -> None:
        """Serve the gateways until interrupted (built with ``serving=True``)."""

    def serve_while(self, work: Callable[[], object]) -> object:
        """Run ``work()`` while the gateways serve; its result (``lab bench http``)."""

    def dashboard_url(self) -> str | None:
        """Where the run can be watched, if anywhere."""

    def shutdown(self) -> None:
        """Remove every stage."""


def runtime_for(layout: Layout):
    """The context a layout's runs need around them: Ray started or joined, or nothing."""
    if layout.kind == "inprocess":
        from contextlib import nullcontext

        return nullcontext()
    from lab.run.runtime import RayRuntime

    return RayRuntime(layout)


@contextmanager
def open_executor(
    config: ExperimentConfig, layout: Layout, run_id: str, serving: bool = False
) -> Iterator[Executor]:
    """The executor of one run on ``layout`` (``serving``: of ``lab serve``), removed after."""
    with runtime_for(layout):
        if layout.kind == "inprocess":
            from lab.run.inprocess import InProcessExecutor as chosen
        else:
            from lab.run.ray_executor import RayExecutor as chosen
        executor = chosen(config, layout, run_id, serving)
        try:
            yield executor
        finally:
            executor.shutdown()
