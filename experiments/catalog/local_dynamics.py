"""Local, simultaneous dynamics (docs/design.md 2.6): inference and credit assignment
unfolding together, measured against `jax.grad`.

1. Conjugate relaxation (`integrators.relax`): every `(x_k, p_k)` moves at once
   along the derivative of the action with respect to its conjugate, reading only
   its neighbours; forward Euler in pseudo-time with step `eta`. Convergence curve
   (relative L2 error of the gradient read at each iteration against `jax.grad`
   through the forward pass) on MLPs of several depths and a deep ResNet.
2. Augmented-Lagrangian saddle flow (`integrators.saddle_flow`): descent in `x`,
   ascent in `p` on `S_d + (rho/2) sum |c_k|^2`. On an affine (linear) ResNet it
   converges to the exact gradient; the plain Arrow-Hurwicz flow (`rho = 0`) on
   the same network stalls. For tanh ResNets the error after a fixed budget is
   reported against depth.
3. Parallel-in-time Newton (`integrators.newton_in_time`) on a 4-D neural ODE:
   Newton iterations, gradient error against the sequential sweep, wall time of
   both (timings: reported, not verified) and the depth of the associative scans
   (`ceil(log2 N)` levels against `N` sequential steps).
4. Learning while inferring (`integrators.learn_while_relaxing`) on the digits
   MLP: parameters updated by SGD after every `r` relaxation steps, with fields
   that never converge, against backprop (`r = 2N + 2`, exact fields) from the
   same seed: loss curves and test accuracy. The gradient read after one step is
   stale by up to `2N` relaxation steps, so one step per update is stable only
   for small learning rates (measured on the quick preset, 100 updates: final loss
   0.71 at lr 0.1, 1.25 at 0.2, 1.95 at 0.3; two steps per update: 0.60, 0.64, 0.24).

Every solve records its final `residual` and whether it met its tolerance (`converged`)
beside its error. The relaxations and the augmented flow on the linear network are meant to
converge and warn if they do not (`integrators.UnconvergedWarning`); the Arrow-Hurwicz flow,
the fixed budget on tanh networks, the timed Newton solves and the learning runs only record it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..data import digits
from ..harness.metrics import relative_error, run_timed
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table


@dataclass(frozen=True)
class LocalDynamicsConfig:
    """Defaults of the local-dynamics experiment (the `quick` preset shrinks every size).

    seed: PRNG seed of weights, inputs and targets.
    quick: the test-suite preset.
    relax_eta: pseudo-time step of the conjugate relaxation.
    saddle_iterations: saddle-flow steps on the deepest linear network.
    learning_updates: SGD updates in the learning-while-inferring comparison (at most 100 when quick).
    learning_rate: SGD step size on the digits MLP.
    """

    seed: int = 0
    quick: bool = False
    relax_eta: float = 0.2
    saddle_iterations: int = 80_000
    learning_updates: int = 300
    learning_rate: float = 0.1

    def __post_init__(self):
        if not 0 < self.relax_eta <= 1:
            raise ValueError(f"config key 'relax_eta' must lie in (0, 1]; got {self.relax_eta}")
        if self.saddle_iterations < 1000 or self.learning_updates < 1 or not self.learning_rate > 0:
            raise ValueError("config keys 'saddle_iterations' (>= 1000), 'learning_updates' (>= 1) and "
                             "'learning_rate' (> 0) are out of range")


@dataclass(frozen=True)
class Sizes:
    """What one preset runs: `(label, depth, iterations)` per relaxation network, the
    linear saddle depth, the tanh depths and their budget, Newton's `N`s, digits samples."""

    relax_mlps: tuple[tuple[int, int], ...]
    relax_resnet: tuple[int, int]
    saddle_depth: int
    saddle_nonlinear_depths: tuple[int, ...]
    saddle_nonlinear_iterations: int
    newton_steps: tuple[int, ...]
    digits_train: int


FULL = Sizes(((2, 300), (8, 300), (32, 1000)), (64, 2000), 128, (4, 8, 16, 32, 64, 128), 20_000,
             (1000, 10_000), 1000)
QUICK = Sizes(((2, 150), (8, 250)), (16, 400), 32, (4, 8), 4000, (100, 500), 300)


def sizes(config: LocalDynamicsConfig) -> Sizes:
    return QUICK if config.quick else FULL


def _reference(system, theta, x0, loss):
    """`jax.grad` through the plain forward pass: the reference every solver is checked against."""
    return jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)


def _history_errors(history, reference, count):
    return [relative_error(jax.tree.map(lambda g: g[i], history), reference) for i in range(count)]


def relaxation_curves(config, key, size: Sizes, log) -> dict:
    """Gradient error per relaxation iteration on MLPs of each depth and a ResNet."""
    curves = {}
    nets = [(f"MLP depth {d}", lagrangian.MLP((8,) + (16,) * (d - 1) + (4,)), it) for d, it in size.relax_mlps]
    depth, iterations = size.relax_resnet
    nets.append((f"ResNet depth {depth}", lagrangian.ResNet(dim=8, depth=depth), iterations))
    for i, (label, system, iterations) in enumerate(nets):
        k = jax.random.fold_in(key, i)
        theta = system.init(k)
        x0 = jax.random.normal(jax.random.fold_in(k, 1), (8, system.input_dim))
        out = jax.eval_shape(lambda: integrators.forward(system, theta, x0)[-1]).shape
        loss = lagrangian.SquaredError(target=jax.random.normal(jax.random.fold_in(k, 2), out))
        result = integrators.relax(system, theta, x0, loss, iterations=iterations, eta=config.relax_eta,
                                   record_grads=True)
        errors = _history_errors(result.grads, _reference(system, theta, x0, loss), iterations)
        reached = next((j + 1 for j, e in enumerate(errors) if e <= 1e-10), None)
        curves[label] = {"depth": system.depth, "iterations": iterations, "errors": errors,
                         "final_error": errors[-1], "iterations_to_1e-10": reached,
                         "residual": float(result.residual), "converged": bool(result.converged)}
        log(f"relaxation {label}: error {errors[-1]:.2e} after {iterations} steps (1e-10 at {reached}), "
            f"residual {float(result.residual):.1e}")
    return curves


def saddle_curves(config, key, size: Sizes, log) -> dict:
    """Augmented-Lagrangian vs plain Arrow-Hurwicz on the deep linear ResNet, and the
    augmented flow's error against depth on tanh ResNets."""
    iterations = config.saddle_iterations if not config.quick else 9000
    every = iterations // 40
    linear = lagrangian.ResNet(dim=4, depth=size.saddle_depth, h=0.1, activation="identity")
    theta = linear.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (3, 4))
    loss = lagrangian.SquaredError(target=jnp.ones(4))
    reference = _reference(linear, theta, x0, loss)
    out = {"linear_depth": size.saddle_depth, "iterations": iterations, "record_every": every}
    for name, rho in (("augmented", 0.5), ("arrow-hurwicz", 0.0)):
        # the plain Arrow-Hurwicz flow rotates around the saddle: not converging is what it shows
        result = integrators.saddle_flow(linear, theta, x0, loss, iterations=iterations, rho=rho, record_every=every,
                                         on_unconverged="warn" if rho else "ignore")
        errors = _history_errors(result.grads, reference, iterations // every)
        out[name] = {"rho": rho, "errors": errors, "final_error": errors[-1], "residual": float(result.residual),
                     "converged": bool(result.converged)}
        log(f"saddle flow ({name}, rho = {rho}) on the linear ResNet of depth {size.saddle_depth}: "
            f"error {errors[-1]:.2e} after {iterations} steps")
    nonlinear, residuals, converged = {}, {}, {}
    for depth in size.saddle_nonlinear_depths:
        system = lagrangian.ResNet(dim=4, depth=depth, h=0.1)
        th = system.init(jax.random.fold_in(key, depth))
        # a fixed budget against depth: the deep networks stopping short of 1e-10 is the measurement
        result = integrators.saddle_flow(system, th, x0, loss, iterations=size.saddle_nonlinear_iterations,
                                         on_unconverged="ignore")
        nonlinear[str(depth)] = relative_error(result.grad, _reference(system, th, x0, loss))
        residuals[str(depth)], converged[str(depth)] = float(result.residual), bool(result.converged)
        log(f"saddle flow on a tanh ResNet of depth {depth}: error {nonlinear[str(depth)]:.2e} "
            f"after {size.saddle_nonlinear_iterations} steps (residual {residuals[str(depth)]:.1e})")
    out["nonlinear_error_by_depth"] = nonlinear
    out["nonlinear_residual_by_depth"] = residuals
    out["nonlinear_converged_by_depth"] = converged
    out["nonlinear_iterations"] = size.saddle_nonlinear_iterations
    return out


def _timed(fn, *args):
    """`(output, seconds)` of one warm call (`run_timed`: the first call compiles and is not timed)."""
    out, timing = run_timed(fn, args, compile=False, repeats=1, budget=math.inf)
    return out, timing.median_seconds


def newton_rows(key, size: Sizes, log) -> list[dict]:
    """Parallel-in-time Newton against the sequential sweep on a 4-D neural ODE."""
    field = lagrangian.NeuralODE(state_dim=4)
    theta = field.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (4,))
    loss = lagrangian.SquaredError(target=jnp.zeros(4))
    rows = []
    for steps in size.newton_steps:
        system = integrators.discretise(field, integrators.uniform_grid(2.0, steps), "rk4")
        newton, newton_seconds = _timed(lambda th: integrators.newton_in_time(system, th, x0, loss,
                                                                              on_unconverged="ignore"), theta)
        sweep, sweep_seconds = _timed(lambda th: integrators.sweep(system, th, x0, loss), theta)
        row = {
            "steps": steps,
            "newton_iterations": int(newton.iterations),
            "residual": float(newton.residual),
            "converged": bool(newton.converged),
            "gradient_error_vs_sweep": relative_error(newton.grad, sweep.grad),
            "states_error_vs_sweep": relative_error(newton.xs[-1], sweep.x_final),
            "scan_depth_levels": math.ceil(math.log2(steps)),
            "newton_seconds": newton_seconds,
            "sweep_seconds": sweep_seconds,
            "time_ratio_newton_to_sweep": newton_seconds / sweep_seconds,
        }
        log(f"Newton in time N = {steps}: {row['newton_iterations']} iterations, gradient error "
            f"{row['gradient_error_vs_sweep']:.2e}, time ratio {row['time_ratio_newton_to_sweep']:.2f}")
        rows.append(row)
    return rows


def learning_curves(config, key, size: Sizes, log) -> dict:
    """SGD on the digits MLP with gradients read from relaxing fields, `r` steps per update."""
    x, y = (jnp.asarray(part) for part in digits(config.seed))
    (x_train, y_train), (x_test, y_test) = (x[:size.digits_train], y[:size.digits_train]), (x[size.digits_train:],
                                                                                          y[size.digits_train:])
    system = lagrangian.MLP((64, 32, 32, 10), readout=True)
    theta = system.init(key)
    loss = lagrangian.CrossEntropy(labels=y_train)
    lr = config.learning_rate
    updates = min(config.learning_updates, 100) if config.quick else config.learning_updates

    def sgd(th, g, state):
        return jax.tree.map(lambda a, b: a - lr * b, th, g), state

    out = {}
    backprop_steps = 2 * system.depth + 2
    for label, steps in (("1 step", 1), ("2 steps", 2), ("backprop", backprop_steps)):
        run = integrators.learn_while_relaxing(system, theta, x_train, loss, sgd, None,
                                               updates=updates, relax_steps=steps)
        logits = integrators.forward(system, run.theta, x_test)[-1]
        accuracy = float(jnp.mean(jnp.argmax(logits, axis=-1) == y_test))
        out[label] = {"relax_steps": steps, "losses": np.asarray(run.losses).tolist(),
                      "final_loss": float(run.losses[-1]), "test_accuracy": accuracy,
                      "final_residual": float(run.residual), "final_converged": bool(run.converged)}
        log(f"learning while inferring ({label}): loss {float(run.losses[0]):.3f} -> "
            f"{float(run.losses[-1]):.4f}, test accuracy {accuracy:.3f}")
    reference = np.asarray(out["backprop"]["losses"])
    for label in ("1 step", "2 steps"):
        curve = np.asarray(out[label]["losses"])
        out[label]["max_relative_difference_to_backprop"] = float(np.max(np.abs(curve - reference) / reference))
    return out


def run(config: LocalDynamicsConfig, folder: RunFolder, progress: Progress) -> dict:
    size = sizes(config)
    key = jax.random.key(config.seed)
    total = 6
    progress(0, total, "conjugate relaxation: convergence on MLPs and a ResNet")
    relaxation = relaxation_curves(config, jax.random.fold_in(key, 1), size, folder.log)
    progress(1, total, "saddle flows: augmented Lagrangian vs Arrow-Hurwicz")
    saddle = saddle_curves(config, jax.random.fold_in(key, 2), size, folder.log)
    progress(2, total, "parallel-in-time Newton vs the sequential sweep")
    newton = newton_rows(jax.random.fold_in(key, 3), size, folder.log)
    progress(3, total, "learning while inferring on digits")
    learning = learning_curves(config, jax.random.fold_in(key, 4), size, folder.log)
    progress(4, total, "figures and tables")
    folder.save_figure(convergence_figure(relaxation, saddle), "convergence")
    folder.save_figure(learning_figure(learning), "learning_while_inferring")
    folder.save_table(summary_table(relaxation, saddle), "local_solvers")
    folder.save_table(newton_table(newton), "newton_in_time")
    progress(total, total, "done")
    return {"relaxation": relaxation, "saddle": saddle, "newton": newton, "learning": learning}


def convergence_figure(relaxation, saddle):
    """Left: conjugate relaxation error against pseudo-time steps. Middle: saddle flows on
    the deep linear ResNet. Right: the augmented flow's error on tanh ResNets against depth."""
    fig, (left, middle, right) = plots.figure(ncols=3)
    for label, curve in relaxation.items():
        left.semilogy(np.arange(1, len(curve["errors"]) + 1), curve["errors"], label=label)
    left.set_xlabel(r"relaxation steps ($\tau / \eta$)")
    left.set_ylabel(r"relative error of $dl/d\theta$")
    left.set_title("conjugate relaxation")
    left.legend()
    every = saddle["record_every"]
    for name in ("augmented", "arrow-hurwicz"):
        errors = saddle[name]["errors"]
        middle.semilogy(every * np.arange(1, len(errors) + 1), errors,
                        label=rf"{name} ($\rho$ = {saddle[name]['rho']:g})")
    middle.ticklabel_format(axis="x", style="sci", scilimits=(3, 3))
    middle.set_xlabel("saddle-flow steps")
    middle.set_ylabel(r"relative error of $dl/d\theta$")
    middle.set_title(f"linear ResNet, depth {saddle['linear_depth']}")
    middle.legend()
    depths = [int(d) for d in saddle["nonlinear_error_by_depth"]]
    right.loglog(depths, list(saddle["nonlinear_error_by_depth"].values()), "o-")
    right.set_xlabel("depth N")
    right.set_ylabel(r"relative error of $dl/d\theta$")
    right.set_title(f"tanh ResNets, {saddle['nonlinear_iterations']} steps")
    return fig


def learning_figure(learning):
    """Loss curves of SGD with gradients from relaxing fields against backprop."""
    fig, (ax,) = plots.figure()
    for label, run in learning.items():
        ax.semilogy(run["losses"], label=f"{label} (test acc. {run['test_accuracy']:.2f})")
    ax.set_xlabel("SGD update")
    ax.set_ylabel("training cross-entropy")
    ax.set_title("learning while inferring (digits MLP)")
    ax.legend()
    return fig


def summary_table(relaxation, saddle) -> Table:
    rows = [[f"relaxation, {label}", curve["iterations"], curve["final_error"], curve["residual"],
             curve["iterations_to_1e-10"] or "-"] for label, curve in relaxation.items()]
    for name in ("augmented", "arrow-hurwicz"):
        rows.append([f"saddle flow ({name}), linear depth {saddle['linear_depth']}", saddle["iterations"],
                     saddle[name]["final_error"], saddle[name]["residual"], "-"])
    for depth, error in saddle["nonlinear_error_by_depth"].items():
        rows.append([f"saddle flow (augmented), tanh depth {depth}", saddle["nonlinear_iterations"], error,
                     saddle["nonlinear_residual_by_depth"][depth], "-"])
    return Table(columns=["solver and network", "steps", "rel. L2 error vs jax.grad", "final residual",
                          "steps to 1e-10"], rows=rows,
                 caption="Local solvers of the stationarity conditions against jax.grad (float64)",
                 label="tab:local-solvers")


def newton_table(rows) -> Table:
    return Table(
        columns=["N", "Newton iterations", "final residual", "grad error vs sweep", "scan levels",
                 "Newton / sweep time"],
        rows=[[r["steps"], r["newton_iterations"], r["residual"], r["gradient_error_vs_sweep"], r["scan_depth_levels"],
               r["time_ratio_newton_to_sweep"]] for r in rows],
        caption="Parallel-in-time Newton (associative scans) against the sequential sweep, 4-D neural ODE, RK4",
        label="tab:newton-in-time",
    )


EXPERIMENT = Experiment(
    name="local-dynamics",
    description="relaxation, saddle flows, Newton in time and learning while inferring, against jax.grad",
    config=LocalDynamicsConfig(),
    run=run,
    headline=(
        "saddle.augmented.final_error",
        "saddle.arrow-hurwicz.final_error",
        "learning.1 step.final_loss",
        "learning.backprop.final_loss",
    ),
    figures={"local_dynamics_convergence": "convergence",
             "local_dynamics_learning_while_inferring": "learning_while_inferring"},
)
