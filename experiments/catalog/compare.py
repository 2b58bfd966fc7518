"""Compare: every gradient method against every reference on every problem.

The harness (`experiments.harness`) runs each selected method on each
selected problem, compares its gradient with the reference method's gradient
of the same discretisation (and, for ODE problems, with the continuous
gradient), and times it. This experiment writes the result as a folder:

    results.json              every cell: status, errors, timing, evaluations, reasons
    tables/comparison.md|tex  one row per (method, problem)
    tables/matrix.md|tex      method x problem relative error against the reference
    tables/continuous.md|tex  method x ODE problem relative error against the continuous gradient
    tables/not_applicable.md|tex   the pairs not compared and why
    figures/heatmap.png|pdf   log10 relative error, method x problem

`leastaction compare` runs it and exits non-zero if a project method misses
its tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import harness
from ..harness import report
from ..harness.problems import dtype_named
from ..config import check_quick
from ..runner import Experiment, Progress, RunFolder


@dataclass(frozen=True)
class CompareConfig:
    """Defaults of the comparison.

    problems: comma-separated problem names, or ``all``.
    methods: comma-separated method names, or ``all``.
    reference: the reference (or peer) method the others are measured against.
    dtype: ``float64`` or ``float32``.
    seed: seed of the problems' weights and batches.
    repeats: at most this many timed warm calls per pair (median reported).
    quick: the quick preset, a check of the whole pipeline: every method on the problem of
        `QUICK_PROBLEMS`, one timed call per pair (replaces problems, methods and repeats).
    """

    problems: str = "all"
    methods: str = "all"
    reference: str = "jax-grad"
    dtype: str = "float64"
    seed: int = 0
    repeats: int = 5
    quick: bool = False

    def __post_init__(self):
        for key, check in (("problems", harness.problems.select), ("methods", harness.methods.select),
                           ("reference", harness.method_named), ("dtype", dtype_named)):
            try:
                check(getattr(self, key))
            except ValueError as error:
                raise ValueError(f"config key {key!r}: {error}") from None
        if harness.method_named(self.reference).kind == "project":
            valid = ", ".join(n for n, m in harness.METHODS.items() if m.kind != "project")
            raise ValueError(f"config key 'reference': {self.reference!r} is a project method; choose one of {valid}")
        if self.repeats < 1:
            raise ValueError(f"config key 'repeats' must be >= 1; got {self.repeats}")
        check_quick(self, ("problems", "methods", "repeats"))

    def selection(self) -> tuple[str, str, int]:
        """`(problems, methods, repeats)` actually run (the quick preset replaces all three)."""
        if self.quick:
            return QUICK_PROBLEMS, "all", 1
        return self.problems, self.methods, self.repeats


QUICK_PROBLEMS = "resnet"
"""The problem of the quick preset: every method that applies to a layered network (a neural ODE
problem as well took 66 s more on a loaded 2-core machine; the ODE methods are then n/a)."""


def run(config: CompareConfig, folder: RunFolder, progress: Progress) -> dict:
    """Run the comparison, then write its tables and heat map."""
    names, method_names, repeats = config.selection()
    problems = harness.problems.select(names)
    methods = harness.methods.select(method_names)
    total = len(problems) * len(methods) + 1

    comparison = harness.compare(
        problems=problems, methods=methods, reference=config.reference, dtype=config.dtype,
        seed=config.seed, repeats=repeats,
        progress=lambda done, _, text: progress(done, total, text), log=folder.log,
    )
    results = comparison.as_dict()
    progress(total, total, "tables and heat map")
    folder.save_table(report.long_table(results), "comparison")
    folder.save_table(report.matrix_table(results), "matrix")
    if any(info.get("continuous_reference") for info in results["problems"].values()):
        folder.save_table(report.continuous_table(results), "continuous")
    folder.save_table(report.not_applicable_table(results), "not_applicable")
    folder.save_figure(report.heatmap(results), "heatmap")
    summary = results["summary"]
    folder.log(f"{summary['pairs']} pairs: {summary['counts']}; project failures: {summary['project_failures']}")
    return results


EXPERIMENT = Experiment(
    name="compare",
    description="every gradient method x every problem vs a reference: errors, timing, heat map",
    config=CompareConfig(),
    run=run,
    headline=(
        "summary.pairs",
        "summary.project_failures",
        "summary.max_project_relative_error",
        "summary.wall_seconds",
    ),
)
