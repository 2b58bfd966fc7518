"""The comparison: every selected method on every selected problem, against a reference.

    comparison = compare(problems=["mlp", "node-d16-rk4"], methods=None, reference="jax-grad")
    comparison.failures()      # project methods that missed their tolerance (or raised)
    comparison.as_dict()       # what results.json holds

For each (method, problem) pair the harness

1. asks the method whether it applies (`n/a` cells keep the reason);
2. finds the problem the method actually differentiates (`Method.target`: the
   problem, or a re-discretisation of its field on the same grid);
3. computes the reference gradient of that target with the reference method
   (cached per target), and the continuous gradient of the problem's ODE where
   one exists (cached per family, always in float64);
4. compiles, warms and times the method, and compares its gradient with both.

A pair passes when its relative L2 error against the reference is within the
method's tolerance for the dtype, or within the reference's own tolerance when
that is larger (a finite-difference reference cannot certify 1e-12). Methods
with no tolerance (diffrax `BacksolveAdjoint`) are ``reported``. A project
method that fails, or raises, makes `Comparison.failures()` non-empty, and
`leastaction compare` exits non-zero.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import methods as method_registry
from . import problems as problem_registry
from .methods import Method, Padding
from .metrics import compile_lowered, gradient_errors, time_calls
from .problems import Problem

STATUSES = ("pass", "fail", "reported", "error", "no-reference", "n/a")
"""Cell statuses: judged (pass/fail), reported (no tolerance), error (the method raised),
no-reference (the reference does not apply to the target), n/a (the method does not apply)."""


@dataclass
class Cell:
    """The outcome of one method on one problem.

    Example:
        >>> from experiments import harness
        >>> comparison = harness.compare(problems=["linear-rk4"], methods=["tension"], repeats=1, budget=0.01, workers=1)
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
    shared_with: str | None = None
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
            "reason": self.reason, "target": self.target, "shared_with": self.shared_with,
            "tolerance": self.tolerance, "errors": self.errors, "continuous": self.continuous,
            "timing": self.timing, "evaluations": self.evaluations,
            "aux": {k: float(np.asarray(v)) for k, v in self.aux.items()},
        }


@dataclass
class Comparison:
    """All cells of one comparison and what it was run with.

    Example:
        >>> from experiments import harness
        >>> comparison = harness.compare(problems=["linear-rk4"], methods=["least-action"], repeats=1, budget=0.01, workers=1)
        >>> [(c.method, c.problem, c.status) for c in comparison.cells]     # the reference is measured too
        [('least-action', 'linear-rk4', 'pass')]
    """

    dtype: str
    reference: str
    seed: int
    problems: dict[str, dict]
    methods: dict[str, dict]
    cells: list[Cell]
    wall_seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)
    processes: list[dict] | None = None
    compiler_options: dict = field(default_factory=dict)

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
            "phase_seconds": self.phase_seconds,
            "processes": self.processes,
            "passed": not self.failures(),
        }

    def as_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "reference": self.reference,
            "seed": self.seed,
            "compiler_options": {"timed": self.compiler_options, "reference": REFERENCE_COMPILER_OPTIONS},
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


def _shipped_specs(problems, methods, method_list: list[Method]) -> list[problem_registry.ProblemSpec] | None:
    """The registry entries of `problems` when every problem and method is named and shipped
    (what a fresh worker process knows), else `None`. Nothing is built here: the workers build
    their own problems."""
    given = [m for arg in (problems, methods) if arg is not None and not isinstance(arg, str) for m in arg]
    if not all(isinstance(x, str) for x in given):
        return None
    names = problem_registry.select(problems)
    _check_unique(names, "problems")
    if not set(names) <= problem_registry.SHIPPED or not {m.name for m in method_list} <= method_registry.SHIPPED:
        return None
    return [problem_registry.PROBLEMS[n] for n in names]


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
    so that a second comparison skips compilation, which dominates the first.

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


TIMED_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}
"""XLA compiler options of the programs the harness times (`compare(compiler_options=...)`;
``{}`` compiles them with XLA's defaults, as `jax.jit` does): LLVM at -O2 instead of XLA's
-O3. On eleven resnet and node-d16 programs, compiled on one core, that is 11% less
compile time (11.2 against 12.6 CPU-s). Run times move by program, as between any two
optimisation levels: in interleaved calls from 0.98 to 1.43 times XLA's default
(1.43: relaxation on the recurrent network, 1.27: forward mode on it, 1.08: forward mode
on the ResNet, 0.98-1.01: a Gauss-Legendre sweep and the plain sweep). Over whole
comparisons there is no systematic change: the geometric mean of the per-cell time ratios
between -O2 and default runs was 0.97-1.07, within the spread of two runs of one setting."""

REFERENCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                              "xla_cpu_use_fusion_emitters": False}
"""XLA compiler options of the untimed reference programs (the reference gradient on a
re-discretised target): fewer optimisation passes and XLA's classic elemental fusion
emitter instead of its MLIR fusion emitters. They run once, so compile time dominates
(eleven of the pendulum's method programs: 3.0 CPU-s of compile against 7.6 with the
MLIR emitters at -O0 and 10.5 with XLA's defaults). IEEE semantics are kept (no
fast-math), so only rounding can differ. The classic emitter is not used for timed
programs: it ran some of them up to 1.6 times slower (forward mode and finite
differences, whose columns are batched).

Options are passed to `compile`: `XLA_FLAGS` does not reach them in jax 0.10 (the same
settings in `XLA_FLAGS` left the compile times unchanged)."""


class _Program:
    """One computation, lowered on the main thread and compiled in the pool; run once on demand.

    `owner` names the job it was lowered for; a program shared by several jobs
    (`Prepared.program`) is called by each with its own arguments.
    """

    def __init__(self, fn, args, compiled: bool, pool: ThreadPoolExecutor, options: dict | None = None,
                 owner: str | None = None):
        self.fn, self.args, self.compiled, self.owner = fn, args, compiled, owner
        self.future: Future | None = None
        self.error: str | None = None
        self._output = None
        if compiled:
            try:
                lowered = jax.jit(fn).lower(*args)
            except Exception as error:
                self.error = _describe(error)
                return
            self.future = pool.submit(compile_lowered, lowered, options)

    def executable(self):
        """`(call, compile_seconds, temp_bytes)`; raises if lowering or compiling failed."""
        if self.error is not None:
            raise RuntimeError(self.error)
        if not self.compiled:
            return self.fn, None, None
        return self.future.result()

    def output(self):
        """The output of one (untimed) call, computed once."""
        if self._output is None:
            self._output = _Call(self, self.args).output()
        return self._output


@dataclass
class _Call:
    """A program called with other arguments than those it was lowered with (a shared program)."""

    program: _Program
    args: tuple
    _output: Any = None

    def output(self):
        if self._output is None:
            call, _, _ = self.program.executable()
            self._output = call(*self.args)
        return self._output


def _program_key(prepared) -> tuple | None:
    """What identifies a shareable program: the method's `Prepared.program` and the argument shapes."""
    if prepared.program is None or not prepared.compiled:
        return None
    leaves, tree = jax.tree.flatten(prepared.args)
    return prepared.program, tree, tuple((np.shape(a), jnp.result_type(a).name) for a in leaves)


def _stack(args_list):
    return jax.tree.map(lambda *xs: np.stack(xs), *args_list)


class _Bundle:
    """The untimed reference programs of one problem, compiled as one XLA program.

    Every re-discretised target of a problem (one per scheme method) needs the
    reference gradient of its own map. Those programs only run once, so most of
    their cost is the fixed cost of compiling a program; lowered together
    (`fn(args) = [fn_i(*args_i)]`) they compile in about half the time. Parts
    that can be padded to more Runge-Kutta stages (`Prepared.padding`: e.g. the
    explicit tableaux of 1 to 7 stages on one field) are first padded to the
    largest stage count among them; parts with one program key
    (`Prepared.program`) are then one group, computed by `jax.lax.map` of one
    function over their stacked arguments. If the bundle cannot be lowered, each
    group is lowered on its own, so that one failing reference is reported on its
    own cells only.
    """

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool
        self.parts: list[tuple[Callable, tuple, Any]] = []   # (fn, args, program key)
        self.paddings: dict[int, Padding] = {}               # part -> its `Padding`
        self.groups: dict[Any, list[int]] = {}
        self.programs: list[_Program] = []
        self._split = False

    def add(self, fn, args, key=None, padding=None) -> "_Part":
        self.parts.append((fn, args, key))
        if padding is not None:
            self.paddings[len(self.parts) - 1] = padding
        return _Part(self, len(self.parts) - 1)

    def _pad(self) -> None:
        """Replace every paddable part by its form padded to the largest stage count of its padding key."""
        most: dict[Any, int] = {}
        for padding in self.paddings.values():
            most[padding.key] = max(most.get(padding.key, 0), padding.stages)
        for index, padding in self.paddings.items():
            if most[padding.key] > padding.stages:
                prepared = padding.prepare(most[padding.key])
                self.parts[index] = (prepared.fn, prepared.args, _program_key(prepared))

    def _group(self, members):
        """`(fn, args)` of one group: the part itself, or the group's function mapped over its stacked args."""
        fn = self.parts[members[0]][0]
        if len(members) == 1:
            return fn, self.parts[members[0]][1]
        return (lambda stacked: jax.lax.map(lambda a: fn(*a), stacked)), (_stack([self.parts[i][1] for i in members]),)

    def submit(self) -> None:
        """Pad, group and lower the parts (as one program when there are several) and hand them to the compilers."""
        if not self.parts:
            return
        self._pad()
        for index, (_, _, key) in enumerate(self.parts):
            self.groups.setdefault(("part", index) if key is None else key, []).append(index)
        groups = [self._group(members) for members in self.groups.values()]
        if len(self.parts) > 1:
            fns = [fn for fn, _ in groups]
            program = _Program(lambda args: [fn(*a) for fn, a in zip(fns, args)], ([a for _, a in groups],),
                               True, self.pool, REFERENCE_COMPILER_OPTIONS)
            if program.error is None:
                self.programs = [program]
                return
        self._split = True
        self.programs = [_Program(fn, args, True, self.pool, REFERENCE_COMPILER_OPTIONS) for fn, args in groups]

    def output(self, index: int):
        for number, members in enumerate(self.groups.values()):
            if index in members:
                break
        out = self.programs[number].output() if self._split else self.programs[0].output()[number]
        if len(members) == 1:
            return out
        position = members.index(index)
        return jax.tree.map(lambda leaf: np.asarray(leaf)[position], out)


@dataclass
class _Part:
    """One reference of a `_Bundle`."""

    bundle: _Bundle
    index: int

    def output(self):
        return self.bundle.output(self.index)


@dataclass
class _Deferred:
    """A gradient computed outside XLA (e.g. scipy's adjoint ODE), on first use."""

    compute: Callable[[], Any]

    def output(self):
        return self.compute()


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


@dataclass
class _Job:
    """One computation (`Method.computation`) to time, shared by every cell that needs it."""

    method: Method
    target: Problem
    program: _Program | None = None
    args: tuple = ()
    evaluations: dict | None = None
    error: str | None = None
    result: tuple | None = None
    shared_with: str | None = None


def compare(
    problems: Sequence[str | Problem] | str | None = None,
    methods: Sequence[str | Method] | str | None = None,
    reference: str = "jax-grad",
    dtype: str = "float64",
    seed: int = 0,
    repeats: int = 5,
    budget: float = 0.5,
    compiler_options: dict | None = None,
    workers: int | None = None,
    processes: int | None = None,
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
        compiler_options: XLA options of the timed programs (default
            `TIMED_COMPILER_OPTIONS`; ``{}``: XLA's defaults).
        workers: threads compiling XLA programs (default: the number of CPUs).
        processes: worker processes the problems are split over, by family
            (`experiments.harness.processes`; default: the number of CPUs). Only
            shipped problems and methods, named, can go to another process; anything
            else (a `Problem` or `Method` object, a name registered at run time)
            runs in this process.
        progress: told `(done, total, description)` as pairs are prepared and measured.
        log: told one line per pair.

    Every program is traced on the calling thread and compiled by a pool of
    `workers` threads (XLA compiles without the GIL); only once all are
    compiled are they run and timed, one at a time, so that the timings are
    not disturbed by compilation.

    Example:
        >>> from experiments import harness
        >>> comparison = harness.compare(problems=["linear-rk4"], methods=["least-action", "finite-diff"],
        ...                              repeats=1, budget=0.01, workers=1)
        >>> comparison.summary()["passed"], comparison.cell("least-action", "linear-rk4").relative_error < 1e-12
        (True, True)
    """
    started = time.perf_counter()
    if compiler_options is not None and not (isinstance(compiler_options, Mapping)
                                             and all(isinstance(k, str) for k in compiler_options)):
        raise ValueError(f"compiler_options must map XLA option names to values; got {compiler_options!r}")
    compiler_options = TIMED_COMPILER_OPTIONS if compiler_options is None else dict(compiler_options)
    dtype_value = problem_registry.dtype_named(dtype)
    ref_method = method_registry.method_named(reference)
    if ref_method.kind == "project":
        raise ValueError(
            f"reference {reference!r} is a project method; choose a reference or peer: "
            + ", ".join(n for n, m in method_registry.METHODS.items() if m.kind != "project")
        )
    method_list = _resolve_methods(methods)
    progress = progress or (lambda done, total, description: None)
    log = log or (lambda message: None)
    processes = (os.cpu_count() or 1) if processes is None else processes
    specs = _shipped_specs(problems, methods, method_list) if processes > 1 else None
    if specs is not None and len({s.family for s in specs}) > 1:
        from .processes import compare_in_processes

        options = dict(reference=reference, dtype=dtype, seed=seed, repeats=repeats, budget=budget,
                       compiler_options=compiler_options)
        return compare_in_processes(specs, [m.name for m in method_list], processes, options, progress, log)
    problem_list = _resolve_problems(problems, seed, dtype_value)
    total, done = 2 * len(problem_list) * len(method_list), 0

    jobs: dict[tuple[str, str], _Job] = {}
    programs: dict[tuple, _Program] = {}                # shared timed programs, by `_program_key`
    references: dict[str, _Part | _Call | _Job | str] = {}  # target name -> bundled or shared program, the ref's job, or why none
    bundles: list[_Bundle] = []                         # the reference programs, one bundle per problem
    continuous: dict[str, _Part | _Deferred | Any] = {}  # family -> bundled program, deferred gradient, or None
    plan: list[tuple[Problem, Method, str | None, tuple[str, str] | None]] = []

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        # 1. Trace every program and hand it to the compilers.
        order = sorted(method_list, key=lambda m: m is not ref_method)
        for problem in problem_list:
            rows, bundle = {}, _Bundle(pool)
            _plan_continuous(problem, continuous, bundle, log)
            for method in order:
                rows[method.name] = _plan_pair(method, problem, ref_method, jobs, programs, references, bundle,
                                             compiler_options)
                done += 1
                progress(done, total, f"prepared {method.name} on {problem.name}")
            bundle.submit()
            bundles.append(bundle)
            plan.extend((problem, m, *rows[m.name]) for m in method_list)
        traced = time.perf_counter()
        # 2. Wait for the compilers, so that nothing else runs while methods are timed.
        for job in jobs.values():
            if job.program is not None and job.program.future is not None:
                job.program.future.exception()
        for program in (p for bundle in bundles for p in bundle.programs):
            if program.future is not None:
                program.future.exception()

    compiled = time.perf_counter()
    # 3. Run, time and compare, one pair at a time.
    cells = []
    for problem, method, reason, key in plan:
        if reason is not None:
            cell = Cell(method=method.name, problem=problem.name, kind=method.kind, status="n/a", reason=reason)
        else:
            cell = _measure(method, jobs[key], problem, ref_method, dtype, repeats, budget, references, continuous,
                            log)
        cells.append(cell)
        done += 1
        progress(done, total, f"{method.name} on {problem.name}: {cell.status}")
        log(_line(cell))

    return Comparison(
        dtype=dtype,
        reference=ref_method.name,
        seed=seed,
        problems={p.name: p.summary() for p in problem_list},
        methods={m.name: m.info() for m in method_list},
        cells=cells,
        wall_seconds=time.perf_counter() - started,
        phase_seconds={"trace": traced - started, "compile": compiled - traced,
                       "measure": time.perf_counter() - compiled},
        compiler_options=compiler_options,
    )


def _plan_continuous(problem: Problem, continuous: dict, bundle: _Bundle, log) -> None:
    if problem.continuous is None or problem.family in continuous:
        return
    reference = problem.continuous
    try:
        if hasattr(reference, "program"):
            fn, args = reference.program(problem)
            continuous[problem.family] = bundle.add(fn, args)
        else:  # computed when first needed, once the compilers are done (scipy loops want the CPU)
            continuous[problem.family] = _Deferred(lambda: _numpy(reference(problem.astype(jnp.float64))))
    except Exception as error:  # a failing continuous reference is logged, not fatal
        log(f"continuous reference of {problem.family} failed: {_describe(error)}")
        continuous[problem.family] = None


def _plan_pair(method, problem, ref_method, jobs, programs, references, bundle: _Bundle, options: dict):
    """`(reason, None)` for an n/a pair, else `(None, job key)` with the job and its reference planned
    (a reference not computed by a timed program goes into `bundle`)."""
    pool = bundle.pool
    reason = method.applies(problem)
    if reason is not None:
        return reason, None
    target = method.target(problem)
    key = method.computation(target)
    if key not in jobs:
        job = _Job(method, target)
        try:
            prepared = method.prepare(target)
            job.evaluations = dict(prepared.evaluations)
            job.args = prepared.args
            job.program = _timed_program(prepared, programs, pool, f"{method.name} on {target.name}", options)
        except Exception as error:
            job.error = _describe(error)
        jobs[key] = job
        if method is ref_method and target.name not in references:
            references[target.name] = job
    if target.name not in references:
        why = ref_method.applies(target)
        if why is not None:
            references[target.name] = f"reference {ref_method.name} n/a: {why}"
        else:
            try:
                prepared = ref_method.prepare(target)
                shared = _program_key(prepared)
                if shared in programs:      # the reference's program is already compiled for another target
                    references[target.name] = _Call(programs[shared], prepared.args)
                elif prepared.compiled:
                    references[target.name] = bundle.add(prepared.fn, prepared.args, shared, prepared.padding)
                else:  # e.g. torch as the reference: called as is
                    references[target.name] = _Program(prepared.fn, prepared.args, False, pool)
            except Exception as error:
                references[target.name] = f"reference {ref_method.name} failed: {_describe(error)}"
    return None, key


def _timed_program(prepared, programs: dict, pool, owner: str, options: dict) -> _Program:
    """The program of a timed job: the one already lowered under its `_program_key`, or a new one."""
    shared = _program_key(prepared)
    if shared in programs:
        return programs[shared]
    program = _Program(prepared.fn, prepared.args, prepared.compiled, pool, options, owner=owner)
    if shared is not None and program.error is None:
        programs[shared] = program
    return program


def _run_job(job: _Job, repeats, budget):
    """`(gradient, aux, timing)` of a job, measured once; raises what the method raised."""
    if job.result is None:
        if job.error is not None:
            raise RuntimeError(job.error)
        call, seconds, temp = job.program.executable()
        (grad, aux), timing = time_calls(call, job.args, repeats=repeats, budget=budget,
                                         compile_seconds=seconds, temp_bytes=temp)
        job.result = (_numpy(grad), dict(aux), timing.as_dict())
        if job.program.owner != f"{job.method.name} on {job.target.name}":
            job.result[2]["program_compiled_for"] = job.program.owner
    return job.result


def _reference_gradient(ref, repeats, budget):
    """The reference gradient from a planned reference (a job, a program or a reason)."""
    if isinstance(ref, str):
        return None, ref
    try:
        if isinstance(ref, _Job):
            return _run_job(ref, repeats, budget)[0], None
        grad, _ = ref.output()
        return _numpy(grad), None
    except Exception as error:
        return None, f"reference failed: {_describe(error)}"


def _continuous_gradient(problem, continuous, log):
    value = continuous.get(problem.family)
    if isinstance(value, (_Part, _Deferred)):
        try:
            continuous[problem.family] = _numpy(value.output())
        except Exception as error:
            log(f"continuous reference of {problem.family} failed: {_describe(error)}")
            continuous[problem.family] = None
        value = continuous[problem.family]
    return value


def _measure(method, job, problem, ref_method, dtype, repeats, budget, references, continuous, log) -> Cell:
    target = job.target
    base = dict(method=method.name, problem=problem.name, kind=method.kind, target=target.name,
                tolerance=_tolerance(method, ref_method, dtype))
    shared = job.result is not None
    try:
        grad, aux, timing = _run_job(job, repeats, budget)
    except Exception as error:
        job.error = job.error or _describe(error)
        return Cell(status="error", reason=job.error, **base)
    cell = Cell(status="reported", timing=timing, evaluations=job.evaluations, aux=aux, gradient=grad, **base)
    if shared:
        cell.shared_with = job.shared_with
    else:
        job.shared_with = f"{method.name} on {problem.name}"
    ref, why = _reference_gradient(references[target.name], repeats, budget)
    if ref is None:
        cell.status, cell.reason = "no-reference", why
    else:
        cell.errors = gradient_errors(grad, ref)
        error = cell.errors["relative_l2_error"]
        if cell.tolerance is not None:
            cell.status = "pass" if np.isfinite(error) and error <= cell.tolerance else "fail"
    cell.continuous = _continuous_errors(grad, _continuous_gradient(problem, continuous, log))
    return cell


def _continuous_errors(grad, reference):
    if grad is None or reference is None:
        return None
    return gradient_errors(grad, reference)


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
