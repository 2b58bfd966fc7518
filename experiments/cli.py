"""The `leastaction` command line.

    leastaction list
    leastaction run NAME [--out DIR] [--force] [--set key=value]... [--config FILE] [--quick] [--quiet]
    leastaction reproduce DIR [--out NEW]
    leastaction verify DIR [--keep NEW]
    leastaction figures [--only NAME]... [--dir figures] [--runs DIR] [--quick]
    leastaction sweep NAME --grid key=v1,v2,... [--grid ...] [--set key=value]... [--scheduler ADDRESS] [--no-dashboard]
    leastaction compare [--problem P]... [--method M]... [--reference R] [--dtype D] [--out DIR] [--quick]
    leastaction compare --list

Errors a user can fix (an unknown experiment, a bad `--set`, an output folder
that exists or cannot be written) are one line on stderr and exit code 2, with
no traceback and no folder left behind. A run that fails for want of memory or
on arrays of mismatched shapes is one line naming the cause and a hint, exit
code 1; `leastaction --debug COMMAND ...` shows the traceback instead. `verify` exits 1 when a file differs from
its manifest or a number from the re-run (and prints each); `sweep` exits 1 when a point failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from . import config as configs
from . import folders
from . import runner
from .catalog import CATALOG, get

app = typer.Typer(
    name="leastaction",
    help="Backpropagation simulated as physics: run experiments that write re-runnable folders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # help texts are plain: "[verify]" and "[default: ...]" are shown, not parsed as markup
)

USAGE_ERROR = 2
INTERRUPTED = 130
FAILED_RUN = 1
"""Exit code of a run that failed for a reason named in one line (out of memory, a shape mismatch)."""

_DEBUG = {"on": False}
"""Set by `--debug`: failures show their traceback instead of one line."""


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="show the full traceback of a failed run "
                                                         "(out of memory, shape mismatch) instead of one line")] = False,
) -> None:
    """Backpropagation simulated as physics: run experiments that write re-runnable folders."""
    _DEBUG["on"] = debug


def diagnose(error: BaseException) -> str | None:
    """One line naming the cause of a failed run and a hint, for the failures a user can fix
    by changing the config: out of memory and arrays of mismatched shapes; `None` for others.

    Example:
        >>> diagnose(MemoryError())
        'out of memory (MemoryError); hint: smaller sizes (--set steps=..., batch=...) or --quick; --debug shows the traceback'
        >>> diagnose(TypeError("sub got incompatible shapes for broadcasting: (2,), (3,)."))
        'shape mismatch: sub got incompatible shapes for broadcasting: (2,), (3,).; hint: a size in the config (or a target, a width) does not fit the others; --debug shows the traceback'
        >>> diagnose(KeyError("x")) is None
        True
    """
    import jax

    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    memory = isinstance(error, MemoryError) or (
        isinstance(error, jax.errors.JaxRuntimeError)
        and any(word in text for word in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory")))
    if memory:
        detail = first if text else "MemoryError"
        if len(detail) > 160:
            detail = detail[:157] + "..."
        return (f"out of memory ({detail}); hint: smaller sizes (--set steps=..., batch=...) or --quick; "
                "--debug shows the traceback")
    shapes = isinstance(error, (TypeError, ValueError)) and any(
        word in text for word in ("incompatible shapes", "shape mismatch", "shapes must", "must have shape",
                                  "dot_general requires", "Incompatible shapes", "cannot reshape"))
    if shapes:
        return (f"shape mismatch: {first}; hint: a size in the config (or a target, a width) does not fit the "
                "others; --debug shows the traceback")
    return None


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = USAGE_ERROR) -> typer.Exit:
    _console(stderr=True).print(f"error: {message}", markup=False)
    return typer.Exit(code)


def _fold(renderable, console: Console):
    """A rich table that fits `console`'s width without cutting a value to "...".

    A table wider than the console is drawn without borders (a rule under the header,
    one space between columns) and given fixed column widths: starting from each
    column's widest value, the widest column is narrowed one character at a time (to
    no less than 10) until the table fits; values longer than their column fold onto
    further lines, headers wrap at spaces. Descriptions therefore fold first, and
    short values (numbers, names where there is room) stay whole."""
    if not isinstance(renderable, Table):
        return renderable
    wide = console.options.update_width(10_000)
    if Measurement.get(console, wide, renderable).maximum <= console.width:
        return renderable
    renderable.box = box.SIMPLE_HEAD
    renderable.show_edge = False
    renderable.pad_edge = False
    renderable.collapse_padding = True
    columns = renderable.columns
    widths = []
    for column in columns:
        cells = [Text.from_markup(c).cell_len if isinstance(c, str) else console.measure(c).maximum
                 for c in column.cells]
        words = Text.from_markup(str(column.header)).plain.split() or [""]
        widths.append(max([*cells, *map(len, words), 1]))  # a header wraps between its words
        column.no_wrap, column.overflow, column.width = False, "fold", widths[-1]
    # what the rules and padding between the columns take, measured with every width fixed
    available = console.width - (Measurement.get(console, wide, renderable).maximum - sum(widths))
    while sum(widths) > available and max(widths) > 10:
        widths[widths.index(max(widths))] -= 1
    for column, width in zip(columns, widths):
        column.width = width
    return renderable


@app.command("list")
def list_experiments() -> None:
    """List the experiments in the catalogue with their default configs."""
    table = Table(title="leastaction experiments", title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    table.add_column("config (defaults)", overflow="fold", ratio=1)
    for name in sorted(CATALOG):
        experiment = CATALOG[name]
        defaults = " ".join(f"{k}={v!r}" for k, v in configs.as_dict(experiment.config).items())
        table.add_row(name, Text(experiment.description), Text(defaults))
    Console(highlight=False).print(table)  # its two long columns fold, sharing the width


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3e}" if value != 0 and not 1e-3 <= abs(value) < 1e4 else f"{value:.6g}"
    return str(value)


def _with_progress(name: str, quiet: bool, work):
    """`work(progress)` under a rich progress bar on stderr (steps done/total, elapsed,
    ETA; none when `quiet`); user errors (`ValueError`) exit 2, Ctrl-C exits 130, out of
    memory and shape mismatches (`diagnose`) exit 1 with one line (the traceback with `--debug`)."""
    try:
        if quiet:
            return work(runner.no_progress)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=_console(stderr=True), transient=True) as bar:
            task = bar.add_task(f"{name}: resolving config", total=None)

            def show(done: int, total: int, description: str) -> None:
                bar.update(task, completed=done, total=total, description=f"{name}: {description}")

            return work(show)
    except KeyboardInterrupt:
        raise _fail("interrupted; no output folder was written", INTERRUPTED) from None
    except Exception as error:
        if _DEBUG["on"]:
            raise
        cause = diagnose(error)
        if cause is not None:
            raise _fail(f"{name} failed: {cause}; no output folder was written", FAILED_RUN) from None
        if isinstance(error, ValueError):
            raise _fail(str(error)) from None
        raise


def _run_with_progress(experiment, overrides, out, force, quiet) -> runner.RunRecord:
    """`runner.run` with a progress bar on stderr (none when `quiet`); user errors exit 2."""
    return _with_progress(experiment.name, quiet, lambda show: runner.run(
        experiment, overrides, out=out, force=force, progress=show))


def _overrides(experiment, config_file: Optional[Path], settings: Optional[list[str]], quick: bool) -> dict:
    """Config values from `--config FILE`, then `--set`, then `--quick` (validated, not yet run)."""
    overrides: dict = {}
    if config_file is not None:
        name, values = runner.read_overrides(config_file)
        if name is not None and name != experiment.name:
            raise ValueError(f"{config_file} is a config of experiment {name!r}, not {experiment.name!r}")
        overrides.update(values)
    overrides.update(configs.parse_assignments(settings or []))
    if quick:
        if experiment.has_quick:
            overrides["quick"] = True
        else:
            _console(stderr=True).print(f"note: {experiment.name} has no separate quick preset: its defaults are "
                                        "already small, and --quick runs them", markup=False)
    experiment.resolve(overrides)
    return overrides


def _print_headline(console, record, experiment) -> None:
    headline = record.headline(experiment.headline)
    if headline:
        summary = Table(show_header=False)
        summary.add_column("result", style="bold")
        summary.add_column("value", justify="right")
        for key, value in headline:
            summary.add_row(key, _format(value))
        console.print(summary)


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
    config_file: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="TOML file of config values (a run's config.toml or key = value lines); "
                     "--set wins over it"),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="the experiment's quick preset (sets quick=true; the "
                                                        "defaults where they are already small)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress; print only the folder")] = False,
) -> None:
    """Run an experiment into a new folder (config, manifest, results, figures, tables, log)."""
    try:
        experiment = get(name)
        overrides = _overrides(experiment, config_file, settings, quick)
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
    _print_headline(console, record, experiment)


@app.command("reproduce")
def reproduce(
    folder: Annotated[Path, typer.Argument(help="a run folder (holding config.toml)")],
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="output folder [default: runs/NAME-YYYYmmdd-HHMMSS]"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing output folder")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress; print only the folder")] = False,
) -> None:
    """Re-run the experiment of FOLDER from its config.toml into a new folder."""
    try:
        experiment, _, _ = folders.load_folder(folder)
        if out is not None:
            runner.check_output_dir(out.absolute(), force)
    except ValueError as error:
        raise _fail(str(error)) from None
    record = _with_progress(experiment.name, quiet, lambda show: folders.reproduce(
        folder, out=out, force=force, progress=show))
    console = _console()
    if quiet:
        console.print(str(record.folder), markup=False)
        return
    console.print(f"reproduced {folder} -> folder: {record.folder}", markup=False)
    _print_headline(console, record, experiment)


MISMATCH = 1
"""Exit code of `verify` when a file differs from its manifest or the re-run, or a number beyond its tolerance."""


def _difference_table(comparison, limit: int) -> Table:
    table = Table(title=f"results.json differences ({len(comparison.differences)})", title_justify="left")
    table.add_column("key", no_wrap=True)
    for column, justify in (("recorded", "right"), ("re-run", "right"), ("|diff|", "right"),
                            ("rel. diff", "right"), ("why", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for d in comparison.differences[:limit]:
        table.add_row(d.path, _format(d.expected), _format(d.got),
                      "" if d.abs_diff is None else _format(d.abs_diff),
                      "" if d.rel_diff is None else _format(d.rel_diff), d.reason)
    if len(comparison.differences) > limit:
        table.add_row(f"... {len(comparison.differences) - limit} more", "", "", "", "", "")
    return table


@app.command("verify")
def verify(
    folder: Annotated[Path, typer.Argument(help="a run folder (config.toml and results.json)")],
    keep: Annotated[
        Optional[Path], typer.Option("--keep", help="keep the re-run in this folder [default: a deleted temp folder]"),
    ] = None,
    rtol: Annotated[Optional[float], typer.Option("--rtol", help="override the [verify] rtol of config.toml")] = None,
    atol: Annotated[Optional[float], typer.Option("--atol", help="override the [verify] atol of config.toml")] = None,
    limit: Annotated[int, typer.Option("--limit", help="at most this many differences printed")] = 50,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress; print only the verdict")] = False,
) -> None:
    """Check FOLDER's files against the SHA-256 digests of its manifest.json, re-run it from its config.toml
    and compare every number of results.json within the tolerances of its [verify] table (and its figures and
    tables byte for byte where the re-run's numbers are bit-for-bit equal); exit 1 naming every changed,
    missing or extra file and every differing number."""
    try:
        experiment, _, tolerances = folders.load_folder(folder)
        if rtol is not None or atol is not None:
            tolerances = runner.Tolerances(rtol=tolerances.rtol if rtol is None else rtol,
                                           atol=tolerances.atol if atol is None else atol,
                                           volatile=tolerances.volatile)
        if not (folder / runner.RESULTS).is_file():
            raise ValueError(f"{folder} has no {runner.RESULTS}")
    except ValueError as error:
        raise _fail(str(error)) from None
    outcome = _with_progress(experiment.name, quiet, lambda show: folders.verify(
        folder, keep=keep, progress=show, tolerances=tolerances))
    c, files = outcome.comparison, outcome.files
    console = _console()
    tol = f"rtol {c.tolerances.rtol:g}, atol {c.tolerances.atol:g}"
    if not quiet and c.excluded:
        console.print(f"excluded as volatile (timings, memory; not compared): {len(c.excluded)} values: "
                      + ", ".join(c.excluded[:8]) + (" ..." if len(c.excluded) > 8 else ""), markup=False)
    if not quiet and files.rerun_skipped:
        console.print(f"figures and tables not compared with the re-run: {files.rerun_skipped}", markup=False)
    if outcome.ok:
        rerun = f", {files.rerun_compared} figures and tables equal to the re-run's" if files.rerun_compared else ""
        console.print(f"verified {folder}: {files.checked} files match manifest.json{rerun}; "
                      f"{c.checked} values match within {tol} "
                      f"(largest difference {c.max_abs_diff:.3g} abs, {c.max_rel_diff:.3g} rel; "
                      f"{len(c.excluded)} volatile excluded)", markup=False)
        return
    err = _console(stderr=True)
    err.width = max(err.width, 140)  # keys are long dotted paths: keep each on one line
    if not files.ok:
        findings = files.findings()
        table = Table(title=f"file differences ({len(findings)})", title_justify="left")
        table.add_column("file", no_wrap=True)
        table.add_column("why", overflow="fold")
        for name, why in findings:
            table.add_row(Text(name), Text(why))
        err.print(table)
        err.print(f"MISMATCH: {len(findings)} file(s) of {folder} differ from manifest.json or the re-run",
                  markup=False)
    if not c.ok:
        err.print(_difference_table(c, limit))
        err.print(f"MISMATCH: {len(c.differences)} of {c.checked} values of {folder}/results.json differ from a "
                  f"re-run beyond {tol}", markup=False)
    raise typer.Exit(MISMATCH)


@app.command("figures")
def figures(
    only: Annotated[
        Optional[list[str]], typer.Option("--only", help="only this experiment's figures (repeatable)"),
    ] = None,
    directory: Annotated[Path, typer.Option("--dir", help="where the README figures live")] = Path("figures"),
    runs: Annotated[
        Optional[Path], typer.Option("--runs", help="keep the fresh runs under this folder [default: discarded]"),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="quick presets (to test the pipeline, not for the README)")
                     ] = False,
    list_: Annotated[bool, typer.Option("--list", help="list which experiment makes which figure and README table, "
                                                       "then exit")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress")] = False,
) -> None:
    """Regenerate every README figure under figures/, and every README table block of README.md, from fresh runs
    of the experiments that make them."""
    from . import readme_figures

    try:
        sources = readme_figures.registry()
    except ValueError as error:
        raise _fail(str(error)) from None
    console = _console()
    if list_:
        table = Table(title="README figures", title_justify="left")
        table.add_column("figures/ file", overflow="fold", ratio=1)
        table.add_column("experiment", no_wrap=True)        # the name to pass to --only, whole
        table.add_column("run figure", overflow="fold", ratio=1)
        table.add_column("config", overflow="fold", ratio=1)
        for s in sources:
            table.add_row(f"{s.target}.png|pdf", s.experiment, f"figures/{s.stem}",
                          " ".join(f"{k}={v!r}" for k, v in s.overrides.items()) or "(defaults)")
        for name, experiment in sorted(CATALOG.items()):
            for block, stem in sorted(experiment.readme_tables.items()):
                table.add_row(f"README.md <!-- {block} -->", name, f"tables/{stem}.md",
                              " ".join(f"{k}={v!r}" for k, v in experiment.figures_config.items()) or "(defaults)")
        console.print(table)
        return
    written = _with_progress("figures", quiet, lambda show: readme_figures.regenerate(
        directory, only=only, quick=quick, runs=runs, progress=show))
    for path in written:
        console.print(str(path), markup=False)


@app.command("sweep")
def sweep(
    name: Annotated[str, typer.Argument(help="experiment name (see `leastaction list`)")],
    grid: Annotated[list[str], typer.Option("--grid", "-g", help="key=v1,v2,... (repeatable: cartesian product)")],
    settings: Annotated[
        Optional[list[str]], typer.Option("--set", "-s", help="a config value shared by every point (repeatable)"),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="every point runs the quick preset")] = False,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="sweep folder [default: runs/sweep-NAME-YYYYmmdd-HHMMSS]"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing sweep folder")] = False,
    scheduler: Annotated[
        Optional[str], typer.Option("--scheduler", help="address of a running Dask scheduler [default: a LocalCluster]"),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="LocalCluster worker processes")] = 2,
    threads: Annotated[int, typer.Option("--threads", help="threads per LocalCluster worker")] = 1,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard",
                                            help="serve the LocalCluster's Dask dashboard and print its link")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress; print only the folder")] = False,
) -> None:
    """Run an experiment at every point of a grid on Dask: one folder per point and a summary table.
    Prints the Dask dashboard's link; the progress bar shows each running point's steps."""
    from . import sweep as sweeps

    try:
        experiment = get(name)
        base = _overrides(experiment, None, settings, quick)
        parsed = sweeps.parse_grid(grid)
        points = sweeps.grid_points(experiment, parsed, base)
        if out is not None:
            runner.check_output_dir(out.absolute(), force)
    except ValueError as error:
        raise _fail(str(error)) from None
    announce = (lambda message: None) if quiet else (
        lambda message: _console(stderr=True).print(message, markup=False))
    record = _with_progress(f"sweep {name}", quiet, lambda show: sweeps.run_sweep(
        experiment, parsed, base, out=out, force=force, scheduler=scheduler, workers=workers, threads=threads,
        progress=show, dashboard=dashboard, announce=announce))
    console = _console()
    if quiet:
        console.print(str(record.folder), markup=False)
    else:
        console.print(f"{len(points)} points -> folder: {record.folder}", markup=False)
        console.print((record.folder / f"{sweeps.SUMMARY}.md").read_text(encoding="utf-8"), markup=False)
    if record.failures:
        _console(stderr=True).print(f"FAILED: {len(record.failures)} point(s): " + "; ".join(
            f"{r['point']}: {r['error']}" for r in record.failures), markup=False)
        raise typer.Exit(1)


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
    console.print(_fold(methods, console))
    problems = Table(title="problems", title_justify="left")
    problems.add_column("name", no_wrap=True)
    problems.add_column("description")
    for name, spec in PROBLEMS.items():
        problems.add_row(name, Text(spec.description))
    console.print(_fold(problems, console))


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
    quick: Annotated[bool, typer.Option("--quick", help="the quick preset: every method on the resnet "
                                                        "problem, one timed call each (a check of the pipeline)")] = False,
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
        "quick": quick,
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
            console.print(_fold(renderable, console))
        counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
        console.print(f"{summary['pairs']} pairs ({counts}) in {summary['wall_seconds']:.1f} s")
        console.print(f"folder: {record.folder}", markup=False)
    if summary["project_failures"]:
        _console(stderr=True).print(
            f"FAILED: {summary['project_failures']} project method(s) missed their tolerance: "
            + "; ".join(summary["failed_cells"]), markup=False)
        raise typer.Exit(FAILED)


if __name__ == "__main__":  # python -m experiments.cli
    app()
