"""Hamiltonian echo learning on the oscillator chain.

The echo's gradient error against `jax.grad` through the same leapfrog map falls like eps^2
(symmetric) and eps (one-sided); the echo perturbation / eps is the conjugate field with its
position and momentum components exchanged; a nudge of the wrong sign is caught by `compare`.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

import integrators
import lagrangian
from experiments import harness
from experiments.harness.rules import HamiltonianEcho
from experiments.learning_rules import echo_error_curve, hamiltonian_echo, kick_weights
from experiments.learning_rules.hamiltonian_echo import echo_and_conjugate_field
from tests.helpers import reference_grad, rel_l2

EPS = [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4]
"""The asymptotic range: above it the echo leaves the linear regime, below 1e-5 rounding
(~1e-16 / eps) reaches the symmetric error."""


def slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@pytest.fixture(scope="module")
def chain():
    """The harness problem: 6 oscillators, h = 0.05, 200 steps, batch 4, full-state squared error."""
    return harness.problem_named("oscillator-chain")


@pytest.fixture(scope="module")
def curve(chain):
    return echo_error_curve(chain.system, chain.theta, chain.x0, chain.loss, EPS)


def test_echo_error_falls_like_eps_squared(curve):
    assert abs(slope(curve["eps"], curve["symmetric"]) - 2.0) < 0.2
    assert abs(slope(curve["eps"], curve["one_sided"]) - 1.0) < 0.1


def test_echo_at_eps_1e4_against_jax_grad(chain):
    """Checked directly against `jax.grad` through the leapfrog map (not via the curve)."""
    echo = hamiltonian_echo(chain.system, chain.theta, chain.x0, chain.loss, eps=1e-4)
    reference = reference_grad(chain.system, chain.theta, chain.x0, chain.loss)
    assert rel_l2(echo.grad, reference) < 1e-8  # O(eps^2) truncation (measured 6.5e-10)
    assert float(echo.loss) == pytest.approx(float(chain.loss_at(chain.theta)), rel=1e-14)


def test_echo_perturbation_is_the_exchanged_conjugate_field(curve, chain):
    assert abs(slope(curve["eps"], curve["conjugate_one_sided"]) - 1.0) < 0.1
    assert abs(slope(curve["eps"], curve["conjugate_symmetric"]) - 2.0) < 0.2
    field, conjugate = echo_and_conjugate_field(chain.system, chain.theta, chain.x0, chain.loss, 1e-4)
    assert field.shape == conjugate.shape == (chain.steps + 1, *chain.x0.shape)
    mismatch = float(jnp.max(jnp.abs(field - conjugate)) / jnp.max(jnp.abs(conjugate)))
    assert mismatch < 1e-7  # O(eps^2) at eps = 1e-4
    # without the exchange the echo field is not the conjugate field
    assert float(jnp.max(jnp.abs(field - lagrangian.exchange(conjugate)))) > 0.1 * float(jnp.max(jnp.abs(conjugate)))


def test_free_echo_retraces_the_forward_pass(chain):
    """The one-sided variant's unnudged echo is Sigma x_{N-j}: leapfrog is reversed by the flip."""
    echo = hamiltonian_echo(chain.system, chain.theta, chain.x0, chain.loss, eps=1e-4, symmetric=False)
    retraced = lagrangian.momentum_flip(echo.echo_minus[::-1])
    assert float(jnp.max(jnp.abs(retraced - echo.forward))) < 1e-12 * float(jnp.max(jnp.abs(echo.forward)))


def test_position_loss_nudges_only_the_momenta(chain):
    """For a loss of the positions only, l = c . phi_N, the exchanged nudge X grad l = (0, c) kicks
    the flipped momenta (the Lopez-Pastor-Marquardt echo); the gradient is still exact to O(eps^2)."""
    c = jnp.concatenate([jnp.ones((chain.batch, 6)), jnp.zeros((chain.batch, 6))], axis=1)
    loss = lagrangian.LinearFunctional(c=c)
    echo = hamiltonian_echo(chain.system, chain.theta, chain.x0, loss, eps=1e-4)
    kick = echo.echo_plus[0] - lagrangian.momentum_flip(echo.forward[-1])
    assert float(jnp.max(jnp.abs(kick[:, :6]))) == 0.0
    assert rel_l2(echo.grad, reference_grad(chain.system, chain.theta, chain.x0, loss)) < 1e-8


@pytest.mark.slow
def test_non_uniform_grid_uses_the_kick_weights(chain):
    """On a non-uniform grid the echo runs the reversed steps and weighs dH/dtheta by (h_{j-1} + h_j)/2."""
    ts = jnp.cumsum(jnp.concatenate([jnp.zeros(1), 0.03 + 0.04 * (jnp.arange(120) % 3) / 2]))
    system = integrators.discretise(chain.field, ts, "leapfrog")
    np.testing.assert_allclose(float(jnp.sum(kick_weights(ts))), float(ts[-1] - ts[0]), rtol=1e-14)
    echo = hamiltonian_echo(system, chain.theta, chain.x0, chain.loss, eps=1e-4)
    assert rel_l2(echo.grad, reference_grad(system, chain.theta, chain.x0, chain.loss)) < 1e-8


def test_bad_input_is_a_clear_error(chain):
    rk4 = integrators.discretise(chain.field, chain.ts, "rk4")
    with pytest.raises(ValueError, match="needs the leapfrog discretisation"):
        hamiltonian_echo(rk4, chain.theta, chain.x0, chain.loss)
    with pytest.raises(ValueError, match="eps must be > 0"):
        hamiltonian_echo(chain.system, chain.theta, chain.x0, chain.loss, eps=0.0)
    with pytest.raises(ValueError, match="x0 has dimension 5"):
        hamiltonian_echo(chain.system, chain.theta, jnp.ones(5), chain.loss)


def test_the_method_applies_only_to_reversible_hamiltonian_problems(chain):
    method = harness.METHODS["hamiltonian-echo"]
    assert method.applies(chain) is None
    rk4 = chain.rediscretise("rk4", lambda field, ts: integrators.discretise(field, ts, "rk4"))
    assert "leapfrog" in method.applies(rk4)
    assert "not an ODE problem" in method.applies(dataclasses.replace(chain, field=None, ts=None))


# --- a nudge of the wrong sign is caught -------------------------------------------------------


class FlippedNudge(lagrangian.SquaredError):
    """Test-only loss: the same value, but the echo is nudged along -grad l."""

    def grad(self, x_final):
        value, g = super().grad(x_final)
        return value, -g


class FlippedEcho(HamiltonianEcho):
    """Test-only project method: the Hamiltonian echo with the sign of its nudge flipped."""

    name = "flipped-echo"

    def prepare(self, problem):
        return super().prepare(dataclasses.replace(problem, loss=FlippedNudge(target=problem.loss.target)))


def test_flipped_nudge_fails_the_comparison(chain):
    comparison = harness.compare(problems=[chain], methods=["jax-grad", "hamiltonian-echo", FlippedEcho()], repeats=1)
    assert comparison.summary()["failed_cells"] == ["flipped-echo on oscillator-chain (fail)"]
    assert comparison.cell("hamiltonian-echo", "oscillator-chain").status == "pass"
    assert comparison.cell("flipped-echo", "oscillator-chain").relative_error > 1.0  # the negated gradient: error 2
