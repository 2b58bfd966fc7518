"""The kl-projection experiment, quick preset, run into a folder."""

import json

import pytest

from experiments.catalog import get
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


def test_quick_run_writes_results_figure_and_table(tmp_path):
    record = run(get("kl-projection"), {"quick": True}, out=tmp_path / "kl")
    results = json.loads((record.folder / "results.json").read_text())
    summary = results["summary"]
    # linear graph: exact at every width up to rounding of the quadrature sums
    assert summary["linear_max_relative_error_any_s"] <= 1e-10
    # nonlinear graphs: the s -> 0 limit by Richardson extrapolation; the target is 1e-8
    assert summary["nonlinear_max_limit_relative_error"] <= 1e-10
    assert 1.9 <= summary["tanh_mlp_order_s"] <= 2.1 and 1.9 <= summary["fan_out_order_s"] <= 2.1
    assert summary["max_jvp_vs_covariance_relative_difference"] <= 1e-12
    for graph in results["graphs"].values():
        assert 0.9 <= graph["tilt"]["order_beta"] <= 1.1
    # the identity dm/dbeta(0) = -Cov_0(e, L), each side computed on its own rule
    assert results["independent_differential"]["max_relative_difference"] <= 1e-9
    for check in results["graphs"]["linear_mlp"]["gaussian_algebra_check"]:
        assert check["means_relative_difference"] <= 1e-9
    for suffix in ("png", "pdf"):
        assert (record.folder / "figures" / f"kl_projection.{suffix}").is_file()
    assert (record.folder / "tables" / "adjoints.md").is_file()


def test_config_rejects_graphs_too_large_for_tensor_quadrature():
    with pytest.raises(ValueError, match="at most 9 computed nodes"):
        get("kl-projection").resolve({"widths": "2,5,5,1"})
