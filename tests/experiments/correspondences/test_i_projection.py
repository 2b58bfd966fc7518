"""The I-projection onto marginal constraints through the SPN's log-partition: Newton multipliers
against a direct constrained solve of the joint table (scipy SLSQP), and against Jeffrey's rule."""

import numpy as np
import pytest

from experiments.correspondences import (
    example_bayes_net,
    feature_matrix,
    i_projection_newton,
    i_projection_slsqp,
    moments,
    random_spn,
    tilted_table,
)

BN = example_bayes_net()
NET = BN.to_spn()
NAMES = list(BN.variables)


@pytest.mark.parametrize("constraints", [
    {("C", 1): 0.8},
    {("B", 1): 0.5, ("C", 1): 0.8},
    {("A", 1): 0.6, ("B", 0): 0.3, ("C", 1): 0.2},
], ids=["C", "B,C", "A,B,C"])
def test_newton_multipliers_match_the_direct_constrained_solve(constraints):
    """Multipliers to 1e-6 and the projected table to 1e-8 (SLSQP's own accuracy limits both)."""
    newton = i_projection_newton(NET, constraints)
    direct = i_projection_slsqp(BN.joint_table(), NAMES, constraints)
    assert direct.success, direct.message
    np.testing.assert_allclose(newton.multipliers, direct.multipliers, rtol=0, atol=1e-6)
    q = tilted_table(BN.joint_table(), NAMES, newton.features, newton.multipliers)
    np.testing.assert_allclose(q, direct.table, rtol=0, atol=1e-8)
    # backprop moments hit the targets, and the KL from the dual equals the KL of the table
    np.testing.assert_allclose(newton.moments, newton.targets, rtol=0, atol=1e-13)
    p = BN.joint_table()
    assert abs(newton.kl - float(np.sum(q * np.log(q / p)))) <= 1e-13
    phi = feature_matrix(NAMES, p.shape, newton.features)
    np.testing.assert_allclose(phi @ q.ravel(), newton.targets, rtol=0, atol=1e-13)


def test_single_marginal_constraint_is_jeffreys_rule():
    """q(C=1) = m: mu = logit(m) - logit(P(C=1)) and q = p(x) m / P(C=1) on C=1 (1e-13)."""
    m, pc = 0.8, 0.45
    newton = i_projection_newton(NET, {("C", 1): m})
    assert abs(newton.multipliers[0] - (np.log(m / (1 - m)) - np.log(pc / (1 - pc)))) <= 1e-13
    q = tilted_table(BN.joint_table(), NAMES, newton.features, newton.multipliers)
    p = BN.joint_table()
    np.testing.assert_allclose(q[..., 1], p[..., 1] * m / pc, rtol=0, atol=1e-13)
    np.testing.assert_allclose(q[..., 0], p[..., 0] * (1 - m) / (1 - pc), rtol=0, atol=1e-13)


def test_hard_evidence_is_the_limit_of_the_projection():
    """As q(C=1) -> 1 the backprop moments of the other indicators tend to the posterior
    P(A=1 | C=1) = 1/15; the gap is O(1 - m)."""
    gaps = []
    for m in (1 - 1e-2, 1 - 1e-4):
        newton = i_projection_newton(NET, {("C", 1): m})
        mom = moments(NET, [("C", 1), ("A", 1)], np.array([newton.multipliers[0], 0.0]))
        gaps.append(abs(mom[1] - 1 / 15))
    assert gaps[1] <= 1e-4 and gaps[1] <= 2e-2 * gaps[0]


def test_random_spn_projection():
    rng = np.random.default_rng(7)
    spn = random_spn(rng, 4, max_children=2)
    constraints = {("X0", 1): 0.3, ("X2", 0): 0.7}
    newton = i_projection_newton(spn, constraints)
    direct = i_projection_slsqp(spn.joint_table(), list(spn.variables), constraints)
    np.testing.assert_allclose(newton.multipliers, direct.multipliers, rtol=0, atol=1e-6)


def test_bad_constraints_are_rejected():
    with pytest.raises(ValueError, match="targets in"):
        i_projection_newton(NET, {("C", 1): 1.0})
    with pytest.raises(ValueError, match="at most"):
        i_projection_newton(NET, {("C", 1): 0.3, ("C", 0): 0.7})


def test_backward_values_are_the_multipliers_of_the_log_indicator_constraints():
    """One backward pass through log S against SLSQP's KKT multipliers of theta = log lambda in the
    Gibbs variational problem solved on the joint table."""
    import numpy as np

    from experiments.correspondences import backward_as_multipliers, example_bayes_net

    spn = example_bayes_net().to_spn()
    result = backward_as_multipliers(spn, np.array([0.5, 2.0, 1.0, 0.3, 0.1, 1.0]))
    assert result.success
    assert np.max(np.abs(result.backward + result.multipliers)) <= 1e-8
    marginals = backward_as_multipliers(spn, np.ones(6))
    assert np.allclose(marginals.backward, [0.7, 0.3, 0.59, 0.41, 0.55, 0.45], atol=1e-15)
