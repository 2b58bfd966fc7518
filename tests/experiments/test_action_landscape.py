"""The action-landscape experiment, run once with its quick preset through the runner."""

from __future__ import annotations

import json
import time

import pytest

from experiments.catalog import CATALOG
from experiments.catalog.action_landscape import QUICK
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "action-landscape"
    start = time.process_time()
    record = run(CATALOG["action-landscape"], {"quick": True}, out=out)
    return record.folder, record.results, time.process_time() - start


def test_quick_run_writes_figure_table_results_within_a_minute(quick_run):
    folder, results, cpu = quick_run
    for ext in ("png", "pdf"):
        assert (folder / "figures" / f"action_landscape.{ext}").stat().st_size > 0
    assert (folder / "tables" / "saddle.md").stat().st_size > 0
    assert json.loads((folder / "results.json").read_text())["hessian"]["positive"] == results["hessian"]["positive"]
    assert cpu < 60, f"the quick preset took {cpu:.1f} s of CPU time"


def test_the_stationary_point_is_a_saddle_of_index_m(quick_run):
    _, results, _ = quick_run
    m = results["variables_x"]
    h = results["hessian"]
    assert (h["positive"], h["negative"], h["zero"]) == (m, m, 0)
    assert h["max_abs_difference_vs_jax_hessian"] <= 1e-13 * h["max_abs_entry"]
    assert h["max_abs_pp_block"] == 0.0               # S_d is linear in p
    assert abs(abs(h["det_B"]) - 1.0) <= 1e-12          # unit block-triangular coupling
    z = results["zero_curvature"]
    assert z["max_abs_difference_vs_plus_minus_sigma"] <= 1e-12 and z["pair_sum_max_abs"] <= 1e-12
    assert z["inertia"] == [m, m, 0]


def test_perturbations_rise_fall_and_are_flat_in_p(quick_run):
    _, results, _ = quick_run
    p = results["perturbations"]
    assert p["top eigenvector"]["min_delta_S"] >= -1e-12 and p["top eigenvector"]["max_delta_S"] > 0.1
    assert p["bottom eigenvector"]["max_delta_S"] <= 1e-12 and p["bottom eigenvector"]["min_delta_S"] < -0.1
    assert p["random p only"]["max_abs_delta_S"] <= 1e-13   # linear in p, forward residual zero
    for name, r in p.items():
        # central second difference at eps = 1e-3: O(eps^2) truncation plus rounding / eps^2
        assert r["second_difference"] == pytest.approx(r["curvature_u_H_u"], abs=1e-4), name


def test_only_the_conjugate_relaxation_is_stable(quick_run):
    _, results, _ = quick_run
    s = results["solvers"]
    assert s["descent"]["unstable_eigenvalues"] == results["variables_x"]
    assert s["descent"]["distance_end"] > 10 * s["descent"]["distance_start"]
    assert s["relaxation"]["unstable_eigenvalues"] == 0
    assert s["relaxation"]["nilpotency_residual"] <= 1e-10
    assert s["relaxation"]["distance_end"] < 1e-3 * s["relaxation"]["distance_start"]


def test_config():
    assert QUICK == CATALOG["action-landscape"].resolve({"quick": "true"})
    for bad in ({"widths": "3"}, {"widths": "3,x"}, {"quick": "true", "grid": "5"}, {"epsilon": "0"}):
        with pytest.raises(ValueError):
            CATALOG["action-landscape"].resolve(bad)
