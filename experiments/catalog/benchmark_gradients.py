"""Gradient benchmark: least-action sweeps against jax.grad and diffrax's adjoints.

System: the neural ODE `dx/dt = f(x) = tanh(W x + b)` in `d` dimensions
(`theta = {"W", "b"}`, `lagrangian.NeuralODE`), horizon `[0, T]`, a batch of
`B` random initial states, the batch-averaged loss
`l = (1/B) sum_b 0.5 |x_N^b - y^b|^2` with random targets `y`, float64
throughout. For every `d` in `dims` and every step count `N` in `steps`
(uniform grid, `h = T / N`) each gradient method below computes `dl/dtheta`
at the same `N`. The problem is the harness's (`harness.shipped.neural_ode_problem`),
each row is a method of the harness registry (`harness.METHODS`, named in brackets)
on the problem stepped by Heun or re-discretised by a reversible scheme:

    autodiff-heun                 [jax-grad] jax.grad through the plain scan of Heun's map
                                  (`integrators.output`): the reference of the discrete map
    least-action-store-all        [least-action] the least-action sweep, Heun, every state stored
    least-action-store-stages     [least-action-store-stages] the sweep keeping every step's
                                  linearisation (the memory and arithmetic of jax.grad)
    least-action-checkpoint-sqrt  [least-action-checkpoint] `Checkpoint(levels=2)`: ~sqrt(N) states
    least-action-checkpoint-log   [least-action-checkpoint-log] `Checkpoint.logarithmic()`: ~log2(N)
    autodiff-reversible-heun      [jax-grad] jax.grad through the reversible-Heun map (its reference)
    least-action-reversible-heun  [least-action-reversible-heun] the sweep with `Reversible()` memory
    autodiff-asynchronous-leapfrog / least-action-asynchronous-leapfrog   the same for MALI
    diffrax-recursive-checkpoint  [diffrax-checkpoint] `diffrax.diffeqsolve` with an explicit
                                  Runge-Kutta solver holding Heun's tableau on the same grid
                                  (`StepTo`), `RecursiveCheckpointAdjoint` (discretise-then-optimise)
    diffrax-backsolve             [diffrax-backsolve] the same solve with `BacksolveAdjoint` (the
                                  continuous adjoint ODE solved backward on the same grid)

What is measured, per method, `d` and `N`:

- relative L2 error `|g - g_ref| / |g_ref|` of the parameter gradient (W and
  b concatenated, `harness.relative_error`) against (i) the discrete reference,
  jax.grad through the same discrete forward map (Heun's for the Heun-based
  methods and diffrax, each reversible scheme's own map for the reversible
  methods), and (ii) the continuous reference: the harness's adjoint ODE solved
  by scipy's DOP853 at `rtol = atol = 1e-13`, computed once per `d` (and,
  outside the quick preset, again at `1e-11`; their difference is reported as
  the reference's uncertainty);
- wall time of the forward map alone (the loss through the plain scan of the
  row's scheme; for diffrax, Heun's scan) and of the gradient, both by
  `harness.run_timed`: compiled once with `jax.jit(fn).lower(*args).compile()`,
  called once to warm up, then called `repeats` times (at least 5) with
  `jax.block_until_ready`; the median is reported, with the ratio gradient /
  forward and the ratio to the time of `autodiff-heun` at the same `d` and `N`;
- memory: XLA's compiled memory statistics of the jitted gradient,
  `compiled.memory_analysis()`: `temp_size_in_bytes` (the temporary buffers
  the compiled program allocates: deterministic, no run needed) and the
  argument and output sizes. It is not a measured RSS;
- the evaluation counts the harness method states (for the sweeps, its memory
  strategy's `cost`).

Memory against `N`: the gradients of store-all, store-stages, both
checkpointing schedules, both reversible schemes and jax.grad (plus diffrax outside the quick preset)
are compiled, not run, at every `N` in `memory_steps` for the largest `d`.
The growth ratio `temp(N_max) / temp(N_min)`, the log-log slope and the
marginal bytes per step `(temp(N_max) - temp(N_min)) / (N_max - N_min)` are
reported next to the bytes of one batch state, so what grows with `N` can be
told apart from what is stored per state.

The targets (bounds on time and memory) are evaluated on the measured numbers and reported in
`results["targets"]` with pass/fail flags; a missed target does not fail the
run. The `quick` preset (`--set quick=true`) replaces the sizes by small ones
(one `d`, small `N`) so the whole run takes well under a minute.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import jax
import numpy as np

import integrators

from .. import harness, plots
from ..harness.metrics import compile_program, relative_error
from ..harness.problems import AdjointODEReference
from ..harness.shipped import neural_ode_problem
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

# --- configuration --------------------------------------------------------------------------


def _ints(text: str, key: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"config key {key!r} must be comma-separated integers; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise ValueError(f"config key {key!r} needs at least one integer >= 1; got {text!r}")
    return values


QUICK_SIZES = {"dims": "16", "steps": "100", "memory_steps": "100,10000"}
"""The sizes the `quick` preset runs instead of `dims`, `steps` and `memory_steps`."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """Defaults of the gradient benchmark.

    dims: comma-separated state dimensions `d`.
    steps: comma-separated step counts `N` of the timed comparison.
    memory_steps: comma-separated `N` at which the gradients are only compiled
        to read XLA's memory statistics (for the largest `d`).
    t_final: horizon `T`.
    batch: number of initial states `B`.
    scale: weight scale of `W` (and `0.1 * scale` of `b`).
    repeats: timed warm calls per function (median reported; at least 5).
    seed: seed of the weights, the initial states and the targets.
    quick: the small preset: `dims`, `steps` and `memory_steps` become
        `QUICK_SIZES`, the memory table holds only store-all, 2-level
        checkpointing and reversible Heun, and the continuous reference is not
        cross-checked with Tsit5 (the run takes well under a minute).
    """

    dims: str = "16,64"
    steps: str = "100,1000,10000"
    memory_steps: str = "1000,10000,100000"
    t_final: float = 1.0
    batch: int = 8
    scale: float = 1.0
    repeats: int = 5
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        for key in ("dims", "steps", "memory_steps"):
            _ints(getattr(self, key), key)
        if self.quick:
            defaults = BenchmarkConfig.__dataclass_fields__
            changed = [k for k in QUICK_SIZES if getattr(self, k) != defaults[k].default]
            if changed:
                raise ValueError(f"config key 'quick' replaces {', '.join(QUICK_SIZES)}; "
                                 f"do not also set {', '.join(changed)}")
        if not self.t_final > 0:
            raise ValueError(f"config key 't_final' must be > 0; got {self.t_final}")
        if self.batch < 1:
            raise ValueError(f"config key 'batch' must be >= 1; got {self.batch}")
        if self.repeats < 5:
            raise ValueError(f"config key 'repeats' must be >= 5 (median of at least 5); got {self.repeats}")

    def sizes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """`(dims, steps, memory_steps)` actually run (the quick sizes when `quick`)."""
        source = QUICK_SIZES if self.quick else {k: getattr(self, k) for k in QUICK_SIZES}
        return tuple(_ints(source[k], k) for k in ("dims", "steps", "memory_steps"))


QUICK = BenchmarkConfig(quick=True)
"""The quick preset (`leastaction run benchmark-gradients --set quick=true`)."""

# --- the methods ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One gradient method of the benchmark: a method of the harness registry
    (`experiments.harness.METHODS`) on the problem stepped by `scheme`.

    name: the row's name in the tables, figures and `results.json`.
    method: the harness method.
    scheme: the discrete map it differentiates: ``heun``, ``reversible-heun`` or
        ``asynchronous-leapfrog`` (the problem re-discretised on the same grid).
    """

    name: str
    label: str
    method: str
    scheme: str

    @property
    def family(self) -> str:
        """``autodiff`` (jax.grad through the scan), ``least-action`` or ``diffrax``."""
        kind = harness.method_named(self.method).kind
        return "autodiff" if self.method == "jax-grad" else ("least-action" if kind == "project" else "diffrax")

    @property
    def reference(self) -> str:
        """The row whose gradient is the exact gradient of the same discrete map: jax.grad on `scheme`."""
        return f"autodiff-{self.scheme}"


ROWS: tuple[Row, ...] = (
    Row("autodiff-heun", "jax.grad, Heun (store-all)", "jax-grad", "heun"),
    Row("least-action-store-all", "least action, store-all", "least-action", "heun"),
    Row("least-action-store-stages", "least action, store-stages", "least-action-store-stages", "heun"),
    Row("least-action-checkpoint-sqrt", "least action, checkpoint (2 levels)", "least-action-checkpoint", "heun"),
    Row("least-action-checkpoint-log", "least action, checkpoint (log2 N levels)", "least-action-checkpoint-log",
        "heun"),
    Row("autodiff-reversible-heun", "jax.grad, reversible Heun", "jax-grad", "reversible-heun"),
    Row("least-action-reversible-heun", "least action, reversible Heun", "least-action-reversible-heun",
        "reversible-heun"),
    Row("autodiff-asynchronous-leapfrog", "jax.grad, asynchronous leapfrog", "jax-grad", "asynchronous-leapfrog"),
    Row("least-action-asynchronous-leapfrog", "least action, asynchronous leapfrog",
        "least-action-asynchronous-leapfrog", "asynchronous-leapfrog"),
    Row("diffrax-recursive-checkpoint", "diffrax Heun, RecursiveCheckpointAdjoint", "diffrax-checkpoint", "heun"),
    Row("diffrax-backsolve", "diffrax Heun, BacksolveAdjoint", "diffrax-backsolve", "heun"),
)
BY_NAME = {r.name: r for r in ROWS}

MEMORY_ROWS = (
    "autodiff-heun", "least-action-store-all", "least-action-store-stages", "least-action-checkpoint-sqrt",
    "least-action-checkpoint-log", "least-action-reversible-heun", "least-action-asynchronous-leapfrog",
)
DIFFRAX_MEMORY_ROWS = ("diffrax-recursive-checkpoint", "diffrax-backsolve")
QUICK_MEMORY_ROWS = ("least-action-store-all", "least-action-checkpoint-sqrt", "least-action-reversible-heun")


def make_problem(config: BenchmarkConfig, dim: int, steps: int) -> harness.Problem:
    """The neural ODE of `config` in `dim` dimensions on `steps` Heun steps
    (`harness.shipped.neural_ode_problem`: weights, states and targets depend on `seed`
    and `d` only, not on `N`)."""
    return neural_ode_problem(dim, steps, batch=config.batch, t_final=config.t_final, scale=config.scale,
                              seed=config.seed)


def target(problem: harness.Problem, row: Row) -> harness.Problem:
    """The problem re-discretised by the row's scheme on the same grid."""
    return problem.rediscretise(row.scheme, lambda field, ts: integrators.discretise(field, ts, row.scheme))


def memory_strategy(row: Row, problem: harness.Problem) -> str:
    """The name (`integrators.MEMORIES`) of the strategy a least-action row sweeps with, or
    what the other rows keep (``jax.grad``, or the diffrax adjoint)."""
    method = harness.method_named(row.method)
    if row.family != "least-action":
        return "jax.grad" if row.family == "autodiff" else row.method
    memory = method.memory_for(target(problem, row).system)
    return next(name for name, known in integrators.MEMORIES.items() if known == memory)


def prepared(problem: harness.Problem, row: Row) -> harness.Prepared:
    """The row's harness method, prepared on the row's discretisation of `problem`."""
    return harness.method_named(row.method).prepare(target(problem, row))


def continuous_reference(problem: harness.Problem, rtol: float = 1e-13) -> dict:
    """The continuous gradient of `problem`'s ODE: the harness's adjoint-ODE reference
    (scipy DOP853 at `rtol = atol`), with its wall time."""
    start = time.perf_counter()
    grad = AdjointODEReference(rtol)(problem)
    return {"grad": grad, "source": f"adjoint ODE by scipy DOP853, rtol = atol = {rtol:g}", "rtol": rtol,
            "seconds": time.perf_counter() - start}


# --- measuring ------------------------------------------------------------------------------


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else float(a / b)


def measure_size(problem: harness.Problem, rows, reference: dict, repeats: int, report) -> list[dict]:
    """Every row at one `(d, N)`: forward and gradient timings (`harness.run_timed`: compiled,
    one warm call, median of `repeats` calls), XLA memory of the gradient, errors."""
    forwards, out, grads = {}, [], {}
    d = int(problem.x0.shape[1])
    for row in rows:
        if row.scheme not in forwards:
            discrete = target(problem, row)
            _, forwards[row.scheme] = harness.run_timed(discrete.loss_at, (discrete.theta, discrete.x0),
                                                        repeats=repeats, budget=math.inf)
        report(f"d={d} N={problem.steps}: {row.name}")
        ready = prepared(problem, row)
        (grad, aux), timing = harness.run_timed(ready.fn, ready.args, repeats=repeats, budget=math.inf)
        grads[row.name] = grad
        forward = forwards[row.scheme]
        out.append({
            "method": row.name, "label": row.label, "harness_method": row.method, "family": row.family,
            "scheme": row.scheme, "memory_strategy": memory_strategy(row, problem), "d": d, "steps": problem.steps,
            "discrete_reference": row.reference,
            "forward_seconds": forward.median_seconds, "forward_all_seconds": list(forward.calls),
            "forward_memory": forward.memory,
            "gradient_seconds": timing.median_seconds, "gradient_all_seconds": list(timing.calls),
            "gradient_compile_seconds": timing.compile_seconds,
            "gradient_over_forward": _ratio(timing.median_seconds, forward.median_seconds),
            "memory": timing.memory, "evaluations": dict(ready.evaluations),
            # Reversible memory: max |x_0^rec - x_0| / max |x_0| after the backward reconstruction;
            # diffrax: the steps it took
            **{k: float(v) for k, v in aux.items()},
        })
    autodiff_seconds = next(r["gradient_seconds"] for r in out if r["method"] == "autodiff-heun")
    for r in out:
        r["time_vs_autodiff_heun"] = _ratio(r["gradient_seconds"], autodiff_seconds)
        r["error_vs_discrete"] = relative_error(grads[r["method"]], grads[r["discrete_reference"]])
        r["error_vs_continuous"] = relative_error(grads[r["method"]], reference["grad"])
        r["is_discrete_reference"] = r["method"] == r["discrete_reference"]
    return out


def _slope(ns, values) -> float | None:
    if len(ns) < 2 or min(values) <= 0:
        return None
    return float(np.polyfit(np.log(ns), np.log(values), 1)[0])


def measure_memory(config: BenchmarkConfig, dim: int, memory_steps, names, report) -> dict:
    """Compile (no run) each row's gradient at every `N` of `memory_steps`; bytes and growth."""
    table = {}
    for name in names:
        row = BY_NAME[name]
        entries = []
        for n in memory_steps:
            report(f"memory: {name} at N={n} (compile only)")
            ready = prepared(make_problem(config, dim, n), row)
            _, seconds, memory = compile_program(ready.fn, ready.args)
            entries.append({**memory, "compile_seconds": seconds})
        temps = [e["temp_bytes"] for e in entries]
        lo, hi = memory_steps[0], memory_steps[-1]
        table[name] = {
            "label": row.label,
            "steps": list(memory_steps),
            "temp_bytes": temps,
            "argument_bytes": [e["argument_bytes"] for e in entries],
            "output_bytes": [e["output_bytes"] for e in entries],
            "total_bytes": [e["total_bytes"] for e in entries],
            "compile_seconds": [e["compile_seconds"] for e in entries],
            "growth_temp": _ratio(temps[-1], temps[0]),
            "growth_total": _ratio(entries[-1]["total_bytes"], entries[0]["total_bytes"]),
            "loglog_slope_temp": _slope(memory_steps, temps),
            "marginal_bytes_per_step": (temps[-1] - temps[0]) / (hi - lo) if hi > lo else None,
        }
    state_bytes = config.batch * dim * 8
    return {
        "d": dim,
        "steps": list(memory_steps),
        "batch": config.batch,
        "bytes_of_one_batch_state": state_bytes,
        "bytes_of_one_augmented_batch_state": 2 * state_bytes,
        "measure": "XLA compiled memory statistics of the jitted gradient (experiments.harness.metrics.xla_memory): "
                   "jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes "
                   "(temporary buffers of the compiled program; deterministic, compiled only, not run); "
                   "argument and output bytes listed separately",
        "methods": table,
    }


# --- targets --------------------------------------------------------------------------------


def _row(rows, method, d, n):
    return next((r for r in rows if r["method"] == method and r["d"] == d and r["steps"] == n), None)


def evaluate_targets(rows: list[dict], memory: dict, dims, steps) -> dict:
    """The targets on the measured numbers, each with its value and a pass flag."""
    d = 64 if 64 in dims else max(dims)
    n = 1000 if 1000 in steps else min(steps, key=lambda s: abs(math.log(s / 1000)))
    where = {"d": d, "steps": n, "as_specified": d == 64 and n == 1000}
    autodiff, store = _row(rows, "autodiff-heun", d, n), _row(rows, "least-action-store-all", d, n)
    targets = {}
    ratio = _ratio(store["gradient_seconds"], autodiff["gradient_seconds"])
    targets["store_all_time_vs_jax_grad"] = {
        **where, "value": ratio, "target": "<= 1.2", "pass": ratio <= 1.2,
        "least_action_seconds": store["gradient_seconds"], "jax_grad_seconds": autodiff["gradient_seconds"]}
    for scheme in ("reversible-heun", "asynchronous-leapfrog"):
        reversible = _row(rows, f"least-action-{scheme}", d, n)
        ratio = _ratio(reversible["gradient_seconds"], store["gradient_seconds"])
        targets[f"{scheme.replace('-', '_')}_time_vs_store_all"] = {
            **where, "value": ratio, "target": "<= 2.5", "pass": ratio <= 2.5,
            "reversible_seconds": reversible["gradient_seconds"], "store_all_seconds": store["gradient_seconds"]}

    methods = memory["methods"]
    span = {"d": memory["d"], "from_steps": memory["steps"][0], "to_steps": memory["steps"][-1],
            "as_specified": memory["d"] == 64 and memory["steps"][0] == 1000 and memory["steps"][-1] == 100_000}
    not_measured = {"value": None, "pass": None, "note": "not in this run's memory table (quick preset)"}
    for scheme in ("reversible-heun", "asynchronous-leapfrog"):
        entry = methods.get(f"least-action-{scheme}")
        key = f"{scheme.replace('-', '_')}_memory_growth"
        if entry is None:
            targets[key] = {**span, **not_measured, "target": "<= 0.10 (10%)"}
            continue
        growth = entry["growth_temp"] - 1.0
        targets[key] = {
            **span, "value": growth, "target": "<= 0.10 (10%)", "pass": growth <= 0.10,
            "temp_bytes": entry["temp_bytes"], "marginal_bytes_per_step": entry["marginal_bytes_per_step"],
            "bytes_of_one_augmented_batch_state": memory["bytes_of_one_augmented_batch_state"],
            "note": "temp bytes grow by marginal_bytes_per_step per step; compare with the bytes of one "
                    "augmented batch state to see whether what grows is stored states"}
    store_entry = methods["least-action-store-all"]
    ideal = memory["steps"][-1] / memory["steps"][0]
    linear = abs(store_entry["loglog_slope_temp"] - 1.0) <= 0.1
    targets["store_all_memory_linear"] = {
        **span, "value": store_entry["loglog_slope_temp"], "growth": store_entry["growth_temp"],
        "growth_if_linear": ideal, "target": "log-log slope 1 +- 0.1 (linear in N)", "pass": linear,
        "marginal_bytes_per_step": store_entry["marginal_bytes_per_step"]}
    overhead = {
        name: _ratio(_row(rows, f"least-action-{name}", d, n)["gradient_seconds"], store["gradient_seconds"])
        for name in ("checkpoint-sqrt", "checkpoint-log")}
    sqrt_entry, log_entry = methods.get("least-action-checkpoint-sqrt"), methods.get("least-action-checkpoint-log")
    log_ratio = math.log(memory["steps"][-1]) / math.log(memory["steps"][0]) if memory["steps"][0] > 1 else None
    checkpoint = {**span, "time_at": where}
    checkpoint["sqrt"] = {
        "schedule": "Checkpoint(levels=2): m = ceil(sqrt N) states per level, O(sqrt N) memory",
        "target": "log-log slope 0.5 +- 0.15 (sqrt N)", "growth_if_sqrt": math.sqrt(ideal),
        "recompute_time_vs_store_all": overhead["checkpoint-sqrt"],
        **({"loglog_slope_temp": sqrt_entry["loglog_slope_temp"], "growth": sqrt_entry["growth_temp"],
            "marginal_bytes_per_step": sqrt_entry["marginal_bytes_per_step"],
            "pass": abs(sqrt_entry["loglog_slope_temp"] - 0.5) <= 0.15} if sqrt_entry else not_measured)}
    checkpoint["log"] = {
        "schedule": "Checkpoint.logarithmic(): levels = ceil(log2 N), m = 2, O(log N) states",
        "target": "growth <= 1.1 x log(N_max) / log(N_min)", "growth_if_log": log_ratio,
        "recompute_time_vs_store_all": overhead["checkpoint-log"],
        **({"loglog_slope_temp": log_entry["loglog_slope_temp"], "growth": log_entry["growth_temp"],
            "marginal_bytes_per_step": log_entry["marginal_bytes_per_step"],
            "pass": log_ratio is not None and log_entry["growth_temp"] <= 1.1 * log_ratio}
           if log_entry else not_measured)}
    targets["checkpoint_memory"] = checkpoint
    exactness = []
    for dim in dims:
        for steps_ in steps:
            la, bs = _row(rows, "least-action-store-all", dim, steps_), _row(rows, "diffrax-backsolve", dim, steps_)
            exactness.append({
                "d": dim, "steps": steps_,
                "least_action_error_vs_discrete": la["error_vs_discrete"],
                "backsolve_error_vs_discrete": bs["error_vs_discrete"],
                "least_action_error_vs_continuous": la["error_vs_continuous"],
                "backsolve_error_vs_continuous": bs["error_vs_continuous"],
            })
    worst_la = max(e["least_action_error_vs_discrete"] for e in exactness)
    best_bs = min(e["backsolve_error_vs_discrete"] for e in exactness)
    orders = {}
    for dim in dims:
        points = [(e["steps"], e["backsolve_error_vs_discrete"]) for e in exactness if e["d"] == dim]
        slope = _slope([p[0] for p in points], [p[1] for p in points])
        orders[str(dim)] = None if slope is None else -slope
    targets["least_action_exact_backsolve_not"] = {
        "value_least_action_max_error_vs_discrete": worst_la,
        "value_backsolve_min_error_vs_discrete": best_bs,
        "target": "least action <= 1e-12 vs the discrete map at every size; BacksolveAdjoint not exact: "
                  "its error vs the discrete map above 10x the least-action error at every size",
        "pass": worst_la <= 1e-12 and all(e["backsolve_error_vs_discrete"] > 10 * e["least_action_error_vs_discrete"]
                                          for e in exactness),
        "backsolve_above_1e-10_at_every_size": best_bs > 1e-10,
        "backsolve_error_vs_discrete_decay_order_in_N": orders,
        "per_size": exactness,
    }
    return targets


# --- tables and figures ---------------------------------------------------------------------


def benchmark_table(rows: list[dict], config: BenchmarkConfig) -> Table:
    body = []
    for r in rows:
        body.append([
            r["d"], r["steps"], r["method"],
            "(reference)" if r["is_discrete_reference"] else r["error_vs_discrete"],
            r["error_vs_continuous"],
            1e3 * r["forward_seconds"], 1e3 * r["gradient_seconds"], r["gradient_over_forward"],
            r["time_vs_autodiff_heun"], r["memory"]["temp_bytes"],
        ])
    return Table(
        columns=["d", "N", "method", "rel. err. vs discrete map", "rel. err. vs continuous", "forward ms",
                 "gradient ms", "grad / fwd", "time / jax.grad Heun", "XLA temp bytes (gradient)"],
        rows=body,
        caption=(f"Gradient benchmark: neural ODE tanh(W x + b), T = {config.t_final:g}, batch {config.batch}, "
                 "float64. Errors are relative L2 errors of dl/dtheta against jax.grad through the same discrete "
                 "map and against the adjoint ODE solved by DOP853 at rtol = atol = 1e-13. Times are medians of "
                 f"{config.repeats} warm calls of the jitted function. Memory is XLA's compiled "
                 "memory_analysis().temp_size_in_bytes of the jitted gradient (temporary buffers, not RSS)."),
        label="tab:benchmark-gradients",
    )


def memory_table(memory: dict) -> Table:
    steps = memory["steps"]
    body = []
    for name, entry in memory["methods"].items():
        body.append([name, *entry["temp_bytes"], entry["growth_temp"],
                     entry["loglog_slope_temp"] if entry["loglog_slope_temp"] is not None else "-",
                     entry["marginal_bytes_per_step"] if entry["marginal_bytes_per_step"] is not None else "-"])
    return Table(
        columns=["method", *[f"temp bytes N={n}" for n in steps], f"growth {steps[0]}->{steps[-1]}",
                 "log-log slope", "bytes per extra step"],
        rows=body,
        caption=(f"Memory of the compiled gradient against N (d = {memory['d']}, batch {memory['batch']}; one batch "
                 f"state is {memory['bytes_of_one_batch_state']} bytes): XLA's "
                 "compiled memory_analysis().temp_size_in_bytes, compiled only, not run."),
        label="tab:benchmark-gradients-memory",
    )


STYLES = {
    "autodiff-heun": ("k", "o", "-"),
    "least-action-store-all": (None, "s", "-"),
    "least-action-store-stages": (None, "<", "-"),
    "least-action-checkpoint-sqrt": (None, "^", "-"),
    "least-action-checkpoint-log": (None, "v", "-"),
    "autodiff-reversible-heun": ("0.5", "o", ":"),
    "least-action-reversible-heun": (None, "D", "-"),
    "autodiff-asynchronous-leapfrog": ("0.7", "o", ":"),
    "least-action-asynchronous-leapfrog": (None, "P", "-"),
    "diffrax-recursive-checkpoint": (None, "x", "--"),
    "diffrax-backsolve": (None, "*", "--"),
}


def _plot(ax, x, y, name):
    colour, marker, line = STYLES.get(name, (None, "o", "-"))
    kwargs = {"color": colour} if colour is not None else {}
    ax.loglog(x, y, marker=marker, ls=line, ms=4, label=name, **kwargs)


def _series(rows, d, key):
    series = {}
    for r in rows:
        if r["d"] == d:
            value = key(r)
            if value is not None:
                series.setdefault(r["method"], []).append((r["steps"], value))
    return {k: sorted(v) for k, v in series.items()}


def time_figure(rows, dims):
    fig, axes = plots.figure(ncols=len(dims), panel_size=(5.0, 4.2))
    for ax, d in zip(axes, dims):
        for name, points in _series(rows, d, lambda r: r["gradient_seconds"]).items():
            _plot(ax, *zip(*points), name)
        forward = sorted({(r["steps"], r["forward_seconds"]) for r in rows
                          if r["d"] == d and r["family"] != "diffrax" and r["scheme"] == "heun"})
        ax.loglog(*zip(*forward), color="k", ls=(0, (1, 2)), lw=1, label="forward (Heun scan)")
        ax.set_xlabel("steps $N$")
        ax.set_ylabel("gradient wall time [s] (median, warm)")
        ax.set_title(f"gradient time, d = {d}")
    axes[-1].legend(loc="upper left", fontsize=6)
    return fig


def memory_figure(memory):
    fig, axes = plots.figure(panel_size=(5.5, 4.2))
    ax = axes[0]
    for name, entry in memory["methods"].items():
        _plot(ax, entry["steps"], entry["temp_bytes"], name)
    ax.loglog(memory["steps"], [memory["bytes_of_one_batch_state"] * n for n in memory["steps"]], color="0.6",
              ls=":", lw=1, label="one batch state per step")
    ax.set_xlabel("steps $N$")
    ax.set_ylabel("XLA temp bytes of the compiled gradient")
    ax.set_title(f"memory vs N, d = {memory['d']}, batch {memory['batch']}")
    ax.legend(loc="upper left", fontsize=6)
    return fig


def error_figure(rows, dims):
    fig, axes = plots.figure(ncols=len(dims), nrows=2, panel_size=(5.0, 3.8))
    floor = 1e-17
    for j, d in enumerate(dims):
        top, bottom = axes[j], axes[len(dims) + j]
        for name, points in _series(rows, d, lambda r: r["error_vs_continuous"]).items():
            _plot(top, *zip(*points), name)
        for name, points in _series(rows, d, lambda r: None if r["is_discrete_reference"]
                                    else max(r["error_vs_discrete"], floor)).items():
            _plot(bottom, *zip(*points), name)
        top.set_title(f"vs continuous reference (adjoint ODE, tol 1e-13), d = {d}")
        bottom.set_title(f"vs jax.grad of the same discrete map, d = {d}")
        bottom.axhline(np.finfo(np.float64).eps, color="k", ls=":", lw=0.8)
        for ax in (top, bottom):
            ax.set_xlabel("steps $N$")
            ax.set_ylabel("relative L2 error of dl/dtheta")
    axes[len(dims) - 1].legend(loc="lower left", fontsize=6)
    return fig


# --- the run --------------------------------------------------------------------------------


def run(config: BenchmarkConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measure every method at every `(d, N)`, the memory against `N`, the targets; write
    `tables/benchmark`, `tables/memory` and three figures."""
    import diffrax

    started = time.perf_counter()
    dims, steps, memory_steps = config.sizes()
    memory_names = QUICK_MEMORY_ROWS if config.quick else MEMORY_ROWS + DIFFRAX_MEMORY_ROWS
    total = len(dims) * (1 + len(steps) * len(ROWS)) + len(memory_names) * len(memory_steps) + 1
    done = 0

    def report(description):
        nonlocal done
        done += 1
        progress(done, total, description)

    references, rows = {}, []
    for d in dims:
        report(f"d={d}: continuous reference (adjoint ODE, scipy DOP853, rtol = atol = 1e-13)")
        base = make_problem(config, d, steps[0])
        reference = continuous_reference(base)
        entry = {k: v for k, v in reference.items() if k != "grad"}
        if not config.quick:
            check = continuous_reference(base, rtol=1e-11)
            entry["relative_difference_at_rtol_1e-11"] = relative_error(check["grad"], reference["grad"])
        references[str(d)] = entry
        folder.log(f"d={d}: continuous reference in {entry['seconds']:.1f} s"
                   + (f", at rtol 1e-11 it differs by {entry['relative_difference_at_rtol_1e-11']:.2e}"
                      if "relative_difference_at_rtol_1e-11" in entry else ""))
        for n in steps:
            measured = measure_size(make_problem(config, d, n), ROWS, reference, config.repeats, report)
            for r in measured:
                folder.log(f"d={d} N={n} {r['method']}: err discrete {r['error_vs_discrete']:.2e}, continuous "
                           f"{r['error_vs_continuous']:.2e}, grad {1e3 * r['gradient_seconds']:.2f} ms "
                           f"({r['time_vs_autodiff_heun']:.2f}x jax.grad), temp {r['memory']['temp_bytes']} B")
            rows.extend(measured)

    memory = measure_memory(config, max(dims), memory_steps, memory_names, report)
    targets = evaluate_targets(rows, memory, dims, steps)
    for key, target in targets.items():
        for name, entry in ([(key, target)] if "pass" in target else
                            [(f"{key}.{k}", v) for k, v in target.items() if isinstance(v, dict) and "pass" in v]):
            verdict = {True: "pass", False: "MISS", None: "not measured"}[entry["pass"]]
            values = {k: v for k, v in entry.items() if k.startswith("value") or k in ("loglog_slope_temp", "growth")}
            folder.log(f"target {name} ({entry['target']}): {verdict} {values}")

    report("tables and figures")
    folder.save_table(benchmark_table(rows, config), "benchmark")
    folder.save_table(memory_table(memory), "memory")
    folder.save_figure(time_figure(rows, dims), "time_vs_steps")
    folder.save_figure(memory_figure(memory), "memory_vs_steps")
    folder.save_figure(error_figure(rows, dims), "error_vs_steps")
    return {
        "setup": {
            "system": "neural ODE dx/dt = tanh(W x + b), theta = {W, b}",
            "loss": "batch mean of 0.5 |x(T) - y|^2, random targets y",
            "dims": list(dims), "steps": list(steps), "memory_steps": list(memory_steps),
            "t_final": config.t_final, "batch": config.batch, "dtype": "float64", "quick": config.quick,
            "timing": "experiments.harness.run_timed: jax.jit(fn).lower(*args).compile(), one warm call, median "
                      f"of {config.repeats} calls with jax.block_until_ready",
            "memory": "XLA compiled memory statistics of the jitted gradient: memory_analysis().temp_size_in_bytes "
                      "(peak temporary buffer allocation of the compiled program; deterministic), with "
                      "argument_size_in_bytes and output_size_in_bytes; not a process RSS",
            "errors": "relative L2 error of dl/dtheta (W and b concatenated), experiments.harness.relative_error",
            "jax_version": jax.__version__, "diffrax_version": diffrax.__version__,
            "devices": [str(device) for device in jax.devices()],
        },
        "continuous_reference": references,
        "methods": [{"name": r.name, "label": r.label, "harness_method": r.method, "family": r.family,
                     "scheme": r.scheme, "discrete_reference": r.reference} for r in ROWS],
        "runs": rows,
        "memory_vs_steps": memory,
        "targets": targets,
        "wall_seconds": time.perf_counter() - started,
    }


BENCHMARK_GRADIENTS = Experiment(
    name="benchmark-gradients",
    description="neural ODE gradients: least action (store-all, checkpoint, reversible) vs jax.grad and diffrax; "
                "errors, time, XLA memory",
    config=BenchmarkConfig(),
    run=run,
    headline=(
        "targets.store_all_time_vs_jax_grad.value",
        "targets.reversible_heun_time_vs_store_all.value",
        "targets.reversible_heun_memory_growth.value",
        "targets.least_action_exact_backsolve_not.value_least_action_max_error_vs_discrete",
        "targets.least_action_exact_backsolve_not.value_backsolve_min_error_vs_discrete",
        "wall_seconds",
    ),
    volatile=("gradient_over_forward",),
    figures={
        "benchmark_gradients_error_vs_steps": "error_vs_steps",
        "benchmark_gradients_memory_vs_steps": "memory_vs_steps",
        "benchmark_gradients_time_vs_steps": "time_vs_steps",
    },
)
EXPERIMENT = BENCHMARK_GRADIENTS
