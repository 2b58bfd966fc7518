"""The acceptance network of the physical learning rules: a 4-layer tanh MLP 5-8-8-8-3, weight scale 1.5, squared error."""

from __future__ import annotations

import jax
import pytest

import lagrangian
from tests.helpers import reference_grad


@pytest.fixture(scope="package")
def acceptance():
    """`(system, theta, x0, loss, jax.grad reference)` on a batch of 16 (float64)."""
    net = lagrangian.MLP((5, 8, 8, 8, 3), activation="tanh", scale=1.5)
    k1, k2, k3 = jax.random.split(jax.random.key(12), 3)
    theta = net.init(k1)
    x0 = jax.random.normal(k2, (16, 5))
    loss = lagrangian.SquaredError(target=jax.random.normal(k3, (16, 3)))
    return net, theta, x0, loss, reference_grad(net, theta, x0, loss)
