"""The physical-substrate experiment (quick preset) through the runner."""

import pytest

from experiments.catalog.physical_substrate import EXPERIMENT, PhysicalSubstrateConfig
from experiments.runner import run

# The quick run compiles a dozen programs (unrolled MLPs, diffrax, Langevin scans): a few minutes
# of CPU on a shared machine, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run(EXPERIMENT, {"quick": True}, out=tmp_path_factory.mktemp("runs") / "substrate").results


def test_clock_free_relaxations_reach_the_exact_gradient(results):
    for label, curves in results["clock"].items():
        for name, curve in curves.items():
            assert curve["final_error"] <= 1e-10, (label, name)
            assert curve["time_to_1e-10"] is not None


def test_copies_within_1e_9_and_at_the_floor_below(results):
    assert results["copies"]["max_error_beta_1e-4_to_1e2"] <= 1e-9
    for row in results["copies"]["rows"]:
        assert row["mean_drift"] <= 1e-13
        if row["beta"] < 1e-4:
            assert row["tension_error"] <= 1e-4 and row["tension_error"] <= 20 * row["rounding_floor"]


def test_mismatch_and_noise_slopes(results):
    for name, m in results["mismatch"]["methods"].items():
        assert 0.9 <= m["slope"] <= 1.1, name
    assert results["mismatch"]["methods"]["least action (field p)"]["exact_error"] <= 1e-13
    for name, m in results["noise"]["methods"].items():
        assert m["slope"] is not None and 0.4 <= m["slope"] <= 0.6, name


def test_training_on_a_perfect_substrate_is_backprop(results):
    train = results["training"]
    exact = train["delta = 0, T = 0"]
    assert max(abs(a - b) for a, b in zip(exact["losses"], train["backprop"]["losses"])) <= 1e-8


def test_config_validation():
    with pytest.raises(ValueError, match="train_points"):
        PhysicalSubstrateConfig(train_points="0.3")
    with pytest.raises(ValueError, match="quick"):
        PhysicalSubstrateConfig(quick=True, betas=5)
