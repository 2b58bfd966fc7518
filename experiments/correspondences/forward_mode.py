"""Forward and reverse mode as in G. Peyre's course notes on automatic differentiation.

- `Dual`: forward mode as an algebra. A dual number is `x + eps x'` with `eps^2 = 0`; the
  arithmetic `(x + eps x')(y + eps y') = xy + eps (x y' + y x')`,
  `1 / (x + eps x') = 1/x - eps x' / x^2`, and every elementary function overloaded as
  `f(x + eps x') = f(x) + eps f'(x) x'` (operator overloading on numpy arrays), so evaluating any
  program on `x + eps v` returns its value and its directional derivative (a JVP).
- `worked_example_*`: the notes' example `f(x, y) = y log x + sqrt(y log x)` with the intermediate
  nodes `a = log x`, `b = y a`, `c = sqrt b`, `f = b + c`, traced node by node: forward mode once per
  input (`d node / dx`, then `d node / dy`), reverse mode once (`df / d node` for every node), each
  step written out as in the notes.
- Jacobian chains: for `f = f_t o ... o f_1` with `A_k = df_k` of shape `(n_k, n_{k-1})`, the
  product `A_t ... A_1` costs `n_0 sum_{k=1}^{t-1} n_k n_{k+1}` multiplications right to left
  (forward mode) and `n_t sum_{k=0}^{t-2} n_k n_{k+1}` left to right (reverse mode); the cheapest
  parenthesisation is the matrix-chain dynamic programme (`optimal_chain`), checked against
  enumeration of all parenthesisations.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class Dual:
    """`value + eps * tangent` with `eps^2 = 0`; `value` and `tangent` are floats or numpy arrays of
    one shape.

    Example:
        >>> z = Dual(2.0, 1.0) * Dual(2.0, 1.0) + 3.0     # (x^2 + 3) at x = 2, dx = 1
        >>> z.value, z.tangent
        (7.0, 4.0)
    """

    __array_priority__ = 1000  # numpy defers `array @ Dual`, `array * Dual` to the Dual methods

    def __init__(self, value, tangent=0.0):
        self.value = value
        self.tangent = tangent if np.ndim(tangent) or not np.ndim(value) else np.zeros_like(value) + tangent

    def __repr__(self) -> str:
        return f"Dual({self.value!r}, {self.tangent!r})"

    @staticmethod
    def lift(other) -> Dual:
        """A constant as a dual number (tangent 0)."""
        return other if isinstance(other, Dual) else Dual(other, np.zeros_like(other, dtype=float) if np.ndim(other) else 0.0)

    def __add__(self, other):
        o = Dual.lift(other)
        return Dual(self.value + o.value, self.tangent + o.tangent)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.value, -self.tangent)

    def __sub__(self, other):
        return self + (-Dual.lift(other))

    def __rsub__(self, other):
        return Dual.lift(other) + (-self)

    def __mul__(self, other):
        o = Dual.lift(other)
        return Dual(self.value * o.value, self.value * o.tangent + o.value * self.tangent)

    __rmul__ = __mul__

    def reciprocal(self) -> Dual:
        """`1 / (x + eps x') = 1/x - eps x' / x^2`."""
        return Dual(1.0 / self.value, -self.tangent / self.value ** 2)

    def __truediv__(self, other):
        return self * Dual.lift(other).reciprocal()

    def __rtruediv__(self, other):
        return Dual.lift(other) * self.reciprocal()

    def __pow__(self, p: float):
        if isinstance(p, Dual):
            raise TypeError("Dual ** Dual is not implemented; write exp(p * log(x))")
        return Dual(self.value ** p, p * self.value ** (p - 1) * self.tangent)

    def __matmul__(self, other):
        o = Dual.lift(other)
        return Dual(self.value @ o.value, self.value @ o.tangent + self.tangent @ o.value)

    def __rmatmul__(self, other):
        o = Dual.lift(other)
        return Dual(o.value @ self.value, o.value @ self.tangent + o.tangent @ self.value)

    def sum(self, axis=None) -> Dual:
        return Dual(np.sum(self.value, axis=axis), np.sum(self.tangent, axis=axis))


def elementary(f, df):
    """`f` overloaded on dual numbers: `f(x + eps x') = f(x) + eps f'(x) x'`."""
    @functools.wraps(f)
    def overloaded(x):
        if isinstance(x, Dual):
            return Dual(f(x.value), df(x.value) * x.tangent)
        return f(x)

    return overloaded


log = elementary(np.log, lambda x: 1.0 / x)
sqrt = elementary(np.sqrt, lambda x: 0.5 / np.sqrt(x))
exp = elementary(np.exp, np.exp)
tanh = elementary(np.tanh, lambda x: 1.0 - np.tanh(x) ** 2)
sin = elementary(np.sin, np.cos)
cos = elementary(np.cos, lambda x: -np.sin(x))


def jvp_dual(fn, primals: Sequence, tangents: Sequence):
    """`(fn(primals), directional derivative)` by evaluating `fn` on dual numbers."""
    out = fn(*(Dual(np.asarray(p, float) if np.ndim(p) else float(p), np.asarray(t, float) if np.ndim(t) else float(t))
               for p, t in zip(primals, tangents)))
    return out.value, out.tangent


# --- the notes' worked example ---------------------------------------------------------------

WORKED_NODES = ("x", "y", "a", "b", "c", "f")
"""Nodes of `f(x, y) = y log x + sqrt(y log x)`: `a = log x`, `b = y a`, `c = sqrt b`, `f = b + c`."""


def worked_example(x, y):
    """`f(x, y) = y log x + sqrt(y log x)` (works on floats and on `Dual`)."""
    a = log(x)
    b = y * a
    c = sqrt(b)
    return b + c


def worked_example_forward(x: float, y: float, wrt: str) -> dict[str, float]:
    """Forward mode, one pass per input (`wrt` is `"x"` or `"y"`): `d node / d wrt` for every node,
    each line the notes' recursion `dx_k = sum_{l in father(k)} [dx_k/dx_l] dx_l`."""
    if wrt not in ("x", "y"):
        raise ValueError(f"wrt must be 'x' or 'y'; got {wrt!r}")
    a = np.log(x)
    b = y * a
    d = {"x": 1.0 if wrt == "x" else 0.0, "y": 1.0 if wrt == "y" else 0.0}
    d["a"] = (1.0 / x) * d["x"]                       # x -> a = log x
    d["b"] = y * d["a"] + a * d["y"]                  # (y, a) -> b = y a
    d["c"] = 1.0 / (2.0 * np.sqrt(b)) * d["b"]        # b -> c = sqrt b
    d["f"] = 1.0 * d["b"] + 1.0 * d["c"]              # (b, c) -> f = b + c
    return d


def worked_example_reverse(x: float, y: float) -> dict[str, float]:
    """Reverse mode, one pass: `df / d node` for every node, the notes' recursion
    `df/dx_k = sum_{m in son(k)} df/dx_m [dx_m/dx_k]` from `f` back to the inputs."""
    a = np.log(x)
    b = y * a
    g = {"f": 1.0}
    g["c"] = g["f"] * 1.0                                    # c -> f = b + c
    g["b"] = g["c"] * 1.0 / (2.0 * np.sqrt(b)) + g["f"] * 1.0  # b -> c = sqrt b, b -> f = b + c
    g["a"] = g["b"] * y                                      # a -> b = y a
    g["y"] = g["b"] * a                                      # y -> b = y a
    g["x"] = g["a"] * (1.0 / x)                              # x -> a = log x
    return g


def worked_example_values(x: float, y: float) -> dict[str, float]:
    """Node values of the worked example."""
    a = float(np.log(x))
    b = y * a
    c = float(np.sqrt(b))
    return {"x": float(x), "y": float(y), "a": a, "b": b, "c": c, "f": b + c}


def worked_example_gradient(x: float, y: float) -> tuple[float, float]:
    """Closed form: `df/dx = (y / x) (1 + 1 / (2 sqrt(y log x)))`, `df/dy = log x (1 + 1 / (2 sqrt(y log x)))`."""
    k = 1.0 + 1.0 / (2.0 * np.sqrt(y * np.log(x)))
    return float(y / x * k), float(np.log(x) * k)


# --- Jacobian chains --------------------------------------------------------------------------


def forward_chain_cost(widths: Sequence[int]) -> int:
    """Multiplications of `A_t (A_{t-1} (... (A_2 A_1)))`: `n_0 sum_{k=1}^{t-1} n_k n_{k+1}`."""
    n = list(widths)
    return n[0] * sum(n[k] * n[k + 1] for k in range(1, len(n) - 1))


def reverse_chain_cost(widths: Sequence[int]) -> int:
    """Multiplications of `((A_t A_{t-1}) ...) A_1`: `n_t sum_{k=0}^{t-2} n_k n_{k+1}`."""
    n = list(widths)
    return n[-1] * sum(n[k] * n[k + 1] for k in range(0, len(n) - 2))


@dataclass(frozen=True)
class Chain:
    """A parenthesisation of `A_t ... A_1` with its multiplication count.

    cost: multiplications (`n p q` per product of `(n, p)` by `(p, q)`).
    order: nested tuples of factor indices `1..t` (`A_k` is `k`), e.g. `(3, (2, 1))`.
    """

    cost: int
    order: object


def optimal_chain(widths: Sequence[int]) -> Chain:
    """The cheapest parenthesisation by dynamic programming over sub-chains `A_j ... A_i`
    (`O(t^3)`): `cost(i, j) = min_{i <= k < j} cost(i, k) + cost(k + 1, j) + n_j n_k n_{i-1}`."""
    n = list(widths)
    t = len(n) - 1
    if t < 1:
        raise ValueError("a chain needs at least one factor (two widths)")
    best: dict[tuple[int, int], Chain] = {(i, i): Chain(0, i) for i in range(1, t + 1)}
    for length in range(2, t + 1):
        for i in range(1, t - length + 2):
            j = i + length - 1
            options = []
            for k in range(i, j):
                right, left = best[(i, k)], best[(k + 1, j)]
                options.append(Chain(right.cost + left.cost + n[j] * n[k] * n[i - 1], (left.order, right.order)))
            best[(i, j)] = min(options, key=lambda c: c.cost)
    return best[(1, t)]


def all_chains(widths: Sequence[int]) -> list[Chain]:
    """Every parenthesisation with its cost (Catalan many), for checking `optimal_chain`."""
    n = list(widths)

    @functools.lru_cache(maxsize=None)
    def chains(i: int, j: int) -> tuple[Chain, ...]:
        if i == j:
            return (Chain(0, i),)
        out = []
        for k in range(i, j):
            for right, left in itertools.product(chains(i, k), chains(k + 1, j)):
                out.append(Chain(right.cost + left.cost + n[j] * n[k] * n[i - 1], (left.order, right.order)))
        return tuple(out)

    return list(chains(1, len(n) - 1))


def forward_order(t: int):
    """`A_t (A_{t-1} (... (A_2 A_1)))` as nested tuples."""
    order = 1
    for k in range(2, t + 1):
        order = (k, order)
    return order


def reverse_order(t: int):
    """`((A_t A_{t-1}) ...) A_1` as nested tuples."""
    order = t
    for k in range(t - 1, 0, -1):
        order = (order, k)
    return order


def evaluate_chain(order, factors: dict[int, object], matmul=np.matmul):
    """The product of `factors[k]` (`A_k`) in the parenthesisation `order`."""
    if isinstance(order, int):
        return factors[order]
    left, right = order
    return matmul(evaluate_chain(left, factors, matmul), evaluate_chain(right, factors, matmul))


def counted_multiplications(order, widths: Sequence[int]) -> int:
    """Scalar multiplications performed when `order` is evaluated by the schoolbook product, counted
    while multiplying arrays of the chain's shapes."""
    count = 0

    def matmul(a, b):
        nonlocal count
        count += a.shape[0] * a.shape[1] * b.shape[1]
        return np.zeros((a.shape[0], b.shape[1]))

    n = list(widths)
    evaluate_chain(order, {k: np.zeros((n[k], n[k - 1])) for k in range(1, len(n))}, matmul)
    return count


__all__ = ["Chain", "Dual", "WORKED_NODES", "all_chains", "cos", "counted_multiplications", "elementary", "evaluate_chain", "exp",
           "forward_chain_cost", "forward_order", "jvp_dual", "log", "optimal_chain", "reverse_chain_cost",
           "reverse_order", "sin", "sqrt", "tanh", "worked_example", "worked_example_forward",
           "worked_example_gradient", "worked_example_reverse", "worked_example_values"]
