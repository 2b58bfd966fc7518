"""Backprop as the differential of a KL projection (the checkable version of the correspondence).

Lift: every computed node of a `ScalarGraph` gets a Gaussian residual, `v = g_v(u) + e_v`,
`e ~ N(0, s^2 I)` (the delta lift is `s -> 0`). Tilt the joint of the residuals by the loss,

    p_beta(e) ~ N(e; 0, s^2 I) exp(-beta (L(y(e)) - L(y*))),

and KL-project it back onto the fully factorised Gaussian family of the residuals:
`argmin_q KL(p_beta || q)` over `q = prod_v N(m_v, t_v^2)` is moment matching,
`m_v = E_beta[e_v]`, `t_v^2 = Var_beta[e_v]`. The projection map is `beta -> (m, t^2)`; at the
forward pass (`beta = 0`) it is `(0, s^2)`. Its differential in `beta` there is

    dm_v/dbeta (0) = -Cov_0(e_v, L) = -s^2 E_0[dL/de_v]      (Stein's lemma),

so `dm/dbeta (0) / (-s^2)` is the vector of backprop adjoints `dL/dv` exactly when `dL/de` is
affine in `e` (a linear graph with a quadratic loss), and `dL/dv + O(s^2)` otherwise (an even
series in `s`, so Richardson extrapolation in `s^2` removes the leading term).

How the projection is computed here: the tilted moments are Gaussian expectations, evaluated by a
tensor-product Gauss-Hermite rule over the residuals (`points` nodes per residual, exact for
polynomials of degree `2 points - 1` in each residual); only forward evaluations of the graph at the
quadrature nodes are used, never a derivative of it. The differential at `beta = 0` is `jax.jvp` of
the quadrature moments in `beta` (only the weights `exp(-beta dL)` depend on `beta`), and equals
the closed form `-Cov_0(e_v, L)` on the same rule. For the linearised graph the projection is also
given in closed form by Gaussian algebra (`linear_gaussian_projection`).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .computation_graph import ScalarGraph
from .gaussian_bp import linearise, response_matrix


def gauss_hermite_rule(dim: int, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for `E[f(z)]`, `z ~ N(0, I_dim)`: nodes `(points**dim, dim)`
    and weights `(points**dim,)` summing to 1.

    Example:
        >>> nodes, weights = gauss_hermite_rule(dim=2, points=5)
        >>> nodes.shape, round(float(weights.sum()), 12), round(float(weights @ nodes[:, 0] ** 2), 12)   # E[z_1^2] = 1
        ((25, 2), 1.0, 1.0)
    """
    if dim < 1 or points < 1:
        raise ValueError(f"gauss_hermite_rule needs dim >= 1 and points >= 1; got {dim}, {points}")
    if points ** dim > 5_000_000:
        raise ValueError(f"{points}**{dim} quadrature nodes is too many; use fewer points or residuals")
    x, w = np.polynomial.hermite_e.hermegauss(points)
    w = w / w.sum()
    nodes = np.array(list(itertools.product(x, repeat=dim)))
    weights = np.prod(np.array(list(itertools.product(w, repeat=dim))), axis=1)
    return nodes, weights


@dataclass(frozen=True)
class Projection:
    """The factorised Gaussian projection of the tilted lift.

    means: `m_v = E_beta[e_v]`, shape `(len(free),)` (order of `graph.free`).
    variances: `t_v^2 = Var_beta[e_v]`, same shape.
    """

    means: np.ndarray
    variances: np.ndarray


class LiftedGraph:
    """A graph with Gaussian residuals of width `s`, its loss tabulated on a Gauss-Hermite rule.

    `delta_loss[j] = L(y(s z_j)) - L(y*)` at the nodes `z_j` (forward evaluations only).
    """

    def __init__(self, graph: ScalarGraph, s: float, points: int = 5):
        if not s > 0:
            raise ValueError(f"the residual width s must be > 0; got {s}")
        self.graph, self.s = graph, float(s)
        nodes, weights = gauss_hermite_rule(len(graph.free), points)
        self.residuals = jnp.asarray(s * nodes)
        self.weights = jnp.asarray(weights)
        self.delta_loss = _loss_changes(graph)(self.residuals)

    def project(self, beta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """`(m, t^2)` of the moment-matched factorised Gaussian of `p_beta` (differentiable in `beta`)."""
        w = self.weights * jnp.exp(-beta * self.delta_loss)
        w = w / jnp.sum(w)
        means = w @ self.residuals
        variances = w @ (self.residuals - means) ** 2
        return means, variances

    def projection(self, beta: float) -> Projection:
        """`project(beta)` as numpy arrays."""
        m, v = self.project(jnp.asarray(beta, jnp.float64))
        return Projection(np.asarray(m), np.asarray(v))

    def differential(self) -> Projection:
        """`d(m, t^2)/dbeta` at `beta = 0`: `jax.jvp` of the projection map in `beta`."""
        _, (dm, dv) = jax.jvp(self.project, (jnp.asarray(0.0),), (jnp.asarray(1.0),))
        return Projection(np.asarray(dm), np.asarray(dv))

    def covariance_with_loss(self) -> np.ndarray:
        """`Cov_0(e_v, L)` on the same rule (the closed form of `-dm/dbeta (0)`), shape `(len(free),)`."""
        return np.asarray(self.weights @ (self.residuals * self.delta_loss[:, None]))

    def adjoints(self) -> np.ndarray:
        """`dm/dbeta (0) / (-s^2)` for the computed nodes, shape `(len(free),)`."""
        return self.differential().means / (-self.s ** 2)


@functools.lru_cache(maxsize=16)
def _loss_changes(graph: ScalarGraph):
    """`e -> L(y(e)) - L(y*)` vectorised over rows of `e`, compiled once per graph."""
    loss0 = graph.loss_of()
    return jax.jit(jax.vmap(lambda e: graph.loss_of(e) - loss0))


def projection_adjoints(graph: ScalarGraph, s: float, points: int = 5) -> np.ndarray:
    """`dm/dbeta (0) / (-s^2)`: tends to `dL/dv` (computed nodes, order of `graph.free`) as `s -> 0`."""
    return LiftedGraph(graph, s, points).adjoints()


def extrapolated_adjoints(graph: ScalarGraph, s: float, levels: int = 2, points: int = 5) -> np.ndarray:
    """Richardson extrapolation of `projection_adjoints` in `s^2` to `s = 0` from the widths
    `s, s/2, ..., s/2^(levels-1)` (the series is even in `s`), removing `levels - 1` terms."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1; got {levels}")
    table = [projection_adjoints(graph, s / 2 ** k, points) for k in range(levels)]
    for order in range(1, levels):
        factor = 4.0 ** order
        table = [(factor * table[k + 1] - table[k]) / (factor - 1) for k in range(len(table) - 1)]
    return table[0]


def linear_gaussian_projection(graph: ScalarGraph, s: float, beta: float) -> Projection:
    """Closed-form projection for the graph linearised at its forward pass, with the loss to second
    order: `y - y* = c . e` with `c = (I - B)^{-T}` column of `y` (dense solve, `B` the local
    Jacobians between computed nodes), `L - L* = L' (c.e) + L'' (c.e)^2 / 2`, so the tilted law is
    Gaussian with precision `I / s^2 + beta L'' c c^T` and

        m = -beta s^2 L' c / (1 + beta s^2 L'' |c|^2),
        t^2 = s^2 - beta s^4 L'' c^2 / (1 + beta s^2 L'' |c|^2).
    """
    lin = linearise(graph)
    M, slot = response_matrix(graph, lin)
    c = M[slot[graph.output]]
    denominator = 1.0 + beta * s ** 2 * lin.loss_curvature * (c @ c)
    means = -beta * s ** 2 * lin.loss_gradient * c / denominator
    variances = s ** 2 - beta * s ** 4 * lin.loss_curvature * c ** 2 / denominator
    return Projection(means, variances)


def tilted_means_legendre(graph: ScalarGraph, s: float, beta: float, nodes: int = 240, width: float = 10.0) -> np.ndarray:
    """`m(beta) = E_beta[e]`, shape `(len(free),)`, by a route independent of the Gauss-Hermite rule,
    for a squared-error loss `L = (y - t)^2 / 2` and a graph whose output residual `e_y` is the last
    free one.

    The output residual enters `y = Y(e') + e_y` linearly, so it is integrated in closed form:
    `int N(e_y; 0, s^2) exp(-beta (Y + e_y - t)^2 / 2) de_y ~ exp(-beta (Y - t)^2 / (2 c))` with
    `c = 1 + beta s^2`, and `E[e_y | e'] = -beta s^2 (Y - t) / c`. The remaining residuals `e'` are
    integrated on a tensor Gauss-Legendre rule with `nodes` points per residual on
    `[-width s, width s]` (Gaussian tails beyond 10 widths are below 1e-22). Needs
    `nodes ** (len(free) - 1) <= 2e6`.
    """
    free = list(graph.free)
    if free[-1] != graph.output:
        raise ValueError("tilted_means_legendre needs the output to be the last computed node")
    y0 = float(graph.forward()[graph.output])
    d1, d2 = graph.loss_derivatives(y0)
    target = y0 - d1
    for probe in (y0 - 1.0, y0 + 2.0):
        if abs(float(graph.loss(jnp.asarray(probe))) - 0.5 * (probe - target) ** 2) > 1e-12 or abs(d2 - 1.0) > 1e-12:
            raise ValueError("tilted_means_legendre needs the loss (y - t)^2 / 2")
    dim = len(free) - 1
    if nodes ** dim > 2_000_000:
        raise ValueError(f"{nodes}**{dim} Gauss-Legendre points is too many")
    x, w = np.polynomial.legendre.leggauss(nodes)
    x, w = width * x, width * w
    z = np.array(list(itertools.product(x, repeat=dim))).reshape(-1, dim)
    weights = np.prod(np.array(list(itertools.product(w, repeat=dim))).reshape(-1, dim), axis=1)
    e = s * z
    Y = np.asarray(_output_without_last(graph)(jnp.asarray(e)))
    c = 1.0 + beta * s ** 2
    log_w = np.log(weights) - 0.5 * np.sum(z ** 2, axis=1) - beta * (Y - target) ** 2 / (2 * c)
    p = np.exp(log_w - log_w.max())
    p /= p.sum()
    return np.concatenate([p @ e, [p @ (-beta * s ** 2 * (Y - target) / c)]])


@functools.lru_cache(maxsize=16)
def _output_without_last(graph: ScalarGraph):
    """`e' -> y(e', e_y = 0)` vectorised over rows of `e'`."""
    return jax.jit(jax.vmap(lambda e: graph.forward(jnp.concatenate([e, jnp.zeros(1)]))[graph.output]))


def differential_by_differences(graph: ScalarGraph, s: float, h: float = 1e-3, nodes: int = 240) -> np.ndarray:
    """`dm/dbeta (0)` by central differences of `tilted_means_legendre` at `beta = +-h, +-h/2`,
    Richardson-combined (`(4 D(h/2) - D(h)) / 3`): the differential of the projection map computed
    without the Gauss-Hermite rule, to check `dm/dbeta (0) = -Cov_0(e, L)` against it."""
    def central(step):
        return (tilted_means_legendre(graph, s, step, nodes) - tilted_means_legendre(graph, s, -step, nodes)) / (2 * step)

    return (4 * central(h / 2) - central(h)) / 3


__all__ = ["LiftedGraph", "Projection", "differential_by_differences", "extrapolated_adjoints", "gauss_hermite_rule",
           "linear_gaussian_projection", "projection_adjoints", "tilted_means_legendre"]
