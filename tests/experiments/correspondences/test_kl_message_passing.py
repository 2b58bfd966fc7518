"""Alternating KL projections (EP) on the lifted factor graph of a network of elementary operations.

References: jax.grad of the same network (as a ScalarGraph) and the network of `scalar_mlp` built
from the same draws. The message passing evaluates node functions at quadrature points only."""

import numpy as np
import pytest

from experiments.correspondences import (
    ElementaryGraph,
    LiftedFactorGraph,
    Op,
    elementary_mlp,
    linearised,
    projection_differential,
    richardson,
    scalar_mlp,
)

GRAPH = elementary_mlp((2, 3, 3, 1), seed=1)
REFERENCE = GRAPH.scalar_graph().adjoints_reference()
CLAMPED = list(GRAPH.clamped)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_elementary_mlp_is_the_scalar_mlp_network():
    """Same draws, same network: the output and the weight gradients of `scalar_mlp` agree."""
    units = scalar_mlp((2, 3, 3, 1), seed=1)
    assert abs(GRAPH.forward()[GRAPH.output] - float(units.forward()[units.output])) <= 1e-15
    ref_units = units.adjoints_reference()
    by_name = {n: ref_units[i] for i, n in enumerate(units.names)}
    for v in CLAMPED:
        assert REFERENCE[v] == pytest.approx(by_name[GRAPH.names[v]], abs=1e-15)
    assert len(GRAPH.computed) == 31 and GRAPH.factor_graph_cycles() > 0


def test_untilted_fixed_point_has_flat_backward_sites():
    """At beta = 0 nothing flows backward: the lifted weights keep their prior mean (up to rounding of
    the site differences, against shifts of order beta s^2 |dL/dw| when tilted)."""
    fp = LiftedFactorGraph(GRAPH, 0.05).solve(0.0)
    assert fp.converged
    assert np.max(np.abs(fp.backward_eta)) <= 1e-14 and np.max(np.abs(fp.backward_precision)) <= 1e-10
    assert np.max(np.abs(fp.means[CLAMPED])) <= 1e-16
    assert np.allclose(fp.variances[CLAMPED], 0.05 ** 2, rtol=1e-14)


def test_linearised_network_is_exact_at_any_width():
    lin = linearised(GRAPH)
    assert lin.scalar_graph().adjoints_reference() == pytest.approx(REFERENCE, abs=1e-14)
    for s in (0.2, 0.02):
        d = projection_differential(lin, s)
        assert rel(d.weight_gradients, REFERENCE[CLAMPED]) <= 1e-11
        assert rel(d.node_adjoints, REFERENCE) <= 1e-11


def test_nonlinear_network_converges_at_second_order_and_extrapolates():
    s_values = [0.0125, 0.00625, 0.003125]
    diffs = [projection_differential(GRAPH, s) for s in s_values]
    errors = [rel(d.weight_gradients, REFERENCE[CLAMPED]) for d in diffs]
    assert 3.6 <= errors[0] / errors[1] <= 4.4 and 3.6 <= errors[1] / errors[2] <= 4.4  # O(s^2)
    assert errors[-1] > 1e-5  # the raw readout is not yet the gradient ...
    assert rel(richardson([d.weight_gradients for d in diffs]), REFERENCE[CLAMPED]) <= 1e-8  # ... its limit is
    assert rel(richardson([d.node_adjoints for d in diffs]), REFERENCE) <= 1e-8
    assert all(max(d.sweeps) <= 10 for d in diffs)


def test_richardson_removes_even_terms():
    f = lambda s: 3.0 + 2.0 * s ** 2 - 5.0 * s ** 4  # noqa: E731
    assert richardson([f(0.1), f(0.05), f(0.025)]) == pytest.approx(3.0, abs=1e-14)


def test_invalid_graphs_and_widths_are_rejected():
    with pytest.raises(ValueError, match="needs 2 parent"):
        ElementaryGraph(("a", "b"), (Op("clamped", value=1.0), Op("product", (0,))), 1, 0.0)
    with pytest.raises(ValueError, match="one coefficient per parent"):
        ElementaryGraph(("a", "b"), (Op("clamped", value=1.0), Op("affine", (0,))), 1, 0.0)
    with pytest.raises(ValueError, match="output must be a computed node"):
        ElementaryGraph(("a",), (Op("clamped", value=1.0),), 0, 0.0)
    with pytest.raises(ValueError, match="lift width"):
        LiftedFactorGraph(GRAPH, 0.0)
