"""Backprop as the differential of a KL projection (the first part of "Backpropagation from KL
Projections"), in the checkable version of the spec (section 3).

Lift every computed node of a scalar computation graph to a Gaussian, `v = g_v(u) + e_v` with
independent residuals `e_v ~ N(0, s^2)` (the delta lift is `s -> 0`); tilt the joint of the residuals
by `exp(-beta (L - L*))`; KL-project the tilted law back onto the fully factorised Gaussian family
of the residuals (`argmin_q KL(p_beta || q)`: moment matching, `m_v = E_beta[e_v]`). The projection
map `beta -> m` is differentiated at the forward pass `beta = 0`, and `dm/dbeta (0) / (-s^2)` is
compared with the backprop adjoints `dL/dv` from `jax.grad` of the same graph (the derivative with
respect to `v` with its parents held fixed, which is what perturbing `e_v` does).

What is verified, and how the projection is computed: the tilted moments are computed from forward
evaluations of the graph only, on a tensor-product Gauss-Hermite rule over the residuals (5 nodes per
residual, exact for polynomials of degree 9 in each); the differential at `beta = 0` is `jax.jvp` of
those moments in `beta` (only the quadrature weights depend on `beta`), checked against the closed
form `-Cov_0(e_v, L)` on the same rule. The limit `beta -> 0` is therefore analytic; the limit
`s -> 0` is taken by Richardson extrapolation in `s^2` (the error series is even in `s`).

- linear graph (identity activations, quadratic loss): `dL/de` is affine, the differential / (-s^2)
  equals the adjoints at every `s` (`graphs.linear`); the projection at finite `beta` also matches
  the closed-form Gaussian algebra of the linearised graph;
- nonlinear graphs (the tanh MLP with two hidden layers and the fan-out graph `h = tanh(w1 x)`,
  `s = h^2`, `y = w2 h + w3 s`): the raw error is `O(s^2)` (fitted order reported); Richardson over
  three widths reaches the adjoints to `limit_relative_error` (issue target 1e-8);
- at finite tilt, `m(beta) / (-beta s^2)` tends to the differential with error order 1 in `beta`;
- the differential identity `dm/dbeta (0) = -Cov_0(e, L)` with its two sides computed independently
  (`independent_differential`, fan-out graph): the left side by central differences in `beta` of
  the projection map computed on a 240-point Gauss-Legendre rule per residual (the output residual
  integrated in closed form), the right side on the Gauss-Hermite rule.

Errors are `max_v |a_v - dL/dv| / max_v |dL/dv|` over the computed nodes. Preset `quick`: five widths
and three tilts; the full preset eleven widths and seven tilts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import NullFormatter

from .. import plots
from ..correspondences import (
    LiftedGraph,
    ScalarGraph,
    differential_by_differences,
    extrapolated_adjoints,
    fan_out_graph,
    fitted_order,
    linear_gaussian_projection,
    scalar_mlp,
)
from ..config import check_quick, numbers
from ..harness.metrics import relative_max_error
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

ROUNDING_FLOOR = 1e-12
"""Errors below this are rounding, left out of the order fits."""

EXTRAPOLATION_WIDTH = 0.03
"""Largest width of the three-level Richardson extrapolation reported as the limit."""


@dataclass(frozen=True)
class KLProjectionConfig:
    """Defaults of the kl-projection experiment.

    seed: seed of the MLPs' inputs, weights and biases.
    widths: comma-separated layer widths of the MLPs (7 computed nodes by default: 5**7 quadrature nodes).
    target: regression target of the loss `(y - target)^2 / 2`.
    points: Gauss-Hermite nodes per residual.
    s_min, s_max: range of the residual widths `s` (the quick preset uses five widths 0.2 .. 0.0125).
    s_points: number of widths.
    quick: the small preset (< 1 minute).
    """

    seed: int = 1
    widths: str = "2,3,3,1"
    target: float = 0.5
    points: int = 5
    s_min: float = 1e-3
    s_max: float = 0.3
    s_points: int = 11
    quick: bool = False

    def __post_init__(self):
        widths = numbers("widths", self.widths)
        if len(widths) < 2 or widths[-1] != 1 or sum(widths[1:]) > 9:
            raise ValueError("config key 'widths' needs a width-1 output and at most 9 computed nodes "
                             f"(tensor quadrature); got {self.widths!r}")
        if self.points < 3:
            raise ValueError(f"config key 'points' must be >= 3 (degree-5 rule); got {self.points}")
        if not 0 < self.s_min < self.s_max:
            raise ValueError(f"config keys need 0 < s_min < s_max; got {self.s_min}, {self.s_max}")
        check_quick(self, ("s_min", "s_max", "s_points"))
        if self.s_points < 3:
            raise ValueError(f"config key 's_points' must be >= 3; got {self.s_points}")

    def s_values(self) -> np.ndarray:
        if self.quick:
            return 0.2 / 2.0 ** np.arange(5)
        return np.logspace(np.log10(self.s_max), np.log10(self.s_min), self.s_points)

    def betas(self) -> np.ndarray:
        return np.logspace(-1, -3, 3) if self.quick else np.logspace(0, -4, 7)

    def graphs(self) -> dict[str, ScalarGraph]:
        widths = numbers("widths", self.widths)
        return {
            "tanh_mlp": scalar_mlp(widths, seed=self.seed, activation="tanh", target=self.target),
            "linear_mlp": scalar_mlp(widths, seed=self.seed, activation="identity", target=self.target),
            "fan_out": fan_out_graph(),
        }


TOTAL_STEPS = 5
TILT_WIDTH = 0.1
"""Residual width at which the finite-tilt convergence is measured."""


def finite_or_none(value: float) -> float | None:
    """`None` for a fit with fewer than two points above the rounding floor (written as null)."""
    return value if np.isfinite(value) else None


def measure_graph(graph: ScalarGraph, config: KLProjectionConfig, linear: bool) -> dict:
    """Raw and extrapolated errors against `s`, the jvp/covariance check, the finite-tilt gaps."""
    reference = graph.adjoints_reference()[list(graph.free)]
    s_values = config.s_values()
    raw, jvp_vs_cov, rich2 = [], 0.0, []
    adjoints_by_s = []
    for s in s_values:
        lifted = LiftedGraph(graph, s, config.points)
        a = lifted.adjoints()
        adjoints_by_s.append(a)
        raw.append(relative_max_error(a, reference))
        cov = lifted.covariance_with_loss()
        jvp_vs_cov = max(jvp_vs_cov, relative_max_error(lifted.differential().means, -cov))
    for k in range(len(s_values) - 1):
        ratio = (s_values[k] / s_values[k + 1]) ** 2
        rich2.append(relative_max_error((ratio * adjoints_by_s[k + 1] - adjoints_by_s[k]) / (ratio - 1), reference))
    limit = extrapolated_adjoints(graph, EXTRAPOLATION_WIDTH, levels=3, points=config.points)

    lifted = LiftedGraph(graph, TILT_WIDTH, config.points)
    differential = lifted.adjoints()
    betas = config.betas()
    tilt_gaps = [relative_max_error(lifted.projection(b).means / (-b * TILT_WIDTH ** 2), differential) for b in betas]
    out = {
        "computed_nodes": len(graph.free),
        "quadrature_nodes": config.points ** len(graph.free),
        "names": [graph.names[v] for v in graph.free],
        "adjoints_jax_grad": reference,
        "adjoints_projection_extrapolated": limit,
        "limit_relative_error": relative_max_error(limit, reference),
        "extrapolation": {"levels": 3, "widths": [EXTRAPOLATION_WIDTH / 2 ** k for k in range(3)]},
        "s": s_values,
        "raw_relative_error": raw,
        "richardson2_s": s_values[:-1],
        "richardson2_relative_error": rich2,
        "order_s": None if linear else finite_or_none(fitted_order(s_values, raw, ROUNDING_FLOOR)),
        "order_s_richardson2": None if linear else finite_or_none(fitted_order(s_values[:-1], rich2, ROUNDING_FLOOR)),
        "max_raw_relative_error": max(raw),
        "jvp_vs_covariance_max_relative_difference": jvp_vs_cov,
        "tilt": {"s": TILT_WIDTH, "beta": betas, "relative_gap": tilt_gaps,
                 "order_beta": fitted_order(betas, tilt_gaps, ROUNDING_FLOOR)},
    }
    if linear:
        checks = []
        for beta, s in ((0.1, 0.1), (0.01, 0.2), (0.5, 0.05)):
            closed = linear_gaussian_projection(graph, s, beta)
            quad = LiftedGraph(graph, s, config.points).projection(beta)
            checks.append({
                "beta": beta, "s": s, "means_relative_difference": relative_max_error(quad.means, closed.means),
                "variances_abs_difference_over_s2": float(np.max(np.abs(quad.variances - closed.variances))) / s ** 2,
            })
        out["gaussian_algebra_check"] = checks
    return out


def run(config: KLProjectionConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measure the three graphs, then the figure and the per-node table."""
    results: dict = {"graphs": {}}
    for step, (name, graph) in enumerate(config.graphs().items(), start=1):
        progress(step, TOTAL_STEPS, f"KL projection of the lifted {name} graph")
        r = measure_graph(graph, config, linear=name == "linear_mlp")
        results["graphs"][name] = r
        folder.log(f"{name}: limit error {r['limit_relative_error']:.3e}; raw error order in s {r['order_s']}; "
                   f"max raw error {r['max_raw_relative_error']:.3e}; "
                   f"jvp vs -Cov {r['jvp_vs_covariance_max_relative_difference']:.3e}")
    g = results["graphs"]
    results["summary"] = {
        "linear_max_relative_error_any_s": g["linear_mlp"]["max_raw_relative_error"],
        "nonlinear_max_limit_relative_error": max(g["tanh_mlp"]["limit_relative_error"],
                                                  g["fan_out"]["limit_relative_error"]),
        "tanh_mlp_order_s": g["tanh_mlp"]["order_s"],
        "fan_out_order_s": g["fan_out"]["order_s"],
        "max_jvp_vs_covariance_relative_difference": max(v["jvp_vs_covariance_max_relative_difference"]
                                                         for v in g.values()),
    }
    progress(4, TOTAL_STEPS, "differential identity against differences of an independent projection")
    results["independent_differential"] = independent_differential(config)
    folder.log(f"dm/dbeta(0) by differences (Gauss-Legendre) vs -Cov (Gauss-Hermite): "
               f"{results['independent_differential']['max_relative_difference']:.3e}")
    progress(4, TOTAL_STEPS, "figure and table")
    folder.save_figure(projection_figure(results["graphs"]), "kl_projection")
    folder.save_table(adjoint_table(results["graphs"]), "adjoints")
    progress(5, TOTAL_STEPS, "done")
    return results


INDEPENDENT_WIDTHS = (0.2, 0.1, 0.05)
"""Residual widths of the independent check of the differential identity."""


def independent_differential(config: KLProjectionConfig) -> dict:
    """`dm/dbeta (0)` by central differences of a Gauss-Legendre projection map against `-Cov_0(e, L)`
    on the Gauss-Hermite rule, on the fan-out graph (two residuals left after the output's)."""
    graph = fan_out_graph()
    rows = []
    for s in INDEPENDENT_WIDTHS:
        by_differences = differential_by_differences(graph, s)
        covariance = -LiftedGraph(graph, s, max(config.points, 9)).covariance_with_loss()
        rows.append({"s": s, "by_differences": by_differences, "minus_covariance": covariance,
                     "relative_difference": relative_max_error(by_differences, covariance)})
    return {"graph": "fan_out", "rows": rows, "max_relative_difference": max(r["relative_difference"] for r in rows)}


def projection_figure(graphs: dict):
    """Three panels: the relative error of `dm/dbeta(0) / (-s^2)` against the residual width `s`
    (raw and after one Richardson step, per graph); the finite-tilt gap against `beta`; the adjoints
    of the tanh MLP from the extrapolated projection and from `jax.grad`."""
    fig, axes = plots.figure(ncols=3, panel_size=(4.3, 3.6))
    floor = 1e-17
    labels = {"tanh_mlp": "tanh MLP", "linear_mlp": "linear MLP", "fan_out": "fan-out"}
    for k, (name, r) in enumerate(graphs.items()):
        colour = plots.LINE_COLOURS[k]
        order = "" if r["order_s"] is None else f" (order {r['order_s']:.2f})"
        axes[0].loglog(r["s"], np.maximum(r["raw_relative_error"], floor), "o-", ms=3, color=colour,
                       label=f"{labels[name]}{order}")
        if r["order_s"] is not None:
            rich = r["order_s_richardson2"]
            note = "at rounding: the series ends at s^2" if rich is None else f"order {rich:.2f}"
            axes[0].loglog(r["richardson2_s"], np.maximum(r["richardson2_relative_error"], floor), "s--", ms=3,
                           color=colour, label=f"  one Richardson step ({note})")
        tilt = r["tilt"]
        axes[1].loglog(tilt["beta"], np.maximum(tilt["relative_gap"], floor), "o-", ms=3, color=colour,
                       label=f"{labels[name]} (order {tilt['order_beta']:.2f})")
    axes[0].axhline(1e-8, color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="target 1e-8")
    axes[0].set_xlabel("residual width $s$")
    axes[0].set_ylabel(r"max$_v|dm_v/d\beta(0)/(-s^2) - \partial L/\partial v|$ / max$|\partial L/\partial v|$")
    axes[0].set_title("differential of the projection vs backprop")
    axes[0].legend(loc="center left", bbox_to_anchor=(0.0, 0.42), fontsize=7)
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[1].set_xlabel(r"tilt $\beta$")
    axes[1].set_ylabel(r"rel. gap of $m(\beta)/(-\beta s^2)$ to the differential")
    axes[1].set_title(f"finite tilt, s = {TILT_WIDTH:g}")
    axes[1].legend(loc="best")
    r = graphs["tanh_mlp"]
    x = np.arange(len(r["names"]))
    axes[2].bar(x - 0.2, r["adjoints_jax_grad"], width=0.4, label="jax.grad")
    axes[2].bar(x + 0.2, r["adjoints_projection_extrapolated"], width=0.4, label="projection (extrapolated)")
    axes[2].set_xticks(x, r["names"], rotation=45)
    axes[2].set_ylabel(r"$\partial L/\partial v$")
    axes[2].set_title(f"tanh MLP: relative error {r['limit_relative_error']:.1e}")
    axes[2].legend(loc="best")
    return fig


def adjoint_table(graphs: dict) -> Table:
    """Per computed node: the extrapolated projection differential against `jax.grad`."""
    rows = []
    for name, r in graphs.items():
        for node, ref, proj in zip(r["names"], r["adjoints_jax_grad"], r["adjoints_projection_extrapolated"]):
            ref, proj = float(ref), float(proj)
            rows.append([name, node, ref, proj, abs(proj - ref) / abs(ref) if ref != 0 else abs(proj)])
    return Table(
        columns=["graph", "node", "dL/dv (jax.grad)", "dm/dbeta(0)/(-s^2), s -> 0", "rel. error"],
        rows=rows,
        caption=("Differential of the KL projection of the loss-tilted Gaussian lift against jax.grad "
                 f"(Richardson over s = {EXTRAPOLATION_WIDTH:g}, /2, /4; float64)"),
        label="tab:kl-projection-adjoints",
        digits=10,
    )


EXPERIMENT = Experiment(
    name="kl-projection",
    description="Backprop as the differential of the KL projection of a loss-tilted Gaussian lift",
    config=KLProjectionConfig(),
    run=run,
    headline=(
        "summary.linear_max_relative_error_any_s",
        "summary.nonlinear_max_limit_relative_error",
        "summary.tanh_mlp_order_s",
        "summary.fan_out_order_s",
        "summary.max_jvp_vs_covariance_relative_difference",
        "independent_differential.max_relative_difference",
    ),
    figures={"kl_projection": "kl_projection"},
)
