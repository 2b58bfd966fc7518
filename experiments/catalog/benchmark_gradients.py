"""Gradient benchmark: least-action sweeps against jax.grad and diffrax's adjoints.

System: the neural ODE `dx/dt = f(x) = tanh(W x + b)` in `d` dimensions
(`theta = {"W", "b"}`, `lagrangian.NeuralODE`), horizon `[0, T]`, a batch of
`B` random initial states, the batch-averaged loss
`l = (1/B) sum_b 0.5 |x_N^b - y^b|^2` with random targets `y`, float64
throughout. For every `d` in `dims` and every step count `N` in `steps`
(uniform grid, `h = T / N`) each gradient method below computes `dl/dtheta`
at the same `N`:

    autodiff-heun                 jax.grad through the jitted plain scan of Heun's map
                                  (`integrators.output`): the reference of the discrete map
    least-action-store-all        the least-action sweep, Heun, every state stored
    least-action-checkpoint-sqrt  the sweep with `Checkpoint(levels=2)`: ~sqrt(N) states
    least-action-checkpoint-log   the sweep with `Checkpoint.logarithmic()`: ~log2(N) states
    autodiff-reversible-heun      jax.grad through the reversible-Heun map (its reference)
    least-action-reversible-heun  the sweep with `Reversible()` memory on reversible Heun
    autodiff-asynchronous-leapfrog / least-action-asynchronous-leapfrog   the same for MALI
    diffrax-recursive-checkpoint  `diffrax.diffeqsolve`, `diffrax.Heun()`, `dt0 = T/N`,
                                  `RecursiveCheckpointAdjoint` (discretise-then-optimise)
    diffrax-backsolve             the same solve with `BacksolveAdjoint` (the continuous
                                  adjoint ODE solved backward with the same steps)

(diffrax's `ReversibleAdjoint` is used with `diffrax.ReversibleHeun` when the
installed diffrax has it; diffrax 0.7.2 does not, and `results.json` says so.)

What is measured, per method, `d` and `N`:

- relative L2 error `|g - g_ref| / |g_ref|` of the parameter gradient (W and
  b concatenated) against (i) the discrete reference, jax.grad through the
  same discrete forward map (Heun's for the Heun-based methods and diffrax,
  each reversible scheme's own map for the reversible methods), and (ii) the
  continuous reference: diffrax `Dopri5` with `PIDController(rtol=atol=1e-12)`
  differentiated by `RecursiveCheckpointAdjoint`, computed once per `d` (and,
  outside the quick preset, cross-checked against `Tsit5` at the same
  tolerances; their difference is reported as the reference's uncertainty);
- wall time of the forward map alone (the loss from the plain scan of the
  method's scheme; the diffrax forward solve for diffrax) and of the
  gradient: each function is compiled once with
  `jax.jit(fn).lower(*args).compile()`, called once to warm up, then called
  `repeats` times (at least 5) with `jax.block_until_ready`; the median is
  reported, with the ratio gradient / forward and the ratio to the time of
  `autodiff-heun` at the same `d` and `N`;
- memory: XLA's compiled memory statistics of the jitted gradient,
  `compiled.memory_analysis()`: `temp_size_in_bytes` (the temporary buffers
  the compiled program allocates: deterministic, no run needed) and the
  argument and output sizes. It is not a measured RSS. The project's methods
  take the time grid as an argument, so it is part of their argument bytes.

Memory against `N`: the gradients of store-all, both checkpointing schedules,
both reversible schemes and jax.grad (plus diffrax outside the quick preset)
are compiled, not run, at every `N` in `memory_steps` for the largest `d`.
The growth ratio `temp(N_max) / temp(N_min)`, the log-log slope and the
marginal bytes per step `(temp(N_max) - temp(N_min)) / (N_max - N_min)` are
reported next to the bytes of one batch state, so what grows with `N` can be
told apart from what is stored per state.

The targets of issue 4 are evaluated on the measured numbers and reported in
`results["targets"]` with pass/fail flags; a missed target does not fail the
run. The `quick` preset (`--set quick=true`) replaces the sizes by small ones
(one `d`, small `N`) so the whole run takes well under a minute.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
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
class Method:
    """One gradient method of the benchmark.

    family: ``autodiff`` (jax.grad through a jitted scan), ``least-action`` (the
        project's sweep) or ``diffrax``.
    scheme: the discrete map: ``heun``, ``reversible-heun`` or ``asynchronous-leapfrog``.
    memory: the memory strategy (for least-action) or adjoint (for diffrax).
    reference: the method whose gradient is the exact gradient of the same discrete map.
    exact: whether the method should reproduce that gradient to rounding.
    """

    name: str
    label: str
    family: str
    scheme: str
    memory: str
    reference: str
    exact: bool


METHODS: tuple[Method, ...] = (
    Method("autodiff-heun", "jax.grad, Heun (store-all)", "autodiff", "heun", "store-all", "autodiff-heun", True),
    Method("least-action-store-all", "least action, store-all", "least-action", "heun", "store-all",
           "autodiff-heun", True),
    Method("least-action-checkpoint-sqrt", "least action, checkpoint (2 levels)", "least-action", "heun",
           "checkpoint-sqrt", "autodiff-heun", True),
    Method("least-action-checkpoint-log", "least action, checkpoint (log2 N levels)", "least-action", "heun",
           "checkpoint-log", "autodiff-heun", True),
    Method("autodiff-reversible-heun", "jax.grad, reversible Heun", "autodiff", "reversible-heun", "store-all",
           "autodiff-reversible-heun", True),
    Method("least-action-reversible-heun", "least action, reversible Heun", "least-action", "reversible-heun",
           "reversible", "autodiff-reversible-heun", True),
    Method("autodiff-asynchronous-leapfrog", "jax.grad, asynchronous leapfrog", "autodiff",
           "asynchronous-leapfrog", "store-all", "autodiff-asynchronous-leapfrog", True),
    Method("least-action-asynchronous-leapfrog", "least action, asynchronous leapfrog", "least-action",
           "asynchronous-leapfrog", "reversible", "autodiff-asynchronous-leapfrog", True),
    Method("diffrax-recursive-checkpoint", "diffrax Heun, RecursiveCheckpointAdjoint", "diffrax", "heun",
           "recursive-checkpoint", "autodiff-heun", True),
    Method("diffrax-backsolve", "diffrax Heun, BacksolveAdjoint", "diffrax", "heun", "backsolve",
           "autodiff-heun", False),
)
BY_NAME = {m.name: m for m in METHODS}

MEMORY_METHODS = (
    "autodiff-heun", "least-action-store-all", "least-action-checkpoint-sqrt", "least-action-checkpoint-log",
    "least-action-reversible-heun", "least-action-asynchronous-leapfrog",
)
DIFFRAX_MEMORY_METHODS = ("diffrax-recursive-checkpoint", "diffrax-backsolve")
QUICK_MEMORY_METHODS = ("least-action-store-all", "least-action-checkpoint-sqrt", "least-action-reversible-heun")

STRATEGIES = {
    "store-all": integrators.StoreAll(),
    "checkpoint-sqrt": integrators.Checkpoint(levels=2),
    "checkpoint-log": integrators.Checkpoint.logarithmic(),
    "reversible": integrators.Reversible(),
}


def diffrax_reversible_adjoint_available() -> bool:
    import diffrax

    return hasattr(diffrax, "ReversibleAdjoint")


def methods_run() -> tuple[Method, ...]:
    """`METHODS`, plus diffrax's reversible adjoint when the installed diffrax has one."""
    if diffrax_reversible_adjoint_available():
        return METHODS + (Method("diffrax-reversible", "diffrax ReversibleHeun, ReversibleAdjoint", "diffrax",
                                 "reversible-heun", "reversible-adjoint", "autodiff-reversible-heun", True),)
    return METHODS


@dataclass(frozen=True)
class Problem:
    """One `(d, N)` instance: field, parameters, batch, loss and grid."""

    field: lagrangian.NeuralODE
    theta: dict
    x0: jax.Array
    loss: lagrangian.SquaredError
    t_final: float
    steps: int

    @property
    def ts(self):
        return integrators.uniform_grid(self.t_final, self.steps)


def make_problem(config: BenchmarkConfig, dim: int, steps: int) -> Problem:
    """Weights, initial states and targets depend on `seed` and `d` only (not on `N`)."""
    k_theta, k_x0, k_target = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), dim), 3)
    field = lagrangian.NeuralODE(state_dim=dim, scale=config.scale)
    theta = field.init(k_theta)
    x0 = jax.random.normal(k_x0, (config.batch, dim), jnp.float64)
    target = jax.random.normal(k_target, (config.batch, dim), jnp.float64)
    return Problem(field, theta, x0, lagrangian.SquaredError(target=target), config.t_final, steps)


def _diffrax_solve(problem: Problem, theta, x0, solver, adjoint, **options):
    import diffrax

    term = diffrax.ODETerm(lambda t, y, th: jnp.tanh(y @ th["W"].T + th["b"]))
    return diffrax.diffeqsolve(term, solver, 0.0, problem.t_final, options.pop("dt0", problem.t_final / problem.steps),
                               x0, args=theta, saveat=diffrax.SaveAt(t1=True), adjoint=adjoint, **options)


def _diffrax_parts(method: Method):
    import diffrax

    if method.memory == "recursive-checkpoint":
        return diffrax.Heun(), diffrax.RecursiveCheckpointAdjoint()
    if method.memory == "backsolve":
        return diffrax.Heun(), diffrax.BacksolveAdjoint()
    if method.memory == "reversible-adjoint":
        return diffrax.ReversibleHeun(), diffrax.ReversibleAdjoint()
    raise ValueError(f"unknown diffrax adjoint {method.memory!r}")


def forward_function(problem: Problem, scheme: str, family: str) -> tuple[Callable, tuple]:
    """`(fn, args)`: the loss of the forward map alone, for `jax.jit(fn).lower(*args)`."""
    if family == "diffrax":
        import diffrax

        solver = diffrax.ReversibleHeun() if scheme == "reversible-heun" else diffrax.Heun()

        def diffrax_forward(theta, x0):
            solution = _diffrax_solve(problem, theta, x0, solver, diffrax.RecursiveCheckpointAdjoint(),
                                      max_steps=problem.steps)
            return problem.loss(solution.ys[-1]), solution.stats["num_steps"]

        return diffrax_forward, (problem.theta, problem.x0)

    def plain_forward(theta, x0, ts):
        return problem.loss(integrators.output(integrators.discretise(problem.field, ts, scheme), theta, x0))

    return plain_forward, (problem.theta, problem.x0, problem.ts)


def gradient_function(problem: Problem, method: Method) -> tuple[Callable, tuple]:
    """`(fn, args)`: `dl/dtheta` by `method`, for `jax.jit(fn).lower(*args)`.

    The least-action functions return `(grad, reconstruction_error)` (the error is
    `None` except for `Reversible` memory); the others return `grad`.
    """
    field, loss = problem.field, problem.loss
    if method.family == "autodiff":

        def autodiff(theta, x0, ts):
            system = integrators.discretise(field, ts, method.scheme)
            return jax.grad(lambda th: loss(integrators.output(system, th, x0)))(theta)

        return autodiff, (problem.theta, problem.x0, problem.ts)
    if method.family == "least-action":
        memory = STRATEGIES[method.memory]

        def least_action(theta, x0, ts):
            system = integrators.discretise(field, ts, method.scheme)
            solution = integrators.sweep(system, theta, x0, loss, memory, check=False)
            return solution.grad, solution.reconstruction_error

        return least_action, (problem.theta, problem.x0, problem.ts)
    if method.family == "diffrax":
        solver, adjoint = _diffrax_parts(method)

        def diffrax_gradient(theta, x0):
            def value(th):
                return loss(_diffrax_solve(problem, th, x0, solver, adjoint, max_steps=problem.steps).ys[-1])

            return jax.grad(value)(theta)

        return diffrax_gradient, (problem.theta, problem.x0)
    raise ValueError(f"unknown method family {method.family!r}")


def continuous_reference(problem: Problem, solver_name: str = "dopri5", tol: float = 1e-12) -> dict:
    """The continuous gradient: an adaptive diffrax solve at `rtol = atol = tol`, differentiated
    by `RecursiveCheckpointAdjoint`; returns the gradient and the accepted step count."""
    import diffrax

    solver = {"dopri5": diffrax.Dopri5(), "tsit5": diffrax.Tsit5()}[solver_name]
    controller = diffrax.PIDController(rtol=tol, atol=tol)

    def value(theta, x0):
        solution = _diffrax_solve(problem, theta, x0, solver, diffrax.RecursiveCheckpointAdjoint(), dt0=None,
                                  stepsize_controller=controller, max_steps=100_000)
        return problem.loss(solution.ys[-1]), solution.stats["num_accepted_steps"]

    start = time.perf_counter()
    (loss_value, accepted), grad = jax.jit(jax.value_and_grad(value, has_aux=True))(problem.theta, problem.x0)
    jax.block_until_ready(grad)
    return {"grad": grad, "loss": float(loss_value), "accepted_steps": int(accepted),
            "solver": solver_name, "rtol": tol, "atol": tol, "seconds": time.perf_counter() - start}


# --- measuring ------------------------------------------------------------------------------


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(leaf, dtype=np.float64)) for leaf in jax.tree.leaves(tree)])


def relative_error(candidate, reference) -> float:
    """`|g - r|_2 / |r|_2` over all parameter leaves."""
    g, r = _flat(candidate), _flat(reference)
    return float(np.linalg.norm(g - r) / np.linalg.norm(r))


def compiled_memory(compiled) -> dict:
    """XLA's compiled memory statistics (bytes), as reported by `memory_analysis()`."""
    stats = compiled.memory_analysis()
    temp, argument, output = (int(stats.temp_size_in_bytes), int(stats.argument_size_in_bytes),
                              int(stats.output_size_in_bytes))
    return {"temp_bytes": temp, "argument_bytes": argument, "output_bytes": output,
            "total_bytes": temp + argument + output}


def compile_only(fn: Callable, args: tuple) -> dict:
    """Compile `fn` for `args` (no run): memory statistics and compile seconds."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return {**compiled_memory(compiled), "compile_seconds": time.perf_counter() - start}


def timed(fn: Callable, args: tuple, repeats: int):
    """Compile, warm up, time `repeats` calls (median); returns `(output, record)`."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    out = jax.block_until_ready(compiled(*args))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        seconds.append(time.perf_counter() - start)
    record = {"median_seconds": statistics.median(seconds), "all_seconds": seconds,
              "compile_seconds": compile_seconds, "memory": compiled_memory(compiled)}
    return out, record


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else float(a / b)


def measure_size(problem: Problem, methods, reference: dict, repeats: int, report) -> list[dict]:
    """Every method at one `(d, N)`: forward and gradient timings, memory, errors."""
    forwards = {}
    rows, grads = [], {}
    for method in methods:
        key = (method.family == "diffrax", method.scheme)
        if key not in forwards:
            fn, args = forward_function(problem, method.scheme, "diffrax" if key[0] else "plain")
            out, record = timed(fn, args, repeats)
            if key[0]:
                record["diffrax_steps"] = int(out[1])
            forwards[key] = record
        report(f"d={problem.field.state_dim} N={problem.steps}: {method.name}")
        fn, args = gradient_function(problem, method)
        out, record = timed(fn, args, repeats)
        reconstruction = None
        if method.family == "least-action":
            out, reconstruction = out
        grads[method.name] = out
        forward = forwards[key]
        rows.append({
            "method": method.name, "label": method.label, "family": method.family, "scheme": method.scheme,
            "memory_strategy": method.memory, "d": problem.field.state_dim, "steps": problem.steps,
            "discrete_reference": method.reference,
            "forward_seconds": forward["median_seconds"], "forward_all_seconds": forward["all_seconds"],
            "forward_memory": forward["memory"],
            "gradient_seconds": record["median_seconds"], "gradient_all_seconds": record["all_seconds"],
            "gradient_compile_seconds": record["compile_seconds"],
            "gradient_over_forward": _ratio(record["median_seconds"], forward["median_seconds"]),
            "memory": record["memory"],
            **({"diffrax_steps": forward["diffrax_steps"]} if "diffrax_steps" in forward else {}),
            # for Reversible memory: max |x_0^rec - x_0| / max |x_0| after the backward reconstruction
            **({"reconstruction_error": float(reconstruction)} if reconstruction is not None else {}),
        })
    autodiff_seconds = next(r["gradient_seconds"] for r in rows if r["method"] == "autodiff-heun")
    for row in rows:
        row["time_vs_autodiff_heun"] = _ratio(row["gradient_seconds"], autodiff_seconds)
        row["error_vs_discrete"] = relative_error(grads[row["method"]], grads[row["discrete_reference"]])
        row["error_vs_continuous"] = relative_error(grads[row["method"]], reference["grad"])
        row["is_discrete_reference"] = row["method"] == row["discrete_reference"]
    return rows


def _slope(ns, values) -> float | None:
    if len(ns) < 2 or min(values) <= 0:
        return None
    return float(np.polyfit(np.log(ns), np.log(values), 1)[0])


def measure_memory(config: BenchmarkConfig, dim: int, memory_steps, names, report) -> dict:
    """Compile (no run) each gradient at every `N` of `memory_steps`; bytes and growth."""
    table = {}
    for name in names:
        method = BY_NAME[name]
        entries = []
        for n in memory_steps:
            report(f"memory: {name} at N={n} (compile only)")
            fn, args = gradient_function(make_problem(config, dim, n), method)
            entries.append(compile_only(fn, args))
        temps = [e["temp_bytes"] for e in entries]
        lo, hi = memory_steps[0], memory_steps[-1]
        table[name] = {
            "label": method.label,
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
        "measure": "XLA compiled memory statistics of the jitted gradient: "
                   "jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes "
                   "(temporary buffers of the compiled program; deterministic, compiled only, not run); "
                   "argument and output bytes listed separately",
        "methods": table,
    }


# --- targets --------------------------------------------------------------------------------


def _row(rows, method, d, n):
    return next((r for r in rows if r["method"] == method and r["d"] == d and r["steps"] == n), None)


def evaluate_targets(rows: list[dict], memory: dict, dims, steps) -> dict:
    """The targets of issue 4 on the measured numbers, each with its value and a pass flag."""
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
                 "map and against a Dopri5 solve at rtol = atol = 1e-12. Times are medians of "
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
    "least-action-checkpoint-sqrt": (None, "^", "-"),
    "least-action-checkpoint-log": (None, "v", "-"),
    "autodiff-reversible-heun": ("0.5", "o", ":"),
    "least-action-reversible-heun": (None, "D", "-"),
    "autodiff-asynchronous-leapfrog": ("0.7", "o", ":"),
    "least-action-asynchronous-leapfrog": (None, "P", "-"),
    "diffrax-recursive-checkpoint": (None, "x", "--"),
    "diffrax-backsolve": (None, "*", "--"),
    "diffrax-reversible": (None, "+", "--"),
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
        top.set_title(f"vs continuous reference (Dopri5, tol 1e-12), d = {d}")
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
    methods = methods_run()
    memory_names = QUICK_MEMORY_METHODS if config.quick else MEMORY_METHODS + DIFFRAX_MEMORY_METHODS
    total = len(dims) * (1 + len(steps) * len(methods)) + len(memory_names) * len(memory_steps) + 1
    done = 0

    def report(description):
        nonlocal done
        done += 1
        progress(done, total, description)

    references, rows = {}, []
    for d in dims:
        report(f"d={d}: continuous reference (Dopri5, rtol=atol=1e-12)")
        base = make_problem(config, d, steps[0])
        reference = continuous_reference(base, "dopri5")
        entry = {k: v for k, v in reference.items() if k != "grad"}
        if not config.quick:
            check = continuous_reference(base, "tsit5")
            entry["tsit5_accepted_steps"] = check["accepted_steps"]
            entry["relative_difference_tsit5_vs_dopri5"] = relative_error(check["grad"], reference["grad"])
        references[str(d)] = entry
        folder.log(f"d={d}: continuous reference, {entry['accepted_steps']} accepted Dopri5 steps"
                   + (f", Tsit5 differs by {entry['relative_difference_tsit5_vs_dopri5']:.2e}"
                      if "relative_difference_tsit5_vs_dopri5" in entry else ""))
        for n in steps:
            measured = measure_size(make_problem(config, d, n), methods, reference, config.repeats, report)
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
            "timing": f"jax.jit(fn).lower(*args).compile(), one warm call, median of {config.repeats} calls "
                      "with jax.block_until_ready",
            "memory": "XLA compiled memory statistics of the jitted gradient: memory_analysis().temp_size_in_bytes "
                      "(peak temporary buffer allocation of the compiled program; deterministic), with "
                      "argument_size_in_bytes and output_size_in_bytes; not a process RSS",
            "errors": "relative L2 error of dl/dtheta (W and b concatenated)",
            "jax_version": jax.__version__, "diffrax_version": diffrax.__version__,
            "diffrax_reversible_adjoint": ("used with diffrax.ReversibleHeun" if diffrax_reversible_adjoint_available()
                                           else f"not available in diffrax {diffrax.__version__}"),
            "devices": [str(device) for device in jax.devices()],
        },
        "continuous_reference": references,
        "methods": [{"name": m.name, "label": m.label, "family": m.family, "scheme": m.scheme,
                     "memory": m.memory, "discrete_reference": m.reference} for m in methods],
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
