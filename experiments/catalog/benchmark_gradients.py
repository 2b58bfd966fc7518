"""Gradient benchmark: every memory strategy of the project against `jax.grad` of the same
discrete map, diffrax's adjoints and torchdiffeq, side by side in one run.

System: the neural ODE `dx/dt = f(x) = tanh(W x + b)` in `d` dimensions
(`lagrangian.NeuralODE(d)`, `theta = {"W", "b"}`), horizon `[0, T]` with `T = 1`,
`N` uniform steps (`integrators.uniform_grid(T, N)`), classic RK4
(`integrators.discretise(field, ts, "rk4")`), loss `l = 0.5 |x(T)|^2`. A cell is one
`d` x `N` x state x dtype: the state is one `(d,)` vector (``single``, the core's
unbatched path) or a batch `(B, d)` (``batch``, `B = 256` by default, the loss averaged
over the batch: `l = (1/B) sum_b 0.5 |x_b(T)|^2`), in float64 or float32 (the same
numbers cast). Weights and states depend on `seed`, `d` and the state only
(`harness.shipped.neural_ode_problem`).

The methods (`ROWS`; each a method of the harness registry, `harness.METHODS`, on the
problem stepped by the row's scheme, all on the same grid):

    jax-grad                        jax.grad through `integrators.output` (a `lax.scan` of the RK4 map):
                                    the reference of every RK4 row
    store-all, store-stages,        the least-action sweep (`integrators.sweep`) with `StoreAll()`,
    checkpoint-sqrt, checkpoint-log `StoreStages()`, `Checkpoint()` (2 levels, ~sqrt N states) and
                                    `Checkpoint.logarithmic()` (~log2 N states)
    diffrax-recursive-checkpoint    `diffrax.diffeqsolve` with an explicit RK solver holding RK4's tableau,
    diffrax-backsolve               `StepTo(ts)`, differentiated by `RecursiveCheckpointAdjoint` or by
                                    `BacksolveAdjoint` (the continuous adjoint solved backward: not the
                                    gradient of the discrete map; its error is reported, not judged)
    jax-grad-reversible-heun        jax.grad through the reversible-Heun map (its reference)
    reversible-heun                 the sweep on the reversible-Heun map with `Reversible()` memory
    diffrax-reversible-heun         `diffrax.ReversibleHeun` (the same map) with `RecursiveCheckpointAdjoint`
                                    (diffrax 0.7 ships no `ReversibleAdjoint`)
    jax-grad-rk38                   jax.grad through the 3/8-rule map (its reference)
    torchdiffeq                     `torchdiffeq.odeint(..., method="rk4")` (Kutta's 3/8 rule) on the same
                                    grid, plain torch autograd through the solver, `torch.set_num_threads(2)`

What is measured, per method and cell:

- time of a warm call, by two clocks side by side: the process's CPU time
  (`time.process_time`, all threads) and wall time (`time.perf_counter`). The JAX
  methods are compiled first (`harness.metrics.compile_program`); then all methods of
  the cell are timed together by `harness.metrics.time_interleaved`: one warm-up call
  each, then rounds of one call of each, `repeats` rounds (at least 7); the medians
  are reported, with the ratio of each to the reference of the same map
  (`jax.grad`) by each clock;
- time to first gradient: trace, lower and compile (`compile_program`'s seconds) plus
  the first call (wall time; torch has no compile step);
- the relative L2 error of `dl/dtheta` (W and b concatenated) against the reference of
  the same map (`harness.relative_error`); exact methods must be within 1e-12
  (float64) / 1e-5 (float32);
- XLA's temporary memory of the compiled gradient (`memory_analysis().temp_size_in_bytes`)
  and its compile time, for every JAX method at every `N` of `memory_steps`
  (compiled, not run), at the largest `d`, for each state, in the first dtype.

Budget: a method whose timed calls take longer than `budget` seconds in a cell stops
there (at least one call; a warm-up call over the budget is the one timed call) and
is flagged `cut_by_budget`. A peer (diffrax, torchdiffeq) whose predicted call in a
larger cell (its time at the largest smaller `N` of the same `d`, state and dtype,
times the ratio of the `N`s) exceeds `budget` is not run there: its row says
``not measured: over budget`` with the prediction. The references and the project's
strategies are always run.

The acceptance targets of the benchmark are evaluated on the measured numbers
(`results["targets"]`, CPU-time ratios, with the wall-time verdict beside) with
pass/fail flags; a missed target does not fail the run. The `quick` preset
(`--quick`) runs `QUICK_SIZES` instead of the sizes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import jax

import integrators

from .. import config as configs
from .. import harness, plots
from ..harness.metrics import compile_program, relative_error, time_interleaved
from ..harness.methods import EXACT
from ..harness.shipped import neural_ode_problem
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

# --- configuration --------------------------------------------------------------------------

STATES = ("single", "batch")
"""``single``: one state `(d,)`; ``batch``: `(batch, d)`."""
DTYPES = ("float64", "float32")
TORCH_THREADS = 2
"""torch's intra-op threads (`torch.set_num_threads`): the cores of the machine the benchmark targets."""

QUICK_SIZES = {"dims": "16", "steps": "100", "states": "single", "dtypes": "float64,float32",
               "memory_steps": "100"}
"""What the `quick` preset runs instead of the sizes: d = 16, N = 100, one state, both dtypes;
memory at N = 100 only (read from the timed compile, no extra compilation)."""


class Sizes(NamedTuple):
    """The grid a run covers."""

    dims: tuple[int, ...]
    steps: tuple[int, ...]
    states: tuple[str, ...]
    dtypes: tuple[str, ...]
    memory_steps: tuple[int, ...]


def _positive_ints(key: str, text: str) -> tuple[int, ...]:
    values = configs.numbers(key, text, int)
    if not values or any(v < 1 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"config key {key!r} needs distinct integers >= 1; got {text!r}")
    return tuple(sorted(values))


def _names(key: str, text: str, valid: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [v for v in values if v not in valid]
    if not values or unknown or len(set(values)) != len(values):
        raise ValueError(f"config key {key!r} takes distinct names from {', '.join(valid)}; got {text!r}")
    return tuple(v for v in valid if v in values)


@dataclass(frozen=True)
class BenchmarkConfig:
    """Defaults of the gradient benchmark (the full grid of 36 cells).

    dims: comma-separated state dimensions `d`.
    steps: comma-separated step counts `N` of the timed cells.
    states: ``single`` (one state `(d,)`), ``batch`` (`(batch, d)`), or both.
    dtypes: ``float64``, ``float32``, or both.
    batch: the batch size `B` of the ``batch`` cells.
    memory_steps: comma-separated `N` at which the JAX gradients are compiled (not run)
        for XLA's temporary memory and the compile time (largest `d`, each state, first dtype).
    repeats: timed warm calls of each method per cell (the median is reported; at least 7).
    budget: seconds of timed calls a method may spend in a cell, and the longest predicted
        call of a peer in a larger cell (see the module docstring).
    t_final: the horizon `T`.
    seed: seed of the weights and initial states.
    quick: run `QUICK_SIZES` instead of dims, steps, states, dtypes and memory_steps.
    """

    dims: str = "16,64,256"
    steps: str = "100,1000,10000"
    states: str = "single,batch"
    dtypes: str = "float64,float32"
    batch: int = 256
    memory_steps: str = "1000,10000,100000"
    repeats: int = 7
    budget: float = 20.0
    t_final: float = 1.0
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        self.sizes()
        configs.check_quick(self, QUICK_SIZES)
        if self.batch < 1:
            raise ValueError(f"config key 'batch' must be >= 1; got {self.batch}")
        if self.repeats < 7:
            raise ValueError(f"config key 'repeats' must be >= 7 (medians of at least 7 calls); got {self.repeats}")
        if not self.budget > 0:
            raise ValueError(f"config key 'budget' must be > 0 seconds; got {self.budget}")
        if not self.t_final > 0:
            raise ValueError(f"config key 't_final' must be > 0; got {self.t_final}")

    def sizes(self) -> Sizes:
        """The grid actually run (`QUICK_SIZES` when `quick`)."""
        source = QUICK_SIZES if self.quick else {k: getattr(self, k) for k in QUICK_SIZES}
        return Sizes(dims=_positive_ints("dims", source["dims"]), steps=_positive_ints("steps", source["steps"]),
                     states=_names("states", source["states"], STATES),
                     dtypes=_names("dtypes", source["dtypes"], DTYPES),
                     memory_steps=_positive_ints("memory_steps", source["memory_steps"]))


QUICK = BenchmarkConfig(quick=True)
"""The quick preset (`leastaction run benchmark-gradients --quick`)."""

# --- the methods ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One method of the benchmark: the harness method `method` on the problem stepped by
    `scheme` (``rk4``, ``reversible-heun`` or ``rk38``, same field, grid and weights).

    family: ``reference`` (jax.grad through the scan of `scheme`'s map), ``project``,
        ``diffrax`` or ``torchdiffeq``.
    exact: whether its gradient is that of the discrete map (judged against the reference;
        diffrax's `BacksolveAdjoint` is not).
    """

    name: str
    label: str
    method: str
    scheme: str
    family: str
    exact: bool = True

    @property
    def reference(self) -> str:
        """The row of `jax.grad` through the same map."""
        return REFERENCES[self.scheme]

    @property
    def is_peer(self) -> bool:
        return self.family in ("diffrax", "torchdiffeq")


ROWS: tuple[Row, ...] = (
    Row("jax-grad", "jax.grad through lax.scan (RK4)", "jax-grad", "rk4", "reference"),
    Row("store-all", "StoreAll()", "least-action", "rk4", "project"),
    Row("store-stages", "StoreStages()", "least-action-store-stages", "rk4", "project"),
    Row("checkpoint-sqrt", "Checkpoint() (sqrt N)", "least-action-checkpoint", "rk4", "project"),
    Row("checkpoint-log", "Checkpoint.logarithmic()", "least-action-checkpoint-log", "rk4", "project"),
    Row("diffrax-recursive-checkpoint", "diffrax RecursiveCheckpointAdjoint", "diffrax-checkpoint", "rk4", "diffrax"),
    Row("diffrax-backsolve", "diffrax BacksolveAdjoint", "diffrax-backsolve", "rk4", "diffrax", exact=False),
    Row("jax-grad-reversible-heun", "jax.grad through lax.scan (reversible Heun)", "jax-grad", "reversible-heun",
        "reference"),
    Row("reversible-heun", "Reversible(), reversible Heun", "least-action-reversible-heun", "reversible-heun",
        "project"),
    Row("diffrax-reversible-heun", "diffrax ReversibleHeun, RecursiveCheckpointAdjoint", "diffrax-checkpoint",
        "reversible-heun", "diffrax"),
    Row("jax-grad-rk38", "jax.grad through lax.scan (3/8 rule)", "jax-grad", "rk38", "reference"),
    Row("torchdiffeq", "torchdiffeq rk4 (3/8 rule), autograd", "torchdiffeq", "rk38", "torchdiffeq"),
)
REFERENCES = {"rk4": "jax-grad", "reversible-heun": "jax-grad-reversible-heun", "rk38": "jax-grad-rk38"}
BY_NAME = {row.name: row for row in ROWS}
PROJECT = tuple(row.name for row in ROWS if row.family == "project")


def make_problem(config: BenchmarkConfig, dim: int, steps: int, state: str, dtype: str) -> harness.Problem:
    """The RK4 neural ODE of one cell, `l = 0.5 |x(T)|^2` (batch-averaged), cast to `dtype`."""
    problem = neural_ode_problem(dim, steps, batch=None if state == "single" else config.batch,
                                 t_final=config.t_final, seed=config.seed, scheme="rk4", targets=False)
    return problem.astype(harness.problems.dtype_named(dtype))


def prepared(problem: harness.Problem, row: Row) -> harness.Prepared:
    """The row's harness method prepared on `problem` stepped by the row's scheme."""
    method = harness.method_named(row.method)
    discrete = problem.rediscretise(row.scheme, lambda field, ts: integrators.discretise(field, ts, row.scheme))
    return method.prepare(method.target(discrete))


# --- measuring ------------------------------------------------------------------------------


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else float(a / b)


def _predicted_call(history: dict, row: Row, cell: dict) -> tuple[float, int] | None:
    """`(seconds, N)`: the row's median wall time at the largest smaller `N` of the same `d`,
    state and dtype, scaled linearly to this cell's `N`; `None` if it was not measured."""
    earlier = [(n, s) for (name, d, state, dtype, n), s in history.items()
               if (name, d, state, dtype) == (row.name, cell["d"], cell["state"], cell["dtype"]) and n < cell["steps"]]
    if not earlier:
        return None
    n, seconds = max(earlier)
    return seconds * cell["steps"] / n, n


def measure_cell(config: BenchmarkConfig, cell: dict, history: dict, report) -> list[dict]:
    """Every row in one cell: compile the JAX methods, time all of them interleaved, compare
    each gradient with the reference of its map. `history` holds the median wall time of
    every row measured so far (for the peers' budget); it is updated."""
    problem = make_problem(config, cell["d"], cell["steps"], cell["state"], cell["dtype"])
    where = f"d={cell['d']} N={cell['steps']} {cell['state']} {cell['dtype']}"
    entries, calls = {}, {}
    for row in ROWS:
        report(f"{where}: {row.name}")
        entry = {"method": row.name, "label": row.label, "family": row.family, "scheme": row.scheme,
                 "reference": row.reference, **cell, "status": "measured"}
        entries[row.name] = entry
        predicted = _predicted_call(history, row, cell) if row.is_peer else None
        if predicted is not None and predicted[0] > config.budget:
            entry["status"] = "not measured: over budget"
            entry["predicted_call_seconds"], entry["predicted_from_steps"] = predicted
            continue
        ready = prepared(problem, row)
        if ready.compiled:
            executable, seconds, memory = compile_program(ready.fn, ready.args)
            calls[row.name] = (executable, ready.args)
            entry.update(compile_seconds=seconds, xla_temp_bytes=None if memory is None else memory["temp_bytes"])
        else:
            calls[row.name] = (ready.fn, ready.args)
            entry.update(compile_seconds=None, xla_temp_bytes=None)
    timed = time_interleaved(calls, repeats=config.repeats, budget=config.budget)
    grads = {}
    for name, ((grad, aux), timing) in timed.items():
        grads[name] = grad
        history[(name, cell["d"], cell["state"], cell["dtype"], cell["steps"])] = timing.median_seconds
        entries[name].update(
            cpu_seconds=timing.median_cpu_seconds, wall_seconds=timing.median_seconds,
            all_cpu_seconds=list(timing.cpu_calls), all_wall_seconds=list(timing.calls),
            timed_calls=len(timing.calls), cut_by_budget=timing.cut_by_budget,
            first_call_seconds=timing.warmup_seconds,
            time_to_first_gradient_seconds=(entries[name]["compile_seconds"] or 0.0) + timing.warmup_seconds,
            # reversible memory: the reconstruction error of x_0; diffrax: the steps it took
            diagnostics={k: float(v) for k, v in aux.items()})
    tolerance = EXACT[cell["dtype"]]
    for row in ROWS:
        entry, reference = entries[row.name], entries[row.reference]
        measured = entry["status"] == "measured"
        entry["error"] = relative_error(grads[row.name], grads[row.reference]) if measured else None
        entry["error_judged"] = row.exact and row.family != "reference"
        entry["tolerance"] = tolerance if entry["error_judged"] else None
        for clock in ("cpu", "wall"):
            entry[f"{clock}_ratio"] = _ratio(entry.get(f"{clock}_seconds"), reference[f"{clock}_seconds"])
            entry[f"{clock}_ratio_to_jax_grad_rk4"] = _ratio(entry.get(f"{clock}_seconds"),
                                                              entries["jax-grad"][f"{clock}_seconds"])
    return list(entries.values())


def measure_memory(config: BenchmarkConfig, sizes: Sizes, runs: list[dict], report) -> dict:
    """XLA temporary bytes and compile seconds of every JAX row's gradient at each `N` of
    `memory_steps` (compiled, not run), at the largest `d`, for each state, in the first
    dtype; a size the timed cells already compiled is read from them."""
    d, dtype = max(sizes.dims), sizes.dtypes[0]
    rows = [row for row in ROWS if row.family != "torchdiffeq"]
    timed = {(r["method"], r["state"], r["steps"]): r for r in runs
             if r["d"] == d and r["dtype"] == dtype and r.get("compile_seconds") is not None}
    out = {"d": d, "dtype": dtype, "steps": list(sizes.memory_steps), "states": {}}
    for state in sizes.states:
        methods = {row.name: {"temp_bytes": [], "compile_seconds": []} for row in rows}
        for n in sizes.memory_steps:
            problem = make_problem(config, d, n, state, dtype)
            for row in rows:
                report(f"memory d={d} N={n} {state} {dtype}: {row.name}")
                if (row.name, state, n) in timed:
                    known = timed[(row.name, state, n)]
                    temp, seconds = known["xla_temp_bytes"], known["compile_seconds"]
                else:
                    ready = prepared(problem, row)
                    _, seconds, memory = compile_program(ready.fn, ready.args)
                    temp = None if memory is None else memory["temp_bytes"]
                methods[row.name]["temp_bytes"].append(temp)
                methods[row.name]["compile_seconds"].append(seconds)
        out["states"][state] = methods
    return out


# --- targets --------------------------------------------------------------------------------


def _cells_of(runs: list[dict], name: str) -> list[dict]:
    return [r for r in runs if r["method"] == name]


def _key(r: dict) -> tuple:
    return r["d"], r["steps"], r["state"], r["dtype"]


def _bound(target: str, per_cell: list[dict], bound: float, above: bool = False) -> dict:
    """A target `value <= bound` (or `>= bound` with `above`) in every cell, judged on CPU
    time (`pass`) with the wall-time verdict beside (`pass_wall`); `None`: not measured."""
    verdicts = {}
    for clock in ("cpu", "wall"):
        values = [c[clock] for c in per_cell if c[clock] is not None]
        worst = (min(values) if above else max(values)) if values else None
        ok = None if worst is None else (worst >= bound if above else worst <= bound)
        verdicts[clock] = (worst, ok)
    return {"target": target, "bound": bound, "value": verdicts["cpu"][0], "pass": verdicts["cpu"][1],
            "value_wall": verdicts["wall"][0], "pass_wall": verdicts["wall"][1],
            "cells_measured": sum(c["cpu"] is not None for c in per_cell), "per_cell": per_cell}


def _cell(r: dict, cpu, wall) -> dict:
    return {"d": r["d"], "steps": r["steps"], "state": r["state"], "dtype": r["dtype"], "cpu": cpu, "wall": wall}


def _ratio_per_cell(runs, name) -> list[dict]:
    return [_cell(r, r["cpu_ratio"], r["wall_ratio"]) for r in _cells_of(runs, name)]


def _quotient_per_cell(runs, numerator, denominator, keep=lambda r: True) -> list[dict]:
    """`time(numerator) / time(denominator)` in every cell where both were measured."""
    below = {_key(r): r for r in _cells_of(runs, denominator)}
    out = []
    for r in _cells_of(runs, numerator):
        other = below.get(_key(r))
        if keep(r) and other is not None:
            out.append(_cell(r, _ratio(r.get("cpu_seconds"), other.get("cpu_seconds")),
                             _ratio(r.get("wall_seconds"), other.get("wall_seconds"))))
    return out


def evaluate_targets(runs: list[dict], memory: dict) -> dict:
    """The acceptance targets on the measured numbers (CPU-time ratios; wall beside)."""
    targets = {
        "store_stages_vs_jax_grad": _bound("StoreStages / jax.grad <= 1.10 in every cell",
                                           _ratio_per_cell(runs, "store-stages"), 1.10),
        "store_all_vs_jax_grad": _bound("StoreAll / jax.grad <= 1.5 in every cell",
                                        _ratio_per_cell(runs, "store-all"), 1.5),
        "reversible_heun_vs_jax_grad_same_map": _bound(
            "Reversible() / jax.grad through the same reversible-Heun map <= 1.3 in every cell",
            _ratio_per_cell(runs, "reversible-heun"), 1.3),
    }
    float32 = []
    for name in PROJECT:
        double = {(r["d"], r["steps"], r["state"]): r for r in _cells_of(runs, name) if r["dtype"] == "float64"}
        for r in _cells_of(runs, name):
            other = double.get((r["d"], r["steps"], r["state"]))
            if r["dtype"] == "float32" and other is not None:
                float32.append({**_cell(r, _ratio(r["cpu_seconds"], other["cpu_seconds"]),
                                        _ratio(r["wall_seconds"], other["wall_seconds"])), "method": name})
    targets["float32_not_slower"] = _bound("float32 time / float64 time <= 1 for every project strategy and cell",
                                           float32, 1.0)
    targets["checkpoint_log_vs_store_all_at_10000"] = _bound(
        "Checkpoint.logarithmic() / StoreAll <= 3.0 at N = 10000",
        _quotient_per_cell(runs, "checkpoint-log", "store-all", keep=lambda r: r["steps"] == 10000), 3.0)
    compile_ratio = []
    if 100000 in memory["steps"]:
        i = memory["steps"].index(100000)
        for state, methods in memory["states"].items():
            seconds = _ratio(methods["checkpoint-log"]["compile_seconds"][i], methods["store-all"]["compile_seconds"][i])
            compile_ratio.append({"d": memory["d"], "steps": 100000, "state": state, "dtype": memory["dtype"],
                                  "cpu": seconds, "wall": seconds})
    targets["checkpoint_log_compile_vs_store_all_at_1e5"] = _bound(
        "compile time of Checkpoint.logarithmic() <= 2 x StoreAll's at N = 1e5 (wall time of the compile)",
        compile_ratio, 2.0)
    targets["ahead_of_diffrax_recursive_checkpoint"] = _bound(
        "diffrax RecursiveCheckpointAdjoint / StoreAll > 1 in every cell",
        _quotient_per_cell(runs, "diffrax-recursive-checkpoint", "store-all"), 1.0, above=True)
    targets["ahead_of_diffrax_recursive_checkpoint_5x"] = _bound(
        "diffrax RecursiveCheckpointAdjoint / StoreAll >= 5 for single states at d <= 64",
        _quotient_per_cell(runs, "diffrax-recursive-checkpoint", "store-all",
                           keep=lambda r: r["state"] == "single" and r["d"] <= 64), 5.0, above=True)
    targets["ahead_of_torchdiffeq_20x"] = _bound(
        "torchdiffeq / StoreAll >= 20 in every cell (both four-stage Runge-Kutta maps)",
        _quotient_per_cell(runs, "torchdiffeq", "store-all"), 20.0, above=True)
    errors = [{**_cell(r, r["error"] / r["tolerance"], r["error"] / r["tolerance"]), "method": r["method"]}
              for r in runs if r["error_judged"] and r["error"] is not None]
    targets["errors"] = _bound("relative L2 error / tolerance <= 1 for every exact method in every cell "
                               "(tolerance 1e-12 in float64, 1e-5 in float32, against jax.grad of the same map)",
                               errors, 1.0)
    targets["errors"]["worst_error"] = {
        dtype: max((r["error"] for r in runs if r["error_judged"] and r["error"] is not None and r["dtype"] == dtype),
                   default=None) for dtype in DTYPES}
    return targets


# --- tables and figures ---------------------------------------------------------------------

RATIO_COLUMNS = tuple(row for row in ROWS if row.family != "reference")


def _pair(entry: dict) -> str:
    """``CPU / wall`` ratio to the reference, or why there is none."""
    if entry["status"] != "measured":
        return "over budget"
    text = f"{entry['cpu_ratio']:.3g} / {entry['wall_ratio']:.3g}"
    return text + ("*" if entry["cut_by_budget"] else "")


def _describe(sizes: Sizes, config: BenchmarkConfig) -> str:
    states = " and ".join("one state (d,)" if s == "single" else f"batch {config.batch} x d" for s in sizes.states)
    return (f"d in {{{', '.join(map(str, sizes.dims))}}}, N in {{{', '.join(map(str, sizes.steps))}}}, "
            f"{states}, {' and '.join(sizes.dtypes)}")


def ratio_table(runs: list[dict], sizes: Sizes, config: BenchmarkConfig) -> Table:
    """One line per cell: the reference's CPU time, then every method's time over the
    reference of its map, ``CPU / wall``."""
    by_cell: dict[tuple, dict] = {}
    for r in runs:
        by_cell.setdefault(_key(r), {})[r["method"]] = r
    body = []
    for key in sorted(by_cell, key=lambda k: (k[3] != "float64", k[2] != "single", k[0], k[1])):
        entries = by_cell[key]
        d, n, state, dtype = key
        body.append([d, n, state, dtype, 1e3 * entries["jax-grad"]["cpu_seconds"],
                     *(_pair(entries[row.name]) for row in RATIO_COLUMNS)])
    return Table(
        columns=["d", "N", "state", "dtype", "jax.grad CPU ms", *(row.label for row in RATIO_COLUMNS)],
        rows=body,
        caption=(f"Gradient time / jax.grad through lax.scan of the same discrete map (RK4; reversible Heun for "
                 f"the reversible rows; the 3/8 rule for torchdiffeq), as process CPU time / wall time: medians of "
                 f"{config.repeats} warm calls timed interleaved in one run. Neural ODE tanh(W x + b), "
                 f"T = {config.t_final:g}, loss |x(T)|^2/2 (batch mean); {_describe(sizes, config)}. "
                 f"* fewer calls (over the {config.budget:g} s budget); 'over budget': not run."),
        label="tab:benchmark-gradients-ratios",
    )


def timing_table(runs: list[dict]) -> Table:
    """Every method in every cell: raw times, ratios, time to first gradient and error."""
    body = []
    for r in runs:
        if r["status"] != "measured":
            body.append([r["d"], r["steps"], r["state"], r["dtype"], r["method"], r["status"], "-", "-", "-", "-",
                         "-", "-", "-"])
            continue
        body.append([r["d"], r["steps"], r["state"], r["dtype"], r["method"], 1e3 * r["cpu_seconds"],
                     1e3 * r["wall_seconds"], r["timed_calls"], r["cpu_ratio"], r["wall_ratio"],
                     r["time_to_first_gradient_seconds"], "(reference)" if r["family"] == "reference" else r["error"],
                     r["xla_temp_bytes"] if r["xla_temp_bytes"] is not None else "-"])
    return Table(
        columns=["d", "N", "state", "dtype", "method", "CPU ms", "wall ms", "calls", "CPU ratio", "wall ratio",
                 "first gradient s", "rel. L2 error", "XLA temp bytes"],
        rows=body,
        caption=("Every method in every cell: medians of the interleaved warm calls (process CPU time and wall "
                 "time), the ratios to jax.grad of the same map, time to first gradient (trace + compile + first "
                 "call, wall), the relative L2 error of dl/dtheta against jax.grad of the same map, and XLA's "
                 "temporary bytes of the compiled gradient."),
        label="tab:benchmark-gradients-timings",
    )


def memory_table(memory: dict) -> Table:
    body = []
    for state, methods in memory["states"].items():
        for name, entry in methods.items():
            body.append([state, name, *entry["temp_bytes"], *entry["compile_seconds"]])
    steps = memory["steps"]
    return Table(
        columns=["state", "method", *(f"temp bytes N={n}" for n in steps), *(f"compile s N={n}" for n in steps)],
        rows=body,
        caption=(f"XLA temporary memory (compiled memory_analysis().temp_size_in_bytes; not run, not RSS) and "
                 f"compile time (trace + lower + compile, wall) of every JAX gradient, d = {memory['d']}, "
                 f"{memory['dtype']}."),
        label="tab:benchmark-gradients-memory",
    )


def targets_table(targets: dict) -> Table:
    verdict = {True: "pass", False: "MISS", None: "not measured"}
    body = [[t["target"], "-" if t["value"] is None else t["value"], verdict[t["pass"]],
             "-" if t["value_wall"] is None else t["value_wall"], verdict[t["pass_wall"]], t["cells_measured"]]
            for t in targets.values()]
    return Table(columns=["target", "worst value (CPU)", "CPU", "worst value (wall)", "wall", "cells"], rows=body,
                 caption="Acceptance targets evaluated on the measured numbers (a miss does not fail the run).",
                 label="tab:benchmark-gradients-targets")


STYLES = {
    "store-all": ("#1f77b4", "s", "-"),
    "store-stages": ("#17becf", "<", "-"),
    "checkpoint-sqrt": ("#2ca02c", "^", "-"),
    "checkpoint-log": ("#98df8a", "v", "-"),
    "reversible-heun": ("#9467bd", "D", "-"),
    "diffrax-recursive-checkpoint": ("#d62728", "x", "--"),
    "diffrax-backsolve": ("#ff9896", "*", "--"),
    "diffrax-reversible-heun": ("#8c564b", "d", "--"),
    "torchdiffeq": ("#7f7f7f", "P", ":"),
    "jax-grad": ("k", "o", "-"),
    "jax-grad-reversible-heun": ("0.4", "o", ":"),
    "jax-grad-rk38": ("0.7", "o", ":"),
}
"""Colour, marker and line of each row in the figures (peers dashed or dotted)."""


def ratio_figure(runs: list[dict], sizes: Sizes):
    """CPU time / jax.grad of the same map against N: one panel per d (columns) and
    state x dtype (rows), one line per method."""
    layouts = [(state, dtype) for state in sizes.states for dtype in sizes.dtypes]
    fig, axes = plots.figure(ncols=len(sizes.dims), nrows=len(layouts), panel_size=(4.2, 3.2))
    for i, (state, dtype) in enumerate(layouts):
        for j, d in enumerate(sizes.dims):
            ax = axes[i * len(sizes.dims) + j]
            for row in RATIO_COLUMNS:
                points = sorted((r["steps"], r["cpu_ratio"]) for r in runs
                                if r["method"] == row.name and (r["d"], r["state"], r["dtype"]) == (d, state, dtype)
                                and r["cpu_ratio"] is not None)
                if points:
                    colour, marker, line = STYLES[row.name]
                    ax.loglog(*zip(*points), color=colour, marker=marker, ls=line, ms=4, label=row.label)
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_title(f"d = {d}, {state}, {dtype}", fontsize=9)
            ax.set_xlabel("steps $N$")
            ax.set_ylabel("CPU time / jax.grad (same map)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=3 if len(sizes.dims) == 1 else 5, fontsize=7)
    return fig


def memory_figure(memory: dict):
    """XLA temporary bytes and compile seconds against N, per JAX method, one column per state."""
    states = list(memory["states"])
    fig, axes = plots.figure(ncols=len(states), nrows=2, panel_size=(4.6, 3.4))
    for j, state in enumerate(states):
        top, bottom = axes[j], axes[len(states) + j]
        for name, entry in memory["states"][state].items():
            colour, marker, line = STYLES[name]
            for ax, values in ((top, entry["temp_bytes"]), (bottom, entry["compile_seconds"])):
                ax.loglog(memory["steps"], values, color=colour, marker=marker, ls=line, ms=4,
                          label=BY_NAME[name].label)
        top.set_title(f"XLA temp bytes, d = {memory['d']}, {state}", fontsize=9)
        bottom.set_title(f"compile seconds, d = {memory['d']}, {state}", fontsize=9)
        for ax in (top, bottom):
            ax.set_xlabel("steps $N$")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7)
    return fig


# --- the run --------------------------------------------------------------------------------


def run(config: BenchmarkConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measure every cell and the memory against `N`; evaluate the targets; write the tables
    `ratios`, `timings`, `memory`, `targets` and the figures `ratios_vs_steps`, `memory_vs_steps`."""
    import diffrax
    import torch
    import torchdiffeq

    torch.set_num_threads(TORCH_THREADS)
    started = time.perf_counter()
    sizes = config.sizes()
    cells = [{"d": d, "steps": n, "state": state, "batch": 1 if state == "single" else config.batch, "dtype": dtype}
             for dtype in sizes.dtypes for state in sizes.states for d in sizes.dims for n in sizes.steps]
    memory_rows = sum(row.family != "torchdiffeq" for row in ROWS)
    total = len(cells) * len(ROWS) + len(sizes.states) * len(sizes.memory_steps) * memory_rows + 1
    done = 0

    def report(description):
        nonlocal done
        done += 1
        progress(done, total, description)

    runs, history = [], {}
    for cell in cells:
        measured = measure_cell(config, cell, history, report)
        for r in measured:
            folder.log(f"d={r['d']} N={r['steps']} {r['state']} {r['dtype']} {r['method']}: " + (
                r["status"] if r["status"] != "measured" else
                f"{1e3 * r['cpu_seconds']:.3f} ms CPU, {1e3 * r['wall_seconds']:.3f} ms wall, "
                f"x{r['cpu_ratio']:.3f} CPU / x{r['wall_ratio']:.3f} wall vs {r['reference']}, error {r['error']:.2e}"))
        runs.extend(measured)
    memory = measure_memory(config, sizes, runs, report)
    targets = evaluate_targets(runs, memory)
    for name, target in targets.items():
        folder.log(f"target {name} ({target['target']}): "
                   f"{ {True: 'pass', False: 'MISS', None: 'not measured'}[target['pass']]} (CPU {target['value']}, "
                   f"wall {target['value_wall']})")

    report("tables and figures")
    folder.save_table(ratio_table(runs, sizes, config), "ratios")
    folder.save_table(timing_table(runs), "timings")
    folder.save_table(memory_table(memory), "memory")
    folder.save_table(targets_table(targets), "targets")
    folder.save_figure(ratio_figure(runs, sizes), "ratios_vs_steps")
    folder.save_figure(memory_figure(memory), "memory_vs_steps")
    return {
        "setup": {
            "system": "neural ODE dx/dt = tanh(W x + b), theta = {W, b}, RK4 on a uniform grid",
            "loss": "0.5 |x(T)|^2; a batch: its mean over the batch",
            "sizes": {"dims": list(sizes.dims), "steps": list(sizes.steps), "states": list(sizes.states),
                      "dtypes": list(sizes.dtypes), "memory_steps": list(sizes.memory_steps)},
            "covers": _describe(sizes, config),
            "batch": config.batch, "t_final": config.t_final, "repeats": config.repeats, "budget": config.budget,
            "quick": config.quick,
            "timing": "experiments.harness.metrics.time_interleaved: JAX methods compiled first; one warm-up call "
                      "each, then rounds of one call of each method; medians of process CPU time "
                      "(time.process_time) and wall time (time.perf_counter)",
            "time_to_first_gradient": "trace + lower + compile (compile_program, wall) + first call (wall)",
            "memory": "XLA memory_analysis().temp_size_in_bytes of the compiled gradient (not run; not RSS)",
            "errors": "relative L2 error of dl/dtheta (W and b concatenated) against jax.grad through the same map",
            "diffrax_reversible_adjoint": "diffrax " + diffrax.__version__ + " has no ReversibleAdjoint; "
                                          "ReversibleHeun is differentiated by RecursiveCheckpointAdjoint",
            "torch_threads": TORCH_THREADS,
            "jax_version": jax.__version__, "diffrax_version": diffrax.__version__,
            "torch_version": str(torch.__version__), "torchdiffeq_version": torchdiffeq.__version__,
            "devices": [str(device) for device in jax.devices()],
        },
        "methods": [{"name": row.name, "label": row.label, "harness_method": row.method, "scheme": row.scheme,
                     "family": row.family, "reference": row.reference, "exact": row.exact} for row in ROWS],
        "runs": runs,
        "memory_vs_steps": memory,
        "targets": targets,
        "wall_seconds": time.perf_counter() - started,
    }


BENCHMARK_GRADIENTS = Experiment(
    name="benchmark-gradients",
    description="neural ODE (RK4) gradients: every memory strategy vs jax.grad of the same map, diffrax, "
                "torchdiffeq; CPU and wall time interleaved, first-gradient time, XLA memory, errors",
    config=BenchmarkConfig(),
    run=run,
    headline=(
        "targets.store_stages_vs_jax_grad.value",
        "targets.store_all_vs_jax_grad.value",
        "targets.reversible_heun_vs_jax_grad_same_map.value",
        "targets.ahead_of_diffrax_recursive_checkpoint.value",
        "targets.ahead_of_torchdiffeq_20x.value",
        "targets.errors.value",
        "wall_seconds",
    ),
    volatile=("*ratio*", "value", "pass", "pass_wall", "cpu", "cut_by_budget", "timed_calls", "status",
              "predicted_from_steps", "cells_measured"),
    figures={"benchmark_gradients_ratios": "ratios_vs_steps"},
    readme_tables={"benchmark-gradients": "ratios"},
)
EXPERIMENT = BENCHMARK_GRADIENTS
