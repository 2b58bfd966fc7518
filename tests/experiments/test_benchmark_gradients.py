"""The gradient benchmark: its config, and its quick preset run once through the experiment runner.

Timing decides no test here: the quick run's times and ratios are checked for being
recorded (present, positive, one per method and cell), never for their values.
"""

from __future__ import annotations

import json

import pytest

from experiments.catalog.benchmark_gradients import (
    BENCHMARK_GRADIENTS,
    QUICK,
    QUICK_SIZES,
    ROWS,
    BenchmarkConfig,
    Sizes,
)
from experiments.runner import run


def test_quick_preset_and_defaults():
    assert QUICK == BENCHMARK_GRADIENTS.resolve({"quick": "true"})
    assert QUICK.sizes() == Sizes((16,), (100,), ("single",), ("float64", "float32"), (100,))
    assert BenchmarkConfig().sizes() == Sizes((16, 64, 256), (100, 1000, 10000), ("single", "batch"),
                                              ("float64", "float32"), (1000, 10000, 100000))
    assert set(QUICK_SIZES) == {"dims", "steps", "states", "dtypes", "memory_steps"}
    subset = BENCHMARK_GRADIENTS.resolve({"dims": "64,16", "states": "batch", "dtypes": "float32"}).sizes()
    assert (subset.dims, subset.states, subset.dtypes) == ((16, 64), ("batch",), ("float32",))


@pytest.mark.parametrize("bad, key", [
    ({"steps": "10,x"}, "steps"), ({"dims": "16,16"}, "dims"), ({"dims": "0"}, "dims"),
    ({"states": "double"}, "states"), ({"dtypes": "float16"}, "dtypes"), ({"repeats": "5"}, "repeats"),
    ({"budget": "0"}, "budget"), ({"batch": "0"}, "batch"), ({"t_final": "0"}, "t_final"),
    ({"quick": "true", "dims": "8"}, "quick"), ({"method": "rk4"}, "method"),
])
def test_bad_configs_are_rejected_naming_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        BENCHMARK_GRADIENTS.resolve(bad)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`(folder, results, progress steps)` of one quick benchmark run (about a minute of CPU)."""
    out = tmp_path_factory.mktemp("runs") / "benchmark"
    steps = []
    record = run(BENCHMARK_GRADIENTS, {"quick": True}, out=out, progress=lambda d, t, s: steps.append((d, t, s)))
    return record.folder, record.results, steps


@pytest.mark.slow
def test_quick_run_writes_tables_figures_results(quick_run):
    folder, results, steps = quick_run
    assert steps and steps[-1][0] == steps[-1][1], "progress must reach its total"
    for stem in ("ratios", "timings", "memory", "targets"):
        for suffix in ("md", "tex"):
            assert (folder / "tables" / f"{stem}.{suffix}").stat().st_size > 0, (stem, suffix)
    for stem in ("ratios_vs_steps", "memory_vs_steps"):
        for suffix in ("png", "pdf"):
            assert (folder / "figures" / f"{stem}.{suffix}").stat().st_size > 0, (stem, suffix)
    on_disk = json.loads((folder / "results.json").read_text())
    assert on_disk["targets"].keys() == results["targets"].keys()
    ratios = (folder / "tables" / "ratios.md").read_text()
    assert "d in {16}, N in {100}" in ratios, "the table must say which sizes it covers"


@pytest.mark.slow
def test_quick_run_records_every_method_in_every_cell(quick_run):
    _, results, _ = quick_run
    runs = results["runs"]
    cells = {(r["d"], r["steps"], r["state"], r["dtype"]) for r in runs}
    assert cells == {(16, 100, "single", "float64"), (16, 100, "single", "float32")}
    for cell in cells:
        assert sorted(r["method"] for r in runs if (r["d"], r["steps"], r["state"], r["dtype"]) == cell) == \
            sorted(row.name for row in ROWS)
    for r in runs:
        assert r["status"] == "measured", r["method"]
        assert r["timed_calls"] >= 7 and len(r["all_cpu_seconds"]) == len(r["all_wall_seconds"]) == r["timed_calls"]
        assert r["cpu_seconds"] > 0 and r["wall_seconds"] > 0, r["method"]
        assert r["cpu_ratio"] > 0 and r["wall_ratio"] > 0, r["method"]
        assert r["time_to_first_gradient_seconds"] >= r["first_call_seconds"] > 0
        if r["family"] != "torchdiffeq":
            assert r["compile_seconds"] > 0 and r["xla_temp_bytes"] > 0, r["method"]
    memory = results["memory_vs_steps"]["states"]["single"]
    assert set(memory) == {row.name for row in ROWS if row.family != "torchdiffeq"}
    assert all(m["temp_bytes"][0] > 0 and m["compile_seconds"][0] > 0 for m in memory.values())


@pytest.mark.slow
def test_quick_run_errors_within_the_acceptance(quick_run):
    """Exact methods: relative L2 error against jax.grad of the same map <= 1e-12 in float64
    (rounding: measured ~1e-15) and <= 1e-5 in float32 (measured ~5e-7); BacksolveAdjoint's is
    reported, not judged (it solves the continuous adjoint, not the discrete map's)."""
    _, results, _ = quick_run
    bound = {"float64": 1e-12, "float32": 1e-5}
    for r in results["runs"]:
        if r["family"] == "reference":
            assert r["error"] == 0.0
        elif r["method"] == "diffrax-backsolve":
            assert r["error_judged"] is False and r["error"] > 0
        else:
            assert r["error_judged"] and r["error"] <= bound[r["dtype"]], (r["method"], r["dtype"], r["error"])
    assert results["targets"]["errors"]["pass"] is True


@pytest.mark.slow
def test_quick_run_targets_have_values_and_flags(quick_run):
    _, results, _ = quick_run
    targets = results["targets"]
    for name in ("store_stages_vs_jax_grad", "store_all_vs_jax_grad", "reversible_heun_vs_jax_grad_same_map",
                 "float32_not_slower", "ahead_of_diffrax_recursive_checkpoint",
                 "ahead_of_diffrax_recursive_checkpoint_5x", "ahead_of_torchdiffeq_20x", "errors"):
        target = targets[name]
        assert isinstance(target["value"], float) and isinstance(target["value_wall"], float), name
        assert isinstance(target["pass"], bool) and isinstance(target["pass_wall"], bool), name
        assert target["cells_measured"] >= 1, name
    # sizes the quick preset does not run are reported as not measured, never dropped
    for name in ("checkpoint_log_vs_store_all_at_10000", "checkpoint_log_compile_vs_store_all_at_1e5"):
        assert targets[name]["pass"] is None and targets[name]["cells_measured"] == 0, name


def test_a_peer_predicted_over_the_budget_is_not_run_and_says_so():
    """The prediction scales the median at the largest smaller N of the same d, state and
    dtype linearly in N; the table shows a skipped row as 'over budget'."""
    from experiments.catalog.benchmark_gradients import BY_NAME, _pair, _predicted_call

    history = {("torchdiffeq", 16, "single", "float64", 100): 0.5, ("torchdiffeq", 16, "single", "float64", 1000): 3.0,
               ("torchdiffeq", 64, "single", "float64", 1000): 100.0}
    cell = {"d": 16, "steps": 10000, "state": "single", "dtype": "float64"}
    assert _predicted_call(history, BY_NAME["torchdiffeq"], cell) == (30.0, 1000)
    assert _predicted_call(history, BY_NAME["torchdiffeq"], {**cell, "dtype": "float32"}) is None
    assert _pair({"status": "not measured: over budget"}) == "over budget"
    assert _pair({"status": "measured", "cpu_ratio": 1.234, "wall_ratio": 2.0, "cut_by_budget": True}) == "1.23 / 2*"
