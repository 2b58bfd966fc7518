"""Quickstart: exact gradients of a 2-D neural ODE from the least-action sweep.

System: `dx/dt = f(x) = tanh(W x + b)` in the plane, discretised on a uniform
grid of `steps` steps up to `t_final` by the explicit Runge-Kutta `method`
(forward Euler: `x_{k+1} = x_k + h tanh(W x_k + b)`, a ResNet with shared
weights). A batch of `batch` initial points on the circle of radius 1.5 is
flowed forward; the loss asks each to arrive at its initial point turned a
quarter turn anticlockwise,

    l = (1/B) sum_b 0.5 |x_N^b - R x_0^b|^2,    R = [[0, -1], [1, 0]].

The least-action sweep solves the stationarity conditions of the discrete
action: the forward field `x_k`, the conjugate field `p_k = dl/dx_k` and
`dl/dtheta = sum_k (dPhi_k/dtheta)^T p_{k+1}`. The experiment checks it against
`jax.grad` through the whole forward pass (the reference) and measures what
the stationary point must conserve:

- the bilinear invariant `sum_b p_k^b . v_k^b` for a random tangent `v`
  (`v_{k+1} = (dPhi_k/dx_k) v_k`): constant in `k` to rounding, and equal to
  the directional derivative of `l` along `v_0`;
- the energy `H = p . f(x)` along one trajectory: conserved by the continuous
  flow, so its drift on the grid measures the discretisation, not an error
  of the gradient;
- the residuals of the stationarity conditions of the discrete action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..harness.metrics import compare_gradients, relative
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

RADIUS = 1.5
"""Radius of the circle of initial points."""

QUARTER_TURN = np.array([[0.0, -1.0], [1.0, 0.0]])


@dataclass(frozen=True)
class QuickstartConfig:
    """Defaults of the quickstart experiment.

    seed: PRNG seed of the weights `theta` and of the tangent `v_0`.
    dim: state dimension; the phase portrait needs 2.
    steps: number of layers / time steps `N`.
    t_final: horizon `T` (step `h = T / N`).
    batch: number of initial points `B`.
    scale: weight scale of `W` (and `0.1 * scale` of `b`).
    method: explicit Runge-Kutta tableau (`euler` is a ResNet with shared weights).
    """

    seed: int = 0
    dim: int = 2
    steps: int = 50
    t_final: float = 5.0
    batch: int = 16
    scale: float = 2.0
    method: str = "euler"

    def __post_init__(self):
        if self.dim != 2:
            raise ValueError(f"config key 'dim' must be 2 (the phase portrait is planar); got {self.dim}")
        if self.steps < 1:
            raise ValueError(f"config key 'steps' must be >= 1; got {self.steps}")
        if self.batch < 1:
            raise ValueError(f"config key 'batch' must be >= 1; got {self.batch}")
        if not self.t_final > 0:
            raise ValueError(f"config key 't_final' must be > 0; got {self.t_final}")
        try:
            integrators.tableau(self.method)
        except ValueError as error:
            raise ValueError(f"config key 'method': {error}") from None


def initial_points(batch: int, radius: float = RADIUS) -> np.ndarray:
    """`batch` points evenly spaced on the circle of `radius`, shape `(B, 2)`."""
    angles = 2 * np.pi * np.arange(batch) / batch
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


class Measurement(NamedTuple):
    """The numbers of a quickstart run (`results`) and the arrays its figure draws."""

    results: dict
    field: lagrangian.NeuralODE
    theta: dict
    ts: np.ndarray
    xs: np.ndarray
    ps: np.ndarray
    bilinear: np.ndarray
    energy: np.ndarray


TOTAL_STEPS = 6


def measure(config: QuickstartConfig, log: Callable[[str], None], progress: Progress) -> Measurement:
    """Least-action gradient of the 2-D neural ODE against `jax.grad`, and the invariants
    (progress steps 1-3 of `TOTAL_STEPS`)."""
    total = TOTAL_STEPS
    key_theta, key_tangent = jax.random.split(jax.random.key(config.seed))
    field = lagrangian.NeuralODE(state_dim=config.dim, scale=config.scale)
    ts = integrators.uniform_grid(config.t_final, config.steps)
    system = integrators.discretise(field, ts, config.method)
    theta = system.init(key_theta)
    x0 = jnp.asarray(initial_points(config.batch))
    loss = lagrangian.SquaredError(target=x0 @ jnp.asarray(QUARTER_TURN).T)
    log(f"system: NeuralODE(dim={config.dim}, scale={config.scale}) on {config.steps} "
        f"{config.method} steps to t={config.t_final}; batch {config.batch}")

    progress(1, total, "least-action sweep (forward field x, conjugate field p, gradient)")
    sol = integrators.sweep(system, theta, x0, loss)

    progress(2, total, "reference gradient: jax.grad through the whole forward pass")
    reference = jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)
    gradient = compare_gradients(sol.grad, reference)
    log(f"gradient: relative L2 error {gradient['relative_l2_error']:.3e}, "
        f"max abs error {gradient['max_abs_error']:.3e}, cosine {gradient['cosine_similarity']:.16f}")

    progress(3, total, "invariants: bilinear p.v, energy H = p.f, stationarity residuals")
    v0 = jax.random.normal(key_tangent, x0.shape, x0.dtype)
    vs = integrators.tangent_sweep(system, theta, sol.xs, v0)
    bilinear = np.asarray(lagrangian.bilinear_invariant(sol.ps, vs))
    jvp_reference = float(jax.jvp(lambda x: loss(integrators.forward(system, theta, x)[-1]), (x0,), (v0,))[1])
    h_sample = np.asarray(lagrangian.energy(field, ts, sol.xs[:, 0], sol.ps[:, 0], theta))
    residuals = lagrangian.stationarity_residuals(system, theta, sol.xs, sol.ps, loss)
    max_forward = max(float(jnp.max(jnp.abs(r))) for r in residuals["forward"])
    max_conjugate = max(float(jnp.max(jnp.abs(r))) for r in residuals["conjugate"])
    p_scale = float(jnp.max(jnp.abs(sol.ps)))

    results = {
        "loss": float(sol.loss),
        "gradient": gradient,
        "bilinear_invariant": {
            "initial": float(bilinear[0]),
            "final": float(bilinear[-1]),
            "max_relative_deviation": float(np.max(np.abs(bilinear - bilinear[0])) / abs(bilinear[0])),
            "jvp_reference": jvp_reference,
            "relative_error_vs_jvp": relative(abs(bilinear[0] - jvp_reference), abs(jvp_reference)),
        },
        "energy": {
            "sample": 0,
            "initial": float(h_sample[0]),
            "final": float(h_sample[-1]),
            "max_relative_deviation": float(np.max(np.abs(h_sample - h_sample[0])) / abs(h_sample[0])),
        },
        "stationarity": {
            "max_forward_residual": max_forward,
            "max_conjugate_residual": max_conjugate,
            "max_residual": max(max_forward, max_conjugate),
            "max_abs_p": p_scale,
        },
        "trajectory": {
            "step_size": float(config.t_final / config.steps),
            "x_final_mean_norm": float(jnp.mean(jnp.linalg.norm(sol.xs[-1], axis=-1))),
            "p0_mean_norm": float(jnp.mean(jnp.linalg.norm(sol.ps[0], axis=-1))),
        },
    }
    log(f"bilinear invariant spread {results['bilinear_invariant']['max_relative_deviation']:.3e}; "
        f"energy drift {results['energy']['max_relative_deviation']:.3e} (discretisation, h = "
        f"{results['trajectory']['step_size']:g}); stationarity residual {results['stationarity']['max_residual']:.3e}")
    return Measurement(results, field, theta, np.asarray(ts), np.asarray(sol.xs), np.asarray(sol.ps),
                       bilinear, h_sample)


def run(config: QuickstartConfig, folder: RunFolder, progress: Progress) -> dict:
    """`measure`, then the phase-space figure and the gradient-check table."""
    m = measure(config, folder.log, progress)
    progress(4, TOTAL_STEPS, "figure: phase space of x and p")
    folder.save_figure(phase_space_figure(m.field, m.theta, m.ts, m.xs, m.ps, m.bilinear, m.energy), "phase_space")
    progress(5, TOTAL_STEPS, "table: gradient check per parameter")
    folder.save_table(gradient_table(m.results["gradient"], config), "gradient_check")
    progress(6, TOTAL_STEPS, "done")
    return m.results


def phase_space_figure(field, theta, ts, xs, ps, bilinear, h_sample):
    """Three panels.

    1. The forward field `x_k`, `k = 0 -> N`, over the streamlines of `f`.
    2. The conjugate field `p_k`, drawn in the order it is swept, `k = N -> 0`
       from `p_N = grad l(x_N)`, over the streamlines of the backward-time
       conjugate flow `-dp/dt = J^T p`, `J = df/dx` taken at the centre of the
       initial circle (where the flow is least saturated).
    3. The relative deviation of the energy `H = p . f` (sample 0) and of the
       bilinear invariant from their values at `t = 0`: the bilinear invariant is
       kept by the discrete map to rounding; `H` is conserved by the continuous
       flow only, so on the grid it drifts with the step `h`.
    """
    fig, axes = plots.figure(ncols=3)
    f_points = jax.jit(jax.vmap(lambda x: field(0.0, x, theta)))
    plots.phase_portrait(axes[0], lambda pts: np.asarray(f_points(jnp.asarray(pts))), np.asarray(xs),
                         title=r"forward field $x_k$ over $\dot x = f(x)$", markers=("$x_0$", "$x_N$"))
    jacobian = np.asarray(jax.jacfwd(lambda x: field(0.0, x, theta))(np.zeros(2, xs.dtype)))
    plots.phase_portrait(axes[1], lambda pts: pts @ jacobian, np.asarray(ps)[::-1], labels=("$p_1$", "$p_2$"),
                         title=r"conjugate field $p_k$ over $-\dot p = J(0)^\top p$",
                         markers=(r"$p_N = \nabla l(x_N)$", "$p_0$"))
    plots.relative_deviation(
        axes[2], np.asarray(ts),
        {r"energy $H = p\cdot f$ (sample 0): drifts with $h$": h_sample,
         r"bilinear $\sum_b p_k\cdot v_k$: exact on the grid": bilinear},
        title=r"invariants: deviation from $t = 0$",
    )
    return fig


def gradient_table(gradient: dict, config: QuickstartConfig) -> Table:
    """Least-action gradient against `jax.grad`, per parameter leaf and in total."""
    rows = [
        [name, "x".join(map(str, leaf["shape"])) or "scalar", leaf["norm_reference"],
         leaf["relative_l2_error"], leaf["max_abs_error"]]
        for name, leaf in gradient["per_leaf"].items()
    ]
    rows.append(["total", f"{sum(int(np.prod(leaf['shape'])) for leaf in gradient['per_leaf'].values())} entries",
                 gradient["norm_reference"], gradient["relative_l2_error"], gradient["max_abs_error"]])
    return Table(
        columns=["parameter", "shape", "norm of jax.grad", "rel. L2 error", "max abs error"],
        rows=rows,
        caption=(f"Least-action gradient vs jax.grad: 2-D neural ODE, {config.steps} {config.method} "
                 f"steps, batch {config.batch}, float64"),
        label="tab:quickstart-gradient-check",
    )


EXPERIMENT = Experiment(
    name="quickstart",
    description="2-D neural ODE: least-action gradient vs jax.grad, phase portraits of x and p, invariants",
    config=QuickstartConfig(),
    run=run,
    headline=(
        "gradient.relative_l2_error",
        "gradient.max_abs_error",
        "gradient.cosine_similarity",
        "bilinear_invariant.max_relative_deviation",
        "stationarity.max_residual",
        "loss",
    ),
    figures={"quickstart_phase_space": "phase_space"},
)
