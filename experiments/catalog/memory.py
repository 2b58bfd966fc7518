"""Memory: store-all against checkpointing against reversible, peak memory and time vs N.

The neural ODE `dx/dt = tanh(W x + b)` of the gradient benchmark (`d`,
batch, `T`, seed; `benchmark_gradients.make_problem`) is stepped `N` times;
for each `N` in `steps` and each method the jitted gradient is compiled,
warmed up and timed (`benchmark_gradients.timed`: median of `repeats`
calls), and XLA's compiled memory statistics are read
(`memory_analysis().temp_size_in_bytes`: the peak of the temporary buffers the
compiled program allocates, deterministic, not a process RSS):

    autodiff-heun                  jax.grad through Heun's scan (stores every state)
    least-action-store-all         the sweep, O(N) states
    least-action-checkpoint-sqrt   Checkpoint(levels=2), O(sqrt N) states, recomputation
    least-action-checkpoint-log    Checkpoint.logarithmic(), O(log N) states
    least-action-reversible-heun   Reversible() on reversible Heun, O(1) states

Reported per method: bytes and seconds against `N` with their log-log slopes
(1 for linear growth, 0.5 for sqrt, about 0 for constant), the gradient's
relative error against jax.grad of the same discrete map (exact: <= 1e-12)
and, for the reversible scheme, the reconstruction error of `x_0`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import plots
from ..config import check_quick
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table
from .benchmark_gradients import BY_NAME, BenchmarkConfig, gradient_function, make_problem, relative_error, timed

METHODS = ("autodiff-heun", "least-action-store-all", "least-action-checkpoint-sqrt", "least-action-checkpoint-log",
           "least-action-reversible-heun")


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
    problem_config = BenchmarkConfig(dims=str(config.dim), t_final=config.t_final, batch=config.batch,
                                     scale=config.scale, seed=config.seed)
    total, done = len(steps) * len(METHODS) + 1, 0
    entries = {name: {"label": BY_NAME[name].label, "steps": list(steps), "temp_bytes": [], "argument_bytes": [],
                      "gradient_seconds": [], "error_vs_discrete_map": [], "reconstruction_error": []}
               for name in METHODS}
    for n in steps:
        problem = make_problem(problem_config, config.dim, n)
        grads = {}
        for name in METHODS:
            done += 1
            progress(done, total, f"N={n}: {name} (compile, warm up, {repeats} timed calls)")
            fn, args = gradient_function(problem, BY_NAME[name])
            out, record = timed(fn, args, repeats)
            if BY_NAME[name].family == "least-action":
                out, rec = out
                entries[name]["reconstruction_error"].append(None if rec is None else float(rec))
            grads[name] = out
            entries[name]["temp_bytes"].append(record["memory"]["temp_bytes"])
            entries[name]["argument_bytes"].append(record["memory"]["argument_bytes"])
            entries[name]["gradient_seconds"].append(record["median_seconds"])
        reference_of = {"least-action-reversible-heun": "autodiff-reversible-heun"}
        for name in METHODS:
            ref = reference_of.get(name, "autodiff-heun")
            if ref not in grads:
                fn, args = gradient_function(problem, BY_NAME[ref])
                grads[ref] = timed(fn, args, 1)[0]
            entries[name]["error_vs_discrete_map"].append(relative_error(grads[name], grads[ref]))
        folder.log(f"N={n}: " + ", ".join(f"{k} {entries[k]['temp_bytes'][-1]} B "
                                           f"{1e3 * entries[k]['gradient_seconds'][-1]:.2f} ms" for k in METHODS))
    for name, e in entries.items():
        e["loglog_slope_temp_bytes"] = plots.fitted_order(steps, e["temp_bytes"])
        e["loglog_slope_gradient_seconds"] = plots.fitted_order(steps, e["gradient_seconds"])
        e["max_error_vs_discrete_map"] = max(e["error_vs_discrete_map"])
        if not any(r is not None for r in e["reconstruction_error"]):
            del e["reconstruction_error"]

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
    headline=("methods.least-action-store-all.loglog_slope_temp_bytes",
              "methods.least-action-checkpoint-sqrt.loglog_slope_temp_bytes",
              "methods.least-action-reversible-heun.loglog_slope_temp_bytes",
              "methods.least-action-reversible-heun.max_error_vs_discrete_map"),
    figures={"memory_time_vs_steps": "memory_time_vs_steps"},
)
