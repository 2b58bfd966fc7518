"""Memory strategies change where `x_k` comes from, never the gradient.

Checkpointing recomputes the same floating-point states, so it agrees with
`jax.grad` to the same 1e-12 (relative L2) as storing everything.
"""

import jax
import jax.numpy as jnp
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import reference_grad, rel_l2

SYSTEMS = {
    "resnet-37": L.ResNet(dim=3, depth=37),
    "recurrent-10": L.Recurrent(inputs=jnp.sin(jnp.arange(20.0)).reshape(10, 2), dim=4),
    "neural-ode-rk4-50": I.discretise(L.NeuralODE(4), I.uniform_grid(2.0, 50), "rk4"),
}
STRATEGIES = {
    "store-stages": I.StoreStages(),
    "checkpoint-1": I.Checkpoint(levels=1),
    "checkpoint-2": I.Checkpoint(levels=2),
    "checkpoint-3": I.Checkpoint(levels=3),
    "checkpoint-log": I.Checkpoint.logarithmic(),
}


CASES = [(name, strategy) for name in sorted(SYSTEMS) for strategy in ("store-stages", "checkpoint-2")] + [
    ("resnet-37", "checkpoint-1"), ("recurrent-10", "checkpoint-3"), ("neural-ode-rk4-50", "checkpoint-log")
]
SLOW = {("resnet-37", "store-stages"), ("neural-ode-rk4-50", "store-stages"), ("neural-ode-rk4-50", "checkpoint-2"),
        ("recurrent-10", "checkpoint-3")}
"""Cases run with `pytest -m slow`: each compiles its own sweep (1-5 s on one core, stored stages
of the deep ResNet and of RK4 the most); the default suite keeps every strategy (stored stages on
the recurrent network) and every system."""


@pytest.mark.parametrize("name,strategy", [
    pytest.param(*case, id="-".join(case), marks=pytest.mark.slow if case in SLOW else ()) for case in CASES
])
def test_checkpointing_is_exact(name, strategy, key):
    system = SYSTEMS[name]
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (5, system.input_dim))
    loss = L.SquaredError(target=0.3)
    sol = I.sweep(system, theta, x0, loss, memory=STRATEGIES[strategy])
    full = I.sweep(system, theta, x0, loss)
    assert sol.xs is None and sol.ps is None
    assert rel_l2(sol.grad, reference_grad(system, theta, x0, loss)) <= 1e-12
    assert rel_l2(sol.grad_x0, full.grad_x0) <= 1e-12
    assert abs(float(sol.loss) - float(full.loss)) <= 1e-14 * abs(float(full.loss))


@pytest.mark.parametrize("steps", [1, 2, 7, 64, 100])
def test_segment_lengths_cover_the_steps(steps):
    for levels in (1, 2, 3):
        got_levels, m = I.Checkpoint(levels=levels).segment(steps)
        assert m**got_levels >= steps
        assert m == 1 or (m - 1) ** got_levels < steps
    with pytest.raises(ValueError, match="bisects"):
        I.Checkpoint.logarithmic().segment(steps)


@pytest.mark.parametrize("power", [0, 1, 4, 10, 17])
def test_bisection_holds_log2_n_states_and_recomputes_half_log2_n_per_step(power):
    """For `N = 2^p` the bisection schedule holds `p + 1` states and re-runs `p N / 2` steps
    (each halving steps half of its segment once): closed forms of the schedule."""
    steps = 2**power
    cost = I.Checkpoint.logarithmic().cost(steps)
    assert cost.stored == power + 1
    assert cost.evaluations - steps == power * steps // 2


def test_strategy_errors(key):
    mlp = L.MLP((2, 3, 1))
    with pytest.raises(ValueError, match="StoreAll or StoreStages applies to it"):
        I.sweep(mlp, mlp.init(key), jnp.ones(2), L.SquaredError(), memory=I.Checkpoint())
    resnet = L.ResNet(dim=2, depth=3)
    with pytest.raises(ValueError, match="no algebraic inverse"):
        I.sweep(resnet, resnet.init(key), jnp.ones(2), L.SquaredError(), memory=I.Reversible())
    with pytest.raises(TypeError, match="memory must be a Memory strategy"):
        I.sweep(resnet, resnet.init(key), jnp.ones(2), L.SquaredError(), memory="store-all")
    with pytest.raises(ValueError, match="unknown memory strategy 'tape'"):
        I.memory_named("tape")
    with pytest.raises(ValueError, match="levels >= 1"):
        I.Checkpoint(levels=0)
