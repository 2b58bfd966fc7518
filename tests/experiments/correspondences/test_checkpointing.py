"""Checkpointing: counted recomputation against the recursive schedule, stored states."""

import pytest

from experiments.correspondences import checkpointing as cp


@pytest.mark.parametrize("steps", [  # 4 s each on one core: the default suite keeps 27, which pads its segments
    pytest.param(16, marks=pytest.mark.slow), 27
])
def test_counted_recomputation_follows_the_schedule(steps):
    base, _ = cp.field_evaluations("store-all", steps)
    levels, m = cp.STRATEGIES["checkpoint-sqrt"].segment(steps)
    count, _ = cp.field_evaluations("checkpoint-sqrt", steps)
    padded = m**levels
    # each level re-runs the m^levels (padded) forward steps once, and the conjugate sweep also
    # runs over the padding steps (one evaluation each: Euler's stage, evaluated inside its jax.vjp)
    assert count - base == levels * padded + (padded - steps)
    # the bisection schedule re-runs exactly the forward steps its cost model declares
    count, _ = cp.field_evaluations("checkpoint-log", steps)
    assert count - base == cp.STRATEGIES["checkpoint-log"].cost(steps).evaluations - steps
    rev, error = cp.field_evaluations("reversible", steps)
    rev_base, _ = cp.field_evaluations("store-all", steps, scheme="asynchronous-leapfrog")
    assert rev - rev_base == steps  # one inverse step (one evaluation of f) per step
    assert error <= 1e-13  # reconstruction to rounding


def test_stored_states():
    assert cp.stored_states("store-all", 100) == 101
    assert cp.stored_states("checkpoint-sqrt", 100) == 20
    assert cp.stored_states("checkpoint-log", 1024) == 11
    assert cp.stored_states("reversible", 10_000) == 1
    with pytest.raises(ValueError, match="unknown memory strategy"):
        cp.stored_states("store-some", 10)


def test_compiled_memory_orders_the_strategies():
    counts = {name: cp.compiled_state_count(name, 256) for name in cp.STRATEGIES}
    if any(v is None for v in counts.values()):
        pytest.skip("XLA does not report memory statistics on this backend")
    assert counts["store-all"] >= 256  # every state is kept
    assert counts["reversible"] < counts["checkpoint-log"] < counts["checkpoint-sqrt"] < counts["store-all"]
