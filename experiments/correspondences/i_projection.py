"""The KL I-projection onto marginal constraints, solved through an SPN's log-partition.

Given a distribution `p` (an SPN, normalised by `S(1)`) and constraints `E_q[phi_i] = m_i` on
indicator features `phi_i = [X = x]`, the I-projection

    q* = argmin_q KL(q || p)   subject to   E_q[phi_i] = m_i,   sum_x q(x) = 1,

is `q*(x) = p(x) exp(sum_i mu_i phi_i(x)) / Z(mu)`. Its log-partition is the SPN in log-space,
`log Z(mu) = log S(lambda) - log S(1)` with `lambda_i = exp(mu_i)` at the constrained indicators and
1 elsewhere, so backprop through `log S` returns the moments `grad log Z(mu) = E_q[phi]`, and the
Lagrange multipliers `mu` solve `grad log Z(mu) = m` (Newton with the Hessian `Cov_q[phi]`, with a
backtracking line search on the convex dual `log Z(mu) - mu . m`,
taking the full step once the decrease is below rounding). At the solution
`KL(q* || p) = mu . m - log Z(mu)`.

The independent reference `i_projection_slsqp` solves the constrained problem directly on the
joint table with scipy's SLSQP and reads the multipliers from its KKT conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from .spn import SPN

Constraint = tuple[str, int]
"""An indicator feature `phi = [variable = value]`."""


def log_partition(spn: SPN, features: Sequence[Constraint], mu: jax.Array) -> jax.Array:
    """`log Z(mu) = log S(lambda(mu)) - log S(1)`: `lambda = exp(mu_i)` at the features, 1 elsewhere."""
    slots = jnp.asarray([spn.slot(v, x) for v, x in features], dtype=jnp.int32)
    log_lam = jnp.zeros(spn.size).at[slots].add(mu)
    return spn.log_value(log_lam) - spn.log_value(jnp.zeros(spn.size))


def moments(spn: SPN, features: Sequence[Constraint], mu: jax.Array) -> np.ndarray:
    """`E_q[phi] = grad log Z(mu)`, by backprop through the log-space SPN; shape `(len(features),)`."""
    slots = np.asarray([spn.slot(v, x) for v, x in features])
    log_lam = jnp.zeros(spn.size).at[slots].add(jnp.asarray(mu, jnp.float64))
    return np.asarray(_log_value_derivatives(spn)(log_lam)[1])[slots]


@dataclass(frozen=True)
class IProjection:
    """An I-projection onto marginal constraints.

    features: the constrained indicators `(variable, value)`.
    targets: `m`, shape `(k,)`.
    multipliers: `mu`, shape `(k,)`.
    moments: `E_q[phi]` at the solution (backprop), shape `(k,)`.
    kl: `KL(q* || p) = mu . m - log Z(mu)`.
    iterations: Newton steps.
    residuals: `|grad log Z(mu) - m|_inf` after each step.
    """

    features: tuple[Constraint, ...]
    targets: np.ndarray
    multipliers: np.ndarray
    moments: np.ndarray
    kl: float
    iterations: int
    residuals: np.ndarray


def i_projection_newton(spn: SPN, constraints: Mapping[Constraint, float], *, tol: float = 1e-13,
                        max_iterations: int = 100) -> IProjection:
    """Multipliers `mu` with `grad log Z(mu) = m` by Newton on the dual `log Z(mu) - mu . m`.

    Args:
        spn: a valid SPN (its weights need not be normalised).
        constraints: `{(variable, value): m}` with `0 < m < 1`; at most `|X| - 1` values per variable
            (all `|X|` would fix the multipliers only up to a constant).
    """
    features = tuple(constraints)
    targets = np.asarray([constraints[f] for f in features], dtype=np.float64)
    if not features or np.any(targets <= 0) or np.any(targets >= 1):
        raise ValueError(f"constraints need at least one feature and targets in (0, 1); got {dict(constraints)}")
    for variable in {v for v, _ in features}:
        if sum(v == variable for v, _ in features) >= spn.variables[variable]:
            raise ValueError(f"constrain at most |{variable}| - 1 values of {variable!r} "
                             "(the last is fixed by normalisation)")
    compiled = _log_value_derivatives(spn)
    slots = np.asarray([spn.slot(v, x) for v, x in features])
    log_s1 = float(compiled(jnp.zeros(spn.size))[0])

    def dual_grad_hess(m):
        """The dual `log Z(m) - m . targets`, its gradient and Hessian, from the log-space SPN."""
        value, grad, hess = (np.asarray(a) for a in compiled(jnp.zeros(spn.size).at[slots].add(jnp.asarray(m))))
        return value - log_s1 - m @ targets, grad[slots] - targets, hess[np.ix_(slots, slots)]

    mu = np.zeros(len(features))
    residuals = []
    for _ in range(max_iterations):
        value, g, h = (np.asarray(a) for a in dual_grad_hess(mu))
        residuals.append(float(np.max(np.abs(g))))
        if residuals[-1] <= tol:
            break
        step = np.linalg.solve(h, -g)
        t, slack = 1.0, 1e-14 * (1.0 + abs(float(value)))  # below rounding the full step is taken
        while float(dual_grad_hess(mu + t * step)[0]) > float(value) + 1e-4 * t * float(g @ step) + slack and t > 1e-8:
            t *= 0.5
        mu = mu + t * step
    kl = -float(dual_grad_hess(mu)[0])
    return IProjection(features, targets, mu, moments(spn, features, mu), kl, len(residuals) - 1,
                       np.asarray(residuals))


_COMPILED: dict[int, tuple[SPN, object]] = {}


def _log_value_derivatives(spn: SPN):
    """`log_lam -> (log S, grad log S, hess log S)`, compiled once per network (kept with the entry so
    its id stays valid)."""
    if id(spn) not in _COMPILED or _COMPILED[id(spn)][0] is not spn:
        @jax.jit
        def derivatives(log_lam):
            value, grad = jax.value_and_grad(spn.log_value)(log_lam)
            return value, grad, jax.hessian(spn.log_value)(log_lam)

        if len(_COMPILED) > 32:
            _COMPILED.clear()
        _COMPILED[id(spn)] = (spn, derivatives)
    return _COMPILED[id(spn)][1]


def feature_matrix(variables: Sequence[str], shape: Sequence[int], features: Sequence[Constraint]) -> np.ndarray:
    """`Phi[i, x] = phi_i(x)` over the flattened joint table, shape `(k, prod(shape))`."""
    names = list(variables)
    grids = np.indices(tuple(shape)).reshape(len(shape), -1)
    return np.stack([(grids[names.index(v)] == x).astype(np.float64) for v, x in features])


def tilted_table(table: np.ndarray, variables: Sequence[str], features: Sequence[Constraint],
                 mu: np.ndarray) -> np.ndarray:
    """`q(x) = p(x) exp(mu . phi(x)) / Z` by enumeration, shape of `table` (normalised)."""
    phi = feature_matrix(variables, table.shape, features)
    q = table.ravel() / table.sum() * np.exp(np.asarray(mu) @ phi)
    return (q / q.sum()).reshape(table.shape)


@dataclass(frozen=True)
class DirectProjection:
    """The I-projection solved on the joint table.

    table: `q*`, shape of the input table; multipliers: `mu` of the feature constraints (KKT),
    shape `(k,)`; kl: `KL(q* || p)`; success: scipy's flag; message: scipy's message.
    """

    table: np.ndarray
    multipliers: np.ndarray
    kl: float
    success: bool
    message: str


def i_projection_slsqp(table: np.ndarray, variables: Sequence[str], constraints: Mapping[Constraint, float],
                       *, ftol: float = 1e-16, max_iterations: int = 2000) -> DirectProjection:
    """`min_q sum_x q log(q / p)` over the flattened table with `Phi q = m`, `sum q = 1`, `q >= 1e-300`,
    by SLSQP with exact gradients. The multipliers come from SLSQP's KKT multipliers of the feature
    constraints: at the optimum `log(q / p) + 1 = Phi^T mu + nu`."""
    features = tuple(constraints)
    targets = np.asarray([constraints[f] for f in features], dtype=np.float64)
    p = np.asarray(table, dtype=np.float64).ravel()
    p = p / p.sum()
    phi = feature_matrix(variables, table.shape, features)
    support = p > 0
    if not np.all(support):
        raise ValueError("i_projection_slsqp needs p > 0 on every state")

    def kl(q):
        return float(np.sum(q * np.log(q / p)))

    def kl_grad(q):
        return np.log(q / p) + 1.0

    cons = [{"type": "eq", "fun": lambda q: phi @ q - targets, "jac": lambda q: phi},
            {"type": "eq", "fun": lambda q: np.array([q.sum() - 1.0]), "jac": lambda q: np.ones((1, q.size))}]
    result = scipy.optimize.minimize(kl, p.copy(), jac=kl_grad, method="SLSQP", constraints=cons,
                                     bounds=[(1e-300, 1.0)] * p.size,
                                     options={"ftol": ftol, "maxiter": max_iterations})
    q = result.x
    multipliers = np.asarray(result.multipliers["eq"] if isinstance(result.multipliers, dict)
                             else result.multipliers)[: len(features)]
    return DirectProjection(q.reshape(table.shape), multipliers, kl(q), bool(result.success), str(result.message))


@dataclass(frozen=True)
class BackwardMultipliers:
    """The Gibbs variational problem with the log-indicators as constraint levels, solved directly.

    backward: `d log S / d log lambda` at `lambda`, by backprop through the log-space SPN, shape
        `(size,)`; multipliers: SLSQP's KKT multipliers of the constraints `theta = log lambda`,
        shape `(size,)`; table: the optimal `q`; success, message: scipy's.
    """

    backward: np.ndarray
    multipliers: np.ndarray
    table: np.ndarray
    success: bool
    message: str


def backward_as_multipliers(spn: SPN, lam: np.ndarray, *, ftol: float = 1e-16,
                            max_iterations: int = 2000) -> BackwardMultipliers:
    """Backprop's backward values against the Lagrange multipliers of an I-projection problem.

    With `p` the SPN's normalised distribution and `phi_i(x) = [x agrees with indicator i]`,

        log S(lambda) - log S(1) = max_q  sum_i theta_i E_q[phi_i] - KL(q || p),   theta = log lambda

    (Gibbs' variational principle; the maximiser is the I-projection `q ~ p lambda^phi`). Written as
    a constrained problem over `(q, theta)`, `min KL(q || p) - theta . Phi q` subject to
    `theta_i = log lambda_i` and `sum q = 1`, the constraint levels are the log-indicators, so by the
    envelope theorem their multipliers are the derivatives of the optimal value, and the stationarity
    in `theta_i` reads `mu_i = -E_q[phi_i] = -d log S / d log lambda_i` (scipy's convention
    `grad f = sum_j mu_j grad c_j`). The backward values come from `jax.grad` of `log S` in log-space
    (one backward pass); the multipliers from SLSQP on the flattened joint table (enumeration, no
    SPN); they are compared with the sign flipped. Needs every `lambda_i > 0`.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if lam.shape != (spn.size,) or np.any(lam <= 0):
        raise ValueError(f"lambda must have shape ({spn.size},) and positive entries")
    backward = np.asarray(_log_value_derivatives(spn)(jnp.log(jnp.asarray(lam)))[1])
    variables = list(spn.variables)
    features = [(v, x) for v in variables for x in range(spn.variables[v])]
    table = spn.joint_table()
    p = table.ravel() / table.sum()
    phi = feature_matrix(variables, table.shape, features)
    n, k = p.size, len(features)
    log_lam = np.log(lam)

    def objective(z):
        q, theta = z[:n], z[n:]
        return float(np.sum(q * np.log(q / p)) - theta @ (phi @ q))

    def gradient(z):
        q, theta = z[:n], z[n:]
        return np.concatenate([np.log(q / p) + 1.0 - phi.T @ theta, -(phi @ q)])

    jac_theta = np.hstack([np.zeros((k, n)), np.eye(k)])
    jac_norm = np.concatenate([np.ones(n), np.zeros(k)])[None]
    cons = [{"type": "eq", "fun": lambda z: z[n:] - log_lam, "jac": lambda z: jac_theta},
            {"type": "eq", "fun": lambda z: np.array([z[:n].sum() - 1.0]), "jac": lambda z: jac_norm}]
    start = np.concatenate([p, np.zeros(k)])
    result = scipy.optimize.minimize(objective, start, jac=gradient, method="SLSQP", constraints=cons,
                                     bounds=[(1e-300, 1.0)] * n + [(None, None)] * k,
                                     options={"ftol": ftol, "maxiter": max_iterations})
    multipliers = np.asarray(result.multipliers["eq"] if isinstance(result.multipliers, dict)
                             else result.multipliers)[:k]
    order = [spn.slot(v, x) for v, x in features]
    mu = np.zeros(spn.size)
    mu[order] = multipliers
    return BackwardMultipliers(backward, mu, result.x[:n].reshape(table.shape), bool(result.success), str(result.message))


__all__ = ["BackwardMultipliers", "Constraint", "backward_as_multipliers", "DirectProjection", "IProjection", "feature_matrix", "i_projection_newton",
           "i_projection_slsqp", "log_partition", "moments", "tilted_table"]
