"""Phase portraits: forward and conjugate fields, doubled copies and `H` along the flow.

Three planar systems, each discretised on a uniform grid of `steps` steps up
to `t_final` by the explicit Runge-Kutta `method`:

    oscillator   dq/dt = v, dv/dt = -omega^2 q            (lagrangian.HarmonicOscillator)
    pendulum     dq/dt = v, dv/dt = -omega^2 sin q        (lagrangian.Pendulum)
    neural ODE   dx/dt = tanh(W x + b), W, b from `seed`  (lagrangian.NeuralODE)

A batch of `batch` initial points (on the `q` axis for the mechanical systems,
on a circle for the neural ODE) flows forward; the loss is
`l = (1/B) sum_b 0.5 |x_N^b - y|^2` with the target point `y = TARGET`. The least-action sweep gives the forward
field `x_k`, the conjugate field `p_k = dl/dx_k` and `dl/dtheta`, checked
against `jax.grad` through the forward map. Then, per system:

- `H = p . f(x)` along each trajectory (conserved by the continuous flow; its
  drift on the grid, `max_t |H(t) - H(0)| / max_t |H(t)|`, is discretisation error);
- the doubled copies (docs/design.md 2.2): `integrators.tension` at each `beta` in
  `betas` gives `x+` and `x-`; the identities `x+ = x` (the forward pass does
  not move) and `x- = beta p` are measured, and the copies
  `x1 = x+ + x-/2`, `x2 = x+ - x-/2` are drawn separating;
- for the mechanical systems, the drift of the physical energy.

Figure `phase_portraits`: one row per system: `x` over the streamlines of
`f`; `p` (swept `k = N -> 0`) over the streamlines of `p -> J^T p` with
`J = df/dx` at the origin (exact for the linear oscillator, frozen at the
origin for the others); the copies `x1`, `x2` of sample 0; `H(t)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..harness.metrics import compare_gradients
from ..config import check_quick
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

SYSTEMS = ("oscillator", "pendulum", "neural-ode")
TARGET = (1.0, 0.5)
"""The point every trajectory is asked to end at (off the origin, so that `H = p . f` is not
identically zero for the oscillator, whose flow conserves `|x|`)."""


def _floats(text: str, key: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"config key {key!r} must be comma-separated numbers; got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise ValueError(f"config key {key!r} needs numbers > 0; got {text!r}")
    return values


@dataclass(frozen=True)
class PhasePortraitsConfig:
    """Defaults of the phase-portrait experiment.

    seed: PRNG seed of the neural ODE's weights (3: a sink with curved trajectories).
    steps: time steps `N`.
    t_final: horizon `T`.
    batch: initial points per system.
    method: explicit Runge-Kutta tableau.
    omega: frequency of the oscillator and the pendulum.
    scale: weight scale of the neural ODE.
    betas: comma-separated loss weights `beta` of the doubled action.
    grid: streamline mesh size (the quick preset uses 16).
    quick: the small preset (`steps` 40, `grid` 12).
    """

    seed: int = 3
    steps: int = 400
    t_final: float = 4.0
    batch: int = 5
    method: str = "rk4"
    omega: float = 1.0
    scale: float = 2.0
    betas: str = "0.3,1.0"
    grid: int = 36
    quick: bool = False

    def __post_init__(self):
        if self.steps < 1 or self.batch < 1 or self.grid < 4:
            raise ValueError(f"config keys 'steps', 'batch' >= 1 and 'grid' >= 4; got {self.steps}, "
                             f"{self.batch}, {self.grid}")
        if not self.t_final > 0 or not self.omega > 0:
            raise ValueError(f"config keys 't_final' and 'omega' must be > 0; got {self.t_final}, {self.omega}")
        _floats(self.betas, "betas")
        check_quick(self, ("steps", "grid"))
        try:
            if not integrators.tableau(self.method).explicit:
                raise ValueError(f"{self.method!r} is not an explicit Runge-Kutta tableau")
        except (ValueError, AttributeError) as error:
            raise ValueError(f"config key 'method': {error}") from None

    def sizes(self) -> tuple[int, int]:
        """`(steps, grid)` actually run."""
        return (40, 12) if self.quick else (self.steps, self.grid)


def make_system(name: str, config: PhasePortraitsConfig):
    """`(field, theta, x0)` of one of `SYSTEMS`."""
    b = config.batch
    if name == "oscillator":
        field = lagrangian.HarmonicOscillator(omega=config.omega)
        q0 = np.linspace(0.5, 2.0, b)
    elif name == "pendulum":
        field = lagrangian.Pendulum(omega=config.omega)
        q0 = np.linspace(0.5, 2.5, b)
    elif name == "neural-ode":
        field = lagrangian.NeuralODE(state_dim=2, scale=config.scale)
        angles = 2 * np.pi * (np.arange(b) + 0.5) / b
        x0 = 1.5 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        return field, field.init(jax.random.key(config.seed)), jnp.asarray(x0)
    else:
        raise ValueError(f"unknown system {name!r}; choose one of {SYSTEMS}")
    x0 = np.stack([q0, np.zeros(b)], axis=-1)
    return field, field.init(jax.random.key(config.seed)), jnp.asarray(x0)


def measure(name: str, config: PhasePortraitsConfig, steps: int) -> tuple[dict, dict]:
    """`(results, arrays for the figure)` of one system."""
    field, theta, x0 = make_system(name, config)
    ts = integrators.uniform_grid(config.t_final, steps)
    system = integrators.discretise(field, ts, config.method)
    loss = lagrangian.SquaredError(target=jnp.broadcast_to(jnp.asarray(TARGET), x0.shape))
    sol = integrators.sweep(system, theta, x0, loss)
    reference = jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)
    xs, ps = np.asarray(sol.xs), np.asarray(sol.ps)
    h = np.asarray(jax.vmap(lambda x, p: lagrangian.energy(field, ts, x, p, theta), in_axes=1, out_axes=1)(
        sol.xs, sol.ps))
    # H = p . f may pass near zero; its drift is measured against its largest magnitude on the path
    h_drift = np.max(np.abs(h - h[0]), axis=0) / np.maximum(np.max(np.abs(h), axis=0), np.finfo(float).tiny)
    copies, tension = {}, []
    for beta in _floats(config.betas, "betas"):
        x_plus, x_minus, grad_beta = integrators.tension(system, theta, x0, loss, beta)
        x_plus, x_minus = np.asarray(x_plus), np.asarray(x_minus)
        x1, x2 = lagrangian.copies(x_plus, x_minus)
        copies[beta] = (np.asarray(x1)[:, 0], np.asarray(x2)[:, 0])
        separation = np.linalg.norm(np.asarray(x1) - np.asarray(x2), axis=-1)
        tension.append({
            "beta": beta,
            "max_abs_x_plus_minus_forward": float(np.max(np.abs(x_plus - xs))),
            "relative_error_x_minus_vs_beta_p": float(np.max(np.abs(x_minus - beta * ps)) / (beta * np.max(np.abs(ps)))),
            "gradient_relative_error_vs_beta_grad": compare_gradients(
                grad_beta, jax.tree.map(lambda g: beta * g, sol.grad))["relative_l2_error"],
            "separation_initial_mean": float(np.mean(separation[0])),
            "separation_final_mean": float(np.mean(separation[-1])),
        })
    results = {
        "loss": float(sol.loss),
        "gradient": {k: v for k, v in compare_gradients(sol.grad, reference).items() if k != "per_leaf"},
        "hamiltonian": {
            "initial": h[0].tolist(),
            "max_drift_over_max_abs_per_sample": h_drift.tolist(),
            "max_relative_drift": float(h_drift.max()),
        },
        "tension": tension,
        "max_abs_p0": float(np.max(np.abs(ps[0]))),
    }
    if hasattr(field, "physical_energy"):
        e = np.asarray(field.physical_energy(sol.xs, theta))
        results["physical_energy_max_relative_drift"] = float(np.max(np.abs(e - e[0]) / np.abs(e[0])))
    arrays = {"field": field, "theta": theta, "ts": np.asarray(ts), "xs": xs, "ps": ps, "h": h, "copies": copies}
    return results, arrays


def _draw_row(axes, name: str, a: dict, grid: int) -> None:
    field, theta = a["field"], a["theta"]
    f_points = jax.jit(jax.vmap(lambda x: field(0.0, x, theta)))
    titles = {"oscillator": "harmonic oscillator", "pendulum": "pendulum", "neural-ode": "2-D neural ODE"}
    labels = ("$q$", "$v$") if name != "neural-ode" else ("$x_1$", "$x_2$")
    plots.phase_portrait(axes[0], lambda pts: np.asarray(f_points(jnp.asarray(pts))), a["xs"], grid=grid,
                         labels=labels, title=f"{titles[name]}: forward field $x$", markers=("$x_0$", "$x_N$"))
    jacobian = np.asarray(jax.jacfwd(lambda x: field(0.0, x, theta))(jnp.zeros(2)))
    plots.phase_portrait(axes[1], lambda pts: pts @ jacobian, a["ps"][::-1], grid=grid,
                         labels=(r"$p_q$", r"$p_v$") if name != "neural-ode" else ("$p_1$", "$p_2$"),
                         title=r"conjugate field $p$ over $p \mapsto J(0)^\top p$",
                         markers=(r"$p_N = \nabla l$", "$p_0$"))
    for i, (beta, (x1, x2)) in enumerate(a["copies"].items()):
        plots.doubled_copies(axes[2], x1, x2, labels=labels, name=rf"$\beta={beta:g}$",
                             colour=plots.LINE_COLOURS[i % len(plots.LINE_COLOURS)])
    axes[2].legend(loc="best")
    axes[2].set_title(r"doubled copies $x^{(1,2)} = x^+ \pm x^-/2$ (sample 0)")
    samples = {f"sample {b}": a["h"][:, b] for b in range(min(4, a["h"].shape[1]))}
    plots.energy(axes[3], a["ts"], samples, title=r"$H = p\cdot f(x)$ along the flow")


def run(config: PhasePortraitsConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measure the three systems, then the figure and the summary table."""
    steps, grid = config.sizes()
    total = len(SYSTEMS) + 2
    results, arrays = {"steps": steps, "grid": grid}, {}
    for i, name in enumerate(SYSTEMS):
        progress(i + 1, total, f"{name}: sweep, jax.grad reference, tension at each beta")
        results[name], arrays[name] = measure(name, config, steps)
        r = results[name]
        folder.log(f"{name}: gradient rel. error {r['gradient']['relative_l2_error']:.3e}, H drift "
                   f"{r['hamiltonian']['max_relative_drift']:.3e}, x- vs beta p "
                   f"{max(t['relative_error_x_minus_vs_beta_p'] for t in r['tension']):.3e}")
    progress(len(SYSTEMS) + 1, total, "figure: phase portraits")
    fig, axes = plots.figure(ncols=4, nrows=len(SYSTEMS), panel_size=(4.0, 3.6))
    for row, name in enumerate(SYSTEMS):
        _draw_row(axes[4 * row: 4 * row + 4], name, arrays[name], grid)
    folder.save_figure(fig, "phase_portraits")
    progress(total, total, "table")
    rows = []
    for name in SYSTEMS:
        r = results[name]
        rows.append([name, r["gradient"]["relative_l2_error"], r["hamiltonian"]["max_relative_drift"],
                     max(t["max_abs_x_plus_minus_forward"] for t in r["tension"]),
                     max(t["relative_error_x_minus_vs_beta_p"] for t in r["tension"]),
                     r.get("physical_energy_max_relative_drift", "-")])
    folder.save_table(Table(
        columns=["system", "grad rel. err. vs jax.grad", "max rel. drift of H", "max abs(x+ - x)",
                 "max rel. err. x- vs beta p", "physical energy drift"],
        rows=rows,
        caption=f"Phase portraits: {steps} {config.method} steps to T = {config.t_final:g}, batch {config.batch}, "
                f"beta in {{{config.betas}}}, float64",
        label="tab:phase-portraits"), "summary")
    return results


EXPERIMENT = Experiment(
    name="phase-portraits",
    description="oscillator, pendulum, 2-D neural ODE: forward and conjugate fields, doubled copies, H along the flow",
    config=PhasePortraitsConfig(),
    run=run,
    headline=("oscillator.gradient.relative_l2_error", "pendulum.gradient.relative_l2_error",
              "neural-ode.gradient.relative_l2_error", "neural-ode.hamiltonian.max_relative_drift"),
    figures={"phase_portraits": "phase_portraits"},
)
