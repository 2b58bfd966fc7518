"""Phase-space volume (Liouville) of the doubled system and of momentum training,
and its loss under friction.

The flow-map Jacobian `M_k = dz_k/dz_0` of every step is the tangent sweep of
the discretised flow (`integrators.tangent_sweep`, `jax.jvp` of one step map)
started from the identity; `log det M_k` is computed with `slogdet`.

1. The doubled system (docs/design.md 2.1): `z = (x, p)`, Hamilton's equations of
   `H = p . f(x)` for a neural ODE `f(x) = tanh(W x + b)` in `dim` dimensions
   (`lagrangian.HamiltonFlow`). The continuous flow has divergence
   `tr(df/dx) - tr(df/dx) = 0`, so `det M(t) = 1`. Symplectic Gauss-Legendre
   steps keep it to rounding; explicit Runge-Kutta steps (Heun, RK4) do not,
   and their `log det M` drifts at the method's order.
2. Momentum training as a Hamiltonian flow: heavy ball `dq/dt = v`,
   `dv/dt = -grad R(q)` for a `4 -> hidden -> 3` tanh network with a softmax
   readout on three Gaussian blobs (`lagrangian.HeavyBall`), `H = |v|^2/2 + R(q)`.
   Leapfrog and Yoshida-4 are compositions of symplectic shears: `det M = 1` to
   rounding and `M^T J M = J`; RK4 is not symplectic.
3. Friction `dv/dt = ... - gamma v`: Liouville's formula `d log det M/dt = div F
   = -gamma n` (`n` parameters) gives `log det M(t) = -gamma n t`. Each leapfrog
   kick `v -> (1 - c h gamma) v - c h grad R(q)` has determinant
   `(1 - c h gamma)^n` and each drift 1, so the discrete map loses exactly
   `n sum_kicks log(1 - c h gamma)` per step, which is `-gamma n h + O(h^2)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

QUICK_SIZES = {"steps": 40, "train_steps": 80, "samples": 32, "hidden": 4}
"""What the `quick` preset runs instead of `steps`, `train_steps`, `samples`, `hidden`."""

DOUBLED_METHODS = ("gauss-legendre-1", "gauss-legendre-2", "heun", "rk4")
MOMENTUM_METHODS = ("leapfrog", "yoshida4", "rk4")
TOTAL_STEPS = 5


def _floats(text: str, key: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"config key {key!r} must be comma-separated numbers; got {text!r}") from None
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"config key {key!r} needs positive finite numbers; got {text!r}")
    return values


@dataclass(frozen=True)
class PhaseVolumeConfig:
    """Defaults of the phase-volume experiment.

    seed: seed of the neural ODE, the network, the data and the initial velocity.
    dim: state dimension `n` of the neural ODE (the doubled system has `2n`).
    t_final: horizon of the doubled system.
    steps: steps of the doubled system.
    samples: training points (three Gaussian blobs in 4 dimensions).
    hidden: hidden width of the trained network.
    train_time: horizon of momentum training.
    train_steps: steps of momentum training.
    frictions: comma-separated friction coefficients `gamma > 0`.
    quick: the small preset: `steps`, `train_steps`, `samples`, `hidden` become `QUICK_SIZES`.
    """

    seed: int = 0
    dim: int = 4
    t_final: float = 4.0
    steps: int = 200
    samples: int = 96
    hidden: int = 8
    train_time: float = 4.0
    train_steps: int = 400
    frictions: str = "0.1,0.5"
    quick: bool = False

    def __post_init__(self):
        _floats(self.frictions, "frictions")
        if self.quick:
            defaults = PhaseVolumeConfig.__dataclass_fields__
            changed = [k for k in QUICK_SIZES if getattr(self, k) != defaults[k].default]
            if changed:
                raise ValueError(f"config key 'quick' replaces {', '.join(QUICK_SIZES)}; "
                                 f"do not also set {', '.join(changed)}")
        for key in ("dim", "steps", "samples", "hidden", "train_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"config key {key!r} must be >= 1; got {getattr(self, key)}")
        for key in ("t_final", "train_time"):
            if not getattr(self, key) > 0:
                raise ValueError(f"config key {key!r} must be > 0; got {getattr(self, key)}")

    def sizes(self) -> dict:
        """The sizes actually run (the quick ones when `quick`)."""
        return dict(QUICK_SIZES) if self.quick else {k: getattr(self, k) for k in QUICK_SIZES}


QUICK = PhaseVolumeConfig(quick=True)


def blobs(key, samples: int, dim: int = 4, classes: int = 3) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`samples` points from `classes` unit Gaussians centred at `2 e_c`: `(X (samples, dim), labels)`."""
    kx, ky = jax.random.split(key)
    labels = jax.random.randint(ky, (samples,), 0, classes)
    centres = 2.0 * jnp.eye(classes, dim)
    return centres[labels] + jax.random.normal(kx, (samples, dim)), labels


def flow_jacobians(system, theta, z0) -> jnp.ndarray:
    """`M_k = dz_k/dz_0`, `k = 0..N`, shape `(N+1, m, m)`: the tangent sweep of the basis vectors."""
    zs = integrators.forward(system, theta, z0)
    basis = jnp.eye(z0.shape[0], dtype=z0.dtype)
    vs = jax.vmap(lambda v: integrators.tangent_sweep(system, theta, zs, v))(basis)  # (m, N+1, m)
    return jnp.transpose(vs, (1, 2, 0))


def splitting_log_volume_per_step(method: str, h: float, friction: float, velocities: int) -> float:
    """`n sum_kicks log(1 - c h gamma)`: the exact log-volume change of one damped splitting step."""
    steps = integrators.tableau(method).steps
    return velocities * sum(float(np.log1p(-c * h * friction)) for kind, c in steps if kind == "kick")


def _volumes(jacobians) -> tuple[np.ndarray, float]:
    logdet = np.asarray(jax.vmap(lagrangian.log_volume)(jacobians))
    return logdet, float(lagrangian.symplecticity_defect(jacobians[-1]))


def run(config: PhaseVolumeConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measurements 1-3 of the module docstring, one figure and one table."""
    sizes = config.sizes()
    k_ode, k_net, k_data, k_vel, k_z = jax.random.split(jax.random.key(config.seed), 5)
    results: dict = {"sizes": sizes}
    curves: dict = {}

    progress(1, TOTAL_STEPS, "doubled system (x, p): flow-map Jacobians for each method")
    ode = lagrangian.NeuralODE(state_dim=config.dim, scale=1.5)
    theta = ode.init(k_ode)
    doubled = lagrangian.HamiltonFlow(ode)
    z0 = jax.random.normal(k_z, (2 * config.dim,))
    ts = np.linspace(0.0, config.t_final, sizes["steps"] + 1)
    results["doubled"] = {"dimension": 2 * config.dim, "steps": sizes["steps"], "t_final": config.t_final,
                          "methods": {}}
    curves["doubled"] = {}
    for method in DOUBLED_METHODS:
        system = integrators.discretise(doubled, jnp.asarray(ts), method)
        logdet, defect = _volumes(flow_jacobians(system, theta, z0))
        curves["doubled"][method] = logdet
        tab = integrators.tableau(method)
        results["doubled"]["methods"][method] = {
            "symplectic": bool(tab.symplectic), "order": tab.order,
            "max_abs_log_det": float(np.max(np.abs(logdet))), "log_det_final": float(logdet[-1]),
            "symplecticity_defect_final": defect,
        }
        folder.log(f"doubled {method}: max |log det M| {np.max(np.abs(logdet)):.3e}, "
                   f"|M^T J M - J| {defect:.3e}")

    progress(2, TOTAL_STEPS, "momentum training without friction: leapfrog, Yoshida-4, RK4")
    x, labels = blobs(k_data, sizes["samples"])
    net = lagrangian.MLP((4, sizes["hidden"], 3), activation="tanh", readout=True)
    params = net.init(k_net)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(k_vel, len(leaves))
    velocity = jax.tree.unflatten(treedef, [0.3 * jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)])
    heavy, start = lagrangian.HeavyBall.of(net, params, x, lagrangian.CrossEntropy(labels=labels), velocity=velocity)
    n = heavy.parameters
    train_ts = np.linspace(0.0, config.train_time, sizes["train_steps"] + 1)
    h = config.train_time / sizes["train_steps"]
    results["momentum"] = {"parameters": n, "phase_space_dimension": 2 * n, "steps": sizes["train_steps"],
                           "train_time": config.train_time, "methods": {}}
    curves["momentum"] = {}

    def theta_of(gamma):
        return {"weight_decay": jnp.asarray(0.0), "friction": jnp.asarray(gamma)}

    for method in MOMENTUM_METHODS:
        system = integrators.discretise(heavy, jnp.asarray(train_ts), method)
        logdet, defect = _volumes(flow_jacobians(system, theta_of(0.0), start))
        curves["momentum"][method] = logdet
        zs = integrators.forward(system, theta_of(0.0), start)
        energy = np.asarray(jax.vmap(lambda z: heavy.energy(z, theta_of(0.0)))(zs))
        results["momentum"]["methods"][method] = {
            "max_abs_log_det": float(np.max(np.abs(logdet))), "log_det_final": float(logdet[-1]),
            "symplecticity_defect_final": defect,
            "energy_max_relative_deviation": float(np.max(np.abs(energy - energy[0])) / abs(energy[0])),
        }
        folder.log(f"momentum {method}: max |log det M| {np.max(np.abs(logdet)):.3e}, |M^T J M - J| {defect:.3e}")

    progress(3, TOTAL_STEPS, "friction: volume loss against -gamma n t and the exact discrete law")
    results["friction"] = {}
    curves["friction"] = {}
    for gamma in _floats(config.frictions, "frictions"):
        system = integrators.discretise(heavy, jnp.asarray(train_ts), "leapfrog")
        logdet, _ = _volumes(flow_jacobians(system, theta_of(gamma), start))
        discrete = splitting_log_volume_per_step("leapfrog", h, gamma, n) * np.arange(sizes["train_steps"] + 1)
        continuous = np.asarray(lagrangian.friction_log_volume(gamma, n, train_ts))
        curves["friction"][gamma] = {"measured": logdet, "discrete": discrete, "continuous": continuous}
        results["friction"][f"{gamma:g}"] = {
            "friction": gamma, "method": "leapfrog",
            "log_det_final": float(logdet[-1]), "discrete_closed_form_final": float(discrete[-1]),
            "continuous_closed_form_final": float(continuous[-1]),
            "max_abs_deviation_from_discrete": float(np.max(np.abs(logdet - discrete))),
            "relative_deviation_from_continuous_final": float(abs(logdet[-1] - continuous[-1]) / abs(continuous[-1])),
            # 2n log(1 - h gamma/2) = -n h gamma (1 + h gamma/4 + ...): relative excess h gamma/4
            "first_order_prediction": float(h * gamma / 4),
        }
        folder.log(f"friction {gamma:g}: log det {logdet[-1]:.6f}, discrete {discrete[-1]:.6f}, "
                   f"continuous {continuous[-1]:.6f}")

    progress(4, TOTAL_STEPS, "figure and table")
    folder.save_figure(volume_figure(ts, train_ts, curves, n), "log_volume")
    folder.save_table(volume_table(results), "phase_volume")
    progress(5, TOTAL_STEPS, "done")
    return results


FLOOR = 1e-17


def volume_figure(ts, train_ts, curves, n):
    """(a) `|log det M|` of the doubled system per method; (b) the same for frictionless
    momentum training; (c) `log det M` under friction against its closed forms."""
    fig, axes = plots.figure(ncols=3)
    for method, logdet in curves["doubled"].items():
        axes[0].semilogy(ts, np.maximum(np.abs(logdet), FLOOR), label=method)
    axes[0].axhline(np.finfo(float).eps, color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="float64 eps")
    axes[0].set_xlabel("$t$")
    axes[0].set_ylabel(r"$|\log\det M(t)|$")
    axes[0].set_title(r"doubled system $(x, p)$, $H = p\cdot f(x)$")
    axes[0].legend(loc="best")
    for method, logdet in curves["momentum"].items():
        axes[1].semilogy(train_ts, np.maximum(np.abs(logdet), FLOOR), label=method)
    axes[1].axhline(np.finfo(float).eps, color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="float64 eps")
    axes[1].set_xlabel("$t$")
    axes[1].set_ylabel(r"$|\log\det M(t)|$")
    axes[1].set_title(rf"momentum training, $\gamma = 0$ ($2n = {2 * n}$)")
    axes[1].legend(loc="best")
    for gamma, c in curves["friction"].items():
        line, = axes[2].plot(train_ts, c["measured"], label=rf"leapfrog, $\gamma = {gamma:g}$")
        axes[2].plot(train_ts, c["continuous"], "--", color=line.get_color(), lw=0.9,
                     label=rf"$-\gamma n t$")
        every = max(1, len(train_ts) // 12)
        axes[2].plot(train_ts[::every], c["discrete"][::every], "x", color=plots.OKABE_ITO["black"], ms=4)
    axes[2].plot([], [], "x", color=plots.OKABE_ITO["black"], label=r"$k\,n\sum\log(1 - c h\gamma)$")
    axes[2].set_xlabel("$t$")
    axes[2].set_ylabel(r"$\log\det M(t)$")
    axes[2].set_title("friction contracts phase space")
    axes[2].legend(loc="best")
    return fig


def volume_table(results) -> Table:
    """One row per system and method: `max |log det M|` and the symplecticity defect."""
    rows = []
    for method, r in results["doubled"]["methods"].items():
        rows.append(["doubled neural ODE", method, "yes" if r["symplectic"] else "no", r["max_abs_log_det"],
                     r["symplecticity_defect_final"]])
    for method, r in results["momentum"]["methods"].items():
        rows.append(["heavy ball, gamma = 0", method, "no" if method == "rk4" else "yes", r["max_abs_log_det"],
                     r["symplecticity_defect_final"]])
    for key, r in results["friction"].items():
        rows.append([f"heavy ball, gamma = {key}", "leapfrog", "conformal",
                     r["max_abs_deviation_from_discrete"], "-"])
    return Table(
        columns=["system", "method", "symplectic", "max |log det M| (friction: vs closed form)",
                 "|M^T J M - J| at T"],
        rows=rows,
        caption="Liouville: phase-space volume of flow maps (float64); under friction the deviation "
                "of log det M from the exact discrete law",
        label="tab:phase-volume",
    )


EXPERIMENT = Experiment(
    name="phase-volume",
    description="Liouville: det M = 1 for the doubled system and momentum training; volume loss under friction",
    config=PhaseVolumeConfig(),
    run=run,
    headline=(
        "doubled.methods.gauss-legendre-2.max_abs_log_det",
        "doubled.methods.rk4.max_abs_log_det",
        "momentum.methods.leapfrog.max_abs_log_det",
        "momentum.methods.leapfrog.symplecticity_defect_final",
    ),
    figures={"phase_volume_log_volume": "log_volume"},
)
