"""ResNet as a time discretisation: the sweep is exact, the 1/tau-normalised gradient converges."""

import jax
import numpy as np
import pytest

from experiments.correspondences import residual_time as rt


@pytest.fixture(scope="module")
def runs():
    path = rt.random_path(3, jax.random.key(1), scale=1.5)
    return rt.measure(path, 2.0, (20, 40, 80))[0]


@pytest.mark.slow  # 15-20 s: diffrax reference solves; the adjoint-toolbox run covers it too
def test_sweep_gradient_equals_jax_grad(runs):
    for numbers, _, _ in runs:
        assert numbers.sweep_vs_jax_grad <= 1e-12  # exact discrete gradient (DESIGN 2.3)


@pytest.mark.slow  # 15-20 s: diffrax reference solves; the adjoint-toolbox run covers it too
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


@pytest.mark.slow  # 15-20 s: diffrax reference solves; the adjoint-toolbox run covers it too
def test_density_integrates_to_the_gradient_of_the_constant_part():
    """`dl/dW0 = int_0^T dl/dW(t) dt` (since `dW(t)/dW0 = I`): the diffrax density against
    `jax.grad` through a diffrax solve of the loss (discretise-then-optimise at tolerance 1e-12)."""
    import diffrax
    import jax.numpy as jnp
    from scipy import integrate

    path = rt.random_path(3, jax.random.key(4), scale=1.5)
    T = 1.0

    def loss(W0):
        p = path._replace(W0=W0)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, x, args: rt.field(t, x, p)), diffrax.Tsit5(), 0.0, T, 0.01, p.x0,
            stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12), max_steps=100_000,
        )
        return 0.5 * jnp.sum((sol.ys[-1] - p.y) ** 2)

    reference = np.asarray(jax.grad(loss)(path.W0))
    ts = np.linspace(0.0, T, 2001)
    dW, _ = rt.continuous_density(path, T, ts)
    integral = integrate.simpson(np.asarray(dW), x=ts, axis=0)
    # Simpson with h = 5e-4 on a smooth integrand (~1e-12) plus the solvers' 1e-12 tolerances
    np.testing.assert_allclose(integral, reference, rtol=0, atol=1e-8)
