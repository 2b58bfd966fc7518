"""Reversible splitting: the spec's step written out, exact inversion, exact gradient with O(1) memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators
import lagrangian
from experiments.correspondences import reversible_leapfrog as rl


def test_symplectic_euler_is_the_spec_step():
    """r' = r + tau F(s), s' = s + tau G(r') in plain numpy, against one layer of the splitting."""
    field = rl.SeparableTanh(state_dim=6)
    system = rl.reversible_system(field, 1.0, 10)
    theta = system.init(jax.random.key(0))
    x = np.asarray(jax.random.normal(jax.random.key(1), (6,)))
    th = {k: np.asarray(v) for k, v in theta.items()}
    s, r, tau = x[:3], x[3:], 0.1
    r_next = r + tau * np.tanh(th["B"] @ s + th["b"])
    s_next = s + tau * np.tanh(th["A"] @ r_next + th["a"])
    np.testing.assert_allclose(system.layer(0, jnp.asarray(x), theta), np.concatenate([s_next, r_next]),
                               rtol=0, atol=1e-15)  # same arithmetic, different order of rounding at most


@pytest.mark.parametrize("method", [  # each splitting compiles its own inverse sweep (3-6 s on one core)
    pytest.param("symplectic-euler", marks=pytest.mark.slow), "leapfrog", pytest.param("yoshida4", marks=pytest.mark.slow)
])
def test_inverse_rebuilds_the_forward_pass_and_the_gradient_is_exact(method):
    numbers, per_step = rl.measure(500, dim=4, t_final=5.0, method=method)
    # each inverse step undoes shears exactly in real arithmetic; in float64 a few ulps per step at most
    assert numbers.max_error <= 1e-13
    assert per_step.shape == (501,) and per_step[-1] == 0.0
    assert numbers.sweep_reconstruction_error <= 1e-13
    assert numbers.gradient_relative_error <= 1e-12  # Reversible() sweep vs jax.grad of the forward map


@pytest.mark.slow  # about 5 s on one core; leapfrog's exact inverse is checked in the default suite above
def test_naive_euler_back_step_is_first_order():
    coarse, _ = rl.measure(50, t_final=5.0)
    fine, _ = rl.measure(500, t_final=5.0)
    ratio = coarse.euler_backstep_error / fine.euler_backstep_error
    assert 7 <= ratio <= 13  # O(tau): ten times the steps, about a tenth of the error


def test_non_separable_fields_and_non_splittings_are_rejected():
    with pytest.raises(ValueError, match="separable"):
        rl.reversible_system(lagrangian.NeuralODE(4), 1.0, 10)
    with pytest.raises(ValueError, match="not a splitting"):
        rl.reversible_system(rl.SeparableTanh(state_dim=4), 1.0, 10, method="rk4")
    with pytest.raises(ValueError, match="even state_dim"):
        rl.SeparableTanh(state_dim=3)
    assert isinstance(rl.reversible_system(rl.SeparableTanh(state_dim=4), 1.0, 3), integrators.Splitting)
