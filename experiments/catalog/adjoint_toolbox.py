"""The adjoint-state toolbox: seven relatives of backprop, each measured against a reference.

Constructions in `experiments.correspondences` (one module each); every number
shown is in `results.json`.

1. gradient cost (`gradient_cost`): the gradient of `L(theta) = (1/2) sum_b
   tanh(theta . x_b)^2` with `p` parameters by forward finite differences
   (`p + 1` evaluations), forward mode (`p` JVPs) and reverse mode (one VJP).
   Cost = calls counted as the drivers make them; also XLA's flop count of
   the three programs over the flops of one evaluation, and wall time. Fitted
   log-log slopes against `p`: about 1, 1, 0. Errors against the closed-form
   gradient.
2. residual networks as time steps (`residual_time`): the `N`-layer ResNet
   `x + tau tanh(W_k x + b_k)`, `tau = T/N`, with `(W_k, b_k)` sampled from a
   smooth path; its per-layer gradient (least-action sweep) is O(tau) (fitted
   slope of the largest entry against `tau`: 1), and `(1/tau) dl/dtheta_k`
   converges at first order to the functional gradient `dl/dtheta(t)` of the
   ODE, computed by diffrax (Tsit5, tolerances 1e-12).
3. checkpointing (`checkpointing`): evaluations of `f` per gradient counted
   inside `integrators.sweep` for `StoreAll`, `Checkpoint(2)`,
   `Checkpoint.logarithmic()` and `Reversible()`, against `N`; stored states of
   each schedule and XLA's temporary buffer in units of one batched state.
4. reversible leapfrog (`reversible_leapfrog`): the splitting
   `r' = r + tau F(s)`, `s' = s + tau G(r')` of a separable tanh field and its
   exact inverse; the backward sweep rebuilds every `x_k` (max relative error
   over all steps reported), the `Reversible()` sweep's gradient equals
   `jax.grad` of the forward map, and the naive Euler back-step's O(tau) error
   is shown for contrast.
5. fixed-point layers (`fixed_point`): implicit gradient at `x_K` against
   `jax.grad` through `K` iterations, errors against `K` with fitted rates
   against the contraction factor; closed form of the linear layer.
6. argmin layers (`argmin`): envelope (Danskin) gradient, unrolled gradient
   through `K` descent steps and implicit gradient, with fitted rates (envelope
   ~ rho, unrolled and implicit ~ rho^2), the argmin Jacobian, and the
   quadratic closed form.
7. Sinkhorn (`sinkhorn`): gradient of the entropic OT value in `a` as
   `eps log u_L` (envelope), unrolled backprop and implicit differentiation
   against `L`, reference `f*` at convergence, checked by finite differences.

The `quick` preset shrinks every sweep (`QUICK_SIZES`), times each gradient
once instead of the median of 3, and skips XLA's memory statistics of the
checkpointing sweep (one more compilation per strategy and `N`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import numpy as np

from .. import plots
from ..correspondences import argmin, checkpointing, fixed_point, gradient_cost, residual_time, reversible_leapfrog, sinkhorn
from ..harness.metrics import relative_error
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

QUICK_SIZES = {
    "cost_params": "4,64",
    "resnet_steps": "10,20",
    "checkpoint_steps": "8,32",
    "reversible_steps": "10,100",
    "iterations": "1,5,9,13,17,21,25,29,33",
}
"""Sizes of the quick preset (`--set quick=true`): two points per fitted slope or order where a
size costs compilations (each parameter count and ResNet depth compiles its own programs; the
iteration counts share one program). The run is mostly XLA compilation (about 330 programs)
and figure drawing; 77 s on a loaded 2-core machine with three sizes, hence two."""


def _ints(text: str, key: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"config key {key!r} must be comma-separated integers; got {text!r}") from None
    if len(values) < 2 or any(v < 1 for v in values):
        raise ValueError(f"config key {key!r} needs at least two positive integers; got {text!r}")
    return values


@dataclass(frozen=True)
class ToolboxConfig:
    """Defaults of the adjoint-toolbox experiment.

    cost_params: parameter counts `p` of the gradient-cost sweep.
    resnet_steps: ResNet depths `N` (each divides the largest).
    resnet_horizon: horizon `T` of the ResNet / ODE.
    checkpoint_steps: step counts `N` of the checkpointing sweep.
    reversible_steps: step counts of the reversible-leapfrog runs (horizon `T = 10`).
    iterations: iteration counts `K` of the fixed-point, argmin (times 5) and Sinkhorn sweeps.
    contraction: spectral norm of `W` in the fixed-point layer.
    conditioning: condition number of `A` in the argmin energy.
    sinkhorn_eps: entropic regularisation of the Sinkhorn problem.
    seed: PRNG seed of every random problem.
    quick: replace the sizes by `QUICK_SIZES` (the whole run takes well under a minute).
    """

    cost_params: str = "2,4,8,16,32,64,128,256,512,1024"
    resnet_steps: str = "10,20,40,80,160,320,640"
    resnet_horizon: float = 2.0
    checkpoint_steps: str = "8,16,32,64,128,256,512,1024"
    reversible_steps: str = "10,100,1000,10000"
    iterations: str = "1,5,9,13,17,21,25,29,33,37,41,45,49,53,57,61"
    contraction: float = 0.95
    conditioning: float = 10.0
    sinkhorn_eps: float = 0.05
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        for key in QUICK_SIZES:
            _ints(getattr(self, key), key)
        if self.quick:
            defaults = ToolboxConfig.__dataclass_fields__
            changed = [k for k in QUICK_SIZES if getattr(self, k) != defaults[k].default]
            if changed:
                raise ValueError(f"config key 'quick' replaces {', '.join(QUICK_SIZES)}; do not also set {', '.join(changed)}")
        steps = _ints(self.resnet_steps, "resnet_steps")
        if any(max(steps) % n for n in steps):
            raise ValueError(f"config key 'resnet_steps': every depth must divide the largest; got {self.resnet_steps!r}")
        if not 0 < self.contraction < 1:
            raise ValueError(f"config key 'contraction' must be in (0, 1); got {self.contraction}")
        if self.conditioning < 1 or not self.sinkhorn_eps > 0 or not self.resnet_horizon > 0:
            raise ValueError("config keys 'conditioning' >= 1, 'sinkhorn_eps' > 0 and 'resnet_horizon' > 0 are required")

    def sizes(self, key: str) -> tuple[int, ...]:
        """The values of a size key actually run (the quick ones when `quick`)."""
        return _ints(QUICK_SIZES[key] if self.quick else getattr(self, key), key)


def _slope(x, y) -> float:
    return gradient_cost.loglog_slope(x, y)


# --- the seven measurements ---------------------------------------------------------------


def measure_gradient_cost(config: ToolboxConfig) -> dict:
    ps = config.sizes("cost_params")
    repeats = 1 if config.quick else 3
    points = [gradient_cost.measure(p, 8, jax.random.key(config.seed + p), repeats) for p in ps]
    out = {"params": list(ps), "batch": 8}
    for m in gradient_cost.METHODS:
        calls = [pt.calls[m] for pt in points]
        flops = [pt.flops_ratio[m] for pt in points]
        seconds = [pt.seconds[m] for pt in points]
        out[m] = {
            "calls": calls, "calls_slope": _slope(ps, calls),
            "flops_ratio": flops, "flops_ratio_slope": _slope(ps, flops),
            "seconds": seconds, "time_ratio_to_evaluation": [s / pt.seconds["evaluation"] for s, pt in zip(seconds, points)],
            "max_relative_error": max(pt.relative_error[m] for pt in points),
        }
    out["evaluation_seconds"] = [pt.seconds["evaluation"] for pt in points]
    return out


def measure_residual_time(config: ToolboxConfig) -> dict:
    path = residual_time.random_path(4, jax.random.key(config.seed), scale=1.5)
    curve_t = np.linspace(0, config.resnet_horizon, 201)
    runs, (dW, _) = residual_time.measure(path, config.resnet_horizon, config.sizes("resnet_steps"), curve_t)
    numbers = [r for r, _, _ in runs]
    taus = [r.tau for r in numbers]
    return {
        "steps": [r.steps for r in numbers], "tau": taus,
        "max_raw_gradient": [r.max_raw_gradient for r in numbers],
        "raw_gradient_slope": _slope(taus, [r.max_raw_gradient for r in numbers]),
        "normalised_relative_error": [r.normalised_relative_error for r in numbers],
        "normalised_error_order": _slope(taus, [r.normalised_relative_error for r in numbers]),
        "sweep_vs_jax_grad_max": max(r.sweep_vs_jax_grad for r in numbers),
        "curves": {  # entry W[0, 0]: the density and (1/tau) dl/dW_k of each depth
            "t": curve_t.tolist(), "density_W00": np.asarray(dW[:, 0, 0]).tolist(),
            "depths": {str(r.steps): {"t": ts.tolist(), "normalised_W00": g[:, 0].tolist()} for r, ts, g in runs},
        },
    }


def measure_checkpointing(config: ToolboxConfig) -> dict:
    steps = config.sizes("checkpoint_steps")
    out = {"steps": list(steps)}
    counts = {}
    for name in checkpointing.STRATEGIES:
        evaluations, recon = zip(*(checkpointing.field_evaluations(name, n, seed=config.seed) for n in steps))
        counts[name] = evaluations
        out[name] = {
            "scheme": checkpointing.scheme_for(name),
            "field_evaluations": list(evaluations),
            "stored_states": [checkpointing.stored_states(name, n) for n in steps],
            # XLA's memory statistics need one more compilation per (strategy, N): full preset only
            "compiled_state_count": (None if config.quick else
                                     [checkpointing.compiled_state_count(name, n) for n in steps]),
        }
        if recon[0] is not None:
            out[name]["reconstruction_error_max"] = max(recon)
    # the baseline of the reversible strategy: its own scheme with every state stored
    base_rev = [checkpointing.field_evaluations("store-all", n, seed=config.seed, scheme="asynchronous-leapfrog")[0]
                for n in steps]
    out["reversible"]["store_all_field_evaluations"] = base_rev
    for name in checkpointing.STRATEGIES:
        base = base_rev if name == "reversible" else counts["store-all"]
        extra = [(c - b) / n for c, b, n in zip(counts[name], base, steps)]
        out[name]["extra_evaluations_per_step"] = extra
        states = out[name]["stored_states"]
        out[name]["stored_states_slope"] = _slope(steps, states)
    logs = np.log2(np.asarray(steps, float))
    out["checkpoint-log"]["extra_per_step_vs_log2N_slope"] = float(
        np.polyfit(logs, out["checkpoint-log"]["extra_evaluations_per_step"], 1)[0])
    out["checkpoint-log"]["stored_states_vs_log2N_slope"] = float(
        np.polyfit(logs, out["checkpoint-log"]["stored_states"], 1)[0])
    return out


def measure_reversible(config: ToolboxConfig) -> dict:
    rows, curves = [], {}
    for n in config.sizes("reversible_steps"):
        r, per_step = reversible_leapfrog.measure(n, dim=4, t_final=10.0, seed=config.seed)
        rows.append(r._asdict())
        curves[str(n)] = per_step[:: max(1, n // 200)].tolist()
    return {"runs": rows, "per_step_error": curves,
            "max_reconstruction_error": max(r["max_error"] for r in rows),
            "max_gradient_relative_error": max(r["gradient_relative_error"] for r in rows),
            "euler_backstep_errors": [r["euler_backstep_error"] for r in rows]}


def measure_fixed_point(config: ToolboxConfig) -> dict:
    ks = config.sizes("iterations")
    layer, theta = fixed_point.random_layer(6, 3, jax.random.key(config.seed), config.contraction)
    e = fixed_point.errors_against_iterations(layer, theta, ks)
    linear, theta_lin = fixed_point.random_layer(6, 3, jax.random.key(config.seed + 1), config.contraction, "identity")
    _, closed = fixed_point.linear_closed_form(linear, theta_lin)
    x_star = fixed_point.newton_fixed_point(linear, theta_lin)
    implicit = fixed_point.implicit_gradient(linear, theta_lin, x_star)
    closed_linear = {k: closed[k] for k in theta_lin}
    return {
        "iterations": list(ks), "contraction_factor": e.contraction,
        "unrolled_error": e.unrolled.tolist(), "implicit_error": e.implicit.tolist(), "fixed_point_distance": e.residual.tolist(),
        "unrolled_rate": fixed_point.fitted_rate(ks, e.unrolled), "implicit_rate": fixed_point.fitted_rate(ks, e.implicit),
        "linear_closed_form_relative_error": relative_error(implicit, closed_linear),
    }


def measure_argmin(config: ToolboxConfig) -> dict:
    ks = tuple(5 * k for k in config.sizes("iterations"))
    energy, theta = argmin.random_energy(8, 3, jax.random.key(config.seed), config.conditioning, 1.0)
    e = argmin.errors_against_steps(energy, theta, ks)
    quad, theta_q = argmin.random_energy(8, 3, jax.random.key(config.seed + 1), config.conditioning, 0.0)
    _, closed = argmin.quadratic_closed_form(quad, theta_q)
    envelope = np.asarray(argmin.envelope_gradient(quad, theta_q, argmin.newton_argmin(quad, theta_q)))
    rate = lambda v: fixed_point.fitted_rate(ks, v)  # noqa: E731
    return {
        "steps": list(ks), "distance": e.distance.tolist(),
        "envelope_error": e.envelope.tolist(), "unrolled_error": e.unrolled.tolist(), "implicit_error": e.implicit.tolist(),
        "jacobian_unrolled_error": e.jacobian_unrolled.tolist(), "jacobian_implicit_error": e.jacobian_implicit.tolist(),
        "rates": {"distance": rate(e.distance), "envelope": rate(e.envelope), "unrolled": rate(e.unrolled),
                  "implicit": rate(e.implicit), "jacobian_unrolled": rate(e.jacobian_unrolled),
                  "jacobian_implicit": rate(e.jacobian_implicit)},
        "quadratic_closed_form_relative_error": relative_error(envelope, closed),
    }


def measure_sinkhorn(config: ToolboxConfig) -> dict:
    ks = config.sizes("iterations")
    problem = sinkhorn.random_problem(20, 25, jax.random.key(config.seed), config.sinkhorn_eps)
    e = sinkhorn.errors_against_iterations(problem, ks)
    rate = lambda v: fixed_point.fitted_rate(ks, v, floor=1e-12)  # noqa: E731
    return {
        "iterations": list(ks), "eps": config.sinkhorn_eps, "marginal_error": e.marginal.tolist(),
        "envelope_error": e.envelope.tolist(), "unrolled_error": e.unrolled.tolist(), "implicit_error": e.implicit.tolist(),
        "rates": {"marginal": rate(e.marginal), "envelope": rate(e.envelope), "unrolled": rate(e.unrolled),
                  "implicit": rate(e.implicit)},
        "finite_difference_relative_error": sinkhorn.finite_difference_check(problem, [(0, 1), (3, 7), (10, 19)]),
    }


ITEMS = (
    ("gradient_cost", "cost of a gradient: finite differences, forward and reverse mode", measure_gradient_cost),
    ("residual_time", "ResNet as a time discretisation: the 1/tau normalisation", measure_residual_time),
    ("checkpointing", "checkpointing: memory against recomputation", measure_checkpointing),
    ("reversible_leapfrog", "reversible leapfrog: exact reconstruction of the forward pass", measure_reversible),
    ("fixed_point", "fixed-point layers: implicit vs unrolled", measure_fixed_point),
    ("argmin", "argmin layers: envelope theorem vs unrolled", measure_argmin),
    ("sinkhorn", "Sinkhorn: envelope, unrolled, implicit", measure_sinkhorn),
)


def run(config: ToolboxConfig, folder: RunFolder, progress: Progress) -> dict:
    """Every toolbox item, its figure, then the summary table."""
    total = len(ITEMS) + 1
    results = {}
    for i, (key, description, measure) in enumerate(ITEMS):
        progress(i, total, description)
        start = time.perf_counter()
        results[key] = measure(config)
        folder.save_figure(FIGURES[key](results[key]), key)
        folder.log(f"{key}: done in {time.perf_counter() - start:.1f} s")
    progress(len(ITEMS), total, "table: summary")
    folder.save_table(summary_table(results), "adjoint_toolbox")
    progress(total, total, "done")
    return results


# --- figures ------------------------------------------------------------------------------


def _loglog(ax, x, series: dict, xlabel, ylabel, title, slopes: dict | None = None):
    for label, y in series.items():
        tag = f" (slope {slopes[label]:.2f})" if slopes and label in slopes else ""
        ax.loglog(x, np.maximum(np.asarray(y, float), 1e-17), "o-", ms=3, label=label + tag)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")


def _semilogy(ax, x, series: dict, xlabel, ylabel, title, rates: dict | None = None):
    for label, y in series.items():
        tag = f" (rate {rates[label]:.3f})" if rates and label in rates else ""
        ax.semilogy(x, np.maximum(np.asarray(y, float), 1e-17), "o-", ms=3, label=label + tag)
    ax.axhline(np.finfo(np.float64).eps, color=plots.OKABE_ITO["black"], ls=":", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")


def gradient_cost_figure(r: dict):
    fig, axes = plots.figure(ncols=3, panel_size=(4.0, 3.4))
    ps = r["params"]
    for ax, key, ylabel, title in (
        (axes[0], "calls", "calls (evaluations / JVPs / VJPs)", "counted calls"),
        (axes[1], "flops_ratio", "XLA flops / flops of one evaluation", "XLA cost model"),
        (axes[2], "time_ratio_to_evaluation", "time / time of one evaluation", "wall time (indicative)"),
    ):
        series = {m: r[m][key] for m in gradient_cost.METHODS}
        slopes = {m: _slope(ps, r[m][key]) for m in gradient_cost.METHODS}
        _loglog(ax, ps, series, "parameters $p$", ylabel, title, slopes)
    return fig


def residual_time_figure(r: dict):
    fig, axes = plots.figure(ncols=2, panel_size=(4.6, 3.6))
    c = r["curves"]
    axes[0].plot(c["t"], c["density_W00"], color=plots.OKABE_ITO["black"], lw=2, label=r"ODE: $\partial l/\partial W_{00}(t)$")
    for n, d in c["depths"].items():
        axes[0].plot(d["t"], d["normalised_W00"], ".", ms=3, label=rf"$N$={n}: $\tau^{{-1}}\,\partial l/\partial W_{{k,00}}$")
    axes[0].set_xlabel("$t$")
    axes[0].set_ylabel("gradient density")
    axes[0].set_title(r"$(1/\tau)\,$ResNet gradient $\to$ ODE gradient")
    axes[0].legend(loc="best", fontsize=6)
    _loglog(axes[1], r["tau"], {"normalised error": r["normalised_relative_error"], "raw max gradient": r["max_raw_gradient"]},
            r"step $\tau = T/N$", "size", "first order in $\\tau$",
            {"normalised error": r["normalised_error_order"], "raw max gradient": r["raw_gradient_slope"]})
    return fig


def checkpointing_figure(r: dict):
    fig, axes = plots.figure(ncols=3, panel_size=(4.0, 3.4))
    n = r["steps"]
    names = list(checkpointing.STRATEGIES)
    _loglog(axes[0], n, {s: r[s]["stored_states"] for s in names}, "steps $N$", "stored states (schedule)",
            "memory", {s: r[s]["stored_states_slope"] for s in names})
    compiled = {s: r[s]["compiled_state_count"] for s in names
                if r[s]["compiled_state_count"] is not None and None not in r[s]["compiled_state_count"]}
    if compiled:
        _loglog(axes[1], n, compiled, "steps $N$", "XLA temp bytes / bytes of one state", "memory (compiled)")
    else:
        axes[1].text(0.5, 0.5, "XLA memory statistics:\nfull preset only", ha="center", va="center",
                     transform=axes[1].transAxes)
        axes[1].set_axis_off()
    for s in names:
        axes[2].semilogx(n, r[s]["extra_evaluations_per_step"], "o-", ms=3, label=s, base=2)
    axes[2].set_xlabel("steps $N$")
    axes[2].set_ylabel("extra evaluations of $f$ per step")
    axes[2].set_title("recomputation (counted)")
    axes[2].legend(loc="best")
    return fig


def reversible_figure(r: dict):
    fig, axes = plots.figure(ncols=2, panel_size=(4.6, 3.6))
    for n, err in r["per_step_error"].items():
        k = np.linspace(0, 1, len(err))
        axes[0].semilogy(k, np.maximum(err, 1e-18), lw=0.8, label=f"$N$ = {n}")
    axes[0].axhline(np.finfo(np.float64).eps, color=plots.OKABE_ITO["black"], ls=":", lw=0.8, label="float64 eps")
    axes[0].set_xlabel("$k / N$")
    axes[0].set_ylabel(r"$|x_k^{rec} - x_k|_\infty / \max|x|$")
    axes[0].set_title("reconstruction in the backward sweep")
    axes[0].legend(loc="best")
    steps = [run["steps"] for run in r["runs"]]
    _loglog(axes[1], steps, {"reversible leapfrog": [run["error_at_x0"] for run in r["runs"]],
                             "Euler run backwards": r["euler_backstep_errors"],
                             "gradient vs jax.grad": [run["gradient_relative_error"] for run in r["runs"]]},
            "steps $N$ ($T$ = 10)", "relative error at $x_0$", "reversible vs naive back-step")
    return fig


def fixed_point_figure(r: dict):
    fig, axes = plots.figure(ncols=1, panel_size=(5.0, 3.8))
    _semilogy(axes[0], r["iterations"], {"unrolled backprop": r["unrolled_error"], "implicit at $x_K$": r["implicit_error"],
                                         r"$|x_K - x^*|$": r["fixed_point_distance"]},
              "iterations $K$", "relative gradient error",
              rf"fixed-point layer ($\rho$ = {r['contraction_factor']:.3f})",
              {"unrolled backprop": r["unrolled_rate"], "implicit at $x_K$": r["implicit_rate"]})
    return fig


def argmin_figure(r: dict):
    fig, axes = plots.figure(ncols=2, panel_size=(4.6, 3.6))
    rates = r["rates"]
    _semilogy(axes[0], r["steps"], {"envelope (Danskin)": r["envelope_error"], "unrolled": r["unrolled_error"],
                                    "implicit": r["implicit_error"], r"$|x_K - x^*|$": r["distance"]},
              "descent steps $K$", "relative error of $dV/d\\theta$", "value gradient",
              {"envelope (Danskin)": rates["envelope"], "unrolled": rates["unrolled"], "implicit": rates["implicit"],
               r"$|x_K - x^*|$": rates["distance"]})
    _semilogy(axes[1], r["steps"], {"unrolled": r["jacobian_unrolled_error"], "implicit": r["jacobian_implicit_error"]},
              "descent steps $K$", r"relative error of $dx^*/d\theta$", "argmin Jacobian",
              {"unrolled": rates["jacobian_unrolled"], "implicit": rates["jacobian_implicit"]})
    return fig


def sinkhorn_figure(r: dict):
    fig, axes = plots.figure(ncols=1, panel_size=(5.0, 3.8))
    rates = r["rates"]
    _semilogy(axes[0], r["iterations"], {r"envelope $\varepsilon \log u_L$": r["envelope_error"], "unrolled": r["unrolled_error"],
                                         "implicit": r["implicit_error"], "marginal error": r["marginal_error"]},
              "Sinkhorn iterations $L$", r"relative error of $\nabla_a W$ (centred)",
              rf"Sinkhorn, $\varepsilon$ = {r['eps']:g}",
              {r"envelope $\varepsilon \log u_L$": rates["envelope"], "unrolled": rates["unrolled"],
               "implicit": rates["implicit"], "marginal error": rates["marginal"]})
    return fig


FIGURES = {
    "gradient_cost": gradient_cost_figure, "residual_time": residual_time_figure, "checkpointing": checkpointing_figure,
    "reversible_leapfrog": reversible_figure, "fixed_point": fixed_point_figure, "argmin": argmin_figure,
    "sinkhorn": sinkhorn_figure,
}


def summary_table(r: dict) -> Table:
    """One row per check: item, quantity, measured value, expected."""
    g, c = r["gradient_cost"], r["checkpointing"]
    rows = [
        ["gradient cost", "slope of calls: finite differences", g["finite-differences"]["calls_slope"], "1"],
        ["gradient cost", "slope of calls: forward mode", g["forward-mode"]["calls_slope"], "1"],
        ["gradient cost", "slope of calls: reverse mode", g["reverse-mode"]["calls_slope"], "0"],
        ["gradient cost", "slope of XLA flops ratio: finite differences", g["finite-differences"]["flops_ratio_slope"], "1"],
        ["gradient cost", "slope of XLA flops ratio: forward mode", g["forward-mode"]["flops_ratio_slope"], "1"],
        ["gradient cost", "slope of XLA flops ratio: reverse mode", g["reverse-mode"]["flops_ratio_slope"], "0"],
        ["residual time", "order of (1/tau) gradient error", r["residual_time"]["normalised_error_order"], "1"],
        ["residual time", "slope of raw per-layer gradient", r["residual_time"]["raw_gradient_slope"], "1"],
        ["residual time", "sweep vs jax.grad (rel.)", r["residual_time"]["sweep_vs_jax_grad_max"], "<= 1e-12"],
        ["checkpointing", "stored-state slope: store-all", c["store-all"]["stored_states_slope"], "1"],
        ["checkpointing", "stored-state slope: checkpoint-sqrt", c["checkpoint-sqrt"]["stored_states_slope"], "0.5"],
        ["checkpointing", "extra f-evals per step vs log2 N: checkpoint-log", c["checkpoint-log"]["extra_per_step_vs_log2N_slope"], "1/2"],
        ["checkpointing", "stored states vs log2 N: checkpoint-log", c["checkpoint-log"]["stored_states_vs_log2N_slope"], "1"],
        ["reversible leapfrog", "max reconstruction error (rel.)", r["reversible_leapfrog"]["max_reconstruction_error"], "rounding"],
        ["reversible leapfrog", "gradient vs jax.grad (rel.)", r["reversible_leapfrog"]["max_gradient_relative_error"], "<= 1e-12"],
        ["fixed point", "contraction factor rho", r["fixed_point"]["contraction_factor"], ""],
        ["fixed point", "rate: unrolled", r["fixed_point"]["unrolled_rate"], "~ rho"],
        ["fixed point", "rate: implicit", r["fixed_point"]["implicit_rate"], "~ rho"],
        ["fixed point", "linear layer vs closed form", r["fixed_point"]["linear_closed_form_relative_error"], "<= 1e-12"],
        ["argmin", "rate: distance to x*", r["argmin"]["rates"]["distance"], "rho"],
        ["argmin", "rate: envelope", r["argmin"]["rates"]["envelope"], "rho"],
        ["argmin", "rate: unrolled", r["argmin"]["rates"]["unrolled"], "~ rho^2"],
        ["argmin", "rate: implicit", r["argmin"]["rates"]["implicit"], "~ rho^2"],
        ["argmin", "quadratic vs closed form", r["argmin"]["quadratic_closed_form_relative_error"], "<= 1e-12"],
        ["sinkhorn", "rate: marginal error", r["sinkhorn"]["rates"]["marginal"], "rho"],
        ["sinkhorn", "rate: envelope", r["sinkhorn"]["rates"]["envelope"], "rho"],
        ["sinkhorn", "rate: unrolled", r["sinkhorn"]["rates"]["unrolled"], "~ rho^2"],
        ["sinkhorn", "rate: implicit", r["sinkhorn"]["rates"]["implicit"], "~ rho^2"],
        ["sinkhorn", "f* vs finite differences (rel.)", r["sinkhorn"]["finite_difference_relative_error"], "~ 1e-8"],
    ]
    return Table(columns=["item", "quantity", "measured", "expected"], rows=rows,
                 caption="Adjoint-state toolbox: fitted slopes, rates and exact identities (float64)",
                 label="tab:adjoint-toolbox", digits=4)


EXPERIMENT = Experiment(
    name="adjoint-toolbox",
    description="gradient cost, ResNet as time steps, checkpointing, reversible leapfrog, fixed-point, argmin, Sinkhorn",
    config=ToolboxConfig(),
    run=run,
    headline=(
        "gradient_cost.finite-differences.calls_slope",
        "gradient_cost.forward-mode.calls_slope",
        "gradient_cost.reverse-mode.calls_slope",
        "residual_time.normalised_error_order",
        "reversible_leapfrog.max_reconstruction_error",
        "fixed_point.implicit_rate",
        "argmin.rates.envelope",
        "argmin.rates.unrolled",
        "sinkhorn.rates.envelope",
        "sinkhorn.rates.unrolled",
    ),
    figures={f"adjoint_toolbox_{key}": key for key in FIGURES},
)
