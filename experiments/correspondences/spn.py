"""Sum-product networks over discrete variables: backprop through the network polynomial is exact
inference (Darwiche 2003).

An SPN is a rooted DAG of indicator leaves `lambda_{X=x}`, weighted sums and products. Its value
`S(lambda)` is the network polynomial. When the SPN is

- complete: the children of every sum node have the same scope, and
- decomposable: the children of every product node have disjoint scopes,

`S(lambda)` with the evidence indicators (`lambda_{X=x} = [x agrees with e]`) is the probability of
the evidence, and its derivatives are the marginals (with unnormalised weights, the same up to the
factor `S(1)`):

    dS / dlambda_{X=x}             = P(X = x, e \\ X)     (evidence on X itself retracted),
    d log S / d log lambda_{X=x}   = P(X = x | e)         (X not in the evidence).

Derivatives here are backprop through one evaluation of the network (written out in `derivatives`,
and `jax.grad` of `log_value` in log-space); the references
they are checked against are enumeration of the joint table and pgmpy's variable elimination.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Indicator:
    """The leaf `lambda_{variable = value}`."""

    variable: str
    value: int


@dataclass(frozen=True)
class Sum:
    """`sum_k weights[k] * children[k]` (children are node indices; weights > 0)."""

    children: tuple[int, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class Product:
    """`prod_k children[k]`."""

    children: tuple[int, ...]


Node = Indicator | Sum | Product


@dataclass(frozen=True)
class SPN:
    """A sum-product network; `nodes` in topological order (children first), the root last.

    Attributes:
        variables: `{name: cardinality}`; the indicator vector `lambda` lists, variable by variable in
            this order, one entry per value `0..cardinality-1`.
        nodes: the nodes; `Sum`/`Product` children are indices of earlier nodes.
        names: optional node names used in error messages (`node 3` otherwise).
        validate: check completeness and decomposability (default). `False` builds networks that
            violate them, to measure what goes wrong (structural errors are still raised).

    Raises:
        ValueError: an indicator of an unknown variable or value, a child index that is not earlier,
            a sum without positive weights, or a sum that is not complete / a product that is not
            decomposable (naming the node and the scopes).
    """

    variables: Mapping[str, int]
    nodes: tuple[Node, ...]
    names: tuple[str, ...] | None = None
    validate: bool = True

    def __post_init__(self):
        if not self.nodes:
            raise ValueError("an SPN needs at least one node")
        if self.names is not None and len(self.names) != len(self.nodes):
            raise ValueError(f"names has {len(self.names)} entries for {len(self.nodes)} nodes")
        scopes: list[frozenset[str]] = []
        for i, node in enumerate(self.nodes):
            label = self.label(i)
            if isinstance(node, Indicator):
                card = self.variables.get(node.variable)
                if card is None or not 0 <= node.value < card:
                    raise ValueError(f"{label}: indicator of unknown variable/value "
                                     f"{node.variable}={node.value}")
                scopes.append(frozenset({node.variable}))
                continue
            if not node.children or any(not 0 <= c < i for c in node.children):
                raise ValueError(f"{label}: children must be earlier nodes; got {node.children}")
            child_scopes = [scopes[c] for c in node.children]
            if isinstance(node, Sum):
                if len(node.weights) != len(node.children) or not all(w > 0 for w in node.weights):
                    raise ValueError(f"{label}: a sum needs one positive weight per child")
                if self.validate and len(set(child_scopes)) != 1:
                    raise ValueError(f"{label} is not complete: its children have different scopes "
                                     f"{_show(child_scopes)}")
            elif isinstance(node, Product):
                seen: set[str] = set()
                for scope in child_scopes:
                    if self.validate and seen & scope:
                        raise ValueError(f"{label} is not decomposable: its children's scopes "
                                         f"{_show(child_scopes)} overlap on {sorted(seen & scope)}")
                    seen |= scope
            else:
                raise ValueError(f"{label}: not an Indicator, Sum or Product: {node!r}")
            scopes.append(frozenset().union(*child_scopes))
        object.__setattr__(self, "_scopes", tuple(scopes))

    def label(self, i: int) -> str:
        """`node i (kind 'name')` for messages."""
        kind = type(self.nodes[i]).__name__.lower()
        name = f" {self.names[i]!r}" if self.names is not None else ""
        return f"node {i} ({kind}{name})"

    def scope(self, i: int) -> frozenset[str]:
        """Variables below node `i`."""
        return self._scopes[i]

    @property
    def size(self) -> int:
        """Length of the indicator vector, `sum_X |X|`."""
        return sum(self.variables.values())

    def slot(self, variable: str, value: int) -> int:
        """Position of `lambda_{variable = value}` in the indicator vector."""
        offset = 0
        for name, card in self.variables.items():
            if name == variable:
                if not 0 <= value < card:
                    raise ValueError(f"variable {variable!r} has values 0..{card - 1}; got {value}")
                return offset + value
            offset += card
        raise ValueError(f"unknown variable {variable!r}; valid: {', '.join(self.variables)}")

    def indicators(self, evidence: Mapping[str, int] | None = None) -> np.ndarray:
        """`lambda` for `evidence` (`{variable: value}`): 1 everywhere except 0 at the values of an
        observed variable that disagree with its evidence. Shape `(size,)`."""
        lam = np.ones(self.size)
        for variable, value in (evidence or {}).items():
            card = self.variables.get(variable)
            if card is None:
                raise ValueError(f"evidence on unknown variable {variable!r}")
            for other in range(card):
                if other != value:
                    lam[self.slot(variable, other)] = 0.0
            self.slot(variable, value)
        return lam

    def value(self, lam):
        """The network polynomial `S(lambda)`, one bottom-up pass; `lam` shape `(..., size)` (numpy
        arrays are evaluated in numpy, anything else in `jax.numpy`), result shape `(...)`."""
        xp = np if isinstance(lam, np.ndarray) else jnp
        return self._upward(lam, xp)[-1]

    def _upward(self, lam, xp) -> list:
        values: list = []
        for node in self.nodes:
            if isinstance(node, Indicator):
                values.append(lam[..., self.slot(node.variable, node.value)])
            elif isinstance(node, Sum):
                values.append(sum(w * values[c] for w, c in zip(node.weights, node.children)))
            else:
                values.append(xp.prod(xp.stack([values[c] for c in node.children]), axis=0))
        return values

    def log_value(self, log_lam: jax.Array) -> jax.Array:
        """`log S` from `log lambda` in log-space (log-sum-exp at sums, sums at products)."""
        values: list[jax.Array] = []
        for node in self.nodes:
            if isinstance(node, Indicator):
                values.append(log_lam[self.slot(node.variable, node.value)])
            elif isinstance(node, Sum):
                terms = jnp.stack([values[c] for c in node.children])
                values.append(jax.nn.logsumexp(terms, b=jnp.asarray(node.weights)))
            else:
                values.append(jnp.sum(jnp.stack([values[c] for c in node.children])))
        return values[-1]

    def derivatives(self, evidence: Mapping[str, int] | None = None) -> tuple[float, np.ndarray]:
        """`(S, dS/dlambda)` at the evidence indicators by backprop written out (Darwiche's downward
        pass): `adj(root) = 1`; a sum passes `w_k adj` to child `k`; a product passes
        `adj * prod_{j != k} value_j` to child `k` (no division, so zero indicators are fine);
        `dS/dlambda_i` is the sum of `adj` over the leaves of indicator `i`. Shape `(size,)`."""
        lam = self.indicators(evidence)
        values = self._upward(lam, np)
        adj = np.zeros(len(self.nodes))
        adj[-1] = 1.0
        grad = np.zeros(self.size)
        for i in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[i]
            if isinstance(node, Indicator):
                grad[self.slot(node.variable, node.value)] += adj[i]
            elif isinstance(node, Sum):
                for w, c in zip(node.weights, node.children):
                    adj[c] += w * adj[i]
            else:
                for k, c in enumerate(node.children):
                    others = [values[j] for m, j in enumerate(node.children) if m != k]
                    adj[c] += adj[i] * float(np.prod(others))
        return float(values[-1]), grad

    def posteriors(self, evidence: Mapping[str, int] | None = None) -> np.ndarray:
        """`d log S / d log lambda = lambda * (dS/dlambda) / S` at the evidence (the chain rule on
        `derivatives`; `jax.grad` of `log_value` gives the same in log-space); for an unobserved
        variable the entries are its posterior marginal. Shape `(size,)`."""
        S, grad = self.derivatives(evidence)
        return self.indicators(evidence) * grad / S

    def joint_table(self) -> np.ndarray:
        """`S(one-hot(x))` for every joint assignment `x` (forward evaluations only, batched), shape
        `tuple(variables.values())`; with weights normalised at every sum it is the distribution."""
        cards = tuple(self.variables.values())
        rows = np.array([self.indicators(dict(zip(self.variables, x)))
                         for x in itertools.product(*(range(c) for c in cards))])
        return np.asarray(self.value(rows)).reshape(cards)


def _show(scopes: Sequence[frozenset[str]]) -> str:
    return ", ".join("{" + ",".join(sorted(s)) + "}" for s in scopes)


# --- Bayesian networks compiled into SPNs -------------------------------------------------------


@dataclass(frozen=True)
class TreeBayesNet:
    """A discrete Bayesian network in which every variable has at most one parent.

    Attributes:
        variables: `{name: cardinality}` in topological order.
        parents: `{name: parent name or None}`.
        cpts: `{name: table}`; roots: shape `(|X|,)`, `P(X = x)`; others: shape `(|parent|, |X|)`,
            `P(X = x | parent = p)` at `[p, x]`.
    """

    variables: Mapping[str, int]
    parents: Mapping[str, str | None]
    cpts: Mapping[str, np.ndarray]

    def __post_init__(self):
        order = list(self.variables)
        for name, card in self.variables.items():
            parent = self.parents.get(name)
            table = np.asarray(self.cpts[name], dtype=np.float64)
            shape = (card,) if parent is None else (self.variables[parent], card)
            if parent is not None and order.index(parent) >= order.index(name):
                raise ValueError(f"variable {name!r}: its parent {parent!r} must come earlier")
            if table.shape != shape:
                raise ValueError(f"cpt of {name!r} must have shape {shape}; got {table.shape}")
            if np.any(table < 0) or not np.allclose(table.sum(axis=-1), 1.0, rtol=0, atol=1e-12):
                raise ValueError(f"cpt of {name!r} must be non-negative rows summing to 1")

    def joint_table(self) -> np.ndarray:
        """`prod_X P(x | parent)` for every assignment, shape `tuple(variables.values())`
        (enumeration from the CPTs, independent of any SPN)."""
        cards = tuple(self.variables.values())
        names = list(self.variables)
        table = np.zeros(cards)
        for x in itertools.product(*(range(c) for c in cards)):
            p = 1.0
            for i, name in enumerate(names):
                parent = self.parents.get(name)
                cpt = np.asarray(self.cpts[name])
                p *= cpt[x[i]] if parent is None else cpt[x[names.index(parent)], x[i]]
            table[x] = p
        return table

    def to_pgmpy(self):
        """The same network as a `pgmpy.models.DiscreteBayesianNetwork` (needs the `peers` extra);
        states are `0..|X|-1`."""
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.models import DiscreteBayesianNetwork

        net = DiscreteBayesianNetwork([(p, c) for c, p in self.parents.items() if p is not None])
        net.add_nodes_from(self.variables)
        for name, card in self.variables.items():
            table = np.asarray(self.cpts[name], dtype=np.float64)
            parent = self.parents.get(name)
            if parent is None:
                net.add_cpds(TabularCPD(name, card, table.reshape(card, 1)))
            else:
                net.add_cpds(TabularCPD(name, card, table.T, evidence=[parent],
                                        evidence_card=[self.variables[parent]]))
        net.check_model()
        return net

    def to_spn(self) -> SPN:
        """The network polynomial as an SPN, recursively from the roots:

            S = prod_{roots R} sum_r P(r) lambda_r prod_{children C of R} sub(C, r),
            sub(X, p) = sum_x P(x | p) lambda_x prod_{children C of X} sub(C, x),

        complete (every branch of a sum covers the same subtree) and decomposable (a variable's
        indicator and its children's subtrees have disjoint scopes).
        """
        nodes: list[Node] = []
        names: list[str] = []
        leaf: dict[tuple[str, int], int] = {}
        kids = {name: [c for c in self.variables if self.parents.get(c) == name] for name in self.variables}

        def add(node: Node, name: str) -> int:
            nodes.append(node)
            names.append(name)
            return len(nodes) - 1

        for name, card in self.variables.items():
            for x in range(card):
                leaf[(name, x)] = add(Indicator(name, x), f"lambda_{name}={x}")

        def sub(name: str, parent_value: int | None) -> int:
            cpt = np.asarray(self.cpts[name], dtype=np.float64)
            probs = cpt if parent_value is None else cpt[parent_value]
            branches, weights = [], []
            for x in range(self.variables[name]):
                if probs[x] <= 0:
                    continue
                factors = [leaf[(name, x)]] + [sub(child, x) for child in kids[name]]
                branch = factors[0] if len(factors) == 1 else add(Product(tuple(factors)), f"{name}={x}")
                branches.append(branch)
                weights.append(float(probs[x]))
            context = "" if parent_value is None else f"|{self.parents[name]}={parent_value}"
            return add(Sum(tuple(branches), tuple(weights)), f"P({name}{context})")

        roots = [sub(name, None) for name in self.variables if self.parents.get(name) is None]
        if len(roots) > 1:
            add(Product(tuple(roots)), "root")
        return SPN(dict(self.variables), tuple(nodes), tuple(names))


def example_bayes_net() -> TreeBayesNet:
    """The spec's network `A -> B`, `A -> C` over binary variables: `P(A=1) = 0.3`,
    `P(B=1|A) = (0.2, 0.9)`, `P(C=1|A) = (0.6, 0.1)` for `A = (0, 1)`.

    Example:
        >>> net = example_bayes_net()                           # A -> B, A -> C over binary variables
        >>> table = net.joint_table()
        >>> table.shape, round(float(table.sum()), 12)
        ((2, 2, 2), 1.0)
    """
    return TreeBayesNet(
        variables={"A": 2, "B": 2, "C": 2},
        parents={"A": None, "B": "A", "C": "A"},
        cpts={"A": np.array([0.7, 0.3]),
              "B": np.array([[0.8, 0.2], [0.1, 0.9]]),
              "C": np.array([[0.4, 0.6], [0.9, 0.1]])},
    )


# --- references by enumeration of a joint table -----------------------------------------------


def enumerate_derivatives(table: np.ndarray, variables: Sequence[str],
                          evidence: Mapping[str, int] | None = None) -> tuple[float, np.ndarray]:
    """`(P(e), [P(X = x, e \\ X) for X, x])` by summing the joint table, the brute-force
    counterpart of `SPN.derivatives` (indicator order: variable by variable)."""
    evidence = dict(evidence or {})
    names = list(variables)

    def mask(skip: str | None) -> np.ndarray:
        m = np.ones(table.shape, dtype=bool)
        for variable, value in evidence.items():
            if variable == skip:
                continue
            axis = names.index(variable)
            keep = np.zeros(table.shape[axis], dtype=bool)
            keep[value] = True
            m &= keep.reshape([-1 if a == axis else 1 for a in range(table.ndim)])
        return m

    out = []
    for axis, name in enumerate(names):
        restricted = np.where(mask(name), table, 0.0)
        out.append(restricted.sum(axis=tuple(a for a in range(table.ndim) if a != axis)))
    return float(np.where(mask(None), table, 0.0).sum()), np.concatenate(out)


def random_spn(rng: np.random.Generator, n_variables: int, cardinality: int = 2, max_children: int = 3) -> SPN:
    """A random complete, decomposable SPN over `n_variables` variables `X0..` with normalised weights.

    A region over a scope of one variable is a sum over its indicators (a categorical leaf); a larger
    scope is a sum of `1..max_children` products, each over a random partition of the scope into two
    to three non-empty parts, recursively. Weights are Dirichlet(1) draws (floored at 1e-3, renormalised).
    """
    if n_variables < 1 or cardinality < 2:
        raise ValueError(f"random_spn needs n_variables >= 1 and cardinality >= 2; got {n_variables}, {cardinality}")
    variables = {f"X{i}": cardinality for i in range(n_variables)}
    nodes: list[Node] = []

    def add(node: Node) -> int:
        nodes.append(node)
        return len(nodes) - 1

    leaves = {(name, x): add(Indicator(name, x)) for name in variables for x in range(cardinality)}

    def region(scope: list[str]) -> int:
        if len(scope) == 1:
            children = tuple(leaves[(scope[0], x)] for x in range(cardinality))
        else:
            children = []
            for _ in range(int(rng.integers(1, max_children + 1))):
                parts = int(rng.integers(2, min(3, len(scope)) + 1))
                labels = rng.permutation(np.arange(len(scope)) % parts)
                groups = [[v for v, g in zip(scope, labels) if g == k] for k in range(parts)]
                children.append(add(Product(tuple(region(group) for group in groups))))
            children = tuple(children)
        weights = np.maximum(rng.dirichlet(np.ones(len(children))), 1e-3)  # keep every weight > 0
        return add(Sum(children, tuple(float(w) for w in weights / weights.sum())))

    region(list(variables))
    return SPN(variables, tuple(nodes))


__all__ = ["SPN", "Indicator", "Node", "Product", "Sum", "TreeBayesNet", "enumerate_derivatives",
           "example_bayes_net", "random_spn"]
