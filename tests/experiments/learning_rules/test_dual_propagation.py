"""Dual propagation: orders in beta, alpha, and the dyads against the doubled copies of docs/design.md 2.2."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import lagrangian
from experiments.harness import problems
from experiments.learning_rules import dual_propagation as dp
from tests.helpers import rel_l2


def _errors(acceptance, variant, alpha, betas, passes=1):
    net, theta, x0, loss, ref = acceptance
    fn = jax.jit(lambda b: dp.dual_propagation(net, theta, x0, loss, b, alpha, passes, variant))
    return np.array([rel_l2(fn(b), ref) for b in betas])


@pytest.mark.smoke
def test_symmetric_dual_propagation_is_second_order_in_beta(acceptance):
    e = _errors(acceptance, "dp", 0.5, (1e-2, 1e-3))
    assert e[1] <= 1e-5 and 70 <= e[0] / e[1] <= 130


@pytest.mark.parametrize("variant", ["dp", "dp-top"])
def test_asymmetric_nudging_is_first_order_in_beta(acceptance, variant):
    e = _errors(acceptance, variant, 0.0, (1e-3, 1e-4), passes=3)
    assert 7 <= e[0] / e[1] <= 13 and e[1] <= 1e-3


def test_dyads_coincide_with_the_doubled_copies_to_first_order_only(acceptance):
    net, theta, x0, loss, _ = acceptance
    at = {b: dp.dyads_and_copies(net, theta, x0, loss, b) for b in (1e-3, 1e-4)}
    # alpha = 1/2: the dyads' mean leaves the forward pass at O(beta^2) (the copies' mean never does)
    ratio = at[1e-3]["hidden_mean_vs_forward"] / at[1e-4]["hidden_mean_vs_forward"]
    assert 70 <= ratio <= 130
    # the difference s- - s+ is D_k x-_k (pre-activation coordinates), up to O(beta) relative
    assert at[1e-4]["hidden_difference_vs_tension"] <= 1e-6
    assert at[1e-4]["output_difference_vs_tension"] <= 1e-6
    # asymmetric DP (alpha = 0): the mean moves at O(beta); DP-top keeps it on the forward pass
    assert dp.dyads_and_copies(net, theta, x0, loss, 1e-3, alpha=0.0)["hidden_mean_vs_forward"] >= 1e-4
    assert dp.dyads_and_copies(net, theta, x0, loss, 1e-3, alpha=0.0, variant="dp-top")[
        "hidden_mean_vs_forward"] <= 1e-15


def test_schedule_is_the_authors_fwbwk_order():
    assert dp.schedule(3, 1) == [3, 2, 1]
    assert dp.schedule(3, 2) == [3, 2, 1, 2, 3, 2, 1, 1]  # as in the authors' code (layer 1 twice at the end)
    with pytest.raises(ValueError, match="passes >= 1"):
        dp.schedule(3, 0)


def test_dual_propagation_needs_an_mlp():
    p = problems.problem_named("resnet")
    with pytest.raises(ValueError, match="lagrangian.MLP"):
        dp.dual_propagation(p.system, p.theta, p.x0, p.loss, 1e-3)
    q = problems.problem_named("mlp")
    with pytest.raises(ValueError, match="unknown dual-propagation variant"):
        dp.dual_propagation(q.system, q.theta, q.x0, q.loss, 1e-3, variant="dp3")
