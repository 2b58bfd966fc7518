"""The oscillator chain: its field is Hamilton's equations of its H, leapfrog conserves H to
O(h^2), runs backward under the momentum flip, is symplectic, and the least-action sweep on it
is exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import reference_grad, rel_l2

CHAIN = L.OscillatorChain(oscillators=6)
T_FINAL, STEPS = 10.0, 200  # h = 0.05, the configuration of the physical-learning experiment


@pytest.fixture(scope="module")
def setup():
    theta = CHAIN.init(jax.random.key(3))
    rng = np.random.default_rng(3)
    x0 = jnp.asarray(0.5 * rng.standard_normal((3, 12)))
    target = jnp.asarray(rng.standard_normal((3, 12)))
    system = I.discretise(CHAIN, I.uniform_grid(T_FINAL, STEPS), "leapfrog")
    return system, theta, x0, L.SquaredError(target=target)


def test_field_is_hamiltons_equations_of_h(setup):
    """f = J grad H with grad H by autodiff of one H evaluation (the force is written in closed form)."""
    _, theta, x0, _ = setup
    j = L.symplectic_form(6)
    expected = jax.jit(jax.vmap(lambda x: j @ jax.grad(CHAIN.physical_energy)(x, theta)))(x0)
    field = jax.jit(jax.vmap(lambda x: CHAIN(0.0, x, theta)))(x0)
    assert np.max(np.abs(field - expected)) < 1e-14 * np.max(np.abs(expected))  # same sums, rounding only


def test_time_reversal_and_exchange(setup):
    """H(Sigma x) = H(x) (time-reversal symmetry) and X = Sigma J (exchange = flip after J)."""
    _, theta, x0, _ = setup
    np.testing.assert_array_equal(CHAIN.physical_energy(L.momentum_flip(x0), theta), CHAIN.physical_energy(x0, theta))
    j = L.symplectic_form(6)
    np.testing.assert_array_equal(L.exchange(x0), L.momentum_flip(x0 @ j.T))
    np.testing.assert_array_equal(L.momentum_flip(L.momentum_flip(x0)), x0)


@pytest.mark.slow  # about 3 s on one core; leapfrog's bounded energy error is checked by
# tests/integrators/test_energy.py in the default suite
def test_leapfrog_conserves_energy_to_second_order(setup):
    """max_k |H(x_k) - H(x_0)| / |H(x_0)| is O(h^2): about 4 times smaller at h/2."""
    _, theta, x0, _ = setup

    def drift(steps):
        xs = I.forward(I.discretise(CHAIN, I.uniform_grid(T_FINAL, steps), "leapfrog"), theta, x0)
        energy = CHAIN.physical_energy(xs.reshape(-1, 12), theta).reshape(steps + 1, -1)
        return float(np.max(np.abs(energy - energy[0]) / np.abs(energy[0])))

    coarse, fine = drift(STEPS), drift(2 * STEPS)
    assert coarse < 1e-2  # bounded energy error of a symplectic scheme at h = 0.05
    assert 3.5 < coarse / fine < 4.5  # order 2


def test_leapfrog_is_reversed_by_the_momentum_flip(setup):
    """N steps forward, flip, N steps forward, flip: back at x_0 up to rounding."""
    system, theta, x0, _ = setup
    x_final = I.forward(system, theta, x0)[-1]
    back = I.forward(system, theta, L.momentum_flip(x_final))[-1]
    error = float(jnp.max(jnp.abs(L.momentum_flip(back) - x0)) / jnp.max(jnp.abs(x0)))
    assert error < 1e-12  # 400 steps of rounding (measured 1.4e-15)


def test_leapfrog_step_is_symplectic(setup):
    system, theta, x0, _ = setup
    jacobian = jax.jit(jax.jacfwd(lambda x: system.layer(0, x, theta)))(x0[0])
    assert float(L.symplecticity_defect(jacobian)) < 1e-13  # M^T J M = J up to rounding (measured 1e-16)


def test_least_action_sweep_is_exact_on_the_chain(setup):
    system, theta, x0, loss = setup
    solution = I.sweep(system, theta, x0, loss)
    assert rel_l2(solution.grad, reference_grad(system, theta, x0, loss)) < 1e-12  # exact (measured 1.9e-15)


def test_bad_input_is_a_clear_error(setup):
    _, theta, _, _ = setup
    with pytest.raises(ValueError, match="at least 2 oscillators"):
        L.OscillatorChain(oscillators=1)
    with pytest.raises(ValueError, match="quartic strength must be >= 0"):
        L.OscillatorChain(quartic=-1.0)
    with pytest.raises(ValueError, match=r"theta\['coupling'\] has shape \(6,\), expected \(5,\)"):
        CHAIN.check({**theta, "coupling": jnp.ones(6)}, jnp.ones(12))
    with pytest.raises(ValueError, match="even dimension"):
        L.exchange(jnp.ones(5))
