"""The quickstart computation itself, for every explicit tableau."""

from __future__ import annotations

import pytest

from experiments.catalog import CATALOG, get
from experiments.catalog.quickstart import QuickstartConfig, initial_points, measure
from experiments.runner import no_progress


@pytest.mark.parametrize(
    "method", ["rk4", *(pytest.param(m, marks=pytest.mark.slow) for m in ("heun", "midpoint", "bosh3"))]
)
def test_gradient_matches_jax_grad_for_every_tableau(method):
    config = QuickstartConfig(steps=4, batch=3, t_final=1.0, method=method)
    lines = []
    m = measure(config, lines.append, no_progress)
    results = m.results
    assert results["gradient"]["relative_l2_error"] <= 1e-12
    assert results["bilinear_invariant"]["max_relative_deviation"] <= 1e-12
    assert results["bilinear_invariant"]["relative_error_vs_jvp"] <= 1e-12
    assert results["stationarity"]["max_residual"] <= 1e-12
    assert m.xs.shape == m.ps.shape == (5, 3, 2)
    assert any("relative L2 error" in line for line in lines)


@pytest.mark.slow
def test_energy_drift_shrinks_with_the_step():
    """`H = p . f` is conserved by the continuous flow: its drift on the grid is
    discretisation error, first order for Euler, smaller for RK4."""
    drift = {
        (method, steps): measure(QuickstartConfig(steps=steps, batch=2, t_final=1.0, method=method),
                                 lambda line: None, no_progress).results["energy"]["max_relative_deviation"]
        for method, steps in (("euler", 10), ("euler", 20), ("rk4", 20))
    }
    assert drift[("euler", 20)] < 0.7 * drift[("euler", 10)]
    assert drift[("rk4", 20)] < drift[("euler", 20)]


def test_initial_points_lie_on_the_circle():
    import numpy as np

    points = initial_points(8)
    assert points.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.5)


def test_catalog_lookup():
    assert get("quickstart") is CATALOG["quickstart"]
    with pytest.raises(ValueError, match="valid names: .*quickstart"):
        get("quickstrat")
