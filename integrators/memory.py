"""Memory strategies: how the conjugate sweep obtains the states `x_k` it reads.

The sweep runs backward from `p_N`; at step `k` it needs `x_k`. Three ways:

- `StoreAll`: keep every state from the forward sweep. Memory O(N).
- `Checkpoint(levels)`: keep `m` states per level, `m = ceil(N^(1/levels))`,
  and recompute the others segment by segment (recursive checkpointing).
  Memory O(levels * N^(1/levels)) states for `levels` extra forward passes;
  `Checkpoint.logarithmic()` picks `levels = ceil(log2 N)`, so `m = 2` and the
  memory is O(log N) states for O(N log N) recomputation.
- `Reversible()`: keep nothing; reconstruct `x_k` from `x_{k+1}` with the
  scheme's algebraic inverse (`system.inverse`). Memory O(1) in `N`. The
  reconstruction error is measured (at `x_0`) and reported, not assumed zero.

Every strategy computes the same discrete conjugate field; only the source of
`x_k` differs.
"""

import math

import equinox as eqx


class Memory(eqx.Module):
    """Base class of the memory strategies (an option of the one sweep).

    Example:
        >>> [type(integrators.memory_named(n)).__name__ for n in ("store-all", "checkpoint", "reversible")]
        ['StoreAll', 'Checkpoint', 'Reversible']
    """


class StoreAll(Memory):
    """Store every state `x_0..x_N` (and return the whole conjugate field `p_0..p_N`).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=8)
        >>> sol = integrators.sweep(net, net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(),
        ...                         memory=integrators.StoreAll())
        >>> sol.xs.shape, sol.ps.shape                       # every x_k and p_k, k = 0..N
        ((9, 2), (9, 2))
    """


class Checkpoint(Memory):
    """Recursive checkpointing with `levels` levels of segments.

    `levels=None` means `ceil(log2 N)` (logarithmic memory).

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
        return cls(levels=None)

    def segment(self, steps: int) -> tuple[int, int]:
        """`(levels, m)` with `m ** levels >= steps`: the segment length per level."""
        levels = self.levels if self.levels is not None else max(1, math.ceil(math.log2(max(steps, 2))))
        m = max(1, math.ceil(steps ** (1.0 / levels)))
        while m**levels < steps:
            m += 1
        while m > 1 and (m - 1) ** levels >= steps:
            m -= 1
        return levels, m


class Reversible(Memory):
    """Reconstruct `x_k = Phi_k^{-1}(x_{k+1})` during the backward sweep (needs `system.inverse`).

    Example:
        >>> ode = integrators.discretise(lagrangian.NeuralODE(2), integrators.uniform_grid(1.0, 1000), "reversible-heun")
        >>> theta = lagrangian.NeuralODE(2).init(jax.random.key(0))
        >>> sol = integrators.sweep(ode, theta, jnp.ones(2), lagrangian.SquaredError(), memory=integrators.Reversible())
        >>> sol.xs is None, bool(sol.reconstruction_error < 1e-12)     # no stored trajectory; error measured
        (True, True)
    """


def memory_named(name: str) -> Memory:
    """The strategy called `name`: ``store-all``, ``checkpoint``, ``checkpoint-log`` or ``reversible``.

    Example:
        >>> integrators.memory_named("reversible")
        Reversible()
    """
    table = {
        "store-all": StoreAll(),
        "checkpoint": Checkpoint(),
        "checkpoint-log": Checkpoint.logarithmic(),
        "reversible": Reversible(),
    }
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown memory strategy {name!r}; choose one of {sorted(table)}") from None
