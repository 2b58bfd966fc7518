"""The least-action gradient inside any JAX program.

`solve(system, theta, x0, memory=..., saveat=...)` returns the final state (or
the states at the indices `saveat`) of the forward map. Under `jax.grad` /
`jax.vjp` its backward pass is the project's conjugate sweep (wired in with
`equinox.filter_custom_vjp`), run by the memory strategy, so a loss written around
it gets the exact discrete gradient, and the honesty rule holds: only the pullback
of one layer map (or of one evaluation of `f`) is ever taken.

A cotangent `c_k` on a saved state `x_k` enters the conjugate field as a jump,
`p_k <- p_k + c_k`. Gradients reach `x0`, every floating-point leaf of
`theta` (dicts, tuples, equinox modules) and, for a discretised field, the
time grid `ts`: step `k` reads only `t_k` and `t_{k+1}`, so

    dl/dt_k = (dPhi_k/dt_k)^T p_{k+1} + (dPhi_{k-1}/dt_k)^T p_k

is summed from `jax.vjp` of one layer map with respect to its two times (done
only when the grid is being differentiated). Other arrays a system holds
(e.g. `Recurrent.inputs`) are constants: differentiating them is an error.
Forward mode (`jax.jvp`) is refused by JAX with "can't apply forward-mode
autodiff (jvp) to a custom_vjp function"; use `integrators.tangent_sweep` for
tangents.
"""

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from lagrangian import LayerMaps, batched

from ._loop import Jumps, finite, first_nonfinite, pull_back_embed
from .discretisation import Discretisation
from .memory import Memory, StoreAll
from .raveled import ravel_state
from .stationary import check_memory


def solve(
    system: LayerMaps,
    theta: PyTree,
    x0: Array | PyTree,
    memory: Memory = StoreAll(),
    saveat: tuple[int, ...] | None = None,
    throw: bool = True,
):
    """The forward map, differentiable by the least-action sweep.

    Args:
        system: the layer maps (a network, or a field discretised by `discretise`).
        theta: parameters (any pytree; an equinox module works).
        x0: initial state `(n,)`, batch `(B, n)`, or one state that is a pytree of arrays of
            one dtype (a discretised field whose `f` takes and returns that pytree; it is
            stepped as the flat vector of its leaves, `integrators.raveled`).
        memory: the strategy of `integrators.memory` for the backward pass.
        saveat: layer indices `k` (0..N) whose states to return: stacked along a
            leading axis (a tuple when the widths change); `None` returns `x_N`.
        throw: raise (through `equinox.error_if`, so also under `jax.jit`) when a state
            is non-finite, naming the first such layer index, or when the conjugate
            field or a gradient of the backward sweep is non-finite.

    Example:
        >>> field = lagrangian.NeuralODE(2)
        >>> system = integrators.discretise(field, integrators.uniform_grid(1.0, 100), "reversible-heun")
        >>> theta, x0 = field.init(jax.random.key(0)), jnp.ones((4, 2))
        >>> loss = lambda th: jnp.sum(integrators.solve(system, th, x0, memory=integrators.Reversible()) ** 2)
        >>> grad = jax.grad(loss)(theta)   # the reversible least-action gradient, O(1) memory in N
        >>> sorted(grad)
        ['W', 'b']
    """
    check_memory(system, memory)
    system, x0, raveling = ravel_state(system, x0)
    if saveat is not None:
        saveat = tuple(saveat)
        bad = [i for i in saveat if isinstance(i, bool) or not float(i).is_integer()]
        if bad:
            raise ValueError(f"saveat takes layer indices (integers 0..{system.depth}); got {bad[0]!r}")
        saveat = tuple(int(i) for i in saveat)
        if not saveat or any(not 0 <= i <= system.depth for i in saveat):
            raise ValueError(f"saveat indices must lie in 0..{system.depth}; got {saveat}")
    grid = None
    if isinstance(system, Discretisation):
        grid, system = system.ts, eqx.tree_at(lambda s: s.ts, system, None)
    system = eqxi.nondifferentiable(
        system,
        msg=f"solve differentiates theta, x0 and the time grid only; the arrays held by "
        f"{type(system).__name__} are constants",
    )
    out = _solve((_as_arrays(theta), x0, grid), system, memory, saveat, throw)
    if raveling is None:
        return out
    return raveling.unravel(out) if saveat is None else raveling.unravel_stacked(out)


def _as_arrays(theta: PyTree) -> PyTree:
    """Floating-point leaves as arrays: `equinox.filter_custom_vjp` drops the cotangent of a
    weakly typed input that `jax.grad` traced directly (`jax.grad(f)(0.7)` gave 0)."""
    def convert(leaf):
        inexact = eqx.is_array_like(leaf) and not isinstance(leaf, bool) and jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
        return jnp.asarray(leaf) if inexact else leaf

    return jax.tree.map(convert, theta)


def _with_grid(system, grid, x0):
    """The system for the states `x0`, with its time grid put back (`solve` passes the grid as a
    differentiable input)."""
    if grid is not None:
        system = eqx.tree_at(lambda s: s.ts, system, grid, is_leaf=lambda x: x is None)
    return batched(system, x0)


def _unique(saveat):
    """The distinct indices in order, and the position of each requested index among them."""
    unique = tuple(sorted(set(saveat)))
    return unique, tuple(unique.index(k) for k in saveat)


def _outputs(system, z_final, saved, saveat):
    """`x_N`, or the saved states (one per requested index, repeats included) through `project`."""
    if saveat is None:
        return system.project(z_final)
    _, positions = _unique(saveat)
    if isinstance(saved, tuple):
        return tuple(system.project(saved[i]) for i in positions)
    return jax.vmap(system.project)(saved[jnp.asarray(positions)])


def _forward(params, system, memory, saveat, throw, grid=False):
    theta, x0, ts = params
    system = _with_grid(system, ts, x0)
    z0 = system.embed(x0, theta)
    unique = None if saveat is None else _unique(saveat)[0]
    z_final, residuals, saved = memory.forward(system, theta, z0, unique, grid)
    outputs = _outputs(system, z_final, saved, saveat)
    if throw:
        outputs = _raise_if_nonfinite(outputs, system, theta, z0)
    return outputs, (z0, z_final, residuals, saved)


def _raise_if_nonfinite(outputs, system, theta, z0):
    """`outputs`, raising at run time if they or `z_N` are non-finite; the message names the first
    non-finite state, found by running the steps again only when the check fails."""
    ok = finite(outputs)
    first = jax.lax.cond(ok, lambda: jnp.asarray(-1), lambda: first_nonfinite(system, theta, z0))
    messages = ["solve: x0 (or its embedding z_0) holds a non-finite value (NaN or inf)"] + [
        f"solve: the state is non-finite (NaN or inf) from layer index {k} on, after step {k - 1} "
        f"(steps 0..{system.depth - 1}); the inputs were finite" for k in range(1, system.depth + 1)
    ] + ["solve: a saved state is non-finite (NaN or inf)"]
    index = jnp.where(first < 0, system.depth + 1, first)
    return eqx.branched_error_if(outputs, ~ok, index, messages)


@eqx.filter_custom_vjp
def _solve(params, system, memory, saveat, throw):
    return _forward(params, system, memory, saveat, throw)[0]


@_solve.def_fwd
def _solve_fwd(perturbed, params, system, memory, saveat, throw):
    return _forward(params, system, memory, saveat, throw, grid=params[2] is not None and perturbed[2])


@_solve.def_bwd
def _solve_bwd(residuals, cotangent, perturbed, params, system, memory, saveat, throw):
    """`p_N` from the output cotangent, jumps from the saved-state cotangents, then the sweep."""
    theta, x0, ts = params
    system = _with_grid(system, ts, x0)
    z0, z_final, kept, saved = residuals

    def pull(z, c):
        return jax.vjp(system.project, z)[1](c)[0]

    jumps = None
    if saveat is None:
        p_final = pull(z_final, cotangent)
    else:
        at: dict[int, Array] = {}
        _, positions = _unique(saveat)
        for i, k in enumerate(saveat):
            c = pull(saved[positions[i]], cotangent[i])
            at[k] = at[k] + c if k in at else c
        p_final = at.pop(system.depth, jnp.zeros_like(z_final))
        if system.layout == "unrolled":
            jumps = tuple(at.get(k, 0.0) for k in range(system.depth))
        elif at:
            jumps = Jumps(jnp.asarray(sorted(at)), jnp.stack([at[k] for k in sorted(at)]))
    grid = ts is not None and perturbed[2]
    back = memory.backward(system, theta, z0, z_final, kept, p_final, jumps, grid=grid)
    grad_x0, grads, grad_ts = pull_back_embed(system, theta, x0, back)
    out = grads, grad_x0, grad_ts if grid else None
    if throw:
        messages = ("solve: the cotangent of its output is non-finite (NaN or inf): the loss around solve "
                    "produced it", "solve: the backward sweep produced a non-finite conjugate field or gradient "
                    "(NaN or inf) from a finite forward pass and finite output cotangents")
        out = eqx.branched_error_if(out, ~finite(out), jnp.where(finite(cotangent), 1, 0), messages)
    return out
