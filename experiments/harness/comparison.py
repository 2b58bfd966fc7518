"""The comparison: every selected method on every selected problem, against a reference.

    comparison = compare(problems=["mlp", "node-d16-rk4"], methods=None, reference="jax-grad")
    comparison.failures()      # project methods that missed their tolerance (or raised)
    comparison.as_dict()       # what results.json holds

For each (method, problem) pair the harness

1. asks the method whether it applies (`n/a` cells keep the reason);
2. finds the problem the method actually differentiates (`Method.target`: the
   problem, or a re-discretisation of its field on the same grid);
3. computes the reference gradient of that target with the reference method
   (once per target), and the continuous gradient of the problem's ODE where
   one exists (once per family, always in float64);
4. compiles, warms and times the method (`metrics.run_timed`), and compares its
   gradient with both.

A pair passes when its relative L2 error against the reference is within the
method's tolerance for the dtype, or within the reference's own tolerance when
that is larger (a finite-difference reference cannot certify 1e-12). Methods
with no tolerance (diffrax `BacksolveAdjoint`) are ``reported``. A project
method that fails, or raises, makes `Comparison.failures()` non-empty, and
`leastaction compare` exits non-zero.

Every pair is computed on its own, one after the other, in this process: nothing
is shared between cells but the reference and continuous gradients.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import methods as method_registry
from . import problems as problem_registry
from .methods import Method
from .metrics import gradient_errors, run_timed
from .problems import Problem

STATUSES = ("pass", "fail", "reported", "error", "no-reference", "n/a")
"""Cell statuses: judged (pass/fail), reported (no tolerance), error (the method raised),
no-reference (the reference does not apply to the target), n/a (the method does not apply)."""


@dataclass
class Cell:
    """The outcome of one method on one problem.

    Example:
        >>> from experiments import harness
        >>> comparison = harness.compare(problems=["linear-rk4"], methods=["tension"], repeats=1, budget=0.01)
        >>> cell = comparison.cell("tension", "linear-rk4")
        >>> cell.kind, cell.status, cell.tolerance, cell.relative_error < 1e-12
        ('project', 'pass', 1e-12, True)
    """

    method: str
    problem: str
    kind: str
    status: str
    reason: str | None = None
    target: str | None = None
    tolerance: float | None = None
    errors: dict | None = None
    continuous: dict | None = None
    timing: dict | None = None
    evaluations: dict | None = None
    aux: dict = field(default_factory=dict)
    gradient: Any = field(default=None, repr=False)

    @property
    def relative_error(self) -> float | None:
        return None if self.errors is None else self.errors["relative_l2_error"]

    @property
    def continuous_error(self) -> float | None:
        return None if self.continuous is None else self.continuous["relative_l2_error"]

    def as_dict(self) -> dict:
        return {
            "method": self.method, "problem": self.problem, "kind": self.kind, "status": self.status,
            "reason": self.reason, "target": self.target,
            "tolerance": self.tolerance, "errors": self.errors, "continuous": self.continuous,
            "timing": self.timing, "evaluations": self.evaluations,
            "aux": {k: float(np.asarray(v)) for k, v in self.aux.items()},
        }


@dataclass
class Comparison:
    """All cells of one comparison and what it was run with.

    Example:
        >>> from experiments import harness
        >>> comparison = harness.compare(problems=["linear-rk4"], methods=["least-action"], repeats=1, budget=0.01)
        >>> [(c.method, c.problem, c.status) for c in comparison.cells]
        [('least-action', 'linear-rk4', 'pass')]
    """

    dtype: str
    reference: str
    seed: int
    problems: dict[str, dict]
    methods: dict[str, dict]
    cells: list[Cell]
    wall_seconds: float

    def cell(self, method: str, problem: str) -> Cell:
        for c in self.cells:
            if c.method == method and c.problem == problem:
                return c
        raise KeyError((method, problem))

    def failures(self) -> list[Cell]:
        """Project-method cells that missed their tolerance or raised."""
        return [c for c in self.cells if c.kind == "project" and c.status in ("fail", "error")]

    def summary(self) -> dict:
        counts = {s: sum(c.status == s for c in self.cells) for s in STATUSES}
        project = [c.relative_error for c in self.cells
                   if c.kind == "project" and c.tolerance is not None and c.relative_error is not None]
        return {
            "pairs": len(self.cells),
            "counts": counts,
            "project_failures": len(self.failures()),
            "failed_cells": [f"{c.method} on {c.problem} ({c.status})" for c in self.failures()],
            "max_project_relative_error": max(project) if project else None,
            "wall_seconds": self.wall_seconds,
            "passed": not self.failures(),
        }

    def as_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "reference": self.reference,
            "seed": self.seed,
            "problems": self.problems,
            "methods": self.methods,
            "cells": [c.as_dict() for c in self.cells],
            "summary": self.summary(),
        }


def _tolerance(method: Method, reference: Method, dtype: str) -> float | None:
    own = method.tolerance_for(dtype)
    if own is None or method is reference:
        return own
    ref = reference.tolerance_for(dtype)
    return own if ref is None else max(own, ref)


def _check_unique(names: list[str], what: str) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"{what} listed twice: {sorted({n for n in names if names.count(n) > 1})}")


def _resolve_methods(methods) -> list[Method]:
    if methods is None or isinstance(methods, str):
        return [method_registry.METHODS[n] for n in method_registry.select(methods)]
    resolved = []
    for m in methods:
        resolved.append(m if isinstance(m, Method) else method_registry.method_named(m))
    names = [m.name for m in resolved]
    _check_unique(names, "methods")
    return resolved


def _resolve_problems(problems, seed: int, dtype) -> list[Problem]:
    if problems is None or isinstance(problems, str):
        names = problem_registry.select(problems)
        return [problem_registry.problem_named(n, seed, dtype) for n in names]
    resolved = []
    for p in problems:
        if isinstance(p, Problem):
            resolved.append(p.astype(dtype))
        else:
            problem_registry.select([p])
            resolved.append(problem_registry.problem_named(p, seed, dtype))
    names = [p.name for p in resolved]
    _check_unique(names, "problems")
    return resolved


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/leastaction/xla` (or `~/.cache/leastaction/xla`).

    Example:
        >>> from experiments import harness
        >>> harness.default_cache_dir().parts[-2:]
        ('leastaction', 'xla')
    """
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "leastaction" / "xla"


def enable_compilation_cache(directory: Path | str | None = None) -> Path:
    """Keep every compiled XLA program in `directory` (JAX's persistent compilation cache),
    so that a second comparison skips compilation (`leastaction compare --cache`, the default).

    Call it before anything is compiled; it is global to the process. Entries
    are keyed by the program, the compile options, and the jax/XLA versions.

    Example:
        >>> import tempfile
        >>> from experiments import harness
        >>> cache = harness.enable_compilation_cache(tempfile.mkdtemp())   # before compiling; global to the process
        >>> cache.is_dir()
        True
    """
    directory = Path(directory or default_cache_dir())
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def _numpy(tree):
    return jax.tree.map(lambda a: np.asarray(a), tree)


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def compare(
    problems: Sequence[str | Problem] | str | None = None,
    methods: Sequence[str | Method] | str | None = None,
    reference: str = "jax-grad",
    dtype: str = "float64",
    seed: int = 0,
    repeats: int = 5,
    budget: float = 0.5,
    progress: Callable[[int, int, str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Run every method on every problem against `reference`.

    Args:
        problems: problem names or `Problem`s (`custom_problem` for your own
            system); `None`, ``"all"`` or a comma-separated string of names.
        methods: method names or `Method`s; `None`/``"all"``/comma-separated names.
        reference: name of a reference or peer method (default `jax.grad`).
        dtype: ``"float64"`` or ``"float32"``.
        seed: seed of the registered problems' weights and batches.
        repeats: timing: at most `repeats` warm calls (at least one).
        budget: timing: stop the warm calls after `budget` seconds.
        progress: told `(done, total, description)` after each pair.
        log: told one line per pair.

    Example:
        >>> from experiments import harness
        >>> comparison = harness.compare(problems=["linear-rk4"], methods=["least-action", "finite-diff"],
        ...                              repeats=1, budget=0.01)
        >>> comparison.summary()["passed"], comparison.cell("least-action", "linear-rk4").relative_error < 1e-12
        (True, True)
    """
    started = time.perf_counter()
    dtype_value = problem_registry.dtype_named(dtype)
    ref_method = method_registry.method_named(reference)
    if ref_method.kind == "project":
        raise ValueError(
            f"reference {reference!r} is a project method; choose a reference or peer: "
            + ", ".join(n for n, m in method_registry.METHODS.items() if m.kind != "project")
        )
    method_list = _resolve_methods(methods)
    problem_list = _resolve_problems(problems, seed, dtype_value)
    progress = progress or (lambda done, total, description: None)
    log = log or (lambda message: None)
    total = len(problem_list) * len(method_list)
    references: dict[str, tuple[Any, str | None]] = {}   # target name -> (gradient, why there is none)
    continuous: dict[str, Any] = {}                      # family -> continuous gradient (None: none)
    cells = []
    for problem in problem_list:
        for method in method_list:
            cell = _measure(method, problem, ref_method, dtype, repeats, budget, references, continuous, log)
            cells.append(cell)
            progress(len(cells), total, f"{method.name} on {problem.name}: {cell.status}")
            log(_line(cell))
    return Comparison(
        dtype=dtype,
        reference=ref_method.name,
        seed=seed,
        problems={p.name: p.summary() for p in problem_list},
        methods={m.name: m.info() for m in method_list},
        cells=cells,
        wall_seconds=time.perf_counter() - started,
    )


def _gradient(method: Method, target: Problem, repeats: int, budget: float):
    """`(gradient, aux, timing, evaluations)` of `method` on `target`: compiled (unless the
    method says otherwise), warmed up and timed."""
    prepared = method.prepare(target)
    (grad, aux), timing = run_timed(prepared.fn, prepared.args, compile=prepared.compiled, repeats=repeats,
                                    budget=budget)
    return _numpy(grad), dict(aux), timing.as_dict(), dict(prepared.evaluations)


def _reference_gradient(ref_method: Method, target: Problem, references: dict):
    """`(gradient, None)` of the reference on `target`, or `(None, why not)`; computed once per target."""
    if target.name not in references:
        why = ref_method.applies(target)
        if why is not None:
            references[target.name] = (None, f"reference {ref_method.name} n/a: {why}")
        else:
            try:
                prepared = ref_method.prepare(target)
                fn = jax.jit(prepared.fn) if prepared.compiled else prepared.fn
                references[target.name] = (_numpy(fn(*prepared.args)[0]), None)
            except Exception as error:
                references[target.name] = (None, f"reference {ref_method.name} failed: {_describe(error)}")
    return references[target.name]


def _continuous_gradient(problem: Problem, continuous: dict, log):
    """The continuous gradient of the problem's family (float64), once per family; `None` if none."""
    if problem.family not in continuous:
        value = None
        if problem.continuous is not None:
            try:
                value = _numpy(problem.continuous(problem.astype(jnp.float64)))
            except Exception as error:  # a failing continuous reference is logged, not fatal
                log(f"continuous reference of {problem.family} failed: {_describe(error)}")
        continuous[problem.family] = value
    return continuous[problem.family]


def _measure(method, problem, ref_method, dtype, repeats, budget, references, continuous, log) -> Cell:
    reason = method.applies(problem)
    if reason is not None:
        return Cell(method=method.name, problem=problem.name, kind=method.kind, status="n/a", reason=reason)
    base = dict(method=method.name, problem=problem.name, kind=method.kind,
                tolerance=_tolerance(method, ref_method, dtype))
    try:
        target = method.target(problem)
        base["target"] = target.name
        grad, aux, timing, evaluations = _gradient(method, target, repeats, budget)
    except Exception as error:
        return Cell(status="error", reason=_describe(error), **base)
    cell = Cell(status="reported", timing=timing, evaluations=evaluations, aux=aux, gradient=grad, **base)
    ref, why = _reference_gradient(ref_method, target, references)
    if ref is None:
        cell.status, cell.reason = "no-reference", why
    else:
        cell.errors = gradient_errors(grad, ref)
        error = cell.errors["relative_l2_error"]
        if cell.tolerance is not None:
            cell.status = "pass" if np.isfinite(error) and error <= cell.tolerance else "fail"
    exact = _continuous_gradient(problem, continuous, log)
    cell.continuous = None if exact is None else gradient_errors(grad, exact)
    return cell


def _line(cell: Cell) -> str:
    """One log line per cell."""
    if cell.status == "n/a":
        return f"{cell.method} on {cell.problem}: n/a ({cell.reason})"
    if cell.errors is None:
        return f"{cell.method} on {cell.problem}: {cell.status} ({cell.reason})"
    text = (f"{cell.method} on {cell.problem}: {cell.status}, relative error {cell.relative_error:.3e}"
            f" (tolerance {cell.tolerance})")
    if cell.continuous_error is not None:
        text += f", vs continuous {cell.continuous_error:.3e}"
    if cell.timing:
        text += f", {1e3 * cell.timing['median_seconds']:.3g} ms"
    return text
