"""Gaussian belief propagation on the factor graph of a computation graph (Eaton 2022).

Factor graph of a `ScalarGraph`: one variable per node; for each computed node
`v` a near-deterministic factor, linearised at the forward values `z*` and
written in the deviations `dz = z - z*`,

    psi_v = exp(-(dv - sum_i J_vi du_i)^2 / (2 eps)),      J_vi = dg_v/du_i (z*),

clamped nodes fixed at `dz = 0`, and soft evidence `exp(-beta L(y))` on the
output, taken to second order: `exp(eta_y dy - Lambda_y dy^2 / 2)` with
`eta_y = -beta L'(y*)`, `Lambda_y = beta L''(y*)` (so `L''(y*) >= 0` is needed).

Messages are in information form, `m(dz) ~ exp(eta dz - Lambda dz^2 / 2)`.
A variable-to-factor message is the product of the variable's other incoming
messages; in moment form `(mu, sigma^2) = (eta / Lambda, 1 / Lambda)` (a
clamped variable sends `(0, 0)`). A factor `psi_v` sends

- to its child `v` (forward): `Lambda = 1 / (eps + sum_i J_i^2 sigma_i^2)`,
  `eta = Lambda sum_i J_i mu_i`;
- to a parent `u_t` (backward), given the message `(eta_v, Lambda_v)` from `v`
  and `U = sum_{i != t} J_i u_i + noise` with mean `m_U = sum_{i != t} J_i mu_i`
  and variance `V_U = eps + sum_{i != t} J_i^2 sigma_i^2`:

      Lambda_t = J_t^2 Lambda_v / (1 + Lambda_v V_U),
      eta_t    = J_t (eta_v - Lambda_v m_U) / (1 + Lambda_v V_U).

At first order in `beta` this is `eta_t = J_t eta_v`, and the total backward
message at `u` (the sum over its child factors) is the chain rule summed over
paths: `eta_u / (-beta) -> dL/du` as `beta -> 0` (for every `eps > 0`; the
error is `O(beta eps)`). The schedule is one forward sweep in topological order
(so every variable has a proper forward message) followed by synchronous
(flooding) updates of all messages until they stop changing; on a graph
with loops this is loopy BP. At a fixed point Gaussian BP means are exact, which
`dense_posterior` (Kalman conditioning of the linear-Gaussian prior) checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .computation_graph import ScalarGraph


@dataclass(frozen=True)
class Linearisation:
    """A graph linearised at its forward pass.

    values: forward values `z*`, shape `(n,)`.
    jacobians: `J_v = dg_v/du` per node, shape `(len(parents[v]),)`.
    loss_gradient, loss_curvature: `L'(y*)`, `L''(y*)`.
    """

    values: np.ndarray
    jacobians: tuple[np.ndarray, ...]
    loss_gradient: float
    loss_curvature: float


def linearise(graph: ScalarGraph) -> Linearisation:
    """Forward values, local Jacobians and loss derivatives at the forward pass."""
    values = np.asarray(graph.forward(), dtype=np.float64)
    d1, d2 = graph.loss_derivatives(values[graph.output])
    return Linearisation(values, graph.local_jacobians(values), d1, d2)


def response_matrix(graph: ScalarGraph, lin: Linearisation) -> tuple[np.ndarray, dict[int, int]]:
    """`(M, slot)`: `M = (I - B)^{-1}` over the free nodes, `B[v, u] = dg_v/du` the local
    Jacobians (so `dz = M e` maps the residuals to the node deviations), and `slot[v]`
    the row of node `v`."""
    free = list(graph.free)
    slot = {v: k for k, v in enumerate(free)}
    B = np.zeros((len(free), len(free)))
    for v in free:
        for k, u in enumerate(graph.parents[v]):
            if u in slot:
                B[slot[v], slot[u]] += lin.jacobians[v][k]
    return np.linalg.solve(np.eye(len(free)) - B, np.eye(len(free))), slot


@dataclass(frozen=True)
class BPResult:
    """A Gaussian BP fixed point.

    backward_eta, backward_precision: the total backward message at each node, shape `(n,)`: the
        product of the messages from the factors of its children (and the evidence, at `y`).
    belief_mean, belief_precision: belief of each node in deviations `dz`, shape `(n,)` (0 and inf
        at clamped nodes).
    iterations: synchronous sweeps done after the initial forward sweep.
    converged: whether the last sweep changed no message by more than `tol` (relative).
    changes: largest relative message change of each sweep, shape `(iterations,)`.
    """

    backward_eta: np.ndarray
    backward_precision: np.ndarray
    belief_mean: np.ndarray
    belief_precision: np.ndarray
    iterations: int
    converged: bool
    changes: np.ndarray

    def adjoints(self, beta: float) -> np.ndarray:
        """`eta_backward / (-beta)`, shape `(n,)`: tends to `dL/dv` as `beta -> 0`."""
        return self.backward_eta / (-beta)


class _Messages:
    """Factor-to-variable messages: `fwd[v]` from `psi_v` to `v`; `bwd[v][k]` from `psi_v` to its
    `k`-th parent. Each is an `(eta, Lambda)` pair of floats."""

    def __init__(self, graph: ScalarGraph):
        self.fwd = {v: (0.0, 0.0) for v in graph.free}
        self.bwd = {v: [(0.0, 0.0)] * len(graph.parents[v]) for v in graph.free}


def gaussian_belief_propagation(graph: ScalarGraph, beta: float, eps: float, *, lin: Linearisation | None = None,
                max_iterations: int = 500, tol: float = 1e-15) -> BPResult:
    """Gaussian BP in information form on the linearised factor graph (see the module docstring).

    Args:
        graph: the computation graph.
        beta: evidence strength, `> 0`.
        eps: factor variance, `> 0` (`eps -> 0` is the deterministic graph).
        lin: the linearisation (computed if `None`).
        max_iterations: cap on synchronous sweeps.
        tol: stop when no message changes by more than `tol` relative to its own size (plus `tol`
            times the largest message of its kind).

    Example:
        >>> from experiments.correspondences import fan_out_graph
        >>> graph = fan_out_graph()                              # h = tanh(w1 x), s = h^2, y = w2 h + w3 s
        >>> result = gaussian_belief_propagation(graph, beta=1e-8, eps=1e-8)
        >>> adjoints = result.backward_eta / (-1e-8)             # backward messages / (-beta) = dL/dv
        >>> bool(np.allclose(adjoints, graph.adjoints_reference(), rtol=1e-6, atol=1e-12))
        True
    """
    if not beta > 0 or not eps > 0:
        raise ValueError(f"gaussian_belief_propagation needs beta > 0 and eps > 0; got beta={beta}, eps={eps}")
    lin = lin if lin is not None else linearise(graph)
    if lin.loss_curvature < 0:
        raise ValueError(f"the evidence exp(-beta L) needs L''(y*) >= 0 to be a Gaussian message; "
                         f"got L''(y*) = {lin.loss_curvature}")
    evidence = (-beta * lin.loss_gradient, beta * lin.loss_curvature)
    children = {u: [(v, k) for v in graph.free for k, p in enumerate(graph.parents[v]) if p == u]
                for u in range(graph.size)}
    clamped = set(graph.inputs)
    m = _Messages(graph)

    def backward_total(u: int) -> tuple[float, float]:
        eta, lam = evidence if u == graph.output else (0.0, 0.0)
        for v, k in children[u]:
            eta += m.bwd[v][k][0]
            lam += m.bwd[v][k][1]
        return eta, lam

    def to_factor(u: int, v: int, k: int) -> tuple[float, float]:
        """Moment form `(mu, sigma^2)` of the message from parent `u` (slot `k`) to `psi_v`."""
        if u in clamped:
            return 0.0, 0.0
        eta, lam = backward_total(u)
        eta, lam = eta - m.bwd[v][k][0] + m.fwd[u][0], lam - m.bwd[v][k][1] + m.fwd[u][1]
        return eta / lam, 1.0 / lam

    def forward_message(v: int, incoming) -> tuple[float, float]:
        J = lin.jacobians[v]
        mean = sum(J[k] * mu for k, (mu, _) in enumerate(incoming))
        var = eps + sum(J[k] ** 2 * s2 for k, (_, s2) in enumerate(incoming))
        return mean / var, 1.0 / var

    def backward_messages(v: int, incoming) -> list[tuple[float, float]]:
        J = lin.jacobians[v]
        eta_v, lam_v = backward_total(v)
        mean_all = sum(J[k] * mu for k, (mu, _) in enumerate(incoming))
        var_all = eps + sum(J[k] ** 2 * s2 for k, (_, s2) in enumerate(incoming))
        out = []
        for k, (mu, s2) in enumerate(incoming):
            m_u, v_u = mean_all - J[k] * mu, var_all - J[k] ** 2 * s2
            denominator = 1.0 + lam_v * v_u
            out.append((J[k] * (eta_v - lam_v * m_u) / denominator, J[k] ** 2 * lam_v / denominator))
        return out

    for v in graph.free:  # initial forward sweep in topological order
        m.fwd[v] = forward_message(v, [to_factor(u, v, k) for k, u in enumerate(graph.parents[v])])

    changes = []
    converged = False
    for _ in range(max_iterations):
        incoming = {v: [to_factor(u, v, k) for k, u in enumerate(graph.parents[v])] for v in graph.free}
        new_fwd = {v: forward_message(v, incoming[v]) for v in graph.free}
        new_bwd = {v: backward_messages(v, incoming[v]) for v in graph.free}
        old = np.array([m.fwd[v] for v in graph.free] + [p for v in graph.free for p in m.bwd[v]])
        new = np.array([new_fwd[v] for v in graph.free] + [p for v in graph.free for p in new_bwd[v]])
        scale = np.max(np.abs(new), axis=0)
        change = float(np.max(np.abs(new - old) / (np.abs(new) + scale * 1e-3 + 1e-300)))
        changes.append(change)
        m.fwd, m.bwd = new_fwd, new_bwd
        if change <= tol:
            converged = True
            break

    backward = np.array([backward_total(u) for u in range(graph.size)])
    belief_mean = np.zeros(graph.size)
    belief_precision = np.full(graph.size, np.inf)
    for v in graph.free:
        eta, lam = backward[v, 0] + m.fwd[v][0], backward[v, 1] + m.fwd[v][1]
        belief_mean[v], belief_precision[v] = eta / lam, lam
    return BPResult(backward[:, 0], backward[:, 1], belief_mean, belief_precision, len(changes), converged,
                    np.asarray(changes))


@dataclass(frozen=True)
class DensePosterior:
    """The exact Gaussian posterior of the linearised factor graph over the computed nodes.

    mean: posterior mean of `dz` at every node, shape `(n,)` (0 at clamped nodes).
    prior_cov_with_output: `Cov(v, y)` under the prior (factors only), shape `(n,)`.
    """

    mean: np.ndarray
    prior_cov_with_output: np.ndarray


def dense_posterior(graph: ScalarGraph, beta: float, eps: float, lin: Linearisation | None = None) -> DensePosterior:
    """Posterior by dense linear algebra: the linearised factors make the computed deviations
    `dz = B dz + e`, `e ~ N(0, eps I)` (`B` holds `J_vu` between computed nodes; clamped nodes are 0),
    so the prior covariance is `Sigma = eps M M^T`, `M = (I - B)^{-1}`. Conditioning on the Gaussian
    evidence `(eta_y, Lambda_y)` is a rank-one (Kalman) update:

        mean = Sigma[:, y] eta_y / (1 + Lambda_y Sigma[y, y]).
    """
    lin = lin if lin is not None else linearise(graph)
    M, slot = response_matrix(graph, lin)
    sigma_y = eps * M @ M[slot[graph.output]]
    eta_y, lam_y = -beta * lin.loss_gradient, beta * lin.loss_curvature
    mean = np.zeros(graph.size)
    cov = np.zeros(graph.size)
    free = list(slot)
    mean[free] = sigma_y * eta_y / (1.0 + lam_y * sigma_y[slot[graph.output]])
    cov[free] = sigma_y
    return DensePosterior(mean, cov)


__all__ = ["BPResult", "DensePosterior", "Linearisation", "dense_posterior", "gaussian_belief_propagation", "linearise",
           "response_matrix"]
