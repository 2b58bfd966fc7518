"""The bp-backprop experiment, quick preset, run into a folder."""

import json

import pytest

from experiments.catalog import get
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


def test_quick_run_writes_results_figure_and_table(tmp_path):
    record = run(get("bp-backprop"), {"quick": True}, out=tmp_path / "bp")
    results = json.loads((record.folder / "results.json").read_text())
    # The limit beta = eps = 1e-8: error C beta eps ~ 1e-16 C, so 1e-10 is the bar with room.
    assert results["max_limit_relative_error"] <= 1e-10
    assert results["max_dense_posterior_relative_error"] <= 1e-12
    for name, graph in results["graphs"].items():
        assert graph["factor_graph_cycles"] >= 1, name
        grid = graph["error_grid"]
        assert 0.9 <= grid["order_beta"] <= 1.1 and 0.9 <= grid["order_eps"] <= 1.1, name
        assert 0.9 <= graph["mean_shift"]["order_beta"] <= 1.1, name
        # Richardson in beta at eps up to 1: the O(beta^2) remainder at beta = 1e-6 is ~1e-12
        assert graph["first_order_in_beta"]["max_extrapolated_relative_error"] <= 1e-10, name
    scaling = results["scaling"]
    assert all(r["computed_nodes"] >= 20 and r["factor_graph_cycles"] >= 60 for r in scaling["graphs"])
    assert scaling["max_limit_relative_error"] <= 1e-10
    assert scaling["max_dense_posterior_relative_error"] <= 1e-12
    for suffix in ("png", "pdf"):
        assert (record.folder / "figures" / f"bp_backprop.{suffix}").is_file()
    assert (record.folder / "figures" / "bp_backprop_scaling.png").is_file()
    assert "jax.grad" in (record.folder / "tables" / "adjoints.md").read_text()


def test_config_rejects_a_graph_without_loops():
    with pytest.raises(ValueError, match="two hidden layers"):
        get("bp-backprop").resolve({"widths": "2,3,1"})
    with pytest.raises(ValueError, match="do not also set grid_points"):
        get("bp-backprop").resolve({"quick": "true", "grid_points": "7"})
