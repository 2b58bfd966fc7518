"""The `System` abstraction: what flows.

A system is either a continuous vector field

    dx/dt = f(t, x, theta)                                   (`VectorField`)

or a sequence of layer maps

    x_{k+1} = Phi_k(x_k, theta_k),   k = 0 .. N-1            (`LayerMaps`)

Parameters are a pytree `theta` passed explicitly, so that gradients
`dl/dtheta` have the same structure as `theta`. Systems are equinox modules:
static structure (widths, activation, step size) lives in the module, the
parameters do not.

A state is a vector `x` of shape `(n,)`; a batch of states has shape `(B, n)`.
Systems are written for one state; batching is `jax.vmap` in the sweep.
"""


import abc
from typing import ClassVar, Literal

import equinox as eqx
from equinox import AbstractClassVar, AbstractVar
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Scalar

Layout = Literal["unrolled", "stacked", "shared"]


class System(eqx.Module):
    """Base class of everything that flows.

    Subclasses provide `init(key) -> theta`, the parameter pytree with the
    shapes the system expects, and `input_dim`, the dimension of `x_0`.

    Example:
        >>> mlp = lagrangian.MLP((3, 5, 2))                  # every System has init and input_dim
        >>> mlp.input_dim, [leaf.shape for leaf in jax.tree.leaves(mlp.init(jax.random.key(0)))]
        (3, [(5, 3), (5,), (2, 5), (2,)])
    """

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, dtype=jnp.float64) -> PyTree:
        """Random parameters `theta` with the shapes this system expects."""

    @property
    @abc.abstractmethod
    def input_dim(self) -> int:
        """Dimension `n_0` of the initial state `x_0`."""

    def check(self, theta: PyTree, x0: Array) -> None:
        """Raise a `ValueError` naming the problem if `theta` or `x0` do not fit.

        Checks the pytree structure and every leaf shape of `theta` against
        `init`, the trailing dimension of `x0`, and that all values are finite.
        """
        expected = jax.eval_shape(self.init, jax.random.key(0))
        check_params(theta, expected, owner=type(self).__name__)
        x0 = jnp.asarray(x0)
        if x0.ndim not in (1, 2):
            raise ValueError(
                f"{type(self).__name__}: x0 must have shape (n,) or (batch, n); got shape {x0.shape}"
            )
        if x0.shape[-1] != self.input_dim:
            raise ValueError(
                f"{type(self).__name__}: x0 has dimension {x0.shape[-1]} but the system's input "
                f"dimension is {self.input_dim} (x0 shape {x0.shape})"
            )
        check_finite(x0, "x0")
        check_finite(theta, "theta")


class VectorField(System):
    """A continuous-time system `dx/dt = f(t, x, theta)`.

    `separable = True` declares a state `x = (q, v)` with `dq/dt` depending on
    `v` only and `dv/dt` on `q` only (required by splitting methods).

    Example:
        >>> field = lagrangian.HarmonicOscillator()           # a VectorField; separable x = (q, v)
        >>> field.separable, field.state_dim
        (True, 2)
    """

    state_dim: AbstractVar[int]
    separable: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, t: Scalar, x: Float[Array, " n"], theta: PyTree) -> Float[Array, " n"]:
        """The vector field `f(t, x, theta)`."""

    @property
    def input_dim(self) -> int:
        return self.state_dim


class LayerMaps(System):
    """A discrete-time system `x_{k+1} = Phi_k(x_k, theta_k)`, `k = 0..depth-1`.

    `layout` says how `theta_k` is read from `theta`:

    - ``"unrolled"``: `theta` is a tuple with one pytree per layer (widths may
      change; the sweep is a Python loop, unrolled under `jit`);
    - ``"stacked"``: every leaf of `theta` has a leading axis of length
      `depth` (the sweep is a `jax.lax.scan`);
    - ``"shared"``: every layer reads the same `theta` (weight sharing, or a
      discretised vector field; the gradient sums over layers).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)          # a LayerMaps with layout "stacked"
        >>> theta = net.init(jax.random.key(0))
        >>> net.apply(0, jnp.ones((5, 2)), net.theta_at(theta, 0)).shape   # Phi_0 on a batch
        (5, 2)
    """

    layout: ClassVar[Layout]
    depth: AbstractVar[int]

    @abc.abstractmethod
    def layer(self, k, x: Float[Array, " n_k"], theta_k: PyTree) -> Float[Array, " n_k1"]:
        """One layer map `x_{k+1} = Phi_k(x_k, theta_k)`."""

    def apply(self, k, x: Float[Array, "*batch n_k"], theta_k: PyTree) -> Float[Array, "*batch n_k1"]:
        """`Phi_k` applied to one state `(n,)` or, by `jax.vmap`, to a batch `(B, n)`."""
        if x.ndim == 2:
            return jax.vmap(lambda x_: self.layer(k, x_, theta_k))(x)
        return self.layer(k, x, theta_k)

    def linearise(self, k, x: Float[Array, " n_k"], theta_k: PyTree):
        """One forward step and its pullback, local to layer `k`:

            x_{k+1} = Phi_k(x_k, theta_k),   pullback(p_{k+1}) = ((dPhi_k/dx_k)^T p_{k+1}, (dPhi_k/dtheta_k)^T p_{k+1})

        by `equinox.filter_vjp` of this one layer map (non-array leaves of `theta_k` get
        `None`). The pullback is a pytree (its leaves are the linearisation's residuals),
        so a loop can store it and apply it later. Subclasses that know a finer structure
        (Runge-Kutta stages) override it.
        """
        return eqx.filter_vjp(lambda x_, th: self.layer(k, x_, th), x, theta_k)

    def conjugate(
        self, k, x: Float[Array, "*batch n_k"], theta_k: PyTree, p_next: Float[Array, "*batch n_k1"]
    ) -> tuple[Float[Array, "*batch n_k"], PyTree]:
        """One conjugate step, local to layer `k`:

            p_k = (dPhi_k/dx_k)^T p_{k+1},   dl/dtheta_k = (dPhi_k/dtheta_k)^T p_{k+1}

        for one state (the pullback of `linearise`) or a batch (`jax.vjp` of `apply`
        on the batch: the theta-cotangent is summed over it).
        """
        if x.ndim == 2:
            return eqx.filter_vjp(lambda x_, th: self.apply(k, x_, th), x, theta_k)[1](p_next)
        return self.linearise(k, x, theta_k)[1](p_next)

    def tangent(self, k, x: Float[Array, " n_k"], theta_k: PyTree, v: Float[Array, " n_k"]):
        """One tangent step `v_{k+1} = (dPhi_k/dx_k) v_k` (`jax.jvp` of one layer map)."""
        return jax.jvp(lambda x_: self.layer(k, x_, theta_k), (x,), (v,))[1]

    def embed(self, x0: Float[Array, " n"], theta: PyTree) -> Float[Array, " m"]:
        """The state `z_0` the layers start from (identity by default).

        Schemes on an augmented state override it, e.g. the asynchronous
        leapfrog starts from `z_0 = (x_0, f(t_0, x_0, theta))`.
        """
        return x0

    def project(self, z: Float[Array, " m"]) -> Float[Array, " n"]:
        """The physical state `x` read from a layer state `z` (identity by default)."""
        return z

    def batched(self) -> "LayerMaps":
        """This system on a batch of states `(B, n)`, with `theta` shared (`lagrangian.Batched`)."""
        return Batched(self)

    def theta_at(self, theta: PyTree, k) -> PyTree:
        """The parameters `theta_k` read by layer `k`."""
        if self.layout == "unrolled":
            return theta[k]
        if self.layout == "stacked":
            return jax.tree.map(lambda a: a[k], theta)
        return theta

    def add_at(self, total: PyTree, k, g_k: PyTree) -> PyTree:
        """`total + (d theta_k / d theta)^T g_k`: the cotangent `g_k` of `theta_k = theta_at(theta, k)`
        added into a cotangent `total` of `theta` (the transpose of `theta_at`)."""
        if self.layout == "unrolled":
            return tuple(jax.tree.map(jnp.add, t, g_k) if i == k else t for i, t in enumerate(total))
        if self.layout == "stacked":
            return jax.tree.map(lambda t, g: t.at[k].add(g, mode="drop"), total, g_k)
        return jax.tree.map(jnp.add, total, g_k)


def check_params(theta: PyTree, expected: PyTree, owner: str = "system") -> None:
    """Compare a parameter pytree with the expected structure and shapes.

    Example:
        >>> lagrangian.check_params({"W": jnp.ones((2, 3))}, {"W": jnp.ones((2, 2))})
        Traceback (most recent call last):
        ValueError: ...
    """
    got_paths, got_def = jax.tree_util.tree_flatten_with_path(theta)
    exp_paths, exp_def = jax.tree_util.tree_flatten_with_path(expected)
    if got_def != exp_def:
        raise ValueError(
            f"{owner}: parameters have structure {got_def}, expected {exp_def} "
            "(wrong number of layers or missing/extra parameter names)"
        )
    for (path, leaf), (_, exp) in zip(got_paths, exp_paths):
        shape = np.shape(leaf)
        if tuple(shape) != tuple(exp.shape):
            raise ValueError(
                f"{owner}: parameter theta{jax.tree_util.keystr(path)} has shape {tuple(shape)}, "
                f"expected {tuple(exp.shape)} (mismatched shapes between layers and parameters)"
            )


def check_finite(tree: PyTree, name: str) -> None:
    """Raise a `ValueError` if any leaf of `tree` holds NaN or infinity.

    Under tracing (inside `jit`) the values are unknown and nothing is checked.

    Example:
        >>> lagrangian.check_finite({"W": jnp.array([1.0, jnp.nan])}, "theta")
        Traceback (most recent call last):
        ValueError: ...
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.core.Tracer):
            continue
        arr = np.asarray(leaf)
        if not np.issubdtype(arr.dtype, np.inexact):
            continue
        bad = ~np.isfinite(arr)
        if bad.any():
            where = jax.tree_util.keystr(path)
            raise ValueError(
                f"{name}{where} holds {int(bad.sum())} non-finite value(s) (NaN or inf); "
                "inputs and parameters must be finite"
            )


# --- batches: one vmap at the boundary ------------------------------------------------------
# A batch of states as one system: `jax.vmap` at the boundary.
# 
# Systems are written for one state, and so is the sweep of `integrators`. Given a
# batch `x0` of shape `(B, n)`, the sweep runs `system.batched()` instead: by default
# `Batched(system)`, whose layer map is the per-state map vmapped over the batch and
# whose pullback is `jax.vjp` of that one batched layer map, so the cotangent of the
# shared `theta` comes out summed over the batch (one matrix product, not `B` outer
# products). A system with its own pullback (`linearise`) that should also serve
# batches overrides `batched` (Runge-Kutta schemes step a `BatchedField`).


class Batched(LayerMaps):
    """`system` applied to every state of a batch `(B, n)`; `theta` is shared.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> batched = lagrangian.Batched(net)
        >>> batched.layer(0, jnp.ones((5, 2)), net.theta_at(net.init(jax.random.key(0)), 0)).shape
        (5, 2)
    """

    system: LayerMaps

    @property
    def layout(self):
        return self.system.layout

    @property
    def depth(self) -> int:
        return self.system.depth

    @property
    def input_dim(self) -> int:
        return self.system.input_dim

    @property
    def ts(self):
        return self.system.ts

    def init(self, key, dtype=None):
        return self.system.init(key) if dtype is None else self.system.init(key, dtype)

    def layer(self, k, x: Float[Array, "B n_k"], theta_k: PyTree) -> Float[Array, "B n_k1"]:
        return jax.vmap(lambda x_: self.system.layer(k, x_, theta_k))(x)

    def apply(self, k, x, theta_k):
        return self.layer(k, x, theta_k)

    def linearise(self, k, x, theta_k):
        return eqx.filter_vjp(lambda x_, th: self.layer(k, x_, th), x, theta_k)

    def conjugate(self, k, x, theta_k, p_next):
        return self.linearise(k, x, theta_k)[1](p_next)

    def tangent(self, k, x, theta_k, v):
        return jax.vmap(lambda x_, v_: self.system.tangent(k, x_, theta_k, v_))(x, v)

    def embed(self, x0, theta):
        return jax.vmap(lambda x_: self.system.embed(x_, theta))(x0)

    def project(self, z):
        return jax.vmap(self.system.project)(z)

    def inverse(self, k, z_next, theta_k):
        return jax.vmap(lambda z_: self.system.inverse(k, z_, theta_k))(z_next)

    def theta_at(self, theta, k):
        return self.system.theta_at(theta, k)

    def add_at(self, total, k, g_k):
        return self.system.add_at(total, k, g_k)

    def on_grid(self, k, pair):
        return Batched(self.system.on_grid(k, pair))


class BatchedField(VectorField):
    """`field` evaluated on every state of a batch `(B, n)`: `f(t, X, theta) = vmap(f)(X)`.

    Example:
        >>> field = lagrangian.NeuralODE(2)
        >>> lagrangian.BatchedField(field)(0.0, jnp.ones((5, 2)), field.init(jax.random.key(0))).shape
        (5, 2)
    """

    field: VectorField

    @property
    def state_dim(self) -> int:
        return self.field.state_dim

    def init(self, key, dtype=None):
        return self.field.init(key) if dtype is None else self.field.init(key, dtype)

    def __call__(self, t, x, theta):
        return jax.vmap(lambda x_: self.field(t, x_, theta))(x)


def batched(system: LayerMaps, x0: Array) -> LayerMaps:
    """`system` for the states `x0`: itself for one state `(n,)`, `system.batched()` for a batch `(B, n)`.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> type(lagrangian.batched(net, jnp.ones((5, 2)))).__name__, lagrangian.batched(net, jnp.ones(2)) is net
        ('Batched', True)
    """
    return system.batched() if x0.ndim == 2 else system
