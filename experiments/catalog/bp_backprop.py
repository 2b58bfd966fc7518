"""Belief propagation encodes backprop (Eaton 2022, "Belief propagation generalizes backpropagation").

A computation graph of scalar nodes (a tanh MLP with two hidden layers written node by node, its
weights, biases and inputs clamped; and the smallest loopy graph `h = tanh(w1 x)`, `s = h^2`,
`y = w2 h + w3 s`) becomes a factor graph: one near-deterministic Gaussian factor per computed
node, `psi_v = exp(-(v - g_v(u))^2 / (2 eps))`, linearised at the forward values; soft evidence
`exp(-beta L(y))`, `L = (y - target)^2 / 2`, on the output. Gaussian BP in information form runs on
it (loopy: hidden units fan out, so the factor graph has cycles), see
`experiments.correspondences.gaussian_bp`.

What is verified (the checkable version of the spec, section 1):

- the total backward message at every node `v` (computed and clamped), divided by `-beta`, equals
  `dL/dv` from `jax.grad` of the same graph: `limit.max_relative_error` at `beta = eps = 1e-8`;
- the error of `eta_v / (-beta)` over a grid of `(beta, eps)`: it is `C beta eps` (the first order
  in `beta` is exact for every `eps`), with the fitted orders in `beta` and in `eps` reported
  (`error_grid.order_beta`, `order_eps`, expected 1 each, fitted where the error is above 1e-13);
- the first order in `beta` is exact for every `eps`: Richardson extrapolation in `beta`
  (`2 a(beta/2) - a(beta)` at `beta = 1e-6`) gives `dL/dv` at `eps = 1, 0.1, 0.01`
  (`first_order_in_beta`);
- the loopy fixed-point means equal the dense Gaussian posterior of the linearised factor graph
  (Kalman conditioning by linear algebra) at every grid point (`dense_posterior_max_relative_error`);
- the belief mean shift `(mean_v - v*) / beta` tends to `-Cov(v, y) L'(y*)` (prior covariance of the
  linearised factor graph) with error order 1 in `beta` (`mean_shift`);
- convergence of loopy BP: the largest relative message change per synchronous sweep;
- larger graphs (`scaling`): tanh MLPs of 19 to 41 computed nodes with 60 to 270 independent
  cycles; at `beta = eps = 1e-8` the backward messages against `jax.grad`, at `beta = eps = 0.1`
  the fixed-point means against the dense posterior, and the synchronous sweeps to convergence of
  both against graph size.

Preset `quick` runs a 5 x 5 grid over `[1e-4, 1e-1]` and one larger graph (21 computed nodes); the
full preset 13 x 13 over `[1e-6, 1]` and four larger graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import plots
from ..correspondences import (
    ScalarGraph,
    dense_posterior,
    fan_out_graph,
    fitted_order,
    fitted_orders_2d,
    gaussian_belief_propagation,
    linearise,
    scalar_mlp,
)
from ..config import check_quick, numbers
from ..harness.metrics import relative_max_error
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

ROUNDING_FLOOR = 1e-13
"""Errors below this are rounding, left out of the order fits."""

LIMIT_BETA = LIMIT_EPS = 1e-8
"""Where the limit `beta, eps -> 0` is read (the error is `C beta eps`, so ~1e-16 times C)."""

FIRST_ORDER_BETA = 1e-6
FIRST_ORDER_EPS = (1.0, 0.1, 0.01)
"""Richardson in `beta` (`2 a(beta/2) - a(beta)`) at these finite factor variances: the first order
in `beta` of `eta / (-beta)` is exactly `dL/dv` for every `eps`."""


@dataclass(frozen=True)
class BPBackpropConfig:
    """Defaults of the bp-backprop experiment.

    seed: seed of the MLP's inputs, weights and biases.
    widths: comma-separated layer widths of the MLP, ending in 1.
    target: regression target of the loss `(y - target)^2 / 2`.
    grid_points: points per axis of the `(beta, eps)` grid (the quick preset uses 5).
    grid_min: smallest `beta` and `eps` of the grid (the quick preset uses 1e-4); the largest is 1
        (0.1 in the quick preset).
    mean_shift_eps: factor variance at which the belief mean shift is measured.
    scaling_widths: `;`-separated widths of the larger MLPs of the size sweep (the quick preset
        uses `3,7,7,6,1`).
    quick: the small preset (< 1 minute).
    """

    seed: int = 0
    widths: str = "2,3,3,1"
    target: float = 0.5
    grid_points: int = 13
    grid_min: float = 1e-6
    mean_shift_eps: float = 0.1
    scaling_widths: str = "3,6,6,6,1;3,8,8,8,1;3,10,10,10,1;4,10,10,10,10,1"
    quick: bool = False

    def __post_init__(self):
        widths = numbers("widths", self.widths)
        if len(widths) < 4 or widths[-1] != 1:
            raise ValueError(f"config key 'widths' needs two hidden layers (for loops) and a width-1 output; "
                             f"got {self.widths!r}")
        if self.grid_points < 3:
            raise ValueError(f"config key 'grid_points' must be >= 3; got {self.grid_points}")
        if not 0 < self.grid_min < 0.1:
            raise ValueError(f"config key 'grid_min' must be in (0, 0.1); got {self.grid_min}")
        check_quick(self, ("grid_points", "grid_min", "scaling_widths"))
        for text in self.scaling_widths.split(";"):
            widths = numbers("scaling_widths", text)
            if len(widths) < 4 or widths[-1] != 1 or max(widths) > 10:
                raise ValueError("config key 'scaling_widths': each MLP needs two hidden layers, a width-1 output and "
                                 f"widths <= 10; got {text!r}")
        if not self.mean_shift_eps > 0:
            raise ValueError(f"config key 'mean_shift_eps' must be > 0; got {self.mean_shift_eps}")

    def grid(self) -> np.ndarray:
        """The `beta` (and `eps`) values of the error grid."""
        if self.quick:
            return np.logspace(-4, -1, 5)
        return np.logspace(np.log10(self.grid_min), 0, self.grid_points)

    def scaling_graphs(self) -> dict[str, ScalarGraph]:
        texts = ["3,7,7,6,1"] if self.quick else self.scaling_widths.split(";")
        return {t: scalar_mlp(numbers("scaling_widths", t), seed=self.seed, target=self.target) for t in texts}

    def graphs(self) -> dict[str, ScalarGraph]:
        widths = numbers("widths", self.widths)
        return {"mlp": scalar_mlp(widths, seed=self.seed, target=self.target), "fan_out": fan_out_graph()}


TOTAL_STEPS = 6
SCALING_FINITE = 0.1
"""`beta = eps` of the finite-tilt fixed point of the size sweep."""


def measure_graph(graph: ScalarGraph, config: BPBackpropConfig) -> dict:
    """Every number of one graph: limit, error grid and fits, dense-posterior check, mean shift, convergence."""
    lin = linearise(graph)
    reference = graph.adjoints_reference()
    limit = gaussian_belief_propagation(graph, LIMIT_BETA, LIMIT_EPS, lin=lin)
    adjoints = limit.adjoints(LIMIT_BETA)
    grid = config.grid()
    errors = np.zeros((grid.size, grid.size))
    dense_error = 0.0
    iterations = np.zeros((grid.size, grid.size), dtype=int)
    for i, beta in enumerate(grid):
        for j, eps in enumerate(grid):
            result = gaussian_belief_propagation(graph, beta, eps, lin=lin)
            if not result.converged:
                raise RuntimeError(f"Gaussian BP did not converge at beta={beta:g}, eps={eps:g}")
            errors[i, j] = relative_max_error(result.adjoints(beta), reference)
            iterations[i, j] = result.iterations
            dense = dense_posterior(graph, beta, eps, lin)
            dense_error = max(dense_error, relative_max_error(result.belief_mean, dense.mean))
    order_beta, order_eps = fitted_orders_2d(grid, grid, errors, ROUNDING_FLOOR)
    mid = grid.size // 2

    eps = config.mean_shift_eps
    shift_limit = -dense_posterior(graph, 1.0, eps, lin).prior_cov_with_output * lin.loss_gradient
    shift_betas = grid
    shift_errors = [relative_max_error(gaussian_belief_propagation(graph, b, eps, lin=lin).belief_mean / b, shift_limit)
                    for b in shift_betas]

    first_order = {}
    for e in FIRST_ORDER_EPS:
        a1 = gaussian_belief_propagation(graph, FIRST_ORDER_BETA, e, lin=lin).adjoints(FIRST_ORDER_BETA)
        a2 = gaussian_belief_propagation(graph, FIRST_ORDER_BETA / 2, e, lin=lin).adjoints(FIRST_ORDER_BETA / 2)
        first_order[f"eps={e:g}"] = {"raw_relative_error": relative_max_error(a2, reference),
                                     "extrapolated_relative_error": relative_max_error(2 * a2 - a1, reference)}

    histories = {f"beta={b:g},eps={e:g}": gaussian_belief_propagation(graph, b, e, lin=lin).changes.tolist()
                 for b, e in ((1.0, 1.0), (0.1, 0.01), (1e-4, 1e-4))}
    return {
        "nodes": graph.size,
        "computed_nodes": len(graph.free),
        "clamped_nodes": len(graph.inputs),
        "factor_graph_cycles": graph.factor_graph_cycles(),
        "loss": float(graph.loss_of()),
        "limit": {
            "beta": LIMIT_BETA, "eps": LIMIT_EPS,
            "iterations": limit.iterations, "converged": limit.converged,
            "max_relative_error": relative_max_error(adjoints, reference),
            "names": list(graph.names),
            "adjoints_bp": adjoints.tolist(),
            "adjoints_jax_grad": reference.tolist(),
        },
        "error_grid": {
            "beta": grid.tolist(), "eps": grid.tolist(),
            "relative_error": errors.tolist(),
            "iterations": iterations.tolist(),
            "order_beta": order_beta, "order_eps": order_eps,
            "order_beta_at_mid_eps": fitted_order(grid, errors[:, mid], ROUNDING_FLOOR),
            "order_eps_at_mid_beta": fitted_order(grid, errors[mid, :], ROUNDING_FLOOR),
            "mid_value": float(grid[mid]),
            "rounding_floor": ROUNDING_FLOOR,
        },
        "dense_posterior_max_relative_error": dense_error,
        "first_order_in_beta": {"beta": FIRST_ORDER_BETA, "by_eps": first_order,
                                "max_extrapolated_relative_error": max(
                                    v["extrapolated_relative_error"] for v in first_order.values())},
        "mean_shift": {
            "eps": eps,
            "beta": shift_betas.tolist(),
            "relative_error": shift_errors,
            "order_beta": fitted_order(shift_betas, shift_errors, ROUNDING_FLOOR),
        },
        "convergence": histories,
    }


def measure_scaling(config: BPBackpropConfig) -> dict:
    """Larger graphs: the limit against `jax.grad`, the finite fixed point against the dense posterior,
    and the sweeps to convergence of both, against the number of computed nodes."""
    rows = []
    for name, graph in config.scaling_graphs().items():
        lin = linearise(graph)
        reference = graph.adjoints_reference()
        limit = gaussian_belief_propagation(graph, LIMIT_BETA, LIMIT_EPS, lin=lin)
        finite = gaussian_belief_propagation(graph, SCALING_FINITE, SCALING_FINITE, lin=lin)
        if not (limit.converged and finite.converged):
            raise RuntimeError(f"Gaussian BP did not converge on the {name} graph")
        dense = dense_posterior(graph, SCALING_FINITE, SCALING_FINITE, lin)
        rows.append({
            "widths": name, "computed_nodes": len(graph.free), "factor_graph_cycles": graph.factor_graph_cycles(),
            "limit_relative_error": relative_max_error(limit.adjoints(LIMIT_BETA), reference),
            "limit_sweeps": limit.iterations,
            "finite_dense_posterior_relative_error": relative_max_error(finite.belief_mean, dense.mean),
            "finite_sweeps": finite.iterations,
            "limit_changes": limit.changes.tolist(),
        })
    return {"finite_beta_eps": SCALING_FINITE, "graphs": rows,
            "max_limit_relative_error": max(r["limit_relative_error"] for r in rows),
            "max_dense_posterior_relative_error": max(r["finite_dense_posterior_relative_error"] for r in rows),
            "max_sweeps": max(max(r["limit_sweeps"], r["finite_sweeps"]) for r in rows)}


def run(config: BPBackpropConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measure both graphs, then the figure and the per-node table."""
    results: dict = {"graphs": {}}
    graphs = config.graphs()
    for step, (name, graph) in enumerate(graphs.items(), start=1):
        progress(step, TOTAL_STEPS, f"Gaussian BP on the {name} graph ({graph.size} nodes)")
        results["graphs"][name] = r = measure_graph(graph, config)
        folder.log(f"{name}: {r['factor_graph_cycles']} independent cycles; limit error "
                   f"{r['limit']['max_relative_error']:.3e}; orders beta {r['error_grid']['order_beta']:.3f}, "
                   f"eps {r['error_grid']['order_eps']:.3f}; dense-posterior means "
                   f"{r['dense_posterior_max_relative_error']:.3e}")
    results["max_limit_relative_error"] = max(g["limit"]["max_relative_error"] for g in results["graphs"].values())
    results["max_dense_posterior_relative_error"] = max(
        g["dense_posterior_max_relative_error"] for g in results["graphs"].values())
    progress(3, TOTAL_STEPS, "larger graphs: sweeps to convergence against size")
    results["scaling"] = measure_scaling(config)
    for r in results["scaling"]["graphs"]:
        folder.log(f"{r['widths']}: {r['computed_nodes']} computed nodes, {r['factor_graph_cycles']} cycles; "
                   f"{r['limit_sweeps']} sweeps, error {r['limit_relative_error']:.2e}; finite: {r['finite_sweeps']} "
                   f"sweeps, dense posterior {r['finite_dense_posterior_relative_error']:.2e}")
    progress(4, TOTAL_STEPS, "figure: error against beta and eps, mean shift, convergence")
    folder.save_figure(bp_figure(results["graphs"]["mlp"]), "bp_backprop")
    folder.save_figure(scaling_figure(results["scaling"]), "bp_backprop_scaling")
    progress(5, TOTAL_STEPS, "table: BP adjoints against jax.grad per node")
    folder.save_table(adjoint_table(results["graphs"]), "adjoints")
    folder.save_table(scaling_table(results["scaling"]), "scaling")
    progress(6, TOTAL_STEPS, "done")
    return results


def bp_figure(r: dict):
    """Four panels for one graph: the relative error of `eta / (-beta)` against `beta` (one line
    per `eps`) and against `eps` (one line per `beta`); the belief mean-shift error against `beta`;
    the largest relative message change per loopy-BP sweep."""
    fig, axes = plots.figure(ncols=4, panel_size=(3.8, 3.4))
    grid = r["error_grid"]
    beta, eps, err = np.asarray(grid["beta"]), np.asarray(grid["eps"]), np.asarray(grid["relative_error"])
    picks = sorted({0, err.shape[0] // 2, err.shape[0] - 1})
    floor = 1e-17
    for j in picks:
        axes[0].loglog(beta, np.maximum(err[:, j], floor), "o-", ms=3, label=rf"$\epsilon$ = {eps[j]:.0e}")
        axes[1].loglog(eps, np.maximum(err[j, :], floor), "o-", ms=3, label=rf"$\beta$ = {beta[j]:.0e}")
    panels = ((axes[0], grid["order_beta"], r"\beta"), (axes[1], grid["order_eps"], r"\epsilon"))
    for ax, order, name in panels:
        ax.axhline(grid["rounding_floor"], color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="fit floor")
        ax.set_xlabel(f"${name}$")
        ax.set_ylabel(r"max$_v |\eta_v/(-\beta) - \partial L/\partial v|$ / max$|\partial L/\partial v|$")
        ax.set_title(f"fitted order in ${name}$: {order:.3f}")
        ax.legend(loc="best")
    shift = r["mean_shift"]
    axes[2].loglog(shift["beta"], shift["relative_error"], "o-", ms=3)
    axes[2].set_xlabel(r"$\beta$")
    axes[2].set_ylabel(r"rel. error of $(\mu_v - v^*)/\beta$ vs $-\mathrm{Cov}(v,y)L'$")
    axes[2].set_title(rf"mean shift, $\epsilon$ = {shift['eps']:g}: order {shift['order_beta']:.3f}")
    for label, changes in r["convergence"].items():
        axes[3].semilogy(np.arange(1, len(changes) + 1), np.maximum(changes, floor), label=label)
    axes[3].set_xlabel("synchronous sweep")
    axes[3].set_ylabel("largest relative message change")
    axes[3].set_title(f"loopy BP ({r['factor_graph_cycles']} cycles)")
    axes[3].legend(loc="best")
    return fig


def scaling_figure(sc: dict):
    """Two panels: sweeps to convergence against computed nodes (limit and finite tilt); the largest
    relative message change per sweep of each graph in the limit."""
    fig, axes = plots.figure(ncols=2, panel_size=(4.4, 3.6))
    nodes = [r["computed_nodes"] for r in sc["graphs"]]
    axes[0].plot(nodes, [r["limit_sweeps"] for r in sc["graphs"]], "o-", label=r"$\beta = \epsilon$ = 1e-8")
    axes[0].plot(nodes, [r["finite_sweeps"] for r in sc["graphs"]], "s--",
                 label=rf"$\beta = \epsilon$ = {sc['finite_beta_eps']:g}")
    for r in sc["graphs"]:
        axes[0].annotate(f"{r['factor_graph_cycles']} cycles", (r["computed_nodes"], r["limit_sweeps"]), fontsize=7,
                         textcoords="offset points", xytext=(3, 4))
    axes[0].set_xlabel("computed nodes")
    axes[0].set_ylabel("synchronous sweeps to convergence")
    axes[0].set_title(f"error vs jax.grad <= {sc['max_limit_relative_error']:.1e}")
    axes[0].legend(loc="best")
    for r in sc["graphs"]:
        changes = r["limit_changes"]
        axes[1].semilogy(np.arange(1, len(changes) + 1), np.maximum(changes, 1e-17), "o-", ms=3,
                         label=f"{r['computed_nodes']} nodes")
    axes[1].set_xlabel("synchronous sweep")
    axes[1].set_ylabel("largest relative message change")
    axes[1].set_title("loopy BP on larger graphs")
    axes[1].legend(loc="best")
    return fig


def scaling_table(sc: dict) -> Table:
    rows = [[r["widths"], r["computed_nodes"], r["factor_graph_cycles"], r["limit_sweeps"], r["limit_relative_error"],
             r["finite_sweeps"], r["finite_dense_posterior_relative_error"]] for r in sc["graphs"]]
    return Table(columns=["MLP widths", "computed nodes", "cycles", "sweeps (1e-8)", "rel. error vs jax.grad",
                          f"sweeps ({sc['finite_beta_eps']:g})", "rel. error vs dense posterior"], rows=rows,
                 caption="Loopy Gaussian BP on larger computation graphs (float64)", label="tab:bp-backprop-scaling",
                 digits=3)


def adjoint_table(graphs: dict) -> Table:
    """Per node: `eta / (-beta)` at `beta = eps = 1e-8` against `jax.grad`."""
    rows = []
    for name, r in graphs.items():
        lim = r["limit"]
        for node, bp, ref in zip(lim["names"], lim["adjoints_bp"], lim["adjoints_jax_grad"]):
            rows.append([name, node, ref, bp, abs(bp - ref) / max(abs(ref), 1e-300) if ref != 0 else abs(bp)])
    return Table(
        columns=["graph", "node", "dL/dv (jax.grad)", "BP eta/(-beta)", "rel. error"],
        rows=rows,
        caption=(f"Backward Gaussian-BP messages at beta = eps = {LIMIT_BETA:g} against jax.grad, "
                 "every node (computed and clamped), float64"),
        label="tab:bp-backprop-adjoints",
        digits=6,
    )


EXPERIMENT = Experiment(
    name="bp-backprop",
    description="Gaussian belief propagation on a computation graph: backward messages / (-beta) -> dL/dv",
    config=BPBackpropConfig(),
    run=run,
    headline=(
        "max_limit_relative_error",
        "max_dense_posterior_relative_error",
        "graphs.mlp.first_order_in_beta.max_extrapolated_relative_error",
        "graphs.mlp.error_grid.order_beta",
        "graphs.mlp.error_grid.order_eps",
        "graphs.mlp.mean_shift.order_beta",
        "scaling.max_limit_relative_error",
        "scaling.max_sweeps",
    ),
    figures={"bp_backprop": "bp_backprop"},
)
