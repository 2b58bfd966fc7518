"""Predictive coding (PC) on the layered energy: three readings of the same prediction errors.

Prediction errors `e_{k+1} = x_{k+1} - Phi_k(x_k)`, energy `F = sum_k w_k 0.5 |e_{k+1}|^2`
with the input clamped (`inference`). The weight update of PC is `-dF/dtheta_k =
w_k (dPhi_k/dtheta_k)^T e_{k+1}` at the inference equilibrium (Whittington & Bogacz 2017,
the learning rule of their predictive-coding network, written for a general layer map), so
the estimate of `dl/dtheta` is `dF/dtheta / w_{N-1}`.

- `clamped`: the output clamped to the target, `x_N = y`, hidden states relaxed to the
  equilibrium (Whittington & Bogacz 2017; the strong-nudge limit of EP): all precisions 1.
  A different objective from backprop: its error does not vanish (reported, not exact).
- `clamped(..., precision=gamma)`: the weak-output-precision variant, `w_{N-1} = gamma`,
  estimate `dF/dtheta / gamma`. For `l = 0.5 |x_N - y|^2` minimising `x_N` out of
  `F_beta = E + beta l` gives exactly this energy with `gamma = beta / (1 + beta)`: the
  hidden equilibrium is that of one-sided EP at `beta = gamma / (1 - gamma)` and the estimate
  is `(1 + beta)` times EP's, error `O(gamma)` (Whittington & Bogacz's limit of a small
  output precision).
- `fixed_prediction`: the fixed-prediction assumption (Millidge, Tschantz & Buckley 2022,
  "Predictive coding approximates backprop along arbitrary computation graphs"; exact form
  Song et al. 2020): the predictions `mu_{k+1} = Phi_k(mu_k)` stay at the forward pass, the
  output error is `e_N = -grad l(mu_N)` (for the squared error: the output clamped to `y`),
  and the value nodes relax by `dx_k/dtau = -e_k + J_k^T e_{k+1}` with `J_k` at `mu_k`. Its
  equilibrium is `e_k = -p_k`, so the update equals backprop exactly; Jacobi steps
  (`eta = 1`) reach it after `N - 1` iterations.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

import integrators
import lagrangian

from . import inference


class PCEstimate(NamedTuple):
    """A PC gradient estimate with the Newton iterations and stationarity residual of its inference,
    and whether the inference reached its tolerance (`inference.Equilibrium`)."""

    grad: PyTree
    iterations: Array
    residual: Array
    converged: Array


def squared_error_target(loss: lagrangian.Loss, batch: int, dim: int) -> Array:
    """The target `y` `(B, n_N)` of a squared-error loss (what clamped PC clamps the output to);
    a `ValueError` for any other loss."""
    if not isinstance(loss, lagrangian.SquaredError):
        raise ValueError(f"clamped predictive coding needs a squared-error loss (a target to clamp to); "
                         f"got {type(loss).__name__}")
    target = jnp.zeros((dim,)) if loss.target is None else jnp.asarray(loss.target)
    return jnp.broadcast_to(target, (batch, dim))


def precisions(depth: int, gamma: float) -> tuple[float, ...]:
    """Layer weights `(1, ..., 1, gamma)`: output precision `gamma`."""
    return (1.0,) * (depth - 1) + (gamma,)


def clamped(system: lagrangian.LayerMaps, theta: PyTree, x0: Array, loss: lagrangian.Loss,
            precision: float = 1.0, tol: float = 1e-13, max_iterations: int = 40,
            solver: str = "newton", on_unconverged: str = "warn") -> PCEstimate:
    """PC with the output clamped to the squared-error target: `dF/dtheta / gamma` at the
    equilibrium of the hidden states, output precision `gamma`, by `inference.newton` (or,
    for `gamma << 1`, the Hessian-free `inference.sweeps`). `x0` `(B, n_0)`; returns the estimate
    (structure of `theta`), the iterations and the stationarity residual. Inference that stops at
    `max_iterations` before `tol` warns, raises or is only recorded, as `on_unconverged` says
    (`inference.report_convergence`).

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> est = clamped(net, theta, jnp.ones((1, 2)), lagrangian.SquaredError(), precision=1e-6)
        >>> est.grad[0]["W"].shape
        (3, 2)
    """
    if solver not in ("newton", "sweeps"):
        raise ValueError(f"unknown equilibrium solver {solver!r}; choose newton or sweeps")
    if isinstance(precision, (int, float)) and not 0 < precision <= 1:
        raise ValueError(f"output precision must lie in (0, 1]; got {precision}")
    x0 = jnp.asarray(x0)
    n_out = jax.eval_shape(lambda: integrators.output(system, theta, x0)).shape[-1]
    target = squared_error_target(loss, x0.shape[0], n_out)
    weights = precisions(system.depth, precision)
    eq = getattr(inference, solver)(system, theta, x0, clamp=target, weights=weights, tol=tol,
                                    max_iterations=max_iterations, on_unconverged=on_unconverged)
    grad = inference.energy_theta_gradient(system, theta, eq.xs, weights)
    return PCEstimate(jax.tree.map(lambda g: g / precision, grad), eq.iterations, eq.residual, eq.converged)


def clamped_relaxation_curve(system, theta, x0, loss, precision, iterations, eta):
    """The clamped-PC estimate after each of `iterations` steps of `dx/dtau = -dF/dx` (step `eta`)."""
    n_out = jax.eval_shape(lambda: integrators.output(system, theta, x0)).shape[-1]
    target = squared_error_target(loss, x0.shape[0], n_out)
    weights = precisions(system.depth, precision)
    record = lambda xs: jax.tree.map(lambda g: g / precision,
                                     inference.energy_theta_gradient(system, theta, xs, weights))
    return inference.descend(system, theta, x0, None, 0.0, iterations, eta, record, clamp=target, weights=weights)


def _fixed_prediction_errors(system, theta, mus, loss, iterations, eta, nudge):
    """Errors `e_1..e_N` after `iterations` relaxation steps with predictions fixed at `mus`."""
    n = system.depth
    _, grad_l = loss.grad(mus[-1])
    batch = mus[0].shape[0]
    e_out = -nudge * grad_l * batch  # loss.grad is batch-averaged; the per-sample error is -grad l_b
    pulls = [jax.vjp(lambda x, k=k: system.apply(k, x, system.theta_at(theta, k)), mus[k])[1] for k in range(n)]
    errors = [jnp.zeros_like(m) for m in mus[1:-1]] + [e_out]

    def step(errors, _):
        new = [(1 - eta) * errors[j] + eta * pulls[j + 1](errors[j + 1])[0] for j in range(n - 1)] + [e_out]
        return new, None

    errors, _ = jax.lax.scan(step, errors, None, length=int(iterations))
    return errors


def fixed_prediction(system: lagrangian.LayerMaps, theta: PyTree, x0: Array, loss: lagrangian.Loss,
                     iterations: int | None = None, eta: float = 1.0, nudge: float = 1.0) -> PyTree:
    """PC under the fixed-prediction assumption: `-(dPhi_k/dtheta_k)^T e_{k+1} / nudge` at the forward
    pass after `iterations` (default `N - 1`) relaxation steps `e_k <- (1 - eta) e_k + eta J_k^T e_{k+1}`
    of the value nodes, output error `e_N = -nudge * grad l` (batch-averaged estimate).

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian, integrators
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> x0, loss = jnp.ones((1, 2)), lagrangian.SquaredError()
        >>> g = fixed_prediction(net, theta, x0, loss)
        >>> bool(jnp.allclose(g[0]["W"], integrators.sweep(net, theta, x0, loss).grad[0]["W"], rtol=1e-12))
        True
    """
    if not 0 < eta <= 1:
        raise ValueError(f"relaxation step eta must lie in (0, 1]; got {eta}")
    iterations = system.depth - 1 if iterations is None else int(iterations)
    mus = integrators.forward(system, theta, x0)
    errors = _fixed_prediction_errors(system, theta, mus, loss, iterations, eta, nudge)
    batch = x0.shape[0]
    return inference.assemble(system, [
        system.conjugate(k, mus[k], system.theta_at(theta, k), -errors[k] / (batch * nudge))[1]
        for k in range(system.depth)
    ])


def fixed_prediction_curve(system, theta, x0, loss, iterations, eta=1.0):
    """The fixed-prediction estimate after `0 .. iterations - 1` relaxation steps (a list of pytrees)."""
    return [fixed_prediction(system, theta, x0, loss, i, eta) for i in range(int(iterations))]


__all__ = ["PCEstimate", "clamped", "clamped_relaxation_curve", "fixed_prediction", "fixed_prediction_curve",
           "precisions", "squared_error_target"]
