"""Physical learning rules side by side: equilibrium propagation, predictive coding and
dual propagation against the exact least-action gradient, on the same networks and reference.

Network: `lagrangian.MLP(widths)` with `tanh` on every layer, weights drawn with `scale`, a batch
of `batch` Gaussian inputs and targets, squared-error loss; reference `jax.grad` of the composed
forward map. Rules (`experiments.learning_rules`), each an estimate of `dl/dtheta`:

- EP one-sided / symmetric on `F_beta = E + beta l` (Newton equilibria);
- PC with output precision `gamma` (clamped output; `gamma = 1` is the clamped network, small
  `gamma` the weak-precision variant) and PC with fixed predictions (exact);
- DP (alpha = 1/2 and the asymmetric alpha = 0) and DP-top (alpha = 0);
- least action: the store-all sweep, the tension `x- / beta` of the doubled action, the local
  relaxation (`integrators.relax`, Jacobi).

Shown: relative L2 error against the nudge (1e-6 .. 1, fitted slopes over `fit_range`);
error against inference iterations at `fixed_nudge`; error against depth at `fixed_nudge`;
the dyads of DP against the doubled copies; the cost per gradient in layer-map evaluations;
digits training (squared error on one-hot targets, adam, same seed) with every rule.
The second panel of the headline figure is the same scan on the oscillator chain (`chain_errors`):
Hamiltonian echo learning against the tension and the sweep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..config import check_quick, numbers
from ..harness.metrics import compare_gradients, relative_error
from ..learning_rules import dual_propagation as dp
from ..learning_rules import equilibrium_propagation as ep
from ..learning_rules import inference
from ..learning_rules import predictive_coding as pc
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table
from .mlp_projection import digits_split

FLOOR = 1e-18
"""Errors are drawn at least at this value on log axes (exact zeros)."""

O = plots.OKABE_ITO
STYLES = {
    "EP one-sided": (O["blue"], "--", "o"),
    "EP symmetric": (O["sky blue"], "--", "s"),
    "PC, output precision gamma": (O["reddish purple"], "-.", "v"),
    "PC fixed prediction": (O["reddish purple"], ":", "x"),
    "DP, alpha = 1/2": (O["bluish green"], ":", "^"),
    "DP, alpha = 0": (O["orange"], ":", "<"),
    "DP-top, alpha = 0": (O["vermillion"], ":", ">"),
    "least action: tension x-/beta": (O["black"], "-", "o"),
    "least action: sweep": ("0.35", "-", "s"),
    "least action: relaxation": ("0.6", "-", "d"),
}
"""Colour, line style and marker of each method: one colour per family, least action in greys."""


def _style(label: str) -> tuple[str, str, str]:
    """The style of `label`, or of the first `STYLES` key (or family prefix) it starts with."""
    if label in STYLES:
        return STYLES[label]
    aliases = {"EP": "EP symmetric", "PC weak": "PC, output precision gamma", "PC clamped": "DP, alpha = 0",
               "PC fixed": "PC fixed prediction", "DP": "DP, alpha = 1/2",
               "least action: relaxation, Jacobi": "least action: tension x-/beta",
               "least action: relaxation": "least action: relaxation"}
    for prefix, key in aliases.items():
        if label.startswith(prefix):
            return STYLES[key]
    return ("0.5", "-", "o")


@dataclass(frozen=True)
class PhysicalLearningConfig:
    """Defaults of the physical-learning experiment.

    seed: PRNG seed of the weights, inputs and targets, and of the digits split and initialisation.
    widths: comma-separated layer widths of the headline MLP (tanh on every layer).
    scale: weight scale of the MLPs.
    batch: batch size of the gradient problems.
    nudges: number of nudge strengths, log-spaced from 1e-6 to 1.
    fit_low, fit_high: the asymptotic range of the fitted slopes (above the rounding floor).
    fixed_nudge: the nudge of the iteration and depth curves.
    relax_iterations: inference iterations of the gradient-descent relaxation curves.
    relax_eta: their step `eta` (`dx/dtau = -dF/dx`).
    depths: comma-separated depths of the depth sweep (width `depth_width`, `depth_scale`).
    train_steps: full-batch adam steps on digits; train_hidden: hidden width; learning_rate: adam's.
    train_nudge: nudge (beta, gamma) of the rules during training.
    quick: the small preset (fewer nudges, iterations, depths and steps).
    """

    seed: int = 0
    widths: str = "5,8,8,8,3"
    scale: float = 1.5
    batch: int = 16
    nudges: int = 19
    fit_low: float = 1e-5
    fit_high: float = 1e-2
    fixed_nudge: float = 1e-3
    relax_iterations: int = 400
    relax_eta: float = 0.2
    depths: str = "2,4,8,16,32,64"
    depth_width: int = 8
    depth_scale: float = 1.0
    train_steps: int = 200
    train_hidden: int = 32
    learning_rate: float = 0.01
    train_nudge: float = 0.05
    quick: bool = False

    def __post_init__(self):
        widths = numbers("widths", self.widths)
        if len(widths) < 3 or min(widths) < 1:
            raise ValueError(f"config key 'widths' needs at least three positive widths; got {self.widths!r}")
        depths = numbers("depths", self.depths)
        if not depths or min(depths) < 2:
            raise ValueError(f"config key 'depths' needs depths >= 2; got {self.depths!r}")
        if self.nudges < 3 or not 0 < self.fit_low < self.fit_high <= 1:
            raise ValueError("config keys need nudges >= 3 and 0 < fit_low < fit_high <= 1; got "
                             f"{self.nudges}, {self.fit_low}, {self.fit_high}")
        if not 0 < self.fixed_nudge <= 0.1 or not 0 < self.train_nudge <= 0.2:
            raise ValueError(f"config keys need 0 < fixed_nudge <= 0.1 and 0 < train_nudge <= 0.2 (the sweeps "
                             f"solver contracts at small nudges); got {self.fixed_nudge}, {self.train_nudge}")
        if not 0 < self.relax_eta <= 1 or self.relax_iterations < 1 or self.train_steps < 1:
            raise ValueError("config keys need 0 < relax_eta <= 1, relax_iterations >= 1, train_steps >= 1")
        check_quick(self, ("nudges", "relax_iterations", "depths", "train_steps"))

    def sizes(self) -> dict:
        """The sizes actually run (the quick preset replaces four keys)."""
        if self.quick:
            return {"nudges": 7, "relax_iterations": 60, "depths": (2, 3), "train_steps": 8}
        return {"nudges": self.nudges, "relax_iterations": self.relax_iterations,
                "depths": numbers("depths", self.depths), "train_steps": self.train_steps}


def gradient_problem(widths, scale, batch, seed):
    """`(system, theta, x0, loss, reference)`: a tanh MLP with a squared-error loss and jax.grad's gradient."""
    system = lagrangian.MLP(tuple(widths), activation="tanh", scale=scale)
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    theta = system.init(k1)
    x0 = jax.random.normal(k2, (batch, widths[0]))
    loss = lagrangian.SquaredError(target=jax.random.normal(k3, (batch, widths[-1])))
    reference = jax.jit(jax.grad(lambda th: loss(integrators.output(system, th, x0))))(theta)
    return system, theta, x0, loss, reference


def _error(grad, reference) -> float:
    """Relative L2 error (in numpy: no compilation per call); `None` for a non-finite estimate (no equilibrium)."""
    value = relative_error(grad, reference)
    return value if np.isfinite(value) else None


def _fit(xs, ys, low, high):
    xs, ys = np.asarray(xs, float), np.array([np.nan if y is None else y for y in ys], float)
    keep = (xs >= low) & (xs <= high) & np.isfinite(ys) & (ys > 0)
    return plots.fitted_order(xs[keep], ys[keep])


# --- the nudge scan --------------------------------------------------------------------------


def estimators(system, theta, x0, loss):
    """One jitted program `beta -> ({rule: estimate}, Newton iterations, inference state)` for every
    nudge-based rule on one network (EP by Newton, PC with output precision `gamma = beta`,
    DP, DP-top, fixed-prediction PC with output error `-beta grad l`). The inference state is
    `{"ep_residual", "ep_converged", "pc_residual", "pc_converged"}`: the largest stationarity
    residual over EP's phases and PC's, and whether each reached its tolerance (an unconverged
    solve is recorded and logged by the caller, not warned about: the scan reaches nudges where
    symmetric EP's negative phase has no equilibrium)."""

    @jax.jit
    def program(beta):
        grads, its, res, done = ep.phases(system, theta, x0, loss, jnp.stack([beta, -beta, 0.0 * beta]),
                                          on_unconverged="ignore")
        weak = pc.clamped(system, theta, x0, loss, beta, on_unconverged="ignore")
        out = {
            "EP one-sided": jax.tree.map(lambda g: (g[0] - g[2]) / beta, grads),
            "EP symmetric": jax.tree.map(lambda g: (g[0] - g[1]) / (2 * beta), grads),
            "PC, output precision gamma": weak.grad,
            "DP, alpha = 1/2": dp.dual_propagation(system, theta, x0, loss, beta, 0.5, 1, "dp"),
            "DP, alpha = 0": dp.dual_propagation(system, theta, x0, loss, beta, 0.0, 1, "dp"),
            "DP-top, alpha = 0": dp.dual_propagation(system, theta, x0, loss, beta, 0.0, 1, "dp-top"),
            "PC fixed prediction": pc.fixed_prediction(system, theta, x0, loss, nudge=beta),
        }
        state = {"ep_residual": res, "ep_converged": done, "pc_residual": weak.residual,
                 "pc_converged": weak.converged}
        return out, {"ep": its, "pc": weak.iterations}, state

    def estimate(beta):
        return program(jnp.asarray(beta, jnp.float64))  # one dtype, so one compilation for every nudge

    return estimate


def nudge_scan(system, theta, x0, loss, reference, nudges, estimate, progress=lambda s: None):
    """`({method: [error at each nudge]}, EP Newton iterations, inference state at each nudge)` on one
    MLP (None where a rule has no equilibrium: symmetric EP's negative phase at beta >= 1 for the
    squared error); the inference state holds `ep_residual`, `ep_converged`, `pc_residual`,
    `pc_converged` per nudge (`estimators`)."""
    sweep = _error(integrators.sweep(system, theta, x0, loss).grad, reference)
    # 2N + 2 Jacobi steps are exact: an unconverged relaxation here is a bug, so it raises
    relax = _error(integrators.relax(system, theta, x0, loss, iterations=2 * system.depth + 2, eta=1.0,
                                     on_unconverged="raise").grad, reference)
    out, iterations, inference = {}, [], {}
    for i, beta in enumerate(nudges):
        progress(f"nudge {beta:.1e} ({i + 1}/{len(nudges)})")
        grads, its, state = estimate(beta)
        for name, grad in grads.items():
            error = _error(grad, reference)
            if name == "EP symmetric" and not float(state["ep_residual"]) <= 1e-10:
                error = None
            out.setdefault(name, []).append(error)
        iterations.append(int(its["ep"]))
        for key, value in state.items():
            inference.setdefault(key, []).append(bool(value) if key.endswith("converged") else float(value))
        _, _, tension = integrators.tension(system, theta, x0, loss, float(beta))
        out.setdefault("least action: tension x-/beta", []).append(
            _error(jax.tree.map(lambda g: g / beta, tension), reference))
        out.setdefault("least action: sweep", []).append(sweep)
        out.setdefault("least action: relaxation", []).append(relax)
    return out, iterations, inference


# --- inference iterations ----------------------------------------------------------------------


def iteration_curves(system, theta, x0, loss, reference, nudge, iterations, eta) -> dict:
    """`{method: (iterations, errors)}` at a fixed nudge: the physical relaxations of EP and PC
    (`dx/dtau = -dF/dx`, step `eta`), fixed-prediction PC's Jacobi steps, DP's passes and the
    least-action relaxation (Jacobi and step `eta`)."""
    def errors(history):
        rows = np.concatenate([np.reshape(np.asarray(a), (a.shape[0], -1)) for a in jax.tree.leaves(history)], axis=1)
        return np.array([relative_error(row, reference) for row in rows])

    ts = np.arange(1, iterations + 1)
    n = system.depth
    fp_steps = np.arange(0, n + 2)
    passes = np.arange(1, 6)

    @jax.jit
    def histories():
        stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)
        return (ep.relaxation_curve(system, theta, x0, loss, nudge, iterations, eta),
                pc.clamped_relaxation_curve(system, theta, x0, loss, nudge, iterations, eta),
                pc.clamped_relaxation_curve(system, theta, x0, loss, 1.0, iterations, eta),
                stack([pc.fixed_prediction(system, theta, x0, loss, int(k)) for k in fp_steps]),
                stack([dp.dual_propagation(system, theta, x0, loss, nudge, 0.5, int(k)) for k in passes]))

    ep_h, weak_h, strong_h, fp_h, dp_h = histories()
    out = {"EP symmetric, dx/dtau = -dF/dx": (ts, errors(ep_h)),
           "PC weak precision, dx/dtau = -dF/dx": (ts, errors(weak_h)),
           "PC clamped (gamma = 1), dx/dtau = -dF/dx": (ts, errors(strong_h)),
           "PC fixed prediction, Jacobi": (fp_steps, errors(fp_h)),
           "DP alpha = 1/2, inference passes": (passes, errors(dp_h))}
    for label, step in (("least action: relaxation, Jacobi", 1.0), (f"least action: relaxation, eta = {eta:g}", eta)):
        length = max(2 * n + 4, iterations) if step < 1 else 2 * n + 4
        # a convergence curve: its end is recorded by the error history, not warned about
        result = integrators.relax(system, theta, x0, loss, iterations=length, eta=step, record_grads=True,
                                   on_unconverged="ignore")
        out[label] = (np.arange(1, length + 1), errors(result.grads))
    return out


# --- depth ------------------------------------------------------------------------------------


def depth_errors(depths, width, scale, batch, seed, nudge, progress=lambda s: None) -> dict:
    """`{method: [error at each depth]}` on tanh MLPs `(5, width x (depth - 1), 3)` at a fixed nudge
    (EP and weak-precision PC by the sweeps solver, which contracts at small nudges)."""
    out = {k: [] for k in ("EP one-sided", "EP symmetric", "PC weak precision", "DP, alpha = 1/2",
                           "DP-top, alpha = 0", "PC fixed prediction", "least action: tension x-/beta",
                           "least action: sweep", "least action: relaxation")}
    sweeps = []
    for depth in depths:
        progress(f"depth {depth}")
        widths = (5, *([width] * (depth - 1)), 3)
        system, theta, x0, loss, reference = gradient_problem(widths, scale, batch, seed)

        @jax.jit
        def estimates():
            grads, its, _, _ = ep.phases(system, theta, x0, loss, jnp.stack([nudge, -nudge, 0.0]), solver="sweeps",
                                      max_iterations=200)
            weak = pc.clamped(system, theta, x0, loss, nudge, solver="sweeps", max_iterations=200)
            _, _, tension = integrators.tension(system, theta, x0, loss, float(nudge))
            return {
                "EP one-sided": jax.tree.map(lambda g: (g[0] - g[2]) / nudge, grads),
                "EP symmetric": jax.tree.map(lambda g: (g[0] - g[1]) / (2 * nudge), grads),
                "PC weak precision": weak.grad,
                "DP, alpha = 1/2": dp.dual_propagation(system, theta, x0, loss, nudge, 0.5),
                "DP-top, alpha = 0": dp.dual_propagation(system, theta, x0, loss, nudge, 0.0, 1, "dp-top"),
                "PC fixed prediction": pc.fixed_prediction(system, theta, x0, loss),
                "least action: tension x-/beta": jax.tree.map(lambda g: g / nudge, tension),
                "least action: sweep": integrators.sweep(system, theta, x0, loss, check=False).grad,
                "least action: relaxation": integrators.relax(system, theta, x0, loss, iterations=2 * depth + 2,
                                                              eta=1.0, on_unconverged="raise").grad,
            }, jnp.maximum(its, weak.iterations)

        grads, its = estimates()
        sweeps.append(int(its))
        for name, grad in grads.items():
            out[name].append(_error(grad, reference))
    return out, sweeps


# --- cost ---------------------------------------------------------------------------------------


def cost_rows(system, theta, x0, loss, reference, nudge, estimate) -> list[dict]:
    """Evaluations of the layer maps per gradient (`Phi` forward evaluations, VJPs, JVPs) for every
    method at `nudge`, counted from the algorithms with their measured iteration counts (`estimate`
    from `estimators`), and the error. Newton on `D` free states costs per step one residual
    (N evaluations, N - 1 VJPs), `D` Hessian columns (each a JVP through every layer and its VJP)
    and at least one energy evaluation of the line search (N evaluations)."""
    n = system.depth
    d = sum(system.widths[1:])
    grads, its, state = estimate(nudge)
    strong, strong_its, strong_state = estimate(1.0)
    k, k_pc, k_strong = int(its["ep"]), int(its["pc"]), int(strong_its["pc"])
    rows = []

    def add(method, phi, vjp, jvp, iterations, grad, note, inference=None):
        """`inference`: the state of an equilibrium solve (residual, converged), recorded beside the estimate."""
        if inference is not None:
            residual, converged = inference
            inference = {"residual": float(residual), "converged": bool(converged)}
        rows.append({"method": method, "inference": inference,
                     "phi": int(phi), "vjp": int(vjp), "jvp": int(jvp), "iterations": iterations,
                     "relative_error": _error(grad, reference), "note": note})

    add("least action: sweep", n, n, 0, "-", integrators.sweep(system, theta, x0, loss).grad,
        "forward pass, one VJP per layer")
    _, _, tension = integrators.tension(system, theta, x0, loss, float(nudge))
    add("least action: tension x-/beta", n, n, 0, "-", jax.tree.map(lambda g: g / nudge, tension),
        "one sweep of the doubled action")
    it = 2 * n + 2
    add("least action: relaxation (Jacobi)", it * n, it * n, 0, it,
        integrators.relax(system, theta, x0, loss, iterations=it, eta=1.0, on_unconverged="raise").grad,
        "every layer every step")
    add("PC fixed prediction", 2 * n, (n - 1) ** 2 + n, 0, n - 1, grads["PC fixed prediction"],
        "N - 1 Jacobi steps of the errors")
    newton = lambda steps, free: (steps * 2 * n, steps * (n - 1), steps * free * (2 * n - 1))
    phi, vjp, jvp = newton(k, d)
    add("EP one-sided (Newton)", phi + n, vjp + n, jvp, f"<= {k} Newton", grads["EP one-sided"],
        "one nudged phase (the free phase is the forward pass)", (state["ep_residual"], state["ep_converged"]))
    add("EP symmetric (Newton)", 2 * phi + n, 2 * vjp + 2 * n, 2 * jvp, f"<= {k} Newton per phase",
        grads["EP symmetric"], "two nudged phases", (state["ep_residual"], state["ep_converged"]))
    free = d - system.widths[-1]
    phi, vjp, jvp = newton(k_pc, free)
    add("PC weak precision (Newton)", phi + n, vjp + n, jvp, f"<= {k_pc} Newton", grads["PC, output precision gamma"],
        "hidden states relaxed, output clamped", (state["pc_residual"], state["pc_converged"]))
    phi, vjp, jvp = newton(k_strong, free)
    add("PC clamped, gamma = 1 (Newton)", phi + n, vjp + n, jvp, f"<= {k_strong} Newton",
        strong["PC, output precision gamma"], "a different objective",
        (strong_state["pc_residual"], strong_state["pc_converged"]))
    updates = len(dp.schedule(n, 1))
    add("DP, alpha = 1/2 (1 pass)", n + 2 * updates, updates - 1, 0, 1, grads["DP, alpha = 1/2"],
        "two compartments per layer")
    add("DP-top, alpha = 0 (1 pass)", n + 2 * updates, updates - 1, 0, 1, grads["DP-top, alpha = 0"],
        "loss gradient at the prediction")
    return rows


# --- training ----------------------------------------------------------------------------------


def training_rules(system, nudge):
    """`{name: value_and_grad(theta, x, y_onehot) -> (loss, gradient estimate)}` for digits training."""

    def rule(estimate):
        def value_and_grad(theta, x, y):
            loss = lagrangian.SquaredError(target=y)
            return loss(integrators.output(system, theta, x)), estimate(theta, x, loss)

        return value_and_grad

    return {
        "least action (sweep)": rule(lambda th, x, l: integrators.sweep(system, th, x, l, check=False).grad),
        "EP symmetric": rule(lambda th, x, l: ep.equilibrium_propagation(system, th, x, l, nudge, True,
                                                                           solver="sweeps", max_iterations=200).grad),
        "EP one-sided": rule(lambda th, x, l: ep.equilibrium_propagation(system, th, x, l, nudge, False,
                                                                           solver="sweeps", max_iterations=200).grad),
        "PC clamped": rule(lambda th, x, l: pc.clamped(system, th, x, l, 1.0).grad),
        "PC weak precision": rule(lambda th, x, l: pc.clamped(system, th, x, l, nudge, solver="sweeps",
                                                               max_iterations=200).grad),
        "PC fixed prediction": rule(lambda th, x, l: pc.fixed_prediction(system, th, x, l)),
        "DP, alpha = 1/2": rule(lambda th, x, l: dp.dual_propagation(system, th, x, l, nudge, 0.5)),
        "DP-top, alpha = 0": rule(lambda th, x, l: dp.dual_propagation(system, th, x, l, nudge, 0.0, 1, "dp-top")),
    }


def train(system, theta0, value_and_grad, data, steps, learning_rate):
    """`(losses[steps], test_accuracy[steps], final train accuracy)`: full-batch adam, one scan."""
    import optax

    x_train, y_train, x_test, y_test = data
    onehot = jax.nn.one_hot(y_train, system.widths[-1], dtype=x_train.dtype)
    optimiser = optax.adam(learning_rate)

    def accuracy(theta, x, y):
        return jnp.mean(jnp.argmax(integrators.output(system, theta, x), axis=-1) == y)

    def step(carry, _):
        theta, state = carry
        value, grads = value_and_grad(theta, x_train, onehot)
        updates, state = optimiser.update(grads, state, theta)
        theta = optax.apply_updates(theta, updates)
        return (theta, state), (value, accuracy(theta, x_test, y_test))

    run = jax.jit(lambda th: jax.lax.scan(step, (th, optimiser.init(th)), None, length=steps))
    (theta, _), (losses, test_acc) = run(theta0)
    return np.asarray(losses), np.asarray(test_acc), float(accuracy(theta, x_train, y_train))


# --- the run -------------------------------------------------------------------------------------


CHAIN_FIT = (1e-4, 3e-2)
"""The asymptotic range of the echo's fitted slopes (below it the rounding floor, about 1e-10)."""


def chain_errors(nudges, seed) -> dict:
    """Relative L2 errors on the harness problem ``oscillator-chain`` (6 anharmonic oscillators,
    leapfrog, h = 0.05, 200 steps) against `jax.grad` through the same leapfrog map, for each
    nudge `eps` (`beta`): the symmetric and one-sided Hamiltonian echo
    (`experiments.learning_rules.hamiltonian_echo`), the mismatch of the echo perturbation / eps
    with the exchanged conjugate field `X p`, the tension `x- / beta` and the least-action sweep.
    Slopes are fitted over `CHAIN_FIT`."""
    from ..harness.problems import problem_named
    from ..learning_rules.hamiltonian_echo import conjugate_field, echo_perturbation, hamiltonian_echo

    problem = problem_named("oscillator-chain", seed=seed)
    system, theta, x0, loss = problem.system, problem.theta, problem.x0, problem.loss
    reference = jax.jit(jax.grad(lambda th: loss(integrators.output(system, th, x0))))(theta)  # the reference only
    conjugate = lagrangian.exchange(conjugate_field(system, theta, x0, loss))
    scale = jnp.max(jnp.abs(conjugate))

    @jax.jit
    def at(eps):
        out = {}
        for symmetric, name in ((True, "echo symmetric"), (False, "echo one-sided")):
            echo = hamiltonian_echo(system, theta, x0, loss, eps, symmetric)
            out[name] = echo.grad
            out[f"{name}: |echo/eps - X p|"] = jnp.max(jnp.abs(echo_perturbation(echo) - conjugate)) / scale
        return out

    sweep = integrators.sweep(system, theta, x0, loss).grad
    errors: dict[str, list] = {}
    for eps in nudges:
        values = at(jnp.asarray(float(eps)))
        _, _, grad = integrators.tension(system, theta, x0, loss, float(eps))
        values["least action: tension x-/beta"] = jax.tree.map(lambda g: g / eps, grad)
        values["least action: sweep"] = sweep
        for name, value in values.items():
            error = (compare_gradients(value, reference)["relative_l2_error"] if isinstance(value, dict)
                     else float(value))
            errors.setdefault(name, []).append(error)
    slopes = {name: _fit(nudges, errs, *CHAIN_FIT) for name, errs in errors.items()
              if not name.startswith("least action")}
    return {"nudges": [float(e) for e in nudges], "errors": errors, "fitted_slopes": slopes,
            "fit_range": list(CHAIN_FIT),
            "title": "oscillator chain (6, leapfrog, h = 0.05, 200 steps)"}


def _series(values):
    return [None if v is None else float(v) for v in values]


def run(config: PhysicalLearningConfig, folder: RunFolder, progress: Progress) -> dict:
    sizes = config.sizes()
    widths = numbers("widths", config.widths)
    total = 7
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    clock = [started, None]

    def stage(name):
        now = time.perf_counter()
        if clock[1] is not None:
            seconds[clock[1]] = now - clock[0]
        clock[0], clock[1] = now, name
    system, theta, x0, loss, reference = gradient_problem(widths, config.scale, config.batch, config.seed)
    folder.log(f"MLP {widths} (tanh, scale {config.scale}), batch {config.batch}, squared error; reference jax.grad")
    results: dict = {"setup": {"widths": list(widths), "scale": config.scale, "batch": config.batch,
                               "depth": system.depth, "fixed_nudge": config.fixed_nudge}}

    # 1. error against the nudge
    stage("nudge")
    progress(1, total, "error against the nudge")
    nudges = np.logspace(-6, 0, sizes["nudges"])
    estimate = estimators(system, theta, x0, loss)
    scan, newton_iterations, inference_state = nudge_scan(
        system, theta, x0, loss, reference, nudges, estimate,
        lambda s: progress(1, total, f"error against the nudge: {s}"))
    for beta, *state in zip(nudges, *(inference_state[k] for k in ("ep_converged", "ep_residual", "pc_converged",
                                                                    "pc_residual"))):
        for rule, converged, residual in (("EP", *state[:2]), ("PC", *state[2:])):
            if not converged:
                folder.log(f"{rule} inference at nudge {beta:.1e} stopped before its tolerance "
                           f"(residual {residual:.3g}); recorded in nudge_scan.inference")
    slopes = {k: _fit(nudges, v, config.fit_low, config.fit_high) for k, v in scan.items()}
    at = lambda name, beta: scan[name][int(np.argmin(np.abs(np.log(nudges / beta))))]
    results["nudge_scan"] = {"nudges": nudges.tolist(), "errors": {k: _series(v) for k, v in scan.items()},
                             "fitted_slopes": slopes, "fit_range": [config.fit_low, config.fit_high],
                             "ep_newton_iterations": newton_iterations, "inference": inference_state}
    results["acceptance"] = {
        "ep_one_sided_slope": slopes["EP one-sided"], "ep_symmetric_slope": slopes["EP symmetric"],
        "ep_symmetric_error_at_1e-4": at("EP symmetric", 1e-4), "ep_one_sided_error_at_1e-4": at("EP one-sided", 1e-4),
        "max_tension_error": max(scan["least action: tension x-/beta"]),
        "max_sweep_error": max(scan["least action: sweep"]),
        "max_fixed_prediction_error": max(scan["PC fixed prediction"]),
    }
    chain = chain_errors(nudges, config.seed)
    results["chain"] = chain
    k = int(np.argmin(np.abs(np.log(np.asarray(chain["nudges"]) / 1e-4))))
    results["acceptance"].update({
        "chain_echo_symmetric_slope": chain["fitted_slopes"]["echo symmetric"],
        "chain_echo_symmetric_error_at_1e-4": chain["errors"]["echo symmetric"][k],
        "chain_max_tension_error": max(chain["errors"]["least action: tension x-/beta"]),
        "chain_max_sweep_error": max(chain["errors"]["least action: sweep"]),
    })

    # 2. dyads against doubled copies
    stage("dyads")
    progress(2, total, "dual-propagation dyads against the doubled copies")
    dyads = {}
    dyad_nudges = nudges[::3] if config.quick else nudges
    for label, alpha, variant in (("DP, alpha = 1/2", 0.5, "dp"), ("DP, alpha = 0", 0.0, "dp"),
                                  ("DP-top, alpha = 0", 0.0, "dp-top")):
        rows = [dp.dyads_and_copies(system, theta, x0, loss, float(b), alpha, 5, variant) for b in dyad_nudges]
        dyads[label] = {k: [r[k] for r in rows] for k in rows[0]}
    results["dyads"] = {"nudges": dyad_nudges.tolist(), "deviations": dyads}

    # 3. error against inference iterations
    stage("iterations")
    progress(3, total, "error against inference iterations")
    curves = iteration_curves(system, theta, x0, loss, reference, config.fixed_nudge, sizes["relax_iterations"],
                              config.relax_eta)
    results["iterations"] = {k: {"iterations": np.asarray(t).tolist(), "errors": _series(np.asarray(e).tolist())}
                             for k, (t, e) in curves.items()}

    # 4. error against depth
    stage("depth")
    progress(4, total, "error against depth")
    depth_scan, depth_sweeps = depth_errors(sizes["depths"], config.depth_width, config.depth_scale, min(config.batch, 4),
                                            config.seed, config.fixed_nudge,
                                            lambda s: progress(4, total, f"error against depth: {s}"))
    results["depth"] = {"depths": list(sizes["depths"]), "errors": {k: _series(v) for k, v in depth_scan.items()},
                        "sweeps": depth_sweeps, "width": config.depth_width, "scale": config.depth_scale}

    # 5. cost
    stage("cost")
    progress(5, total, "cost per gradient")
    cost = cost_rows(system, theta, x0, loss, reference, config.fixed_nudge, estimate)
    results["cost"] = cost

    # 6. digits
    stage("training")
    progress(6, total, f"digits training ({sizes['train_steps']} steps per rule)")
    data = digits_split(config.seed, 0.25)
    net = lagrangian.MLP((64, config.train_hidden, 10), activation="tanh", readout=True)
    theta0 = net.init(jax.random.key(config.seed))
    training = {}
    rules = training_rules(net, config.train_nudge)
    if config.quick:  # the pipeline check: one exact and three approximate rules
        rules = {k: rules[k] for k in ("least action (sweep)", "EP symmetric", "PC fixed prediction", "DP, alpha = 1/2")}
    for name, value_and_grad in rules.items():
        progress(6, total, f"digits training: {name}")
        tic = time.perf_counter()
        losses, test_acc, train_acc = train(net, theta0, value_and_grad, data, sizes["train_steps"],
                                            config.learning_rate)
        training[name] = {"losses": losses.tolist(), "test_accuracy": test_acc.tolist(),
                          "final_loss": float(losses[-1]), "final_test_accuracy": float(test_acc[-1]),
                          "final_train_accuracy": train_acc, "seconds": time.perf_counter() - tic}
    results["training"] = {"widths": [64, config.train_hidden, 10], "steps": sizes["train_steps"],
                           "nudge": config.train_nudge, "optimiser": f"optax.adam({config.learning_rate:g})",
                           "loss": "0.5 |x_N - onehot(y)|^2", "runs": training}

    # 7. figures and tables
    stage("figures")
    progress(7, total, "figures and tables")
    _figures(folder, results, nudges, scan, slopes, chain, (dyad_nudges, dyads), curves, depth_scan, sizes, config, training)
    _tables(folder, results, nudges, scan, slopes, cost, training, config)
    stage("done")
    results["stage_seconds"] = seconds
    results["total_seconds"] = time.perf_counter() - started
    folder.log(f"EP slopes {slopes['EP one-sided']:.3f} (one-sided), {slopes['EP symmetric']:.3f} (symmetric); "
               f"symmetric EP at beta = 1e-4: {results['acceptance']['ep_symmetric_error_at_1e-4']:.2e}; "
               f"tension <= {results['acceptance']['max_tension_error']:.1e}")
    return results


def _figures(folder, results, nudges, scan, slopes, chain, dyads, curves, depth_scan, sizes, config, training):
    ncols = 2 if chain else 1
    fig, axes = plots.figure(ncols=ncols, panel_size=(6.4, 4.8))
    ax = axes[0]
    for label, errs in scan.items():
        colour, style, marker = _style(label)
        ys = np.array([np.nan if e is None else max(e, FLOOR) for e in errs])
        slope = slopes[label]
        exact = np.nanmax(ys) < 1e-12
        shown = label if exact or slope is None else f"{label} (slope {slope:.2f})"
        ax.loglog(nudges, ys, color=colour, ls=style, marker=marker, ms=3.5, label=shown)
    ax.axhline(np.finfo(np.float64).eps, color="k", ls=":", lw=0.8, label="float64 eps")
    ax.axvspan(config.fit_low, config.fit_high, color="0.92", zorder=-1)
    ax.set_xlabel(r"nudge strength $\beta$ (PC: output precision $\gamma$)")
    ax.set_ylabel("relative L2 error vs jax.grad")
    ax.set_title(f"MLP {'-'.join(map(str, results['setup']['widths']))}, tanh, squared error "
                 f"(exact zeros at {FLOOR:g})")
    # below the panels at the house legend size (8 pt): ten methods do not fit inside the axes
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower left", ncol=2, title="MLP panel")
    if chain:
        for label, errs in chain["errors"].items():
            slope = chain["fitted_slopes"].get(label)
            shown = label if slope is None else f"{label} (slope {slope:.2f})"
            axes[1].loglog(chain["nudges"], np.maximum(np.asarray(errs, float), FLOOR), marker="o", ms=3, label=shown)
        axes[1].axhline(np.finfo(np.float64).eps, color="k", ls=":", lw=0.8)
        axes[1].set_xlabel(r"echo nudge $\epsilon$ (tension: $\beta$)")
        axes[1].set_ylabel("relative L2 error vs jax.grad")
        axes[1].set_title(chain.get("title", "oscillator chain"))
        fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower right", ncol=1, title="chain panel")
    folder.save_figure(fig, "error_vs_nudge")

    fig, axes = plots.figure(ncols=2, panel_size=(5.2, 4.0))
    for label, (t, e) in curves.items():
        colour, style, _ = _style(label)
        t, e = np.asarray(t), np.maximum(np.array([np.nan if v is None else v for v in e], float), FLOOR)
        axes[0].loglog(t[t > 0], e[t > 0], color=colour, ls=style, label=label)
    axes[0].axhline(np.finfo(np.float64).eps, color="k", ls=":", lw=0.8)
    axes[0].set_xlabel("inference iterations (steps of the relaxation / passes)")
    axes[0].set_ylabel("relative L2 error")
    axes[0].set_title(rf"inference at fixed nudge $\beta = \gamma = {config.fixed_nudge:g}$")
    axes[0].legend(fontsize=6.5)
    depths = np.asarray(sizes["depths"])
    for label, errs in depth_scan.items():
        colour, style, marker = _style(label)
        axes[1].loglog(depths, np.maximum(np.array([np.nan if v is None else v for v in errs], float), FLOOR),
                       color=colour, ls=style, marker=marker, ms=3.5, label=label)
    axes[1].axhline(np.finfo(np.float64).eps, color="k", ls=":", lw=0.8)
    axes[1].set_xlabel("depth N (layers)")
    axes[1].set_ylabel("relative L2 error")
    axes[1].set_title(rf"depth, width {config.depth_width}, $\beta = {config.fixed_nudge:g}$")
    axes[1].legend(fontsize=6.5)
    folder.save_figure(fig, "iterations_and_depth")

    dyad_nudges, dyads = dyads
    fig, axes = plots.figure(ncols=2, panel_size=(5.2, 4.0))
    for label, rows in dyads.items():
        colour = _style(label)[0]
        axes[0].loglog(dyad_nudges, np.maximum(rows["hidden_mean_vs_forward"], FLOOR), marker="o", ms=3,
                       color=colour, label=f"{label}: mean - x+")
        axes[1].loglog(dyad_nudges, np.maximum(rows["hidden_difference_vs_tension"], FLOOR), marker="o", ms=3,
                       color=colour, label=f"{label}: hidden")
        axes[1].loglog(dyad_nudges, np.maximum(rows["output_difference_vs_tension"], FLOOR), ls="--", ms=3,
                       color=colour, label=f"{label}: output")
    axes[0].set_xlabel(r"$\beta$")
    axes[0].set_ylabel(r"max $|\bar s_k - x^+_k|$ (hidden layers)")
    axes[0].set_title("dyad mean vs the copies' mean (forward pass)")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel(r"$\beta$")
    axes[1].set_ylabel(r"max $|(s^- - s^+) - D x^-| / \max|x^-|$")
    axes[1].set_title("dyad difference vs the tension x- (pre-activation)")
    axes[1].legend(fontsize=6.5)
    folder.save_figure(fig, "dyads_vs_copies")

    fig, axes = plots.figure(ncols=2, panel_size=(5.2, 4.0))
    steps = np.arange(sizes["train_steps"])
    plots.training_curves(axes[0], steps, {k: v["losses"] for k, v in training.items()},
                          ylabel="training loss 0.5|x_N - onehot|^2", title="digits, every rule from one seed")
    for i, (label, run_) in enumerate(training.items()):
        axes[1].plot(steps, run_["test_accuracy"], ls=("-", "--", ":", "-.")[i % 4], label=label)
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7)
    folder.save_figure(fig, "digits_training")


def _tables(folder, results, nudges, scan, slopes, cost, training, config):
    idx = {b: int(np.argmin(np.abs(np.log(nudges / b)))) for b in (1e-6, 1e-4, 1e-2, 1.0)}
    rows = []
    for label, errs in scan.items():
        exact = max(e for e in errs if e is not None) < 1e-12  # no slope: rounding, not a bias
        rows.append([label, "-" if slopes[label] is None or exact else slopes[label],
                     *["no equilibrium" if errs[i] is None else errs[i] for i in idx.values()]])
    folder.save_table(Table(
        columns=["method", f"slope over [{config.fit_low:g}, {config.fit_high:g}]",
                 *[f"error at {nudges[i]:.0e}" for i in idx.values()]],
        rows=rows,
        caption=("Relative L2 error of each gradient estimate against jax.grad as a function of the nudge "
                 "(beta; output precision gamma for PC) on the headline MLP, with the fitted log-log slope."),
        label="tab:physical-learning-nudge"), "error_vs_nudge")
    folder.save_table(Table(
        columns=["method", "Phi_k evaluations", "VJPs", "JVPs", "iterations", "inference residual",
                 "relative error", "counted"],
        rows=[[r["method"], r["phi"], r["vjp"], r["jvp"], str(r["iterations"]),
               "-" if r["inference"] is None else r["inference"]["residual"]
               if r["inference"]["converged"] else f"{r['inference']['residual']:.2g} (unconverged)",
               "n/a" if r["relative_error"] is None else r["relative_error"], r["note"]] for r in cost],
        caption=(f"Cost of one gradient of the headline MLP in evaluations of the layer maps at nudge "
                 f"{config.fixed_nudge:g} (counted from the algorithm with the measured iteration counts), "
                 "with the stationarity residual of the equilibrium the energy-based rules read."),
        label="tab:physical-learning-cost"), "cost")
    folder.save_table(Table(
        columns=["rule", "final training loss", "train accuracy", "test accuracy"],
        rows=[[k, v["final_loss"], v["final_train_accuracy"], v["final_test_accuracy"]] for k, v in training.items()],
        caption=(f"Digits, MLP 64-{config.train_hidden}-10, {results['training']['steps']} full-batch adam steps "
                 f"from one seed, nudge {config.train_nudge:g}."),
        label="tab:physical-learning-training"), "training")


EXPERIMENT = Experiment(
    name="physical-learning",
    description="EP, predictive coding and dual propagation against the exact least-action gradient",
    config=PhysicalLearningConfig(),
    run=run,
    headline=("acceptance.ep_one_sided_slope", "acceptance.ep_symmetric_slope", "acceptance.ep_symmetric_error_at_1e-4",
              "acceptance.max_tension_error", "acceptance.max_fixed_prediction_error"),
    figures={"physical_learning_error_vs_nudge": "error_vs_nudge"},
)
