"""The ``lab`` command line."""

import sys
from pathlib import Path

import typer

from lab.cli.k8s import k8s_app
from lab.errors import LabError, ThresholdError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="HFT scaling lab.",
)
bench_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmarks that print their figures.",
)
app.add_typer(bench_app, name="bench")
results_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="Stored run results."
)
app.add_typer(results_app, name="results")
app.add_typer(k8s_app, name="k8s")


@app.command()
def run(
    config: Path = typer.Argument(..., help="Experiment config (YAML)."),
    layout: str = typer.Option("single-host", "--layout", help="Named layout in the config."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: section.key=value."),
    json_out: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Run one experiment and print its summary; exit 99 if a threshold is missed."""
    from lab.report.console import LiveProgress, print_summary
    from lab.run.experiment import Experiment

    experiment = Experiment.from_yaml(config, layout=layout, overrides=set_)
    duration = experiment.config.experiment.duration_s
    live_terminal = not json_out and sys.stderr.isatty()
    with LiveProgress(duration, enabled=live_terminal, plain=not live_terminal) as live:
        result = experiment.run(on_progress=live.update)
    if json_out:
        _print_json(result.to_dict())
    else:
        print_summary(result)
    _say_where_stored(result.run_id, experiment.config.results.url)
    if result.thresholds_missed:
        raise ThresholdError("thresholds missed: " + "; ".join(result.thresholds_missed))


@app.command()
def serve(
    config: Path = typer.Argument(..., help="Experiment config (YAML)."),
    layout: str = typer.Option("single-host", "--layout", help="Named layout in the config."),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="The first gateway's port (backend i: port + i)."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: section.key=value."),
) -> None:
    """Serve the platform (engine shards, backends, HTTP gateways) until Ctrl-C."""
    from lab.run.experiment import Experiment
    from lab.run.serve import serve as run_serve

    def ready(where: dict) -> None:
        for url in where["gateways"]:
            typer.echo(f"gateway   {url}/v1")
        typer.echo(f"openapi   {where['openapi']}  (docs: {where['docs']})")
        typer.echo(f"dashboard {where['dashboard'] or 'none (no Ray on this layout)'}")
        typer.echo("serving; Ctrl-C stops")

    experiment = Experiment.from_yaml(config, layout=layout, overrides=set_)
    run_serve(experiment, port, ready)
    typer.echo("stopped", err=True)


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="Experiment config (YAML)."),
    vary: list[str] = typer.Option(
        [], "--vary", help="KEY=V1,V2,... (repeatable; default: the config's sweep.vary)."
    ),
    repeat: int | None = typer.Option(None, "--repeat", help="Runs per point."),
    layout: str = typer.Option("single-host", "--layout", help="Named layout in the config."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: section.key=value."),
    report_dir: Path | None = typer.Option(
        None, "--report", help="Also write the sweep's report (PNGs + HTML) here."
    ),
    capacity: bool = typer.Option(
        False, "--capacity", help="Search each point's capacity (see `lab capacity`)."
    ),
    p99_ms: float | None = typer.Option(
        None, "--p99-ms", help="With --capacity: the p99 SLO in ms (default: capacity.slo_p99_ms)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Run a scaling sweep, fit the USL and name the stage that saturates first."""
    from lab.report.console import print_capacity_point, print_sweep
    from lab.run.sweep import parse_vary
    from lab.run.sweep import sweep as run_sweep

    def progress(values, result):
        if not json_out:
            typer.echo(
                f"  {values}: {result.orders_per_s:,.0f} orders/s, "
                f"p99 {result.latency_ms['p99']:.3f} ms",
                err=True,
            )

    def capacity_progress(values, point):
        if not json_out:
            typer.echo(f"  {values}:", err=True, nl=False)
            print_capacity_point(point)

    summary = run_sweep(
        str(config),
        parse_vary(vary) or None,
        repeat=repeat,
        layout=layout,
        overrides=set_,
        on_run=progress,
        capacity=capacity,
        slo_p99_ms=p99_ms,
        on_capacity_point=capacity_progress,
    )
    if report_dir is not None:
        from lab.report.html import write_report

        summary["report"] = str(write_report(summary, report_dir))
    if json_out:
        _print_json(summary)
    else:
        print_sweep(summary)
        if report_dir is not None:
            typer.echo(f"report: {summary['report']}")


@app.command()
def capacity(
    config: Path = typer.Argument(..., help="Experiment config (YAML)."),
    p99_ms: float | None = typer.Option(
        None, "--p99-ms", help="The p99 SLO in ms (default: the config's capacity.slo_p99_ms)."
    ),
    layout: str = typer.Option("single-host", "--layout", help="Named layout in the config."),
    repeat: int | None = typer.Option(None, "--repeat", help="Runs per rate tried."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: section.key=value."),
    json_out: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Search for the highest open-loop rate that keeps up within a p99 SLO."""
    from lab.report.console import print_capacity, print_capacity_point
    from lab.run.capacity import capacity_search
    from lab.run.experiment import Experiment

    experiment = Experiment.from_yaml(config, layout=layout, overrides=set_)
    summary = capacity_search(
        experiment,
        slo_p99_ms=p99_ms,
        repeat=repeat,
        on_point=None if json_out else print_capacity_point,
    )
    if json_out:
        _print_json(summary)
    else:
        print_capacity(summary)


@app.command()
def report(
    run_or_sweep_id: str = typer.Argument(..., help="A run or sweep id (or unique prefix)."),
    out: Path = typer.Option(..., "-o", "--out", help="Directory for the PNGs and index.html."),
    url: str = typer.Option("sqlite:///results/lab.sqlite", "--url", help="Results store."),
) -> None:
    """Write PNG plots and one self-contained HTML page for a run or a sweep."""
    from lab.report.html import write_report
    from lab.store.result_store import ResultStore

    with ResultStore.open(url) as store:
        data = store.find(run_or_sweep_id)
    typer.echo(str(write_report(data, out)))


@bench_app.command("transport")
def bench_transport(
    config: Path = typer.Argument(Path("configs/bench-single-host.yaml"), help="Experiment."),
    layout: str = typer.Option("single-host", "--layout"),
    set_: list[str] = typer.Option([], "--set", help="Override a config key."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The topology with no-op engines and backends, then with real ones, in one session."""
    from lab.bench.transport import run_transport_bench

    result = run_transport_bench(str(config), layout, set_)
    if json_out:
        _print_json(result)
    else:
        _print_figures(result)


@bench_app.command("http")
def bench_http(
    config: Path = typer.Argument(Path("configs/quickstart.yaml"), help="The platform's config."),
    layout: str = typer.Option("single-host", "--layout"),
    duration: float = typer.Option(5.0, "--duration", min=0.5, help="Measured seconds per leg."),
    in_flight: int | None = typer.Option(
        None, "--in-flight", min=1, help="Requests in flight (default 64)."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a config key."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """A bare FastAPI endpoint; one order per request, and 1,000 per batch, via the gateway."""
    from lab.bench.http import IN_FLIGHT, run_http_bench

    in_flight = IN_FLIGHT if in_flight is None else in_flight
    result = run_http_bench(str(config), layout, set_, duration_s=duration, in_flight=in_flight)
    if json_out:
        _print_json(result)
    else:
        _print_figures(result)


@bench_app.command("serve")
def bench_serve(
    duration: float = typer.Option(5.0, "--duration", min=0.5, help="Measured seconds per leg."),
    in_flight: int = typer.Option(32, "--in-flight", min=1, help="Requests in flight."),
    repeats: int = typer.Option(2, "--repeats", min=1, help="Runs of each leg, alternated."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The bare FastAPI app on uvicorn in a Ray actor, and behind Ray Serve."""
    from lab.bench.serve import run_serve_bench

    result = run_serve_bench(duration_s=duration, in_flight=in_flight, repeats=repeats)
    if json_out:
        _print_json(result)
    else:
        _print_figures({k: v for k, v in result.items() if k != "runs"})


@results_app.command("list")
def results_list(
    url: str = typer.Option("sqlite:///results/lab.sqlite", "--url", help="Results store."),
    limit: int = typer.Option(50, "--limit"),
) -> None:
    """Recent runs, newest first."""
    from lab.report.console import print_runs
    from lab.store.result_store import ResultStore

    with ResultStore.open(url) as store:
        print_runs(store.list_runs(limit=limit))


@results_app.command("show")
def results_show(
    run_id: str = typer.Argument(..., help="A run id or a unique prefix of one."),
    url: str = typer.Option("sqlite:///results/lab.sqlite", "--url", help="Results store."),
    json_out: bool = typer.Option(False, "--json", help="Print the stored JSON."),
) -> None:
    """One stored run."""
    from lab.report.console import print_summary
    from lab.run.result import Result
    from lab.store.result_store import ResultStore

    with ResultStore.open(url) as store:
        data = store.get_run(run_id)
    if json_out:
        _print_json(data)
    else:
        print_summary(Result.from_dict(data))


@app.command()
def replay(
    orders: Path = typer.Argument(
        ...,
        help="ORDERS.csv to replay: columns seq,action,order_id,account,symbol,side,type,"
        "price,qty; action NEW, CANCEL or MODIFY; side B or S (or BUY, SELL); type LIMIT, "
        "MARKET, IOC or FOK.",
    ),
    trades: Path = typer.Option(..., "--trades", help="Where to write TRADES.csv."),
    book: Path = typer.Option(..., "--book", help="Where to write BOOK.csv."),
    rejects: Path = typer.Option(..., "--rejects", help="Where to write REJECTS.csv."),
    stp: str = typer.Option("none", "--stp", help="Self-trade prevention: none|cancel-newest."),
) -> None:
    """Replay an order CSV through the engine and write trades, final book and rejects."""
    from lab.replay.run import replay_csv

    summary = replay_csv(orders, trades_path=trades, book_path=book, rejects_path=rejects, stp=stp)
    typer.echo(summary.describe(), err=True)


@bench_app.command("engine")
def bench_engine(
    messages: int = typer.Option(5_000_000, "--messages", help="Messages in the standard mix."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    seed: int = typer.Option(1, "--seed"),
    orders: int | None = typer.Option(
        None,
        "--orders",
        min=0,
        help="Order pools pre-allocated (and faulted in) before the clock; 0: grow from small."
        " Default: room for the mix's book.",
    ),
) -> None:
    """Single-core engine throughput on the standard mix."""
    from lab.bench.engine import DEFAULT_ORDERS, run_engine_bench

    orders = DEFAULT_ORDERS if orders is None else orders
    result = run_engine_bench(messages=messages, seed=seed, orders=orders)
    if json_out:
        _print_json(result)
    else:
        _print_figures(result)


def _say_where_stored(run_id: str, url: str) -> None:
    from lab.store.result_store import describe_location

    typer.echo(f"stored {run_id} in {describe_location(url)}", err=True)


def _print_figures(result: dict) -> None:
    """A benchmark's figures, one per row; a nested dict (the probe) one row per key."""
    rows = []
    for key, value in result.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{sub}", subvalue) for sub, subvalue in value.items()]
        else:
            rows.append((key, value))
    for key, value in rows:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        typer.echo(f"{key:>26}: {value:,}" if number else f"{key:>26}: {value}")


#: Where ``--json`` output goes: the real stdout, kept aside by :func:`main`.
_json_out = None


def _print_json(data) -> None:
    import json

    out = _json_out or sys.stdout
    out.write(json.dumps(data) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning ``LabError`` into a message and an exit code.

    Under ``--json`` a failed command still prints exactly one JSON object on
    stdout: ``error``, ``exit_code`` and whatever was measured before it failed
    (a missed threshold prints the result itself, which says so).
    """
    args = sys.argv[1:] if argv is None else argv
    global _json_out
    if "--json" in args:
        # Ray prints its own messages (a worker that died, say) on stdout; under --json
        # stdout holds the one JSON object only, so everything else goes to stderr.
        _json_out, sys.stdout = sys.stdout, sys.stderr
    try:
        # Without standalone mode click returns a typer.Exit's code instead of raising it.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LabError as exc:
        typer.echo(f"error: {exc}", err=True)
        if "--json" in args and not isinstance(exc, ThresholdError):
            measured = getattr(exc, "partial", None) or {}
            _print_json({**measured, "error": str(exc), "exit_code": exc.exit_code})
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
