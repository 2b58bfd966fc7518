"""Computation graphs of scalar nodes, the common object of the backprop correspondences.

A graph is a list of scalar nodes in topological order. A clamped node (an
input or a weight) holds a fixed value; a computed node is

    v = g_v(u_1, ..., u_m) + e_v,        u_i = parents(v),

where `e_v` is a residual, zero on the forward pass. The residual form is what
the correspondences perturb: `dL/de_v` at `e = 0` is the backprop adjoint
`dL/dv` (the derivative with respect to `v` with its parents held fixed), and
the Gaussian lifts of `kl_projection` draw `e_v ~ N(0, s^2)`.

The loss `L(y)` is a scalar function of the output node `y`.
`ScalarGraph.adjoints_reference` is `jax.grad` through the whole graph; it is
only ever the reference the correspondences are checked against. Local
derivatives `dg_v/du` are `jax.grad` of one node function at one point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

NodeFunction = Callable[[jax.Array], jax.Array]
"""`g_v`: parent values, shape `(m,)` -> scalar."""


@dataclass(frozen=True)
class ScalarGraph:
    """A scalar computation graph with a loss on its output.

    Attributes:
        names: node names, unique, in topological order.
        parents: `parents[v]`, indices `< v` of the arguments of `g_v` (empty for clamped nodes).
        functions: `g_v` for computed nodes, `None` for clamped nodes.
        clamped: the value of each clamped node, `None` for computed nodes.
        output: index of the output node `y` (a computed node).
        loss: `L(y)`, scalar -> scalar.
    """

    names: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]
    functions: tuple[NodeFunction | None, ...]
    clamped: tuple[float | None, ...]
    output: int
    loss: Callable[[jax.Array], jax.Array]

    def __post_init__(self):
        n = len(self.names)
        if not (len(self.parents) == len(self.functions) == len(self.clamped) == n) or n == 0:
            raise ValueError("a ScalarGraph needs one name, parent tuple, function and clamp entry per node")
        if len(set(self.names)) != n:
            raise ValueError(f"node names must be unique; got {self.names}")
        for v, (name, pa, g, c) in enumerate(zip(self.names, self.parents, self.functions, self.clamped)):
            if (g is None) == (c is None):
                raise ValueError(f"node {name!r} must be either clamped (a value, no function) or computed")
            if c is not None and pa:
                raise ValueError(f"clamped node {name!r} cannot have parents")
            if g is not None and not pa:
                raise ValueError(f"computed node {name!r} needs at least one parent")
            if any(not 0 <= u < v for u in pa):
                raise ValueError(f"node {name!r}: parents must be earlier nodes (topological order); got {pa}")
        if not 0 <= self.output < n or self.clamped[self.output] is not None:
            raise ValueError(f"the output must be a computed node; got index {self.output}")

    @property
    def size(self) -> int:
        """Number of nodes `n`."""
        return len(self.names)

    @property
    def free(self) -> tuple[int, ...]:
        """Indices of the computed nodes (the ones carrying a residual `e_v`), in order."""
        return tuple(v for v, c in enumerate(self.clamped) if c is None)

    @property
    def inputs(self) -> tuple[int, ...]:
        """Indices of the clamped nodes, in order."""
        return tuple(v for v, c in enumerate(self.clamped) if c is not None)

    def children(self, u: int) -> tuple[int, ...]:
        """Computed nodes that take `u` as an argument."""
        return tuple(v for v, pa in enumerate(self.parents) if u in pa)

    def factor_graph_cycles(self) -> int:
        """Independent cycles of the factor graph over the computed nodes (clamped nodes condition
        the graph and cut no loops): `edges - vertices + components`, with one variable and one
        factor `psi_v` per computed node and an edge from `psi_v` to `v` and to each computed parent."""
        free = self.free
        parent = {("var", v): ("var", v) for v in free} | {("fac", v): ("fac", v) for v in free}

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        edges = 0
        for v in free:
            for u in (v, *[p for p in self.parents[v] if self.clamped[p] is None]):
                edges += 1
                parent[find(("fac", v))] = find(("var", u))
        components = len({find(a) for a in parent})
        return edges - len(parent) + components

    def forward(self, residuals: jax.Array | None = None, inputs: jax.Array | None = None) -> jax.Array:
        """Values of all nodes, shape `(n,)`: `v = g_v(parents) + e_v` in topological order.

        Args:
            residuals: `e`, shape `(len(free),)`, in the order of `free`; zeros if `None`.
            inputs: values of the clamped nodes, shape `(len(inputs),)`; the stored ones if `None`.
        """
        free_slot = {v: k for k, v in enumerate(self.free)}
        input_slot = {v: k for k, v in enumerate(self.inputs)}
        values: list[jax.Array] = []
        for v in range(self.size):
            if self.clamped[v] is not None:
                values.append(jnp.asarray(self.clamped[v], jnp.float64) if inputs is None else inputs[input_slot[v]])
            else:
                value = self.functions[v](jnp.stack([values[u] for u in self.parents[v]]))
                if residuals is not None:
                    value = value + residuals[free_slot[v]]
                values.append(value)
        return jnp.stack(values)

    def loss_of(self, residuals: jax.Array | None = None, inputs: jax.Array | None = None) -> jax.Array:
        """`L(y(e, inputs))`, a scalar."""
        return self.loss(self.forward(residuals, inputs)[self.output])

    def local_jacobians(self, values: np.ndarray) -> tuple[np.ndarray, ...]:
        """`dg_v/du` at `values` for each node, shape `(len(parents[v]),)` (empty for clamped nodes):
        `jax.grad` of the one node function `g_v` at one point."""
        out = []
        for v in range(self.size):
            if self.functions[v] is None:
                out.append(np.zeros(0))
            else:
                u = jnp.asarray(np.asarray(values)[list(self.parents[v])])
                out.append(np.asarray(jax.grad(self.functions[v])(u), dtype=np.float64))
        return tuple(out)

    def loss_derivatives(self, y: float) -> tuple[float, float]:
        """`(L'(y), L''(y))` of the scalar loss at `y`."""
        d1 = jax.grad(self.loss)
        return float(d1(jnp.asarray(y, jnp.float64))), float(jax.grad(d1)(jnp.asarray(y, jnp.float64)))

    def adjoints_reference(self) -> np.ndarray:
        """The reference adjoints `dL/dv` for every node, shape `(n,)`, by `jax.grad` of the whole graph
        (compiled once with `jax.jit`):
        with respect to the residual `e_v` at `e = 0` for computed nodes (the parents held fixed), with
        respect to the clamped value for clamped nodes."""
        e0 = jnp.zeros(len(self.free))
        x0 = jnp.asarray([self.clamped[v] for v in self.inputs], jnp.float64)
        g_e, g_x = jax.jit(jax.grad(self.loss_of, argnums=(0, 1)))(e0, x0)
        out = np.zeros(self.size)
        out[list(self.free)] = np.asarray(g_e)
        out[list(self.inputs)] = np.asarray(g_x)
        return out


class GraphBuilder:
    """Builds a `ScalarGraph` node by node.

        b = GraphBuilder()
        x = b.clamp("x", 0.7); w = b.clamp("w", 0.9)
        h = b.node("h", lambda u: jnp.tanh(u[0] * u[1]), x, w)
        graph = b.build(output=h, loss=lambda y: 0.5 * (y - 1.0) ** 2)
    """

    def __init__(self):
        self._names: list[str] = []
        self._parents: list[tuple[int, ...]] = []
        self._functions: list[NodeFunction | None] = []
        self._clamped: list[float | None] = []

    def clamp(self, name: str, value: float) -> int:
        """Add a clamped node holding `value`; return its index."""
        return self._add(name, (), None, float(value))

    def node(self, name: str, function: NodeFunction, *parents: int) -> int:
        """Add `v = function(jnp.stack([u_1, ..., u_m]))`; return its index."""
        return self._add(name, tuple(int(u) for u in parents), function, None)

    def _add(self, name, parents, function, value) -> int:
        self._names.append(name)
        self._parents.append(parents)
        self._functions.append(function)
        self._clamped.append(value)
        return len(self._names) - 1

    def build(self, output: int, loss: Callable[[jax.Array], jax.Array]) -> ScalarGraph:
        """The finished graph (validated by `ScalarGraph`)."""
        return ScalarGraph(tuple(self._names), tuple(self._parents), tuple(self._functions),
                           tuple(self._clamped), output, loss)


def squared_error(target: float) -> Callable[[jax.Array], jax.Array]:
    """`L(y) = (y - target)^2 / 2`.

    Example:
        >>> float(squared_error(0.5)(jnp.asarray(1.5)))
        0.5
    """
    return lambda y: 0.5 * (y - target) ** 2


def fan_out_graph(x: float = 0.7, w: Sequence[float] = (0.9, -1.3, 0.6), target: float = 0.25) -> ScalarGraph:
    """The smallest loopy graph: `h = tanh(w1 x)`, `s = h^2`, `y = w2 h + w3 s`, `L = (y - target)^2 / 2`.

    `h` fans out to `s` and `y`, so the factor graph has the loop `h - psi_s - s - psi_y - h`.
    The clamped nodes are `x, w1, w2, w3`.

    Example:
        >>> graph = fan_out_graph()
        >>> graph.names[graph.output], graph.size, graph.factor_graph_cycles() > 0    # loopy: h feeds s and y
        ('y', 7, True)
    """
    b = GraphBuilder()
    xi = b.clamp("x", x)
    w1, w2, w3 = (b.clamp(f"w{k + 1}", value) for k, value in enumerate(w))
    h = b.node("h", lambda u: jnp.tanh(u[0] * u[1]), w1, xi)
    s = b.node("s", lambda u: u[0] ** 2, h)
    y = b.node("y", lambda u: u[0] * u[1] + u[2] * u[3], w2, h, w3, s)
    return b.build(y, squared_error(target))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "identity": lambda a: a,
    "sin": jnp.sin,
}
"""Hidden-layer activations of `scalar_mlp`."""


def scalar_mlp(widths: Sequence[int] = (2, 3, 3, 1), seed: int = 0, activation: str = "tanh",
               target: float = 0.5, weight_scale: float = 1.0) -> ScalarGraph:
    """A fully connected MLP written as scalar nodes, weights and biases clamped.

    Layer `l` unit `j`: `h^l_j = sigma(sum_i W^l_ji h^{l-1}_i + b^l_j)` (the last layer is linear,
    `sigma = identity`). `widths = (d_0, ..., d_L)` with `d_L = 1` (the output `y`); the loss is
    `(y - target)^2 / 2`. Inputs `x_i`, weights `W^l_ji ~ N(0, weight_scale^2 / d_{l-1})` and biases
    `b^l_j ~ N(0, 0.1^2)` are clamped nodes drawn from `numpy.random.default_rng(seed)` (inputs
    `~ N(0, 1)`). With two or more hidden layers every hidden unit fans out to several units of the
    next layer, so the factor graph over the computed nodes has loops.

    Example:
        >>> graph = scalar_mlp((2, 3, 1))                        # 2 inputs, 3 tanh units, 1 output, as scalar nodes
        >>> graph.adjoints_reference().shape == (graph.size,)    # dL/dv for every node, by jax.grad
        True
    """
    widths = tuple(int(d) for d in widths)
    if len(widths) < 2 or widths[-1] != 1 or min(widths) < 1:
        raise ValueError(f"widths must be (d_0, ..., d_L) with every d >= 1 and d_L = 1; got {widths}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    sigma = ACTIVATIONS[activation]
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    layer = [b.clamp(f"x{i}", rng.normal()) for i in range(widths[0])]
    for level in range(1, len(widths)):
        fan_in, last = widths[level - 1], level == len(widths) - 1
        weights = rng.normal(scale=weight_scale / np.sqrt(fan_in), size=(widths[level], fan_in))
        biases = rng.normal(scale=0.1, size=widths[level])
        act = ACTIVATIONS["identity"] if last else sigma
        units = []
        for j in range(widths[level]):
            w = [b.clamp(f"W{level}_{j}{i}", weights[j, i]) for i in range(fan_in)]
            bias = b.clamp(f"b{level}_{j}", biases[j])
            name = "y" if last else f"h{level}_{j}"
            units.append(b.node(name, _unit(act, fan_in), *w, *layer, bias))
        layer = units
    return b.build(layer[0], squared_error(target))


def _unit(sigma: Callable[[jax.Array], jax.Array], fan_in: int) -> NodeFunction:
    """`u = (w_1..w_m, x_1..x_m, b) -> sigma(w . x + b)`."""
    return lambda u: sigma(jnp.dot(u[:fan_in], u[fan_in:2 * fan_in]) + u[2 * fan_in])


__all__ = ["ACTIVATIONS", "GraphBuilder", "NodeFunction", "ScalarGraph", "fan_out_graph", "scalar_mlp", "squared_error"]
