"""Memory strategies: how the conjugate sweep obtains what it reads at step `k`.

The sweep runs backward from `p_N`; step `k` needs the pullback of `Phi_k` at `x_k`.
Each strategy is one class that carries its own forward pass (what it keeps), its
backward pass (where `x_k` comes from), its applicability check and its cost model,
as diffrax's adjoints carry their `loop`:

- `StoreAll()`: keep every state `x_0..x_{N-1}`; each conjugate step re-linearises
  its layer. Memory O(N) states.
- `StoreStages()`: keep the linearisation of every step (its stage values and the
  residuals of their pullbacks); the conjugate pass recomputes nothing. The memory
  and arithmetic of `jax.grad` through the scan.
- `Checkpoint(levels)`: keep `m` states per level, `m = ceil(N^(1/levels))`, and
  recompute the others segment by segment (recursive checkpointing). Memory
  O(levels N^(1/levels)) states; `Checkpoint.logarithmic()` (the bisection schedule)
  gives O(log N) states for O(N log N) recomputation.
- `Reversible()`: keep nothing; reconstruct `x_k` from `x_{k+1}` with the scheme's
  algebraic inverse (`system.inverse`, or `system.unstep`, which also returns the
  step's pullback from the same evaluations). Memory O(1) in `N`. The reconstruction error
  is measured (at `x_0`) and reported, not assumed zero.

Every strategy computes the same discrete conjugate field; only the source of `x_k`
differs.
"""

import abc
import functools
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from lagrangian import Batched, LayerMaps

from ._loop import append, conjugate_from_states, conjugate_step, forward_pass, forward_step, run, scan, stored_states, zero_carry
from ._loop import Backward
from .reversible import reversible_name
from .tableau import ButcherTableau


class Cost(NamedTuple):
    """What a sweep over `steps` layers costs, in layer maps:

    - `evaluations`: forward evaluations of a layer map (the forward pass, plus the
      recomputation of checkpointed segments and reversible inverse steps);
    - `relinearisations`: evaluations redone in the backward pass to linearise a step
      (its stage values), before its pullback;
    - `pullbacks`: VJPs of a layer map;
    - `stored`: states (or step linearisations) held at once.

    Example:
        >>> integrators.StoreAll().cost(100).stored, integrators.Checkpoint.logarithmic().cost(1024).stored
        (101, 11)
    """

    evaluations: int
    relinearisations: int
    pullbacks: int
    stored: int


class Memory(eqx.Module):
    """A memory strategy: its forward pass (`forward`), its backward pass (`backward`),
    whether it applies to a system (`check`) and what it costs (`cost`). Subclasses are
    final; a new strategy is one new class.

    Example:
        >>> [type(integrators.memory_named(n)).__name__ for n in ("store-all", "checkpoint", "reversible")]
        ['StoreAll', 'Checkpoint', 'Reversible']
    """

    def check(self, system: LayerMaps) -> None:
        """Raise a `ValueError` naming the reason if this strategy cannot sweep `system`."""

    @abc.abstractmethod
    def cost(self, steps: int) -> Cost:
        """The cost of a sweep over `steps` layers with this strategy."""

    @abc.abstractmethod
    def forward(self, system: LayerMaps, theta: PyTree, z0, saveat=None, grid: bool = False):
        """The forward pass: `(z_N, residuals, saved)`, `residuals` what `backward` reads."""

    @abc.abstractmethod
    def backward(self, system: LayerMaps, theta: PyTree, z0, z_final, residuals, p_final,
                 jumps=None, grid: bool = False) -> Backward:
        """The conjugate pass from `p_N`; `jumps[k]` added to `p_k`; with `grid`, `dl/dts` too."""


def _unrolled(memory, system):
    if system.layout == "unrolled":
        raise ValueError(
            f"{type(system).__name__} has layers of changing shape (layout 'unrolled'); {type(memory).__name__} "
            "memory needs layers of one shape; StoreAll or StoreStages applies to it"
        )


class StoreAll(Memory):
    """Store every state `x_0..x_N` (and return the whole conjugate field `p_0..p_N`).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=8)
        >>> sol = integrators.sweep(net, net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(),
        ...                         memory=integrators.StoreAll())
        >>> sol.xs.shape, sol.ps.shape                       # every x_k and p_k, k = 0..N
        ((9, 2), (9, 2))
    """

    def cost(self, steps):
        return Cost(evaluations=steps, relinearisations=steps, pullbacks=steps, stored=steps + 1)

    def forward(self, system, theta, z0, saveat=None, grid=False):
        def record(k, z):
            return forward_step(system, theta, k, z), z

        return forward_pass(system, theta, z0, record, saveat)

    def backward(self, system, theta, z0, z_final, residuals, p_final, jumps=None, grid=False):
        carry = zero_carry(system, theta, p_final, grid)
        carry, ps = conjugate_from_states(system, theta, residuals, carry, jumps=jumps)
        return Backward.of(carry, ps=append(ps, p_final), zs=append(residuals, z_final))


class StoreStages(Memory):
    """Store the linearisation of every step (`LayerMaps.linearise`: the stage values of a
    Runge-Kutta step and the residuals of their pullbacks); the conjugate pass applies the
    stored pullbacks and recomputes nothing: the memory and arithmetic of `jax.grad`.

    Example:
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 50), "rk4")
        >>> theta, x0, loss = ode.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> g = integrators.sweep(ode, theta, x0, loss, memory=integrators.StoreStages()).grad
        >>> bool(jnp.allclose(g["W"], integrators.sweep(ode, theta, x0, loss).grad["W"], rtol=1e-13))
        True
    """

    def cost(self, steps):
        return Cost(evaluations=steps, relinearisations=0, pullbacks=steps, stored=steps)

    def forward(self, system, theta, z0, saveat=None, grid=False):
        shared = jax.tree.leaves((theta, system))

        def record(k, z):
            z_next, pullback = system.linearise(k, z, system.theta_at(theta, k))
            return z_next, (_StoredPullback.split(pullback, shared), z if grid else None)

        return forward_pass(system, theta, z0, record, saveat)

    def backward(self, system, theta, z0, z_final, residuals, p_final, jumps=None, grid=False):
        shared = jax.tree.leaves((theta, system))

        def body(state, step):
            carry, k = state
            k = k - 1
            stored, z = step
            return (conjugate_step(system, theta, k, carry, stored.rebuild(shared), z, jumps), k), None

        carry = zero_carry(system, theta, p_final, grid)
        (carry, _), _ = scan(system, body, (carry, system.depth), residuals, reverse=True)
        return Backward.of(carry)


class _StoredPullback(eqx.Module):
    """A step's pullback as `StoreStages` keeps it: its leaves that vary with the step
    (stage values, activations), and for each leaf the same object as a leaf of `theta` or
    of the system, if it is one. Those (a weight matrix the pullback multiplies by) are
    the same at every step; stacked with the others they would store the parameters once
    per stage and step. `rebuild` puts them back from the one copy.
    """

    varying: tuple
    structure: jax.tree_util.PyTreeDef = eqx.field(static=True)
    shared_at: tuple = eqx.field(static=True)

    @classmethod
    def split(cls, pullback, shared: list) -> "_StoredPullback":
        leaves, structure = jax.tree.flatten(pullback)
        shared_at = tuple(next((j for j, s in enumerate(shared) if leaf is s), None) for leaf in leaves)
        varying = tuple(leaf for leaf, at in zip(leaves, shared_at) if at is None)
        return cls(varying, structure, shared_at)

    def rebuild(self, shared: list):
        """The pullback, with the shared leaves read from `shared` (the leaves of `theta` and
        the system the forward pass split it against)."""
        varying = iter(self.varying)
        leaves = [next(varying) if at is None else shared[at] for at in self.shared_at]
        return jax.tree.unflatten(self.structure, leaves)


class Checkpoint(Memory):
    """Checkpointing: keep a few states, recompute the others from the nearest one.

    `levels=L` (default 2): recursive checkpointing with `L` levels of segments. Level 1
    stores its `m` states and sweeps back; level `l > 1` stores the `m` start states of
    its sub-segments and recurses into them in reverse order, `m = ceil(N^(1/L))`. The
    `m ** L >= N` steps are run masked: steps past `N` are identity maps. Memory
    `L m` states, `L` extra forward passes.

    `levels=None` (`Checkpoint.logarithmic()`): the bisection schedule, in one loop. To
    reach `x_k` from the latest stored `x_j`, it steps to the midpoint `j + (k - j + 1) // 2`,
    stores it, and repeats until it stands on `x_k`; after the conjugate step `k` that state
    is dropped. At most `ceil(log2 N) + 1` states are held, each step is recomputed about
    `log2(N) / 2` times, and the program is the same size for every `N` (the compile time
    does not grow with `N`, as nested levels' would).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=16)
        >>> theta, x0, loss = net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> g_log = integrators.sweep(net, theta, x0, loss, memory=integrators.Checkpoint.logarithmic()).grad
        >>> g_all = integrators.sweep(net, theta, x0, loss).grad
        >>> bool(jnp.allclose(g_log["W"], g_all["W"], rtol=0, atol=1e-15))     # same numbers, O(log N) states
        True
    """

    levels: int | None = eqx.field(static=True, default=2)

    def __check_init__(self):
        if self.levels is not None and int(self.levels) < 1:
            raise ValueError(f"Checkpoint needs levels >= 1 (or None for log2 N); got {self.levels}")

    @classmethod
    def logarithmic(cls) -> "Checkpoint":
        """The bisection schedule: `ceil(log2 N) + 1` states, `O(N log N)` recomputation."""
        return cls(levels=None)

    def segment(self, steps: int) -> tuple[int, int]:
        """`(levels, m)` with `m ** levels >= steps`: the segment length per level (recursive
        checkpointing; the bisection schedule has no fixed segments)."""
        if self.levels is None:
            raise ValueError("Checkpoint.logarithmic() bisects; it has no fixed segments (see cost)")
        levels = self.levels
        m = max(1, math.ceil(steps ** (1.0 / levels)))
        while m**levels < steps:
            m += 1
        while m > 1 and (m - 1) ** levels >= steps:
            m -= 1
        return levels, m

    def check(self, system):
        _unrolled(self, system)

    def cost(self, steps):
        if self.levels is None:
            recomputed, stored = _bisection(steps)
            return Cost(evaluations=steps + recomputed, relinearisations=steps, pullbacks=steps, stored=stored)
        levels, m = self.segment(steps)

        def recomputed(level):
            """Forward steps re-run below the first pass: level 1 re-runs its `m` steps, level
            `l` runs its `m` segments of `m^(l-1)` steps and recurses into each."""
            return m if level == 1 else m**level + m * recomputed(level - 1)

        padded = m**levels
        return Cost(evaluations=padded + recomputed(levels), relinearisations=padded, pullbacks=padded,
                    stored=levels * m)

    def forward(self, system, theta, z0, saveat=None, grid=False):
        return forward_pass(system, theta, z0, lambda k, z: (forward_step(system, theta, k, z), None),
                                  saveat)

    def backward(self, system, theta, z0, z_final, residuals, p_final, jumps=None, grid=False):
        carry = zero_carry(system, theta, p_final, grid)
        if self.levels is None:
            return Backward.of(self._bisect(system, theta, z0, carry, jumps))
        levels, m = self.segment(system.depth)
        return Backward.of(self._segment(system, theta, z0, carry, 0, levels, m, jumps))

    def _bisect(self, system, theta, z0, carry, jumps):
        """The conjugate steps `N-1 .. 0` under the bisection schedule: a stack of stored
        `(j, x_j)`, topped up by midpoints until its top is the state the step needs."""
        steps = system.depth
        size = _bisection(steps)[1]
        stack = jnp.zeros((size,) + z0.shape, z0.dtype).at[0].set(z0)
        at = jnp.zeros(size, jnp.int32)

        def advance(state, k):
            """Push midpoints from the top `(j, x_j)` until the top is `(k, x_k)`."""

            def push(state):
                stack, at, top = state
                j = at[top]
                mid = j + (k - j + 1) // 2
                z = jax.lax.fori_loop(j, mid, lambda i, z: forward_step(system, theta, i, z), stack[top])
                return stack.at[top + 1].set(z), at.at[top + 1].set(mid), top + 1

            return jax.lax.while_loop(lambda state: state[1][state[2]] < k, push, state)

        def body(state, _):
            stack, at, top, carry, k = state
            k = k - 1
            stack, at, top = advance((stack, at, top), k)
            z = stack[top]
            _, pullback = system.linearise(k, z, system.theta_at(theta, k))
            carry = conjugate_step(system, theta, k, carry, pullback, z, jumps)
            return (stack, at, top - 1, carry, k), None

        (_, _, _, carry, _), _ = jax.lax.scan(body, (stack, at, 0, carry, steps), None, length=steps)
        return carry

    def _segment(self, system, theta, z_start, carry, k0, level, m, jumps):
        """The conjugate pass over the `m ** level` steps from step `k0`, starting at `z_start`."""
        if level == 1:
            _, zs = stored_states(system, theta, z_start, k0, m, masked=True)
            return conjugate_from_states(system, theta, zs, carry, k0, jumps, masked=True)[0]
        sub = m ** (level - 1)

        def store_start(state, _):
            z, k = state
            return (run(system, theta, z, k, sub, masked=True), k + sub), z

        _, starts = jax.lax.scan(store_start, (z_start, k0), None, length=m)

        def body(state, z):
            carry, k = state
            k = k - sub
            return (self._segment(system, theta, z, carry, k, level - 1, m, jumps), k), None

        (carry, _), _ = jax.lax.scan(body, (carry, k0 + m * sub), starts, reverse=True)
        return carry


@functools.cache
def _bisection(steps: int) -> tuple[int, int]:
    """`(recomputed, stored)` of the bisection schedule over `steps` steps from a stored
    first state: forward steps re-run, and the most states held at once. Reversing `n`
    steps steps `n // 2` to the midpoint, reverses the upper `n - n // 2` steps from there
    (one more state held) and then the lower `n // 2` from the first state."""
    if steps <= 1:
        return 0, 1
    lower = steps // 2
    upper_recomputed, upper_stored = _bisection(steps - lower)
    lower_recomputed, lower_stored = _bisection(lower)
    return lower + upper_recomputed + lower_recomputed, max(1 + upper_stored, lower_stored)


def irreversible(system) -> str:
    """Why `Reversible()` memory cannot sweep `system`, and which reversible form of its scheme exists.

    Example:
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 10), "dopri5")
        >>> "'reversible-dopri5'" in integrators.irreversible(ode)
        True
    """
    name = type(system).__name__
    tab = getattr(system, "tableau", None)
    if isinstance(tab, ButcherTableau) and tab.explicit:
        reversible = reversible_name(tab)
        return (
            f"{name} with the explicit tableau {tab.name!r} has no algebraic inverse; its reversible form is "
            f"the McCallum-Foster coupled step {reversible!r}: integrators.discretise(field, ts, {reversible!r}, "
            "coupling=0.999) (integrators.ReversibleRungeKutta), which Reversible memory sweeps in O(1) memory"
        )
    if isinstance(tab, ButcherTableau):
        return (
            f"{name} with the implicit tableau {tab.name!r} has no algebraic inverse: the tableau is not "
            "symmetric, so its step with -h does not undo it (the symmetric ones, Gauss-Legendre and Lobatto "
            "IIIA/IIIB, are reversed that way); Checkpoint.logarithmic() gives O(log N) memory instead"
        )
    return (
        f"{name} has no algebraic inverse; Reversible memory needs a reversible scheme: "
        "'reversible-<tableau>' (McCallum-Foster) for any explicit tableau, a symmetric implicit tableau "
        "(Gauss-Legendre, Lobatto IIIA/IIIB), a splitting (leapfrog, yoshida4, symplectic-euler), "
        "'reversible-heun' or 'asynchronous-leapfrog'"
    )


class Reversible(Memory):
    """Reconstruct `x_k = Phi_k^{-1}(x_{k+1})` during the backward sweep (needs `system.inverse`,
    and `system.invertible` true where a scheme declares it): the reversible schemes on an
    augmented state (`integrators.REVERSIBLE`: reversible Heun, the asynchronous leapfrog, the
    McCallum-Foster ``"reversible-<tableau>"`` of every explicit tableau), every splitting
    (undone shear by shear) and every symmetric implicit tableau (its own step with `-h`,
    Newton-solved). Any other scheme is refused with the reversible form that exists for it.

    Example:
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 1000), "reversible-heun")
        >>> theta = lagrangian.NeuralODE(2).init(jax.random.key(0))
        >>> sol = integrators.sweep(ode, theta, jnp.ones(2), lagrangian.SquaredError(), memory=integrators.Reversible())
        >>> sol.xs is None, bool(sol.reconstruction_error < 1e-12)     # no stored trajectory; error measured
        (True, True)
    """

    def check(self, system):
        """Refuse a system without an exact `inverse`, naming the reversible form that exists."""
        while isinstance(system, Batched):
            system = system.system
        if not getattr(system, "invertible", hasattr(system, "inverse")):
            raise ValueError(irreversible(system))

    def cost(self, steps):
        return Cost(evaluations=2 * steps, relinearisations=steps, pullbacks=steps, stored=1)

    def forward(self, system, theta, z0, saveat=None, grid=False):
        return forward_pass(system, theta, z0, lambda k, z: (forward_step(system, theta, k, z), None),
                                  saveat)

    def backward(self, system, theta, z0, z_final, residuals, p_final, jumps=None, grid=False):
        def body(state, _):
            z_next, carry, k = state
            k = k - 1
            theta_k = system.theta_at(theta, k)
            if hasattr(system, "unstep"):   # the inverse and the linearisation share their evaluations
                z, pullback = system.unstep(k, z_next, theta_k)
            else:
                z = system.inverse(k, z_next, theta_k)
                _, pullback = system.linearise(k, z, theta_k)
            return (z, conjugate_step(system, theta, k, carry, pullback, z, jumps), k), None

        carry = zero_carry(system, theta, p_final, grid)
        (z0_rec, carry, _), _ = jax.lax.scan(body, (z_final, carry, system.depth), None, length=system.depth)
        error = jnp.max(jnp.abs(z0_rec - z0)) / jnp.maximum(jnp.max(jnp.abs(z0)), jnp.finfo(z0.dtype).tiny)
        return Backward.of(carry, reconstruction_error=error)


MEMORIES = {
    "store-all": StoreAll(),
    "store-stages": StoreStages(),
    "checkpoint": Checkpoint(),
    "checkpoint-log": Checkpoint.logarithmic(),
    "reversible": Reversible(),
}
"""The memory strategies by name."""


def memory_named(name: str) -> Memory:
    """The strategy called `name`: one of `MEMORIES` (``store-all``, ``store-stages``,
    ``checkpoint``, ``checkpoint-log``, ``reversible``).

    Example:
        >>> integrators.memory_named("reversible")
        Reversible()
    """
    try:
        return MEMORIES[name]
    except KeyError:
        raise ValueError(f"unknown memory strategy {name!r}; choose one of {sorted(MEMORIES)}") from None
