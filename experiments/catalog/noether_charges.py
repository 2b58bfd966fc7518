"""Noether charges of training: conserved by gradient flow, broken by finite steps,
weight decay and momentum, each breaking measured against its closed form.

Data: the first `samples` handwritten digits bundled with scikit-learn (8x8
images scaled to [0, 1], 10 classes). Two one-hidden-layer networks with a
softmax cross-entropy readout, `64 -> hidden -> 10`:

- ``linear`` (identity activation): symmetric under the linear group
  `W_0 -> G W_0`, `b_0 -> G b_0`, `W_1 -> W_1 G^{-1}` (which contains the
  per-unit rescalings) and under translation of the logits;
- ``relu``: symmetric under per-unit rescaling and translation of the logits.

Each charge comes from its declared generator by Noether's formula
(`lagrangian.noether`): `Q_GF = 1/2 (delta(theta) + delta(0)) . theta` for
gradient flow, `Q_H = p . delta(theta)` for momentum flow, and is checked
against its closed form (incoming minus outgoing squared norms per unit, the
logit-bias sum, the balance matrix `C = W_0 W_0^T + b_0 b_0^T - W_1^T W_1`, the
angular momentum `M - M^T`). Drifts are relative to each charge's
Cauchy-Schwarz bound `lagrangian.charge_scale` (a difference of squared norms
can cancel; the bound is the size of the terms it is made of).

Measurements:

1. Gradient flow `dtheta/dt = -grad R` stepped by RK4 with `steps` steps to
   `t_final` (`lagrangian.GradientFlow` through `integrators.discretise`): every
   charge over training. Smooth (linear) network: conserved to RK4's accuracy.
   ReLU network: `grad R` jumps where a pre-activation changes sign, so every
   method is first order across those kinks and the drift is larger.
2. Finite learning rate: forward Euler with step `eta = t_final / N` *is*
   gradient descent. One step changes a quadratic charge by exactly
   `eta^2/2 g . Omega g` (`g . delta(theta) = 0`), so the drift at `t_final`
   is `O(eta)`; the fitted order is reported, with RK4's for contrast.
   Linear charges (the bias sum) are conserved by every Runge-Kutta step.
3. Weight decay `lambda`: `dQ/dt = -2 lambda Q` for the rescaling charge and
   `-lambda Q` for the bias sum: `Q(t) = Q(0) exp(-2 lambda t)`, `exp(-lambda t)`.
4. Momentum (heavy ball, `lagrangian.HeavyBall`, leapfrog, from a random
   velocity): the isometry charges `Q_H` (rotations of the hidden layer,
   translation) are conserved without friction, while the gradient-flow
   charges of rescaling (`Omega` symmetric) are broken, `dQ_GF/dt = delta(theta) . p`
   (their momentum charges too, at the rate `p . Omega p`), and the bias sum drifts linearly, at the rate of its conserved momentum
   charge `sum_i p_{b_1}[i]` (zero only for a start at rest); with friction
   `gamma` the leapfrog kicks multiply `Q_H` by exactly
   `(1 - h gamma/2)^2` per step, `-> exp(-gamma t)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian
from lagrangian import noether

from .. import plots
from ..data import digits
from ..harness.metrics import relative_error
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

QUICK_SIZES = {"samples": 64, "hidden": 6, "steps": 200, "lr_steps": "25,50,100,200"}
"""What the `quick` preset runs instead of `samples`, `hidden`, `steps` and `lr_steps`."""

NETWORKS = ("linear", "relu")
TOTAL_STEPS = 7


def _ints(text: str, key: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"config key {key!r} must be comma-separated integers; got {text!r}") from None
    if len(values) < 2 or any(v < 1 for v in values):
        raise ValueError(f"config key {key!r} needs at least two positive step counts; got {text!r}")
    return values


@dataclass(frozen=True)
class NoetherConfig:
    """Defaults of the noether-charges experiment.

    seed: seed of the initial weights and the initial velocity of momentum training.
    samples: number of digits in the training set (the first ones of the bundled set).
    hidden: width of the hidden layer.
    t_final: training time `T` of every flow.
    steps: steps of the fine RK4 / leapfrog flows (step `h = T / steps`).
    lr_steps: comma-separated step counts `N` of the learning-rate sweep (`eta = T / N`).
    weight_decay: `lambda` of the weight-decay run.
    friction: `gamma` of the damped momentum run.
    velocity_scale: standard deviation of the random initial velocity of momentum training.
    quick: the small preset: `samples`, `hidden`, `steps`, `lr_steps` become `QUICK_SIZES`.
    """

    seed: int = 0
    samples: int = 512
    hidden: int = 16
    t_final: float = 4.0
    steps: int = 1000
    lr_steps: str = "50,100,200,400,800"
    weight_decay: float = 0.1
    friction: float = 0.5
    velocity_scale: float = 0.1
    quick: bool = False

    def __post_init__(self):
        _ints(self.lr_steps, "lr_steps")
        if self.quick:
            defaults = NoetherConfig.__dataclass_fields__
            changed = [k for k in QUICK_SIZES if getattr(self, k) != defaults[k].default]
            if changed:
                raise ValueError(f"config key 'quick' replaces {', '.join(QUICK_SIZES)}; "
                                 f"do not also set {', '.join(changed)}")
        if not 1 <= self.samples <= 1797:
            raise ValueError(f"config key 'samples' must be in 1..1797 (the bundled digits); got {self.samples}")
        if self.hidden < 2:
            raise ValueError(f"config key 'hidden' must be >= 2; got {self.hidden}")
        if self.steps < 3:
            raise ValueError(f"config key 'steps' must be >= 3; got {self.steps}")
        for key in ("t_final", "weight_decay", "friction", "velocity_scale"):
            if not getattr(self, key) > 0:
                raise ValueError(f"config key {key!r} must be > 0; got {getattr(self, key)}")

    def sizes(self) -> dict:
        """`samples`, `hidden`, `steps`, `lr_steps` actually run (the quick sizes when `quick`)."""
        source = QUICK_SIZES if self.quick else {k: getattr(self, k) for k in QUICK_SIZES}
        return {**source, "lr_steps": _ints(str(source["lr_steps"]), "lr_steps")}


QUICK = NoetherConfig(quick=True)


# --- charges of one network -----------------------------------------------------------------


def _basis(m: int, symmetric: bool) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """`E_ij + E_ji` (`i <= j`) or `E_ij - E_ji` (`i < j`): a basis of the (anti)symmetric matrices."""
    pairs = [(i, j) for i in range(m) for j in range(i if symmetric else i + 1, m)]
    mats = np.zeros((len(pairs), m, m))
    for n, (i, j) in enumerate(pairs):
        mats[n, i, j] += 1.0
        mats[n, j, i] += 1.0 if symmetric else -1.0
    return mats, pairs


@dataclass(frozen=True)
class Family:
    """A family of charges: automatic values, closed forms and scales, each `(K,)` per state."""

    name: str
    label: str
    automatic: Callable
    closed: Callable
    scale: Callable
    momentum: bool = False


def gradient_flow_families(network: str, hidden: int) -> list[Family]:
    """The gradient-flow charges of a `64 -> hidden -> 10` network (`linear` or `relu`)."""
    families = [
        Family(
            "rescaling", "rescaling (per unit)",
            lambda th: jnp.stack([noether.gradient_flow_charge(noether.rescaling(0, i), th) for i in range(hidden)]),
            lambda th: noether.rescaling_charges(th, 0),
            lambda th: jnp.stack([noether.charge_scale(noether.rescaling(0, i), th) for i in range(hidden)]),
        ),
        Family(
            "translation", "logit translation",
            lambda th: noether.gradient_flow_charge(noether.translation(1), th)[None],
            lambda th: noether.bias_sum(th, 1)[None],
            lambda th: noether.charge_scale(noether.translation(1), th)[None],
        ),
    ]
    if network == "linear":
        mats, pairs = _basis(hidden, symmetric=True)
        rows, cols = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        families.append(Family(
            "balance", r"balance $W_0W_0^\top - W_1^\top W_1$",
            lambda th: jax.vmap(lambda om: noether.gradient_flow_charge(noether.linear_group(0, om), th))(mats),
            lambda th: noether.balance_matrix(th, 0)[rows, cols],
            lambda th: jax.vmap(lambda om: noether.charge_scale(noether.linear_group(0, om), th))(mats),
        ))
    return families


def momentum_families(hidden: int) -> list[Family]:
    """The momentum-flow charges `Q_H = p . delta` of the linear network (rotations, translation)."""
    mats, pairs = _basis(hidden, symmetric=False)
    rows, cols = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def bound(gen, th, p):
        norm = lambda t: jnp.sqrt(sum(jnp.vdot(a, a) for a in jax.tree.leaves(t)))  # noqa: E731
        return norm(p) * norm(gen(th))

    return [
        Family(
            "angular_momentum", r"angular momentum $M - M^\top$",
            lambda th, p: jax.vmap(lambda om: noether.momentum_charge(noether.linear_group(0, om), th, p))(mats),
            lambda th, p: (lambda m: m[cols, rows] - m[rows, cols])(noether.angular_momentum_matrix(th, p, 0)),
            lambda th, p: jax.vmap(lambda om: bound(noether.linear_group(0, om), th, p))(mats),
            momentum=True,
        ),
        Family(
            "translation_momentum", "translation momentum",
            lambda th, p: noether.momentum_charge(noether.translation(1), th, p)[None],
            lambda th, p: noether.bias_sum(p, 1)[None],
            lambda th, p: bound(noether.translation(1), th, p)[None],
            momentum=True,
        ),
    ]


class Evaluator:
    """Every family of charges along a trajectory, compiled once and reused across runs."""

    def __init__(self, families: list[Family]):
        self.families = families
        self._values = {f.name: jax.jit(jax.vmap(lambda *a, f=f: (f.automatic(*a), f.closed(*a))))
                        for f in families}
        self._scales = {f.name: jax.jit(f.scale) for f in families}

    def __call__(self, params, momenta=None) -> dict[str, dict[str, np.ndarray]]:
        """`{name: {"automatic": (T, K), "closed": (T, K), "scale": (K,)}}` (scale at `t = 0`)
        for `params` (and `momenta`) pytrees with a leading time axis."""
        out = {}
        for family in self.families:
            args = (params,) if not family.momentum else (params, momenta)
            auto, closed = self._values[family.name](*args)
            first = jax.tree.map(lambda a: a[0], args)
            out[family.name] = {"automatic": np.asarray(auto), "closed": np.asarray(closed),
                                "scale": np.asarray(self._scales[family.name](*first))}
        return out


def drift(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """`max_i |Q_i(t) - Q_i(0)| / scale_i` at every time: `(T, K) -> (T,)`."""
    return np.max(np.abs(values - values[0]) / np.maximum(scale, np.finfo(float).tiny), axis=1)


def fitted_order(steps: np.ndarray, values: np.ndarray, floor: float = 1e-13) -> float | None:
    """Least-squares slope of `log values` against `log h` over the points above `floor`."""
    keep = values > floor
    if keep.sum() < 2:
        return None
    return float(np.polyfit(np.log(steps[keep]), np.log(values[keep]), 1)[0])


# --- the run --------------------------------------------------------------------------------


def padded_grid(t_final: float, steps: int, length: int) -> jnp.ndarray:
    """`steps` uniform steps to `t_final`, then `length - steps` zero steps (identity maps):
    every grid has `length + 1` times, so one compiled sweep serves every step count."""
    if steps > length:
        raise ValueError(f"cannot pad {steps} steps into a grid of {length}")
    ts = integrators.uniform_grid(t_final, steps)
    return jnp.concatenate([ts, jnp.full((length - steps,), t_final, ts.dtype)])


def _flow(field, x0, method: str, steps: int, t_final: float, theta, length: int | None = None) -> np.ndarray:
    """The states `x_0 .. x_steps` of `method` on `steps` uniform steps (grid padded to `length`)."""
    grid = padded_grid(t_final, steps, steps if length is None else length)
    system = integrators.discretise(field, grid, method)
    return np.asarray(integrators.forward(system, theta, x0))[: steps + 1]


def _summary(evaluated: dict) -> dict:
    """Per family: count, max relative drift, max |automatic - closed| and the initial values' range."""
    return {
        name: {
            "count": int(v["closed"].shape[1]),
            "max_relative_drift": float(drift(v["closed"], v["scale"]).max()),
            "max_abs_automatic_minus_closed": float(np.max(np.abs(v["automatic"] - v["closed"]))),
            "max_abs_initial": float(np.max(np.abs(v["closed"][0]))),
        }
        for name, v in evaluated.items()
    }


def run(config: NoetherConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measurements 1-4 of the module docstring, two figures and one table."""
    sizes = config.sizes()
    hidden, steps, t_final = sizes["hidden"], sizes["steps"], config.t_final
    images, labels = (part[:sizes["samples"]] for part in digits())
    loss = lagrangian.CrossEntropy(labels=jnp.asarray(labels))
    key_init, key_velocity = jax.random.split(jax.random.key(config.seed))
    ts = np.linspace(0.0, t_final, steps + 1)
    folder.log(f"digits: {sizes['samples']} samples; networks 64 -> {hidden} -> 10 (linear, relu); "
               f"T = {t_final}, fine steps {steps} (h = {t_final / steps:g})")
    results: dict = {"sizes": {**sizes, "lr_steps": list(sizes["lr_steps"])}}
    fields, starts, curves = {}, {}, {}

    length = max(steps, *sizes["lr_steps"])  # one grid length, so one compilation per (network, method)
    progress(1, TOTAL_STEPS, "gradient flow (RK4, fine steps): every charge over training")
    flows, evaluators = {}, {}
    for name in NETWORKS:
        net = lagrangian.MLP((64, hidden, 10), activation="identity" if name == "linear" else "relu", readout=True)
        params = net.init(key_init)
        field, x0 = lagrangian.GradientFlow.of(net, params, images, loss)
        fields[name], starts[name] = field, x0
        xs = _flow(field, x0, "rk4", steps, t_final, field.init(None), length)
        trajectory = jax.vmap(field.unflatten)(jnp.asarray(xs))
        evaluators[name] = Evaluator(gradient_flow_families(name, hidden))
        evaluated = evaluators[name](trajectory)
        risk = np.asarray(jax.jit(jax.vmap(field.risk))(jnp.asarray(xs)))
        flows[name] = {"evaluated": evaluated, "risk": risk}
        results.setdefault("gradient_flow", {})[name] = {
            "method": "rk4", "steps": steps, "parameters": field.parameters,
            "loss_initial": float(risk[0]), "loss_final": float(risk[-1]),
            "parameter_change": relative_error(xs[-1], xs[0]),
            "charges": _summary(evaluated),
        }
        folder.log(f"{name}: loss {risk[0]:.4f} -> {risk[-1]:.4f}; drifts " + ", ".join(
            f"{k} {v['max_relative_drift']:.2e}" for k, v in results["gradient_flow"][name]["charges"].items()))

    progress(2, TOTAL_STEPS, "finite learning rate: gradient descent (Euler) and RK4 drift against the step")
    sweep_steps = np.asarray(sizes["lr_steps"])
    rates = t_final / sweep_steps
    results["step_size"] = {"learning_rates": rates.tolist(), "steps": sweep_steps.tolist()}
    for name in NETWORKS:
        field = fields[name]
        initial = flows[name]["evaluated"]["rescaling"]
        final_charges = jax.jit(lambda x, field=field: noether.rescaling_charges(field.unflatten(x), 0))
        for method in ("euler", "rk4"):
            drifts = []
            for n in sweep_steps:
                xs = _flow(field, starts[name], method, int(n), t_final, field.init(None), length)
                change = np.asarray(final_charges(jnp.asarray(xs[-1]))) - initial["closed"][0]
                drifts.append(float(np.max(np.abs(change) / initial["scale"])))
            label = "gradient descent" if method == "euler" else "rk4"
            results["step_size"].setdefault(name, {})[method] = {
                "integrator": label, "rescaling_drift_at_t_final": drifts,
                "fitted_order": fitted_order(rates, np.asarray(drifts)),
            }
            folder.log(f"{name} {label}: drift {['%.2e' % d for d in drifts]}, fitted order "
                       f"{results['step_size'][name][method]['fitted_order']}")

    progress(3, TOTAL_STEPS, "a single gradient-descent step against its closed form eta^2/2 g . Omega g")
    field = fields["linear"]
    params0 = field.unflatten(starts["linear"])
    gradient = field.unflatten(-field.force(starts["linear"]))
    layer_gen = noether.rescaling(0)

    @jax.jit
    def single_step(eta):
        """`Q(theta - eta g) - Q(theta)` and its closed form `eta^2/2 g . delta(g)`."""
        stepped = jax.tree.map(lambda a, g: a - eta * g, params0, gradient)
        change = noether.gradient_flow_charge(layer_gen, stepped) - noether.gradient_flow_charge(layer_gen, params0)
        curvature = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(gradient), jax.tree.leaves(layer_gen(gradient))))
        return change, 0.5 * eta**2 * curvature

    one_step = []
    for eta in rates:
        change, closed = (float(v) for v in single_step(jnp.asarray(eta)))
        one_step.append({"learning_rate": float(eta), "change": change, "closed_form": closed,
                         "abs_difference": abs(change - closed)})
    results["single_step"] = {
        "charge": "rescaling (whole hidden layer), linear network",
        "steps": one_step,
        "max_abs_difference": max(s["abs_difference"] for s in one_step),
        "scale": float(noether.charge_scale(layer_gen, params0)),
    }

    progress(4, TOTAL_STEPS, "weight decay: exponential decay of the charges against exp(-2 lambda t)")
    lam = config.weight_decay
    xs = _flow(field, starts["linear"], "rk4", steps, t_final, {"weight_decay": jnp.asarray(lam)}, length)
    trajectory = jax.vmap(field.unflatten)(jnp.asarray(xs))
    q_layer = np.asarray(jax.jit(jax.vmap(lambda th: noether.gradient_flow_charge(layer_gen, th)))(trajectory))
    q_bias = np.asarray(jax.jit(jax.vmap(lambda th: noether.bias_sum(th, 1)))(trajectory))
    law_layer, law_bias = np.exp(-2 * lam * ts), np.exp(-lam * ts)
    curves["weight_decay"] = {"ratio_rescaling": q_layer / q_layer[0], "ratio_translation": q_bias / q_bias[0],
                              "law_rescaling": law_layer, "law_translation": law_bias}
    results["weight_decay"] = {
        "weight_decay": lam,
        "rescaling_ratio_final": float(q_layer[-1] / q_layer[0]),
        "rescaling_closed_form_final": float(law_layer[-1]),
        "rescaling_max_relative_deviation": float(np.max(np.abs(q_layer / q_layer[0] - law_layer) / law_layer)),
        "translation_ratio_final": float(q_bias[-1] / q_bias[0]),
        "translation_closed_form_final": float(law_bias[-1]),
        "translation_max_relative_deviation": float(np.max(np.abs(q_bias / q_bias[0] - law_bias) / law_bias)),
    }

    progress(5, TOTAL_STEPS, "momentum: leapfrog heavy ball, with and without friction")
    net = lagrangian.MLP((64, hidden, 10), activation="identity", readout=True)
    params = net.init(key_init)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key_velocity, len(leaves))
    velocity = jax.tree.unflatten(treedef, [config.velocity_scale * jax.random.normal(k, a.shape, a.dtype)
                                            for k, a in zip(keys, leaves)])
    heavy, z0 = lagrangian.HeavyBall.of(net, params, images, loss, velocity=velocity)
    momentum = {}
    conserved_charges = Evaluator(momentum_families(hidden))
    energy_fn = jax.jit(jax.vmap(lambda z: heavy.energy(z, heavy.init(None))))
    for gamma in (0.0, config.friction):
        zs = _flow(heavy, z0, "leapfrog", steps, t_final,
                   {"weight_decay": jnp.asarray(0.0), "friction": jnp.asarray(gamma)})
        qs, ps = heavy.split(jnp.asarray(zs))
        momentum[gamma] = {
            "charges": conserved_charges(qs, ps),
            "broken": evaluators["linear"](qs),
            "energy": np.asarray(energy_fn(jnp.asarray(zs))),
        }
    frictionless = momentum[0.0]
    energy = frictionless["energy"]
    results["momentum"] = {
        "integrator": "leapfrog", "steps": steps,
        "conserved": _summary(frictionless["charges"]),
        "broken": _summary(frictionless["broken"]),
        "energy_max_relative_deviation": float(np.max(np.abs(energy - energy[0])) / abs(energy[0])),
    }
    h = t_final / steps
    damped = momentum[config.friction]["charges"]["angular_momentum"]["closed"]
    pick = int(np.argmax(np.abs(damped[0])))
    ratio = damped[:, pick] / damped[0, pick]
    discrete = (1 - h * config.friction / 2) ** (2 * np.arange(steps + 1))
    continuous = np.exp(-config.friction * ts)
    curves["friction"] = {"ratio": ratio, "discrete": discrete, "continuous": continuous}
    results["friction"] = {
        "friction": config.friction,
        "charge": f"angular momentum component {pick} (largest at t = 0)",
        "ratio_final": float(ratio[-1]),
        "discrete_closed_form_final": float(discrete[-1]),
        "continuous_closed_form_final": float(continuous[-1]),
        "max_relative_deviation_from_discrete": float(np.max(np.abs(ratio - discrete) / discrete)),
        "relative_deviation_from_continuous_final": float(abs(ratio[-1] - continuous[-1]) / continuous[-1]),
        "first_order_prediction": float(t_final * h * config.friction**2 / 4),
    }

    progress(6, TOTAL_STEPS, "figures and table")
    folder.save_figure(conservation_figure(ts, flows), "charges_over_training")
    folder.save_figure(breaking_figure(ts, results, curves, momentum, config), "charge_breaking")
    folder.save_table(charges_table(results), "charges")
    progress(7, TOTAL_STEPS, "done")
    return results


# --- figures and table ----------------------------------------------------------------------

FLOOR = 1e-17


def conservation_figure(ts, flows):
    """(a) the per-unit rescaling charges of the linear network; (b) the relative drift of
    every charge under RK4 gradient flow; (c) the training loss."""
    fig, axes = plots.figure(ncols=3)
    rescaling = flows["linear"]["evaluated"]["rescaling"]["closed"]
    for i in range(rescaling.shape[1]):
        axes[0].plot(ts, rescaling[:, i], lw=1.0)
    axes[0].set_xlabel("$t$")
    axes[0].set_ylabel(r"$Q_i = \frac{1}{2}(|w^{in}_i|^2 + b_i^2 - |w^{out}_i|^2)$")
    axes[0].set_title("rescaling charges, linear net (RK4)")
    for name in NETWORKS:
        for family, v in flows[name]["evaluated"].items():
            style = "-" if name == "linear" else "--"
            axes[1].semilogy(ts, np.maximum(drift(v["closed"], v["scale"]), FLOOR), style, label=f"{name}: {family}")
    axes[1].axhline(np.finfo(float).eps, color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="float64 eps")
    axes[1].set_xlabel("$t$")
    axes[1].set_ylabel(r"$\max_i |Q_i(t) - Q_i(0)| / \mathrm{scale}_i$")
    axes[1].set_title("charge drift under gradient flow")
    axes[1].legend(loc="best")
    for name in NETWORKS:
        axes[2].plot(ts, flows[name]["risk"], label=name)
    axes[2].set_xlabel("$t$")
    axes[2].set_ylabel("training loss $R$")
    axes[2].set_title("the flow trains")
    axes[2].legend(loc="best")
    return fig


def breaking_figure(ts, results, curves, momentum, config):
    """(a) drift against the learning rate with fitted orders; (b) weight decay against
    `exp(-2 lambda t)`; (c) momentum: conserved isometry charges and broken rescaling
    charges; (d) friction: the angular momentum against its discrete and continuous laws."""
    fig, axes = plots.figure(ncols=4)
    rates = np.asarray(results["step_size"]["learning_rates"])
    for name in NETWORKS:
        for method, entry in results["step_size"][name].items():
            order = entry["fitted_order"]
            text = "n/a" if order is None else f"{order:.2f}"
            marker = "o-" if name == "linear" else "s--"
            axes[0].loglog(rates, np.maximum(entry["rescaling_drift_at_t_final"], FLOOR), marker,
                           label=f"{name}, {entry['integrator']} (order {text})")
    from matplotlib.ticker import NullFormatter

    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_xlabel(r"learning rate / step $\eta = T/N$")
    axes[0].set_ylabel("rescaling-charge drift at $T$")
    axes[0].set_title("finite steps break the charge")
    axes[0].legend(loc="best")
    wd = curves["weight_decay"]
    axes[1].plot(ts, wd["ratio_rescaling"], label="rescaling $Q/Q_0$")
    axes[1].plot(ts, wd["law_rescaling"], ":", color=plots.OKABE_ITO["black"], label=r"$e^{-2\lambda t}$")
    axes[1].plot(ts, wd["ratio_translation"], label="bias sum $Q/Q_0$")
    axes[1].plot(ts, wd["law_translation"], "--", color=plots.OKABE_ITO["black"], label=r"$e^{-\lambda t}$")
    axes[1].set_xlabel("$t$")
    axes[1].set_ylabel("charge / initial charge")
    axes[1].set_title(rf"weight decay $\lambda = {config.weight_decay:g}$")
    axes[1].legend(loc="best")
    free = momentum[0.0]
    for family, v in free["charges"].items():
        axes[2].semilogy(ts, np.maximum(drift(v["closed"], v["scale"]), FLOOR), label=f"conserved: {family}")
    for family, v in free["broken"].items():
        axes[2].semilogy(ts, np.maximum(drift(v["closed"], v["scale"]), FLOOR), "--", label=f"broken: {family}")
    axes[2].axhline(np.finfo(float).eps, color=plots.OKABE_ITO["black"], ls=":", lw=0.8)
    axes[2].set_xlabel("$t$")
    axes[2].set_ylabel("relative drift")
    axes[2].set_title("momentum flow (leapfrog, $\\gamma = 0$)")
    axes[2].legend(loc="best")
    fr = curves["friction"]
    axes[3].plot(ts, fr["ratio"], label=r"angular momentum $Q_H/Q_H(0)$")
    axes[3].plot(ts, fr["discrete"], ":", color=plots.OKABE_ITO["black"], label=r"$(1 - h\gamma/2)^{2k}$")
    axes[3].plot(ts, fr["continuous"], "--", color=plots.OKABE_ITO["vermillion"], label=r"$e^{-\gamma t}$")
    axes[3].set_xlabel("$t$")
    axes[3].set_ylabel("charge / initial charge")
    axes[3].set_title(rf"friction $\gamma = {config.friction:g}$")
    axes[3].legend(loc="best")
    return fig


def charges_table(results) -> Table:
    """Every charge: flow, integrator, count, max relative drift, |automatic - closed form|."""
    rows = []
    for name in NETWORKS:
        for family, s in results["gradient_flow"][name]["charges"].items():
            rows.append([name, "gradient flow", "rk4", family, s["count"], s["max_relative_drift"],
                         s["max_abs_automatic_minus_closed"]])
    for kind in ("conserved", "broken"):
        for family, s in results["momentum"][kind].items():
            rows.append(["linear", f"momentum ({kind})", "leapfrog", family, s["count"], s["max_relative_drift"],
                         s["max_abs_automatic_minus_closed"]])
    return Table(
        columns=["network", "flow", "integrator", "charge", "count", "max rel. drift", "|auto - closed|"],
        rows=rows,
        caption=("Noether charges on digits: drift relative to each charge's Cauchy-Schwarz bound over "
                 "training, and the automatic charge against its closed form (float64)"),
        label="tab:noether-charges",
    )


EXPERIMENT = Experiment(
    name="noether-charges",
    description="Noether charges of training on digits: conserved by gradient flow, broken by learning rate, "
                "weight decay and momentum",
    config=NoetherConfig(),
    run=run,
    headline=(
        "gradient_flow.linear.charges.rescaling.max_relative_drift",
        "gradient_flow.linear.charges.balance.max_relative_drift",
        "step_size.linear.euler.fitted_order",
        "momentum.conserved.angular_momentum.max_relative_drift",
        "weight_decay.rescaling_max_relative_deviation",
    ),
    figures={"noether_charges_charges_over_training": "charges_over_training",
             "noether_charges_charge_breaking": "charge_breaking"},
)
