"""The quickstart computation itself, for every explicit tableau."""

from __future__ import annotations

import pytest

from experiments.catalog import CATALOG, get
from experiments.catalog.quickstart import QuickstartConfig, initial_points, run
from experiments.runner import RunFolder


class _Log:
    def info(self, message):
        pass


@pytest.mark.parametrize("method", ["heun", "midpoint", "rk4", "bosh3"])
def test_gradient_matches_jax_grad_for_every_tableau(tmp_path, method):
    config = QuickstartConfig(steps=4, batch=3, t_final=1.0, method=method)
    results = run(config, RunFolder(tmp_path, _Log()), lambda done, total, what: None)
    assert results["gradient"]["relative_l2_error"] <= 1e-12
    assert results["bilinear_invariant"]["max_relative_deviation"] <= 1e-12
    assert results["stationarity"]["max_residual"] <= 1e-12
    assert (tmp_path / "figures" / "phase_space.pdf").is_file()


def test_initial_points_lie_on_the_circle():
    import numpy as np

    points = initial_points(8)
    assert points.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.5)


def test_catalog_lookup():
    assert get("quickstart") is CATALOG["quickstart"]
    with pytest.raises(ValueError, match="valid names: quickstart"):
        get("quickstrat")
