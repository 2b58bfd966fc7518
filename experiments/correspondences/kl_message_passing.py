"""Alternating KL projections as message passing on the delta-lifted factorisation.

The first setting of "Backpropagation from KL Projections" (arXiv, Dec 2025), in the form its
abstract states: "message passing defined by alternating KL projections enforces agreement and
factorization constraints". Here that is expectation propagation (EP) with a fully factorised
Gaussian family, run on the lifted factor graph of a network of elementary operations.

Lifted factorisation. Every node `z_i` of an `ElementaryGraph` is a variable. A clamped node
(an input, a weight, a bias) gets the prior factor `N(z_i; z_i*, s^2)` (the lifted delta at its
value), a computed node `v = g_v(u)` the factor `psi_v = N(v; g_v(u), s^2)`, and the output `y`
the loss tilt `exp(-beta (L(y) - L(y*)))`, `L = (y - target)^2 / 2`. The delta-lifted
factorisation is the limit `s -> 0`.

Alternating projections. The approximation is `q(z) = prod_i N(z_i; m_i, V_i)`, and each factor
`a` holds one Gaussian site per variable it touches, `q_i = prod_a site_{a,i}`. One update of
factor `a` is two KL projections in turn:

1. factorisation: the tilted law `p_a = psi_a prod_{i in a} cavity_i` (`cavity_i = q_i / site_{a,i}`)
   is projected onto the fully factorised Gaussian family, `argmin_q KL(p_a || q)`: moment matching
   of each marginal;
2. agreement: the projected marginals replace `q_i` for every `i in a`, so every factor touching a
   variable sees the same marginal (`site_{a,i} = q_i^{new} / cavity_i`).

Sweeps of updates (topological order, then reverse) repeat until no site changes. The moments of
step 1 are closed forms for affine nodes (the tilted law is Gaussian) and tensor Gauss-Hermite
rules over the cavities of the one or two parents of a nonlinear node (products, `tanh`,
squares); the conditional law of `v` given the parents is Gaussian and is integrated exactly.
Nothing here differentiates the network: the only evaluations are of one node function at
quadrature points.

What backprop is in this picture. All quantities are kept as deviations from the forward pass
`z*`. At `beta = 0` the fixed point has flat backward sites. Differentiating the fixed point in
`beta` at 0 (central finite differences of the whole message passing, `beta = +-h`):

- the lifted weights' means move by `dm_w/dbeta (0) = -s^2 dL/dw + O(s^4)`: the differential of the
  projection map, divided by `-s^2`, gives the weight gradients;
- the backward sites into any node (from its child factors and the loss) carry
  `d eta_v / dbeta (0) = -dL/dv + O(s^2)`: the node adjoints (`v` perturbed with its parents
  held fixed, the backprop adjoint).

For an affine network with a quadratic loss both are exact at every `s` (the message passing is
Gaussian BP and its first order in `beta` is the chain rule); in general the error is `O(s^2)`.
The references are `jax.grad` of the same graph written as a `ScalarGraph`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from .computation_graph import GraphBuilder, ScalarGraph, squared_error

KINDS = ("clamped", "affine", "product", "tanh", "square")
"""Elementary operations: a clamped value, `c . u + c0`, `u0 * u1`, `tanh(u0)`, `u0^2`."""

BACKWARD_FLOOR = 1e-5
"""Smallest scale of the backward sites' changes, relative to the forward sites (see `solve`)."""

POLISH_SWEEPS = 2
"""Sweeps done after the change first falls below the tolerance."""

_NUMPY = {
    "product": lambda u: u[..., 0] * u[..., 1],
    "tanh": lambda u: np.tanh(u[..., 0]),
    "square": lambda u: u[..., 0] ** 2,
}
_JAX = {
    "product": lambda u: u[0] * u[1],
    "tanh": lambda u: jnp.tanh(u[0]),
    "square": lambda u: u[0] ** 2,
}


@dataclass(frozen=True)
class Op:
    """One node of an `ElementaryGraph`.

    kind: one of `KINDS`; parents: indices of earlier nodes; value: the clamped value (`clamped`);
    coefficients, constant: `c` and `c0` of an `affine` node.
    """

    kind: str
    parents: tuple[int, ...] = ()
    value: float | None = None
    coefficients: tuple[float, ...] = ()
    constant: float = 0.0


@dataclass(frozen=True)
class ElementaryGraph:
    """A network of elementary operations with the loss `(y - target)^2 / 2` on its output.

    names: unique node names in topological order; ops: the `Op` of each node; output: index of `y`.
    """

    names: tuple[str, ...]
    ops: tuple[Op, ...]
    output: int
    target: float

    def __post_init__(self):
        if len(self.names) != len(self.ops) or len(set(self.names)) != len(self.names):
            raise ValueError("an ElementaryGraph needs one unique name per op")
        arity = {"product": 2, "tanh": 1, "square": 1}
        for v, (name, op) in enumerate(zip(self.names, self.ops)):
            if op.kind not in KINDS:
                raise ValueError(f"node {name!r}: unknown kind {op.kind!r}; valid: {', '.join(KINDS)}")
            if any(not 0 <= u < v for u in op.parents):
                raise ValueError(f"node {name!r}: parents must be earlier nodes; got {op.parents}")
            if op.kind == "clamped":
                if op.value is None or op.parents:
                    raise ValueError(f"clamped node {name!r} needs a value and no parents")
            elif op.kind == "affine":
                if not op.parents or len(op.coefficients) != len(op.parents):
                    raise ValueError(f"affine node {name!r} needs one coefficient per parent")
            elif len(op.parents) != arity[op.kind]:
                raise ValueError(f"{op.kind} node {name!r} needs {arity[op.kind]} parent(s); got {len(op.parents)}")
        if self.ops[self.output].kind == "clamped":
            raise ValueError("the output must be a computed node")

    @property
    def size(self) -> int:
        return len(self.ops)

    @property
    def clamped(self) -> tuple[int, ...]:
        """Indices of the clamped nodes."""
        return tuple(v for v, op in enumerate(self.ops) if op.kind == "clamped")

    @property
    def computed(self) -> tuple[int, ...]:
        """Indices of the computed nodes (one factor `psi_v` each)."""
        return tuple(v for v, op in enumerate(self.ops) if op.kind != "clamped")

    def apply(self, v: int, u: np.ndarray) -> np.ndarray:
        """`g_v(u)` for parent values `u` of shape `(..., len(parents))`, vectorised (numpy)."""
        op = self.ops[v]
        if op.kind == "affine":
            return u @ np.asarray(op.coefficients) + op.constant
        return _NUMPY[op.kind](u)

    def forward(self) -> np.ndarray:
        """Forward values `z*`, shape `(n,)`."""
        z = np.zeros(self.size)
        for v, op in enumerate(self.ops):
            z[v] = op.value if op.kind == "clamped" else float(self.apply(v, z[list(op.parents)]))
        return z

    def scalar_graph(self) -> ScalarGraph:
        """The same network as a `ScalarGraph` (jax node functions), for the `jax.grad` reference."""
        b = GraphBuilder()
        for name, op in zip(self.names, self.ops):
            if op.kind == "clamped":
                b.clamp(name, op.value)
            elif op.kind == "affine":
                c, c0 = jnp.asarray(op.coefficients), op.constant
                b.node(name, lambda u, c=c, c0=c0: jnp.dot(c, u) + c0, *op.parents)
            else:
                b.node(name, _JAX[op.kind], *op.parents)
        return b.build(self.output, squared_error(self.target))

    def factor_graph_cycles(self) -> int:
        """Independent cycles of the lifted factor graph (every node a variable, one factor per
        computed node joining it to its parents; prior and loss factors are leaves):
        `edges - vertices + components`."""
        parent = list(range(self.size + len(self.computed)))

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        edges = 0
        for k, v in enumerate(self.computed):
            f = self.size + k
            for u in (v, *self.ops[v].parents):
                edges += 1
                parent[find(f)] = find(u)
        components = len({find(a) for a in range(len(parent))})
        return edges - len(parent) + components


def elementary_mlp(widths: Sequence[int] = (2, 3, 3, 1), seed: int = 0, target: float = 0.5,
                   weight_scale: float = 1.0) -> ElementaryGraph:
    """The tanh MLP of `scalar_mlp` (same draws from `numpy.random.default_rng(seed)`: the same
    network), written in elementary operations: unit `j` of layer `l` is the products
    `p_i = W^l_ji h^{l-1}_i`, the affine pre-activation `a = sum_i p_i + b^l_j` and `h = tanh(a)`
    (the output unit stops at `a`). Widths `(2, 3, 3, 1)` give 31 computed and 27 clamped nodes.

    Example:
        >>> graph = elementary_mlp((2, 3, 3, 1))
        >>> len(graph.computed), len(graph.clamped)
        (31, 27)
    """
    widths = tuple(int(d) for d in widths)
    if len(widths) < 2 or widths[-1] != 1 or min(widths) < 1:
        raise ValueError(f"widths must be (d_0, ..., d_L) with every d >= 1 and d_L = 1; got {widths}")
    rng = np.random.default_rng(seed)
    names: list[str] = []
    ops: list[Op] = []

    def add(name: str, op: Op) -> int:
        names.append(name)
        ops.append(op)
        return len(ops) - 1

    layer = [add(f"x{i}", Op("clamped", value=float(rng.normal()))) for i in range(widths[0])]
    for level in range(1, len(widths)):
        fan_in, last = widths[level - 1], level == len(widths) - 1
        weights = rng.normal(scale=weight_scale / np.sqrt(fan_in), size=(widths[level], fan_in))
        biases = rng.normal(scale=0.1, size=widths[level])
        units = []
        for j in range(widths[level]):
            w = [add(f"W{level}_{j}{i}", Op("clamped", value=float(weights[j, i]))) for i in range(fan_in)]
            b = add(f"b{level}_{j}", Op("clamped", value=float(biases[j])))
            products = [add(f"p{level}_{j}{i}", Op("product", (w[i], layer[i]))) for i in range(fan_in)]
            a = add("y" if last else f"a{level}_{j}", Op("affine", (*products, b), coefficients=(1.0,) * (fan_in + 1)))
            units.append(a if last else add(f"h{level}_{j}", Op("tanh", (a,))))
        layer = units
    return ElementaryGraph(tuple(names), tuple(ops), layer[0], float(target))


def linearised(graph: ElementaryGraph) -> ElementaryGraph:
    """The affine network with the same forward values and local Jacobians: every nonlinear node
    replaced by its tangent `g(u*) + J (u - u*)` (an affine node). On it the message passing is
    Gaussian and its differential is the chain rule at every `s`."""
    z = graph.forward()
    ops = []
    for v, op in enumerate(graph.ops):
        if op.kind in ("clamped", "affine"):
            ops.append(op)
            continue
        u = z[list(op.parents)]
        if op.kind == "product":
            J = (u[1], u[0])
        elif op.kind == "tanh":
            J = (1.0 - np.tanh(u[0]) ** 2,)
        else:
            J = (2.0 * u[0],)
        ops.append(Op("affine", op.parents, coefficients=tuple(float(j) for j in J),
                      constant=float(z[v] - np.dot(J, u))))
    return ElementaryGraph(graph.names, tuple(ops), graph.output, graph.target)


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point of the alternating projections at one tilt `beta`.

    means, variances: the factorised marginals `q_i`, deviations from `z*`, shape `(n,)`.
    backward_eta, backward_precision: the product of the sites into each node from its child
        factors and the loss (natural parameters), shape `(n,)`.
    sweeps: sweeps done; converged: the last sweep changed no site by more than the tolerance;
    changes: the largest relative site change of each sweep.
    """

    means: np.ndarray
    variances: np.ndarray
    backward_eta: np.ndarray
    backward_precision: np.ndarray
    sweeps: int
    converged: bool
    changes: np.ndarray


class LiftedFactorGraph:
    """The lifted factor graph of an `ElementaryGraph` at width `s`, solved by alternating KL
    projections (see the module docstring).

    Args:
        graph: the network.
        s: lift width, `> 0` (prior width of the clamped nodes and noise of every `psi_v`).
        points: Gauss-Hermite points per parent of a nonlinear node.
    """

    def __init__(self, graph: ElementaryGraph, s: float, points: int = 12):
        if not s > 0:
            raise ValueError(f"the lift width s must be > 0; got {s}")
        if points < 2:
            raise ValueError(f"points must be >= 2; got {points}")
        self.graph, self.s2 = graph, float(s) ** 2
        self.z = graph.forward()
        nodes, weights = np.polynomial.hermite_e.hermegauss(points)
        self.rule = {1: (nodes[:, None], weights / weights.sum())}
        grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
        self.rule[2] = (grid, np.outer(weights, weights).ravel() / weights.sum() ** 2)
        self.factors = [(v, (v, *graph.ops[v].parents)) for v in graph.computed]

    def _deviation(self, v: int, du: np.ndarray) -> np.ndarray:
        """`g_v(u* + du) - v*` for deviations `du` of shape `(..., parents)`."""
        op = self.graph.ops[v]
        if op.kind == "affine":
            return du @ np.asarray(op.coefficients)
        return self.graph.apply(v, self.z[list(op.parents)] + du) - self.z[v]

    def _project(self, v: int, cav_eta: np.ndarray, cav_lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moments `(mean, var)` of the tilted law `psi_v prod cavity` for the variables `(v, parents)`
        (the factorisation projection)."""
        s2 = self.s2
        if np.any(cav_lam[1:] <= 0):
            raise FloatingPointError(f"improper cavity at a parent of node {self.graph.names[v]!r}")
        ev, lv = cav_eta[0], cav_lam[0]
        denominator = 1.0 + s2 * lv
        eta_t, lam_t = ev / denominator, lv / denominator  # the v-cavity seen through the noise, as a tilt on g
        mu, var = cav_eta[1:] / cav_lam[1:], 1.0 / cav_lam[1:]
        op = self.graph.ops[v]
        if op.kind == "affine":
            c = np.asarray(op.coefficients)
            a, B = c @ mu, c @ (var * c)
            gain = (eta_t - lam_t * a) / (1.0 + lam_t * B)
            mean_u = mu + var * c * gain
            var_u = var - lam_t * (var * c) ** 2 / (1.0 + lam_t * B)
            mean_g, var_g = a + B * gain, B / (1.0 + lam_t * B)
            mean_v = (mean_g + s2 * ev) / denominator
            var_v = s2 / denominator + var_g / denominator ** 2
        else:
            nodes, weights = self.rule[len(mu)]
            du = mu + np.sqrt(var) * nodes
            g = self._deviation(v, du)
            log_w = np.log(weights) + eta_t * g - 0.5 * lam_t * g ** 2
            w = np.exp(log_w - log_w.max())
            w /= w.sum()
            mean_u = w @ du
            var_u = w @ (du - mean_u) ** 2
            conditional = (g + s2 * ev) / denominator
            mean_v = w @ conditional
            var_v = s2 / denominator + w @ (conditional - mean_v) ** 2
        return np.concatenate([[mean_v], mean_u]), np.concatenate([[var_v], var_u])

    def solve(self, beta: float, *, max_sweeps: int = 200, tol: float = 1e-10, damping: float = 0.0) -> FixedPoint:
        """Sweeps of alternating projections at tilt `beta` until no site changes by more than `tol`
        then `POLISH_SWEEPS` more. A site's natural mean `eta` counts relative to the largest site
        of its kind (forward sites into `v`, backward sites into parents; the latter at least
        `BACKWARD_FLOOR` times the former, so that at `beta = 0`, where they are rounding only, the
        sweeps stop), its precision relative to the precision of the marginal it feeds."""
        g, n = self.graph, self.graph.size
        site_eta = {v: np.zeros(len(idx)) for v, idx in self.factors}
        site_lam = {v: np.zeros(len(idx)) for v, idx in self.factors}
        eta, lam = np.zeros(n), np.zeros(n)
        lam[list(g.clamped)] = 1.0 / self.s2  # prior factors N(dz; 0, s^2): exact Gaussian sites
        dL = g.forward()[g.output] - g.target
        eta[g.output] += -beta * dL  # the loss tilt: exp(-beta (L' dy + dy^2 / 2)), exact Gaussian site
        lam[g.output] += beta
        order = [f for f in self.factors]
        schedule = order + order[::-1]
        changes: list[float] = []
        converged, polish = False, 0
        for _ in range(max_sweeps):
            delta_f = delta_b = delta_lam = 0.0
            scale_f = scale_b = 1e-300
            for v, idx in schedule:
                idx = list(idx)
                cav_eta, cav_lam = eta[idx] - site_eta[v], lam[idx] - site_lam[v]
                mean, var = self._project(v, cav_eta, cav_lam)
                new_eta = mean / var - cav_eta
                new_lam = 1.0 / var - cav_lam
                if damping:
                    new_eta = (1 - damping) * new_eta + damping * site_eta[v]
                    new_lam = (1 - damping) * new_lam + damping * site_lam[v]
                step = np.abs(new_eta - site_eta[v])
                delta_f, delta_b = max(delta_f, step[0]), max(delta_b, float(step[1:].max()))
                delta_lam = max(delta_lam, float(np.max(np.abs(new_lam - site_lam[v]) * var)))
                scale_f = max(scale_f, abs(new_eta[0]))
                scale_b = max(scale_b, float(np.max(np.abs(new_eta[1:]))))
                eta[idx] += new_eta - site_eta[v]
                lam[idx] += new_lam - site_lam[v]
                site_eta[v], site_lam[v] = new_eta, new_lam
            scale_b = max(scale_b, BACKWARD_FLOOR * scale_f)  # at beta = 0 the backward sites are rounding only
            changes.append(max(delta_f / scale_f, delta_b / scale_b, delta_lam))
            if converged:
                polish -= 1
                if polish == 0:
                    break
            elif changes[-1] <= tol:
                converged, polish = True, POLISH_SWEEPS
        back_eta, back_lam = np.zeros(n), np.zeros(n)
        back_eta[g.output] += -beta * dL
        back_lam[g.output] += beta
        for v, idx in self.factors:
            for k, u in enumerate(idx[1:], start=1):
                back_eta[u] += site_eta[v][k]
                back_lam[u] += site_lam[v][k]
        return FixedPoint(eta / lam, 1.0 / lam, back_eta, back_lam, len(changes), converged, np.asarray(changes))


@dataclass(frozen=True)
class Differential:
    """The differential of the projection map at `beta = 0`, by central differences in `beta`.

    weight_gradients: `dm_w/dbeta (0) / (-s^2)` for the clamped nodes (order of `graph.clamped`).
    node_adjoints: `-d eta_back / dbeta (0)` for every node, shape `(n,)`.
    sweeps: sweeps to convergence of each of the four solves (`beta = h, -h, h/2, -h/2`).
    changes: the site-change history at `beta = h`.
    """

    weight_gradients: np.ndarray
    node_adjoints: np.ndarray
    sweeps: tuple[int, ...]
    changes: np.ndarray


def projection_differential(graph: ElementaryGraph, s: float, h: float = 2e-3, points: int = 12,
                            tol: float = 1e-9) -> Differential:
    """The message-passing fixed point at `beta = +-h` and `+-h/2`, differenced centrally and
    Richardson-combined (`(4 D(h/2) - D(h)) / 3`, error `O(h^4)`): weight gradients from the lifted
    weights' means, node adjoints from the backward sites (see the module docstring)."""
    lifted = LiftedFactorGraph(graph, s, points)
    clamped = list(graph.clamped)
    solves = {}
    for beta in (h, -h, h / 2, -h / 2):
        fp = lifted.solve(beta, tol=tol)
        if not fp.converged:
            raise RuntimeError(f"alternating projections did not converge at s={s:g}, beta={beta:g}")
        solves[beta] = fp

    def central(step: float, field: str) -> np.ndarray:
        return (getattr(solves[step], field) - getattr(solves[-step], field)) / (2 * step)

    dm = (4 * central(h / 2, "means") - central(h, "means")) / 3
    deta = (4 * central(h / 2, "backward_eta") - central(h, "backward_eta")) / 3
    return Differential(dm[clamped] / (-lifted.s2), -deta, tuple(fp.sweeps for fp in solves.values()),
                        solves[h].changes)


def richardson(values: Sequence[np.ndarray], ratio: float = 4.0) -> np.ndarray:
    """Richardson extrapolation to `s = 0` of values at `s, s/2, s/4, ...` whose error is a series
    in `s^2` (`ratio = 4` per halving), removing `len(values) - 1` terms."""
    table = [np.asarray(v, dtype=float) for v in values]
    for order in range(1, len(table)):
        factor = ratio ** order
        table = [(factor * table[k + 1] - table[k]) / (factor - 1) for k in range(len(table) - 1)]
    return table[0]


__all__ = ["Differential", "ElementaryGraph", "FixedPoint", "KINDS", "LiftedFactorGraph", "Op", "elementary_mlp",
           "linearised", "projection_differential", "richardson"]
