"""What every plot of the report shares: a figure without pyplot, its axes, saving as PNG.

Figures are built with ``matplotlib.figure.Figure`` and saved as PNG, which
renders through the Agg canvas, never through pyplot: nothing needs a display,
the caller's backend is left alone and no figures pile up in global state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

__all__ = [
    "new_figure",
    "latency_scale",
    "finish",
    "write_png",
    "save",
    "ordered_stages",
    "SIZE",
    "PERCENTILES",
    "THOUSANDS",
]

SIZE = (8, 4.8)  #: inches; at _DPI this is 960 x 576 px, legible when embedded at full width
_DPI = 120
#: Latency percentiles as the results store them, and as the plots label them.
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))
THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")  #: 12,345 on an axis
#: Stages in the order orders flow through them; others follow alphabetically.
_STAGE_ORDER = ("loadgen", "backend", "engine", "collector")


def ordered_stages(stages) -> list[str]:
    rank = {stage: i for i, stage in enumerate(_STAGE_ORDER)}
    return sorted(set(stages), key=lambda s: (rank.get(s, len(rank)), s))


def new_figure(title: str, xlabel: str, ylabel: str, size=SIZE):
    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def latency_scale(ax, values: np.ndarray) -> None:
    """Linear from 0 (so noise is not blown up), or log labelled 0.2, 0.5, 1, 2 … when the
    values span more than 20x."""
    if not (values.min() > 0 and values.max() / values.min() > 20):
        ax.set_ylim(bottom=0)
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def finish(fig, ax, empty: str | None = None, outside: bool = False) -> Figure:
    """Say why the axes are empty, or add the legend."""
    if empty:  # still draw the axes, so the report keeps its shape and says why
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="grey")
    elif ax.get_legend_handles_labels()[0] and outside:  # long legends would hide the data
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return fig


def write_png(fig: Figure, path) -> Path:
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def save(fig, ax, path: Path, empty: str | None = None, outside: bool = False) -> Path:
    return write_png(finish(fig, ax, empty, outside), path)
