"""Energy drift: symplectic against non-symplectic integrators over long runs.

The harmonic oscillator (`E = v^2/2 + omega^2 q^2/2`) and the pendulum
(`E = v^2/2 - omega^2 cos q`) from `x0 = (q0, 0)` are stepped `steps` times
with step `h` by each method in `methods` (`integrators.discretise`, forward
map only). Per method and system:

- the relative energy error `|E_k - E_0| / |E_0|`: its maximum and final value;
- the trend `max(error over the last tenth) / max(error over the first tenth)`
  (about 1 for a bounded oscillation, large for a secular drift);
- the error curve, reduced to `curve_points` block maxima (the envelope the
  figure draws).

A symplectic method (Stormer-Verlet / leapfrog, symplectic Euler, Yoshida 4,
Gauss-Legendre) keeps the error bounded (backward error analysis: it exactly
conserves a modified energy); RK4 and Heun drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..config import check_quick
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

SYSTEMS = {"oscillator": lagrangian.HarmonicOscillator, "pendulum": lagrangian.Pendulum}


def symplectic(method: str) -> bool:
    """Whether `method` is symplectic: a splitting, or a tableau with `b_i a_ij + b_j a_ji = b_i b_j`."""
    t = integrators.tableau(method)
    return bool(getattr(t, "symplectic", True))


@dataclass(frozen=True)
class EnergyDriftConfig:
    """Defaults of the energy-drift experiment.

    methods: comma-separated integrator names.
    steps: number of steps (the quick preset runs 10 000).
    h: step size.
    q0: initial angle / displacement (`v0 = 0`).
    omega: frequency of both systems.
    curve_points: block maxima kept of each error curve.
    quick: the small preset (10 000 steps).
    """

    methods: str = "leapfrog,symplectic-euler,yoshida4,gauss-legendre-1,rk4,heun"
    steps: int = 100_000
    h: float = 0.1
    q0: float = 1.0
    omega: float = 1.0
    curve_points: int = 200
    quick: bool = False

    def __post_init__(self):
        names = self.method_list()
        if not names:
            raise ValueError("config key 'methods' needs at least one integrator")
        for name in names:
            try:
                integrators.tableau(name)
            except ValueError as error:
                raise ValueError(f"config key 'methods': {error}") from None
        if self.steps < 10 or self.curve_points < 2:
            raise ValueError(f"config keys 'steps' >= 10 and 'curve_points' >= 2; got {self.steps}, {self.curve_points}")
        if not self.h > 0 or not self.omega > 0:
            raise ValueError(f"config keys 'h' and 'omega' must be > 0; got {self.h}, {self.omega}")
        check_quick(self, ("steps",))

    def method_list(self) -> list[str]:
        return [m.strip() for m in self.methods.split(",") if m.strip()]

    def run_steps(self) -> int:
        return 10_000 if self.quick else self.steps


def energy_error(system_name: str, method: str, config: EnergyDriftConfig, steps: int) -> np.ndarray:
    """`|E_k - E_0| / |E_0|`, `k = 0..steps`."""
    field = SYSTEMS[system_name](omega=config.omega)
    theta = field.init(jax.random.key(0))
    discrete = integrators.discretise(field, integrators.uniform_grid(steps * config.h, steps), method)
    xs = integrators.forward(discrete, theta, jnp.array([config.q0, 0.0]))
    e = np.asarray(field.physical_energy(xs, theta))
    return np.abs(e - e[0]) / abs(e[0])


def envelope(err: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """`(k, max of err over each of `points` equal blocks of steps 1..N)` (block end indices)."""
    edges = np.linspace(1, len(err), points + 1).astype(int)
    ks = edges[1:] - 1
    return ks, np.array([err[a:b].max() for a, b in zip(edges[:-1], edges[1:])])


def run(config: EnergyDriftConfig, folder: RunFolder, progress: Progress) -> dict:
    steps = config.run_steps()
    methods = config.method_list()
    total, done = len(SYSTEMS) * len(methods) + 1, 0
    results = {"steps": steps, "h": config.h, "t_final": steps * config.h, "systems": {}}
    curves = {}
    for system_name in SYSTEMS:
        entries = {}
        for method in methods:
            done += 1
            progress(done, total, f"{system_name}: {steps} steps of {method}")
            started = time.perf_counter()
            err = energy_error(system_name, method, config, steps)
            tenth = max(1, steps // 10)
            ks, env = envelope(err, min(config.curve_points, steps))
            entries[method] = {
                "symplectic": symplectic(method),
                "max_relative_energy_error": float(err.max()),
                "final_relative_energy_error": float(err[-1]),
                "trend_last_tenth_over_first_tenth": float(err[-tenth:].max() / err[1:tenth + 1].max()),
                "curve_steps": ks.tolist(),
                "curve_max_relative_error": env.tolist(),
                "seconds": time.perf_counter() - started,
            }
            curves[(system_name, method)] = (ks * config.h, env)
            folder.log(f"{system_name} {method}: max rel. energy error {err.max():.3e}, trend "
                       f"{entries[method]['trend_last_tenth_over_first_tenth']:.3g}")
        results["systems"][system_name] = entries
    progress(total, total, "figure and table")
    fig, axes = plots.figure(ncols=len(SYSTEMS), panel_size=(5.2, 4.0))
    for ax, system_name in zip(axes, SYSTEMS):
        for i, method in enumerate(methods):
            t, env = curves[(system_name, method)]
            ls = "-" if results["systems"][system_name][method]["symplectic"] else "--"
            ax.loglog(t, np.maximum(env, 1e-18), ls=ls, label=method + ("" if ls == "-" else " (not symplectic)"))
        ax.set_xlabel(f"$t$ (h = {config.h:g}, {steps} steps)")
        ax.set_ylabel(r"max $|E - E_0|/|E_0|$ over blocks")
        ax.set_title(f"{system_name}: energy error")
        ax.legend(loc="best", fontsize=7)
    folder.save_figure(fig, "energy_drift")
    rows = [[s, m, "yes" if e["symplectic"] else "no", e["max_relative_energy_error"],
             e["final_relative_energy_error"], e["trend_last_tenth_over_first_tenth"]]
            for s, entries in results["systems"].items() for m, e in entries.items()]
    folder.save_table(Table(
        columns=["system", "method", "symplectic", "max rel. energy error", "final rel. error", "trend"],
        rows=rows,
        caption=(f"Energy error over {steps} steps of h = {config.h:g} from q0 = {config.q0:g}, v0 = 0. Trend: max "
                 "error over the last tenth / max over the first tenth (about 1: bounded; large: drift)."),
        label="tab:energy-drift"), "energy_drift")
    return results


EXPERIMENT = Experiment(
    name="energy-drift",
    description="oscillator and pendulum over 100 000 steps: symplectic methods bounded, RK4 and Heun drift",
    config=EnergyDriftConfig(),
    run=run,
    headline=("systems.pendulum.leapfrog.max_relative_energy_error",
              "systems.pendulum.rk4.max_relative_energy_error",
              "systems.pendulum.rk4.trend_last_tenth_over_first_tenth"),
    figures={"energy_drift": "energy_drift"},
)
