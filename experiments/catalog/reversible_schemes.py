"""Reversible schemes: O(1)-memory exact gradients for every explicit tableau and every symmetric scheme.

Part 1, every reversible scheme (`integrators.Reversible()` memory) against `StoreAll()` on
the same discrete map, at each `N` in `steps`:

- the McCallum-Foster version ``"reversible-<tableau>"`` of every explicit tableau
  (`integrators.ReversibleRungeKutta`, coupling `lambda`) on the neural ODE
  `dx/dt = tanh(W x + b)` (`dim`, `batch`, `T = t_final`);
- the symmetric implicit tableaux (Gauss-Legendre 1-3, Lobatto IIIA/IIIB: inverse = the
  step with `-h`, Newton-solved) on the same neural ODE;
- the splittings leapfrog and Yoshida4 (inverse = the step with `-h`, shear by shear)
  on the pendulum `dq/dt = v, dv/dt = -omega^2 sin q` (they need a separable field).

Reported: XLA temporary bytes of the compiled gradient (`memory_analysis()`, deterministic,
not an RSS) for both memories at every `N`, and, for `N <= run_max_steps`, the gradient's relative L2 error against `jax.grad` through
the same map (`integrators.output`, every state kept), the sweep's reconstruction error
`max |z_0^rec - z_0| / max |z_0|`, and the fastest of `repeats` warm calls of the gradient
over StoreAll's (the minimum: on a shared machine the median is mostly other processes).

Part 2, stability of the coupling: `reversible-rk4` on a mildly stiff linear system
(`dx/dt = A x`, eigenvalues `-1, -4, -10` and a rotation `+-3i`, on `[0, 1]`, `h = 1/N`)
and on the pendulum (`h = 0.01`, `T = N h`), for every `lambda` in `couplings` and `N` in
`stability_steps`: reconstruction and gradient error. The theory is the linear test equation: one coupled
step of `dx/dt = mu x` is `M(lambda, z) = [[lambda, R(z) - lambda], [(1 - R(-z)) lambda,
1 + (1 - R(-z))(R(z) - lambda)]]`, `z = h mu`, `R` the stability function of the
tableau, `det M = lambda`. The forward pass is stable where `rho(M) <= 1`; the inverse
amplifies rounding by `g = rho(M^-1) >= lambda^(-1/2)` per step, so the predicted
reconstruction error is `u sum_{j<N} g^j` (`u` the unit rounding), taken over the
eigenvalues `mu` of the system (the pendulum's linearisation, `+-i omega`). A dissipative
mode (`mu < 0`) is amplified backward by `e^{|mu| h}` per step by any reconstruction, so the
stiff system runs on a fixed horizon; the coupling adds the difference mode `y - w`,
damped by about `lambda` forward and amplified by `1 / lambda` backward (`lambda^-N`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..config import check_quick, numbers
from ..harness.metrics import compile_lowered, relative_error, time_calls
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

SYMMETRIC = ("gauss-legendre-1", "gauss-legendre-2", "gauss-legendre-3", "lobatto-iiia", "lobatto-iiib",
             "leapfrog", "yoshida4")
"""The symmetric schemes, reversed by their own step with `-h`."""

QUICK_SCHEMES = "reversible-rk4,leapfrog"


def every_scheme() -> tuple[str, ...]:
    """Every scheme of part 1: the reversible version of each explicit tableau, then the symmetric ones."""
    coupled = tuple(integrators.reversible_name(t) for t in integrators.TABLEAUX.values() if t.explicit)
    return coupled + SYMMETRIC


@dataclass(frozen=True)
class ReversibleSchemesConfig:
    """Defaults of the reversible-schemes experiment.

    schemes: comma-separated scheme names ("all": every explicit tableau's reversible
        version and every symmetric scheme).
    steps: comma-separated `N` of part 1 (memory, error, time).
    dim, batch, t_final, seed: the neural ODE of part 1 (the pendulum runs to `t_final` too).
    coupling: `lambda` of the McCallum-Foster schemes in part 1.
    run_max_steps: part 1 runs (error, time) only up to this `N`; larger `N` are compiled for
        their memory only.
    couplings, stability_steps: the `lambda` and `N` grids of part 2 (`h = 0.01`).
    repeats: timed warm calls per gradient (median).
    quick: the small preset (2 schemes, N = 100, 1000; 2 couplings, N = 100, 1000).
    """

    schemes: str = "all"
    steps: str = "1000,10000,100000"
    dim: int = 8
    batch: int = 4
    t_final: float = 1.0
    coupling: float = 0.999
    run_max_steps: int = 10000
    couplings: str = "0.5,0.9,0.99,0.999,0.9999,1.0"
    stability_steps: str = "100,1000,10000"
    repeats: int = 3
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        check_quick(self, ("schemes", "steps", "couplings", "stability_steps", "repeats"))
        self.sizes()
        if self.run_max_steps < 1 or self.dim < 1 or self.batch < 1 or self.repeats < 1 or not self.t_final > 0:
            raise ValueError("config keys need dim, batch, repeats >= 1 and t_final > 0")
        if not 0 < self.coupling <= 1:
            raise ValueError(f"config key 'coupling' must lie in (0, 1]; got {self.coupling}")

    def sizes(self):
        """`(schemes, steps, couplings, stability_steps, repeats)` actually run."""
        if self.quick:
            schemes, steps, couplings, stability, repeats = QUICK_SCHEMES, "100,1000", "0.9,0.999", "100,1000", 2
        else:
            schemes, steps, couplings, stability, repeats = (self.schemes, self.steps, self.couplings,
                                                             self.stability_steps, self.repeats)
        names = every_scheme() if schemes == "all" else tuple(s.strip() for s in schemes.split(",") if s.strip())
        unknown = [s for s in names if s not in integrators.scheme_names()]
        if unknown:
            raise ValueError(f"config key 'schemes': unknown {unknown}; choose from {list(every_scheme())}")
        lams = numbers("couplings", couplings, float)
        if not lams or not all(0 < c <= 1 for c in lams):
            raise ValueError(f"config key 'couplings' needs values in (0, 1]; got {couplings!r}")
        return names, numbers("steps", steps), lams, numbers("stability_steps", stability), repeats


def _problem(scheme: str, config, n: int):
    """`(system, theta, x0, loss)` of part 1: the pendulum for a splitting, the neural ODE otherwise."""
    key = jax.random.fold_in(jax.random.key(config.seed), config.dim)
    k_theta, k_x0, k_target = jax.random.split(key, 3)
    coupled = scheme.startswith("reversible-") and scheme != "reversible-heun"
    options = {"coupling": config.coupling} if coupled else {}
    if scheme in integrators.SPLITTINGS:
        field = lagrangian.Pendulum(omega=1.0)
        x0 = jnp.array([[1.0, 0.5], [0.3, -0.2]])
    else:
        field = lagrangian.NeuralODE(state_dim=config.dim)
        x0 = jax.random.normal(k_x0, (config.batch, config.dim), jnp.float64)
    target = jax.random.normal(k_target, x0.shape, jnp.float64)
    system = integrators.discretise(field, integrators.uniform_grid(config.t_final, n), scheme, **options)
    return system, field.init(k_theta), x0, lagrangian.SquaredError(target=target)


def _gradient(system, x0, loss, memory):
    def fn(theta):
        sol = integrators.sweep(system, theta, x0, loss, memory=memory, check=False)
        return sol.grad, sol.reconstruction_error
    return fn


def _measure_scheme(scheme, config, n, repeats):
    """Memory (compiled, every `N`); error, reconstruction and time (run, `N <= run_max_steps`)."""
    system, theta, x0, loss = _problem(scheme, config, n)
    out = {}
    for label, memory in (("reversible", integrators.Reversible()), ("store_all", integrators.StoreAll())):
        executable, _, temp = compile_lowered(jax.jit(_gradient(system, x0, loss, memory)).lower(theta))
        if n > config.run_max_steps:
            out[label] = {"temp_bytes": temp}
            continue
        (grad, reconstruction), timing = time_calls(executable, (theta,), repeats=repeats, budget=math.inf)
        out[label] = {"temp_bytes": temp, "seconds": min(timing.calls), "grad": grad,
                      "reconstruction": reconstruction}
    if n > config.run_max_steps:
        return {"reversible_temp_bytes": out["reversible"]["temp_bytes"],
                "store_all_temp_bytes": out["store_all"]["temp_bytes"], "gradient_error": None,
                "store_all_gradient_error": None, "reconstruction_error": None, "reversible_seconds": None,
                "store_all_seconds": None, "time_ratio": None}
    reference = jax.jit(jax.grad(lambda th: loss(integrators.output(system, th, x0))))(theta)
    return {
        "reversible_temp_bytes": out["reversible"]["temp_bytes"],
        "store_all_temp_bytes": out["store_all"]["temp_bytes"],
        "gradient_error": relative_error(out["reversible"]["grad"], reference),
        "store_all_gradient_error": relative_error(out["store_all"]["grad"], reference),
        "reconstruction_error": float(out["reversible"]["reconstruction"]),
        "reversible_seconds": out["reversible"]["seconds"],
        "store_all_seconds": out["store_all"]["seconds"],
        "time_ratio": out["reversible"]["seconds"] / out["store_all"]["seconds"],
    }


# --- part 2: the coupling ------------------------------------------------------------------


STIFF_EIGENVALUES = (-1.0, -4.0, -10.0, 3.0j, -3.0j)
"""The eigenvalues of the mildly stiff linear system of part 2."""


def stiff_matrix() -> np.ndarray:
    """`A` with eigenvalues `-1, -4, -10, +-3i`, conjugated by a fixed well-conditioned basis."""
    block = np.zeros((5, 5))
    block[0, 0], block[1, 1], block[2, 2] = -1.0, -4.0, -10.0
    block[3, 4], block[4, 3] = 3.0, -3.0
    basis = np.eye(5) + 0.2 * np.cos(np.arange(25.0)).reshape(5, 5)
    return basis @ block @ np.linalg.inv(basis)


def coupled_step_matrix(tab, coupling: float, z: complex) -> np.ndarray:
    """`M(lambda, z)`: one McCallum-Foster step of `dx/dt = mu x` (`z = h mu`) on `(y, w)`."""

    def stability(z):
        a, b = np.asarray(tab.a, complex), np.asarray(tab.b, complex)
        return 1 + z * b @ np.linalg.solve(np.eye(len(b)) - z * a, np.ones(len(b)))

    r, s = stability(z), stability(-z)
    return np.array([[coupling, r - coupling], [(1 - s) * coupling, 1 + (1 - s) * (r - coupling)]])


def predicted(tab, coupling: float, zs, steps: int) -> dict:
    """Forward spectral radius, backward growth per step `g` and the predicted reconstruction
    error `u sum_{j<N} g^j` (worst eigenvalue `z` of the system)."""
    u = np.finfo(np.float64).eps / 2
    forward = max(float(np.max(np.abs(np.linalg.eigvals(coupled_step_matrix(tab, coupling, z))))) for z in zs)
    growth = max(float(np.max(np.abs(np.linalg.eigvals(np.linalg.inv(coupled_step_matrix(tab, coupling, z))))))
                 for z in zs)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported as None
        g = np.float64(growth)
        total = steps * u if abs(g - 1) < 1e-15 else u * (g**steps - 1) / (g - 1)
    return {"forward_radius": forward, "backward_growth": growth, "predicted_reconstruction_error": _finite(total)}


def _finite(value) -> float | None:
    """`value` as a float, or `None` where it overflowed (JSON has no infinities)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _stability_cell(name, coupling, n, seed):
    h = 1.0 / n if name == "stiff" else 0.01
    if name == "stiff":
        field = lagrangian.Linear(5)
        theta = {"A": jnp.asarray(stiff_matrix())}
        x0 = jnp.linspace(-1.0, 1.0, 5)
        zs = [h * mu for mu in STIFF_EIGENVALUES]
    else:
        field = lagrangian.Pendulum(omega=1.0)
        theta = field.init(jax.random.key(seed))
        x0 = jnp.array([1.0, 0.5])
        zs = [1j * h, -1j * h]
    system = integrators.discretise(field, integrators.uniform_grid(h * n, n), "reversible-rk4", coupling=coupling)
    loss = lagrangian.SquaredError(target=0.25)
    sol = integrators.sweep(system, theta, x0, loss, memory=integrators.Reversible())
    reference = jax.grad(lambda th: loss(integrators.output(system, th, x0)))(theta)
    with np.errstate(over="ignore", invalid="ignore"):
        error = relative_error(sol.grad, reference)
    return {"coupling": coupling, "steps": n, "reconstruction_error": _finite(sol.reconstruction_error),
            "gradient_error": _finite(error), "h": h,
            **predicted(integrators.RK4, coupling, zs, n)}


def run(config: ReversibleSchemesConfig, folder: RunFolder, progress: Progress) -> dict:
    schemes, steps, couplings, stability_steps, repeats = config.sizes()
    total = len(schemes) * len(steps) + 2 * len(couplings) * len(stability_steps) + 1
    done = 0
    table = {}
    for scheme in schemes:
        rows = []
        for n in steps:
            done += 1
            progress(done, total, f"{scheme}, N = {n}")
            rows.append(_measure_scheme(scheme, config, n, repeats))
        entry = {key: [r[key] for r in rows] for key in rows[0]}
        entry["temp_bytes_flat_in_n"] = max(entry["reversible_temp_bytes"]) == min(entry["reversible_temp_bytes"])
        entry["max_gradient_error"] = max(e for e in entry["gradient_error"] if e is not None)
        entry["max_reconstruction_error"] = max(e for e in entry["reconstruction_error"] if e is not None)
        table[scheme] = entry
        folder.log(f"{scheme}: reversible {entry['reversible_temp_bytes']} B, store-all "
                   f"{entry['store_all_temp_bytes']} B, error {entry['max_gradient_error']:.2e}, "
                   f"time ratio {', '.join('-' if t is None else f'{t:.2f}' for t in entry['time_ratio'])}")

    stability = {}
    for system in ("stiff", "pendulum"):
        cells = []
        for coupling in couplings:
            for n in stability_steps:
                done += 1
                progress(done, total, f"stability: {system}, lambda = {coupling}, N = {n}")
                cells.append(_stability_cell(system, coupling, n, config.seed))
        stability[system] = cells

    progress(total - 1, total, "figures and tables")
    _figures(folder, table, steps, stability, couplings, stability_steps)
    folder.save_table(Table(
        columns=["scheme", *[f"rev. bytes N={n}" for n in steps], *[f"store-all bytes N={n}" for n in steps],
                 "max rel. err. vs jax.grad", "max reconstruction err.", *[f"time ratio N={n}" for n in steps]],
        rows=[[s, *e["reversible_temp_bytes"], *e["store_all_temp_bytes"], e["max_gradient_error"],
               e["max_reconstruction_error"], *e["time_ratio"]] for s, e in table.items()],
        caption=("Reversible() memory against StoreAll on the same discrete map: XLA compiled temp bytes of the "
                 "gradient, relative L2 error against jax.grad through the map, reconstruction error of z_0, "
                 "warm time over StoreAll's."),
        label="tab:reversible-schemes"), "reversible_schemes")
    folder.save_table(Table(
        columns=["system", "lambda", "N", "reconstruction err.", "predicted", "gradient err.", "forward rho",
                 "backward growth"],
        rows=[[name, f"{c['coupling']:g}", c["steps"], c["reconstruction_error"], c["predicted_reconstruction_error"],
               c["gradient_error"], c["forward_radius"], c["backward_growth"]]
              for name, cells in stability.items() for c in cells],
        caption=("reversible-rk4 (stiff: T = 1, h = 1/N; pendulum: h = 0.01): errors against the coupling lambda "
                 "and N, with the linear theory (forward spectral radius, backward growth per step, predicted "
                 "reconstruction error)."),
        label="tab:reversible-coupling"), "coupling_stability")
    progress(total, total, "done")
    return {
        "setup": {"schemes": list(schemes), "steps": list(steps), "dim": config.dim, "batch": config.batch,
                  "t_final": config.t_final, "coupling": config.coupling, "run_max_steps": config.run_max_steps,
                  "couplings": list(couplings),
                  "stability_steps": list(stability_steps), "repeats": repeats,
                  "memory_measure": "XLA compiled memory_analysis().temp_size_in_bytes of the jitted gradient",
                  "error_norm": "relative L2 over all parameter leaves, against jax.grad through the same map"},
        "schemes": table,
        "stability": stability,
    }


def _figures(folder, table, steps, stability, couplings, stability_steps):
    fig, axes = plots.figure(ncols=2, panel_size=(5.2, 4.2))
    plots.scaling(axes[0], list(steps), {s: e["reversible_temp_bytes"] for s, e in table.items()},
                  ylabel="XLA temp bytes, Reversible()", title="memory of the gradient")
    plots.scaling(axes[1], list(steps), {s: e["store_all_temp_bytes"] for s, e in table.items()},
                  ylabel="XLA temp bytes, StoreAll()", title="the same maps, every state stored")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=5)
    folder.save_figure(fig, "memory_vs_steps")

    fig, axes = plots.figure(ncols=2, panel_size=(5.2, 4.2))
    for ax, (name, cells) in zip(axes, stability.items()):
        for i, n in enumerate(stability_steps):
            row = [c for c in cells if c["steps"] == n]
            lam = np.array([1.0 - c["coupling"] for c in row]) + 1e-6
            color = f"C{i}"
            measured = [1e30 if c["reconstruction_error"] is None else max(c["reconstruction_error"], 1e-17)
                        for c in row]
            theory = [1e30 if c["predicted_reconstruction_error"] is None else c["predicted_reconstruction_error"]
                      for c in row]
            ax.loglog(lam, measured, "o", color=color, label=f"measured, N = {n}")
            ax.loglog(lam, theory, "-", color=color, label=f"theory, N = {n}")
        ax.set_xlabel(r"$1 - \lambda$ (+1e-6)")
        ax.set_ylabel("reconstruction error of $z_0$")
        ax.set_title(f"reversible-rk4, {name}" + (", T = 1" if name == "stiff" else ", h = 0.01"))
        ax.legend(fontsize=6)
    folder.save_figure(fig, "coupling_stability")


EXPERIMENT = Experiment(
    name="reversible-schemes",
    description="O(1)-memory exact gradients: McCallum-Foster reversible tableaux and symmetric schemes vs StoreAll",
    config=ReversibleSchemesConfig(),
    run=run,
    headline=("schemes.reversible-rk4.max_gradient_error", "schemes.reversible-dopri5.max_gradient_error",
              "schemes.gauss-legendre-2.max_gradient_error", "schemes.leapfrog.max_gradient_error"),
    volatile=("time_ratio",),
    figures={"reversible_schemes_memory": "memory_vs_steps", "reversible_schemes_stability": "coupling_stability"},
    figures_config={"steps": "1000,100000", "run_max_steps": 1000, "couplings": "0.9,0.99,0.999,0.9999,1.0"},
)
