"""Long runs: symplectic methods keep the energy bounded, RK4 drifts.

100 000 steps of size h = 0.1 on the harmonic oscillator and the pendulum.
"No secular trend" is measured as the ratio of the largest energy error in the
last tenth of the run to that in the first tenth: about 1 for a bounded
oscillation, large for a drift (RK4 loses energy at a rate ~ h^6/72 per step).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L

STEPS, H = 100_000, 0.1


def _energy_error(field, method):
    theta = field.init(jax.random.key(0))
    system = I.discretise(field, I.uniform_grid(STEPS * H, STEPS), method)
    xs = I.forward(system, theta, jnp.array([1.0, 0.0]))
    e = np.asarray(field.physical_energy(jnp.asarray(xs), theta))
    return np.abs(e - e[0]) / abs(e[0])


def _trend(err):
    tenth = len(err) // 10
    return err[-tenth:].max() / err[1:tenth].max()


@pytest.mark.parametrize("field", [L.HarmonicOscillator(omega=1.0), L.Pendulum(omega=1.0)], ids=["oscillator", "pendulum"])
@pytest.mark.parametrize("method", ["leapfrog", "symplectic-euler", "yoshida4", "gauss-legendre-1"])
def test_symplectic_methods_keep_energy_bounded(field, method):
    err = _energy_error(field, method)
    assert _trend(err) < 1.5
    assert err.max() < 0.1


@pytest.mark.parametrize("field", [L.HarmonicOscillator(omega=1.0), L.Pendulum(omega=1.0)], ids=["oscillator", "pendulum"])
def test_rk4_drifts(field):
    err = _energy_error(field, "rk4")
    assert _trend(err) > 5.0
    # the drift is monotone: the energy error at the end exceeds every earlier tenth's maximum
    tenth = len(err) // 10
    assert err[-1] >= err[:-tenth].max()
