"""Gaussian BP on the factor graph of a computation graph: backward messages carry the chain rule.

References: jax.grad of the same graph (the adjoints), and the dense Gaussian posterior by linear
algebra (the BP fixed-point means)."""

import functools

import numpy as np
import pytest

from experiments.correspondences import (
    GraphBuilder,
    dense_posterior,
    fan_out_graph,
    gaussian_belief_propagation,
    linearise,
    scalar_mlp,
)

GRAPHS = {"fan-out": fan_out_graph(), "mlp": scalar_mlp((2, 3, 3, 1), seed=0),
          "deep": scalar_mlp((3, 4, 3, 2, 1), seed=5)}


@functools.lru_cache(maxsize=None)
def reference(graph):
    """jax.grad of the whole graph, once per graph."""
    return graph.adjoints_reference()


def relative_error(graph, beta, eps):
    ref = reference(graph)
    adjoints = gaussian_belief_propagation(graph, beta, eps).adjoints(beta)
    return float(np.max(np.abs(adjoints - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("name", GRAPHS)
def test_backward_messages_over_minus_beta_are_the_adjoints(name):
    """The error is O(beta eps); at beta = eps = 1e-7 it is ~1e-14, so 1e-10 leaves room for rounding."""
    graph = GRAPHS[name]
    result = gaussian_belief_propagation(graph, 1e-7, 1e-7)
    assert result.converged
    assert relative_error(graph, 1e-7, 1e-7) <= 1e-10


@pytest.mark.parametrize("name", GRAPHS)
def test_first_order_in_beta_is_exact_at_finite_eps(name):
    """At eps = 1 (far from deterministic) Richardson in beta, 2 a(beta/2) - a(beta) at beta = 1e-6,
    leaves the O(beta^2) remainder (~1e-12): the first order of eta / (-beta) is dL/dv for any eps."""
    graph = GRAPHS[name]
    ref = reference(graph)
    beta = 1e-6
    a1 = gaussian_belief_propagation(graph, beta, 1.0).adjoints(beta)
    a2 = gaussian_belief_propagation(graph, beta / 2, 1.0).adjoints(beta / 2)
    assert np.max(np.abs(2 * a2 - a1 - ref)) <= 1e-10 * np.max(np.abs(ref))


@pytest.mark.parametrize("name", GRAPHS)
@pytest.mark.parametrize("beta, eps", [(0.3, 0.2), (1.0, 1.0), (0.05, 0.5)])
def test_loopy_fixed_point_means_are_the_dense_posterior(name, beta, eps):
    """Gaussian BP means are exact at a fixed point, loops or not: 1e-12 relative (rounding only)."""
    graph = GRAPHS[name]
    result = gaussian_belief_propagation(graph, beta, eps)
    dense = dense_posterior(graph, beta, eps)
    assert result.converged
    assert np.max(np.abs(result.belief_mean - dense.mean)) <= 1e-12 * np.max(np.abs(dense.mean))


def fitted_order(xs, errors):
    return float(np.polyfit(np.log(xs), np.log(errors), 1)[0])


@pytest.mark.parametrize("name", GRAPHS)
def test_error_is_first_order_in_beta_and_in_eps(name):
    """Expected error C beta eps: fitted slopes within [0.9, 1.1] over two decades each."""
    graph = GRAPHS[name]
    grid = np.logspace(-4, -2, 5)
    in_beta = [relative_error(graph, b, 1e-2) for b in grid]
    in_eps = [relative_error(graph, 1e-2, e) for e in grid]
    assert 0.9 <= fitted_order(grid, in_beta) <= 1.1
    assert 0.9 <= fitted_order(grid, in_eps) <= 1.1


@pytest.mark.parametrize("name", GRAPHS)
def test_belief_mean_shift_is_minus_covariance_times_loss_gradient(name):
    """(mean_v - v*) / beta -> -Cov(v, y) L'(y*) with an O(beta) error (fitted order in [0.9, 1.1])."""
    graph = GRAPHS[name]
    lin = linearise(graph)
    eps = 0.1
    limit = -dense_posterior(graph, 1.0, eps, lin).prior_cov_with_output * lin.loss_gradient
    betas = np.logspace(-4, -2, 5)
    means = [gaussian_belief_propagation(graph, b, eps, lin=lin).belief_mean for b in betas]
    errors = [np.max(np.abs(m / b - limit)) / np.max(np.abs(limit)) for m, b in zip(means, betas)]
    assert errors[0] <= 1e-3
    assert 0.9 <= fitted_order(betas, errors) <= 1.1


def test_bad_parameters_are_rejected():
    graph = fan_out_graph()
    with pytest.raises(ValueError, match="beta > 0 and eps > 0"):
        gaussian_belief_propagation(graph, 0.0, 1e-3)
    b = GraphBuilder()
    x = b.clamp("x", 0.3)
    y = b.node("y", lambda u: 2.0 * u[0], x)
    concave = b.build(y, lambda v: -(v ** 2))
    with pytest.raises(ValueError, match="L''"):
        gaussian_belief_propagation(concave, 0.1, 0.1)
