"""The kl-message-passing experiment, quick preset, run into a folder."""

import json

import pytest

from experiments.catalog import get
from experiments.runner import run

# The quick run takes about 15 s of CPU; it runs with `pytest -m slow` like the other catalogue runs.
pytestmark = pytest.mark.slow


def test_quick_run_writes_results_figure_and_table(tmp_path):
    record = run(get("kl-message-passing"), {"quick": True}, out=tmp_path / "klmp")
    results = json.loads((record.folder / "results.json").read_text())
    net = results["networks"]["2,3,3,1"]
    assert net["computed_nodes"] == 31 and net["factor_graph_cycles"] > 0
    # the acceptance: weight gradients within 1e-8 of jax.grad after extrapolation
    assert net["limit_weight_relative_error"] <= 1e-8 and net["limit_node_relative_error"] <= 1e-8
    assert 1.9 <= net["order_s"] <= 2.1
    assert min(net["weight_relative_error"]) > 1e-5  # the raw readout at finite s is not the gradient
    assert results["summary"]["max_linearised_relative_error"] <= 1e-11
    assert net["max_sweeps"] <= 10
    for suffix in ("png", "pdf"):
        assert (record.folder / "figures" / f"kl_message_passing.{suffix}").is_file()
    assert "jax.grad" in (record.folder / "tables" / "weight_gradients.md").read_text()


def test_config_rejects_bad_networks_and_quick_overrides():
    with pytest.raises(ValueError, match="width-1 output"):
        get("kl-message-passing").resolve({"networks": "2,3,2"})
    with pytest.raises(ValueError, match="do not also set widths_count"):
        get("kl-message-passing").resolve({"quick": "true", "widths_count": "5"})
