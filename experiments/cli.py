"""The `leastaction` command line.

    leastaction list
    leastaction run NAME [--out DIR] [--force] [--set key=value]... [--quiet]
    leastaction compare [--problem P]... [--method M]... [--reference R] [--dtype D] [--out DIR]
    leastaction compare --list

Errors a user can fix (an unknown experiment, a bad `--set`, an output folder
that exists or cannot be written) are one line on stderr and exit code 2, with
no traceback and no folder left behind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import config as configs
from . import runner
from .catalog import CATALOG, get

app = typer.Typer(
    name="leastaction",
    help="Backpropagation simulated as physics: run experiments that write re-runnable folders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

USAGE_ERROR = 2
INTERRUPTED = 130


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = USAGE_ERROR) -> typer.Exit:
    _console(stderr=True).print(f"error: {message}", markup=False)
    return typer.Exit(code)


@app.command("list")
def list_experiments() -> None:
    """List the experiments in the catalogue with their default configs."""
    table = Table(title="leastaction experiments", title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("description")
    table.add_column("config (defaults)")
    for name in sorted(CATALOG):
        experiment = CATALOG[name]
        defaults = " ".join(f"{k}={v!r}" for k, v in configs.as_dict(experiment.config).items())
        table.add_row(name, experiment.description, defaults)
    Console(highlight=False).print(table)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3e}" if value != 0 and not 1e-3 <= abs(value) < 1e4 else f"{value:.6g}"
    return str(value)


def _run_with_progress(experiment, overrides, out, force, quiet) -> runner.RunRecord:
    """`runner.run` with a progress bar on stderr (none when `quiet`); user errors exit 2."""
    name = experiment.name
    try:
        if quiet:
            return runner.run(experiment, overrides, out=out, force=force)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=_console(stderr=True), transient=True) as bar:
            task = bar.add_task(f"{name}: resolving config", total=None)

            def show(done: int, total: int, description: str) -> None:
                bar.update(task, completed=done, total=total, description=f"{name}: {description}")

            return runner.run(experiment, overrides, out=out, force=force, progress=show)
    except ValueError as error:
        raise _fail(str(error)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; no output folder was written", INTERRUPTED) from None


@app.command("run")
def run_experiment(
    name: Annotated[str, typer.Argument(help="experiment name (see `leastaction list`)")],
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="output folder [default: runs/NAME-YYYYmmdd-HHMMSS]"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing output folder")] = False,
    settings: Annotated[
        Optional[list[str]],
        typer.Option("--set", "-s", help="override a config value, key=value (repeatable)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress; print only the folder")] = False,
) -> None:
    """Run an experiment into a new folder (config, manifest, results, figures, tables, log)."""
    try:
        experiment = get(name)
        overrides = configs.parse_assignments(settings or [])
        experiment.resolve(overrides)
        if out is not None:
            runner.check_output_dir(out.absolute(), force)
    except ValueError as error:
        raise _fail(str(error)) from None

    console = _console()
    started = time.perf_counter()
    record = _run_with_progress(experiment, overrides, out, force, quiet)
    if quiet:
        console.print(str(record.folder), markup=False)
        return
    elapsed = time.perf_counter() - started
    console.print(f"{name} finished in {elapsed:.1f} s")
    console.print(f"folder: {record.folder}", markup=False)
    headline = record.headline(experiment.headline)
    if headline:
        summary = Table(show_header=False)
        summary.add_column("result", style="bold")
        summary.add_column("value", justify="right")
        for key, value in headline:
            summary.add_row(key, _format(value))
        console.print(summary)


FAILED = 1
"""Exit code of `compare` when a project method misses its tolerance."""


def _list_registries() -> None:
    from .harness import METHODS, PROBLEMS

    console = Console(highlight=False)
    methods = Table(title="gradient methods", title_justify="left")
    for column in ("name", "kind", "tolerance (float64 / float32)", "description"):
        methods.add_column(column, no_wrap=column != "description")
    for name, method in METHODS.items():
        tol = " / ".join("reported" if method.tolerance_for(d) is None else f"{method.tolerance_for(d):g}"
                         for d in ("float64", "float32"))
        methods.add_row(name, method.kind, tol, method.description)
    console.print(methods)
    problems = Table(title="problems", title_justify="left")
    problems.add_column("name", no_wrap=True)
    problems.add_column("description")
    for name, spec in PROBLEMS.items():
        problems.add_row(name, spec.description)
    console.print(problems)


@app.command("compare")
def compare(
    problem: Annotated[
        Optional[list[str]], typer.Option("--problem", "-p", help="problem name (repeatable) [default: all]")
    ] = None,
    method: Annotated[
        Optional[list[str]], typer.Option("--method", "-m", help="method name (repeatable) [default: all]")
    ] = None,
    reference: Annotated[str, typer.Option("--reference", "-r", help="reference method")] = "jax-grad",
    dtype: Annotated[str, typer.Option("--dtype", help="float64 or float32")] = "float64",
    seed: Annotated[int, typer.Option("--seed", help="seed of the problems' weights and batches")] = 0,
    repeats: Annotated[int, typer.Option("--repeats", help="timed warm calls per pair (median)")] = 5,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="output folder [default: runs/compare-YYYYmmdd-HHMMSS]"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing output folder")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress or tables; print only the folder")] = False,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache",
                           help="keep compiled XLA programs in ~/.cache/leastaction/xla: a re-run skips compilation")
    ] = True,
    list_: Annotated[bool, typer.Option("--list", help="list the methods and problems, then exit")] = False,
) -> None:
    """Compare every gradient method with a reference on every problem; exit 1 if a project
    method misses its tolerance. Writes a folder (results.json, tables, heat map)."""
    if list_:
        _list_registries()
        return
    overrides = {
        "problems": ",".join(problem) if problem else "all",
        "methods": ",".join(method) if method else "all",
        "reference": reference, "dtype": dtype, "seed": seed, "repeats": repeats,
    }
    try:
        experiment = get("compare")
        experiment.resolve(overrides)
        if out is not None:
            runner.check_output_dir(out.absolute(), force)
    except ValueError as error:
        raise _fail(str(error)) from None

    if cache:
        from .harness import enable_compilation_cache

        try:
            enable_compilation_cache()
        except OSError as error:
            _console(stderr=True).print(f"warning: no compilation cache ({error})", markup=False)
    record = _run_with_progress(experiment, overrides, out, force, quiet)
    summary = record.results["summary"]
    console = _console()
    if quiet:
        console.print(str(record.folder), markup=False)
    else:
        from .harness import report

        for renderable in report.terminal(record.results, width=console.width):
            console.print(renderable)
        counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
        console.print(f"{summary['pairs']} pairs ({counts}) in {summary['wall_seconds']:.1f} s")
        console.print(f"folder: {record.folder}", markup=False)
    if summary["project_failures"]:
        _console(stderr=True).print(
            f"FAILED: {summary['project_failures']} project method(s) missed their tolerance: "
            + "; ".join(summary["failed_cells"]), markup=False)
        raise typer.Exit(FAILED)
