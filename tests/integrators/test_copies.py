"""Two physical copies relaxing under the doubled action: the tension `x1 - x2` is `beta p`.

References: `p_k = dl/dx_k` and `dl/dtheta` by `jax.grad` of the composed forward map (with an
additive probe on every layer state for `p`); nothing in the copies' code may call the sweep.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import reference_grad, rel_l2


def reference_conjugate(system, theta, x0, loss):
    """`(x_k, p_k = dl/dx_k)` for `k = 0..N` by `jax.grad` through the forward map with a probe per state."""
    xs = [x0]
    for k in range(system.depth):
        xs.append(system.apply(k, xs[-1], system.theta_at(theta, k)))

    def probed(deltas):
        x = x0 + deltas[0]
        for k in range(system.depth):
            x = system.apply(k, x, system.theta_at(theta, k)) + deltas[k + 1]
        return loss(x)

    ps = jax.grad(probed)([jnp.zeros_like(x) for x in xs])
    return xs, ps


def _diff(x1, x2):
    return [a - b for a, b in zip(x1, x2)]


PROBLEMS = {
    "mlp-8": (L.MLP((5,) + (8,) * 8), 200),
    "resnet-16": (L.ResNet(dim=4, depth=16), 300),
}


# The ResNet's copies and references compile their own programs (about 4 s on one core): its cases
# run with `pytest -m slow`, the MLP's in the default suite.
@pytest.fixture(scope="module", params=[pytest.param(name, marks=pytest.mark.slow if name == "resnet-16" else ())
                                        for name in PROBLEMS])
def problem(request):
    system, iterations = PROBLEMS[request.param]
    key = jax.random.key(7)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (3, system.input_dim))
    loss = L.SquaredError(target=0.3)
    xs, ps = reference_conjugate(system, theta, x0, loss)
    return system, iterations, theta, x0, loss, xs, ps, reference_grad(system, theta, x0, loss)


@pytest.mark.parametrize("beta", [1e-4, 1e-2, 1.0, 1e2])
def test_tension_between_copies_is_beta_p(problem, beta):
    """`|x1 - x2 - beta p| / |beta p|` and the gradient read from the copies within 1e-9, and the
    mean of the copies on the forward pass, at every beta in [1e-4, 1e2]."""
    system, iterations, theta, x0, loss, xs, ps, grad = problem
    run = I.relax_copies(system, theta, x0, loss, beta, iterations=iterations)
    tension = _diff(run.x1, run.x2)[1:]
    assert rel_l2(tension, [beta * p for p in ps[1:]]) <= 1e-9
    assert rel_l2(run.grad, grad) <= 1e-9
    assert rel_l2(run.grad_x0, ps[0]) <= 1e-9
    mean = [0.5 * (a + b) for a, b in zip(run.x1, run.x2)]
    assert rel_l2(mean, xs) <= 1e-13


@pytest.mark.parametrize("beta", [1e-6, 1e-5])
def test_small_beta_error_is_the_rounding_floor(problem, beta):
    """Below 1e-4 the error of the difference of two copies follows `eps |x+| / (beta |p|)`."""
    system, iterations, theta, x0, loss, xs, ps, grad = problem
    run = I.relax_copies(system, theta, x0, loss, beta, iterations=iterations)
    floor = float(I.rounding_floor(xs, beta, ps))
    error = rel_l2(_diff(run.x1, run.x2)[1:], [beta * p for p in ps[1:]])
    assert error <= 1e-4
    assert 0.05 * floor <= error <= 20 * floor
    assert rel_l2(run.grad, grad) <= 20 * floor


def test_copies_never_call_the_sweep(monkeypatch, key):
    """The sweep, the scaled sweep (`tension`) and the forward pass raise: the copies still relax to
    the exact tension (a system of a shape no other test compiles, so it is traced here)."""
    system = L.ResNet(dim=3, depth=7, h=0.3)
    theta = system.init(key)
    x0 = jnp.linspace(-1.0, 1.0, 3)
    loss = L.SquaredError(target=jnp.ones(3))
    xs, ps = reference_conjugate(system, theta, x0, loss)
    grad = reference_grad(system, theta, x0, loss)

    def forbidden(*args, **kwargs):
        raise AssertionError("the copies called the sweep")

    import integrators.memory
    import integrators.stationary

    for module in (I, integrators.stationary):
        for name in ("sweep", "tension", "forward", "_sweep", "output"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(integrators.memory.StoreAll, "forward", forbidden)
    monkeypatch.setattr(integrators.memory.StoreAll, "backward", forbidden)
    with pytest.raises(AssertionError, match="called the sweep"):
        I.sweep(system, theta, x0, loss)
    run = I.relax_copies(system, theta, x0, loss, 1e-3, iterations=2 * system.depth + 1, eta=1.0)
    assert rel_l2(_diff(run.x1, run.x2)[1:], [1e-3 * p for p in ps[1:]]) <= 1e-9
    assert rel_l2(run.grad, grad) <= 1e-9


def test_copies_separate_symmetrically_and_jacobi_is_exact(key):
    """`x1 - x+ = x+ - x2 = x-/2`, the copies exchange roles when beta changes sign in the loss's
    direction (a linear loss), and with `eta = 1` the relaxation is exact after 2N + 1 steps."""
    system = L.ResNet(dim=3, depth=5)
    theta = system.init(key)
    x0 = jnp.ones(3)
    loss = L.LinearFunctional(c=jnp.array([1.0, -2.0, 0.5]))
    xs, ps = reference_conjugate(system, theta, x0, loss)
    run = I.relax_copies(system, theta, x0, loss, 0.5, iterations=2 * system.depth + 1, eta=1.0)
    np.testing.assert_allclose(run.x1 - jnp.stack(xs), jnp.stack(xs) - run.x2, atol=1e-14)
    np.testing.assert_allclose(run.x1 - run.x2, 0.5 * jnp.stack([jnp.zeros(3)] + ps[1:]), atol=1e-14)
    assert float(run.force_history[-1]) <= 1e-14


def test_bad_arguments(key):
    system = L.ResNet(dim=2, depth=3)
    theta = system.init(key)
    with pytest.raises(ValueError, match="beta"):
        I.relax_copies(system, theta, jnp.ones(2), L.SquaredError(), 0.0)
    with pytest.raises(ValueError, match="eta"):
        I.relax_copies(system, theta, jnp.ones(2), L.SquaredError(), 1.0, eta=1.5)
