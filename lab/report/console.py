"""Terminal output of runs: a live progress line and a k6-style end-of-run summary."""

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = [
    "LiveProgress",
    "print_summary",
    "print_runs",
    "print_sweep",
    "print_capacity",
    "print_capacity_point",
]

_err = Console(stderr=True)


def _console() -> Console:
    # Piped output keeps whole ids and numbers rather than wrapping at 80 columns.
    console = Console()
    return console if console.is_terminal else Console(width=200)


class LiveProgress:
    """Elapsed time, orders/s and p99 of the latest interval, redrawn in place (on stderr).

    With ``plain``, for a stderr that is not a terminal (a job's log), it
    prints a line whenever another actor is up instead.
    """

    def __init__(self, duration_s: float, enabled: bool = True, plain: bool = False):
        self.duration_s = duration_s
        self._plain = plain and not enabled
        self._said = None
        self._live = (
            Live(Text("starting actors…"), console=_err, transient=True, refresh_per_second=4)
            if enabled
            else None
        )

    def __enter__(self):
        if self._live:
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live:
            self._live.__exit__(*exc)

    def update(self, point: dict) -> None:
        if self._plain and point.get("phase") == "starting" and point["ready"] != self._said:
            self._said = point["ready"]
            _err.print(f"starting actors: {point['ready']} of {point['total']} up")
        if not self._live or not point:
            return
        if point.get("phase") == "starting":
            self._live.update(Text(f"starting actors: {point['ready']} of {point['total']} up"))
            return
        self._live.update(
            Text(
                f"running  {point['t_s']:6.1f}/{self.duration_s:g} s   "
                f"{point['orders_per_s']:>12,.0f} orders/s   "
                f"p99 {point['latency_ms']['p99']:8.3f} ms   rejects {point['rejects']:,}"
            )
        )


def print_summary(result, console: Console | None = None) -> None:
    """The end-of-run summary: checks, what the load figures mean, one line per metric, actors."""
    from lab.run.result import load_verdicts

    console = console or _console()
    lat = result.latency_ms
    console.print(f"\n[bold]{result.name}[/]  run {result.run_id}  layout {result.layout}")
    for missed in result.thresholds_missed:
        console.print(f"  [red]✗ threshold missed:[/] {missed}")
    if result.status == "failed":
        console.print(f"  [red]✗ FAILED:[/] {result.error}")
        console.print("  what follows is what the run measured before it failed")
    elif not result.thresholds_missed:
        console.print("  [green]✓ all thresholds met[/]")
    for line in load_verdicts(result):
        flagged = line.startswith(("OVERLOADED", "GENERATOR-LIMITED"))
        console.print(f"  [red]{line}[/]" if flagged else f"  {line}")
    window = f"over the {result.measured_s:g} s measured"
    rows = [("orders_per_s", f"{result.orders_per_s:,.1f}/s", f"acknowledged, answered {window}")]
    if result.loop == "open":
        rows += [
            ("offered_per_s", f"{result.offered_per_s or 0:,.1f}/s", "the open-loop schedule"),
            ("sent_per_s", f"{result.sent_per_s:,.1f}/s", ""),
        ]
    rows += [
        ("answered_per_s", f"{result.answered_per_s:,.1f}/s", "acknowledged, rejected or failed"),
        ("orders_sent", f"{result.orders_sent:,}", ""),
        ("orders_acked", f"{result.orders_acked:,}", ""),
        ("rejects", f"{result.rejects:,}", ""),
        ("fills", f"{result.fills:,}", ""),
        ("errors", f"{result.errors:,}", ""),
        (
            "latency",
            f"p50={lat['p50']:.3f}ms p90={lat['p90']:.3f}ms p99={lat['p99']:.3f}ms",
            f"p99.9={lat['p999']:.3f}ms max={lat['max']:.3f}ms",
        ),
        (
            "backlog",
            f"{result.backlog:,}",
            f"waiting at the window's end; {result.unanswered:,} unanswered after the drain",
        ),
        ("overrun_s", f"{result.overrun_s:g}", "last reply after the window's end"),
    ]
    if result.loop == "open":
        rows.append(("generator_lag_ms", f"{result.generator_lag_ms or 0:,.3f}", "p99 send lag"))
    book = result.book or {}
    if book:
        growth = book.get("growth")
        trend = "" if growth is None else f"{growth:+.0%} from the first half to the second"
        if book.get("expected_resting") is not None:
            trend += f"; the mix predicts about {book['expected_resting']:,}"
        rows.append(("book.resting_orders", f"{book.get('resting_orders', 0):,}", trend))
    if result.failed_polls:
        rows.append(("failed_polls", f"{result.failed_polls:,}", "stats polls not answered"))
    for key, value, note in rows:
        console.print(f"  {key:.<22} {value:<40} {note}")
    if result.first_error:
        console.print(f"  [red]first error:[/] {result.first_error.splitlines()[-1]}")
    table = Table(title="actors", title_justify="left")
    columns = (
        "actor",
        "node",
        "busy",
        "process CPU",
        "max queue",
        "batches",
        "µs/msg",
        "batch p99 ms",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("actor", "node") else "right")
    for name, a in result.actors.items():
        node = f"{a.get('host', '?')} {a.get('node_ip', '')} {a.get('node_id', '')[:6]}"
        table.add_row(
            name,
            node,
            f"{a['busy']:.0%}",
            f"{a.get('cpu', 0):.0%}",
            str(a["max_queue"]),
            f"{a['batches']:,}",
            f"{a['us_per_message']:.2f}",
            f"{a['batch_service_ms']['p99']:.3f}",
        )
    console.print(table)


def print_runs(runs: list[dict], console: Console | None = None) -> None:
    console = console or _console()
    table = Table()
    for column in ("run_id", "created_at", "name", "orders/s", "p99 ms"):
        table.add_column(column)
    for run in runs:
        ops, p99 = run.get("orders_per_s"), run.get("p99_ms")
        table.add_row(
            run["run_id"],
            str(run.get("created_at", "")),
            str(run.get("name", "")),
            f"{ops:,.1f}" if ops is not None else "-",
            f"{p99:.3f}" if p99 is not None else "-",
        )
    console.print(table)


def print_sweep(summary: dict, console: Console | None = None) -> None:
    """Per point: the varied values, orders/s with its interval and n, p99 and efficiency
    (against the smallest N measured, named in the header); then the fits, per layout when
    the sweep varies it, saying when a fit is poor or sits on a bound."""
    # Imported here: lab.analysis.scaling loads SciPy, which printing a single run does not need.
    from lab.analysis.intervals import format_interval
    from lab.analysis.sweep_summary import efficiency_label, judge_fit, layout_groups, untested_drop

    console = console or _console()
    console.print(
        f"\n[bold]{summary['name']}[/]  sweep {summary['sweep_id']}  "
        f"layout {summary['layout']}  repeat {summary['repeat']}"
    )
    table = Table()
    searched = summary.get("figure") == "capacity"
    figure = "capacity orders/s" if searched else "orders/s (geo. mean)"
    keys = summary.get("compare_keys") or []
    # A comparison has no N: each choice is set against the first value of its key.
    extra = [f"vs first {k.rsplit('.', 1)[-1]}" for k in keys] or [efficiency_label(summary)]
    if summary.get("reference"):
        extra.append("× reference")
    for column in ("point", figure, "interval", "p99 ms", *extra):
        table.add_column(column, justify="left" if column == "point" else "right")
    for p in summary["points"]:
        ops, p99 = p["orders_per_s"], p["p99_ms"]["mean"]
        if keys:
            cells = [_cost_cell(p.get("costs", {}).get(k)) for k in keys]
        else:
            cells = ["-" if p.get("efficiency") is None else f"{p['efficiency']:.2f}"]
        if summary.get("reference"):
            ratio = (p.get("reference") or {}).get("ratio")
            cells.append("-" if ratio is None else f"{ratio:.2f}")
        table.add_row(
            ", ".join(f"{k}={v}" for k, v in p["values"].items()),
            "-" if ops["mean"] is None else f"{ops['mean']:,.0f}",
            format_interval(ops),  # carries n, or says there is no interval
            "-" if p99 is None else f"{p99:.3f}",
            *cells,
        )
    console.print(table)
    if keys:
        for finding in summary.get("findings") or []:
            console.print(f"  • {finding}", markup=False)
        return
    n_key, groups = summary.get("n_key"), layout_groups(summary["points"])
    for layout, fits in (summary.get("fits") or {None: summary}).items():
        points = summary["points"] if layout is None else groups.get(layout, [])
        usl = judge_fit(fits["usl"], points, n_key)
        amdahl = judge_fit(fits.get("amdahl") or {}, points, n_key)
        prefix = f"{layout} " if layout else ""
        if usl.get("ok"):
            peak = "∞" if usl["peak_n"] is None else f"{usl['peak_n']:.1f}"
            on_bound = usl["at_bound"] or usl.get("peak_below_range")  # no "N*≈0.0"
            r2 = "–" if usl["r2"] is None else f"{usl['r2']:.3f}"
            console.print(
                f"  {prefix}USL: λ={usl['lambda']:,.0f}/s per unit, σ={usl['sigma']:.4f}, "
                f"κ={usl['kappa']:.5f}{'' if on_bound else f', peak N*={peak}'}, R²={r2}"
                + ("  [red]poor fit[/]" if usl["poor"] else "")
            )
            for caveat in usl["caveats"]:
                console.print(f"    {caveat}", markup=False)
            if amdahl.get("ok"):
                r2 = "–" if amdahl["r2"] is None else f"{amdahl['r2']:.3f}"
                console.print(
                    f"  {prefix}Amdahl: λ={amdahl['lambda']:,.0f}/s, σ={amdahl['sigma']:.4f}, "
                    f"R²={r2}" + ("  [red]poor fit[/]" if amdahl["poor"] else "")
                )
        else:
            console.print(f"  {prefix}USL: not fitted ({usl.get('note') or 'no fit'})")
        retro = fits.get("retrograde") or {}
        if retro.get("detected") and retro.get("start_n") is not None:
            console.print(f"  {prefix}[red]retrograde scaling[/] from N={retro['start_n']:g}")
        elif untested_drop(retro):
            console.print(
                f"  {prefix}{retro['drop']:.0%} below the peak at the largest N, "
                "untested (too few runs to call it retrograde)"
            )
    bottleneck = summary.get("bottleneck") or {}
    if bottleneck.get("explanation"):
        console.print(f"  bottleneck: {bottleneck['explanation']}")
    for finding in summary.get("findings") or []:
        console.print(f"  • {finding}", markup=False)  # layout names are data, not markup


def _cost_cell(cost: dict | None) -> str:
    """ "-35% (sig.)", "+2% (n.s.)", or "-" for a point at its key's first value."""
    if not cost or cost.get("change") is None:
        return "-"
    tag = {True: "sig.", False: "n.s."}[bool(cost["significant"])]
    if cost["verdict"] == "untestable":
        tag = "untested"
    return f"{cost['change']:+.0%} ({tag})"


def print_capacity_point(point: dict) -> None:
    """One rate of a capacity search, as it is judged (on stderr, as progress)."""
    verdict = "passed" if point["passed"] else "failed"
    why = (
        "generator-limited"
        if point["generator_limited"]
        else "overloaded"
        if point["overloaded"]
        else "kept up"
    )
    _err.print(
        f"  {point['rate_per_s']:>12,.0f} orders/s offered: answered "
        f"{point['answered_per_s']:,.0f}/s, p99 {point['p99_ms']:,.2f} ms, {why}: {verdict}",
        soft_wrap=True,
    )


def print_capacity(summary: dict, console: Console | None = None) -> None:
    """The search's verdict, every rate it tried, and the machine probe beside it."""
    console = console or _console()
    console.print(
        f"\n[bold]{summary['name']}[/]  capacity {summary['capacity_id']}  "
        f"layout {summary['layout']}  SLO p99 ≤ {summary['slo_p99_ms']:g} ms  "
        f"repeat {summary['repeat']}"
    )
    console.print(f"  {summary['verdict']}")
    lo, hi = summary["bracket"]
    if lo is not None and hi is not None:
        console.print(f"  search bracket: {lo:,.0f} – {hi:,.0f} orders/s")
    table = Table()
    for column in ("offered/s", "answered/s", "acked/s", "p99 ms", "overloaded", "passed"):
        table.add_column(column, justify="right")
    for p in summary["points"]:
        table.add_row(
            f"{p['rate_per_s']:,.0f}",
            f"{p['answered_per_s']:,.0f}",
            f"{p['orders_per_s']:,.0f}",
            f"{p['p99_ms']:,.2f}",
            "generator-limited" if p["generator_limited"] else "yes" if p["overloaded"] else "no",
            "✓" if p["passed"] else "✗",
        )
    console.print(table)
    probe = summary["probe"]
    line = (
        f"  machine probe: {probe['chase_ns_per_load']:.1f} ns per dependent load "
        f"({probe['working_set_mb']:g} MiB), {probe['compute_ns_per_op']:.2f} ns per op"
    )
    if "loads_per_order" in summary:
        line += (
            f"; at capacity one order costs {summary['loads_per_order']:,.2f} loads "
            f"or {summary['ops_per_order']:,.0f} ops of the probe"
        )
    console.print(line)
