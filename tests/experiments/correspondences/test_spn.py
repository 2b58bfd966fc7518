"""SPNs: backprop through the network polynomial is exact inference.

References: the spec's hand-computed numbers, enumeration of the Bayesian network's joint table
(from its CPTs, no SPN involved), pgmpy's variable elimination on the same network, and for random
SPNs enumeration of the SPN's own joint table (forward evaluations only)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.correspondences import (
    SPN,
    Indicator,
    Product,
    Sum,
    enumerate_derivatives,
    example_bayes_net,
    random_spn,
)

BN = example_bayes_net()
NET = BN.to_spn()
NAMES = list(BN.variables)


def all_evidence(variables):
    """Every partial assignment of the variables (including the empty one)."""
    names = list(variables)
    for chosen in itertools.product(*[[None, *range(variables[n])] for n in names]):
        yield {n: x for n, x in zip(names, chosen) if x is not None}


def test_spec_numbers():
    """Evidence C = 1: exact rational numbers, equal to rounding (1e-15)."""
    S, d = NET.derivatives({"C": 1})
    assert abs(S - 0.45) <= 1e-15
    expected = {("A", 1): 0.03, ("A", 0): 0.42, ("B", 1): 0.111, ("B", 0): 0.339, ("C", 0): 0.55, ("C", 1): 0.45}
    for (v, x), value in expected.items():
        assert abs(d[NET.slot(v, x)] - value) <= 1e-15
    post = NET.posteriors({"C": 1})
    assert abs(post[NET.slot("A", 1)] - 1 / 15) <= 1e-15


def test_compiled_network_is_the_joint_distribution():
    np.testing.assert_allclose(NET.joint_table(), BN.joint_table(), rtol=0, atol=1e-16)


@pytest.mark.parametrize("evidence", list(all_evidence(BN.variables)), ids=str)
def test_derivatives_are_joint_probabilities_with_the_evidence(evidence):
    """dS/dlambda_{X=x} = P(X = x, e \\ X) by enumeration of the CPT product: 1e-15 absolute."""
    S, d = NET.derivatives(evidence)
    S_ref, d_ref = enumerate_derivatives(BN.joint_table(), NAMES, evidence)
    assert abs(S - S_ref) <= 1e-15
    np.testing.assert_allclose(d, d_ref, rtol=0, atol=1e-15)


@pytest.mark.parametrize("evidence", [e for e in all_evidence(BN.variables) if len(e) < 3], ids=str)
def test_log_derivatives_are_posterior_marginals(evidence):
    """d log S / d log lambda = P(X = x | e) for unobserved X (enumeration, 1e-14 relative)."""
    post = NET.posteriors(evidence)
    S_ref, d_ref = enumerate_derivatives(BN.joint_table(), NAMES, evidence)
    for v in NAMES:
        if v in evidence:
            continue
        for x in range(BN.variables[v]):
            assert abs(post[NET.slot(v, x)] - d_ref[NET.slot(v, x)] / S_ref) <= 1e-14


def pgmpy_network():
    pytest.importorskip("pgmpy", reason="pgmpy (the `peers` extra) is the independent inference library")
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    net = DiscreteBayesianNetwork([("A", "B"), ("A", "C")])
    cpds = []
    for name in NAMES:
        table = np.asarray(BN.cpts[name])
        parent = BN.parents[name]
        if parent is None:
            cpds.append(TabularCPD(name, 2, table.reshape(2, 1)))
        else:
            cpds.append(TabularCPD(name, 2, table.T, evidence=[parent], evidence_card=[2]))
    net.add_cpds(*cpds)
    net.check_model()
    return net


@pytest.mark.parametrize("evidence", [e for e in all_evidence(BN.variables) if 0 < len(e) < 3], ids=str)
def test_backprop_matches_pgmpy_variable_elimination(evidence):
    """P(X = x, e) from pgmpy's joint query over (X, observed) vs dS/dlambda and posteriors: 1e-14."""
    network = pgmpy_network()  # skips when pgmpy is missing
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(network)
    S, d = NET.derivatives(evidence)
    post = NET.posteriors(evidence)
    for v in NAMES:
        if v in evidence:
            continue
        joint = ve.query([v, *evidence], joint=True, show_progress=False)
        for x in range(2):
            p = joint.get_value(**{v: x}, **evidence)
            assert abs(d[NET.slot(v, x)] - p) <= 1e-14
        marginal = ve.query([v], evidence=evidence, show_progress=False)
        np.testing.assert_allclose([post[NET.slot(v, x)] for x in range(2)], marginal.values, rtol=0, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(4, 8), observed=st.integers(0, 3))
def test_random_spns_against_enumeration(seed, n, observed):
    """Random complete, decomposable SPNs over 4-8 binary variables: derivatives and posteriors
    against sums of the SPN's own joint table (forward evaluations only), 1e-13 absolute (sums of up
    to 256 products of probabilities)."""
    rng = np.random.default_rng(seed)
    spn = random_spn(rng, n)
    table = spn.joint_table()
    assert abs(table.sum() - 1.0) <= 1e-13
    names = list(spn.variables)
    evidence = {names[int(i)]: int(rng.integers(2)) for i in rng.choice(n, size=observed, replace=False)}
    S, d = spn.derivatives(evidence)
    S_ref, d_ref = enumerate_derivatives(table, names, evidence)
    assert abs(S - S_ref) <= 1e-13
    np.testing.assert_allclose(d, d_ref, rtol=0, atol=1e-13)
    post = spn.posteriors(evidence)
    for v in names:
        if v not in evidence:
            np.testing.assert_allclose([post[spn.slot(v, x)] for x in range(2)],
                                       [d_ref[spn.slot(v, x)] / S_ref for x in range(2)], rtol=0, atol=1e-12)


def test_non_complete_sum_is_rejected_naming_the_node():
    nodes = (Indicator("A", 0), Indicator("B", 0), Sum((0, 1), (0.5, 0.5)))
    with pytest.raises(ValueError, match=r"node 2 \(sum 'bad'\) is not complete.*\{A\}, \{B\}"):
        SPN({"A": 2, "B": 2}, nodes, ("a0", "b0", "bad"))


def test_non_decomposable_product_is_rejected_naming_the_node():
    nodes = (Indicator("A", 0), Indicator("A", 1), Indicator("B", 0),
             Product((0, 2)), Product((1, 3)))
    with pytest.raises(ValueError, match=r"node 4 \(product\) is not decomposable.*overlap on \['A'\]"):
        SPN({"A": 2, "B": 2}, nodes)


def test_other_malformed_networks_are_rejected():
    with pytest.raises(ValueError, match="unknown variable/value"):
        SPN({"A": 2}, (Indicator("A", 2),))
    with pytest.raises(ValueError, match="earlier nodes"):
        SPN({"A": 2}, (Indicator("A", 0), Sum((1,), (1.0,))))
    with pytest.raises(ValueError, match="positive weight"):
        SPN({"A": 2}, (Indicator("A", 0), Indicator("A", 1), Sum((0, 1), (1.0, 0.0))))
    with pytest.raises(ValueError, match="unknown variable"):
        NET.indicators({"D": 1})


@pytest.mark.parametrize("spn", [NET, random_spn(np.random.default_rng(11), 5)], ids=["bn", "random"])
def test_written_out_backprop_and_log_space_autodiff_agree(spn):
    """The downward pass equals jax.grad of S, and jax.grad of log S in log-space (with -inf at the
    zeroed indicators) equals lambda dS/dlambda / S, for every single-variable evidence: 1e-14."""
    import jax
    import jax.numpy as jnp

    grad_S = jax.jit(jax.grad(spn.value))
    grad_log_S = jax.jit(jax.grad(spn.log_value))
    names = list(spn.variables)
    for evidence in [{}] + [{v: x} for v in names for x in range(spn.variables[v])]:
        lam = spn.indicators(evidence)
        _, d = spn.derivatives(evidence)
        np.testing.assert_allclose(d, np.asarray(grad_S(jnp.asarray(lam))), rtol=0, atol=1e-14)
        with np.errstate(divide="ignore"):
            log_lam = np.log(lam)
        np.testing.assert_allclose(np.asarray(grad_log_S(jnp.asarray(log_lam))), spn.posteriors(evidence),
                                   rtol=0, atol=1e-14)
