"""Training a neural ODE with optax through `integrators.solve`: least-action vs
`jax.grad` through the plain scan vs diffrax.

Data: the cubic spiral `dy/dt = A y^3` (elementwise cube), `A = [[-0.1, 2], [-2, -0.1]]`,
from `y(0) = (1, 0)`, observed at `M` equally spaced times in `(0, T]` (the
truth is a 16-times finer RK4 solve). Model: `dx/dt = W2 tanh(W1 x + b1) + b2`
(`lagrangian.MLPField`) stepped by `method` on `N` uniform steps, fitted by

    l(theta) = (1/M) sum_i 0.5 |x(t_i; theta) - y(t_i)|^2

with Adam. The states at the observation times are read from the solve
(`saveat`), so their cotangents enter the conjugate field as jumps. Three
trainers start from the same `theta_0` and run the same optax update:

- `least-action`: `jax.value_and_grad` of a loss around `integrators.solve`
  with the `memory` strategy (default: reversible Heun with `Reversible()`
  memory, O(1) memory in `N`); its backward pass is the conjugate sweep.
- `autodiff`: `jax.value_and_grad` through `integrators.forward` (the plain
  scan) of the same discrete map: the reference.
- `diffrax`: the same field solved by `diffrax.diffeqsolve` with the matching
  diffrax solver (`diffrax.ReversibleHeun`, or an explicit tableau's
  `AbstractERK`) on the same grid (`StepTo`), differentiated by
  `diffrax.RecursiveCheckpointAdjoint`: an independent implementation.

For a McCallum-Foster scheme ``"reversible-<tableau>"`` (e.g. `reversible-dopri5`)
three more trainers run on the plain `<tableau>` map, whose memory the reversible
scheme is meant to save: `least-action (<tableau>)` (`StoreStages()`), `autodiff
(<tableau>)` (`jax.grad` through its scan) and `diffrax (<tableau>)` (diffrax's own
solver, e.g. `diffrax.Dopri5`, with `RecursiveCheckpointAdjoint`).

The claim checked: on each discrete map, the loss curves of its trainers agree with
its `autodiff` curve at every step to 1e-9 relative (float64); the two maps differ by
the coupling (`map_difference`, reported). Time per step of each trainer is reported
side by side (timings: not compared by `verify`), and the XLA temporary memory of each
trainer's compiled `value_and_grad` at `N = steps` and at each of `memory_steps`
(`tables/memory.md`): O(N) for `jax.grad` through the scan, O(1) in `N` for
`Reversible()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

import integrators
import lagrangian

from .. import plots
from ..config import numbers
from ..harness.metrics import compile_lowered
from ..harness.peers import diffrax_solver
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table
from ..training import fit, max_relative_difference

SPIRAL = np.array([[-0.1, 2.0], [-2.0, -0.1]])
"""The matrix `A` of the cubic spiral `dy/dt = A y^3`."""

Y0 = np.array([1.0, 0.0])


@dataclass(frozen=True)
class TrainNeuralODEConfig:
    """Defaults of the neural-ODE training experiment.

    seed: PRNG seed of the initial weights.
    quick: the test-suite preset (fewer steps, observations and updates).
    t_final: horizon `T` of the observed trajectory.
    steps: time steps `N` of the model's discretisation (a multiple of `observations`).
    observations: number `M` of observed states, at `t_i = i T / M`, `i = 1..M`.
    hidden: hidden units of the MLP field.
    method: the scheme (`reversible-heun`, `asynchronous-leapfrog` or an explicit tableau).
    memory: the least-action memory strategy: `store-all`, `checkpoint`, `checkpoint-log` or `reversible`.
    learning_rate: Adam step size.
    train_steps: optax updates per trainer.
    memory_steps: comma-separated `N` at which the XLA temporary memory of every trainer's
        gradient is also measured (compiled, not run; each a multiple of `observations`).
    """

    seed: int = 0
    quick: bool = False
    t_final: float = 3.0
    steps: int = 200
    observations: int = 20
    hidden: int = 32
    method: str = "reversible-heun"
    memory: str = "reversible"
    learning_rate: float = 0.02
    train_steps: int = 100
    memory_steps: str = "1000,10000"

    def __post_init__(self):
        if self.steps < 1 or self.observations < 1 or self.steps % self.observations:
            raise ValueError(
                f"config key 'steps' must be a positive multiple of 'observations'; got steps={self.steps}, "
                f"observations={self.observations}"
            )
        if self.hidden < 1 or self.train_steps < 1:
            raise ValueError(f"config keys 'hidden' and 'train_steps' must be >= 1; got {self.hidden}, "
                             f"{self.train_steps}")
        if not self.t_final > 0 or not self.learning_rate > 0:
            raise ValueError("config keys 't_final' and 'learning_rate' must be > 0")
        if self.method not in integrators.scheme_names():
            raise ValueError(f"config key 'method': unknown integrator {self.method!r}; "
                             f"choose one of {integrators.scheme_names()}")
        try:
            integrators.memory_named(self.memory)
        except ValueError as error:
            raise ValueError(f"config key 'memory': {error}") from None
        bad = [n for n in numbers("memory_steps", self.memory_steps) if n < 1 or n % self.observations]
        if bad:
            raise ValueError(f"config key 'memory_steps': each N must be a positive multiple of 'observations' "
                             f"({self.observations}); got {bad}")
        if self.memory == "reversible" and self.method not in integrators.REVERSIBLE:
            raise ValueError(f"config key 'memory': reversible memory needs a reversible method "
                             f"({sorted(integrators.REVERSIBLE)}); got method {self.method!r}")


QUICK = dict(steps=40, observations=8, hidden=16, train_steps=30, memory_steps="400")
"""Overrides of the `quick` preset."""


class CubicSpiral(lagrangian.VectorField):
    """`dy/dt = A y^3` (elementwise cube); `theta = {"A": (2, 2)}`."""

    state_dim: int = 2

    def init(self, key, dtype=jnp.float64):
        return {"A": jnp.asarray(SPIRAL, dtype)}

    def __call__(self, t, x, theta):
        return theta["A"] @ x**3


def observed_trajectory(config: TrainNeuralODEConfig) -> tuple[np.ndarray, np.ndarray]:
    """`(t_i, y(t_i))`, `i = 1..M`, from RK4 on a grid 16 times finer than the model's."""
    spiral = CubicSpiral()
    fine = integrators.discretise(spiral, integrators.uniform_grid(config.t_final, 16 * config.steps), "rk4")
    ys = integrators.forward(fine, spiral.init(None), jnp.asarray(Y0))
    every = 16 * config.steps // config.observations
    return np.asarray(fine.ts[every::every]), np.asarray(ys[every::every])


COUPLED = {integrators.reversible_name(t): t for t in integrators.TABLEAUX.values() if t.explicit}
"""The McCallum-Foster schemes by name, and the explicit tableau each couples."""


def _diffrax_solver(method: str):
    """diffrax's own solver for `method` (e.g. `diffrax.Dopri5`), else an `AbstractERK` with the
    same tableau, else `None`."""
    import diffrax

    if method == "reversible-heun":
        return diffrax.ReversibleHeun()
    if method not in integrators.TABLEAUX:
        return None
    tab = integrators.tableau(method)
    own = [cls for cls, scheme in integrators.SOLVERS.items() if scheme is tab]
    return own[0]() if own else diffrax_solver(tab)


def _map_trainers(config: TrainNeuralODEConfig, method: str, memory: str, field, ts, targets, suffix: str = ""):
    """The trainers of one discrete map (`method` on `ts`): least-action with `memory`, autodiff
    through the scan, and diffrax when it has a solver for `method`."""
    import diffrax

    system = integrators.discretise(field, ts, method)
    steps = ts.shape[0] - 1
    every = steps // config.observations
    saveat = tuple(range(every, steps + 1, every))
    x0, targets = jnp.asarray(Y0), jnp.asarray(targets)
    strategy = integrators.memory_named(memory)

    def misfit(xs):
        return 0.5 * jnp.mean(jnp.sum((xs - targets) ** 2, axis=-1))

    def least_action(theta):
        return misfit(integrators.solve(system, theta, x0, memory=strategy, saveat=saveat))

    def autodiff(theta):
        zs = integrators.forward(system, theta, x0)
        return misfit(jax.vmap(system.project)(zs[jnp.asarray(saveat)]))

    found = {"least-action": jax.value_and_grad(least_action), "autodiff": jax.value_and_grad(autodiff)}
    solver = _diffrax_solver(method)
    if solver is not None:
        term = diffrax.ODETerm(lambda t, y, theta: field(t, y, theta))

        def peer(theta):
            solution = diffrax.diffeqsolve(
                term, solver, ts[0], ts[-1], None, x0, args=theta,
                stepsize_controller=diffrax.StepTo(ts), saveat=diffrax.SaveAt(ts=ts[jnp.asarray(saveat)]),
                adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=steps,
            )
            return misfit(solution.ys)

        found["diffrax"] = jax.value_and_grad(peer)
    return {name + suffix: value_and_grad for name, value_and_grad in found.items()}


def trainers(config: TrainNeuralODEConfig, field, ts, targets):
    """The `theta -> (loss, grad)` functions of every trainer: those of `config.method` (diffrax only
    where it has a matching solver) and, for a McCallum-Foster scheme, those of its plain tableau
    (named with the suffix `" (<tableau>)"`, least-action with `StoreStages()`)."""
    found = _map_trainers(config, config.method, config.memory, field, ts, targets)
    if config.method in COUPLED:
        base = COUPLED[config.method].name
        found |= _map_trainers(config, base, "store-stages", field, ts, targets, suffix=f" ({base})")
    return found


def reference_of(name: str) -> str:
    """The trainer whose curve `name` is compared with: autodiff through the same map."""
    return "autodiff" + name[name.index(" "):] if " " in name else "autodiff"


def temp_memory(config: TrainNeuralODEConfig, field, theta0, targets) -> dict[str, dict[int, int | None]]:
    """XLA temporary bytes of every trainer's compiled `value_and_grad`, at `N = steps` and at each
    of `memory_steps` (`{trainer: {N: bytes}}`; compiled, not run)."""
    out: dict[str, dict[int, int | None]] = {}
    for n in sorted({config.steps, *numbers("memory_steps", config.memory_steps)}):
        ts = integrators.uniform_grid(config.t_final, n)
        for name, value_and_grad in trainers(config, field, ts, targets).items():
            out.setdefault(name, {})[n] = compile_lowered(jax.jit(value_and_grad).lower(theta0))[2]
    return out


def run(config: TrainNeuralODEConfig, folder: RunFolder, progress: Progress) -> dict:
    """Train every trainer from the same seed; curves, differences per map, time per step, memory."""
    if config.quick:
        config = TrainNeuralODEConfig(**{**config.__dict__, **QUICK})
    obs_times, targets = observed_trajectory(config)
    field = lagrangian.MLPField(state_dim=2, hidden=config.hidden)
    theta0 = field.init(jax.random.key(config.seed))
    ts = integrators.uniform_grid(config.t_final, config.steps)
    found = trainers(config, field, ts, targets)
    total = len(found) + 2
    folder.log(f"{config.method} on {config.steps} steps to T = {config.t_final}, {config.observations} "
               f"observations, MLP field with {config.hidden} hidden units, Adam lr {config.learning_rate}")

    curves = {}
    for i, (name, value_and_grad) in enumerate(found.items()):
        progress(i, total, f"training with the {name} gradient ({config.train_steps} steps)")
        curves[name] = fit(value_and_grad, theta0, optax.adam(config.learning_rate), config.train_steps)
        folder.log(f"{name}: loss {curves[name].losses[0]:.6e} -> {curves[name].losses[-1]:.6e}, "
                   f"{1e3 * curves[name].seconds_per_step:.2f} ms/step")

    progress(len(found), total, f"XLA memory of every gradient at N = {config.steps}, {config.memory_steps}")
    memory = temp_memory(config, field, theta0, targets)
    results = {
        "config": {"method": config.method, "memory": config.memory, "steps": config.steps,
                   "observations": config.observations, "train_steps": config.train_steps},
        "losses": {name: curve.losses.tolist() for name, curve in curves.items()},
        "final_loss": {name: float(curve.losses[-1]) for name, curve in curves.items()},
        "max_relative_curve_difference": {
            name: max_relative_difference(curve.losses, curves[reference_of(name)].losses)
            for name, curve in curves.items() if not name.startswith("autodiff")
        },
        "seconds_per_step": {name: curve.seconds_per_step for name, curve in curves.items()},
        "time_ratio_to_autodiff": {
            name: curve.seconds_per_step / curves[reference_of(name)].seconds_per_step for name, curve in curves.items()
        },
        "temp_bytes": {name: {str(n): b for n, b in by_n.items()} for name, by_n in memory.items()},
    }
    if config.method in COUPLED:
        base = f"autodiff ({COUPLED[config.method].name})"
        results["map_difference"] = max_relative_difference(curves["autodiff"].losses, curves[base].losses)
    folder.log("max relative loss-curve difference vs autodiff of the same map: " + ", ".join(
        f"{k} {v:.2e}" for k, v in results["max_relative_curve_difference"].items()))

    progress(total - 1, total, "figure and tables")
    learnt = {name: _trajectory(field, curve.params, config) for name, curve in curves.items() if " " not in name}
    folder.save_figure(training_figure(curves, obs_times, targets, learnt), "training")
    folder.save_table(training_table(results, config), "training")
    folder.save_table(memory_table(memory, config), "memory")
    progress(total, total, "done")
    return results


def _trajectory(field, theta, config):
    system = integrators.discretise(field, integrators.uniform_grid(config.t_final, config.steps), config.method)
    return np.asarray(jax.vmap(system.project)(integrators.forward(system, theta, jnp.asarray(Y0))))


def training_figure(curves, obs_times, targets, learnt):
    """Left: the loss curves of the three trainers (log scale). Right: the observed
    spiral and the trajectories learnt by each trainer in the phase plane."""
    fig, (left, right) = plots.figure(ncols=2)
    styles = {"autodiff": dict(lw=3.0, alpha=0.45), "least-action": dict(ls="--"), "diffrax": dict(ls=":")}
    for name, curve in curves.items():
        style = styles.get(name.split(" ")[0], {})
        if " " in name:                                   # the plain tableau's map: thinner, in grey
            style = {**style, "lw": 1.2, "alpha": 0.9, "color": plots.OKABE_ITO["black"]}
        left.semilogy(np.arange(curve.losses.shape[0]), curve.losses, label=name, **style)
    left.set_xlabel("optax step")
    left.set_ylabel(r"loss $l(\theta_t)$")
    left.set_title("training curves (same seed)")
    left.legend()
    right.plot(targets[:, 0], targets[:, 1], "o", color=plots.OKABE_ITO["black"], ms=3.5, label="observed")
    for name, xs in learnt.items():
        right.plot(xs[:, 0], xs[:, 1], label=f"learnt ({name})", **styles.get(name, {}))
    right.set_xlabel("$x_1$")
    right.set_ylabel("$x_2$")
    right.set_title(r"cubic spiral $\dot y = A y^3$")
    right.legend()
    return fig


def memory_table(memory: dict[str, dict[int, int | None]], config) -> Table:
    """XLA temporary memory (MB) of every trainer's gradient at each `N`."""
    sizes = sorted(next(iter(memory.values())))
    rows = [[name, *[(memory[name][n] or 0) / 1e6 for n in sizes]] for name in memory]
    return Table(
        columns=["gradient", *[f"N = {n}" for n in sizes]],
        rows=rows,
        caption=(f"XLA temporary memory (MB) of one gradient of the neural-ODE loss ({config.method}, "
                 f"{config.hidden} hidden units, {config.observations} observations), by number of steps N; "
                 f"least-action memory {config.memory}" + (" (store-stages on the plain tableau)" if config.method in COUPLED else "")),
        label="tab:train-neural-ode-memory",
    )


def training_table(results, config) -> Table:
    """Final loss, curve agreement with autodiff of the same map, and time per step of each trainer."""
    rows = [
        [name, results["final_loss"][name], results["max_relative_curve_difference"].get(name, 0.0),
         1e3 * results["seconds_per_step"][name], results["time_ratio_to_autodiff"][name]]
        for name in results["final_loss"]
    ]
    return Table(
        columns=["trainer", "final loss", "max rel. curve diff.", "ms / step", "time / autodiff"],
        rows=rows,
        caption=(f"Neural ODE on the cubic spiral: {config.train_steps} Adam steps, {config.steps} "
                 f"{config.method} steps, least-action memory {config.memory}, float64"),
        label="tab:train-neural-ode",
    )


EXPERIMENT = Experiment(
    name="train-neural-ode",
    description="optax training of a neural ODE: least-action (reversible) vs jax.grad through the scan vs diffrax",
    config=TrainNeuralODEConfig(),
    run=run,
    headline=(
        "max_relative_curve_difference.least-action",
        "final_loss.least-action",
        "time_ratio_to_autodiff.least-action",
    ),
    figures={"train_neural_ode_training": "training"},
    figures_config={"method": "reversible-dopri5"},
    readme_tables={"train-neural-ode-memory": "memory"},
)
