"""Every catalogue entry runs its quick preset and `verify` passes on the folder it wrote;
each entry's numbers are checked against what the mathematics says they must be. The wall
time of each quick run is printed at the end of the session (`tests/conftest.py`);
no test depends on it.

Default suite: galley-tension (about 10 s of CPU per run). The other entries take
20-40 s per run on one loaded core, twice with verify, so they are marked slow
(`python -m pytest -m slow tests/experiments/test_catalogue.py`).
"""

from __future__ import annotations

import math

import pytest

from experiments import CATALOG
from experiments.folders import verify
from experiments.runner import run

QUICK = {
    "quickstart": {"steps": 6, "batch": 4, "t_final": 1.5},
}
"""Smaller configs of the entries without a `quick` preset (their defaults are small already)."""

DEFAULT_SUITE = {"galley-tension"}


def quick_overrides(name):
    experiment = CATALOG[name]
    if experiment.has_quick:
        return {"quick": True}
    return QUICK.get(name, {})


def check_galley_tension(r):
    s = r["summary"]
    assert s["max_abs_x_plus_minus_x"] <= 1e-12  # x+ is the forward pass at every beta
    assert s["max_x_minus_over_beta_relative_error"] <= 1e-12  # x- = beta p to rounding
    assert s["max_gradient_over_beta_relative_error"] <= 1e-12
    assert 1.7 <= s["finite_difference_fitted_order"] <= 2.3  # central differences are O(beta^2)


def check_energy_drift(r):
    for system, entries in r["systems"].items():
        for method, e in entries.items():
            if e["symplectic"] and e["max_relative_energy_error"] > 1e-10:
                assert e["trend_last_tenth_over_first_tenth"] < 1.5, (system, method)  # bounded
            if not e["symplectic"]:
                assert e["trend_last_tenth_over_first_tenth"] > 5, (system, method)  # secular drift
        assert entries["rk4"]["max_relative_energy_error"] > entries["yoshida4"]["max_relative_energy_error"]


def check_phase_portraits(r):
    for system in ("oscillator", "pendulum", "neural-ode"):
        s = r[system]
        assert s["gradient"]["relative_l2_error"] <= 1e-12
        for t in s["tension"]:
            assert t["max_abs_x_plus_minus_forward"] <= 1e-12
            assert t["relative_error_x_minus_vs_beta_p"] <= 1e-12
            assert t["gradient_relative_error_vs_beta_grad"] <= 1e-12
            # the copies start apart by beta |p_0| and end apart by beta |grad l(x_N)|
            assert t["separation_final_mean"] > 0
    assert r["oscillator"]["physical_energy_max_relative_drift"] < 1e-3  # RK4, h = 0.1: O(h^5) per unit time


def check_resnet_limit(r):
    for name, e in r["methods"].items():
        assert abs(e["fitted_order_forward"] - e["order"]) <= 0.35, name
        assert abs(e["fitted_order_gradient"] - e["order"]) <= 0.35, name
        assert e["gradient_error_vs_discrete_map_at_max_depth"] <= 1e-12, name
        if e["partner"] is not None:
            assert e["pair_condition_max_abs"] <= 1e-15, name
    assert r["resnet_vs_euler"]["max_abs_state_difference"] <= 1e-12
    assert r["resnet_vs_euler"]["summed_layer_gradient_relative_error"] <= 1e-12


def check_mlp_projection(r):
    assert r["max_abs_loss_difference"] <= 1e-10
    assert r["final_parameters_relative_difference"] <= 1e-10
    assert r["initial_gradient"]["relative_l2_error"] <= 1e-12
    assert r["test_accuracy"]["least_action"] == r["test_accuracy"]["jax_grad"]
    assert r["test_accuracy"]["least_action"] > 0.8
    assert r["loss_curves"]["least_action"][-1] < 0.5 * r["loss_curves"]["least_action"][0]


def check_memory(r):
    methods = r["methods"]
    for name, e in methods.items():
        assert e["max_error_vs_discrete_map"] <= 1e-12, name
    assert methods["least-action-reversible-heun"]["loglog_slope_temp_bytes"] < 0.05  # O(1) in N
    assert methods["least-action"]["loglog_slope_temp_bytes"] > 0.8  # O(N)
    assert methods["least-action"]["stored"] == [n + 1 for n in r["setup"]["steps"]]  # the strategy's cost model
    assert methods["least-action-reversible-heun"]["stored"] == [1] * len(r["setup"]["steps"])
    assert methods["least-action-reversible-heun"]["reconstruction_error"][-1] < 1e-10


CHECKS = {
    "galley-tension": check_galley_tension,
    "energy-drift": check_energy_drift,
    "phase-portraits": check_phase_portraits,
    "resnet-limit": check_resnet_limit,
    "mlp-projection": check_mlp_projection,
    "memory": check_memory,
}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.smoke if name in DEFAULT_SUITE else pytest.mark.slow)
    for name in sorted(CATALOG)
])
def test_entry_runs_quick_and_verifies(name, tmp_path, record_property):
    record = run(CATALOG[name], quick_overrides(name), out=tmp_path / name)
    record_property("quick_preset_seconds", record.manifest["wall_time_seconds"])  # printed, never judged
    assert (record.folder / "results.json").is_file()
    assert list((record.folder / "figures").glob("*.png")) or name == "compare"
    if name in CHECKS:
        CHECKS[name](record.results)
    outcome = verify(record.folder)
    assert outcome.ok, outcome.comparison.differences[:5]
    assert outcome.comparison.checked > 0
    assert all(math.isfinite(v) for v in (outcome.comparison.max_abs_diff,))


def test_every_entry_declares_a_quick_preset_or_a_small_config():
    for name, experiment in CATALOG.items():
        assert experiment.has_quick or name in QUICK, f"{name}: add a `quick` field to its config"
    assert CATALOG["compare"].resolve({"quick": True}).selection()[2] == 1
