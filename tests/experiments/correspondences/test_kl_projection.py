"""Backprop as the differential of the KL projection of the loss-tilted Gaussian lift.

Reference: jax.grad of the same graph. The projection is computed from forward evaluations on a
Gauss-Hermite rule; its linear-graph closed form is independent Gaussian algebra."""

import numpy as np
import pytest

from experiments.correspondences import (
    LiftedGraph,
    extrapolated_adjoints,
    fan_out_graph,
    gauss_hermite_rule,
    linear_gaussian_projection,
    projection_adjoints,
    scalar_mlp,
)

LINEAR = scalar_mlp((2, 3, 3, 1), seed=1, activation="identity")
TANH = scalar_mlp((2, 3, 3, 1), seed=1, activation="tanh")


def reference(graph):
    return graph.adjoints_reference()[list(graph.free)]


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_gauss_hermite_rule_moments():
    """E[z_i^2] = 1, E[z_i^4] = 3, E[z_1^2 z_2^2] = 1, odd moments 0 (exact to rounding)."""
    z, w = gauss_hermite_rule(2, 3)
    assert abs(w.sum() - 1) <= 1e-15
    assert abs(w @ z[:, 0] ** 2 - 1) <= 1e-14 and abs(w @ z[:, 1] ** 4 - 3) <= 1e-14
    assert abs(w @ (z[:, 0] ** 2 * z[:, 1] ** 2) - 1) <= 1e-14 and abs(w @ z[:, 0] ** 3) <= 1e-15
    with pytest.raises(ValueError, match="too many"):
        gauss_hermite_rule(30, 5)


@pytest.mark.parametrize("s", [1e-3, 0.1, 1.0, 3.0])
def test_linear_graph_is_exact_at_any_width(s):
    """Linear graph, quadratic loss: dL/de is affine, so the differential / (-s^2) is the adjoint
    exactly; 1e-10 relative (rounding in the quadrature sums)."""
    assert rel(projection_adjoints(LINEAR, s), reference(LINEAR)) <= 1e-10


def test_differential_is_minus_covariance_with_the_loss():
    """jax.jvp of the projection map in beta at 0 equals -Cov_0(e_v, L) on the same rule (1e-13)."""
    lifted = LiftedGraph(TANH, 0.05)
    cov = lifted.covariance_with_loss()
    assert np.max(np.abs(lifted.differential().means + cov)) <= 1e-13 * np.max(np.abs(cov))


def fitted_order(xs, errors):
    return float(np.polyfit(np.log(xs), np.log(errors), 1)[0])


@pytest.mark.parametrize("graph", [TANH, fan_out_graph()], ids=["mlp", "fan-out"])
def test_nonlinear_error_is_second_order_in_width_and_extrapolates_to_the_adjoints(graph):
    """Raw error O(s^2) (fitted order in [1.9, 2.1] over s = 0.1 .. 0.01); Richardson in s^2 over
    three widths from s = 0.03 reaches the adjoints to 1e-10 (the issue's target is 1e-8)."""
    widths = np.array([0.1, 0.05, 0.025, 0.0125])
    errors = [rel(projection_adjoints(graph, s), reference(graph)) for s in widths]
    assert 1.9 <= fitted_order(widths, errors) <= 2.1
    assert rel(extrapolated_adjoints(graph, 0.03, levels=3), reference(graph)) <= 1e-10


def test_finite_tilt_converges_to_the_differential_at_first_order():
    """m(beta) / (-beta s^2) -> dm/dbeta(0) / (-s^2) with an O(beta) gap (order in [0.9, 1.1])."""
    lifted = LiftedGraph(TANH, 0.1)
    limit = lifted.adjoints()
    betas = np.array([1e-1, 1e-2, 1e-3])
    gaps = [rel(lifted.projection(b).means / (-b * 0.1 ** 2), limit) for b in betas]
    assert 0.9 <= fitted_order(betas, gaps) <= 1.1


@pytest.mark.parametrize("beta, s", [(0.1, 0.1), (0.01, 0.2), (0.5, 0.05)])
def test_quadrature_projection_matches_gaussian_algebra_on_a_linear_graph(beta, s):
    """Linear graph: the tilted law is Gaussian; its closed-form moments match the quadrature ones to
    1e-9 relative (the 5-point rule integrates exp(-beta L) only approximately: measured <= 3e-11 for
    beta s^2 <= 4e-3; it is 3e-7 at beta s^2 = 0.02, which is why the tilt is kept small)."""
    closed = linear_gaussian_projection(LINEAR, s, beta)
    quad = LiftedGraph(LINEAR, s).projection(beta)
    assert rel(quad.means, closed.means) <= 1e-9
    assert np.max(np.abs(quad.variances - closed.variances)) <= 1e-9 * s ** 2


def test_bad_width_is_rejected():
    with pytest.raises(ValueError, match="width s"):
        LiftedGraph(TANH, 0.0)


def test_differential_identity_against_differences_of_an_independent_projection():
    """dm/dbeta(0) = -Cov_0(e, L): the left side by central differences of the projection map computed
    on a Gauss-Legendre rule (output residual integrated in closed form), the right side on the
    Gauss-Hermite rule; and the Legendre projection itself against the Hermite one at finite beta."""
    from experiments.correspondences import differential_by_differences, fan_out_graph, tilted_means_legendre

    graph = fan_out_graph()
    for s in (0.2, 0.1):
        covariance = LiftedGraph(graph, s, points=9).covariance_with_loss()
        assert rel(differential_by_differences(graph, s), -covariance) <= 1e-9
    hermite = LiftedGraph(graph, 0.1, points=15).projection(0.5).means
    assert rel(tilted_means_legendre(graph, 0.1, 0.5), hermite) <= 1e-12
