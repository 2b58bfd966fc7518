"""The physical learning rules in the comparison harness: registered, judged, and caught when their
nudge sign is flipped (test-only copies, like the sign-flipped conjugate method of test_harness.py)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import integrators
import lagrangian
from experiments import harness
from experiments.harness import methods, rules as registry

RULES = ["ep-one-sided", "ep-symmetric", "pc-clamped", "pc-weak-precision", "pc-fixed-prediction", "dual-prop",
         "dual-prop-top"]


class FlippedEP(registry.EquilibriumPropagation):
    """EP whose nudged phases are pushed by -beta while the estimate still divides by +beta."""

    def __init__(self, beta, symmetric):
        super().__init__(beta, symmetric)
        self.name = f"flipped-{self.name}"

    def nudge(self, problem):
        return -self.beta


class FlippedPC(registry.PredictiveCoding):
    """Weak-precision PC whose output is clamped to the target reflected through the prediction
    (`2 mu_N - y`): the output nudge points the wrong way."""

    def __init__(self, precision):
        super().__init__(precision)
        self.name = f"flipped-{self.name}"

    def loss_for(self, problem):
        mu = integrators.output(problem.system, problem.theta, problem.x0)
        return lagrangian.SquaredError(target=2 * mu - problem.loss.target)


class FlippedFixedPrediction(registry.FixedPredictionPC):
    name = "flipped-pc-fixed-prediction"

    def nudge(self, problem):
        return -1.0


class FlippedDP(registry.DualPropagation):
    def __init__(self, variant, beta, alpha):
        super().__init__(variant, beta, alpha)
        self.name = f"flipped-{self.name}"

    def nudge(self, problem):
        return -self.beta


FLIPPED = [FlippedEP(1e-6, False), FlippedEP(1e-4, True), FlippedPC(1e-6), FlippedFixedPrediction(),
           FlippedDP("dp", 1e-3, 0.5), FlippedDP("dp-top", 1e-6, 0.0)]


def test_every_rule_is_registered_with_a_stated_tolerance():
    for name in RULES:
        method = harness.METHODS[name]
        assert method.kind == "project"
        tolerance = method.tolerance_for("float64")
        assert (tolerance is None) == (name == "pc-clamped")  # the clamped network is reported, not judged
    assert harness.METHODS["pc-fixed-prediction"].tolerance_for("float64") == methods.EXACT["float64"]
    resnet = harness.problem_named("resnet")
    assert all(harness.METHODS[name].applies(resnet) for name in RULES)  # MLPs only
    mlp = harness.problem_named("mlp")
    assert "squared-error" in harness.METHODS["pc-weak-precision"].applies(mlp)


def test_flipped_nudges_make_compare_fail():
    comparison = harness.compare(problems=["mlp-deep"], methods=["jax-grad", *FLIPPED], repeats=1)
    for method in FLIPPED:
        cell = comparison.cell(method.name, "mlp-deep")
        assert cell.status == "fail", (method.name, cell.status, cell.reason)
        assert cell.relative_error > 10 * cell.tolerance
    assert {c.method for c in comparison.failures()} == {m.name for m in FLIPPED}


@pytest.mark.slow
def test_every_rule_passes_compare_on_the_mlps():
    comparison = harness.compare(problems=["mlp", "mlp-deep"], methods=["jax-grad", *RULES], repeats=1)
    assert comparison.failures() == []
    statuses = {(c.method, c.problem): c.status for c in comparison.cells}
    assert statuses[("pc-clamped", "mlp-deep")] == "reported"
    assert statuses[("pc-weak-precision", "mlp")] == "n/a"
    assert statuses[("ep-symmetric", "mlp-deep")] == "pass"
