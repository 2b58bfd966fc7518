"""The phase-volume experiment, run once with its quick preset through the runner."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from experiments.catalog import CATALOG
from experiments.catalog.phase_volume import QUICK, splitting_log_volume_per_step
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "phase-volume"
    start = time.process_time()
    record = run(CATALOG["phase-volume"], {"quick": True}, out=out)
    return record.folder, record.results, time.process_time() - start


def test_quick_run_writes_figure_table_results_within_a_minute(quick_run):
    folder, results, cpu = quick_run
    for ext in ("png", "pdf"):
        assert (folder / "figures" / f"log_volume.{ext}").stat().st_size > 0
    assert (folder / "tables" / "phase_volume.md").stat().st_size > 0
    assert json.loads((folder / "results.json").read_text())["sizes"] == results["sizes"]
    assert cpu < 60, f"the quick preset took {cpu:.1f} s of CPU time"


def test_liouville_holds_for_symplectic_steps_only(quick_run):
    _, results, _ = quick_run
    for method, r in results["doubled"]["methods"].items():
        if r["symplectic"]:
            # rounding of a few hundred 8x8 products and Newton stages solved to 1e-14
            assert r["max_abs_log_det"] <= 1e-12 and r["symplecticity_defect_final"] <= 1e-12, method
        else:
            assert r["max_abs_log_det"] > 1e-9, method
    for method in ("leapfrog", "yoshida4"):
        r = results["momentum"]["methods"][method]
        assert r["max_abs_log_det"] <= 1e-12 and r["symplecticity_defect_final"] <= 1e-12, method
    assert results["momentum"]["methods"]["rk4"]["max_abs_log_det"] > 1e-10


def test_friction_follows_its_closed_forms(quick_run):
    _, results, _ = quick_run
    for key, r in results["friction"].items():
        # log det ~ -n gamma t = O(10): rounding of slogdet over 80 steps
        assert r["max_abs_deviation_from_discrete"] <= 1e-10, key
        assert r["relative_deviation_from_continuous_final"] == pytest.approx(r["first_order_prediction"], rel=0.05)


def test_config_and_closed_form_helper():
    assert QUICK == CATALOG["phase-volume"].resolve({"quick": "true"})
    for bad in ({"frictions": "0.1,-1"}, {"quick": "true", "steps": "10"}, {"t_final": "0"}):
        with pytest.raises(ValueError):
            CATALOG["phase-volume"].resolve(bad)
    # leapfrog: two half kicks, 2 n log(1 - h gamma / 2)
    assert splitting_log_volume_per_step("leapfrog", 0.1, 0.5, 3) == pytest.approx(6 * np.log(1 - 0.025), rel=1e-15)
