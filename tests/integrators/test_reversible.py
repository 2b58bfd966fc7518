"""`Reversible()` memory for every scheme that has an inverse step, and a clear refusal otherwise.

Two families (docs/design.md, memory):

- the McCallum-Foster reversible version `"reversible-<tableau>"` of every explicit tableau
  (`integrators.ReversibleRungeKutta`), whose inverse is closed-form;
- the symmetric schemes (Gauss-Legendre 1-3, Lobatto IIIA/IIIB, leapfrog, Yoshida4), undone
  by their own step with `-h` (Newton-solved for the implicit ones), and every splitting
  (undone shear by shear).

Reference: `jax.grad` through the same discrete map (`integrators.output`, all states kept).
Tolerances are relative L2 over all parameter leaves (`tests.helpers.rel_l2`), float64:
1e-12 where the inverse is exact up to rounding (a few ulps per step, grown over `N` steps);
the implicit tableaux 1e-10, their stages being Newton-solved to 1e-14 both ways.
The reconstruction error is `max |z_0^rec - z_0| / max |z_0|` (the sweep's own report).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import rel_l2

EXPLICIT = [t for t in I.TABLEAUX.values() if t.explicit]
COUPLED = [I.reversible_name(t) for t in EXPLICIT]
COUPLED_FAST = ["reversible-euler", "reversible-midpoint", "reversible-rk4", "reversible-dopri5"]
COUPLED_DEFAULT = ["reversible-euler", "reversible-rk4"]
"""Of `COUPLED_FAST`, the schemes in the default suite; each compiles its own pair of sweeps
(2-5 s on one core), so midpoint and Dormand-Prince run with `pytest -m slow`."""
SYMMETRIC_IMPLICIT = sorted(n for n, t in I.TABLEAUX.items() if not t.explicit and t.symmetric)
SPLITTINGS = sorted(I.SPLITTINGS)


class DrivenField(L.VectorField):
    """Non-autonomous, so the inverse must use the right stage times: `tanh(W x + b) + sin(3t) c`."""

    state_dim: int = 3

    def init(self, key, dtype=jnp.float64):
        k1, k2, k3 = jax.random.split(key, 3)
        n = self.state_dim
        return {"W": jax.random.normal(k1, (n, n), dtype) / n, "b": jax.random.normal(k2, (n,), dtype),
                "c": jax.random.normal(k3, (n,), dtype)}

    def __call__(self, t, x, theta):
        return jnp.tanh(theta["W"] @ x + theta["b"]) + jnp.sin(3.0 * t) * theta["c"]


def _exactness(system, theta, x0, loss):
    """`(relative L2 error of dl/dtheta, of dl/dx0, reconstruction error)` of the `Reversible()`
    sweep against `jax.grad` through the composed map."""
    sol = I.sweep(system, theta, x0, loss, memory=I.Reversible())
    ref, ref_x0 = jax.grad(lambda th, x: loss(I.output(system, th, x)), argnums=(0, 1))(theta, x0)
    return float(rel_l2(sol.grad, ref)), float(rel_l2(sol.grad_x0, ref_x0)), float(sol.reconstruction_error)


# --- McCallum-Foster: every explicit tableau ------------------------------------------------


def test_every_explicit_tableau_has_a_reversible_name():
    assert set(COUPLED) <= set(I.scheme_names()) and set(COUPLED) <= set(I.REVERSIBLE)
    assert "reversible-rk4" in COUPLED and "reversible-dopri5" in COUPLED and "reversible-tsit5" in COUPLED
    # Heun's tableau takes its alias: "reversible-heun" is Kidger et al.'s reversible Heun
    assert I.reversible_name(I.HEUN) == "reversible-explicit-trapezoid"
    assert isinstance(I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), "reversible-heun"), I.ReversibleHeun)
    ode = I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), "reversible-explicit-trapezoid", coupling=0.5)
    assert isinstance(ode, I.ReversibleRungeKutta) and ode.base is I.HEUN and ode.coupling == 0.5


def _check_coupled(name, coupling=0.999):
    field = DrivenField()
    theta = field.init(jax.random.key(0))
    x0 = jax.random.normal(jax.random.key(1), (4, 3))
    system = I.discretise(field, I.uniform_grid(2.0, 64), name, coupling=coupling)
    grad_error, x0_error, reconstruction = _exactness(system, theta, x0, L.SquaredError(target=0.25))
    assert grad_error <= 1e-12 and x0_error <= 1e-12
    assert 0.0 <= reconstruction <= 1e-12


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in COUPLED_DEFAULT else pytest.mark.slow)
                                  for n in COUPLED_FAST])
def test_reversible_version_of_explicit_tableau_is_exact(name):
    _check_coupled(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(COUPLED) - set(COUPLED_FAST)))
def test_reversible_version_of_every_other_explicit_tableau_is_exact(name):
    _check_coupled(name)


@pytest.mark.parametrize("coupling", [0.99, pytest.param(1.0, marks=pytest.mark.slow)])
def test_reversible_rk4_is_exact_at_other_couplings(coupling):
    _check_coupled("reversible-rk4", coupling)


def test_a_small_coupling_is_backward_unstable_and_the_sweep_says_so():
    """The inverse divides the difference `y - w` by `lambda` each step, so rounding grows like
    `lambda^-N`: at lambda = 0.5 over 64 steps (2^64 ~ 2e19) reconstruction fails, and the sweep
    reports it (reconstruction error > 1e-3) instead of returning a silently wrong gradient."""
    field = DrivenField()
    theta = field.init(jax.random.key(0))
    system = I.discretise(field, I.uniform_grid(2.0, 64), "reversible-rk4", coupling=0.5)
    sol = I.sweep(system, theta, jnp.ones(3), L.SquaredError(), memory=I.Reversible())
    assert not float(sol.reconstruction_error) <= 1e-3


def test_inverse_undoes_one_step_of_every_explicit_tableau():
    """Round trip of one step on a non-uniform grid, non-autonomous field, `y != w`: within a
    few ulps (1e-14 relative, the coupling divides by lambda = 0.9)."""
    field = DrivenField()
    theta = field.init(jax.random.key(2))
    ts = jnp.array([0.0, 0.13, 0.4])
    z = jnp.concatenate([jnp.array([0.3, -1.1, 0.8]), jnp.array([0.35, -1.0, 0.7])])
    for tab in EXPLICIT:
        system = I.ReversibleRungeKutta(field, ts, tab, coupling=0.9)
        z_next = system.layer(1, z, theta)
        np.testing.assert_allclose(system.inverse(1, z_next, theta), z, rtol=1e-14, atol=1e-14, err_msg=tab.name)


def test_the_coupled_step_written_out():
    """Euler base step `Phi_h(w) = w + h f(w)`: `y' = lambda (y - w) + w + h f(t, w)`,
    `w' = w + y' - (y' - h f(t + h, y'))`; and `z_0 = (x_0, x_0)`, `x = y`."""
    field = DrivenField()
    theta = field.init(jax.random.key(3))
    system = I.discretise(field, jnp.array([0.2, 0.5]), "reversible-euler", coupling=0.7)
    y, w = jnp.array([0.3, -1.1, 0.8]), jnp.array([0.1, 0.2, 0.3])
    y_next = 0.7 * (y - w) + w + 0.3 * field(0.2, w, theta)
    w_next = w + 0.3 * field(0.5, y_next, theta)
    np.testing.assert_allclose(system.layer(0, jnp.concatenate([y, w]), theta),
                               jnp.concatenate([y_next, w_next]), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(system.embed(y, theta), jnp.concatenate([y, y]))
    np.testing.assert_array_equal(system.project(jnp.concatenate([y, w])), y)


@pytest.mark.parametrize("name,order", [("reversible-euler", 1), ("reversible-rk4", 4), ("reversible-dopri5", 5)])
def test_the_reversible_scheme_keeps_the_order_of_its_tableau(name, order):
    """`dx/dt = A x` against `expm(A T)`: the fitted order of `y` between N = 20 and 40 is within
    0.3 of the tableau's (the error constant of the coupled step differs from the base one)."""
    import scipy.linalg

    field = L.Linear(4)
    theta = field.init(jax.random.key(4))
    x0 = jnp.linspace(-1.0, 1.0, 4)
    exact = scipy.linalg.expm(np.asarray(theta["A"]) * 1.0) @ np.asarray(x0)
    errors = [float(jnp.max(jnp.abs(I.output(I.discretise(field, I.uniform_grid(1.0, n), name), theta, x0) - exact)))
              for n in (20, 40)]
    assert abs(np.log2(errors[0] / errors[1]) - order) <= 0.3


def test_padding_steps_are_identities():
    """A repeated final time (`h = 0`, as adaptive grids pad) leaves `(y, w)` unchanged both ways."""
    field = DrivenField()
    theta = field.init(jax.random.key(5))
    system = I.discretise(field, jnp.array([0.0, 0.5, 0.5]), "reversible-rk4", coupling=0.5)
    z = jnp.arange(6.0) / 7
    np.testing.assert_array_equal(system.layer(1, z, theta), z)
    np.testing.assert_array_equal(system.inverse(1, z, theta), z)


@pytest.mark.slow  # about 9 s on one core; the default suite checks reversible memory through `solve` in
# test_differentiable.py and the time grid's gradient there with RK4
def test_grad_through_solve_with_saved_states_and_the_time_grid():
    """`jax.grad` through `integrators.solve` (saved states inside and at the end, non-uniform
    grid, `dl/dts` too) with `Reversible()` memory against `jax.grad` through the plain scan."""
    field = DrivenField()
    theta = field.init(jax.random.key(3))
    ts = jnp.sort(jax.random.uniform(jax.random.key(4), (13,), minval=0.0, maxval=2.0))
    x0 = jax.random.normal(jax.random.key(5), (4, 3))

    def through_solve(ts, theta, x0):
        out = I.solve(I.discretise(field, ts, "reversible-rk4"), theta, x0, memory=I.Reversible(), saveat=(5, 12))
        return jnp.sum(jnp.sin(out))

    def through_scan(ts, theta, x0):
        system = I.discretise(field, ts, "reversible-rk4")
        zs = I.forward(system, theta, x0)
        return jnp.sum(jnp.sin(jnp.stack([jax.vmap(system.project)(zs[i]) for i in (5, 12)])))

    got = jax.grad(through_solve, argnums=(0, 1, 2))(ts, theta, x0)
    want = jax.grad(through_scan, argnums=(0, 1, 2))(ts, theta, x0)
    assert rel_l2(got[0], want[0]) <= 1e-12
    assert rel_l2(got, want) <= 1e-12


def test_bad_couplings_and_implicit_tableaux_are_refused():
    field, ts = L.NeuralODE(2), I.uniform_grid(1.0, 4)
    for coupling in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"coupling lambda must lie in \(0, 1\]"):
            I.ReversibleRungeKutta(field, ts, I.RK4, coupling=coupling)
    with pytest.raises(ValueError, match="needs an explicit tableau; 'gauss-legendre-2' is implicit"):
        I.ReversibleRungeKutta(field, ts, I.GAUSS2)


# --- symmetric schemes: their own step with -h ---------------------------------------------


def test_which_tableaux_are_symmetric():
    assert {n for n, t in I.TABLEAUX.items() if t.symmetric} == set(SYMMETRIC_IMPLICIT) == {
        "gauss-legendre-1", "gauss-legendre-2", "gauss-legendre-3", "lobatto-iiia", "lobatto-iiib"}


@pytest.mark.parametrize("name", ["leapfrog", "yoshida4", "gauss-legendre-2",
                                  pytest.param("lobatto-iiia", marks=pytest.mark.slow)])  # a second Newton inverse
def test_inverse_of_a_symmetric_scheme_is_its_step_with_minus_h(name):
    """The inverse (shear by shear for a splitting, `Phi_{-h}` for a tableau) against the layer
    on the reversed one-step grid `(t_{k+1}, t_k)`: the same map, to rounding (1e-14)."""
    field = L.Pendulum(omega=1.3)
    theta = field.init(jax.random.key(0))
    system = I.discretise(field, jnp.array([0.0, 0.1, 0.35]), name)
    x_next = system.layer(1, jnp.array([0.9, -0.4]), theta)
    backward = system.on_grid(1, jnp.array([0.35, 0.1])).layer(0, x_next, theta)
    np.testing.assert_allclose(system.inverse(1, x_next, theta), backward, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(system.inverse(1, x_next, theta), jnp.array([0.9, -0.4]), rtol=1e-13)


def _check_symmetric(name, field, steps, h=0.01):
    theta = field.init(jax.random.key(0))
    system = I.discretise(field, I.uniform_grid(h * steps, steps), name)
    return _exactness(system, theta, jnp.array([1.0, 0.5]), L.SquaredError(target=0.25))


@pytest.mark.parametrize("name", [
    *(pytest.param(n, marks=pytest.mark.slow if n == "yoshida4" else ()) for n in SPLITTINGS),
    "gauss-legendre-2",
    # the Lobatto pair and Yoshida's composition compile their own 300-step sweeps (2-4 s each on one core)
    pytest.param("lobatto-iiia", marks=pytest.mark.slow),
    pytest.param("lobatto-iiib", marks=pytest.mark.slow),
])
def test_symmetric_scheme_with_reversible_memory_is_exact(name):
    """300 steps of h = 0.01 on the pendulum: gradient 1e-12 (1e-10 implicit), reconstruction 1e-13."""
    implicit = name in SYMMETRIC_IMPLICIT
    grad_error, x0_error, reconstruction = _check_symmetric(name, L.Pendulum(omega=1.2), 300)
    assert max(grad_error, x0_error) <= (1e-10 if implicit else 1e-12)
    assert reconstruction <= 1e-13


@pytest.mark.slow
@pytest.mark.parametrize("field", ["oscillator", "pendulum"])
@pytest.mark.parametrize("name", ["leapfrog", "yoshida4", *SYMMETRIC_IMPLICIT])
def test_symmetric_schemes_over_ten_thousand_steps(name, field):
    """The acceptance of the issue: N = 1e4, h = 0.01. Reconstruction error <= 1e-12 for the
    explicit splittings, <= 1e-9 for the implicit tableaux (stages Newton-solved to 1e-14);
    gradient within 1e-10 (explicit) and 1e-8 (implicit) of `jax.grad` through the stored map.
    Measured: reconstruction 2e-15..6e-14, gradient 5e-15..5e-14."""
    implicit = name in SYMMETRIC_IMPLICIT
    system = L.HarmonicOscillator(omega=1.0) if field == "oscillator" else L.Pendulum(omega=1.0)
    grad_error, x0_error, reconstruction = _check_symmetric(name, system, 10_000)
    assert reconstruction <= (1e-9 if implicit else 1e-12)
    assert max(grad_error, x0_error) <= (1e-8 if implicit else 1e-10)


@pytest.mark.slow  # vmapped Newton inverse of a 20-step sweep: about 8 s on one core (batched implicit
# stages are checked by test_newton.py in the default suite)
def test_a_batch_of_states_on_an_implicit_symmetric_scheme():
    """`Reversible()` on a batch (`lagrangian.Batched` vmaps the Newton-solved inverse)."""
    field = L.MLPField(3, hidden=6)
    theta = field.init(jax.random.key(1))
    x0 = jax.random.normal(jax.random.key(2), (3, 3))
    system = I.discretise(field, I.uniform_grid(1.0, 20), "gauss-legendre-1")
    grad_error, x0_error, reconstruction = _exactness(system, theta, x0, L.SquaredError())
    assert max(grad_error, x0_error) <= 1e-10 and reconstruction <= 1e-13


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("tab", ["rk4", "dopri5", "heun"])
def test_explicit_tableaux_are_refused_with_their_reversible_form(tab):
    system = I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), tab)
    name = I.reversible_name(I.tableau(tab))
    with pytest.raises(ValueError, match=f"no algebraic inverse; its reversible form is .*'{name}'"):
        I.sweep(system, system.init(jax.random.key(0)), jnp.ones(2), L.SquaredError(), memory=I.Reversible())
    assert I.Reversible().check(I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), name)) is None


def test_a_non_symmetric_implicit_tableau_and_a_network_are_refused():
    radau = I.ButcherTableau("radau-iia-2", ((5 / 12, -1 / 12), (3 / 4, 1 / 4)), (3 / 4, 1 / 4), (1 / 3, 1.0), 3)
    assert not radau.symmetric
    system = I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), radau)
    with pytest.raises(ValueError, match="implicit tableau 'radau-iia-2' has no algebraic inverse: the tableau is not"):
        I.Reversible().check(system)
    with pytest.raises(ValueError, match="not symmetric"):
        system.inverse(0, jnp.ones(2), system.init(jax.random.key(0)))
    with pytest.raises(ValueError, match="ResNet has no algebraic inverse; .*'reversible-<tableau>'"):
        I.Reversible().check(L.ResNet(dim=2, depth=3))
    with pytest.raises(ValueError, match="no algebraic inverse"):            # a batch does not hide it
        I.Reversible().check(L.Batched(I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 4), "rk4")))


# --- memory --------------------------------------------------------------------------------


def _temp_bytes(name, steps, memory):
    """XLA's temporary-buffer size of the compiled gradient (deterministic; compiled, not run)."""
    from experiments.harness.metrics import compile_lowered

    field = L.NeuralODE(state_dim=4)
    theta = field.init(jax.random.key(0))
    system = I.discretise(field, I.uniform_grid(1.0, steps), name)
    grad = jax.grad(lambda th: jnp.sum(I.solve(system, th, jnp.ones((2, 4)), memory=memory) ** 2))
    return compile_lowered(jax.jit(grad).lower(theta))[2]


def _check_flat_memory(name):
    reversible = [_temp_bytes(name, n, I.Reversible()) for n in (1000, 100_000)]
    assert reversible[0] == reversible[1], reversible
    assert _temp_bytes(name, 100_000, I.StoreAll()) >= 50 * reversible[1]


@pytest.mark.parametrize("name", ["reversible-rk4",
                                  pytest.param("gauss-legendre-2", marks=pytest.mark.slow)])  # 7 s on one core
def test_reversible_memory_is_the_same_at_a_thousand_and_a_hundred_thousand_steps(name):
    """The acceptance of the issue: equal XLA temporary memory at N = 1e3 and 1e5 (store-all
    at 1e5 holds 50x more)."""
    _check_flat_memory(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(COUPLED) - {"reversible-rk4"}))
def test_reversible_memory_is_flat_for_every_explicit_tableau(name):
    _check_flat_memory(name)
