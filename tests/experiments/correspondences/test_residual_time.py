"""ResNet as a time discretisation: the sweep is exact, the 1/tau-normalised gradient converges."""

import jax
import numpy as np
import pytest

from experiments.correspondences import residual_time as rt


@pytest.fixture(scope="module")
def runs():
    path = rt.random_path(3, jax.random.key(1), scale=1.5)
    return rt.measure(path, 2.0, (20, 40, 80))[0]


def test_sweep_gradient_equals_jax_grad(runs):
    for numbers, _, _ in runs:
        assert numbers.sweep_vs_jax_grad <= 1e-12  # exact discrete gradient (DESIGN 2.3)


def test_normalised_gradient_converges_at_first_order(runs):
    numbers = [r for r, _, _ in runs]
    taus = [r.tau for r in numbers]
    order = np.polyfit(np.log(taus), np.log([r.normalised_relative_error for r in numbers]), 1)[0]
    raw = np.polyfit(np.log(taus), np.log([r.max_raw_gradient for r in numbers]), 1)[0]
    assert 0.85 <= order <= 1.15  # forward Euler: first order
    assert 0.85 <= raw <= 1.15  # unnormalised per-layer gradients vanish like tau
    assert numbers[-1].normalised_relative_error < 0.05


def test_depths_must_divide_the_largest():
    path = rt.random_path(2, jax.random.key(0))
    with pytest.raises(ValueError, match="divide the largest"):
        rt.measure(path, 1.0, (3, 4))
