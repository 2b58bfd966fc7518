"""Alternating KL projections as message passing give backprop's node adjoints and weight gradients
(the first setting of "Backpropagation from KL Projections: Differential and Exact I-Projection
Correspondences", arXiv, Dec 2025, in the form of its abstract: "message passing defined by
alternating KL projections enforces agreement and factorization constraints").

A tanh MLP written in elementary operations (products `W h`, affine sums, `tanh`; widths `2,3,3,1`:
31 computed nodes, 27 clamped inputs, weights and biases) is lifted: every clamped node gets the
prior `N(z; z*, s^2)`, every computed node the factor `N(v; g_v(u), s^2)`, the output the tilt
`exp(-beta (L - L*))`. Expectation propagation with a fully factorised Gaussian family alternates
the two projections of `experiments.correspondences.kl_message_passing` (moment matching of each
factor's tilted law onto the factorised family; agreement of every factor on the shared
marginals) until no site changes. Moments are closed forms for the affine nodes and 12-point
Gauss-Hermite rules over the one or two parents of a nonlinear node; nothing differentiates the
network.

What is verified (`jax.grad` of the same network is the reference; errors are
`max |a - ref| / max |ref|`):

- the differential of the fixed point in `beta` at 0 (central differences at `beta = +-2e-3, +-1e-3`,
  Richardson-combined): the lifted weights' mean shifts divided by `-s^2` are the weight gradients
  `dL/dW`, `dL/db`, `dL/dx`, and the backward sites into every node are `-dL/dv`, with an error
  `O(s^2)` (fitted order `order_s`) over lift widths `s = 0.1 / 2^k`;
- Richardson extrapolation in `s^2` over three consecutive widths: the weight gradients at the
  smallest widths (`limit_weight_relative_error`; the issue's target 1e-8);
- on the linearised network (every nonlinear node replaced by its tangent) the same readouts are
  exact at every width, up to the rounding of the differences (`linearised_max_relative_error`);
- convergence of the alternation: the largest relative site change per sweep, and the sweeps to
  convergence at each width.

Preset `quick`: the 31-node network, six widths `0.1 .. 0.003125`; the full preset adds the
`3,4,4,1` network (49 computed nodes) and eight widths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import plots
from ..config import check_quick, numbers
from ..correspondences import elementary_mlp, fitted_order, linearised, projection_differential, richardson
from ..harness.metrics import relative_max_error
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

ROUNDING_FLOOR = 1e-9
"""Errors below this are the rounding of the differences in `beta`, left out of the order fits."""

LEVELS = 3
"""Widths per Richardson extrapolation in `s^2`."""


@dataclass(frozen=True)
class KLMessagePassingConfig:
    """Defaults of the kl-message-passing experiment.

    seed: seed of the networks' inputs, weights and biases (the `scalar_mlp` draws).
    networks: `;`-separated layer widths of the networks (each ending in 1).
    target: regression target of the loss `(y - target)^2 / 2`.
    s_max: the largest lift width; the others halve it.
    widths_count: number of lift widths (the quick preset uses 6).
    points: Gauss-Hermite points per parent of a nonlinear node.
    quick: the small preset (< 1 minute).
    """

    seed: int = 1
    networks: str = "2,3,3,1;3,4,4,1"
    target: float = 0.5
    s_max: float = 0.1
    widths_count: int = 8
    points: int = 12
    quick: bool = False

    def __post_init__(self):
        for text in self.networks.split(";"):
            widths = numbers("networks", text)
            if len(widths) < 3 or widths[-1] != 1:
                raise ValueError(f"config key 'networks': each network needs a hidden layer and a width-1 output; "
                                 f"got {text!r}")
        check_quick(self, ("networks", "widths_count"))
        if self.widths_count < LEVELS + 1:
            raise ValueError(f"config key 'widths_count' must be >= {LEVELS + 1}; got {self.widths_count}")
        if not 0 < self.s_max <= 0.3:
            raise ValueError(f"config key 's_max' must be in (0, 0.3]; got {self.s_max}")
        if self.points < 4:
            raise ValueError(f"config key 'points' must be >= 4; got {self.points}")

    def widths(self) -> np.ndarray:
        return self.s_max / 2.0 ** np.arange(6 if self.quick else self.widths_count)

    def network_widths(self) -> list[tuple[int, ...]]:
        texts = ["2,3,3,1"] if self.quick else self.networks.split(";")
        return [numbers("networks", t) for t in texts]


def measure_network(widths: tuple[int, ...], config: KLMessagePassingConfig) -> dict:
    """Differentials at every width, the Richardson limits, the linearised check, convergence."""
    graph = elementary_mlp(widths, seed=config.seed, target=config.target)
    reference = graph.scalar_graph().adjoints_reference()
    clamped = list(graph.clamped)
    s_values = config.widths()
    diffs = [projection_differential(graph, s, points=config.points) for s in s_values]
    weights = [d.weight_gradients for d in diffs]
    nodes = [d.node_adjoints for d in diffs]
    raw_w = [relative_max_error(w, reference[clamped]) for w in weights]
    raw_n = [relative_max_error(a, reference) for a in nodes]
    windows = range(len(s_values) - LEVELS + 1)
    rich_w = [relative_max_error(richardson(weights[k:k + LEVELS]), reference[clamped]) for k in windows]
    rich_n = [relative_max_error(richardson(nodes[k:k + LEVELS]), reference) for k in windows]
    limit = richardson(weights[-LEVELS:])
    lin = linearised(graph)
    lin_errors = []
    for s in (s_values[0], s_values[-1]):
        d = projection_differential(lin, s, points=config.points)
        lin_errors.append(max(relative_max_error(d.weight_gradients, reference[clamped]), relative_max_error(d.node_adjoints, reference)))
    return {
        "widths": list(widths),
        "computed_nodes": len(graph.computed),
        "clamped_nodes": len(clamped),
        "factor_graph_cycles": graph.factor_graph_cycles(),
        "s": s_values,
        "weight_relative_error": raw_w,
        "node_relative_error": raw_n,
        "order_s": fitted_order(s_values, raw_w, ROUNDING_FLOOR),
        "order_s_nodes": fitted_order(s_values, raw_n, ROUNDING_FLOOR),
        "richardson": {"levels": LEVELS, "smallest_s": s_values[LEVELS - 1:],
                       "weight_relative_error": rich_w, "node_relative_error": rich_n},
        "limit_weight_relative_error": rich_w[-1],
        "limit_node_relative_error": rich_n[-1],
        "limit_widths": s_values[-LEVELS:],
        "names": [graph.names[v] for v in clamped],
        "weight_gradients_jax_grad": reference[clamped],
        "weight_gradients_extrapolated": limit,
        "linearised_max_relative_error": max(lin_errors),
        "sweeps": [list(d.sweeps) for d in diffs],
        "max_sweeps": max(max(d.sweeps) for d in diffs),
        "convergence": {f"s={s:g}": d.changes for s, d in zip(s_values, diffs)},
    }


def run(config: KLMessagePassingConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measure every network, then the figure and the per-weight table."""
    networks = config.network_widths()
    total = len(networks) + 2
    results: dict = {"networks": {}}
    for step, widths in enumerate(networks, start=1):
        name = ",".join(map(str, widths))
        progress(step, total, f"alternating KL projections on the {name} network")
        results["networks"][name] = r = measure_network(widths, config)
        folder.log(f"{name}: {r['computed_nodes']} computed nodes, {r['factor_graph_cycles']} cycles; raw order in s "
                   f"{r['order_s']:.3f}; extrapolated weight gradients {r['limit_weight_relative_error']:.3e}; "
                   f"linearised {r['linearised_max_relative_error']:.3e}; at most {r['max_sweeps']} sweeps")
    nets = results["networks"].values()
    results["summary"] = {
        "max_limit_weight_relative_error": max(r["limit_weight_relative_error"] for r in nets),
        "max_limit_node_relative_error": max(r["limit_node_relative_error"] for r in nets),
        "max_linearised_relative_error": max(r["linearised_max_relative_error"] for r in nets),
        "orders_s": [r["order_s"] for r in nets],
        "max_sweeps": max(r["max_sweeps"] for r in nets),
    }
    progress(total - 1, total, "figure and table")
    first = next(iter(results["networks"]))
    folder.save_figure(message_passing_figure(results["networks"], first), "kl_message_passing")
    folder.save_table(weight_table(results["networks"][first], first), "weight_gradients")
    progress(total, total, "done")
    return results


def message_passing_figure(networks: dict, first: str):
    """Three panels: the relative error against the lift width (raw and three-width Richardson, per
    network); the largest site change per sweep at each width (first network); the extrapolated
    weight gradients against `jax.grad` (first network)."""
    fig, axes = plots.figure(ncols=3, panel_size=(4.4, 3.6))
    floor = 1e-17
    for k, (name, r) in enumerate(networks.items()):
        colour = plots.LINE_COLOURS[k]
        axes[0].loglog(r["s"], np.maximum(r["weight_relative_error"], floor), "o-", ms=3, color=colour,
                       label=f"{name} ({r['computed_nodes']} nodes): raw, order {r['order_s']:.2f}")
        rich = r["richardson"]
        axes[0].loglog(rich["smallest_s"], np.maximum(rich["weight_relative_error"], floor), "s--", ms=3,
                       color=colour, label="  Richardson over 3 widths")
    axes[0].axhline(1e-8, color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="target 1e-8")
    axes[0].set_xlabel("lift width $s$ (smallest of the three for Richardson)")
    axes[0].set_ylabel(r"max$|dm_w/d\beta(0)/(-s^2) - \partial L/\partial w|$ / max$|\partial L/\partial w|$")
    axes[0].set_title("weight gradients from the projection map")
    axes[0].legend(loc="best", fontsize=7)
    r = networks[first]
    for label, changes in r["convergence"].items():
        axes[1].semilogy(np.arange(1, len(changes) + 1), np.maximum(changes, floor), "o-", ms=3, label=label)
    axes[1].set_xlabel("sweep (topological order, then reverse)")
    axes[1].set_ylabel("largest relative site change")
    axes[1].set_title(f"alternation converges ({first}, {r['factor_graph_cycles']} cycles)")
    axes[1].legend(loc="best", fontsize=7)
    x = np.arange(len(r["names"]))
    axes[2].bar(x - 0.2, r["weight_gradients_jax_grad"], width=0.4, label="jax.grad")
    axes[2].bar(x + 0.2, r["weight_gradients_extrapolated"], width=0.4, label="projection map, s -> 0")
    axes[2].set_xticks(x, r["names"], rotation=90, fontsize=6)
    axes[2].set_ylabel(r"$\partial L/\partial w$")
    axes[2].set_title(f"relative error {r['limit_weight_relative_error']:.1e}")
    axes[2].legend(loc="best")
    return fig


def weight_table(r: dict, name: str) -> Table:
    """Per clamped node: the extrapolated differential against `jax.grad`."""
    rows = []
    for node, ref, got in zip(r["names"], r["weight_gradients_jax_grad"], r["weight_gradients_extrapolated"]):
        ref, got = float(ref), float(got)
        rows.append([node, ref, got, abs(got - ref) / abs(ref) if ref != 0 else abs(got)])
    widths = ", ".join(f"{s:g}" for s in r["limit_widths"])
    return Table(
        columns=["weight", "dL/dw (jax.grad)", "dm_w/dbeta(0)/(-s^2), s -> 0", "rel. error"],
        rows=rows,
        caption=(f"Alternating KL projections on the lifted {name} network: weight gradients from the differential "
                 f"of the fixed point, Richardson over s = {widths} (float64)"),
        label="tab:kl-message-passing-weights",
        digits=10,
    )


EXPERIMENT = Experiment(
    name="kl-message-passing",
    description="Alternating KL projections (EP) on a lifted network: node adjoints and weight gradients",
    config=KLMessagePassingConfig(),
    run=run,
    headline=(
        "summary.max_limit_weight_relative_error",
        "summary.max_limit_node_relative_error",
        "summary.max_linearised_relative_error",
        "summary.max_sweeps",
    ),
    figures={"kl_message_passing": "kl_message_passing"},
)
