"""The spn-inference experiment, quick preset, run into a folder."""

import json

import pytest

from experiments.catalog import get
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


def test_quick_run_writes_results_figure_and_tables(tmp_path):
    record = run(get("spn-inference"), {"quick": True}, out=tmp_path / "spn")
    results = json.loads((record.folder / "results.json").read_text())
    # exact identities: rounding of sums of a few products of probabilities
    assert results["spec_check"]["max_abs_error_vs_spec"] <= 1e-15
    assert results["summary"]["max_abs_error_vs_enumeration"] <= 1e-13
    if results["pgmpy_available"]:
        assert results["summary"]["max_abs_error_vs_pgmpy"] <= 1e-13
    # the spec's tolerances for the I-projection against SLSQP (limited by SLSQP's accuracy)
    assert results["summary"]["max_multiplier_difference_vs_slsqp"] <= 1e-6
    assert results["summary"]["max_table_difference_vs_slsqp"] <= 1e-8
    assert results["soft_evidence"]["moment_max_abs_difference"] <= 1e-12
    assert 0.9 <= results["soft_evidence"]["gap_order_in_one_minus_m"] <= 1.1
    # backward values are (minus) the KKT multipliers of theta = log lambda, to SLSQP's accuracy
    assert results["summary"]["backward_vs_multipliers_max_abs_difference"] <= 1e-8
    assert results["backward_multipliers"]["softest_vs_hard_evidence_posteriors"] <= 2e-3
    invalid = results["invalid_spns"]
    assert invalid["random_max_error"]["valid"] <= 1e-14
    assert invalid["random_min_error"]["not_complete"] >= 1e-2 and invalid["random_min_error"]["not_decomposable"] >= 1e-2
    assert "not complete" in results["validation"]["not_complete"]
    assert "not decomposable" in results["validation"]["not_decomposable"]
    for suffix in ("png", "pdf"):
        assert (record.folder / "figures" / f"spn_inference.{suffix}").is_file()
    assert (record.folder / "tables" / "spec_numbers.md").is_file()
    assert (record.folder / "tables" / "i_projection.md").is_file()
