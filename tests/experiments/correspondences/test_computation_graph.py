"""The scalar computation graphs: validation, forward values, and the jax.grad reference adjoints
against central finite differences."""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.correspondences import GraphBuilder, ScalarGraph, fan_out_graph, scalar_mlp


def test_fan_out_graph_forward_values():
    g = fan_out_graph(x=0.7, w=(0.9, -1.3, 0.6), target=0.25)
    values = np.asarray(g.forward())
    h = np.tanh(0.9 * 0.7)
    np.testing.assert_allclose(values[[g.names.index(n) for n in ("h", "s", "y")]],
                               [h, h ** 2, -1.3 * h + 0.6 * h ** 2], rtol=0, atol=1e-15)


@pytest.mark.smoke
@pytest.mark.parametrize("graph", [fan_out_graph(), scalar_mlp((2, 3, 2, 1), seed=3)], ids=["fan-out", "mlp"])
def test_reference_adjoints_match_finite_differences(graph):
    """dL/dv (parents held fixed) by a central difference of the residual e_v; step 1e-5 gives
    truncation ~1e-10 and rounding ~1e-11, hence the 1e-8 tolerance."""
    ref = graph.adjoints_reference()
    h = 1e-5
    for k, v in enumerate(graph.free):
        e = np.zeros(len(graph.free))
        e[k] = h
        fd = (graph.loss_of(jnp.asarray(e)) - graph.loss_of(jnp.asarray(-e))) / (2 * h)
        assert abs(float(fd) - ref[v]) <= 1e-8 * max(1.0, abs(ref[v]))
    for k, v in enumerate(graph.inputs):
        x = np.asarray([graph.clamped[u] for u in graph.inputs])
        dx = np.zeros_like(x)
        dx[k] = h
        fd = (graph.loss_of(None, jnp.asarray(x + dx)) - graph.loss_of(None, jnp.asarray(x - dx))) / (2 * h)
        assert abs(float(fd) - ref[v]) <= 1e-8 * max(1.0, abs(ref[v]))


def test_mlp_has_loops_among_computed_nodes():
    """Two hidden layers: h1_0 and h1_1 both feed h2_0 and h2_1, a cycle in the factor graph."""
    g = scalar_mlp((2, 3, 3, 1))
    h1 = [v for v, n in enumerate(g.names) if n.startswith("h1_")]
    assert all(len([c for c in g.children(u) if g.names[c].startswith("h2_")]) == 3 for u in h1)


def test_bad_graphs_are_rejected():
    b = GraphBuilder()
    x = b.clamp("x", 1.0)
    with pytest.raises(ValueError, match="output must be a computed node"):
        b.build(x, lambda y: y)
    with pytest.raises(ValueError, match="topological order"):
        ScalarGraph(("a", "b"), ((), (1,)), (None, lambda u: u[0]), (1.0, None), 1, lambda y: y)
    with pytest.raises(ValueError, match="unique"):
        ScalarGraph(("a", "a"), ((), (0,)), (None, lambda u: u[0]), (1.0, None), 1, lambda y: y)
    with pytest.raises(ValueError, match="widths"):
        scalar_mlp((2, 3, 2))
    with pytest.raises(ValueError, match="unknown activation"):
        scalar_mlp(activation="relu6")
