"""Checkpointing: memory against recomputation, measured on the project's sweep.

The gradient of an `N`-step discretised neural ODE (`lagrangian.NeuralODE`,
forward Euler, or the asynchronous leapfrog for reversible memory) is taken by
`integrators.sweep` with each memory strategy of `integrators.memory`:

    StoreAll               N + 1 stored states, no recomputation
    Checkpoint(levels=2)   2 m states, m = ceil(sqrt N); 2 extra forward passes
    Checkpoint.logarithmic bisection: log2 N + 1 states, each step re-run about log2(N) / 2 times
    Reversible             1 state; every x_k reconstructed by the scheme's inverse

Recomputation is counted, not modelled: the field is wrapped in
`CountingField`, whose every evaluation (forward, recomputed, inverse or inside
a conjugate step's `jax.vjp`) increments a host counter through
`jax.debug.callback`. Extra evaluations per step are
`(count(strategy) - count(StoreAll of the same scheme)) / N`; for the
recursive schedule they include the padding steps up to `m^levels`.

Memory is reported twice: the number of states the schedule keeps alive
(`stored_states`, from the strategy's own segment sizes) and XLA's compiled
temporary-buffer size of the jitted sweep (`compiled.memory_analysis()`),
divided by the bytes of one (batched) state.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

STRATEGIES = {
    "store-all": integrators.StoreAll(),
    "checkpoint-sqrt": integrators.Checkpoint(levels=2),
    "checkpoint-log": integrators.Checkpoint.logarithmic(),
    "reversible": integrators.Reversible(),
}
"""The memory strategies compared, by name."""


class Counter:
    """A host-side counter (hashable by identity, so it can be a static field)."""

    def __init__(self):
        self.count = 0

    def increment(self):
        self.count += 1


class CountingField(lagrangian.VectorField):
    """`lagrangian.NeuralODE` whose every evaluation increments `counter` (a `jax.debug.callback`)."""

    state_dim: int = eqx.field(static=True)
    counter: Counter = eqx.field(static=True)

    def init(self, key, dtype=jnp.float64):
        return lagrangian.NeuralODE(self.state_dim).init(key, dtype)

    def __call__(self, t, x, theta):
        jax.debug.callback(self.counter.increment)
        return jnp.tanh(theta["W"] @ x + theta["b"])


def scheme_for(strategy: str) -> str:
    """The scheme each strategy runs on: the asynchronous leapfrog for `reversible`, else Euler."""
    return "asynchronous-leapfrog" if strategy == "reversible" else "euler"


def stored_states(strategy: str, steps: int) -> int:
    """States the strategy keeps alive at once, by its own cost model (`Memory.cost(N).stored`):
    `N + 1`, `levels * m` (recursive), `ceil(log2 N) + 1` (bisection), or 1 (`reversible`).

    Example:
        >>> stored_states("store-all", 1000), stored_states("reversible", 1000)
        (1001, 1)
    """
    return STRATEGIES[_check(strategy)].cost(steps).stored


def _check(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown memory strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    return strategy


def field_evaluations(strategy: str, steps: int, dim: int = 4, seed: int = 0,
                      scheme: str | None = None) -> tuple[int, float | None]:
    """`(evaluations of f in one gradient, reconstruction error or None)` for one unbatched state,
    on `scheme` (default `scheme_for(strategy)`)."""
    counter = Counter()
    field = CountingField(state_dim=dim, counter=counter)
    scheme = scheme or scheme_for(_check(strategy))
    system = integrators.discretise(field, integrators.uniform_grid(1.0, steps), scheme)
    theta = system.init(jax.random.key(seed))
    x0 = jax.random.normal(jax.random.key(seed + 1), (dim,))
    sol = integrators.sweep(system, theta, x0, lagrangian.SquaredError(), memory=STRATEGIES[strategy])
    jax.block_until_ready(sol.grad)
    jax.effects_barrier()
    error = None if sol.reconstruction_error is None else float(sol.reconstruction_error)
    return counter.count, error


def compiled_state_count(strategy: str, steps: int, dim: int = 32, batch: int = 8) -> float | None:
    """XLA temp bytes of the jitted sweep's gradient over the bytes of one batched state `(batch, dim)`
    (the augmented `(batch, 2 dim)` state for the reversible scheme); `None` if XLA does not report it."""
    system = integrators.discretise(lagrangian.NeuralODE(dim), integrators.uniform_grid(1.0, steps),
                                    scheme_for(_check(strategy)))
    theta = system.init(jax.random.key(0))
    x0 = jnp.ones((batch, dim))
    memory = STRATEGIES[strategy]

    def grad(th, x):
        return integrators.sweep(system, th, x, lagrangian.SquaredError(), memory=memory, check=False).grad

    compiled = jax.jit(grad).lower(theta, x0).compile()
    try:
        temp = int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # memory analysis is backend-dependent
        return None
    width = 2 * dim if strategy == "reversible" else dim
    return temp / (batch * width * np.dtype(np.float64).itemsize)
