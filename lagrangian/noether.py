"""Noether charges of learning dynamics, from a declared symmetry generator.

A continuous symmetry of the training risk `R(theta)` is a one-parameter group
`theta -> g_s(theta)` with `R(g_s theta) = R(theta)`; its generator is the
vector field `delta(theta) = d g_s(theta)/ds at s = 0`, a pytree shaped like
`theta`. Differentiating the invariance at `s = 0` gives the infinitesimal
statement every charge below rests on,

    grad R(theta) . delta(theta) = 0          (`invariance_defect` measures it).

All generators here are affine, `delta(theta) = Omega theta + c` (a linear map
`Omega` of the flattened parameters plus a constant), which is the case for
every symmetry of this module (rescaling, translation, the linear group).

Momentum (Hamiltonian) flow. Heavy-ball training without friction is
Hamilton's equations of `H(theta, p) = |p|^2/2 + R(theta)`, the Euler-Lagrange
equations of `L = |theta'|^2/2 - R(theta)` with `p = dL/dtheta'`. Noether's
theorem for the point symmetry `delta` gives the charge

    Q_H(theta, p) = p . delta(theta),                 (`momentum_charge`)
    dQ_H/dt = -grad R . delta + p . Omega p = p . Omega p,

so `Q_H` is conserved exactly when `L` is invariant, i.e. when `delta` is also
an isometry of the kinetic energy: `Omega` antisymmetric (rotations) or
`Omega = 0` (translations). For rescalings (`Omega` symmetric) momentum breaks
the charge at the rate `p . Omega p`. Friction `-gamma p` adds `-gamma Q_H`.

First-order gradient flow. `theta' = -grad R(theta)` has no momentum; it is the
overdamped limit in which `p = theta'` is slaved to the force. A function `Q`
is conserved iff `grad Q . grad R = 0`, which holds for every invariant `R`
when `grad Q = delta`: the generator must itself be a gradient field, i.e.
`Omega` symmetric. Then `Q` is the potential of `delta`, by Poincare's lemma

    Q_GF(theta) = integral_0^1 delta(s theta) . theta ds
                = 1/2 (delta(theta) + delta(0)) . theta       (affine `delta`)
                = 1/2 theta . Omega theta + c . theta,          (`gradient_flow_charge`)

so the first-order charges come from the symmetric (rescaling, translation)
part of the symmetry algebra and the momentum charges from its isometric
(rotation, translation) part; translations give charges of both. Weight decay
`R + lambda |theta|^2 / 2` breaks `Q_GF` at the rate
`dQ_GF/dt = -lambda delta . theta = -2 lambda Q_GF` for linear `delta`
(`-lambda Q_GF` for a pure translation), so `Q_GF(t) = Q_GF(0) exp(-2 lambda t)`.

Closed forms for a multilayer perceptron `theta = ({"W": W_k, "b": b_k})_k`
(`lagrangian.MLP`), checked against the automatic charges in the tests:

- rescaling neuron `i` of layer `k` (positively homogeneous activation, ReLU or
  identity): `Q_GF = 1/2 (|W_k[i, :]|^2 + b_k[i]^2 - |W_{k+1}[:, i]|^2)`,
  incoming minus outgoing squared norms (`rescaling_charges`);
- translation of the logits (softmax cross-entropy): `Q_GF = sum_i b_L[i]`,
  `Q_H = sum_i p_{b_L}[i]` (`bias_sum`);
- the linear group at hidden layer `k` of a linear network,
  `W_k -> G W_k`, `W_{k+1} -> W_{k+1} G^{-1}` with generator
  `delta W_k = Omega W_k`, `delta W_{k+1} = -W_{k+1} Omega`: for symmetric
  `Omega`, `Q_GF = 1/2 tr(Omega C_k)` with the balance matrix
  `C_k = W_k W_k^T - W_{k+1}^T W_{k+1}` (`balance_matrix`; biases, if present,
  add `b_k b_k^T`); for antisymmetric `Omega`, `Q_H = tr(Omega M_k)` with
  `M_k = W_k P_k^T - P_{k+1}^T W_{k+1}` (`angular_momentum_matrix`).

Everything here is a pure function of one parameter state; the only
derivatives are `jax.jvp` of one evaluation of the risk or of the generator.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PyTree, Scalar

Generator = Callable[[PyTree], PyTree]
"""`delta(theta)`: the infinitesimal action of a symmetry, a pytree shaped like `theta`."""


def _dot(a: PyTree, b: PyTree) -> Scalar:
    """`a . b`, summed over every leaf."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def gradient_flow_charge(generator: Generator, theta: PyTree) -> Scalar:
    """`Q_GF = 1/2 (delta(theta) + delta(0)) . theta`, the conserved charge of gradient flow.

    Exact for an affine generator with a symmetric linear part (`generator_defects`
    measures both conditions); see the module docstring for the derivation.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1), activation="relu")
        >>> theta = mlp.init(jax.random.key(0))
        >>> q = lagrangian.gradient_flow_charge(lagrangian.rescaling(layer=0), theta)
        >>> bool(jnp.isclose(q, jnp.sum(lagrangian.rescaling_charges(theta, layer=0))))   # the layer's charge
        True
    """
    zero = jax.tree.map(jnp.zeros_like, theta)
    total = jax.tree.map(jnp.add, generator(theta), generator(zero))
    return 0.5 * _dot(total, theta)


def momentum_charge(generator: Generator, theta: PyTree, momentum: PyTree) -> Scalar:
    """`Q_H = p . delta(theta)`, Noether's charge of the momentum (Hamiltonian) flow.

    `momentum` is shaped like `theta`. Conserved without friction when `delta` is an
    isometry (antisymmetric linear part); see the module docstring.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1), activation="relu")
        >>> theta = mlp.init(jax.random.key(0))
        >>> momentum = jax.tree.map(jnp.ones_like, theta)
        >>> q = lagrangian.momentum_charge(lagrangian.rescaling(layer=0), theta, momentum)   # p . delta(theta)
    """
    return _dot(momentum, generator(theta))


def invariance_defect(risk: Callable[[PyTree], Scalar], generator: Generator, theta: PyTree) -> Scalar:
    """`dR(g_s theta)/ds at s = 0 = grad R . delta(theta)`: zero for a symmetry of `R`.

    One `jax.jvp` of one evaluation of the risk along the generator.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 2), activation="tanh", readout=True)
        >>> theta = mlp.init(jax.random.key(0))
        >>> risk = lambda th: lagrangian.network_risk(mlp, th, jnp.ones((4, 2)), lagrangian.CrossEntropy(jnp.array([0, 1, 0, 1])))
        >>> bool(abs(lagrangian.invariance_defect(risk, lagrangian.translation(layer=1), theta)) < 1e-14)
        True
    """
    return jax.jvp(risk, (theta,), (generator(theta),))[1]


def generator_defects(generator: Generator, theta: PyTree, key) -> dict[str, Scalar]:
    """How far `generator` is from what `gradient_flow_charge` needs, at `theta`.

    With random directions `u, v` (unit pytrees shaped like `theta`) and the
    Jacobian `D = d delta/d theta` (`jax.jvp` of one evaluation of `delta`):

    - ``"affine"``: `|D(theta) u - D(0) u| / |D(0) u|` (zero for an affine generator);
    - ``"symmetric"``: `|u . D v - v . D u| / (|D u| + |D v|)` (zero when `D` is symmetric:
      a gradient field, the condition for a first-order charge);
    - ``"antisymmetric"``: `|u . D v + v . D u| / (|D u| + |D v|)` (zero for an
      isometry: the condition for a momentum charge).

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1))
        >>> defects = lagrangian.generator_defects(lagrangian.rescaling(layer=0), mlp.init(jax.random.key(0)), jax.random.key(1))
        >>> sorted(defects)
        ['affine', 'antisymmetric', 'symmetric']
        >>> bool(defects["affine"] < 1e-14 and defects["symmetric"] < 1e-14)   # linear and symmetric: Q_GF exists
        True
    """
    flat, unravel = ravel_pytree(theta)
    ku, kv = jax.random.split(key)
    u = jax.random.normal(ku, flat.shape, flat.dtype)
    v = jax.random.normal(kv, flat.shape, flat.dtype)
    u, v = u / jnp.linalg.norm(u), v / jnp.linalg.norm(v)

    def flat_generator(x):
        return ravel_pytree(generator(unravel(x)))[0]

    def d(at, w):
        return jax.jvp(flat_generator, (at,), (w,))[1]

    du, dv = d(flat, u), d(flat, v)
    du0 = d(jnp.zeros_like(flat), u)
    scale = jnp.linalg.norm(du) + jnp.linalg.norm(dv)
    tiny = jnp.finfo(flat.dtype).tiny
    return {
        "affine": jnp.linalg.norm(du - du0) / jnp.maximum(jnp.linalg.norm(du0), tiny),
        "symmetric": jnp.abs(jnp.vdot(u, dv) - jnp.vdot(v, du)) / jnp.maximum(scale, tiny),
        "antisymmetric": jnp.abs(jnp.vdot(u, dv) + jnp.vdot(v, du)) / jnp.maximum(scale, tiny),
    }


def charge_scale(generator: Generator, theta: PyTree) -> Scalar:
    """`1/2 (|delta(theta)| + |delta(0)|) |theta|`: the Cauchy-Schwarz bound of `|Q_GF|`.

    Charges are differences of squared norms that can cancel; drifts are reported
    relative to this scale (the size of the terms the charge is made of).

    Example:
        >>> theta = ({"W": jnp.ones((3, 2)), "b": jnp.zeros(3)}, {"W": jnp.ones((1, 3)), "b": jnp.zeros(1)})
        >>> float(lagrangian.charge_scale(lagrangian.rescaling(layer=0), theta)) > 0
        True
    """
    zero = jax.tree.map(jnp.zeros_like, theta)
    norm = lambda t: jnp.sqrt(_dot(t, t))  # noqa: E731
    return 0.5 * (norm(generator(theta)) + norm(generator(zero))) * norm(theta)


# --- generators for multilayer perceptrons (`lagrangian.MLP`: a tuple of {"W", "b"}) --------


def _check_layer(theta, layer: int, needs_next: bool):
    if not isinstance(theta, (tuple, list)) or not all(isinstance(t, dict) for t in theta):
        raise ValueError("MLP symmetry generators need theta as a tuple of {'W', 'b'} dicts (lagrangian.MLP)")
    last = len(theta) - (2 if needs_next else 1)
    if not 0 <= layer <= last:
        raise ValueError(
            f"layer {layer} out of range: this generator needs 0 <= layer <= {last} "
            f"for a network of {len(theta)} layers"
        )


def _replace(theta, updates: dict[int, dict]):
    """`theta` with every leaf zeroed except the `updates[k][name]` given."""
    out = []
    for k, layer in enumerate(theta):
        out.append({name: updates.get(k, {}).get(name, jnp.zeros_like(value)) for name, value in layer.items()})
    return tuple(out)


def rescaling(layer: int, neuron: int | None = None) -> Generator:
    """Rescaling of hidden layer `layer + 1`'s units (the output of layer map `layer`):

        delta W_k[i, :] = W_k[i, :],  delta b_k[i] = b_k[i],  delta W_{k+1}[:, i] = -W_{k+1}[:, i]

    for `k = layer` and the one unit `i = neuron`, or every unit of the layer when
    `neuron` is None (the sum of the per-unit generators). A symmetry when the
    activation after layer `k` is positively homogeneous (ReLU, identity).

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1), activation="relu")
        >>> theta = mlp.init(jax.random.key(0))
        >>> delta = lagrangian.rescaling(layer=0)                  # scale hidden units in, out: a ReLU symmetry
        >>> risk = lambda th: lagrangian.network_risk(mlp, th, jnp.ones((4, 2)), lagrangian.SquaredError())
        >>> bool(abs(lagrangian.invariance_defect(risk, delta, theta)) < 1e-14)
        True
    """

    def generator(theta):
        _check_layer(theta, layer, needs_next=True)
        w, b, w_next = theta[layer]["W"], theta[layer]["b"], theta[layer + 1]["W"]
        units = w.shape[0]
        if neuron is not None and not 0 <= neuron < units:
            raise ValueError(f"neuron {neuron} out of range for a layer of {units} units")
        mask = jnp.ones(units, w.dtype) if neuron is None else jnp.zeros(units, w.dtype).at[neuron].set(1.0)
        return _replace(theta, {
            layer: {"W": mask[:, None] * w, "b": mask * b},
            layer + 1: {"W": -w_next * mask[None, :]},
        })

    return generator


def translation(layer: int) -> Generator:
    """Translation of the logits computed by layer `layer`: `delta b_k = 1` (all else 0).

    A symmetry of softmax cross-entropy when layer `k` is the affine readout.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 2), readout=True)
        >>> delta = lagrangian.translation(layer=1)(mlp.init(jax.random.key(0)))
        >>> delta[1]["b"], float(jnp.sum(jnp.abs(delta[1]["W"])))
        (Array([1., 1.], dtype=float64), 0.0)
    """

    def generator(theta):
        _check_layer(theta, layer, needs_next=False)
        return _replace(theta, {layer: {"b": jnp.ones_like(theta[layer]["b"])}})

    return generator


def linear_group(layer: int, omega: Float[Array, "m m"]) -> Generator:
    """The linear group acting on hidden layer `layer + 1` (width `m`) of a linear network:

        delta W_k = Omega W_k,   delta b_k = Omega b_k,   delta W_{k+1} = -W_{k+1} Omega,

    `k = layer`: the generator of `W_k -> G W_k`, `W_{k+1} -> W_{k+1} G^{-1}`,
    `G = exp(s Omega)`, a symmetry when the activation after layer `k` is the identity.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 2), activation="identity")
        >>> theta = mlp.init(jax.random.key(0))
        >>> omega = jnp.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])   # a rotation of the hidden layer
        >>> risk = lambda th: lagrangian.network_risk(mlp, th, jnp.ones((4, 2)), lagrangian.SquaredError())
        >>> bool(abs(lagrangian.invariance_defect(risk, lagrangian.linear_group(0, omega), theta)) < 1e-14)
        True
    """
    omega = jnp.asarray(omega)
    if omega.ndim != 2 or omega.shape[0] != omega.shape[1]:
        raise ValueError(f"omega must be a square matrix; got shape {omega.shape}")

    def generator(theta):
        _check_layer(theta, layer, needs_next=True)
        w, b, w_next = theta[layer]["W"], theta[layer]["b"], theta[layer + 1]["W"]
        if omega.shape[0] != w.shape[0]:
            raise ValueError(f"omega is {omega.shape[0]}x{omega.shape[0]} but layer {layer} has {w.shape[0]} units")
        om = omega.astype(w.dtype)
        return _replace(theta, {layer: {"W": om @ w, "b": om @ b}, layer + 1: {"W": -w_next @ om}})

    return generator


# --- closed forms -----------------------------------------------------------------------------


def rescaling_charges(theta: PyTree, layer: int) -> Float[Array, " m"]:
    """`1/2 (|W_k[i, :]|^2 + b_k[i]^2 - |W_{k+1}[:, i]|^2)` for every unit `i`, `k = layer`:
    incoming minus outgoing squared norms (their sum is the layer charge).

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 1), activation="relu")
        >>> theta = mlp.init(jax.random.key(0))
        >>> lagrangian.rescaling_charges(theta, layer=0).shape       # one charge per hidden unit
        (3,)
    """
    _check_layer(theta, layer, needs_next=True)
    w, b, w_next = theta[layer]["W"], theta[layer]["b"], theta[layer + 1]["W"]
    return 0.5 * (jnp.sum(w**2, axis=1) + b**2 - jnp.sum(w_next**2, axis=0))


def bias_sum(theta: PyTree, layer: int) -> Scalar:
    """`sum_i b_k[i]`, `k = layer` (pass the momentum pytree for `Q_H = sum_i p_{b_k}[i]`).

    Example:
        >>> lagrangian.bias_sum(({"W": jnp.ones((2, 2)), "b": jnp.array([1.0, 2.0])},), layer=0)
        Array(3., dtype=float64)
    """
    _check_layer(theta, layer, needs_next=False)
    return jnp.sum(theta[layer]["b"])


def balance_matrix(theta: PyTree, layer: int) -> Float[Array, "m m"]:
    """`C_k = W_k W_k^T + b_k b_k^T - W_{k+1}^T W_{k+1}`, `k = layer`.

    Conserved by gradient flow of a linear network (Arora et al. 2018's balancedness);
    `Q_GF` of `linear_group(k, Omega)` for symmetric `Omega` is `1/2 tr(Omega C_k)`.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 2), activation="identity")
        >>> lagrangian.balance_matrix(mlp.init(jax.random.key(0)), layer=0).shape     # hidden width 3
        (3, 3)
    """
    _check_layer(theta, layer, needs_next=True)
    w, b, w_next = theta[layer]["W"], theta[layer]["b"], theta[layer + 1]["W"]
    return w @ w.T + jnp.outer(b, b) - w_next.T @ w_next


def angular_momentum_matrix(theta: PyTree, momentum: PyTree, layer: int) -> Float[Array, "m m"]:
    """`M_k = W_k P_k^T + b_k p_{b_k}^T - P_{k+1}^T W_{k+1}`, `k = layer`, so that
    `Q_H` of `linear_group(k, Omega)` is `tr(Omega M_k)`; its antisymmetric part
    `M_k - M_k^T` is conserved by frictionless momentum flow of a linear network.

    Example:
        >>> mlp = lagrangian.MLP((2, 3, 2), activation="identity")
        >>> theta = mlp.init(jax.random.key(0))
        >>> m = lagrangian.angular_momentum_matrix(theta, jax.tree.map(jnp.ones_like, theta), layer=0)
        >>> m.shape
        (3, 3)
    """
    _check_layer(theta, layer, needs_next=True)
    w, b, w_next = theta[layer]["W"], theta[layer]["b"], theta[layer + 1]["W"]
    pw, pb, pw_next = momentum[layer]["W"], momentum[layer]["b"], momentum[layer + 1]["W"]
    return w @ pw.T + jnp.outer(b, pb) - pw_next.T @ w_next
