"""Forward vs reverse KL: one Gaussian fitted to a two-mode mixture.

Target `P = 0.5 N(0.25, sP^2) + 0.5 N(0.75, sP^2)`, model `Q = N(mu, s^2)`,
both renormalised on a domain: the unit interval `[0, 1]` of the issue, and
`[-1, 2]` standing in for the real line (mass outside below 1e-8 for every
density the fits reach). Integrals are an `nodes`-point Gauss-Legendre rule
(`experiments.correspondences.kl_directions`).

For each domain and each `sP` in `sigmas`:

- forward `KL(P || Q)` is minimised (trust-region Newton on `(mu, log s)`,
  gradient and Hessian from JAX) from every start in `STARTS`. The truncated
  Gaussians are an exponential family in `(x, x^2)`, so the optimum must match
  the moments of `P`, which are computed in closed form (truncated-normal
  formulas); the mismatch of mean and variance is reported (mass-covering);
- reverse `KL(Q || P)` is minimised from the same starts; every distinct
  stationary point is reported with its value and Hessian eigenvalues, and
  the global one flagged. With well-separated modes the starts on either side
  lock onto the nearer mode (mode-seeking); from the symmetric wide start the
  fit stays at the centre, a local minimum (or on [0, 1] the global one);
  for `sP = 0.1` the modes merge and the centre wins;
- `jax.grad` of the quadrature-discretised cross-entropy
  `-sum_i w_i p_i log q_i` with respect to the vector `q`, divided by `w`, is
  compared with `-P/Q`, and of the reverse KL with `log Q - log P + 1`
  (maximum relative errors; exact identities, float64 rounding expected).

Identities of the text (`identities`, table `kl_identities`), each against an independent
computation (`experiments.correspondences.kl_directions.identity_table`): `D_KL = H(P, Q) - H(P)`
(scipy's `rel_entr` vs `entropy`), the asymmetry, `min_Q H(P, Q)` on the simplex by SLSQP (`Q = P`,
multiplier `lambda = -1`), the gradients `-P/Q` and `log Q - log P + 1` and the Hessian
`diag(P / Q^2)` (positive semi-definite) by central finite differences, the derivatives of the
Gaussian density in `mu` and `sigma` by finite differences of `scipy.stats.norm.pdf`.

Figure: each domain and `sP`, the mixture `P` with the forward fit and the
reverse-KL stationary points. Table: every fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import plots
from ..correspondences import kl_directions as kd
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

STARTS = ((0.4, 0.1), (0.6, 0.1), (0.5, 0.3))
"""Starting points `(mu, s)` of every fit: left of centre, right of centre, wide and symmetric."""

QUICK_SIGMAS = "0.08"


def _floats(text: str, key: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"config key {key!r} must be comma-separated numbers; got {text!r}") from None
    if not values or any(not (np.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"config key {key!r} must hold positive finite numbers; got {text!r}")
    return values


@dataclass(frozen=True)
class KLDirectionsConfig:
    """Defaults of the forward/reverse KL experiment.

    sigmas: comma-separated component widths `sP` of the mixture.
    domains: comma-separated domains (`unit` = [0, 1], `real` = [-1, 2]).
    nodes: Gauss-Legendre nodes of the quadrature.
    seed: seed of the random distributions `P, Q` of the identity table.
    quick: only `sP = 0.08` (the full preset sweeps 0.05, 0.08, 0.1).
    """

    sigmas: str = "0.05,0.08,0.1"
    domains: str = "unit,real"
    nodes: int = 800
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        _floats(self.sigmas, "sigmas")
        for d in self.domain_names():
            if d not in kd.DOMAINS:
                raise ValueError(f"config key 'domains': unknown domain {d!r}; choose from {sorted(kd.DOMAINS)}")
        if self.nodes < 50:
            raise ValueError(f"config key 'nodes' must be >= 50; got {self.nodes}")

    def sigma_values(self) -> tuple[float, ...]:
        return _floats(QUICK_SIGMAS if self.quick else self.sigmas, "sigmas")

    def domain_names(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in self.domains.split(",") if d.strip())


def _distinct(fits: list[kd.Fit], tol: float = 1e-6) -> list[kd.Fit]:
    """The fits whose `(mu, s)` differ by more than `tol` from every earlier one."""
    kept: list[kd.Fit] = []
    for f in fits:
        if all(abs(f.mu - g.mu) > tol or abs(f.s - g.s) > tol for g in kept):
            kept.append(f)
    return kept


def _fit_record(f: kd.Fit) -> dict:
    return {"start": list(f.start), "mu": f.mu, "s": f.s, "value": f.value, "grad_norm": f.grad_norm,
            "hessian_eigenvalues": list(f.hessian_eigenvalues), "kind": f.kind, "iterations": f.iterations}


def measure_case(domain: str, sigma_p: float, nodes: int) -> dict:
    """Forward and reverse fits, moment checks and functional derivatives for one `(domain, sP)`."""
    quad = kd.quadrature(domain, nodes)
    mean_p, var_p = kd.mixture_moments(sigma_p, domain)
    forward = [kd.fit("forward", sigma_p, quad, start) for start in STARTS]
    reverse = [kd.fit("reverse", sigma_p, quad, start) for start in STARTS]
    best_forward = min(forward, key=lambda f: f.value)
    mean_q, var_q = kd.gaussian_moments(best_forward.mu, best_forward.s, domain)
    stationary = _distinct(reverse)
    best_reverse = min(stationary, key=lambda f: f.value)
    derivatives = [kd.functional_derivatives(f.mu, f.s, sigma_p, quad) for f in (*forward, *reverse)]
    return {
        "domain": domain,
        "interval": list(kd.DOMAINS[domain]),
        "sigma_p": sigma_p,
        "mixture_moments": {"mean": mean_p, "variance": var_p},
        "forward": {
            "fits": [_fit_record(f) for f in forward],
            "mu": best_forward.mu,
            "s": best_forward.s,
            "value": best_forward.value,
            "fitted_mean": mean_q,
            "fitted_variance": var_q,
            "mean_error": abs(mean_q - mean_p),
            "variance_relative_error": abs(var_q - var_p) / var_p,
            "start_spread": max(max(abs(f.mu - best_forward.mu), abs(f.s - best_forward.s)) for f in forward),
        },
        "reverse": {
            "fits": [_fit_record(f) for f in reverse],
            "stationary_points": [_fit_record(f) for f in stationary],
            "global": _fit_record(best_reverse),
            "global_at_a_mode": bool(min(abs(best_reverse.mu - m) for m in kd.MODES) < 0.05),
            "start_dependent": len(stationary) > 1,
        },
        "functional_derivatives": {
            "cross_entropy_max_relative_error": max(d["cross_entropy_relative_error"] for d in derivatives),
            "reverse_kl_max_relative_error": max(d["reverse_kl_relative_error"] for d in derivatives),
        },
    }


def identities_table(rows: list[dict]) -> Table:
    """The identities of the KL / cross-entropy text against independent computations."""
    return Table(columns=["identity", "measured", "error", "independent computation"],
                 rows=[[r["identity"], r["measured"], "-" if r["error"] is None else r["error"], r["reference"]]
                       for r in rows],
                 caption="KL divergence and cross entropy (dokuDoku): identities on random P, Q over 6 outcomes",
                 label="tab:kl-identities", digits=3)


def run(config: KLDirectionsConfig, folder: RunFolder, progress: Progress) -> dict:
    """Every `(domain, sP)` case, then the figure and the table."""
    cases = [(d, s) for s in config.sigma_values() for d in config.domain_names()]
    total = len(cases) + 2
    results = []
    for i, (domain, sigma_p) in enumerate(cases):
        progress(i, total, f"fits on {domain} with sP = {sigma_p}")
        case = measure_case(domain, sigma_p, config.nodes)
        results.append(case)
        fw, rv = case["forward"], case["reverse"]
        folder.log(f"{domain} sP={sigma_p}: forward mu={fw['mu']:.6f} s={fw['s']:.6f} (moment errors "
                   f"{fw['mean_error']:.1e}, {fw['variance_relative_error']:.1e}); reverse stationary points "
                   + ", ".join(f"mu={p['mu']:.4f} s={p['s']:.4f} KL={p['value']:.4f} ({p['kind']})"
                               for p in rv["stationary_points"]))
    progress(len(cases), total, "figure: fits over the mixture")
    folder.save_figure(fits_figure(results), "kl_fits")
    progress(len(cases) + 1, total, "table: every fit")
    folder.save_table(fits_table(results), "kl_fits")
    identities = kd.identity_table(config.seed)
    folder.save_table(identities_table(identities), "kl_identities")
    for row in identities:
        folder.log(f"{row['identity']}: measured {row['measured']:.6g}, error {row['error']}")
    progress(total, total, "done")
    worst = lambda key, sub: max(c[key][sub] for c in results)  # noqa: E731
    return {
        "cases": results,
        "identities": identities,
        "summary": {
            "forward_max_mean_error": worst("forward", "mean_error"),
            "forward_max_variance_relative_error": worst("forward", "variance_relative_error"),
            "cross_entropy_derivative_max_relative_error":
                worst("functional_derivatives", "cross_entropy_max_relative_error"),
            "reverse_kl_derivative_max_relative_error":
                worst("functional_derivatives", "reverse_kl_max_relative_error"),
            "identities_max_error": max(r["error"] for r in identities if r["error"] is not None),
        },
    }


def fits_figure(cases: list[dict]):
    """One panel per `(sP, domain)`: `P`, the forward fit, and each reverse stationary point."""
    import jax.numpy as jnp

    domains = list(dict.fromkeys(c["domain"] for c in cases))
    sigmas = list(dict.fromkeys(c["sigma_p"] for c in cases))
    fig, axes = plots.figure(ncols=len(domains), nrows=len(sigmas), panel_size=(4.6, 3.2))
    for case in cases:
        ax = axes[sigmas.index(case["sigma_p"]) * len(domains) + domains.index(case["domain"])]
        lo, hi = case["interval"]
        x = np.linspace(lo, hi, 1201)
        ax.plot(x, np.exp(kd.log_mixture(jnp.asarray(x), case["sigma_p"], lo, hi)), color=plots.OKABE_ITO["black"],
                lw=2.0, label="mixture $P$")
        fw = case["forward"]
        ax.plot(x, np.exp(kd.log_gaussian(jnp.asarray(x), fw["mu"], fw["s"], lo, hi)), ls="--",
                label=rf"forward KL$(P\|Q)$: $\mu$={fw['mu']:.3f}, $s$={fw['s']:.3f}")
        for p in case["reverse"]["stationary_points"]:
            tag = " (global)" if p["value"] <= case["reverse"]["global"]["value"] + 1e-9 else ""
            ax.plot(x, np.exp(kd.log_gaussian(jnp.asarray(x), p["mu"], p["s"], lo, hi)),
                    label=rf"reverse from $\mu_0$={p['start'][0]:g}, $s_0$={p['start'][1]:g}: KL {p['value']:.3f}{tag}")
        ax.set_xlim(lo, hi) if case["domain"] == "unit" else ax.set_xlim(-0.3, 1.3)
        ax.set_xlabel("$x$")
        ax.set_ylabel("density")
        ax.set_title(f"{'[0, 1]' if case['domain'] == 'unit' else 'real line'}, $s_P$ = {case['sigma_p']:g}")
        ax.legend(loc="upper center", fontsize=5.5)
    return fig


def fits_table(cases: list[dict]) -> Table:
    """Every fit: domain, sP, divergence, start, optimum, value, gradient norm, Hessian type."""
    rows = []
    for c in cases:
        for name in ("forward", "reverse"):
            for f in c[name]["fits"]:
                rows.append([c["domain"], c["sigma_p"], name, f"({f['start'][0]:g}, {f['start'][1]:g})",
                             f["mu"], f["s"], f["value"], f["grad_norm"], f["kind"]])
    return Table(
        columns=["domain", "sP", "divergence", "start (mu, s)", "mu", "s", "KL", "|grad|", "stationary point"],
        rows=rows,
        caption="Gaussian fits to the two-mode mixture by forward and reverse KL (Gauss-Legendre quadrature, float64)",
        label="tab:kl-directions",
        digits=4,
    )


EXPERIMENT = Experiment(
    name="kl-directions",
    description="forward KL covers both modes (moment matching), reverse KL locks onto one; dCE/dQ = -P/Q",
    config=KLDirectionsConfig(),
    run=run,
    headline=(
        "summary.forward_max_mean_error",
        "summary.forward_max_variance_relative_error",
        "summary.cross_entropy_derivative_max_relative_error",
        "summary.reverse_kl_derivative_max_relative_error",
    ),
    figures={"kl_directions_kl_fits": "kl_fits"},
)
