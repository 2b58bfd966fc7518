"""An independent peer: central finite differences in float64, sharing no code
with the sweep (plain numpy forward pass, written out here)."""

import jax
import numpy as np

import integrators as I
import lagrangian as L
from tests.helpers import flat


def numpy_mlp_loss(params, x0, target):
    x = x0
    for layer in params:
        x = np.tanh(layer["W"] @ x + layer["b"])
    return 0.5 * np.sum((x - target) ** 2)


def test_mlp_gradient_matches_central_differences(key):
    system = L.MLP((4, 6, 5, 3), activation="tanh")
    theta = system.init(key)
    x0 = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (4,)))
    target = np.array([0.2, -0.4, 0.1])
    sol = I.sweep(system, theta, x0, L.SquaredError(target=target))
    params = [{k: np.array(v) for k, v in layer.items()} for layer in theta]
    # Step 1e-6: truncation O(h^2) ~ 1e-12 balances round-off O(eps/h) ~ 1e-10.
    h = 1e-6
    fd = []
    for layer in params:
        for name in ("W", "b"):  # same leaf order as jax.tree.leaves of a dict
            arr = layer[name]
            grad = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + h
                up = numpy_mlp_loss(params, x0, target)
                arr[idx] = old - h
                down = numpy_mlp_loss(params, x0, target)
                arr[idx] = old
                grad[idx] = (up - down) / (2 * h)
            fd.append(grad.ravel())
    fd = np.concatenate(fd)
    got = flat(sol.grad)
    assert np.linalg.norm(got - fd) / np.linalg.norm(fd) <= 1e-6
