"""The one stepping loop over the doubled phase space `(z, p)`.

    forward step     z_{k+1} = Phi_k(z_k, theta_k)
    conjugate step   p_k = (dPhi_k/dz_k)^T p_{k+1} + c_k,   G += (dPhi_k/dtheta_k)^T p_{k+1}

`c_k` is the cotangent of a saved state `z_k` (a jump of the conjugate field) and
`G` the running cotangent of `theta` (`LayerMaps.add_at` puts step `k`'s share where
`theta_at` read it). Every derivative is the pullback of one layer map
(`LayerMaps.linearise`, or `conjugate`); nothing differentiates through the loop.
The memory strategies (`integrators.memory`) compose these steps into their own
forward and backward passes; `sweep` and `solve` run them.

Steps `k >= N` are identity maps when a strategy asks for `masked` steps (the
padding of recursive checkpointing to `m ** levels` steps).
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree, Scalar

from lagrangian import LayerMaps


def scan(system: LayerMaps, body, carry, xs=None, length: int | None = None, reverse: bool = False):
    """`jax.lax.scan(body, carry, xs, length, reverse)` over steps of `system`.

    Layers of changing shape cannot be stacked: for them the same loop runs
    unrolled in Python (under `jit`), with the step index a Python integer, `xs` a
    tuple with one entry per step and the outputs returned as such a tuple.
    """
    if system.layout != "unrolled":
        return jax.lax.scan(body, carry, xs, length=length, reverse=reverse)
    n = len(xs) if xs is not None else length
    ys = [None] * n
    for i in reversed(range(n)) if reverse else range(n):
        carry, ys[i] = body(carry, None if xs is None else xs[i])
    return carry, tuple(ys)


def forward_step(system: LayerMaps, theta: PyTree, k, z, masked: bool = False):
    """`Phi_k(z)`; with `masked`, the identity for `k >= N`."""
    z_next = system.layer(k, z, system.theta_at(theta, k))
    return jnp.where(k < system.depth, z_next, z) if masked else z_next


def run(system: LayerMaps, theta: PyTree, z, k0, length: int, masked: bool = False):
    """`length` forward steps from step `k0`, keeping only the last state (memory O(1))."""

    def body(carry, _):
        z, k = carry
        return (forward_step(system, theta, k, z, masked), k + 1), None

    (z, _), _ = scan(system, body, (z, k0), length=length)
    return z


def finite(tree: PyTree):
    """Whether every floating-point value of `tree` is finite (a traced boolean)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree) if eqx.is_inexact_array(leaf)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def first_nonfinite(system: LayerMaps, theta: PyTree, z0):
    """The first index `k` whose state `z_k` holds a non-finite value (`-1` if none): the forward
    steps run once more, keeping one state, to name where a failed solve went wrong."""

    def body(carry, _):
        z, k, first = carry
        z_next = forward_step(system, theta, k, z)
        return (z_next, k + 1, jnp.where((first < 0) & ~finite(z_next), k + 1, first)), None

    start = jnp.where(finite(z0), -1, 0)
    (_, _, first), _ = scan(system, body, (z0, 0, start), length=system.depth)
    return first


class Jumps(eqx.Module):
    """The cotangents `c_k` of the saved states `z_k` (`k < N`), at their sorted, distinct indices:
    `jumps[k]` is `c_k`, or zero where no state is saved. Found by binary search, so the memory is
    that of the saved states, not O(N) (which `Reversible()` memory would otherwise lose)."""

    indices: Int[Array, " m"]
    values: Array

    def __getitem__(self, k):
        slot = jnp.minimum(jnp.searchsorted(self.indices, k), self.indices.shape[0] - 1)
        return jnp.where(self.indices[slot] == k, self.values[slot], jnp.zeros_like(self.values[0]))


class Carry(NamedTuple):
    """What the conjugate steps carry: `p_k`, the cotangent of `theta`, and the cotangent
    of the time grid `ts` (`None` unless the grid is differentiated)."""

    p: Array
    grad: PyTree
    grad_ts: Array | None


def zero_carry(system: LayerMaps, theta: PyTree, p_final, grid: bool) -> Carry:
    grads = jax.tree.map(jnp.zeros_like, eqx.filter(theta, eqx.is_inexact_array))
    return Carry(p_final, grads, jnp.zeros_like(system.ts) if grid else None)


def time_cotangent(system, theta_k, k, z, p_next):
    """`(dl/dt_k, dl/dt_{k+1})` through step `k`: the pullback of `p_{k+1}` by `jax.vjp` of this
    one layer map with respect to its two grid times."""
    pair = jax.lax.dynamic_slice_in_dim(system.ts, k, 2)
    _, pullback = jax.vjp(lambda pair_: system.on_grid(k, pair_).layer(0, z, theta_k), pair)
    return pullback(p_next)[0]


def conjugate_step(system: LayerMaps, theta: PyTree, k, carry: Carry, pullback, z=None,
                   jumps=None, masked: bool = False) -> Carry:
    """One conjugate step through the pullback of layer `k` (`LayerMaps.linearise`).

    `jumps[k]` is added to `p_k`; `z = z_k` is needed only for the time cotangent. With
    `masked`, steps `k >= N` leave the carry unchanged.
    """
    p, g = pullback(carry.p)
    if jumps is not None:
        p = p + jumps[k]
    grad_ts = carry.grad_ts
    if grad_ts is not None:
        c = time_cotangent(system, system.theta_at(theta, k), k, z, carry.p)
    if masked:
        valid = k < system.depth
        p = jnp.where(valid, p, carry.p)
        g = jax.tree.map(lambda a: jnp.where(valid, a, jnp.zeros_like(a)), g)
        if grad_ts is not None:
            c = jnp.where(valid, c, 0.0)
    if grad_ts is not None:
        grad_ts = grad_ts.at[k].add(c[0], mode="drop").at[k + 1].add(c[1], mode="drop")
    return Carry(p, system.add_at(carry.grad, k, g), grad_ts)


def conjugate_from_states(system: LayerMaps, theta: PyTree, zs, carry: Carry, k0=0,
                          jumps=None, masked: bool = False):
    """The conjugate steps `k0 + len(zs) - 1, ..., k0` reading the stored input states
    `zs[i] = z_{k0 + i}`; returns the carry and the conjugate field `p_{k0} ..` of each step."""

    def body(state, z):
        carry, k = state
        k = k - 1
        _, pullback = system.linearise(k, z, system.theta_at(theta, k))
        carry = conjugate_step(system, theta, k, carry, pullback, z, jumps, masked)
        return (carry, k), carry.p

    n = len(zs) if isinstance(zs, tuple) else jax.tree.leaves(zs)[0].shape[0]
    (carry, _), ps = scan(system, body, (carry, k0 + n), zs, reverse=True)
    return carry, ps


def stored_states(system: LayerMaps, theta: PyTree, z0, k0, length: int, masked: bool = False):
    """`length` forward steps from step `k0`: the last state and the input state of each step."""

    def body(carry, _):
        z, k = carry
        return (forward_step(system, theta, k, z, masked), k + 1), z

    (z, _), zs = scan(system, body, (z0, k0), length=length)
    return z, zs


class Backward(NamedTuple):
    """What a memory strategy's backward pass returns: `p_0`, `dl/dtheta`, the states
    `z_0..z_N` and the conjugate field `p_0..p_N` (each `None` if the strategy does not
    keep it), the reconstruction error of a reversible pass (or `None`) and `dl/dts`
    (or `None`)."""

    p0: Array
    grad: PyTree
    zs: Array | tuple[Array, ...] | None
    ps: Array | tuple[Array, ...] | None
    reconstruction_error: Scalar | None
    grad_ts: Array | None

    @classmethod
    def of(cls, carry: Carry, zs=None, ps=None, reconstruction_error=None) -> "Backward":
        return cls(carry.p, carry.grad, zs, ps, reconstruction_error, carry.grad_ts)


def append(steps, last):
    """`(*steps, last)` for per-step tuples, the stacked array with `last` appended otherwise."""
    if isinstance(steps, tuple):
        return (*steps, last)
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), steps, last)


def forward_pass(system: LayerMaps, theta: PyTree, z0, record, saveat: tuple[int, ...] | None = None):
    """The forward steps `0..N-1` from `z0`: `(z_N, kept, saved)`.

    `record(k, z_k) -> (z_{k+1}, item)` takes one step and says what to keep of it
    (`kept` stacks the items, `None` items keep nothing); `saved` holds the states at
    the distinct, sorted indices `saveat` (or is `None`).
    """
    saves = _SaveBuffer(system, z0, saveat)

    def body(carry, _):
        z, k, buf = carry
        z_next, item = record(k, z)
        return (z_next, k + 1, saves.put(buf, k + 1, z_next)), item

    (z_final, _, buf), kept = scan(system, body, (z0, 0, saves.initial), length=system.depth)
    return z_final, kept, saves.states(buf)


class _SaveBuffer:
    """The states at the indices `saveat`, filled while the forward loop runs: a fixed-size
    array written at the slot of each saved index (layers of one shape), or a dict keyed by
    index (layers of changing shape, whose loop index is a Python integer)."""

    def __init__(self, system, z0, saveat):
        self.saveat, self.unrolled = saveat, system.layout == "unrolled"
        if saveat is None:
            self.initial = None
        elif self.unrolled:
            self.initial = {0: z0} if 0 in saveat else {}
        else:
            self.indices = jnp.asarray(saveat)
            self.initial = jnp.zeros((len(saveat),) + z0.shape, z0.dtype).at[self._slot(0)].set(z0, mode="drop")

    def _slot(self, k):
        """The buffer row of step `k`, or `len(saveat)` (dropped) if it is not saved."""
        hit = self.indices == k
        return jnp.where(jnp.any(hit), jnp.argmax(hit), len(self.saveat))

    def put(self, buf, k, z):
        if buf is None:
            return None
        if self.unrolled:
            return {**buf, k: z} if k in self.saveat else buf
        return buf.at[self._slot(k)].set(z, mode="drop")

    def states(self, buf):
        if buf is None or not self.unrolled:
            return buf
        return tuple(buf[k] for k in self.saveat)


def pull_back_embed(system: LayerMaps, theta: PyTree, x0, back: Backward):
    """`(dl/dx_0, dl/dtheta, dl/dts)` from the backward pass: `p_0` pulled back through `embed`
    (`jax.vjp` of that one map), whose dependence on `theta` (and on the first two grid
    times, when `dl/dts` is asked for) is added."""
    _, pullback = eqx.filter_vjp(system.embed, x0, theta)
    grad_x0, grad_embed = pullback(back.p0)
    grads = jax.tree.map(jnp.add, back.grad, grad_embed)
    if back.grad_ts is None:
        return grad_x0, grads, None
    _, pullback = jax.vjp(lambda pair: system.on_grid(0, pair).embed(x0, theta), system.ts[:2])
    return grad_x0, grads, back.grad_ts.at[:2].add(pullback(back.p0)[0])
