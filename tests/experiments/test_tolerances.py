"""`experiments.tolerances`: comparing results trees within tolerances, volatile keys left out."""

from __future__ import annotations

import pytest

from experiments.tolerances import Tolerances, compare_results, is_volatile


pytestmark = pytest.mark.smoke


def test_equal_trees_match_and_every_scalar_is_counted():
    tree = {"a": 1.0, "b": [1, 2.5, "x", None, True], "c": {"d": -3e-17}}
    result = compare_results(tree, tree)
    assert result.ok and result.checked == 7 and result.excluded == ()


def test_float_within_rtol_matches_beyond_fails():
    tol = Tolerances(rtol=1e-9, atol=0.0)
    assert compare_results({"x": 1.0}, {"x": 1.0 + 0.9e-9}, tol).ok
    result = compare_results({"x": 1.0}, {"x": 1.0 + 1.1e-9}, tol)
    assert not result.ok
    (d,) = result.differences
    assert d.path == "x" and d.expected == 1.0
    assert d.abs_diff == pytest.approx(1.1e-9, rel=1e-6)  # the difference is reported, not just flagged


def test_atol_covers_rounding_noise_near_zero():
    assert compare_results({"err": 1e-16}, {"err": 3e-16}, Tolerances(rtol=1e-9, atol=1e-12)).ok
    assert not compare_results({"err": 1e-16}, {"err": 3e-16}, Tolerances(rtol=1e-9, atol=0.0)).ok


def test_integers_strings_and_booleans_must_be_equal():
    assert not compare_results({"n": 3}, {"n": 4}).ok
    assert not compare_results({"s": "rk4"}, {"s": "rk5"}).ok
    assert not compare_results({"b": True}, {"b": False}).ok
    assert not compare_results({"b": True}, {"b": 1}).ok  # a bool is not the integer 1
    assert not compare_results({"x": None}, {"x": 0.0}).ok


def test_structure_differences_are_reported():
    result = compare_results({"a": [1.0, 2.0], "b": 1.0, "c": {"d": 1}}, {"a": [1.0], "c": {"d": 1, "e": 2}})
    reasons = {d.path: d.reason for d in result.differences}
    assert reasons == {"a": "length differs", "b": "missing in re-run", "c.e": "new in re-run"}


@pytest.mark.parametrize("path", ["wall_seconds", "runs[3].gradient_seconds", "setup.compile_time",
                                  "memory_vs_steps.methods.x.temp_bytes", "methods.a.temp_bytes[2]",
                                  "start_timestamp", "targets.store_all_time_vs_jax_grad.value"])
def test_timing_and_memory_keys_are_volatile(path):
    assert is_volatile(path)


@pytest.mark.parametrize("path", ["loss", "gradient.relative_l2_error", "runs[0].steps", "betas[1].beta"])
def test_mathematical_keys_are_not_volatile(path):
    assert not is_volatile(path)


def test_declared_patterns_exclude_by_name_or_dotted_path():
    assert is_volatile("runs[2].gradient_over_forward", ("gradient_over_forward",))
    assert is_volatile("summary.speedup", ("summary.speed*",))
    assert not is_volatile("other.speedup", ("summary.speed*",))


def test_volatile_values_are_excluded_and_listed():
    expected = {"loss": 1.0, "wall_seconds": 3.2, "runs": [{"ratio": 1.1, "err": 0.0}]}
    got = {"loss": 1.0, "wall_seconds": 9.9, "runs": [{"ratio": 7.0, "err": 0.0}]}
    result = compare_results(expected, got, Tolerances(volatile=("ratio",)))
    assert result.ok
    assert set(result.excluded) == {"wall_seconds", "runs[0].ratio"}
    assert result.checked == 2


def test_bad_tolerances_are_a_clear_error():
    with pytest.raises(ValueError, match="'rtol' must be a finite number >= 0"):
        Tolerances(rtol=-1.0)
    with pytest.raises(ValueError, match="unknown \\[verify\\] key 'rtl'"):
        Tolerances.from_dict({"rtl": 1e-3})
