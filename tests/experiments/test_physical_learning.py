"""The physical-learning experiment: the quick run (about 30 s on one idle core, 100 s in a loaded
suite on 2 cores) and its pieces. The tests that read the quick run are `slow`; the default suite
checks the pieces (the depth sweep on two layers, the config and the slope fit)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from experiments.catalog import physical_learning as pl
from experiments.runner import run


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The quick preset through the runner; only `slow` tests read it."""
    out = tmp_path_factory.mktemp("runs") / "physical"
    record = run(pl.EXPERIMENT, {"quick": True}, out=out)
    return out, record.results


@pytest.mark.slow  # reads the quick run (about 30 s on one core)
def test_quick_run_meets_the_acceptance_numbers(results):
    _, r = results
    acceptance = r["acceptance"]
    assert abs(acceptance["ep_one_sided_slope"] - 1.0) <= 0.1
    assert abs(acceptance["ep_symmetric_slope"] - 2.0) <= 0.2
    assert acceptance["ep_symmetric_error_at_1e-4"] <= 1e-5
    assert acceptance["max_tension_error"] <= 1e-12  # exact at every beta: the doubled action is linear in x-
    assert acceptance["max_sweep_error"] <= 1e-12
    assert acceptance["max_fixed_prediction_error"] <= 1e-12
    # the oscillator-chain panel: Hamiltonian echo O(eps^2), least action exact at every nudge
    assert abs(acceptance["chain_echo_symmetric_slope"] - 2.0) <= 0.2
    assert acceptance["chain_echo_symmetric_error_at_1e-4"] <= 1e-8
    assert acceptance["chain_max_tension_error"] <= 1e-12 and acceptance["chain_max_sweep_error"] <= 1e-12
    slopes = r["nudge_scan"]["fitted_slopes"]
    assert abs(slopes["DP, alpha = 1/2"] - 2.0) <= 0.2 and abs(slopes["DP-top, alpha = 0"] - 1.0) <= 0.1


@pytest.mark.slow  # reads the quick run
def test_quick_run_records_the_inference_residual_beside_each_estimate(results):
    """EP's and PC's equilibria: residual and convergence per nudge; symmetric EP has no error where
    its phases did not converge (beta = 1), and the cost rows carry the residual of their solve."""
    folder, r = results
    state = r["nudge_scan"]["inference"]
    nudges = r["nudge_scan"]["nudges"]
    assert set(state) == {"ep_residual", "ep_converged", "pc_residual", "pc_converged"}
    assert all(len(v) == len(nudges) for v in state.values())
    symmetric = r["nudge_scan"]["errors"]["EP symmetric"]
    for converged, residual, error in zip(state["ep_converged"], state["ep_residual"], symmetric):
        if converged:
            assert residual <= 1e-10  # a converged solve is at rounding
        else:
            assert error is None
    assert state["ep_converged"][0] and not state["ep_converged"][-1]  # beta = 1e-6 converges, beta = 1 cannot
    log = (folder / "log.txt").read_text()
    assert f"EP inference at nudge {nudges[-1]:.1e} stopped before its tolerance" in log
    rows = {row["method"]: row for row in r["cost"]}
    assert rows["EP symmetric (Newton)"]["inference"]["converged"]
    assert rows["EP symmetric (Newton)"]["inference"]["residual"] < 1e-10
    assert rows["least action: sweep"]["inference"] is None


@pytest.mark.slow  # reads the quick run
def test_quick_run_writes_figures_tables_and_curves(results):
    folder, r = results
    for stem in ("error_vs_nudge", "iterations_and_depth", "dyads_vs_copies", "digits_training"):
        assert (folder / "figures" / f"{stem}.png").exists() and (folder / "figures" / f"{stem}.pdf").exists()
    for stem in ("error_vs_nudge", "cost", "training"):
        assert (folder / "tables" / f"{stem}.md").exists() and (folder / "tables" / f"{stem}.tex").exists()
    curves = r["iterations"]
    assert curves["PC fixed prediction, Jacobi"]["errors"][r["setup"]["depth"] - 1] <= 1e-12
    assert min(curves["least action: relaxation, Jacobi"]["errors"]) <= 1e-12
    for name, run_ in r["training"]["runs"].items():
        assert run_["losses"][-1] < run_["losses"][0], name  # every rule descends


def test_depth_sweep_piece_on_two_layers():
    errors, sweeps = pl.depth_errors((2,), width=4, scale=1.0, batch=2, seed=0, nudge=1e-3)
    assert errors["least action: sweep"][0] <= 1e-12 and errors["least action: tension x-/beta"][0] <= 1e-12
    assert errors["PC fixed prediction"][0] <= 1e-12
    assert 1e-6 < errors["EP one-sided"][0] < 1e-1  # O(beta) bias, not rounding
    assert errors["EP symmetric"][0] < errors["EP one-sided"][0] / 10
    assert 1 <= sweeps[0] < 200  # the sweeps solver converged


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="widths"):
        pl.PhysicalLearningConfig(widths="5,3")
    with pytest.raises(ValueError, match="fixed_nudge"):
        pl.PhysicalLearningConfig(fixed_nudge=0.5)
    with pytest.raises(ValueError, match="quick"):
        pl.PhysicalLearningConfig(quick=True, train_steps=3)
    assert pl.PhysicalLearningConfig(quick=True).sizes()["depths"] == (2, 3)


def test_slope_fit_ignores_missing_points():
    xs = np.logspace(-6, 0, 7)
    ys = [1e-3 * x for x in xs[:-1]] + [None]
    assert abs(pl._fit(xs, ys, 1e-5, 1.0) - 1.0) <= 1e-12
