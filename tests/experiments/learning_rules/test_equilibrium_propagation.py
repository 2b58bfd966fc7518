"""Equilibrium propagation against jax.grad (layered energy) and implicit differentiation (Hopfield)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrangian
from experiments.learning_rules import equilibrium_propagation as ep
from experiments.learning_rules import inference
from tests.helpers import rel_l2

BETAS = np.logspace(-6, -1, 6)
FIT = (1e-5, 1e-2)
"""The asymptotic range: above the rounding floor (~eps / beta), below the nonlinear regime."""


def _slope(betas, errors):
    keep = (betas >= FIT[0]) & (betas <= FIT[1])
    return float(np.polyfit(np.log(betas[keep]), np.log(np.asarray(errors)[keep]), 1)[0])


@pytest.fixture(scope="module")
def errors(acceptance):
    net, theta, x0, loss, ref = acceptance
    out = {}
    for symmetric in (False, True):
        # at beta = 0.1 (outside FIT, which the slopes read) the sweeps do not contract: recorded, not warned
        fn = jax.jit(lambda b, s=symmetric: ep.equilibrium_propagation(net, theta, x0, loss, b, s, solver="sweeps",
                                                                     on_unconverged="ignore"))
        estimates = [fn(b) for b in BETAS]
        assert [bool(e.converged) for e in estimates] == [True] * 5 + [False]
        out[symmetric] = np.array([rel_l2(e.grad, ref) for e in estimates])
    return out


def test_one_sided_ep_error_falls_with_slope_one(errors):
    assert abs(_slope(BETAS, errors[False]) - 1.0) <= 0.1, errors[False]


def test_symmetric_ep_error_falls_with_slope_two(errors):
    assert abs(_slope(BETAS, errors[True]) - 2.0) <= 0.2, errors[True]


def test_symmetric_ep_at_beta_1e_4_is_within_1e_5_of_jax_grad(errors):
    i = int(np.argmin(np.abs(BETAS - 1e-4)))
    assert errors[True][i] <= 1e-5  # the acceptance bound (measured 1.6e-6 on its seed)
    assert errors[True][i] < errors[False][i] / 100  # symmetric removes the O(beta) bias


def test_free_equilibrium_is_the_forward_pass_and_nudged_ones_are_stationary(acceptance):
    net, theta, x0, loss, _ = acceptance
    solve = jax.jit(lambda b: inference.newton(net, theta, x0, loss, b))
    free = solve(0.0)
    forward = lagrangian.prediction_errors(net, theta, free.xs)
    assert max(float(jnp.max(jnp.abs(e))) for e in forward) <= 1e-15  # the forward pass (jit may fuse differently)
    nudged = solve(0.1)
    assert float(nudged.residual) <= 1e-14  # |dF/dx|_inf at rounding (quadratic convergence)
    # the residual is the gradient of F_beta in x: compare with jax.grad of the energy (reference)
    grads = jax.grad(lambda xs: lagrangian.total_energy(net, theta, (x0, *xs), loss, 0.1))(nudged.xs[1:])
    assert max(float(jnp.max(jnp.abs(g))) for g in grads) <= 1e-15


def test_sweeps_and_newton_find_the_same_equilibrium(acceptance):
    net, theta, x0, loss, _ = acceptance
    a = jax.jit(lambda: inference.newton(net, theta, x0, loss, 1e-3))()
    b = jax.jit(lambda: inference.sweeps(net, theta, x0, loss, 1e-3))()
    assert max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a.xs, b.xs)) <= 1e-14


def test_zero_nudge_is_an_error(acceptance):
    net, theta, x0, loss, _ = acceptance
    with pytest.raises(ValueError, match="non-zero nudge"):
        ep.equilibrium_propagation(net, theta, x0, loss, 0.0)
    with pytest.raises(ValueError, match="unknown equilibrium solver"):
        ep.equilibrium_propagation(net, theta, x0, loss, 1e-3, solver="bisection")


@pytest.mark.parametrize("solver", ["newton", "sweeps"])
def test_equilibrium_solvers_name_bad_arguments(acceptance, solver):
    net, theta, x0, loss, _ = acceptance
    solve = getattr(inference, solver)
    with pytest.raises(ValueError, match=f"{solver} needs a batch x0 of shape"):
        solve(net, theta, x0[0], loss, 1e-3)
    with pytest.raises(ValueError, match=f"{solver} needs a loss when the output is free"):
        solve(net, theta, x0, None, 1e-3)


# --- the classic Hopfield-like network --------------------------------------------------------


def _implicit_gradient(theta, x, y):
    """Reference: dC(s*(theta))/dtheta by the implicit function theorem at the free fixed point,
    ds*/dtheta = -(d^2E/ds^2)^{-1} d^2E/ds dtheta, with jax's Hessians (independent of EP)."""
    n = theta["b1"].shape[0]

    def one(x_, y_):
        h, o = ep.hopfield_equilibrium(theta, x_, y_, 0.0, n)  # the fixed point (checked below)
        s = jnp.concatenate([h, o])
        energy = lambda s_, th: lagrangian.hopfield_energy(th, x_, s_[:n], s_[n:])
        hess = jax.hessian(energy)(s, theta)
        mixed = jax.jacfwd(jax.grad(energy), argnums=1)(s, theta)
        dc_ds = jnp.concatenate([jnp.zeros(n), o - y_])
        lam = jnp.linalg.solve(hess, dc_ds)
        return jax.tree.map(lambda m: -jnp.tensordot(lam, m, axes=1), mixed)

    return jax.tree.map(lambda g: jnp.mean(g, axis=0), jax.vmap(one)(x, y))


@pytest.fixture(scope="module")
def hopfield():
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    theta = lagrangian.hopfield_init(k1, (4, 6, 2), scale=1.5)
    x = jax.random.normal(k2, (8, 4))
    y = 0.5 * jax.random.normal(k3, (8, 2))
    return theta, x, y, jax.jit(_implicit_gradient)(theta, x, y)  # jitted: eager vmap of hessians takes 14 s


# The Hopfield network's reference is a vmapped implicit-function gradient built from jax's Hessians
# (compiled, about 6 s on one core); its two tests run with `pytest -m slow`, the layered EP above
# in the default suite.


@pytest.mark.slow
def test_hopfield_free_state_is_a_fixed_point(hopfield):
    theta, x, y, _ = hopfield
    h, o = ep.hopfield_equilibrium(theta, x[0], y[0], 0.0, 6)
    # the fixed point of Scellier & Bengio: u = rho'(u) * (W rho(neighbours) + b)
    rho, drho = jnp.tanh, lambda u: 1 - jnp.tanh(u) ** 2
    h_fix = drho(h) * (theta["W1"] @ rho(x[0]) + theta["W2"].T @ rho(o) + theta["b1"])
    o_fix = drho(o) * (theta["W2"] @ rho(h) + theta["b2"])
    assert float(jnp.max(jnp.abs(h - h_fix))) <= 1e-14 and float(jnp.max(jnp.abs(o - o_fix))) <= 1e-14


@pytest.mark.slow
def test_hopfield_ep_matches_implicit_differentiation(hopfield):
    theta, x, y, ref = hopfield
    estimate = jax.jit(ep.hopfield_ep, static_argnames="symmetric")
    sym = [rel_l2(estimate(theta, x, y, b), ref) for b in (1e-3, 1e-4)]
    one = [rel_l2(estimate(theta, x, y, b, symmetric=False), ref) for b in (1e-3, 1e-4)]
    assert sym[1] <= 1e-6 and 70 <= sym[0] / sym[1] <= 130  # O(beta^2): x100 per decade (5.4e-8 measured)
    assert one[1] <= 1e-3 and 7 <= one[0] / one[1] <= 13  # O(beta): x10 per decade (1.6e-4 measured)


@pytest.mark.slow  # four Newton solves compiled with and without jit (about 15 s on one core); the
# warning of an unconverged equilibrium is checked in the default suite on the sweeps solver below
def test_unconverged_equilibrium_warns_raises_or_is_recorded(acceptance):
    """Symmetric EP at beta = 0.1 on the acceptance network: the -beta phase stops after the
    default 40 Newton iterations short of its tolerance. The estimate comes with a warning
    naming the residual (default), an error (`on_unconverged="raise"`), or only the record
    (`"ignore"`); a converged solve (beta = 0.01) is silent."""
    import warnings

    net, theta, x0, loss, _ = acceptance
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fine = ep.equilibrium_propagation(net, theta, x0, loss, 0.01)
        jax.effects_barrier()
    assert bool(fine.converged) and float(fine.residual) < 1e-12
    assert not [w for w in caught if issubclass(w.category, inference.UnconvergedWarning)]

    with pytest.warns(inference.UnconvergedWarning, match=r"newton \(equilibrium\) stopped before its tolerance "
                                                          r"1e-13: residual [0-9.e-]+ after 40 iterations"):
        est = ep.equilibrium_propagation(net, theta, x0, loss, 0.1)
        jax.effects_barrier()
    assert not bool(est.converged) and int(est.iterations) == 40 and float(est.residual) > 1e-8

    with pytest.raises(Exception, match="stopped at its iteration limit before its tolerance"):
        strict = ep.equilibrium_propagation(net, theta, x0, loss, 0.1, on_unconverged="raise")
        jax.block_until_ready(strict.grad)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        quiet = jax.jit(lambda b: ep.equilibrium_propagation(net, theta, x0, loss, b, on_unconverged="ignore"))(0.1)
        jax.effects_barrier()
    assert not bool(quiet.converged) and float(quiet.residual) == pytest.approx(float(est.residual), rel=1e-12)

    with pytest.raises(ValueError, match="on_unconverged must be one of"):
        inference.newton(net, theta, x0, loss, 0.1, on_unconverged="loud")


def test_unconverged_sweeps_warn_under_jit(acceptance):
    """The Hessian-free sweeps stop at `max_iterations` for a strong nudge: the warning comes from
    inside the compiled program too."""
    net, theta, x0, loss, _ = acceptance
    solve = jax.jit(lambda b: inference.sweeps(net, theta, x0, loss, b, max_iterations=5))
    with pytest.warns(inference.UnconvergedWarning, match=r"sweeps \(equilibrium\) stopped before its tolerance"):
        eq = solve(0.5)
        jax.effects_barrier()
    assert not bool(eq.converged) and int(eq.iterations) == 5
