"""Forward vs reverse KL: closed-form moments, independent Nelder-Mead fits, functional derivatives."""

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from experiments.correspondences import kl_directions as kd


def _quad_kl(divergence, mu, s, sigma_p, lo, hi, points=20001):
    """KL by Simpson's rule on a dense uniform grid with scipy.stats densities (numpy): independent
    of the module's JAX Gauss-Legendre code."""
    x = np.linspace(lo, hi, points)
    zp = np.mean([stats.norm.cdf(hi, m, sigma_p) - stats.norm.cdf(lo, m, sigma_p) for m in kd.MODES])
    zq = stats.norm.cdf(hi, mu, s) - stats.norm.cdf(lo, mu, s)
    log_p = np.logaddexp(stats.norm.logpdf(x, 0.25, sigma_p), stats.norm.logpdf(x, 0.75, sigma_p)) - np.log(2 * zp)
    log_q = stats.norm.logpdf(x, mu, s) - np.log(zq)
    integrand = np.exp(log_p) * (log_p - log_q) if divergence == "forward" else np.exp(log_q) * (log_q - log_p)
    return integrate.simpson(integrand, x=x)


def _nelder_mead(divergence, sigma_p, domain, start):
    lo, hi = kd.DOMAINS[domain]
    res = optimize.minimize(lambda v: _quad_kl(divergence, v[0], np.exp(v[1]), sigma_p, lo, hi),
                            [start[0], np.log(start[1])], method="Nelder-Mead",
                            options={"xatol": 1e-7, "fatol": 1e-12, "maxiter": 2000})
    return res.x[0], np.exp(res.x[1]), res.fun


@pytest.mark.parametrize("mean,sigma,lo,hi", [(0.25, 0.08, 0.0, 1.0), (0.9, 0.3, 0.0, 1.0), (0.5, 0.262, -1.0, 2.0)])
def test_truncated_normal_moments_match_scipy(mean, sigma, lo, hi):
    mass, m, v = kd.truncated_normal_moments(mean, sigma, lo, hi)
    ref = stats.truncnorm((lo - mean) / sigma, (hi - mean) / sigma, loc=mean, scale=sigma)
    # closed forms against scipy's implementation: agreement to rounding
    assert abs(m - ref.mean()) <= 1e-13 and abs(v - ref.var()) <= 1e-13
    assert abs(mass - (stats.norm.cdf(hi, mean, sigma) - stats.norm.cdf(lo, mean, sigma))) <= 1e-15


@pytest.mark.parametrize("sigma_p", [0.05, 0.08, 0.1])
def test_real_line_mixture_moments(sigma_p):
    mean, var = kd.mixture_moments(sigma_p, "real")
    # [-1, 2] holds all but ~1e-40 of the mass: the untruncated moments 0.5 and sP^2 + 1/16
    assert abs(mean - 0.5) <= 1e-14 and abs(var - (sigma_p**2 + 1 / 16)) <= 1e-14


# Each fit compiles its objective on one domain's quadrature (4-8 s on one core): the default suite
# fits on the unit interval, the real line and the independent Nelder-Mead checks run with `-m slow`.
SLOW = pytest.mark.slow


@pytest.mark.parametrize("domain", ["unit", pytest.param("real", marks=SLOW)])
def test_forward_kl_matches_moments_from_every_start(domain):
    sigma_p = 0.08
    quad = kd.quadrature(domain)
    mean_p, var_p = kd.mixture_moments(sigma_p, domain)
    for start in [(0.4, 0.1), (0.6, 0.1), (0.5, 0.3)]:
        f = kd.fit("forward", sigma_p, quad, start)
        mean_q, var_q = kd.gaussian_moments(f.mu, f.s, domain)
        # exponential-family stationarity: exact moment matching up to the optimiser's gtol and quadrature rounding
        assert abs(mean_q - mean_p) <= 1e-10 and abs(var_q - var_p) <= 1e-10 * var_p
        assert f.kind == "minimum"
    if domain == "real":
        # truncating Q at [-1, 2] moves s by ~1e-8 (mass of N(0.5, 0.262^2) outside is ~6e-9)
        assert abs(f.s - np.sqrt(sigma_p**2 + 1 / 16)) <= 1e-6


@SLOW
def test_forward_fit_on_unit_interval_agrees_with_independent_nelder_mead():
    f = kd.fit("forward", 0.08, kd.quadrature("unit"), (0.4, 0.1))
    mu, s, value = _nelder_mead("forward", 0.08, "unit", (0.4, 0.1))
    # Nelder-Mead xatol 1e-7 on a flat optimum: 1e-5 in (mu, s); values to Simpson's ~1e-10
    assert abs(f.mu - mu) <= 1e-5 and abs(f.s - s) <= 1e-5 and abs(f.value - value) <= 1e-9
    assert round(f.s, 3) == 0.420  # the spec's table


@pytest.mark.parametrize("domain,start,expected", [
    ("unit", (0.4, 0.1), (0.251, 0.081, 0.6903)),
    pytest.param("real", (0.4, 0.1), (0.251, 0.081, 0.6903), marks=SLOW),
    pytest.param("real", (0.5, 0.3), (0.500, 0.227, 0.947), marks=SLOW),
    pytest.param("unit", (0.5, 0.3), (0.500, 0.446, 0.657), marks=SLOW),
])
def test_reverse_kl_stationary_points(domain, start, expected):
    f = kd.fit("reverse", 0.08, kd.quadrature(domain), start)
    mu, s, value = _nelder_mead("reverse", 0.08, domain, start)
    assert abs(f.mu - mu) <= 1e-5 and abs(f.s - s) <= 1e-5 and abs(f.value - value) <= 1e-9
    assert (round(f.mu, 3), round(f.s, 3)) == expected[:2]
    assert abs(f.value - expected[2]) <= 5e-4  # the spec's table is rounded
    assert f.grad_norm <= 1e-10 and f.kind == "minimum"


@SLOW
def test_reverse_kl_is_mode_seeking_and_start_dependent():
    quad = kd.quadrature("real")
    left, right = (kd.fit("reverse", 0.08, quad, s) for s in [(0.4, 0.1), (0.6, 0.1)])
    assert abs(left.mu - 0.25) < 0.01 and abs(right.mu - 0.75) < 0.01
    # mirror symmetry x -> 1 - x of P about 0.5 (domain [-1, 2] is symmetric too)
    assert abs(left.mu + right.mu - 1) <= 1e-8 and abs(left.s - right.s) <= 1e-8


@pytest.mark.parametrize("domain", ["unit", pytest.param("real", marks=SLOW)])
def test_functional_derivatives_are_minus_p_over_q_and_log_ratio_plus_one(domain):
    errors = kd.functional_derivatives(0.3, 0.15, 0.08, kd.quadrature(domain))
    # exact identities; elementwise float64 rounding of a product, a quotient and a log
    assert errors["cross_entropy_relative_error"] <= 1e-14
    assert errors["reverse_kl_relative_error"] <= 1e-14


def test_bad_inputs_are_rejected():
    quad = kd.quadrature("unit", 100)
    with pytest.raises(ValueError, match="unknown domain"):
        kd.quadrature("sphere")
    with pytest.raises(ValueError, match="sigma_p"):
        kd.fit("forward", -0.1, quad, (0.5, 0.1))
    with pytest.raises(ValueError, match="unknown divergence"):
        kd.fit("sideways", 0.08, quad, (0.5, 0.1))
    with pytest.raises(ValueError, match="lo < hi"):
        kd.quadrature((1.0, 0.0))


def test_identity_table_of_the_kl_text():
    """Each identity against its independent computation (scipy entropies, SLSQP, finite differences)."""
    from experiments.correspondences.kl_directions import identity_table

    rows = {r["identity"]: r for r in identity_table(seed=3)}
    assert rows["D_KL(P||Q) = H(P,Q) - H(P)"]["error"] <= 1e-14
    assert abs(rows["D_KL(P||Q) - D_KL(Q||P) (asymmetry, not zero)"]["measured"]) > 1e-3
    assert rows["argmin_Q H(P,Q) on the simplex = P"]["error"] <= 1e-8
    assert rows["Lagrange multiplier lambda = -1"]["error"] <= 1e-8
    assert rows["Hessian of H(P,Q) in Q = diag(P/Q^2)"]["measured"] > 0  # smallest eigenvalue
    for name, row in rows.items():
        if row["error"] is not None and "argmin" not in name and "Lagrange" not in name:
            assert row["error"] <= 1e-8, name
