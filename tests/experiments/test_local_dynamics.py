"""The local-dynamics experiment (quick preset) through the runner."""

import pytest

from experiments.catalog.local_dynamics import EXPERIMENT
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import warnings

    import jax

    import integrators

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run(EXPERIMENT, {"quick": True}, out=tmp_path_factory.mktemp("runs") / "local").results
        jax.effects_barrier()
    # the solves meant to converge did; the others recorded their residual without warning
    assert not [w for w in caught if issubclass(w.category, integrators.UnconvergedWarning)]
    return out


def test_relaxation_reaches_the_exact_gradient(results):
    """Every network's conjugate relaxation ends within 1e-10 of jax.grad (relative L2)."""
    for label, curve in results["relaxation"].items():
        assert curve["final_error"] <= 1e-10, label
        assert curve["iterations_to_1e-10"] is not None
        assert curve["converged"] and curve["residual"] <= 1e-10, label  # recorded beside the error


def test_saddle_flows(results):
    """The augmented flow is exact on the linear network (1e-10); without the penalty it
    stalls above 1e-3; the tanh networks reach 1e-10 in the quick budget."""
    saddle = results["saddle"]
    assert saddle["augmented"]["final_error"] <= 1e-10
    assert saddle["arrow-hurwicz"]["final_error"] > 1e-3
    assert all(error <= 1e-10 for error in saddle["nonlinear_error_by_depth"].values())
    assert saddle["augmented"]["converged"] and not saddle["arrow-hurwicz"]["converged"]
    assert saddle["arrow-hurwicz"]["residual"] > 1e-3
    assert all(saddle["nonlinear_converged_by_depth"].values())


def test_newton_in_time_matches_the_sweep(results):
    """Newton's fixed point is the forward pass: the gradient agrees with the sequential
    sweep to 1e-12 after a handful of iterations."""
    for row in results["newton"]:
        assert row["gradient_error_vs_sweep"] <= 1e-12
        assert 1 <= row["newton_iterations"] <= 10
        assert row["converged"] and row["residual"] <= 1e-12


def test_learning_while_inferring_trains(results):
    """Gradients read from fields relaxing one or two steps per update still train the
    digits MLP; with 2N + 2 steps it is backprop."""
    learning = results["learning"]
    for label, run_ in learning.items():
        assert run_["losses"][-1] < 0.5 * run_["losses"][0], label
    assert learning["backprop"]["test_accuracy"] > 0.8
    # with 2N + 2 Jacobi steps the last update used the exact gradient; with one it did not
    assert learning["backprop"]["final_converged"] and not learning["1 step"]["final_converged"]
