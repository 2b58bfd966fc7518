"""The beta sweep of the doubled action (docs/design.md 2.2, Galley's doubled variables).

System: the 2-D neural ODE `dx/dt = tanh(W x + b)` on `steps` steps of the
explicit Runge-Kutta `method` up to `t_final` (parameters from `seed`), a
batch of `batch` points on a circle, `l = (1/B) sum_b 0.5 |x_N^b - y^b|^2`
with random targets `y`. For each `beta` in a log-spaced range the doubled
action `S_beta[x+, x-]` is solved by `integrators.tension`. Measured against
the least-action sweep at `beta = 1` (`x`, `p`, `dl/dtheta`):

- `max |x+ - x|`: the forward manifold does not move, whatever `beta`;
- `|x-/beta - p| / |p|` (max over the trajectory): the tension is the conjugate field;
- `|(dS_beta/dtheta)/beta - dl/dtheta| / |dl/dtheta|`.

Beside it, the finite-difference nudge along a random unit direction `e` of
parameter space, `(l(theta + beta e) - l(theta - beta e)) / (2 beta)`,
against the exact directional derivative `dl/dtheta . e`: its error falls as
`beta^2` until rounding (`~eps l / beta`) takes over, so the fitted slope over
`beta >= fd_fit_min` is about 2. The tension method has no such curve: its
error is rounding at every `beta`.

Figures: `tension_error_vs_beta` (the three tension errors and the
finite-difference error against `beta`, log-log, with fitted slopes) and
`copies` (the copies `x1 = x+ + x-/2`, `x2 = x+ - x-/2` of two samples
separating from the forward trajectory as `beta` grows).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..harness.metrics import relative
from ..config import check_quick
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table


@dataclass(frozen=True)
class GalleyTensionConfig:
    """Defaults of the beta sweep.

    seed: PRNG seed of the weights, the targets and the direction `e`.
    steps, t_final, method: the discretisation of the neural ODE.
    batch: number of initial points.
    scale: weight scale of the neural ODE.
    beta_min, beta_max, betas: `betas` log-spaced values from `beta_min` to `beta_max`.
    fd_fit_min: the finite-difference slope is fitted over `beta >= fd_fit_min`.
    quick: the small preset (`steps` 20, `betas` 9).
    """

    seed: int = 0
    steps: int = 100
    t_final: float = 2.0
    method: str = "rk4"
    batch: int = 8
    scale: float = 1.5
    beta_min: float = 1e-8
    beta_max: float = 1.0
    betas: int = 33
    fd_fit_min: float = 1e-3
    quick: bool = False

    def __post_init__(self):
        if self.steps < 1 or self.batch < 1 or self.betas < 2:
            raise ValueError(f"config keys 'steps', 'batch' >= 1 and 'betas' >= 2; got {self.steps}, "
                             f"{self.batch}, {self.betas}")
        if not 0 < self.beta_min < self.beta_max:
            raise ValueError(f"config keys need 0 < beta_min < beta_max; got {self.beta_min}, {self.beta_max}")
        if not self.t_final > 0:
            raise ValueError(f"config key 't_final' must be > 0; got {self.t_final}")
        check_quick(self, ("steps", "betas"))
        try:
            integrators.tableau(self.method)
        except ValueError as error:
            raise ValueError(f"config key 'method': {error}") from None

    def sizes(self) -> tuple[int, int]:
        """`(steps, number of betas)` actually run."""
        return (20, 9) if self.quick else (self.steps, self.betas)


def _flat(tree) -> jnp.ndarray:
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def run(config: GalleyTensionConfig, folder: RunFolder, progress: Progress) -> dict:
    steps, count = config.sizes()
    betas = np.logspace(np.log10(config.beta_min), np.log10(config.beta_max), count)
    total = count + 3
    k_theta, k_target, k_dir = jax.random.split(jax.random.key(config.seed), 3)
    field = lagrangian.NeuralODE(state_dim=2, scale=config.scale)
    system = integrators.discretise(field, integrators.uniform_grid(config.t_final, steps), config.method)
    theta = system.init(k_theta)
    angles = 2 * np.pi * np.arange(config.batch) / config.batch
    x0 = jnp.asarray(1.5 * np.stack([np.cos(angles), np.sin(angles)], axis=-1))
    loss = lagrangian.SquaredError(target=jax.random.normal(k_target, x0.shape, x0.dtype))

    progress(1, total, "least-action sweep at beta = 1 (x, p, dl/dtheta)")
    sol = integrators.sweep(system, theta, x0, loss)
    xs, ps, grad = np.asarray(sol.xs), np.asarray(sol.ps), np.asarray(_flat(sol.grad))
    leaves, treedef = jax.tree.flatten(theta)
    direction = jax.random.normal(k_dir, grad.shape, grad.dtype)
    direction = direction / jnp.linalg.norm(direction)
    exact_directional = float(grad @ np.asarray(direction))

    def unflatten(flat):
        out, i = [], 0
        for leaf in leaves:
            out.append(flat[i:i + leaf.size].reshape(leaf.shape))
            i += leaf.size
        return jax.tree.unflatten(treedef, out)

    theta_flat = _flat(theta)
    loss_at = jax.jit(lambda flat: loss(integrators.output(system, unflatten(flat), x0)))

    def tension(beta):
        """`integrators.tension` (the sweep with `p_N = beta grad l`), `beta` traced: one compile for all."""
        return integrators.sweep(system, theta, x0, loss, loss_weight=beta)

    rows, copies = [], {}
    for i, beta in enumerate(betas):
        progress(2 + i, total, f"beta = {beta:.3g}: tension and finite-difference nudge")
        doubled = tension(jnp.asarray(beta))
        x_plus, x_minus, grad_beta = np.asarray(doubled.xs), np.asarray(doubled.ps), doubled.grad
        nudge = (float(loss_at(theta_flat + beta * direction)) - float(loss_at(theta_flat - beta * direction))) / (2 * beta)
        rows.append({
            "beta": float(beta),
            "max_abs_x_plus_minus_x": float(np.max(np.abs(x_plus - xs))),
            "x_minus_over_beta_relative_error": relative(np.max(np.abs(x_minus / beta - ps)), np.max(np.abs(ps))),
            "gradient_over_beta_relative_error": relative(
                np.linalg.norm(np.asarray(_flat(grad_beta)) / beta - grad), np.linalg.norm(grad)),
            "finite_difference": nudge,
            "finite_difference_relative_error": relative(abs(nudge - exact_directional), abs(exact_directional)),
        })
        copies[float(beta)] = lagrangian.copies(x_plus, x_minus)

    fd = np.array([r["finite_difference_relative_error"] for r in rows])
    fit = betas >= config.fd_fit_min
    slope = plots.fitted_order(betas[fit], fd[fit])
    summary = {
        "max_abs_x_plus_minus_x": max(r["max_abs_x_plus_minus_x"] for r in rows),
        "max_x_minus_over_beta_relative_error": max(r["x_minus_over_beta_relative_error"] for r in rows),
        "max_gradient_over_beta_relative_error": max(r["gradient_over_beta_relative_error"] for r in rows),
        "finite_difference_fitted_order": slope,
        "finite_difference_fit_range": [float(betas[fit].min()), float(betas[fit].max())] if fit.any() else None,
        "finite_difference_best_relative_error": float(fd.min()),
        "finite_difference_best_beta": float(betas[int(np.argmin(fd))]),
    }
    folder.log(f"tension: x+ moves by at most {summary['max_abs_x_plus_minus_x']:.2e}; x-/beta vs p "
               f"{summary['max_x_minus_over_beta_relative_error']:.2e}; gradient "
               f"{summary['max_gradient_over_beta_relative_error']:.2e}; finite differences order {slope}")

    progress(total - 1, total, "figures")
    fig, axes = plots.figure(ncols=2, panel_size=(5.2, 4.2))
    ax = axes[0]
    floor = 1e-18
    for key, label in (("x_minus_over_beta_relative_error", r"tension: $|x^-/\beta - p|\,/\,|p|$"),
                       ("gradient_over_beta_relative_error", r"tension: $|S_\beta'/\beta - l'|\,/\,|l'|$"),
                       ("max_abs_x_plus_minus_x", r"tension: $\max|x^+ - x|$ (exact 0 drawn at $10^{-18}$)")):
        ax.loglog(betas, np.maximum([r[key] for r in rows], floor), marker="o", ms=3, label=label)
    shown = f" (slope {slope:.2f} for beta >= {config.fd_fit_min:g})" if slope is not None else ""
    ax.loglog(betas, np.maximum(fd, floor), marker="s", ms=3, color="k", label="finite-difference nudge" + shown)
    ax.axhline(np.finfo(np.float64).eps, color="0.5", ls=":", lw=0.8, label="float64 eps")
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel("relative error")
    ax.set_title(r"doubled action: tension vs nudge, error vs $\beta$")
    ax.legend(loc="best", fontsize=7)
    shown_betas = [b for b in (betas[-1], betas[len(betas) // 2 + len(betas) // 4]) if b in copies]
    for j, beta in enumerate(sorted(set(shown_betas), reverse=True)):
        x1, x2 = copies[beta]
        for sample in (0, config.batch // 2):
            plots.doubled_copies(axes[1], np.asarray(x1)[:, sample], np.asarray(x2)[:, sample],
                                 name=rf"$\beta={beta:.2g}$", colour=plots.LINE_COLOURS[j], legend=sample == 0)
    axes[1].plot(xs[:, 0, 0], xs[:, 0, 1], color="k", lw=0.8, ls=":", label="forward $x$")
    axes[1].plot(xs[:, config.batch // 2, 0], xs[:, config.batch // 2, 1], color="k", lw=0.8, ls=":")
    axes[1].legend(loc="best", fontsize=7)
    axes[1].set_title("copies $x^{(1)}, x^{(2)}$ separate; $x^+$ stays on $x$")
    folder.save_figure(fig, "tension_error_vs_beta")
    folder.save_table(Table(
        columns=["beta", "max abs(x+ - x)", "rel. err. x-/beta vs p", "rel. err. dS/dtheta / beta", "finite diff.",
                 "rel. err. finite diff."],
        rows=[[r["beta"], r["max_abs_x_plus_minus_x"], r["x_minus_over_beta_relative_error"],
               r["gradient_over_beta_relative_error"], r["finite_difference"], r["finite_difference_relative_error"]]
              for r in rows],
        caption=(f"Doubled action S_beta: 2-D neural ODE, {steps} {config.method} steps to T = {config.t_final:g}, "
                 f"batch {config.batch}; exact directional derivative {exact_directional:.6g}"),
        label="tab:galley-tension"), "beta_sweep")
    progress(total, total, "done")
    return {"steps": steps, "loss": float(sol.loss), "exact_directional_derivative": exact_directional,
            "summary": summary, "betas": rows}


EXPERIMENT = Experiment(
    name="galley-tension",
    description="doubled action S_beta: x+ fixed, x- = beta p for every beta, vs the O(beta^2) finite-difference nudge",
    config=GalleyTensionConfig(),
    run=run,
    headline=("summary.max_abs_x_plus_minus_x", "summary.max_x_minus_over_beta_relative_error",
              "summary.max_gradient_over_beta_relative_error", "summary.finite_difference_fitted_order"),
    figures={"galley_tension_error_vs_beta": "tension_error_vs_beta"},
)
