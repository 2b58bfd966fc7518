"""The autodiff-modes experiment, quick preset, run into a folder."""

import json

import pytest

from experiments.catalog import get
from experiments.runner import run

# The quick run compiles 60 small XLA programs (10-30 s); it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


def test_quick_run_writes_results_figure_and_tables(tmp_path):
    record = run(get("autodiff-modes"), {"quick": True}, out=tmp_path / "adm")
    r = json.loads((record.folder / "results.json").read_text())
    assert r["dual"]["worked_example_max_relative_error"] <= 1e-15
    assert r["dual"]["mlp_xla_tanh_max_relative_error"] <= 1e-15
    assert r["dual"]["mlp_max_relative_error"] <= 1e-14  # numpy's tanh is not XLA's
    assert r["worked_example"]["max_relative_error_vs_closed_form"] <= 1e-15
    c = r["chains"]
    assert c["max_formula_vs_counted"] == 0 and c["max_formula_vs_xla"] == 0
    assert c["optimal_vs_enumeration_max_difference"] == 0
    assert c["scalar_output_reverse_is_optimal"] == c["scalar_output_chains"]
    assert c["max_products_relative_difference"] <= 1e-12
    assert (record.folder / "figures" / "autodiff_modes.png").is_file()
    assert "reverse, one pass" in (record.folder / "tables" / "worked_example.md").read_text()
