"""A self-contained HTML report of a sweep summary or of one run, with its PNG plots.

``write_report(data, out_dir)`` writes the plots as PNG files and one
``report.html`` that embeds them as base64 data URIs, with inline CSS and no
links, scripts or fonts from elsewhere, so the page can be mailed or archived
on its own. Every piece of text taken from the data is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from lab.analysis.bottleneck import bottleneck
from lab.analysis.intervals import describe_figure, interval_words
from lab.analysis.sweep_summary import (
    describe_scaling,
    efficiency_label,
    judge_fit,
    layout_groups,
    untested_drop,
)
from lab.report.plots import sweep_plots
from lab.report.run_plots import run_plots

__all__ = ["write_report", "REPORT_NAME"]

REPORT_NAME = "report.html"  #: file name of the page inside ``out_dir``

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { margin-top: 1.8em; font-size: 1.25em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.headline td:first-child { text-align: left; color: #555; }
.headline td:last-child { font-weight: 600; }
figure { margin: 1.2em 0; } figure img { width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 0.9em; }
.bad { color: #b00020; }
"""


def write_report(data: dict, out_dir) -> Path:
    """Write the plots and ``report.html`` into ``out_dir``; returns the HTML path.

    ``data`` is a sweep summary (it has "points", as from
    :func:`lab.analysis.scaling.summarize_sweep` plus "sweep_id", "name", "vary", "config",
    "environment" and maybe "runs") or a single run's ``Result.to_dict()``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if data.get("kind") == "capacity":
        page = _capacity_page(data, out)
    elif "points" in data:
        page = _sweep_page(data, out)
    else:
        page = _run_page(data, out)
    path = out / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path


# -- pieces --------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _f(value: Any, spec: str = ",.1f", suffix: str = "") -> str:
    """A number formatted for a table, or a dash when it is missing."""
    if value is None or isinstance(value, str):
        return "–" if value is None else value
    return f"{value:{spec}}{suffix}"


def _table(headers: list[str], rows: list[list[Any]], left: int = 1, cls: str = "") -> str:
    """An escaped table; the first ``left`` columns are left-aligned."""

    def cells(tag: str, values: list[Any]) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left else ''}>{_e(v)}</{tag}>" for i, v in enumerate(values)
        )

    head = f"<tr>{cells('th', headers)}</tr>" if headers else ""
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f'<table class="{cls}">{head}{body}</table>'


def _headline(pairs: list[tuple[str, str]]) -> str:
    return _table([], [list(pair) for pair in pairs], cls="headline")


def _figure(caption: str, path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _config_block(config: dict) -> str:
    if not config:
        return "<p>No config recorded.</p>"
    try:  # YAML reads best; JSON when PyYAML is missing or meets a type it cannot dump
        import yaml

        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    except Exception:
        text = json.dumps(config, indent=2, default=str)
    return f"<pre>{_e(text)}</pre>"


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten(value, f"{name}.")
        else:
            rows.append((name, "–" if value is None else value))
    return rows


def _environment_block(environment: dict) -> str:
    if not environment:
        return "<p>No environment recorded.</p>"
    return _table(["key", "value"], [list(r) for r in _flatten(environment)], left=2)


def _page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{_e(h)}</h2>{content}" if h else content for h, content in sections)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=sub>{_e(subtitle)}</p>{body}</body></html>\n"
    )


# -- a sweep -------------------------------------------------------------------


def _n_label(vary: dict) -> str:
    return f"N ({', '.join(vary)})" if vary else "N"


def _layout_fits(data: dict) -> list[tuple[str, dict, list[dict]]]:
    """(layout, its fits, its points): one per layout when fitted per layout, else ("", top)."""
    n_key, points = data.get("n_key"), data["points"]
    if not data.get("fits"):
        judged = _judged(data, points, n_key)
        mixed = len(layout_groups(points))
        if mixed > 1 and judged["usl"].get("ok"):  # stored before layouts were fitted apart
            note = f"This fit mixes {mixed} layouts, so it describes none of them."
            judged["usl"] = judged["usl"] | {"caveats": [*judged["usl"]["caveats"], note]}
        return [("", judged, points)]
    groups = layout_groups(points)
    return [
        (layout, _judged(fits, groups.get(layout, []), n_key), groups.get(layout, []))
        for layout, fits in data["fits"].items()
    ]


def _judged(fits: dict, points: list[dict], n_key: str | None) -> dict:
    """usl, amdahl (with what they found, also for summaries stored without it), retrograde."""
    return {
        "usl": judge_fit(fits.get("usl") or {}, points, n_key),
        "amdahl": judge_fit(fits.get("amdahl") or {}, points, n_key),
        "retrograde": fits.get("retrograde") or {},
    }


def _fit_pairs(layout: str, fits: dict) -> list[tuple[str, str]]:
    """Headline rows of one layout's USL fit: its peak, or in words why there is none."""
    usl, retro, prefix = fits["usl"], fits["retrograde"], f"{layout}: " if layout else ""
    pairs = []
    if usl.get("ok"):
        if usl.get("bound_note"):  # a peak at N*≈0 would mislead
            peak = f"fit on a bound: {usl['bound_note']}"
        elif usl["peak_n"] is None:
            peak = "none (κ = 0)"
        else:
            peak = f"N*≈{usl['peak_n']:.1f}"
            if usl.get("peak_orders_per_s") is not None:
                peak += f" (≈{usl['peak_orders_per_s']:,.0f} orders/s)"
        r2 = _f(usl["r2"], ".3f") + (" — poor fit (below 0.8)" if usl.get("poor") else "")
        pairs += [(f"{prefix}USL peak", peak), (f"{prefix}USL fit R²", r2)]
    if retro.get("detected") and retro.get("start_n") is not None:
        pairs.append((f"{prefix}retrograde", f"yes, from N={retro['start_n']:g}"))
    elif untested_drop(retro):
        untested = f"untested: {retro['drop']:.0%} below the peak, too few runs to tell"
        pairs.append((f"{prefix}retrograde", untested))
    elif not retro.get("layouts"):
        pairs.append((f"{prefix}retrograde", "no"))
    return pairs


def _comparison_page(data: dict, out: Path) -> str:
    """A sweep with no N: each choice's figure and what it costs against each key's first."""
    from lab.report.comparison_plot import plot_comparison

    points, keys, vary = data["points"], data["compare_keys"], data.get("vary") or {}
    figure = "capacity" if data.get("figure") == "capacity" else "orders/s"
    headers = [*keys, f"{figure} (95% interval)", "p99 ms"]
    headers += [f"vs first {k.rsplit('.', 1)[-1]} ({vary.get(k, ['?'])[0]})" for k in keys]
    rows = []
    for p in points:
        costs = p.get("costs") or {}
        rows.append(
            [
                *(str(p["values"].get(k, "–")) for k in keys),
                describe_figure(p["orders_per_s"]),
                _f(p["p99_ms"]["mean"], ".3f"),
                *(_cost_words(costs.get(k)) for k in keys),
            ]
        )
    plot = plot_comparison(data, out / "comparison.png")
    sections = [
        ("What each choice costs", _table(headers, rows, left=len(keys))),
        ("Findings", _findings_list(data.get("findings") or [])),
        ("Plots", _figure(f"{figure} and p99 per point", plot)),
        ("Config", _config_block(data.get("config") or {})),
        ("Environment", _environment_block(data.get("environment") or {})),
    ]
    title = f"Comparison: {data.get('name') or data.get('sweep_id') or 'unnamed'}"
    subtitle = " · ".join(str(v) for v in (data.get("sweep_id"), data.get("created_at")) if v)
    return _page(title, subtitle, sections)


def _cost_words(cost: dict | None) -> str:
    if not cost or cost.get("change") is None:
        return "–"
    if cost["verdict"] == "untestable":
        tested = "untested"
    else:
        tested = "significant" if cost["significant"] else "not significant"
    p99 = "" if cost.get("p99_ratio") is None else f", p99 ×{cost['p99_ratio']:.2g}"
    return f"{cost['change']:+.0%} ({tested}{p99})"


def _sweep_page(data: dict, out: Path) -> str:
    if data.get("compare_keys"):
        return _comparison_page(data, out)
    points, neck = data["points"], data.get("bottleneck") or {}
    vary = data.get("vary") or {}
    n_key = data.get("n_key")
    figures = sweep_plots(data, out, f"N ({n_key})" if n_key else _n_label(vary))
    measured = [p for p in points if p["orders_per_s"]["mean"] is not None]
    best = max(measured, key=lambda p: p["orders_per_s"]["mean"], default=None)
    pairs = [("points measured", f"{len(measured)} of {len(points)}")]
    if best is not None:
        pairs += [
            (
                "best measured throughput",
                f"{best['orders_per_s']['mean']:,.0f} orders/s at N={best['n']:g} "
                f"({interval_words(best['orders_per_s'])})",
            ),
            ("p99 latency at that point", _f(best["p99_ms"]["mean"], ".3f", " ms")),
        ]
    layouts = _layout_fits(data)
    for layout, fits, _ in layouts:
        pairs += _fit_pairs(layout, fits)
    pairs.append(
        (
            "first saturated stage",
            f"{neck['stage']} at N={neck['n']:g}" if neck.get("stage") else "none",
        )
    )
    interpretation = data.get("interpretation") or describe_scaling(data)
    usls = [fits["usl"] for _, fits, _ in layouts]
    doubtful = any(not u.get("ok") or u.get("poor") or u.get("bound_note") for u in usls)
    sections = [
        ("", _headline(pairs)),
        (
            "What it says",
            f"<p{' class=note' if doubtful else ''}>{_e(interpretation)}</p>"
            f"<p>{_e(neck.get('explanation', ''))}</p>",
        ),
        ("Findings", _findings_list(data.get("findings") or [])),
        ("Plots", "".join(_figure(caption, path) for caption, path in figures)),
        ("Points", _points_table(points, list(vary), efficiency_label(data))),
        *_reference_section(data),
        ("Model fits", _fits_table(layouts)),
    ]
    if data.get("runs"):
        sections.append(("Runs", _runs_table(data["runs"])))
    if vary:
        sections.append(
            (
                "Varied",
                _table(["key", "values"], [[k, ", ".join(map(str, v))] for k, v in vary.items()]),
            )
        )
    sections += [
        ("Config", _config_block(data.get("config") or {})),
        ("Environment", _environment_block(data.get("environment") or {})),
    ]
    title = f"Sweep: {data.get('name') or data.get('sweep_id') or 'unnamed'}"
    subtitle = " · ".join(str(v) for v in (data.get("sweep_id"), data.get("created_at")) if v)
    return _page(title, subtitle, sections)


def _reference_section(data: dict) -> list[tuple[str, str]]:
    """The figures of ``sweep.reference`` beside the points that have one."""
    reference = data.get("reference")
    if not reference:
        return []
    rows = [
        [
            ", ".join(f"{k}={v}" for k, v in p["values"].items()),
            describe_figure(p["orders_per_s"]),
            _f(p["reference"]["orders_per_s"], ",.0f"),
            _f(p["reference"]["ratio"], ".2f", "×"),
        ]
        for p in data["points"]
        if p.get("reference")
    ]
    headers = ["point", "measured (95% interval)", "reference orders/s", "ratio"]
    return [(f"Beside {reference['source']}", _table(headers, rows))]


def _findings_list(items: list[str]) -> str:
    if not items:
        return "<p class=note>No findings recorded for this sweep.</p>"
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _points_table(points: list[dict], keys: list[str], efficiency: str = "efficiency") -> str:
    headers = [
        "N",
        *keys,
        "orders/s (geometric mean, 95% CI)",
        "runs",
        "p99 ms",
        efficiency,
        "busiest stage",
    ]
    rows = []
    for p in points:
        tp = p["orders_per_s"]
        # The interval is a factor either side of the geometric mean, so not "± x".
        throughput = "–" if tp["mean"] is None else describe_figure(tp)
        neck = p.get("bottleneck") or {}
        stage = f"{neck['stage']} ({neck['busy']:.0%})" if neck.get("stage") else "–"
        rows.append(
            [
                _f(p["n"], "g"),
                *(str((p.get("values") or {}).get(k, "–")) for k in keys),
                throughput,
                len(tp["runs"]),
                _f(p["p99_ms"]["mean"], ".3f"),
                _f(p.get("efficiency"), ".0%"),
                stage,
            ]
        )
    return _table(headers, rows, left=0)


def _fit_note(fit: dict) -> str:
    """Why a fit is missing, or what is wrong with it, or "ok"."""
    if not fit.get("ok"):
        return fit.get("note") or "not fitted"
    return " ".join(fit.get("caveats") or []) or "ok"


def _fits_table(layouts: list[tuple[str, dict, list[dict]]]) -> str:
    rows = []
    for layout, fits, _ in layouts:
        usl, amdahl = fits["usl"], fits["amdahl"]
        prefix = f"{layout}: " if layout else ""
        if usl.get("peak_n") is None or usl.get("bound_note"):
            peak = "–"
        else:
            peak = f"N*≈{usl['peak_n']:.1f}"
        rows += [
            [
                f"{prefix}USL",
                _f(usl.get("lambda"), ",.0f"),
                _f(usl.get("sigma"), ".4g"),
                _f(usl.get("kappa"), ".4g"),
                peak,
                _f(usl.get("r2"), ".4f"),
                _fit_note(usl),
            ],
            [
                f"{prefix}Amdahl",
                _f(amdahl.get("lambda"), ",.0f"),
                _f(amdahl.get("sigma"), ".4g"),
                "0",
                "–" if amdahl.get("ceiling") is None else f"→ {amdahl['ceiling']:,.0f} orders/s",
                _f(amdahl.get("r2"), ".4f"),
                _fit_note(amdahl),
            ],
        ]
    headers = [
        "model",
        "λ (orders/s per unit)",
        "σ contention",
        "κ coherency",
        "peak / ceiling",
        "R²",
        "note",
    ]
    return _table(headers, rows)


def _runs_table(runs: list[dict]) -> str:
    rows = [
        [
            r.get("run_id", "–"),
            r.get("name", "–"),
            _f(r.get("orders_per_s"), ",.1f"),
            _f((r.get("latency_ms") or {}).get("p99", r.get("p99_ms")), ".3f"),
        ]
        for r in runs
    ]
    return _table(["run", "name", "orders/s", "p99 ms"], rows, left=2)


# -- one run -------------------------------------------------------------------


def _capacity_page(data: dict, out: Path) -> str:
    from lab.report.capacity_plot import plot_capacity_search

    lo, hi = data.get("bracket") or (None, None)
    probe = data.get("probe") or {}
    pairs = [
        ("capacity", _f(data.get("capacity_orders_per_s"), ",.0f", " orders/s offered")),
        ("acknowledged there", _f(data.get("orders_per_s"), ",.0f", " orders/s")),
        ("p99 there / SLO", f"{_f(data.get('p99_ms'), '.2f')} / {data['slo_p99_ms']:g} ms"),
        ("search bracket", f"{_f(lo, ',.0f')} – {_f(hi, ',.0f')} orders/s"),
        ("runs per rate", _f(data.get("repeat"), "d")),
        (
            "machine probe",
            f"{_f(probe.get('chase_ns_per_load'), '.1f')} ns/load, "
            f"{_f(probe.get('compute_ns_per_op'), '.2f')} ns/op",
        ),
    ]
    rows = [
        [
            _f(p["rate_per_s"], ",.0f"),
            _f(p["answered_per_s"], ",.0f"),
            _f(p["orders_per_s"], ",.0f"),
            _f(p["p99_ms"], ".2f"),
            "generator-limited" if p["generator_limited"] else "yes" if p["overloaded"] else "no",
            "passed" if p["passed"] else "failed",
        ]
        for p in data["points"]
    ]
    headers = ["offered/s", "answered/s", "acked/s", "p99 ms", "overloaded", "verdict"]
    plot = plot_capacity_search(data, out / "capacity.png")
    sections = [
        ("", _headline(pairs) + f"<p>{_e(data.get('verdict', ''))}</p>"),
        ("Plots", _figure("Answered rate and p99 against the offered rate", plot)),
        ("Rates tried", _table(headers, rows, left=0)),
        ("Config", _config_block(data.get("config") or {})),
        ("Environment", _environment_block(data.get("environment") or {})),
    ]
    title = f"Capacity: {data.get('name') or data.get('capacity_id')}"
    subtitle = " · ".join(
        str(v) for v in (data.get("capacity_id"), data.get("layout"), data.get("created_at")) if v
    )
    return _page(title, subtitle, sections)


def _run_page(data: dict, out: Path) -> str:
    from lab.run.result import Result, load_verdicts

    figures = run_plots(data, out)
    lat = data.get("latency_ms") or {}
    book = data.get("book") or {}
    pairs = [
        ("throughput", _f(data.get("orders_per_s"), ",.1f", " orders/s acknowledged")),
        (
            "offered / answered",
            f"{_f(data.get('offered_per_s'), ',.0f')} / "
            f"{_f(data.get('answered_per_s'), ',.0f')} orders/s",
        ),
        (
            "backlog / unanswered",
            f"{_f(data.get('backlog'), ',')} / {_f(data.get('unanswered'), ',')}",
        ),
        ("resting orders at the end", _f(book.get("resting_orders"), ",")),
        ("latency p50 / p99", f"{_f(lat.get('p50'), '.3f')} / {_f(lat.get('p99'), '.3f')} ms"),
        ("latency p99.9 / max", f"{_f(lat.get('p999'), '.3f')} / {_f(lat.get('max'), '.3f')} ms"),
        (
            "orders sent / acked",
            f"{_f(data.get('orders_sent'), ',')} / {_f(data.get('orders_acked'), ',')}",
        ),
        (
            "rejects / fills / errors",
            " / ".join(_f(data.get(k), ",") for k in ("rejects", "fills", "errors")),
        ),
        ("measured for", _f(data.get("measured_s"), "g", " s")),
    ]
    missed = data.get("thresholds_missed") or []
    checks = (
        "<p class=bad>" + "<br>".join(f"✗ threshold missed: {_e(m)}" for m in missed) + "</p>"
        if missed
        else "<p>✓ all thresholds met</p>"
    )
    actors = data.get("actors") or {}
    neck = bottleneck(actors)
    verdicts = "".join(
        f"<p{' class=bad' if line.startswith(('OVERLOADED', 'GENERATOR')) else ''}>{_e(line)}</p>"
        for line in load_verdicts(Result.from_dict(data))
    )
    sections = [
        ("", _headline(pairs) + checks + verdicts),
        ("Bottleneck", f"<p>{_e(neck['explanation'])}</p>"),
        ("Plots", "".join(_figure(caption, path) for caption, path in figures)),
        ("Actors", _actors_table(actors)),
        ("Config", _config_block(data.get("config") or {})),
        ("Environment", _environment_block(data.get("environment") or {})),
    ]
    title = f"Run: {data.get('name') or data.get('run_id') or 'unnamed'}"
    subtitle = " · ".join(
        str(v)
        for v in (
            data.get("run_id"),
            data.get("layout") and f"layout {data['layout']}",
            data.get("sweep_id") and f"sweep {data['sweep_id']}",
            data.get("created_at"),
        )
        if v
    )
    return _page(title, subtitle, sections)


def _actors_table(actors: dict) -> str:
    headers = [
        "actor",
        "host",
        "busy",
        "process CPU",
        "max queue",
        "batches",
        "messages",
        "µs/msg",
        "batch p99 ms",
    ]
    rows = []
    for name, a in actors.items():
        if not isinstance(a, dict):
            continue
        rows.append(
            [
                name,
                a.get("host", "–"),
                _f(a.get("busy"), ".0%"),
                _f(a.get("cpu"), ".0%"),
                _f(a.get("max_queue"), ","),
                _f(a.get("batches"), ","),
                _f(a.get("messages"), ","),
                _f(a.get("us_per_message"), ".2f"),
                _f((a.get("batch_service_ms") or {}).get("p99"), ".3f"),
            ]
        )
    return _table(headers, rows, left=2) if rows else "<p>No actor figures.</p>"
