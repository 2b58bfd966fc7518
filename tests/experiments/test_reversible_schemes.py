"""The reversible-schemes experiment: O(1) memory, exact gradients, and the coupling's stability.

The quick preset (reversible-rk4 and leapfrog; couplings 0.9 and 0.999 over N = 100, 1000)
with `run_max_steps = 500`, so N = 1000 is compiled for its memory only (the path the
default preset takes at N = 1e5). About 40 s on one core: the tests that read it are slow.
"""

import numpy as np
import pytest

import integrators
from experiments.catalog.reversible_schemes import (
    EXPERIMENT, ReversibleSchemesConfig, coupled_step_matrix, every_scheme, predicted,
)
from experiments.folders import verify
from experiments.runner import run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run(EXPERIMENT, {"quick": True, "run_max_steps": 500}, out=tmp_path_factory.mktemp("runs") / "rev")


@pytest.mark.slow
def test_reversible_memory_is_flat_and_the_gradient_exact(quick):
    for scheme, e in quick.results["schemes"].items():
        assert e["temp_bytes_flat_in_n"] and e["reversible_temp_bytes"][0] == e["reversible_temp_bytes"][1]
        assert e["store_all_temp_bytes"][1] > 5 * e["store_all_temp_bytes"][0], scheme  # O(N): 10x the steps
        assert e["max_gradient_error"] <= 1e-12 and e["max_reconstruction_error"] <= 1e-12, scheme
        assert e["gradient_error"][1] is None and e["time_ratio"][1] is None  # N = 1000 > run_max_steps


@pytest.mark.slow
def test_the_coupling_is_stable_near_one_and_the_theory_predicts_the_failure(quick):
    """lambda = 0.999: errors at rounding level. lambda = 0.9 over 1000 steps: the inverse
    amplifies rounding by ~1/lambda per step (1.11^1000 ~ 1e45 times u); measured and predicted
    reconstruction errors are both astronomically large and agree within 1e4."""
    for system, cells in quick.results["stability"].items():
        by = {(c["coupling"], c["steps"]): c for c in cells}
        assert by[0.999, 1000]["reconstruction_error"] <= 1e-11, system
        assert by[0.999, 1000]["gradient_error"] <= 1e-11, system
        bad = by[0.9, 1000]
        assert bad["reconstruction_error"] is None or bad["reconstruction_error"] > 1e10, system
        if bad["reconstruction_error"] is not None:
            ratio = bad["reconstruction_error"] / bad["predicted_reconstruction_error"]
            assert 1e-4 <= ratio <= 1e4, system


@pytest.mark.slow
def test_the_folder_verifies(quick):
    outcome = verify(quick.folder)
    assert outcome.ok, outcome.comparison.differences[:5]
    assert (quick.folder / "figures" / "coupling_stability.png").is_file()


def test_the_linear_theory():
    """`det M = lambda` for every tableau and `z`; at `z = 0` the eigenvalues are `1` (the physical
    mode) and `lambda` (the difference `y - w`), so the inverse grows like `1/lambda`."""
    for tab in (integrators.EULER, integrators.RK4, integrators.DOPRI5):
        for z in (0.0, -0.3, 0.2j, -0.1 + 0.5j):
            m = coupled_step_matrix(tab, 0.95, z)
            assert abs(np.linalg.det(m) - 0.95) <= 1e-12
    assert sorted(np.abs(np.linalg.eigvals(coupled_step_matrix(integrators.RK4, 0.8, 0.0)))) == pytest.approx([0.8, 1])
    assert predicted(integrators.RK4, 0.5, [0.0], 10)["backward_growth"] == pytest.approx(2.0)
    assert predicted(integrators.RK4, 0.5, [0.0], 10_000)["predicted_reconstruction_error"] is None  # overflow


def test_config_and_scheme_list():
    schemes = every_scheme()
    assert "reversible-rk4" in schemes and "reversible-tsit5" in schemes and "gauss-legendre-3" in schemes
    assert "leapfrog" in schemes and "yoshida4" in schemes and len(schemes) == 18   # 11 coupled explicit tableaux, 5 symmetric implicit ones, 2 splittings
    assert ReversibleSchemesConfig(quick=True).sizes()[0] == ("reversible-rk4", "leapfrog")
    for bad, match in [({"schemes": "rk4-typo"}, "unknown"), ({"couplings": "0.5,1.5"}, "couplings"),
                       ({"coupling": 0.0}, "coupling"), ({"quick": True, "steps": "10,20"}, "quick")]:
        with pytest.raises(ValueError, match=match):
            ReversibleSchemesConfig(**bad)
