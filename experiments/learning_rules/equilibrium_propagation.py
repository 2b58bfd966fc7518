"""Equilibrium propagation (EP) on the layered energy, and the classic Hopfield-like EP network.

Layered EP (Scellier & Bengio 2017: the one-sided estimator of their Theorem 1, the
gradient formula of EP; Laborieux et al. 2021: the symmetric-difference estimator that removes
its first-order bias; equation numbers not given because only excerpts of the papers could be
read here). The total energy `F_beta = E + beta l(x_N)`
(`lagrangian.total_energy`) is minimised over the free states `x_1 .. x_N` with the input
clamped; its equilibrium `x^beta` is found by `inference.newton` (Newton on
`dF/dx = 0` with the exact Hessian, dense LU and an Armijo backtracking on `F`, until the step
is below `1e-13` relative, then one more step: converged to rounding, `|dF/dx| ~ 1e-16`).
At `beta = 0` the equilibrium is the forward pass. The estimates of `dl/dtheta` are

    one-sided   g_1(beta) = ( dF/dtheta(x^beta) - dF/dtheta(x^0) ) / beta                = dl/dtheta + O(beta)
    symmetric   g_2(beta) = ( dF/dtheta(x^beta) - dF/dtheta(x^-beta) ) / (2 beta)        = dl/dtheta + O(beta^2)

with `dF/dtheta_k = -(dPhi_k/dtheta_k)^T e_{k+1}` at the equilibrium
(`inference.energy_theta_gradient`). Why it works: at `x^beta` the prediction errors obey
`e_k = J_k^T e_{k+1}`, `e_N = -beta grad l(x_N) + O(beta^2)`, so `-e / beta` is the conjugate
field `p` of docs/design.md 2.3 up to `O(beta)`, while the tension `x- / beta` of docs/design.md 2.2 is
`p` exactly.

Classic EP (Scellier & Bengio 2017: their Hopfield-like energy `E(u)`, the squared cost, and the
Theorem 1 estimator): a
Hopfield-like network with symmetric weights, `lagrangian.hopfield_energy`, cost
`C = 0.5 |o - y|^2`; free and nudged equilibria of `F = E + beta C` by Newton, estimate
`(dF/dtheta(s^beta) - dF/dtheta(s^0)) / beta` (or symmetric). Its target is the gradient of
`C(s^0(theta))`, the cost at the free fixed point, which the tests compute independently by
implicit differentiation of the fixed point.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

import integrators
import lagrangian

from . import inference


class EPEstimate(NamedTuple):
    """An EP gradient estimate, the largest Newton iteration count / stationarity residual
    over its phases, and whether every phase reached its tolerance (`inference.Equilibrium`)."""

    grad: PyTree
    iterations: Array
    residual: Array
    converged: Array


SOLVERS = ("newton", "sweeps")


def _solver(name):
    if name not in SOLVERS:
        raise ValueError(f"unknown equilibrium solver {name!r}; choose one of {SOLVERS}")
    return getattr(inference, name)


def phases(system, theta, x0, loss, betas, tol=1e-13, max_iterations=40, solver="newton",
           on_unconverged="warn"):
    """`dF/dtheta` at the equilibria `x^beta` for each `beta` in `betas` `(P,)` (traced values
    allowed), solved by `inference.newton` or `inference.sweeps`: `(grads with a leading axis P,
    largest iteration count, largest residual, every phase converged)`. Newton's phases are one
    vmapped program (one copy of its large step); the sweeps' phases run one after the other (a
    Python loop compiles faster than a vmapped while loop for this small body). A phase that stops
    at `max_iterations` warns, raises or is only recorded, as `on_unconverged` says
    (`inference.report_convergence`)."""
    solve = _solver(solver)

    def one(beta):
        eq = solve(system, theta, x0, loss, beta, tol=tol, max_iterations=max_iterations,
                   on_unconverged=on_unconverged)
        return inference.energy_theta_gradient(system, theta, eq.xs), eq.iterations, eq.residual, eq.converged

    if solver == "newton":
        grads, its, res, done = jax.vmap(one)(jnp.asarray(betas))
        return grads, jnp.max(its), jnp.max(res), jnp.all(done)
    outs = [one(betas[i]) for i in range(len(betas))]
    grads = jax.tree.map(lambda *g: jnp.stack(g), *[o[0] for o in outs])
    return (grads, jnp.max(jnp.stack([o[1] for o in outs])), jnp.max(jnp.stack([o[2] for o in outs])),
            jnp.all(jnp.stack([o[3] for o in outs])))


def equilibrium_propagation(
    system: lagrangian.LayerMaps, theta: PyTree, x0: Array, loss: lagrangian.Loss, beta: float,
    symmetric: bool = True, tol: float = 1e-13, max_iterations: int = 40, solver: str = "newton",
    on_unconverged: str = "warn",
) -> EPEstimate:
    """EP estimate of `dl/dtheta` on the layered energy: the symmetric estimator
    `(dF/dtheta(x^beta) - dF/dtheta(x^-beta)) / (2 beta)` (Laborieux et al. 2021) or,
    with `symmetric=False`, the one-sided `(dF/dtheta(x^beta) - dF/dtheta(x^0)) / beta`
    (Scellier & Bengio 2017, Theorem 1). `x0` is a batch `(B, n_0)`; the nudged phases are
    solved by `inference.newton` (or, `solver="sweeps"`, the Hessian-free `inference.sweeps`,
    for small `beta`); the free phase of the one-sided estimate is the forward pass (its exact
    equilibrium, where every prediction error and so `dF/dtheta` vanish). A phase that stops at
    `max_iterations` before `tol` warns (`inference.UnconvergedWarning`), or raises with
    `on_unconverged="raise"`; `residual` and `converged` say how far it got.

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> est = equilibrium_propagation(net, theta, jnp.ones((1, 2)), lagrangian.SquaredError(), 1e-4)
        >>> int(est.iterations) < 10
        True
    """
    if isinstance(beta, (int, float)) and beta == 0:
        raise ValueError("equilibrium propagation needs a non-zero nudge beta")
    beta = jnp.asarray(beta, jnp.asarray(x0).dtype)
    if symmetric:
        grads, its, res, done = phases(system, theta, x0, loss, jnp.stack([beta, -beta]), tol, max_iterations,
                                       solver, on_unconverged)
        return EPEstimate(jax.tree.map(lambda g: (g[0] - g[1]) / (2.0 * beta), grads), its, res, done)
    # the free equilibrium (beta = 0) is the forward pass, where every prediction error and so
    # dF/dtheta vanish exactly: only the nudged phase needs a solve
    grads, its, res, done = phases(system, theta, x0, loss, beta[None], tol, max_iterations, solver,
                                   on_unconverged)
    free = inference.energy_theta_gradient(system, theta, integrators.forward(system, theta, x0))
    return EPEstimate(jax.tree.map(lambda g, f: (g[0] - f) / beta, grads, free), its, res, done)


def relaxation_curve(system, theta, x0, loss, beta, iterations, eta, symmetric=True):
    """The EP estimate read after each of `iterations` steps of the physical relaxation
    `dx/dtau = -dF_{+-beta}/dx` (`inference.descend`, step `eta`) of both phases (the
    free phase is the forward pass, exact): leaves stacked over the iterations."""
    record = lambda xs: inference.energy_theta_gradient(system, theta, xs)
    plus = inference.descend(system, theta, x0, loss, beta, iterations, eta, record)
    if symmetric:
        minus = inference.descend(system, theta, x0, loss, -beta, iterations, eta, record)
        return jax.tree.map(lambda a, b: (a - b) / (2.0 * beta), plus, minus)
    return jax.tree.map(lambda a: a / beta, plus)


# --- the classic Hopfield-like network of Scellier & Bengio (2017) ---------------------------


def hopfield_total_energy(theta, x, h, o, y, beta, rho=jnp.tanh):
    """`F = E(h, o) + beta * 0.5 |o - y|^2` for one sample (`lagrangian.hopfield_energy`)."""
    return lagrangian.hopfield_energy(theta, x, h, o, rho) + beta * 0.5 * jnp.sum((o - y) ** 2)


def hopfield_equilibrium(theta, x, y, beta, n_hidden, iterations: int = 30, rho=jnp.tanh, start=None):
    """`(h, o)` with `dF/d(h, o) = 0` for one sample: `iterations` Newton steps on the gradient of
    `F` (`jax.vjp` of one evaluation of the energy; Hessian by `jax.jacfwd` of it), each
    backtracked (halving) until `F` does not increase, from `start` (default `(0, 0)`)."""
    n = n_hidden

    def f(s):
        return hopfield_total_energy(theta, x, s[:n], s[n:], y, beta, rho)

    def gradient(s):
        value, pull = jax.vjp(f, s)
        return pull(jnp.ones_like(value))[0]

    def step(s, _):
        g, hess = gradient(s), jax.jacfwd(gradient)(s)
        direction = -jnp.linalg.solve(hess, g)
        direction = jnp.where(g @ direction < 0, direction, -g)
        f0 = f(s)
        t = jax.lax.while_loop(lambda t: (t > 1e-12) & (f(s + t * direction) > f0 + 1e-14 * jnp.abs(f0)),
                               lambda t: 0.5 * t, jnp.asarray(1.0, s.dtype))
        return s + t * direction, None

    s0 = jnp.zeros(n + y.shape[0], x.dtype) if start is None else start
    s, _ = jax.lax.scan(step, s0, None, length=iterations)
    return s[:n], s[n:]


def hopfield_ep(theta, x, y, beta, symmetric=True, iterations=30, rho=jnp.tanh):
    """EP estimate of `dC(s^0)/dtheta` for the Hopfield-like network, batch-averaged over
    `x` `(B, n_in)`, `y` `(B, n_out)`: `(dF/dtheta(s^beta) - dF/dtheta(s^{-beta or 0})) / (2 beta or beta)`,
    `dF/dtheta = dE/dtheta` (the cost does not depend on `theta`). The free phase starts from
    `(0, 0)`, the nudged phases from the free equilibrium (as the physical protocol does, so
    that they stay in its basin)."""
    n = theta["b1"].shape[0]

    def de_dtheta(x_, h, o):
        _, pull = jax.vjp(lambda th: lagrangian.hopfield_energy(th, x_, h, o, rho), theta)
        return pull(jnp.ones((), x_.dtype))[0]

    def one(x_, y_):
        h0, o0 = hopfield_equilibrium(theta, x_, y_, 0.0, n, iterations, rho)
        free = jnp.concatenate([h0, o0])
        hp, op = hopfield_equilibrium(theta, x_, y_, beta, n, iterations, rho, start=free)
        if symmetric:
            hm, om = hopfield_equilibrium(theta, x_, y_, -beta, n, iterations, rho, start=free)
        else:
            hm, om = h0, o0
        scale = 2.0 * beta if symmetric else beta
        return jax.tree.map(lambda a, b: (a - b) / scale, de_dtheta(x_, hp, op), de_dtheta(x_, hm, om))

    return jax.tree.map(lambda g: jnp.mean(g, axis=0), jax.vmap(one)(x, y))


def hopfield_cost(theta, x, y, n_iterations=30, rho=jnp.tanh):
    """`C(s^0) = mean_b 0.5 |o^0_b - y_b|^2` at the free equilibrium."""
    n = theta["b1"].shape[0]
    o = jax.vmap(lambda x_, y_: hopfield_equilibrium(theta, x_, y_, 0.0, n, n_iterations, rho)[1])(x, y)
    return jnp.mean(0.5 * jnp.sum((o - y) ** 2, axis=-1))


__all__ = ["EPEstimate", "equilibrium_propagation", "hopfield_cost", "hopfield_ep", "hopfield_equilibrium",
           "hopfield_total_energy", "phases", "relaxation_curve"]
