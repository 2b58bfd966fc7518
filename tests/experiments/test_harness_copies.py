"""The harness method `tension-copies`: the tension read from two physical copies, judged like every
project method (1e-12 against jax.grad in float64), next to `tension` (the scaled sweep)."""

import jax

from experiments import harness


def test_tension_copies_is_registered_and_exact():
    assert "tension-copies" in harness.METHODS
    comparison = harness.compare(problems=["resnet", "mlp"], methods=["tension-copies", "tension"], repeats=1,
                                 budget=0.01)
    assert comparison.summary()["passed"]
    for problem in ("resnet", "mlp"):
        assert comparison.cell("tension-copies", problem).relative_error <= 1e-12
