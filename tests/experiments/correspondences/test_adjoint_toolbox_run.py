"""The adjoint-toolbox experiment, run once with its quick preset through the runner."""

import json

import pytest

from experiments.catalog import get
from experiments.catalog.adjoint_toolbox import FIGURES, QUICK_SIZES, ToolboxConfig
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "toolbox"
    record = run(get("adjoint-toolbox"), {"quick": True}, out=out)
    for stem in FIGURES:
        assert (record.folder / "figures" / f"{stem}.png").is_file(), stem
    assert (record.folder / "tables" / "adjoint_toolbox.md").is_file()
    return json.loads((record.folder / "results.json").read_text())


def test_gradient_cost_slopes(results):
    g = results["gradient_cost"]
    # p + 1 calls over p in {4, 64}: slope log(65/5)/log(16) = 0.925
    assert 0.9 <= g["finite-differences"]["calls_slope"] <= 1.0
    assert g["forward-mode"]["calls_slope"] == pytest.approx(1.0, abs=1e-12)
    assert g["reverse-mode"]["calls_slope"] == pytest.approx(0.0, abs=1e-12)
    assert abs(g["reverse-mode"]["flops_ratio_slope"]) <= 0.1
    assert g["reverse-mode"]["max_relative_error"] <= 1e-13


def test_residual_checkpoint_and_reversible(results):
    assert 0.8 <= results["residual_time"]["normalised_error_order"] <= 1.2
    assert results["residual_time"]["sweep_vs_jax_grad_max"] <= 1e-12
    c = results["checkpointing"]
    assert c["store-all"]["extra_evaluations_per_step"] == [0.0, 0.0]
    assert c["reversible"]["extra_evaluations_per_step"] == [1.0, 1.0]
    # bisection over N = 2^p steps re-runs p/2 steps per step: slope 1/2 against log2 N
    assert c["checkpoint-log"]["extra_per_step_vs_log2N_slope"] == pytest.approx(0.5, abs=1e-12)
    r = results["reversible_leapfrog"]
    assert r["max_reconstruction_error"] <= 1e-13 and r["max_gradient_relative_error"] <= 1e-12


def test_implicit_argmin_and_sinkhorn(results):
    assert results["fixed_point"]["linear_closed_form_relative_error"] <= 1e-12
    rates = results["argmin"]["rates"]
    assert rates["unrolled"] < rates["envelope"] and rates["implicit"] < rates["envelope"]
    assert results["argmin"]["quadratic_closed_form_relative_error"] <= 1e-12
    s = results["sinkhorn"]
    assert s["rates"]["unrolled"] < s["rates"]["envelope"] and s["rates"]["implicit"] < s["rates"]["envelope"]
    assert s["finite_difference_relative_error"] <= 1e-6


def test_quick_replaces_sizes_and_bad_configs_are_rejected():
    assert ToolboxConfig(quick=True).sizes("checkpoint_steps") == (8, 32)
    assert set(QUICK_SIZES) <= set(ToolboxConfig.__dataclass_fields__)
    with pytest.raises(ValueError, match="replaces"):
        ToolboxConfig(quick=True, cost_params="2,4")
    with pytest.raises(ValueError, match="divide the largest"):
        ToolboxConfig(resnet_steps="10,15")
    with pytest.raises(ValueError, match="contraction"):
        ToolboxConfig(contraction=1.5)
