"""Memory: store-all against checkpointing against reversible, peak memory and time vs N.

The neural ODE `dx/dt = tanh(W x + b)` (`harness.shipped.neural_ode_problem`: `d`,
batch, `T`, seed) is stepped `N` times by Heun; for each `N` in `steps` each method of
the harness registry below differentiates it (on its own discretisation,
`Method.target`), and its gradient is compiled, warmed up and timed
(`harness.run_timed`: median of `repeats` calls), and XLA's compiled memory
statistics are read (`memory_analysis().temp_size_in_bytes`: the peak of the
temporary buffers the compiled program allocates, deterministic, not a process RSS):

    jax-grad                       jax.grad through Heun's scan (stores every stage)
    least-action                   the sweep, store-all: O(N) states
    least-action-store-stages      the sweep keeping every step's linearisation
    least-action-checkpoint        Checkpoint(levels=2), O(sqrt N) states, recomputation
    least-action-checkpoint-log    Checkpoint.logarithmic(), O(log N) states
    least-action-reversible-heun   Reversible() on reversible Heun, O(1) states

Reported per method: bytes and seconds against `N` with their log-log slopes
(1 for linear growth, 0.5 for sqrt, about 0 for constant), the states the strategy
keeps (`Memory.cost(N).stored`, from the evaluation counts), the gradient's relative
error against jax.grad of the same discrete map (`harness.relative_error`; exact:
<= 1e-12) and, for the reversible scheme, the reconstruction error of `x_0`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax

from .. import harness, plots
from ..config import check_quick
from ..harness.shipped import neural_ode_problem
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

METHODS = ("jax-grad", "least-action", "least-action-store-stages", "least-action-checkpoint",
           "least-action-checkpoint-log", "least-action-reversible-heun")
"""The harness methods measured."""


@dataclass(frozen=True)
class MemoryConfig:
    """Defaults of the memory experiment.

    steps: comma-separated step counts `N`.
    dim, batch, t_final, scale, seed: the neural ODE problem (as in benchmark-gradients).
    repeats: timed warm calls per gradient (median).
    quick: the small preset (`steps` 100,1000, 3 repeats).
    """

    steps: str = "100,1000,10000,100000"
    dim: int = 16
    batch: int = 8
    t_final: float = 1.0
    scale: float = 1.0
    seed: int = 0
    repeats: int = 3
    quick: bool = False

    def __post_init__(self):
        self.sizes()
        check_quick(self, ("steps", "repeats"))
        if self.dim < 1 or self.batch < 1 or self.repeats < 1 or not self.t_final > 0:
            raise ValueError("config keys need dim, batch, repeats >= 1 and t_final > 0")

    def sizes(self) -> tuple[tuple[int, ...], int]:
        """`(steps, repeats)` actually run."""
        text, repeats = ("100,1000", 3) if self.quick else (self.steps, self.repeats)
        try:
            steps = tuple(int(n) for n in text.split(",") if n.strip())
        except ValueError:
            raise ValueError(f"config key 'steps' must be comma-separated integers; got {text!r}") from None
        if len(steps) < 2 or min(steps) < 1:
            raise ValueError(f"config key 'steps' needs at least two step counts >= 1; got {text!r}")
        return steps, repeats


def run(config: MemoryConfig, folder: RunFolder, progress: Progress) -> dict:
    steps, repeats = config.sizes()
    total, done = len(steps) * len(METHODS) + 1, 0
    entries = {name: {"label": harness.method_named(name).description, "steps": list(steps), "temp_bytes": [],
                      "argument_bytes": [], "gradient_seconds": [], "stored": [], "error_vs_discrete_map": [],
                      "reconstruction_error": []}
               for name in METHODS}
    reference = harness.method_named("jax-grad")
    for n in steps:
        problem = neural_ode_problem(config.dim, n, batch=config.batch, t_final=config.t_final,
                                     scale=config.scale, seed=config.seed)
        references = {}
        for name in METHODS:
            done += 1
            progress(done, total, f"N={n}: {name} (compile, warm up, {repeats} timed calls)")
            method = harness.method_named(name)
            target = method.target(problem)
            prepared = method.prepare(target)
            (grad, aux), timing = harness.run_timed(prepared.fn, prepared.args, repeats=repeats, budget=math.inf)
            if target.name not in references:  # jax.grad of the same discrete map
                exact = reference.prepare(target)
                references[target.name] = jax.jit(exact.fn)(*exact.args)[0]
            entry = entries[name]
            entry["reconstruction_error"].append(None if "reconstruction_error" not in aux
                                                 else float(aux["reconstruction_error"]))
            entry["temp_bytes"].append(timing.memory["temp_bytes"])
            entry["argument_bytes"].append(timing.memory["argument_bytes"])
            entry["gradient_seconds"].append(timing.median_seconds)
            entry["stored"].append(prepared.evaluations.get("stored"))
            entry["error_vs_discrete_map"].append(harness.relative_error(grad, references[target.name]))
        folder.log(f"N={n}: " + ", ".join(f"{k} {entries[k]['temp_bytes'][-1]} B "
                                           f"{1e3 * entries[k]['gradient_seconds'][-1]:.2f} ms" for k in METHODS))
    for name, e in entries.items():
        e["loglog_slope_temp_bytes"] = plots.fitted_order(steps, e["temp_bytes"])
        e["loglog_slope_gradient_seconds"] = plots.fitted_order(steps, e["gradient_seconds"])
        e["max_error_vs_discrete_map"] = max(e["error_vs_discrete_map"])
        if not any(r is not None for r in e["reconstruction_error"]):
            del e["reconstruction_error"]
        if not any(r is not None for r in e["stored"]):
            del e["stored"]

    progress(total, total, "figure and table")
    fig, axes = plots.figure(ncols=2, panel_size=(5.2, 4.2))
    plots.scaling(axes[0], list(steps), {k: e["temp_bytes"] for k, e in entries.items()},
                  ylabel="XLA temp bytes of the compiled gradient", title=f"peak temporary memory, d = {config.dim}")
    plots.scaling(axes[1], list(steps), {k: e["gradient_seconds"] for k, e in entries.items()},
                  ylabel="gradient wall time [s] (median, warm)", title="time")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=6)
    folder.save_figure(fig, "memory_time_vs_steps")
    folder.save_table(Table(
        columns=["method", *[f"bytes N={n}" for n in steps], "slope (bytes)", *[f"ms N={n}" for n in steps],
                 "slope (time)", "max rel. err. vs jax.grad"],
        rows=[[k, *e["temp_bytes"], e["loglog_slope_temp_bytes"], *[1e3 * s for s in e["gradient_seconds"]],
               e["loglog_slope_gradient_seconds"], e["max_error_vs_discrete_map"]] for k, e in entries.items()],
        caption=(f"Memory and time of the gradient vs N: neural ODE d = {config.dim}, batch {config.batch}; XLA "
                 "compiled temp bytes (not RSS); median of warm calls."),
        label="tab:memory"), "memory_time")
    return {"setup": {"dim": config.dim, "batch": config.batch, "t_final": config.t_final, "steps": list(steps),
                      "repeats": repeats,
                      "memory_measure": "XLA compiled memory_analysis().temp_size_in_bytes of the jitted gradient"},
            "methods": entries}


EXPERIMENT = Experiment(
    name="memory",
    description="store-all vs checkpointing vs reversible: XLA peak temp memory and time of the gradient vs N",
    config=MemoryConfig(),
    run=run,
    headline=("methods.least-action.loglog_slope_temp_bytes",
              "methods.least-action-checkpoint.loglog_slope_temp_bytes",
              "methods.least-action-reversible-heun.loglog_slope_temp_bytes",
              "methods.least-action-reversible-heun.max_error_vs_discrete_map"),
    figures={"memory_time_vs_steps": "memory_time_vs_steps"},
)
