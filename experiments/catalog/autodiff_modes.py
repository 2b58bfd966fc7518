"""Forward and reverse mode as in G. Peyre's course notes on automatic differentiation: dual
numbers, the notes' worked example traced node by node, and the cost of Jacobian chains.

Constructions in `experiments.correspondences.forward_mode`. What is verified:

- dual numbers (`x + eps x'`, `eps^2 = 0`, operator overloading on numpy; `log`, `sqrt`, `tanh`
  overloaded as `f(x) + eps f'(x) x'`) give the JVP: against `jax.jvp` on the worked example
  `f(x, y) = y log x + sqrt(y log x)` at several points, in both input directions, and on a tanh MLP
  with random tangents (`dual`; issue target 1e-15). Errors are `max |a - b| / max |b|`. On the MLP
  numpy's `tanh` and XLA's differ by up to a few 1e-16 relative, which the JVP amplifies to about
  2e-15 (`mlp_max_relative_error`); with XLA's `tanh` (and its derivative) as the dual numbers'
  elementary function the remaining difference is the order of the sums
  (`mlp_xla_tanh_max_relative_error`);
- the worked example traced as in the notes (section 3 and 4): forward mode needs one pass per
  input (`d node / dx`, `d node / dy` for `a = log x`, `b = y a`, `c = sqrt b`, `f = b + c`), reverse
  mode one pass from `f` back (`df / d node`); the two give the same gradient, equal to the closed
  form `df/dx = (y/x)(1 + 1/(2 sqrt(y log x)))`, `df/dy = log x (1 + 1/(2 sqrt(y log x)))`
  (`worked_example`, and the table `worked_example`);
- Jacobian chains `A_t ... A_1` with `A_k` of shape `(n_k, n_{k-1})`: the notes' costs
  `n_0 sum_{k=1}^{t-1} n_k n_{k+1}` (right to left, forward mode) and `n_t sum_{k=0}^{t-2} n_k n_{k+1}`
  (left to right, reverse mode), and the optimal parenthesisation by dynamic programming, each
  against the multiplications counted while multiplying and against XLA's flop count of the
  compiled product (`cost_analysis()["flops"] / 2`: a multiply-add per multiplication); the
  programme's optimum against enumeration of all parenthesisations; every order gives the same
  matrix (`chains`). Random chains have `t` in 3..8 factors, interior widths in 2..64 (XLA compiles
  a product contracting a dimension of 1 as an elementwise outer product, whose flops it counts
  otherwise) and end widths in 1..64; half of them end in width 1 (a scalar loss, where reverse
  mode is optimal), half do not. With the default seed, the quick preset's 20 chains match XLA
  exactly; among the full preset's 200, XLA's count differs from the formula by at most 2
  multiplications (`max_formula_vs_xla`; the cause has not been traced), while the counted
  multiplications match the formulas exactly.

Preset `quick`: 20 chains; the full preset 200.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .. import plots
from ..correspondences import forward_mode as fm
from ..harness.metrics import relative_max_error
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

POINTS = ((2.0, 3.0), (1.5, 0.7), (5.0, 10.0), (1.1, 0.2))
"""Points `(x, y)` of the worked example (`y log x > 0`); the first is the table's."""

MLP_WIDTHS = (4, 16, 16, 3)


@dataclass(frozen=True)
class AutodiffModesConfig:
    """Defaults of the autodiff-modes experiment.

    seed: seed of the MLP, its tangents and the random chains.
    chains: number of random Jacobian chains (the quick preset uses 20).
    tangents: random tangents of the MLP JVP check.
    quick: the small preset (< 1 minute).
    """

    seed: int = 0
    chains: int = 200
    tangents: int = 10
    quick: bool = False

    def __post_init__(self):
        if self.chains < 2:
            raise ValueError(f"config key 'chains' must be >= 2; got {self.chains}")
        if self.tangents < 1:
            raise ValueError(f"config key 'tangents' must be >= 1; got {self.tangents}")
        if self.quick and self.chains != AutodiffModesConfig.chains:
            raise ValueError("config key 'quick' replaces chains; do not also set chains")

    def chain_count(self) -> int:
        return 20 if self.quick else self.chains


def _worked_jax(x, y):
    return y * jnp.log(x) + jnp.sqrt(y * jnp.log(x))


def dual_checks(config: AutodiffModesConfig) -> dict:
    """Dual numbers against `jax.jvp`: the worked example and a tanh MLP."""
    worked = []
    for x, y in POINTS:
        for tangent in ((1.0, 0.0), (0.0, 1.0), (0.3, -0.7)):
            value, jvp = fm.jvp_dual(fm.worked_example, (x, y), tangent)
            ref_value, ref_jvp = jax.jvp(_worked_jax, (x, y), tangent)
            worked.append({"x": x, "y": y, "tangent": tangent, "dual": float(jvp), "jax_jvp": float(ref_jvp),
                           "relative_error": abs(float(jvp) - float(ref_jvp)) / abs(float(ref_jvp)),
                           "value_error": abs(float(value) - float(ref_value))})
    rng = np.random.default_rng(config.seed)
    weights = [rng.normal(scale=1 / np.sqrt(m), size=(n, m)) for m, n in zip(MLP_WIDTHS[:-1], MLP_WIDTHS[1:])]
    biases = [rng.normal(scale=0.1, size=n) for n in MLP_WIDTHS[1:]]

    def mlp(x, tanh):
        h = x
        for k, (W, b) in enumerate(zip(weights, biases)):
            h = W @ h + b
            h = tanh(h) if k < len(weights) - 1 else h
        return h

    x0 = rng.normal(size=MLP_WIDTHS[0])
    xla_tanh = fm.elementary(lambda a: np.asarray(jnp.tanh(a)), lambda a: 1.0 - np.asarray(jnp.tanh(a)) ** 2)
    mlp_errors, same_primitives = [], []
    for _ in range(config.tangents):
        v = rng.normal(size=MLP_WIDTHS[0])
        _, ref = jax.jvp(lambda x: mlp(x, jnp.tanh), (jnp.asarray(x0),), (jnp.asarray(v),))
        mlp_errors.append(relative_max_error(fm.jvp_dual(lambda x: mlp(x, fm.tanh), (x0,), (v,))[1], ref))
        same_primitives.append(relative_max_error(fm.jvp_dual(lambda x: mlp(x, xla_tanh), (x0,), (v,))[1], ref))
    return {"worked_example": worked,
            "worked_example_max_relative_error": max(w["relative_error"] for w in worked),
            "mlp": {"widths": list(MLP_WIDTHS), "tangents": config.tangents, "relative_error": mlp_errors,
                    "relative_error_xla_tanh": same_primitives},
            "mlp_max_relative_error": max(mlp_errors),
            "mlp_xla_tanh_max_relative_error": max(same_primitives)}


def worked_trace() -> dict:
    """The notes' traces at the first point: node values, forward mode in x and in y, reverse mode."""
    x, y = POINTS[0]
    values = fm.worked_example_values(x, y)
    fx, fy = fm.worked_example_forward(x, y, "x"), fm.worked_example_forward(x, y, "y")
    rev = fm.worked_example_reverse(x, y)
    closed = fm.worked_example_gradient(x, y)
    grad = [float(g) for g in jax.grad(_worked_jax, argnums=(0, 1))(x, y)]
    dual = [float(fm.jvp_dual(fm.worked_example, (x, y), t)[1]) for t in ((1.0, 0.0), (0.0, 1.0))]
    nodes = list(fm.WORKED_NODES)
    gradients = {"closed_form": list(closed), "forward_mode": [fx["f"], fy["f"]], "reverse_mode": [rev["x"], rev["y"]],
                 "dual_numbers": dual, "jax_grad": grad}
    return {
        "x": x, "y": y, "nodes": nodes,
        "values": [values[n] for n in nodes],
        "forward_d_dx": [float(fx[n]) for n in nodes],
        "forward_d_dy": [float(fy[n]) for n in nodes],
        "reverse_df_d": [float(rev[n]) for n in nodes],
        "passes": {"forward_mode": 2, "reverse_mode": 1},
        "gradients": gradients,
        "max_relative_error_vs_closed_form": max(relative_max_error(v, closed) for v in gradients.values()),
    }


def random_widths(rng: np.random.Generator, scalar_output: bool) -> list[int]:
    """`n_0 .. n_t`: `t` in 3..8, interior widths in 2..64 (XLA compiles a product whose contracted
    dimension is 1 as an elementwise outer product and counts it differently), ends in 1..64 or
    `n_t = 1`."""
    t = int(rng.integers(3, 9))
    widths = [int(w) for w in rng.integers(2, 65, size=t + 1)]
    widths[0] = int(rng.integers(1, 65))
    widths[-1] = int(rng.integers(1, 65))
    if scalar_output:
        widths[-1] = 1
    return widths


def xla_multiplications(order, mats: dict[int, jax.Array]) -> float:
    """XLA's flop count of the compiled product in `order`, halved (one multiply-add per multiplication)."""
    keys = sorted(mats)
    program = jax.jit(lambda *m: fm.evaluate_chain(order, dict(zip(keys, m)), jnp.matmul))
    cost = program.lower(*(mats[k] for k in keys)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / 2


def chain_checks(config: AutodiffModesConfig) -> dict:
    """Random chains: formulas, counted and XLA multiplications, the optimum against enumeration."""
    rng = np.random.default_rng(config.seed + 1)
    rows = []
    for i in range(config.chain_count()):
        widths = random_widths(rng, scalar_output=i % 2 == 0)
        t = len(widths) - 1
        mats = {k: rng.normal(size=(widths[k], widths[k - 1])) for k in range(1, t + 1)}
        optimum = fm.optimal_chain(widths)
        orders = {"forward": fm.forward_order(t), "reverse": fm.reverse_order(t), "optimal": optimum.order}
        formulas = {"forward": fm.forward_chain_cost(widths), "reverse": fm.reverse_chain_cost(widths),
                    "optimal": optimum.cost}
        counted = {k: fm.counted_multiplications(o, widths) for k, o in orders.items()}
        xla = {k: xla_multiplications(o, {j: jnp.asarray(m) for j, m in mats.items()}) for k, o in orders.items()}
        products = {k: fm.evaluate_chain(o, mats) for k, o in orders.items()}
        rows.append({
            "widths": widths, "scalar_output": widths[-1] == 1,
            "formula": formulas, "counted": counted, "xla": xla,
            "enumerated_minimum": min(c.cost for c in fm.all_chains(widths)),
            "products_max_relative_difference": max(relative_max_error(p, products["forward"]) for p in products.values()),
        })
    def worst(a: str, b: str) -> int:
        return int(max(abs(r[a][k] - r[b][k]) for r in rows for k in ("forward", "reverse", "optimal")))
    scalar = [r for r in rows if r["scalar_output"]]
    general = [r for r in rows if not r["scalar_output"]]
    return {
        "count": len(rows), "rows": rows,
        "max_formula_vs_counted": worst("formula", "counted"),
        "max_formula_vs_xla": worst("formula", "xla"),
        "optimal_vs_enumeration_max_difference": max(abs(r["formula"]["optimal"] - r["enumerated_minimum"]) for r in rows),
        "max_products_relative_difference": max(r["products_max_relative_difference"] for r in rows),
        "scalar_output_reverse_is_optimal": sum(r["formula"]["reverse"] == r["formula"]["optimal"] for r in scalar),
        "scalar_output_chains": len(scalar),
        "general_optimal_beats_both": sum(r["formula"]["optimal"] < min(r["formula"]["forward"], r["formula"]["reverse"])
                                          for r in general),
        "general_chains": len(general),
    }


def run(config: AutodiffModesConfig, folder: RunFolder, progress: Progress) -> dict:
    """Dual numbers, the worked-example trace, the chains; figure and tables."""
    progress(0, 4, "dual numbers against jax.jvp")
    results = {"dual": dual_checks(config)}
    progress(1, 4, "the worked example in forward and reverse mode")
    results["worked_example"] = worked_trace()
    progress(2, 4, f"{config.chain_count()} random Jacobian chains: formulas, counts, XLA flops")
    results["chains"] = chain_checks(config)
    c = results["chains"]
    folder.log(f"dual vs jax.jvp: worked example {results['dual']['worked_example_max_relative_error']:.2e}, "
               f"MLP {results['dual']['mlp_max_relative_error']:.2e}; chains: formula vs XLA {c['max_formula_vs_xla']}, "
               f"optimum vs enumeration {c['optimal_vs_enumeration_max_difference']}")
    progress(3, 4, "figure and tables")
    folder.save_figure(chain_figure(results["chains"]), "autodiff_modes")
    folder.save_table(trace_table(results["worked_example"]), "worked_example")
    folder.save_table(chain_table(results["chains"]), "chains")
    progress(4, 4, "done")
    return results


def chain_figure(c: dict):
    """Two panels: XLA's multiplications against the notes' formulas (every chain and order); the
    cost of forward and reverse order relative to the optimum, chains ending in width 1 or not."""
    fig, axes = plots.figure(ncols=2, panel_size=(4.6, 3.8))
    markers = {"forward": "o", "reverse": "s", "optimal": "^"}
    for k, (order, marker) in enumerate(markers.items()):
        axes[0].loglog([r["formula"][order] for r in c["rows"]], [r["xla"][order] for r in c["rows"]], marker,
                       ms=4, mfc="none", color=plots.LINE_COLOURS[k], label=order)
    lo = min(min(r["formula"].values()) for r in c["rows"])
    hi = max(max(r["formula"].values()) for r in c["rows"])
    axes[0].loglog([lo, hi], [lo, hi], color=plots.OKABE_ITO["black"], lw=0.8, ls=":", label="equal")
    axes[0].set_xlabel("multiplications, notes' formula / DP")
    axes[0].set_ylabel("XLA flops / 2 of the compiled product")
    axes[0].set_title(f"{c['count']} chains: largest difference {c['max_formula_vs_xla']}")
    axes[0].legend(loc="best")
    for k, scalar in enumerate((True, False)):
        rows = [r for r in c["rows"] if r["scalar_output"] == scalar]
        tag = "n_t = 1" if scalar else "n_t > 1"
        axes[1].loglog([r["formula"]["forward"] / r["formula"]["optimal"] for r in rows],
                       [r["formula"]["reverse"] / r["formula"]["optimal"] for r in rows], "o", ms=4,
                       color=plots.LINE_COLOURS[k], label=tag)
    axes[1].axhline(1, color=plots.OKABE_ITO["black"], lw=0.8, ls=":")
    axes[1].axvline(1, color=plots.OKABE_ITO["black"], lw=0.8, ls=":")
    axes[1].set_xlabel("forward-mode cost / optimal")
    axes[1].set_ylabel("reverse-mode cost / optimal")
    axes[1].set_title("order of the Jacobian product")
    axes[1].legend(loc="best")
    return fig


def trace_table(w: dict) -> Table:
    """The worked example node by node: value, forward mode in x and y, reverse mode."""
    rows = [[n, v, dx, dy, r] for n, v, dx, dy, r in
            zip(w["nodes"], w["values"], w["forward_d_dx"], w["forward_d_dy"], w["reverse_df_d"])]
    return Table(columns=["node", "value", "d node/dx (forward, pass 1)", "d node/dy (forward, pass 2)",
                          "df/d node (reverse, one pass)"], rows=rows,
                 caption=(f"f(x, y) = y log x + sqrt(y log x) at x = {w['x']:g}, y = {w['y']:g}: a = log x, b = y a, "
                          "c = sqrt b, f = b + c (Peyre's course notes, sections 3-4)"),
                 label="tab:autodiff-worked-example", digits=12)


def chain_table(c: dict) -> Table:
    """The first chains: widths and multiplications by order (formula = counted = XLA)."""
    rows = [[",".join(map(str, r["widths"])), r["formula"]["forward"], r["formula"]["reverse"], r["formula"]["optimal"],
             r["enumerated_minimum"], int(max(abs(r["formula"][k] - r["xla"][k]) for k in r["formula"]))]
            for r in c["rows"][:12]]
    return Table(columns=["widths n_0..n_t", "forward", "reverse", "optimal (DP)", "min over all orders",
                          "max |formula - XLA|"], rows=rows,
                 caption="Multiplications of Jacobian-chain products by order (first 12 random chains)",
                 label="tab:autodiff-chains", digits=0)


EXPERIMENT = Experiment(
    name="autodiff-modes",
    description="Dual numbers vs jax.jvp, the course notes' worked example in both modes, Jacobian-chain costs",
    config=AutodiffModesConfig(),
    run=run,
    headline=(
        "dual.worked_example_max_relative_error",
        "dual.mlp_max_relative_error",
        "dual.mlp_xla_tanh_max_relative_error",
        "worked_example.max_relative_error_vs_closed_form",
        "chains.max_formula_vs_xla",
        "chains.optimal_vs_enumeration_max_difference",
    ),
    figures={"autodiff_modes": "autodiff_modes"},
)
