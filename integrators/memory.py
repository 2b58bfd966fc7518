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
    """Base class of the memory strategies (an option of the one sweep)."""


class StoreAll(Memory):
    """Store every state `x_0..x_N` (and return the whole conjugate field `p_0..p_N`)."""


class Checkpoint(Memory):
    """Recursive checkpointing with `levels` levels of segments.

    `levels=None` means `ceil(log2 N)` (logarithmic memory).
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
    """Reconstruct `x_k = Phi_k^{-1}(x_{k+1})` during the backward sweep (needs `system.inverse`)."""


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
