"""A comparison split over worker processes gives the cells a single process gives."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from experiments import harness
from experiments.harness import problems as problem_registry
from experiments.harness.processes import compare_in_processes, cores, families

PROBLEMS = ["mlp", "linear-rk4"]
METHODS = ["jax-grad", "least-action"]


def _fake(name, family, is_ode):
    """What `families` reads of a problem."""
    return SimpleNamespace(name=name, family=family, is_ode=is_ode)


def test_families_stay_together_heaviest_first():
    problems = [_fake("mlp", "mlp", False), _fake("resnet", "resnet", False), _fake("a-euler", "a", True),
                _fake("b-rk4", "b", True), _fake("a-rk4", "a", True)]
    queue = families(problems, list(harness.METHODS))
    # ODE families (with re-discretised targets) before networks; a family's members in the given order
    assert queue == [["a-euler", "a-rk4"], ["b-rk4"], ["mlp"], ["resnet"]]
    # without scheme methods every problem weighs the same: the two-member family, then the given order
    assert families(problems, METHODS) == [["a-euler", "a-rk4"], ["mlp"], ["resnet"], ["b-rk4"]]


@pytest.fixture(scope="module")
def both():
    """The same comparison in this process and in two worker processes (which build their own
    problems: building one here fails)."""
    single = harness.compare(problems=PROBLEMS, methods=METHODS, repeats=1, processes=1)

    def not_here(*args, **kwargs):
        raise AssertionError("the parent process built a problem")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(problem_registry.ProblemSpec, "__call__", not_here)
        split = harness.compare(problems=PROBLEMS, methods=METHODS, repeats=1, processes=2)
    return single, split


def test_processes_give_the_cells_of_one_process(both):
    single, split = both
    assert single.processes is None
    assert len(split.processes) == 2 and sorted(sum((p["problems"] for p in split.processes), [])) == sorted(PROBLEMS)
    assert [(c.method, c.problem, c.status) for c in split.cells] == [(c.method, c.problem, c.status)
                                                                     for c in single.cells]
    assert list(split.problems) == PROBLEMS
    for a, b in zip(single.cells, split.cells):
        if a.gradient is None:
            continue
        # one XLA thread per worker may sum in another order: agreement to rounding, not bitwise
        for x, y in zip(jax.tree.leaves(a.gradient), jax.tree.leaves(b.gradient), strict=True):
            np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-15)
    assert split.summary()["passed"] and split.summary()["max_project_relative_error"] <= 1e-12


def test_each_worker_runs_on_its_own_core(both):
    _, split = both
    available = cores()
    if available is None:
        pytest.skip("this platform does not say which cores a process may use (no os.sched_getaffinity)")
    if len(available) < 2:
        pytest.skip(f"one core available ({available}): both workers share it")
    # as each worker read its own affinity: one core each, different cores, so timings are single-threaded
    assert [p["cores"] for p in split.processes] == [[available[0]], [available[1]]]


def test_objects_and_runtime_registrations_stay_in_this_process():
    method = harness.METHODS["least-action"]
    comparison = harness.compare(problems=["mlp", "linear-rk4"], methods=["jax-grad", method], repeats=1,
                                 processes=2)
    assert comparison.processes is None and comparison.summary()["passed"]


def test_a_failing_worker_raises_with_its_error():
    with pytest.raises(RuntimeError, match="unknown method 'no-such-reference'"):
        compare_in_processes([harness.problem_named(n) for n in PROBLEMS], ["least-action"], 2,
                             {"reference": "no-such-reference"}, lambda *_: None, lambda _: None)
