"""The gradient benchmark, run once with its quick preset through the experiment runner."""

from __future__ import annotations

import json
import time

import pytest

from experiments.catalog.benchmark_gradients import (
    BENCHMARK_GRADIENTS,
    ROWS,
    QUICK,
    QUICK_SIZES,
    BenchmarkConfig,
)
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`(folder, results, CPU seconds)` of one quick benchmark run.

    CPU time of this process (all its threads, XLA's included) rather than wall
    time: on 2 otherwise idle cores the wall time is at most about the CPU time,
    and unlike wall time it does not grow when other processes share the machine.
    """
    out = tmp_path_factory.mktemp("runs") / "benchmark"
    steps = []
    start = time.process_time()
    record = run(BENCHMARK_GRADIENTS, {"quick": True}, out=out, progress=lambda d, t, s: steps.append((d, t, s)))
    cpu = time.process_time() - start
    assert steps and steps[-1][0] == steps[-1][1], "progress must reach its total"
    return record.folder, record.results, cpu


def test_quick_preset_is_the_second_config():
    assert QUICK == BENCHMARK_GRADIENTS.resolve({"quick": "true"})
    assert QUICK.sizes() == ((16,), (100,), (100, 10000))
    assert BenchmarkConfig().sizes() == ((16, 64), (100, 1000, 10000), (1000, 10000, 100000))
    assert set(QUICK_SIZES) == {"dims", "steps", "memory_steps"}


@pytest.mark.parametrize("bad", [{"steps": "10,x"}, {"repeats": "3"}, {"quick": "true", "dims": "8"},
                                 {"t_final": "0"}])
def test_bad_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        BENCHMARK_GRADIENTS.resolve(bad)


def test_run_writes_tables_figures_results_in_under_a_minute(quick_run):
    folder, results, cpu = quick_run
    for name in ("benchmark.md", "benchmark.tex", "memory.md", "memory.tex"):
        assert (folder / "tables" / name).stat().st_size > 0, name
    for stem in ("time_vs_steps", "memory_vs_steps", "error_vs_steps"):
        assert (folder / "figures" / f"{stem}.png").stat().st_size > 0, stem
    on_disk = json.loads((folder / "results.json").read_text())
    assert on_disk["targets"].keys() == results["targets"].keys()
    assert "temp_size_in_bytes" in (folder / "tables" / "memory.tex").read_text().replace(r"\_", "_")
    assert cpu < 60, f"the quick preset took {cpu:.1f} s of CPU time"


def test_every_method_measured_with_positive_times_and_memory(quick_run):
    _, results, _ = quick_run
    runs = results["runs"]
    assert {r["method"] for r in runs} >= {r.name for r in ROWS}
    for r in runs:
        assert r["forward_seconds"] > 0 and r["gradient_seconds"] > 0, r["method"]
        assert len(r["gradient_all_seconds"]) >= 5
        assert r["memory"]["temp_bytes"] > 0 and r["memory"]["total_bytes"] > r["memory"]["temp_bytes"]
    for entry in results["memory_vs_steps"]["methods"].values():
        assert all(b > 0 for b in entry["temp_bytes"])
    store_all = results["memory_vs_steps"]["methods"]["least-action-store-all"]["temp_bytes"]
    assert store_all[-1] > 50 * store_all[0], "store-all memory must grow with N"


def test_least_action_is_exact_for_its_discrete_map(quick_run):
    _, results, _ = quick_run
    for r in results["runs"]:
        if r["family"] == "least-action":
            tolerance = 1e-10 if r["memory_strategy"] == "reversible" else 1e-12
            assert r["error_vs_discrete"] <= tolerance, (r["method"], r["error_vs_discrete"])
        if r["memory_strategy"] == "reversible":
            assert r["reconstruction_error"] < 1e-10
        if r["method"] == "diffrax-recursive-checkpoint":
            assert r["error_vs_discrete"] <= 1e-12


def test_backsolve_is_not_exact_and_both_errors_are_reported(quick_run):
    _, results, _ = quick_run
    exactness = results["targets"]["least_action_exact_backsolve_not"]
    for size in exactness["per_size"]:
        assert size["backsolve_error_vs_discrete"] > 1e-10
        assert size["least_action_error_vs_discrete"] <= 1e-12
        # both converge to the continuous gradient only at the rate of Heun's method
        assert 1e-9 < size["least_action_error_vs_continuous"] < 1e-2
        assert 1e-9 < size["backsolve_error_vs_continuous"] < 1e-2
    assert exactness["pass"] is True


def test_targets_report_values_and_flags(quick_run):
    _, results, _ = quick_run
    targets = results["targets"]
    for key in ("store_all_time_vs_jax_grad", "reversible_heun_time_vs_store_all", "reversible_heun_memory_growth",
                "store_all_memory_linear"):
        assert isinstance(targets[key]["value"], float), key
        assert isinstance(targets[key]["pass"], bool), key
    assert targets["store_all_time_vs_jax_grad"]["as_specified"] is False  # quick sizes, not d=64, N=1000
