"""The noether-charges experiment, run once with its quick preset through the runner."""

from __future__ import annotations

import json
import time

import pytest

from experiments.catalog import CATALOG
from experiments.catalog.noether_charges import QUICK, NoetherConfig, fitted_order, padded_grid
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`(folder, results, CPU seconds)` of one quick run (CPU time: robust to a shared machine)."""
    out = tmp_path_factory.mktemp("runs") / "noether"
    steps = []
    start = time.process_time()
    record = run(CATALOG["noether-charges"], {"quick": True}, out=out, progress=lambda d, t, s: steps.append((d, t)))
    cpu = time.process_time() - start
    assert steps and steps[-1][0] == steps[-1][1], "progress must reach its total"
    return record.folder, record.results, cpu


def test_quick_run_writes_figures_table_results_within_a_minute(quick_run):
    folder, results, cpu = quick_run
    for stem in ("charges_over_training", "charge_breaking"):
        for ext in ("png", "pdf"):
            assert (folder / "figures" / f"{stem}.{ext}").stat().st_size > 0
    assert (folder / "tables" / "charges.md").stat().st_size > 0
    assert json.loads((folder / "results.json").read_text())["sizes"] == results["sizes"]
    assert cpu < 60, f"the quick preset took {cpu:.1f} s of CPU time"


def test_charges_are_conserved_and_equal_their_closed_forms(quick_run):
    _, results, _ = quick_run
    linear = results["gradient_flow"]["linear"]["charges"]
    # RK4 at h = 0.02 on a smooth field: drift ~1e-9 of the charges' Cauchy-Schwarz bound
    for family in ("rescaling", "balance"):
        assert linear[family]["max_relative_drift"] <= 1e-8
    for net in ("linear", "relu"):
        for family, entry in results["gradient_flow"][net]["charges"].items():
            assert entry["max_abs_automatic_minus_closed"] <= 1e-12, (net, family)
        # a linear charge: every Runge-Kutta step keeps it to rounding
        assert results["gradient_flow"][net]["charges"]["translation"]["max_relative_drift"] <= 1e-14
        assert results["gradient_flow"][net]["loss_final"] < results["gradient_flow"][net]["loss_initial"]
    for family, entry in results["momentum"]["conserved"].items():
        assert entry["max_relative_drift"] <= 1e-12, family   # leapfrog keeps isometry charges exactly
    assert results["momentum"]["broken"]["rescaling"]["max_relative_drift"] > 1e-2


def test_breaking_matches_its_closed_forms(quick_run):
    _, results, _ = quick_run
    assert 0.9 <= results["step_size"]["linear"]["euler"]["fitted_order"] <= 1.1  # gradient descent: O(eta)
    assert results["step_size"]["linear"]["rk4"]["fitted_order"] >= 3.5
    assert results["single_step"]["max_abs_difference"] <= 1e-12 * results["single_step"]["scale"]
    # weight decay: RK4 at h = 0.02 against exp(-2 lambda t), exp(-lambda t)
    assert results["weight_decay"]["rescaling_max_relative_deviation"] <= 1e-7
    assert results["weight_decay"]["translation_max_relative_deviation"] <= 1e-7
    friction = results["friction"]
    assert friction["max_relative_deviation_from_discrete"] <= 1e-12
    assert friction["relative_deviation_from_continuous_final"] == pytest.approx(
        friction["first_order_prediction"], rel=0.05)


def test_config_and_helpers():
    assert QUICK == CATALOG["noether-charges"].resolve({"quick": "true"})
    for bad in ({"quick": "true", "hidden": "4"}, {"lr_steps": "10"}, {"samples": "0"}, {"friction": "0"}):
        with pytest.raises(ValueError):
            CATALOG["noether-charges"].resolve(bad)
    grid = padded_grid(1.0, 4, 6)
    assert grid.shape == (7,) and float(grid[-1]) == float(grid[4]) == 1.0
    with pytest.raises(ValueError, match="cannot pad"):
        padded_grid(1.0, 8, 6)
    import numpy as np

    assert fitted_order(np.array([1.0, 0.5, 0.25]), np.array([1.0, 0.25, 0.0625])) == pytest.approx(2.0)
    assert NoetherConfig().sizes()["lr_steps"] == (50, 100, 200, 400, 800)
