"""Every integrator the project offers gets the exact gradient of its own discrete map.

Tolerances (relative L2 over all parameter leaves, float64): 1e-12 for explicit
Runge-Kutta, splitting and reversible schemes, whose conjugate performs the
same arithmetic as reverse-mode autodiff up to reassociation; 1e-10 for
implicit tableaux, whose stages are Newton-solved to 1e-14 (the reference
differentiates the converged solve by the implicit function theorem, the
conjugate by a dense linear solve: both are exact only up to that tolerance).
Orders of convergence are fitted against the closed form of `dx/dt = A x`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import integrators as I
import lagrangian as L
from tests.helpers import rel_l2, van_loan_gradient

IMPLICIT = {name for name, t in I.TABLEAUX.items() if not t.explicit}
ALL = I.scheme_names()


def _tolerance(method):
    return 1e-10 if method in IMPLICIT else 1e-12


def _problem(method, dim, seed, batch=4):
    """A nonlinear field of dimension `dim` for `method` (separable pendulum chain for splittings)."""
    key = jax.random.key(seed)
    if method in I.SPLITTINGS:
        field = L.Pendulum(omega=1.3)
        dim = 2
    else:
        field = L.MLPField(dim, hidden=6)
    theta = field.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (batch, dim))
    return field, theta, x0


def _reference(system, theta, x0, loss):
    return jax.grad(lambda th: loss(I.output(system, th, x0)))(theta)


REPRESENTATIVE = ["euler", "midpoint", "rk4", "dopri5", "gauss-legendre-2", "lobatto-iiia", "leapfrog",
                  "yoshida4", "reversible-heun", "asynchronous-leapfrog"]
FAST = ["rk4", "leapfrog", "reversible-heun", "asynchronous-leapfrog"]
"""The kinds in the default suite: an explicit tableau, a splitting and both reversible schemes.
Each method compiles its own sweep and reference (2-7 s on one core, the implicit tableaux the
most), so the others are `slow`; an implicit tableau's gradient is exact in the default suite
through test_reversible.py (Gauss-Legendre) and its stage pullback through test_runge_kutta.py."""


@pytest.mark.parametrize("method", [pytest.param(m, marks=() if m in FAST else pytest.mark.slow)
                                    for m in REPRESENTATIVE])
def test_every_kind_of_method_is_exact(method):
    _check_exact(method)


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(set(ALL) - set(REPRESENTATIVE)))
def test_every_other_method_is_exact(method):
    _check_exact(method)


def _check_exact(method):
    field, theta, x0 = _problem(method, 3, seed=0)
    system = I.discretise(field, I.uniform_grid(1.5, 12), method)
    loss = L.SquaredError(target=0.25)
    solution = I.sweep(system, theta, x0, loss)
    assert rel_l2(solution.grad, _reference(system, theta, x0, loss)) <= _tolerance(method)


@pytest.mark.slow
@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("dim", [2, 16, 64])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.2, 2.0))
def test_every_method_is_exact_on_neural_odes(method, dim, seed, scale):
    if method in I.SPLITTINGS:
        field, theta, x0 = _problem(method, 2, seed)
    else:
        field = L.NeuralODE(dim, scale=scale)
        key = jax.random.key(seed)
        theta = field.init(key)
        x0 = jax.random.normal(jax.random.fold_in(key, 1), (3, dim))
    system = I.discretise(field, I.uniform_grid(1.0, 10), method)
    loss = L.SquaredError(target=-0.1)
    assert rel_l2(I.sweep(system, theta, x0, loss).grad, _reference(system, theta, x0, loss)) <= _tolerance(method)


class Driven(L.VectorField):
    """A time-dependent field `f(t, x) = tanh(W x + b sin(3 t))`."""

    state_dim: int = 3

    def init(self, key, dtype=jnp.float64):
        kw, kb = jax.random.split(key)
        return {"W": jax.random.normal(kw, (3, 3), dtype), "b": jax.random.normal(kb, (3,), dtype)}

    def __call__(self, t, x, theta):
        return jnp.tanh(theta["W"] @ x + theta["b"] * jnp.sin(3.0 * t))


@pytest.mark.parametrize(  # each method: 2-3 s on one core; the reversible scheme is on a user grid in test_reversible.py
    "method", ["rk4", *(pytest.param(m, marks=pytest.mark.slow) for m in ("reversible-heun", "dopri5", "gauss-legendre-2"))]
)
def test_time_dependent_field_on_a_user_grid(method, key):
    field = Driven()
    theta = field.init(key)
    ts = jnp.array([0.0, 0.05, 0.2, 0.3, 0.65, 0.7, 1.1, 1.5])
    system = I.discretise(field, ts, method)
    x0 = jax.random.normal(key, (2, 3))
    loss = L.SquaredError()
    assert rel_l2(I.sweep(system, theta, x0, loss).grad, _reference(system, theta, x0, loss)) <= _tolerance(method)


def _steps_for(order):
    base = {1: 64, 2: 32, 3: 16, 4: 8, 5: 10, 6: 4, 8: 4}[order]
    return np.array([base, 2 * base, 4 * base])


def _order_window(order):
    """`(below, above)`: how far the fitted slope may fall below and rise above the order. At
    order >= 5 float64 rounding (1e-16) is reached before the asymptotic range: Tsit5 and
    Dopri8 have small leading error terms, so their fitted slopes over the steps that stay
    above rounding are pre-asymptotic and larger than the order (Tsit5 5.03, its coupled
    version 5.24; Dopri8 8.73 on `T = 4`), hence one order of room above, none extra below."""
    return (0.2, 0.2) if order < 5 else (0.2, 1.0)


COUPLED = {I.reversible_name(t): t for t in I.TABLEAUX.values() if t.explicit}
"""The McCallum-Foster reversible schemes, each with the order of its tableau."""


def _order(method):
    if method in ("reversible-heun", "asynchronous-leapfrog"):
        return 2
    if method in COUPLED:
        return COUPLED[method].order
    return I.tableau(method).order


def _fitted_slopes(method):
    """Fitted orders of the forward error and of the gradient error against the closed form."""
    t_final = 4.0 if _order(method) >= 8 else 1.0     # order 8 reaches rounding within 8 steps of T = 1
    if method in I.SPLITTINGS:
        omega = 1.3
        field, theta = L.HarmonicOscillator(omega=omega), {"omega": jnp.asarray(omega)}
        a = np.array([[0.0, 1.0], [-(omega**2), 0.0]])
        x0 = np.array([0.8, -0.3])
        x_exact, grad_a = van_loan_gradient(a, x0, t_final)
        exact, pick = -2 * omega * grad_a[1, 0], lambda g: float(g["omega"])
    else:
        field = L.Linear(3)
        theta = field.init(jax.random.key(5))
        x0 = np.array([0.8, -0.3, 0.5])
        x_exact, exact = van_loan_gradient(np.asarray(theta["A"]), x0, t_final)
        pick = lambda g: np.asarray(g["A"])
    steps = _steps_for(_order(method))
    x_err, g_err = [], []
    for n in steps:
        system = I.discretise(field, I.uniform_grid(t_final, int(n)), method)
        sol = I.sweep(system, theta, jnp.asarray(x0), L.SquaredError())
        x_err.append(np.linalg.norm(np.asarray(sol.x_final) - x_exact) / np.linalg.norm(x_exact))
        g_err.append(np.linalg.norm(pick(sol.grad) - exact) / np.linalg.norm(exact))
    fit = lambda e: -np.polyfit(np.log(steps), np.log(e), 1)[0]
    return fit(x_err), fit(g_err), x_err, g_err


@pytest.mark.parametrize(  # three sweeps per method (1-3 s on one core): the default suite fits Euler's order
    "method", ["euler", *(pytest.param(m, marks=pytest.mark.slow) for m in ("rk4", "leapfrog", "reversible-heun",
                                                                           "gauss-legendre-2"))]
)
def test_convergence_order(method):
    x_slope, g_slope, x_err, g_err = _fitted_slopes(method)
    assert abs(x_slope - _order(method)) <= 0.2, (x_slope, x_err)
    assert abs(g_slope - _order(method)) <= 0.2, (g_slope, g_err)


@pytest.mark.slow
@pytest.mark.parametrize("method", ALL)
def test_convergence_order_of_every_method(method):
    x_slope, g_slope, x_err, g_err = _fitted_slopes(method)
    below, above = _order_window(_order(method))
    assert -below <= x_slope - _order(method) <= above, (x_slope, x_err)
    assert -below <= g_slope - _order(method) <= above, (g_slope, g_err)


@pytest.mark.parametrize("method,dim", [
    pytest.param(method, dim, id=f"{dim}-{method}", marks=() if dim == 2 else pytest.mark.slow)
    for dim in (2, 16) for method in ("reversible-heun", "asynchronous-leapfrog")
])  # each case compiles three sweeps of 200 steps (3-5 s on one core): the wider state is `slow`
def test_reversible_memory_is_exact_and_reports_reconstruction(method, dim, key):
    """The gradient of the scheme's own map, with states reconstructed backward
    (<= 1e-10: reconstruction round-off enters the stage points)."""
    field = L.NeuralODE(dim)
    theta = field.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (5, dim))
    system = I.discretise(field, I.uniform_grid(2.0, 200), method)
    loss = L.SquaredError(target=0.1)
    sol = I.sweep(system, theta, x0, loss, memory=I.Reversible())
    assert rel_l2(sol.grad, _reference(system, theta, x0, loss)) <= 1e-10
    assert rel_l2(sol.grad_x0, I.sweep(system, theta, x0, loss).grad_x0) <= 1e-10
    assert sol.reconstruction_error is not None and 0.0 <= float(sol.reconstruction_error) <= 1e-12


def test_adaptive_grid_gives_the_exact_gradient_of_the_accepted_steps(key):
    field = L.NeuralODE(3, scale=2.0)
    theta = field.init(key)
    x0 = jax.random.normal(key, (4, 3))
    loss = L.SquaredError(target=0.2)
    grid = I.adaptive_grid(field, theta, x0, 4.0, "dopri5", rtol=1e-7, atol=1e-9)
    n = int(grid.accepted)
    ts = np.asarray(grid.ts)
    assert 5 < n < 200 and ts[0] == 0.0 and ts[n] == 4.0 and np.all(ts[n:] == 4.0)
    assert np.all(np.diff(ts[: n + 1]) > 0)
    system = I.discretise(field, grid.ts, "dopri5")
    sol = I.sweep(system, theta, x0, loss)
    assert rel_l2(sol.grad, _reference(system, theta, x0, loss)) <= 1e-12
    # The padded grid gives the same map as the trimmed one, and the accuracy asked for.
    trimmed = I.discretise(field, grid.ts[: n + 1], "dopri5")
    assert rel_l2(I.sweep(trimmed, theta, x0, loss).grad, sol.grad) <= 1e-13
    fine = I.output(I.discretise(field, I.uniform_grid(4.0, 4000), "rk4"), theta, x0)
    assert float(jnp.max(jnp.abs(sol.x_final - fine))) < 1e-5


def test_adaptive_errors(key):
    field = L.NeuralODE(2)
    theta = field.init(key)
    with pytest.raises(ValueError, match="'rk4' has no embedded pair"):
        I.adaptive_grid(field, theta, jnp.ones(2), 1.0, "rk4")
    with pytest.raises(Exception, match="max_steps steps before reaching t_final"):
        I.adaptive_grid(field, theta, jnp.ones(2), 1.0, "heun", rtol=1e-12, atol=1e-12, max_steps=10)


def test_splitting_needs_a_separable_field():
    with pytest.raises(ValueError, match="needs a separable field"):
        I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), "leapfrog")
    with pytest.raises(ValueError, match="unknown integrator 'rk5'"):
        I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), "rk5")
