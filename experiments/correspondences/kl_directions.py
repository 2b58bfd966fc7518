"""Forward and reverse KL: fitting one Gaussian to a two-mode mixture.

Target `P = 0.5 N(0.25, sP^2) + 0.5 N(0.75, sP^2)` and model `Q = N(mu, s^2)`,
both restricted to a domain `[lo, hi]` and renormalised there (the unit
interval `[0, 1]`, or `[-1, 2]`, where every density the fits visit has mass
outside below 1e-8, standing in for the real line):

    p(x) = sum_i w_i phi((x - m_i) / sP) / (sP Z_P),   q(x) = phi((x - mu) / s) / (s Z_Q),
    Z_Q  = Phi((hi - mu) / s) - Phi((lo - mu) / s)

Integrals are Gauss-Legendre quadratures with nodes `x_i` and weights `w_i` on
`[lo, hi]` (`quadrature`), `int g = sum_i w_i g(x_i)`:

    forward  KL(P || Q) = sum_i w_i p_i (log p_i - log q_i)     (mass-covering)
    reverse  KL(Q || P) = sum_i w_i q_i (log q_i - log p_i)     (mode-seeking)

The truncated Gaussians on `[lo, hi]` are an exponential family with
sufficient statistics `(x, x^2)`, so the forward-KL optimum matches moments:
`E_Q[x] = E_P[x]`, `Var_Q = Var_P`, with both sides in closed form
(`truncated_normal_moments`, `mixture_moments`). On the real line that is
`mu = 0.5`, `s^2 = sP^2 + 1/16`.

Functional derivatives on the quadrature grid: as functions of the vector
`q_i`, `d/dq_i [-sum_j w_j p_j log q_j] = -w_i p_i / q_i` and
`d/dq_i KL(Q || P) = w_i (log q_i - log p_i + 1)`; dividing `jax.grad` by
`w_i` must give `-P/Q` and `log Q - log P + 1` (`functional_derivatives`).

Fits (`fit`): Newton-type trust region (`scipy.optimize.minimize`,
``trust-exact``) on `(mu, log s)` with the gradient and Hessian from JAX,
run from several starts; each stationary point is classified by the
eigenvalues of its Hessian.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from scipy import optimize, special

MODES = (0.25, 0.75)
"""Component means of the mixture `P`."""

DOMAINS = {"unit": (0.0, 1.0), "real": (-1.0, 2.0)}
"""Named domains `[lo, hi]`: the unit interval of the issue and a stand-in for the real line."""

DIVERGENCES = ("forward", "reverse")


class Quadrature(NamedTuple):
    """Gauss-Legendre nodes `x` and weights `w` on `[lo, hi]`, shapes `(n,)`."""

    x: np.ndarray
    w: np.ndarray
    lo: float
    hi: float


def quadrature(domain: str | tuple[float, float], nodes: int = 800) -> Quadrature:
    """`nodes`-point Gauss-Legendre rule on a named domain or on `(lo, hi)`.

    Example:
        >>> rule = quadrature((0.0, 1.0), nodes=50)
        >>> round(float(np.sum(rule.w * rule.x ** 2)), 12)      # integral of x^2 over [0, 1]
        0.333333333333
    """
    lo, hi = _domain(domain)
    if int(nodes) < 2:
        raise ValueError(f"quadrature needs at least 2 nodes; got {nodes}")
    t, w = np.polynomial.legendre.leggauss(int(nodes))
    half = 0.5 * (hi - lo)
    return Quadrature(x=lo + half * (t + 1.0), w=half * w, lo=lo, hi=hi)


def _domain(domain) -> tuple[float, float]:
    if isinstance(domain, str):
        try:
            return DOMAINS[domain]
        except KeyError:
            raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(DOMAINS)}") from None
    lo, hi = map(float, domain)
    if not lo < hi:
        raise ValueError(f"domain needs lo < hi; got ({lo}, {hi})")
    return lo, hi


def _check_sigma(sigma: float, name: str = "sigma") -> float:
    sigma = float(sigma)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"{name} must be a finite positive number; got {sigma}")
    return sigma


def log_mixture(x, sigma_p: float, lo: float, hi: float, modes=MODES):
    """`log p(x)` of the equal-weight mixture of `N(m_i, sigma_p^2)` renormalised on `[lo, hi]`."""
    modes = jnp.asarray(modes, dtype=jnp.float64)
    z = (x[..., None] - modes) / sigma_p
    log_components = -0.5 * z**2 - jnp.log(sigma_p * jnp.sqrt(2 * jnp.pi))
    mass = jnp.mean(ndtr((hi - modes) / sigma_p) - ndtr((lo - modes) / sigma_p))
    return jax.scipy.special.logsumexp(log_components, axis=-1) - jnp.log(len(modes)) - jnp.log(mass)


def log_gaussian(x, mu, s, lo: float, hi: float):
    """`log q(x)` of `N(mu, s^2)` renormalised on `[lo, hi]` (closed-form mass `Z_Q`)."""
    mass = ndtr((hi - mu) / s) - ndtr((lo - mu) / s)
    return -0.5 * ((x - mu) / s) ** 2 - jnp.log(s * jnp.sqrt(2 * jnp.pi)) - jnp.log(mass)


def kl(divergence: str, params, sigma_p: float, quad: Quadrature):
    """`KL(P || Q)` (``forward``) or `KL(Q || P)` (``reverse``) at `params = (mu, log s)`."""
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; choose one of {DIVERGENCES}")
    return _kl(divergence, jnp.asarray(params), sigma_p, quad.x, quad.w, quad.lo, quad.hi)


def _kl_value(divergence, params, sigma_p, x, w, lo, hi):
    mu, s = params[0], jnp.exp(params[1])
    log_p = log_mixture(x, sigma_p, lo, hi)
    log_q = log_gaussian(x, mu, s, lo, hi)
    if divergence == "forward":
        return jnp.sum(w * jnp.exp(log_p) * (log_p - log_q))
    return jnp.sum(w * jnp.exp(log_q) * (log_q - log_p))


_kl = jax.jit(_kl_value, static_argnums=0)
_kl_grad = jax.jit(jax.grad(_kl_value, argnums=1), static_argnums=0)
_kl_hessian = jax.jit(jax.hessian(_kl_value, argnums=1), static_argnums=0)


# --- closed-form moments ---------------------------------------------------------------------


def truncated_normal_moments(mean: float, sigma: float, lo: float, hi: float) -> tuple[float, float, float]:
    """`(mass, mean, variance)` of `N(mean, sigma^2)` restricted to `[lo, hi]`:

        a = (lo - m)/s, b = (hi - m)/s, Z = Phi(b) - Phi(a),
        E = m + s (phi(a) - phi(b)) / Z,
        Var = s^2 [1 + (a phi(a) - b phi(b)) / Z - ((phi(a) - phi(b)) / Z)^2].

    Example:
        >>> mass, mean, variance = truncated_normal_moments(0.0, 1.0, -10.0, 10.0)   # untruncated in effect
        >>> round(float(mass), 12), round(float(mean), 12), round(float(variance), 12)
        (1.0, 0.0, 1.0)
    """
    sigma = _check_sigma(sigma)
    a, b = (lo - mean) / sigma, (hi - mean) / sigma
    phi = lambda u: np.exp(-0.5 * u * u) / np.sqrt(2 * np.pi) if np.isfinite(u) else 0.0  # noqa: E731
    a_phi = a * phi(a) if np.isfinite(a) else 0.0
    b_phi = b * phi(b) if np.isfinite(b) else 0.0
    mass = float(special.ndtr(b) - special.ndtr(a))
    ratio = (phi(a) - phi(b)) / mass
    return mass, mean + sigma * ratio, sigma**2 * (1.0 + (a_phi - b_phi) / mass - ratio**2)


def mixture_moments(sigma_p: float, domain, modes=MODES) -> tuple[float, float]:
    """`(mean, variance)` of the equal-weight mixture renormalised on the domain, in closed form
    (component masses re-weight the truncated component moments)."""
    lo, hi = _domain(domain)
    parts = [truncated_normal_moments(m, sigma_p, lo, hi) for m in modes]
    masses = np.array([p[0] for p in parts])
    pi = masses / masses.sum()
    means = np.array([p[1] for p in parts])
    second = np.array([p[2] + p[1] ** 2 for p in parts])
    mean = float(pi @ means)
    return mean, float(pi @ second - mean**2)


# --- fits -------------------------------------------------------------------------------------


class Fit(NamedTuple):
    """A stationary point of one divergence from one start."""

    divergence: str
    start: tuple[float, float]
    mu: float
    s: float
    value: float
    grad_norm: float
    hessian_eigenvalues: tuple[float, float]
    iterations: int

    @property
    def kind(self) -> str:
        """``minimum`` if both Hessian eigenvalues (in `(mu, log s)`) are positive, else ``saddle``."""
        return "minimum" if min(self.hessian_eigenvalues) > 0 else "saddle"


def fit(divergence: str, sigma_p: float, quad: Quadrature, start: tuple[float, float], gtol: float = 1e-12) -> Fit:
    """Minimise the divergence over `(mu, log s)` from `start = (mu0, s0)` (trust-region Newton)."""
    sigma_p = _check_sigma(sigma_p, "sigma_p")
    _check_sigma(start[1], "start s")
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; choose one of {DIVERGENCES}")
    args = (sigma_p, quad.x, quad.w, quad.lo, quad.hi)
    objective = lambda th: float(_kl(divergence, th, *args))  # noqa: E731
    gradient = lambda th: np.asarray(_kl_grad(divergence, th, *args))  # noqa: E731
    hessian = lambda th: np.asarray(_kl_hessian(divergence, th, *args))  # noqa: E731
    x0 = np.array([start[0], np.log(start[1])])
    result = optimize.minimize(objective, x0, jac=gradient, hess=hessian, method="trust-exact",
                               options={"gtol": gtol, "maxiter": 500})
    th, iterations = result.x, int(result.nit)
    for _ in range(20):  # Newton polish: trust-exact may stop at a rounding-limited step first
        if np.linalg.norm(gradient(th)) <= gtol:
            break
        candidate = th - np.linalg.solve(hessian(th), gradient(th))
        if not np.linalg.norm(gradient(candidate)) < np.linalg.norm(gradient(th)):
            break
        th, iterations = candidate, iterations + 1
    eig = np.linalg.eigvalsh(hessian(th))
    return Fit(
        divergence=divergence, start=(float(start[0]), float(start[1])), mu=float(th[0]), s=float(np.exp(th[1])),
        value=objective(th), grad_norm=float(np.linalg.norm(gradient(th))),
        hessian_eigenvalues=(float(eig[0]), float(eig[1])), iterations=iterations,
    )


def gaussian_moments(mu: float, s: float, domain) -> tuple[float, float]:
    """`(mean, variance)` of `N(mu, s^2)` renormalised on the domain (closed form).

    Example:
        >>> mean, variance = gaussian_moments(0.5, 0.01, (0.0, 1.0))     # narrow: the truncation is invisible
        >>> round(float(mean), 12), round(float(variance), 12)
        (0.5, 0.0001)
    """
    lo, hi = _domain(domain)
    _, mean, var = truncated_normal_moments(mu, s, lo, hi)
    return mean, var


# --- functional derivatives -------------------------------------------------------------------


def functional_derivatives(mu: float, s: float, sigma_p: float, quad: Quadrature) -> dict:
    """Max relative errors of `jax.grad` of the discretised functionals against their closed forms.

    `cross_entropy`: `grad_q [-sum_i w_i p_i log q_i] / w = -p/q`;
    `reverse_kl`:    `grad_q [sum_i w_i q_i (log q_i - log p_i)] / w = log q - log p + 1`.
    Relative errors: elementwise `max_i |g_i - c_i| / |c_i|` for the cross-entropy (`c_i < 0`
    everywhere) and `max_i |g_i - c_i| / max_i |c_i|` for the reverse KL (whose `c_i` crosses zero).
    """
    ce, rev = _derivative_errors(mu, s, sigma_p, quad.x, quad.w, quad.lo, quad.hi)
    return {"cross_entropy_relative_error": float(ce), "reverse_kl_relative_error": float(rev)}


@jax.jit
def _derivative_errors(mu, s, sigma_p, x, w, lo, hi):
    p = jnp.exp(log_mixture(x, sigma_p, lo, hi))
    q = jnp.exp(log_gaussian(x, mu, s, lo, hi))
    ce = jax.grad(lambda qv: -jnp.sum(w * p * jnp.log(qv)))(q) / w
    rev = jax.grad(lambda qv: jnp.sum(w * qv * (jnp.log(qv) - jnp.log(p))))(q) / w
    ce_exact, rev_exact = -p / q, jnp.log(q) - jnp.log(p) + 1.0
    return (jnp.max(jnp.abs(ce - ce_exact) / jnp.abs(ce_exact)),
            jnp.max(jnp.abs(rev - rev_exact)) / jnp.max(jnp.abs(rev_exact)))


# --- the identities of the KL / cross-entropy text, each against an independent computation ---


def identity_table(seed: int = 0, n: int = 6) -> list[dict]:
    """The identities of "KL-Divergence and Cross Entropy" on random distributions `P, Q` over `n`
    outcomes, each with its error against a computation that does not use it:

    - `D_KL(P||Q) = H(P, Q) - H(P)`: `scipy.special.rel_entr` summed against `scipy.stats.entropy`'s
      cross-entropy and entropy;
    - asymmetry `D_KL(P||Q) != D_KL(Q||P)`: both values (the "error" is their difference, which is
      not zero);
    - `D_KL(P||P) = 0` and `H(P, P) = H(P)`;
    - `min_Q H(P, Q)` on the simplex: SLSQP gives `Q = P` and the KKT multiplier `lambda = -1` of
      `sum Q = 1` (scipy's convention `grad f = lambda grad g`, the text's `h = f - lambda (g - c)`);
    - `dH(P, Q)/dQ_i = -P_i/Q_i` and `dD_KL(Q||P)/dQ_i = log Q_i - log P_i + 1`: central finite
      differences of the sums;
    - the Hessian of `H(P, Q)` in `Q` is `diag(P / Q^2)`, positive semi-definite: finite differences
      of the closed-form gradient, and its smallest eigenvalue;
    - derivatives of the Gaussian density, `df/dmu = (x - mu) f / sigma^2` and
      `df/dsigma = f (-1/sigma + (x - mu)^2 / sigma^3)`: central finite differences of
      `scipy.stats.norm.pdf` on a grid.

    Each row: `identity`, `measured` (the value the identity predicts, or a summary), `error`,
    `reference` (how the independent side is computed).
    """
    from scipy import stats

    rng = np.random.default_rng(seed)
    P, Q = rng.dirichlet(np.full(n, 4.0)), rng.dirichlet(np.full(n, 4.0))  # no outcome nearly impossible
    rows = []
    kl_pq = float(np.sum(special.rel_entr(P, Q)))
    kl_qp = float(np.sum(special.rel_entr(Q, P)))
    cross, entropy = float(stats.entropy(P) + stats.entropy(P, Q)), float(stats.entropy(P))
    rows.append({"identity": "D_KL(P||Q) = H(P,Q) - H(P)", "measured": kl_pq, "error": abs(kl_pq - (cross - entropy)),
                 "reference": "scipy.special.rel_entr vs scipy.stats.entropy"})
    rows.append({"identity": "D_KL(P||Q) - D_KL(Q||P) (asymmetry, not zero)", "measured": kl_pq - kl_qp,
                 "error": None, "reference": "scipy.special.rel_entr both ways"})
    rows.append({"identity": "D_KL(P||P) = 0, H(P,P) = H(P)", "measured": float(np.sum(special.rel_entr(P, P))),
                 "error": abs(float(-np.sum(P * np.log(P))) - entropy), "reference": "scipy.stats.entropy"})
    res = optimize.minimize(lambda q: -float(P @ np.log(q)), np.full(n, 1.0 / n), jac=lambda q: -P / q,
                            method="SLSQP", bounds=[(1e-12, 1.0)] * n,
                            constraints=[{"type": "eq", "fun": lambda q: np.array([q.sum() - 1.0]),
                                          "jac": lambda q: np.ones((1, n))}],
                            options={"ftol": 1e-16, "maxiter": 500})
    lam = float(np.asarray(res.multipliers["eq"] if isinstance(res.multipliers, dict) else res.multipliers)[0])
    rows.append({"identity": "argmin_Q H(P,Q) on the simplex = P", "measured": float(np.max(np.abs(res.x - P))),
                 "error": float(np.max(np.abs(res.x - P))), "reference": "scipy.optimize SLSQP"})
    rows.append({"identity": "Lagrange multiplier lambda = -1", "measured": lam, "error": abs(lam + 1.0),
                 "reference": "SLSQP's KKT multiplier"})
    h = 1e-5
    eye = np.eye(n) * Q  # steps relative to each Q_i
    cross_of = lambda q: -float(P @ np.log(q))  # noqa: E731
    rkl_of = lambda q: float(np.sum(q * np.log(q / P)))  # noqa: E731
    fd_cross = np.array([(cross_of(Q + h * e) - cross_of(Q - h * e)) / (2 * h * q) for e, q in zip(eye, Q)])
    fd_rkl = np.array([(rkl_of(Q + h * e) - rkl_of(Q - h * e)) / (2 * h * q) for e, q in zip(eye, Q)])
    rows.append({"identity": "dH(P,Q)/dQ_i = -P_i/Q_i", "measured": float(np.max(np.abs(P / Q))),
                 "error": float(np.max(np.abs(fd_cross + P / Q)) / np.max(np.abs(P / Q))),
                 "reference": "central differences (relative)"})
    rows.append({"identity": "dD_KL(Q||P)/dQ_i = log Q_i - log P_i + 1",
                 "measured": float(np.max(np.abs(np.log(Q / P) + 1))),
                 "error": float(np.max(np.abs(fd_rkl - (np.log(Q / P) + 1))) / np.max(np.abs(np.log(Q / P) + 1))),
                 "reference": "central differences (relative)"})
    hess = np.array([(-P / (Q + h * e) + P / (Q - h * e)) / (2 * h * q) for e, q in zip(eye, Q)])
    closed = np.diag(P / Q ** 2)
    rows.append({"identity": "Hessian of H(P,Q) in Q = diag(P/Q^2)",
                 "measured": float(np.linalg.eigvalsh(0.5 * (hess + hess.T)).min()),
                 "error": float(np.max(np.abs(hess - closed)) / np.max(np.abs(closed))),
                 "reference": "central differences of -P/Q (relative); measured = smallest eigenvalue (>= 0)"})
    h = 1e-5
    x = np.linspace(-3.0, 4.0, 57)
    mu, sigma = 0.4, 1.3
    f = stats.norm.pdf(x, mu, sigma)
    fd_mu = (stats.norm.pdf(x, mu + h, sigma) - stats.norm.pdf(x, mu - h, sigma)) / (2 * h)
    fd_sigma = (stats.norm.pdf(x, mu, sigma + h) - stats.norm.pdf(x, mu, sigma - h)) / (2 * h)
    d_mu = (x - mu) / sigma ** 2 * f
    d_sigma = f * (-1.0 / sigma + (x - mu) ** 2 / sigma ** 3)
    rows.append({"identity": "df/dmu = (x - mu) f / sigma^2 (Gaussian density)", "measured": float(np.max(np.abs(d_mu))),
                 "error": float(np.max(np.abs(fd_mu - d_mu)) / np.max(np.abs(d_mu))),
                 "reference": "central differences of scipy.stats.norm.pdf (relative)"})
    rows.append({"identity": "df/dsigma = f (-1/sigma + (x - mu)^2/sigma^3)", "measured": float(np.max(np.abs(d_sigma))),
                 "error": float(np.max(np.abs(fd_sigma - d_sigma)) / np.max(np.abs(d_sigma))),
                 "reference": "central differences of scipy.stats.norm.pdf (relative)"})
    return rows
