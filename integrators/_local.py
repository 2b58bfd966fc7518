"""Local terms of the discrete action, one node at a time (docs/design.md 2.6).

Shared by the physical simulations (`copies`, `asynchronous`, `substrate`). Node `k`
holds `(x_k, p_k)`; the only couplings are the terms `p_{k+1} . Phi_k(x_k)` of

    S_d = w l(x_N) + sum_k p_{k+1} . ( Phi_k(x_k, theta_k) - x_{k+1} ),

so the drive of node `k`,

    forward    Phi_{k-1}(x_{k-1}) - x_k                     (k = 1..N)
    conjugate  (dPhi_k/dx_k)^T p_{k+1} - p_k                 (k = 0..N-1),   w grad l(x_N) - p_N,

reads nodes `k - 1`, `k`, `k + 1` and nothing else. `targets` evaluates the two
targets of every node from the values the node *reads* (which may be stale copies
of its neighbours', see `integrators.asynchronous`). Every derivative is the
pullback of one layer map (`LayerMaps.conjugate`).

Mismatched feedback (`integrators.substrate`): a substrate whose backward force
comes from a separate coupling `B_k` rather than the transposed forward weights
`W_k`. For a layer whose pre-activation is `W_k x + b_k` (MLP and ResNet layers),
the pullback with `B_k` in place of `W_k` is

    (dPhi_k/dx_k)_B^T p = (dPhi_k/dx_k)^T p + (B_k - W_k)^T (dPhi_k/db_k)^T p,

read from the same one-layer pullback.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .relax import layers_vmapped


def is_unrolled(system) -> bool:
    return system.layout == "unrolled"


def initial_fields(system, theta, x0):
    """`x_k = x_0` (layers of one shape) or `x_k = 0` (changing widths), `p_k = 0`.

    The widths are found by `jax.eval_shape` of one layer map at a time (no forward pass).
    """
    if is_unrolled(system):
        shapes = [x0.shape]
        for k in range(system.depth):
            shapes.append(jax.eval_shape(lambda x, th: system.apply(k, x, th),
                                         jax.ShapeDtypeStruct(shapes[-1], x0.dtype), theta[k]).shape)
        xs = (x0, *[jnp.zeros(sh, x0.dtype) for sh in shapes[1:]])
        return xs, tuple(jnp.zeros(sh, x0.dtype) for sh in shapes)
    xs = jnp.broadcast_to(x0, (system.depth + 1,) + x0.shape)
    return xs, jnp.zeros_like(xs)


def check_feedback(system, theta, feedback):
    """A `ValueError` unless `feedback` holds one `B_k` of the shape of each `W_k`."""
    if feedback is None:
        return
    if system.layout == "shared":
        raise ValueError("mismatched feedback needs one coupling per layer (layout 'stacked' or 'unrolled')")
    weights = [theta[k]["W"] for k in range(system.depth)] if is_unrolled(system) else [theta["W"]]
    given = list(feedback) if is_unrolled(system) else [feedback]
    if len(given) != len(weights) or any(jnp.shape(b) != jnp.shape(w) for b, w in zip(given, weights)):
        raise ValueError("feedback must hold one matrix B_k of the shape of each forward weight W_k")


def pullback(system, k, x, theta_k, p_next, feedback_k=None):
    """`((dPhi_k/dx_k)^T p_{k+1}, (dPhi_k/dtheta_k)^T p_{k+1})` at one state or a batch (the
    theta-cotangent summed over it), with `B_k` in place of `W_k` in the `x`-pullback if given."""
    if x.ndim == 2:
        back, grads = jax.vmap(lambda x_, p_: pullback(system, k, x_, theta_k, p_, feedback_k))(x, p_next)
        return back, jax.tree.map(lambda g: jnp.sum(g, axis=0), grads)
    back, grads = system.conjugate(k, x, theta_k, p_next)
    if feedback_k is not None:
        back = back + (feedback_k - theta_k["W"]).T @ grads["b"]
    return back, grads


def targets(system, theta, loss, x_in, x_at, p_in, x_final, loss_weight=1.0, feedback=None):
    """The targets of every node, from the values each node reads.

    - `phi[j] = Phi_j(x_in[j])`, `j = 0..N-1`: the target of `x_{j+1}` (`x_in[j]` is the `x_j`
      node `j + 1` reads);
    - `back[j] = (dPhi_j/dx_j)^T p_in[j]` at `x_at[j]`, `j = 0..N-1`: the target of `p_j`
      (`p_in[j]` is the `p_{j+1}` node `j` reads, `x_at[j]` its own `x_j`);
    - `grads[j] = (dPhi_j/dtheta_j)^T p_in[j]` at `x_at[j]`: the gradient read at node `j`
      (summed over layers for shared parameters);
    - `p_final = w grad l(x_final)`: the target of `p_N`.

    `x_in`, `x_at`, `p_in` have `N` entries (a leading axis, or tuples for changing widths).
    """
    _, grad_l = loss.grad(x_final)
    p_final = loss_weight * grad_l
    if is_unrolled(system):
        n = system.depth
        phi = tuple(system.apply(j, x_in[j], theta[j]) for j in range(n))
        fb = feedback if feedback is not None else (None,) * n
        back, grads = zip(*[pullback(system, j, x_at[j], theta[j], p_in[j], fb[j]) for j in range(n)])
        return phi, tuple(back), tuple(grads), p_final

    def local(k, theta_k, xi, xa, pi, *fb):
        return system.apply(k, xi, theta_k), *pullback(system, k, xa, theta_k, pi, *fb)

    extra = () if feedback is None else (feedback,)
    phi, back, grads = layers_vmapped(system, local, theta, x_in, x_at, p_in, *extra)
    if system.layout == "shared":
        grads = jax.tree.map(lambda g: jnp.sum(g, axis=0), grads)
    return phi, back, grads, p_final


def head(fields):
    """Entries `0..N-1` of a field (array or tuple)."""
    return fields[:-1]


def tail(fields):
    """Entries `1..N` of a field (array or tuple)."""
    return fields[1:]


def stack_like(fields, first, rest):
    """A field of the layout of `fields` from its entry 0 and entries `1..N`."""
    if isinstance(fields, tuple):
        return (first, *rest)
    return jnp.concatenate([first[None], rest])


def append_like(fields, rest, last):
    """A field of the layout of `fields` from its entries `0..N-1` and entry `N`."""
    if isinstance(fields, tuple):
        return (*rest, last)
    return jnp.concatenate([rest, last[None]])


def tmap(fn, *fields):
    """`fn` entry by entry over fields of one layout (arrays act at once)."""
    if isinstance(fields[0], tuple):
        return tuple(fn(*entries) for entries in zip(*fields))
    return fn(*fields)


def largest(fields) -> jax.Array:
    """`max |entry|` over a field."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(f)) for f in jax.tree.leaves(fields)]))
