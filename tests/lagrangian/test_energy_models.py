"""The layered and Hopfield energies against direct evaluation and jax.grad."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import integrators
import lagrangian


@pytest.fixture(scope="module")
def net():
    system = lagrangian.MLP((3, 4, 2), activation="tanh")
    theta = system.init(jax.random.key(1))
    x0 = jax.random.normal(jax.random.key(2), (5, 3))
    return system, theta, x0


def test_layered_energy_vanishes_on_the_forward_pass_only(net):
    system, theta, x0 = net
    xs = integrators.forward(system, theta, x0)
    # zero up to rounding squared: the forward pass and the energy evaluate the same layer
    # maps, in programs that XLA may compile differently (1.8e-32 measured at opt level 0)
    assert float(lagrangian.layered_energy(system, theta, xs)) <= 1e-28
    shifted = (xs[0], xs[1] + 0.1, xs[2])
    # moving x_1 by 0.1 costs 0.5 |0.1|^2 * 4 in layer 0, plus layer 1's mismatch
    direct = jnp.mean(0.5 * 4 * 0.01 + 0.5 * jnp.sum((xs[2] - system.apply(1, shifted[1], theta[1])) ** 2, axis=-1))
    assert abs(float(lagrangian.layered_energy(system, theta, shifted)) - float(direct)) <= 1e-15


def test_total_energy_adds_the_weighted_loss(net):
    system, theta, x0 = net
    xs = integrators.forward(system, theta, x0)
    loss = lagrangian.SquaredError(target=jnp.ones(2))
    assert float(lagrangian.total_energy(system, theta, xs, loss, 0.3)) == pytest.approx(0.3 * float(loss(xs[-1])),
                                                                                           rel=1e-15)


def test_prediction_errors_need_every_layer_state(net):
    system, theta, x0 = net
    with pytest.raises(ValueError, match="depth \\+ 1 = 3 states"):
        lagrangian.prediction_errors(system, theta, (x0,))


def test_hopfield_energy_is_symmetric_in_its_couplings():
    theta = lagrangian.hopfield_init(jax.random.key(0), (3, 4, 2))
    x, h, o = jnp.ones(3), 0.3 * jnp.ones(4), -0.2 * jnp.ones(2)
    # the hidden unit i feels output unit j through W2[j, i], and j feels i through the same number
    dh = jax.grad(lambda h_: lagrangian.hopfield_energy(theta, x, h_, o))(h)
    do = jax.grad(lambda o_: lagrangian.hopfield_energy(theta, x, h, o_))(o)
    drho = lambda u: 1 - jnp.tanh(u) ** 2
    expected_dh = h - drho(h) * (theta["W1"] @ jnp.tanh(x) + theta["W2"].T @ jnp.tanh(o) + theta["b1"])
    expected_do = o - drho(o) * (theta["W2"] @ jnp.tanh(h) + theta["b2"])
    assert float(jnp.max(jnp.abs(dh - expected_dh))) <= 1e-15
    assert float(jnp.max(jnp.abs(do - expected_do))) <= 1e-15
