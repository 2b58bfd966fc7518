"""The least-action theory's physical claims, simulated (docs/design.md 2.2, 2.6; docs/substrate.md).

1. No global clock (`integrators.poisson_relax`, `integrators.continuous_relax`,
   `integrators.poisson_saddle_flow`): the conjugate
   relaxation with every node on its own Poisson clock and stale neighbour reads, and in
   continuous pseudo-time with heterogeneous time constants (adaptive diffrax), against the
   synchronous Jacobi relaxation (`integrators.relax`, `eta = 1`: one update per node per unit
   of pseudo-time, the rate of a Poisson clock with `tau = 1`). Relative L2 error of the gradient
   against `jax.grad` through the forward pass, against pseudo-time, on MLPs and a deep ResNet;
   the pseudo-time to 1e-10 against the spread `tau_max / tau_min` and the staleness; the
   augmented-Lagrangian saddle flow synchronous and with Poisson clocks on a tanh ResNet.
2. Two physical copies (`integrators.relax_copies`): `x1, x2` relaxing under the one doubled
   action for `beta` over ten decades; `|x1 - x2 - beta p| / |beta p|` (nodes `1..N`, `p` by
   `jax.grad` with a probe per state), the gradient read from the copies, the drift of the mean
   from the forward pass, and the rounding floor `eps |x+| / (beta |p|)`; beside them symmetric
   EP and DP at the same `beta` on the same network.
3. Reciprocity and noise (`integrators.mismatched_feedback`, `langevin_relax`, `langevin_copies`,
   `learning_rules.reciprocity`): gradient error against the relative mismatch `delta` of the
   feedback couplings and against the temperature `T` of Langevin noise, for least action (the
   field `p`, and the copies), EP and DP, with fitted log-log slopes and the floors at
   `delta = 0`, `T = 0`.
4. Training on digits with gradients read from a substrate (mismatch `delta`, temperature `T`;
   Langevin relaxation of the conjugate field with `eta = 1`, 40 steps, the gradient averaged over
   the last 20) against backprop from the same seed (full-batch adam): loss curves and test accuracy.

Not done here: the saddle flow in continuous time with heterogeneous time constants, DP under
noise, and the deep (128-layer) saddle flow, which is not yet built.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..config import check_quick, numbers
from ..data import digits
from ..harness.metrics import relative_error
from ..learning_rules import reciprocity
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table


@dataclass(frozen=True)
class PhysicalSubstrateConfig:
    """Defaults of the physical-substrate experiment.

    seed: PRNG seed of weights, inputs, targets, clocks, couplings and noise.
    dt: tick length of the Poisson clocks (pseudo-time units; a node of `tau = 1` fires about once per unit).
    spreads: comma-separated spreads `tau_max / tau_min` of the rate sweep.
    lags: comma-separated largest staleness (in ticks) of the staleness sweep.
    betas: number of `beta`, log-spaced over ten decades, 1e-6 to 1e4, for the copies.
    deltas: number of mismatches, log-spaced from 1e-4 to 1.
    temperatures: number of temperatures, log-spaced from 1e-14 to 1e-4.
    langevin_iterations, window: steps of the noisy relaxations and the averaging window (the last steps).
    train_steps: full-batch adam steps on digits; learning_rate: adam's.
    train_points: comma-separated `delta:T` substrates trained on digits.
    quick: the small preset (one small network, one Poisson clock and one continuous spread,
        smaller sweeps, the first of `train_points`).
    """

    seed: int = 0
    dt: float = 0.1
    spreads: str = "1,3,10,30"
    lags: str = "0,2,5,10,20"
    betas: int = 21
    deltas: int = 9
    temperatures: int = 6
    langevin_iterations: int = 2000
    window: int = 1000
    train_steps: int = 150
    learning_rate: float = 0.01
    train_points: str = "0:0,0.3:0,1:0,0:1e-9,0.3:1e-9"
    quick: bool = False

    def __post_init__(self):
        if not self.dt > 0 or self.betas < 3 or self.deltas < 3 or self.temperatures < 3:
            raise ValueError("config keys need dt > 0 and betas, deltas, temperatures >= 3")
        if not 1 <= self.window < self.langevin_iterations or self.train_steps < 1:
            raise ValueError("config keys need 1 <= window < langevin_iterations and train_steps >= 1")
        if min(numbers("spreads", self.spreads, float)) < 1 or min(numbers("lags", self.lags)) < 0:
            raise ValueError("config keys need spreads >= 1 and lags >= 0")
        self.substrates()
        check_quick(self, ("spreads", "lags", "betas", "deltas", "temperatures", "langevin_iterations", "window",
                           "train_steps"))

    def substrates(self) -> list[tuple[float, float]]:
        """The `(delta, T)` pairs of `train_points`."""
        try:
            pairs = [tuple(float(v) for v in part.split(":")) for part in self.train_points.split(",") if part.strip()]
        except ValueError:
            pairs = []
        if not pairs or any(len(p) != 2 or p[0] < 0 or p[1] < 0 for p in pairs):
            raise ValueError(f"config key 'train_points' needs comma-separated delta:T pairs >= 0; "
                             f"got {self.train_points!r}")
        return pairs

    def sizes(self) -> dict:
        """What one preset runs."""
        if self.quick:
            return {"clock_nets": (("MLP", 4),), "clock_clocks": ((10.0, 5),), "saddle_lags": (5,),
                    "sweep_depth": 8, "saddle": (8, 6000),
                    "spreads": (1.0, 10.0),
                    "lags": (0, 5), "betas": 6, "deltas": 4, "temperatures": 4, "langevin_iterations": 600,
                    "window": 300, "train_steps": 10}
        return {"clock_nets": (("MLP", 8), ("MLP", 32), ("ResNet", 64)), "clock_clocks": ((1.0, 0), (10.0, 5)),
                "saddle_lags": (0, 5), "sweep_depth": 16, "saddle": (16, 20_000),
                "spreads": numbers("spreads", self.spreads, float), "lags": numbers("lags", self.lags),
                "betas": self.betas, "deltas": self.deltas, "temperatures": self.temperatures,
                "langevin_iterations": self.langevin_iterations, "window": self.window,
                "train_steps": self.train_steps}


def _network(kind, depth):
    if kind == "MLP":
        return lagrangian.MLP((5,) + (8,) * depth)
    return lagrangian.ResNet(dim=4, depth=depth)


def _problem(system, key, batch=2):
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (batch, system.input_dim))
    loss = lagrangian.SquaredError(target=0.3)
    reference = jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)
    return theta, x0, loss, reference


def _errors(history, reference, count):
    return [relative_error(jax.tree.map(lambda g: g[i], history), reference) for i in range(count)]


def _first(times, errors, level=1e-10):
    return next((float(t) for t, e in zip(times, errors) if e <= level), None)


def _ticks(depth, taus, dt, records=100):
    """Ticks enough for the chain of `2N + 1` waves through nodes of mean time constant `mean(taus)`,
    rounded up to a multiple of `records`."""
    return int(np.ceil((4 * depth + 60) * float(np.mean(taus)) / dt / records)) * records


# --- 1. no global clock ---------------------------------------------------------------------------


def clock_curves(config, key, size, log) -> dict:
    """Error against pseudo-time for synchronous, asynchronous and continuous relaxation."""
    out = {}
    for i, (kind, depth) in enumerate(size["clock_nets"]):
        system = _network(kind, depth)
        k = jax.random.fold_in(key, i)
        theta, x0, loss, reference = _problem(system, k)
        label = f"{kind} depth {depth}"
        curves = {}
        sync_steps = 4 * depth + 60
        sync = integrators.relax(system, theta, x0, loss, iterations=sync_steps, eta=1.0, record_grads=True)
        errors = _errors(sync.grads, reference, sync_steps)
        curves["synchronous (Jacobi)"] = {"times": list(range(1, sync_steps + 1)), "errors": errors}
        for spread, lag in size["clock_clocks"]:
            taus = integrators.time_constants(depth, spread, jax.random.fold_in(k, 3))
            ticks = _ticks(depth, taus, config.dt)
            every = ticks // 100
            run = integrators.poisson_relax(system, theta, x0, loss, jax.random.fold_in(k, 4), ticks=ticks,
                                            dt=config.dt, taus=taus, max_lag=lag, record_every=every)
            errors = _errors(run.grads, reference, len(run.times))
            curves[f"asynchronous (spread {spread:g}, lag {lag})"] = {
                "times": np.asarray(run.times).tolist(), "errors": errors,
                "final_error": relative_error(run.grad, reference)}
        for spread in sorted({spread for spread, _ in size["clock_clocks"]}):
            taus = integrators.time_constants(depth, spread, jax.random.fold_in(k, 3))
            t_final = (3 * depth + 60) * spread
            run = integrators.continuous_relax(system, theta, x0, loss, taus, t_final=t_final, records=60)
            errors = _errors(run.grads, reference, 60)
            curves[f"continuous (spread {spread:g})"] = {
                "times": np.asarray(run.times).tolist(), "errors": errors,
                "final_error": relative_error(run.grad, reference), "solver_steps": int(run.firings[0])}
        for name, curve in curves.items():
            curve.setdefault("final_error", curve["errors"][-1])
            curve["time_to_1e-10"] = _first(curve["times"], curve["errors"])
            log(f"{label}, {name}: error {curve['final_error']:.2e}, 1e-10 at tau = {curve['time_to_1e-10']}")
        out[label] = curves
    return out


def rate_sweep(config, key, size, log) -> dict:
    """Pseudo-time to 1e-10 against the spread of time constants and against the staleness (ResNet)."""
    depth = size["sweep_depth"]
    system = _network("ResNet", depth)
    theta, x0, loss, reference = _problem(system, key)
    out = {"depth": depth, "spread": [], "lag": []}
    for spread in size["spreads"]:
        taus = integrators.time_constants(depth, spread, jax.random.fold_in(key, 3))
        ticks = _ticks(depth, taus, config.dt, 200)
        run = integrators.poisson_relax(system, theta, x0, loss, jax.random.fold_in(key, 4), ticks=ticks,
                                        dt=config.dt, taus=taus, record_every=ticks // 200)
        async_time = _first(run.times, _errors(run.grads, reference, len(run.times)))
        cont = integrators.continuous_relax(system, theta, x0, loss, taus, t_final=(3 * depth + 60) * spread,
                                            records=200)
        cont_time = _first(cont.times, _errors(cont.grads, reference, 200))
        out["spread"].append({"spread": spread, "mean_tau": float(np.mean(taus)), "asynchronous": async_time,
                              "continuous": cont_time})
        log(f"spread {spread:g}: 1e-10 at tau = {async_time} (asynchronous), {cont_time} (continuous)")
    for lag in size["lags"]:
        ticks = _ticks(depth, np.ones(1), config.dt, 200) * 2
        run = integrators.poisson_relax(system, theta, x0, loss, jax.random.fold_in(key, 4), ticks=ticks,
                                        dt=config.dt, max_lag=lag, record_every=ticks // 200)
        time = _first(run.times, _errors(run.grads, reference, len(run.times)))
        out["lag"].append({"max_lag_ticks": lag, "max_lag_time": lag * config.dt, "asynchronous": time})
        log(f"staleness up to {lag} ticks: 1e-10 at tau = {time}")
    out["synchronous"] = 2 * depth + 1
    return out


def saddle_curves(config, key, size, log) -> dict:
    """The augmented-Lagrangian saddle flow (`eta = 0.4`, `rho = 0.5`) synchronous and with Poisson
    clocks (rate 1, staleness 0 and 5 ticks) on a tanh ResNet: error against pseudo-time."""
    depth, iterations = size["saddle"]
    system = lagrangian.ResNet(dim=4, depth=depth)
    theta, x0, loss, reference = _problem(system, key, batch=3)
    every = iterations // 100
    sync = integrators.saddle_flow(system, theta, x0, loss, iterations=iterations, record_every=every)
    out = {"depth": depth, "curves": {"synchronous": {
        "times": (every * np.arange(1, 101)).tolist(), "errors": _errors(sync.grads, reference, 100),
        "final_error": relative_error(sync.grad, reference)}}}
    ticks = int(round(iterations / config.dt))
    for lag in size["saddle_lags"]:
        run = integrators.poisson_saddle_flow(system, theta, x0, loss, jax.random.fold_in(key, 4), ticks=ticks,
                                              dt=config.dt, max_lag=lag, record_every=ticks // 100)
        out["curves"][f"asynchronous (lag {lag})"] = {
            "times": np.asarray(run.times).tolist(), "errors": _errors(run.grads, reference, 100),
            "final_error": relative_error(run.grad, reference)}
    for name, curve in out["curves"].items():
        curve["time_to_1e-10"] = _first(curve["times"], curve["errors"])
        log(f"saddle flow, tanh ResNet depth {depth}, {name}: error {curve['final_error']:.2e}, "
            f"1e-10 at tau = {curve['time_to_1e-10']}")
    return out


# --- 2. two physical copies ------------------------------------------------------------------------


def substrate_problem(seed):
    """The MLP of sections 2 and 3: widths 8-16-16-4, tanh, a batch of 8 with Gaussian targets."""
    system = lagrangian.MLP((8, 16, 16, 4))
    key = jax.random.key(seed)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (8, 8))
    loss = lagrangian.SquaredError(target=jax.random.normal(jax.random.fold_in(key, 2), (8, 4)))
    return system, theta, x0, loss


def probe_conjugate(system, theta, x0, loss):
    """`(x_k, p_k = dl/dx_k)` by `jax.grad` through the forward map with an additive probe per state."""
    xs = list(integrators.forward(system, theta, x0))

    def probed(deltas):
        x = x0 + deltas[0]
        for k in range(system.depth):
            x = system.apply(k, x, system.theta_at(theta, k)) + deltas[k + 1]
        return loss(x)

    return xs, jax.grad(probed)([jnp.zeros_like(x) for x in xs])


def copies_sweep(config, size, log) -> dict:
    system, theta, x0, loss = substrate_problem(config.seed)
    reference = jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)
    xs, ps = probe_conjugate(system, theta, x0, loss)
    betas = np.geomspace(1e-6, 1e4, size["betas"])
    rows = []
    for beta in betas:
        run = integrators.relax_copies(system, theta, x0, loss, float(beta), iterations=200)
        tension = [a - b for a, b in zip(run.x1, run.x2)][1:]
        mean = [0.5 * (a + b) for a, b in zip(run.x1, run.x2)]
        row = {
            "beta": float(beta),
            "tension_error": relative_error(tension, [beta * p for p in ps[1:]]),
            "gradient_error": relative_error(run.grad, reference),
            "mean_drift": relative_error(mean, xs),
            "rounding_floor": float(integrators.rounding_floor(xs, beta, ps)),
        }
        if beta <= 1.0:
            row["ep_error"] = relative_error(reciprocity.ep_substrate(system, theta, x0, loss, float(beta),
                                                                      jax.random.key(0)), reference)
            row["dp_error"] = relative_error(reciprocity.dp_substrate(system, theta, x0, loss, float(beta)), reference)
        rows.append(row)
        log(f"copies at beta = {beta:.1e}: tension error {row['tension_error']:.2e}, gradient error "
            f"{row['gradient_error']:.2e} (floor {row['rounding_floor']:.1e})")
    window = [r for r in rows if 1e-4 <= r["beta"] <= 1e2]
    return {"rows": rows, "max_error_beta_1e-4_to_1e2": max(max(r["tension_error"], r["gradient_error"])
                                                           for r in window)}


# --- 3. reciprocity and noise ---------------------------------------------------------------------


def fit_slope(xs, ys) -> float:
    """The least-squares slope of `log y` against `log x`."""
    return float(np.polyfit(np.log(np.asarray(xs)), np.log(np.asarray(ys)), 1)[0])


def mismatch_sweep(config, size, log) -> dict:
    system, theta, x0, loss = substrate_problem(config.seed)
    reference = jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)
    deltas = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, size["deltas"])])
    methods = {"least action (field p)": [], "least action (copies, beta = 1)": [], "EP (beta = 1e-3)": [],
               "DP (beta = 1e-3)": []}
    for delta in deltas:
        fb = integrators.mismatched_feedback(system, theta, float(delta), jax.random.key(config.seed + 5))
        key = jax.random.key(config.seed)
        methods["least action (field p)"].append(relative_error(integrators.langevin_relax(
            system, theta, x0, loss, key, iterations=300, window=1, feedback=fb).grad, reference))
        methods["least action (copies, beta = 1)"].append(relative_error(integrators.langevin_copies(
            system, theta, x0, loss, 1.0, key, iterations=300, window=1, feedback=fb).grad, reference))
        methods["EP (beta = 1e-3)"].append(relative_error(reciprocity.ep_substrate(
            system, theta, x0, loss, 1e-3, key, feedback=fb), reference))
        methods["DP (beta = 1e-3)"].append(relative_error(reciprocity.dp_substrate(
            system, theta, x0, loss, 1e-3, feedback=fb), reference))
    fit = (deltas >= 1e-3) & (deltas <= 1e-1)
    out = {"deltas": deltas.tolist(), "methods": {}}
    for name, errors in methods.items():
        out["methods"][name] = {"errors": errors, "exact_error": errors[0],
                                "slope": fit_slope(deltas[fit], np.asarray(errors)[fit])}
        log(f"mismatch, {name}: error {errors[0]:.1e} at delta = 0, slope {out['methods'][name]['slope']:.3f}")
    return out


def noise_sweep(config, size, log) -> dict:
    system, theta, x0, loss = substrate_problem(config.seed)
    reference = jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)
    temps = np.concatenate([[0.0], np.geomspace(1e-14, 1e-4, size["temperatures"])])
    its, window = size["langevin_iterations"], size["window"]
    key = jax.random.key(config.seed + 1)
    runs = {
        "least action (field p)": lambda t: integrators.langevin_relax(
            system, theta, x0, loss, key, t, iterations=its, window=window).averaged,
        "least action (copies, beta = 1)": lambda t: integrators.langevin_copies(
            system, theta, x0, loss, 1.0, key, t, iterations=its, window=window).averaged,
        "least action (copies, beta = 100)": lambda t: integrators.langevin_copies(
            system, theta, x0, loss, 100.0, key, t, iterations=its, window=window).averaged,
        "EP (beta = 1e-2)": lambda t: reciprocity.ep_substrate(
            system, theta, x0, loss, 1e-2, key, temperature=t, iterations=its, window=window),
    }
    out = {"temperatures": temps.tolist(), "iterations": its, "window": window, "methods": {}}
    for name, fn in runs.items():
        errors = [relative_error(fn(float(t)), reference) for t in temps]
        floor = errors[0]
        fit = [i for i in range(1, len(temps)) if errors[i] > 10 * floor and errors[i] < 0.3]
        slope = fit_slope(temps[fit], np.asarray(errors)[fit]) if len(fit) >= 2 else None
        out["methods"][name] = {"errors": errors, "noise_floor": floor, "slope": slope,
                                "fit_temperatures": [float(temps[i]) for i in fit]}
        log(f"noise, {name}: error {floor:.1e} at T = 0, slope {slope}")
    return out


# --- 4. training on digits -------------------------------------------------------------------------


def training(config, size, log) -> dict:
    """Full-batch adam on digits with gradients from a substrate, against backprop."""
    import optax

    x, y = (jnp.asarray(a) for a in digits(config.seed))
    n_train = 300 if config.quick else 1000
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    system = lagrangian.MLP((64, 32, 10), readout=True)
    theta0 = system.init(jax.random.key(config.seed))
    loss = lagrangian.CrossEntropy(labels=y_train)
    optimiser = optax.adam(config.learning_rate)
    steps = size["train_steps"]
    gs = [jax.random.normal(jax.random.fold_in(jax.random.key(config.seed + 7), k), theta0[k]["W"].shape)
          for k in range(system.depth)]

    def feedback(theta, delta):
        return tuple(theta[k]["W"] + delta * jnp.linalg.norm(theta[k]["W"]) * g / jnp.linalg.norm(g)
                     for k, g in enumerate(gs))

    def accuracy(theta):
        return jnp.mean(jnp.argmax(integrators.output(system, theta, x_test), axis=-1) == y_test)

    def train(grad_fn):
        def step(carry, key):
            theta, state = carry
            value = loss(integrators.output(system, theta, x_train))
            updates, state = optimiser.update(grad_fn(theta, key), state, theta)
            theta = optax.apply_updates(theta, updates)
            return (theta, state), (value, accuracy(theta))

        keys = jax.random.split(jax.random.key(config.seed + 9), steps)
        scan = jax.jit(lambda: jax.lax.scan(step, (theta0, optimiser.init(theta0)), keys)[1])
        losses, accs = scan()
        return np.asarray(losses).tolist(), np.asarray(accs).tolist()

    out = {}
    losses, accs = train(lambda th, key: jax.grad(lambda t: loss(integrators.output(system, t, x_train)))(th))
    out["backprop"] = {"losses": losses, "test_accuracy": accs[-1]}
    points = config.substrates()[:1] if config.quick else config.substrates()
    for delta, temp in points:
        def grad_fn(th, key, delta=delta, temp=temp):
            return integrators.langevin_relax(system, th, x_train, loss, key, temp, iterations=40, window=20, eta=1.0,
                                              feedback=feedback(th, delta)).averaged

        losses, accs = train(grad_fn)
        out[f"delta = {delta:g}, T = {temp:g}"] = {"delta": delta, "temperature": temp, "losses": losses,
                                                   "test_accuracy": accs[-1]}
    for name, run in out.items():
        log(f"digits, {name}: loss {run['losses'][0]:.3f} -> {run['losses'][-1]:.4f}, "
            f"test accuracy {run['test_accuracy']:.3f}")
    return out


# --- the run ---------------------------------------------------------------------------------------


def run(config: PhysicalSubstrateConfig, folder: RunFolder, progress: Progress) -> dict:
    size = config.sizes()
    key = jax.random.key(config.seed)
    total = 7
    progress(0, total, "no global clock: synchronous, asynchronous and continuous relaxation")
    clock = clock_curves(config, jax.random.fold_in(key, 1), size, folder.log)
    progress(1, total, "rates: spread of time constants and staleness; the saddle flow without a clock")
    rates = rate_sweep(config, jax.random.fold_in(key, 2), size, folder.log)
    saddle = saddle_curves(config, jax.random.fold_in(key, 3), size, folder.log)
    rates["saddle"] = saddle
    progress(2, total, "two physical copies over ten decades of beta")
    copies = copies_sweep(config, size, folder.log)
    progress(3, total, "mismatched feedback couplings")
    mismatch = mismatch_sweep(config, size, folder.log)
    progress(4, total, "Langevin noise")
    noise = noise_sweep(config, size, folder.log)
    progress(5, total, "training on digits on imperfect substrates")
    train = training(config, size, folder.log)
    progress(6, total, "figures and tables")
    folder.save_figure(clock_figure(clock, rates), "clock_free")
    folder.save_figure(copies_figure(copies), "copies")
    folder.save_figure(substrate_figure(mismatch, noise), "mismatch_and_noise")
    folder.save_figure(training_figure(train), "training")
    folder.save_table(summary_table(clock, copies, mismatch, noise), "physical_substrate")
    progress(total, total, "done")
    return {"clock": clock, "rates": rates, "copies": copies, "mismatch": mismatch, "noise": noise,
            "training": train}


# --- figures and tables ----------------------------------------------------------------------------


def clock_figure(clock, rates):
    """Error against pseudo-time per network (one panel each), time to 1e-10 against spread and
    staleness, and the saddle flow synchronous and asynchronous."""
    fig, axes = plots.figure(ncols=len(clock) + 2)
    saddle = rates["saddle"]
    ax = axes[-1]
    for name, curve in saddle["curves"].items():
        ax.semilogy(curve["times"], np.maximum(curve["errors"], 1e-17), label=name)
    ax.axhline(1e-10, color="0.5", lw=0.8, ls=":")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(3, 3))
    ax.set_xlabel(r"pseudo-time $\tau$ (updates per node)")
    ax.set_ylabel(r"relative error of $dl/d\theta$")
    ax.set_title(f"saddle flow, tanh ResNet depth {saddle['depth']}")
    ax.legend(fontsize=7)
    axes = axes[:-1]
    for ax, (label, curves) in zip(axes, clock.items()):
        for name, curve in curves.items():
            ax.semilogy(curve["times"], np.maximum(curve["errors"], 1e-17), label=name)
        ax.axhline(1e-10, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel(r"pseudo-time $\tau$")
        ax.set_ylabel(r"relative error of $dl/d\theta$")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    spreads = [r["spread"] for r in rates["spread"]]
    ax.loglog(spreads, [r["asynchronous"] or np.nan for r in rates["spread"]], "o-", label="asynchronous vs spread")
    ax.loglog(spreads, [r["continuous"] or np.nan for r in rates["spread"]], "s-", label="continuous vs spread")
    lags = [max(r["max_lag_time"], 1e-1) for r in rates["lag"]]
    ax.loglog([1 + lag for lag in lags], [r["asynchronous"] or np.nan for r in rates["lag"]], "^--",
              label=r"asynchronous vs 1 + staleness $\tau$")
    ax.axhline(rates["synchronous"], color="0.5", ls=":", label="synchronous Jacobi")
    ax.set_xlabel(r"spread $\tau_{max}/\tau_{min}$ (or 1 + staleness)")
    ax.set_ylabel(r"pseudo-time to $10^{-10}$")
    ax.set_title(f"ResNet depth {rates['depth']}")
    ax.legend(fontsize=7)
    return fig


def copies_figure(copies):
    """Tension and gradient errors of the copies against beta, the rounding floor beside them, EP and DP."""
    fig, (ax,) = plots.figure(panel_size=(5.5, 4.2))
    rows = copies["rows"]
    betas = [r["beta"] for r in rows]
    ax.loglog(betas, [max(r["tension_error"], 1e-17) for r in rows], "o-", label=r"$|x_1 - x_2 - \beta p|/|\beta p|$")
    ax.loglog(betas, [max(r["gradient_error"], 1e-17) for r in rows], "s-", label="gradient from the copies")
    ax.loglog(betas, [r["rounding_floor"] for r in rows], "k--", label=r"floor $\epsilon|x_+|/(\beta|p|)$")
    small = [r for r in rows if "ep_error" in r]
    ax.loglog([r["beta"] for r in small], [r["ep_error"] for r in small], "^:", label="symmetric EP")
    ax.loglog([r["beta"] for r in small], [r["dp_error"] for r in small], "v:", label="DP")
    ax.axhline(1e-9, color="0.5", lw=0.8)
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel("relative error")
    ax.set_title("two physical copies (MLP 8-16-16-4)")
    ax.legend(fontsize=7)
    return fig


def substrate_figure(mismatch, noise):
    """Gradient error against the mismatch delta and against the temperature T, with fitted slopes."""
    fig, (left, right) = plots.figure(ncols=2)
    deltas = np.asarray(mismatch["deltas"][1:])
    for name, m in mismatch["methods"].items():
        left.loglog(deltas, m["errors"][1:], "o-", ms=3, label=f"{name}: slope {m['slope']:.2f}")
    left.set_xlabel(r"feedback mismatch $\delta = |B - W|/|W|$")
    left.set_ylabel(r"relative error of $dl/d\theta$")
    left.legend(fontsize=7)
    temps = np.asarray(noise["temperatures"][1:])
    for name, m in noise["methods"].items():
        slope = "-" if m["slope"] is None else f"{m['slope']:.2f}"
        right.loglog(temps, m["errors"][1:], "o-", ms=3, label=f"{name}: slope {slope}")
    right.set_xlabel("temperature T")
    right.set_ylabel(r"relative error (averaged over the window)")
    right.legend(fontsize=7)
    return fig


def training_figure(train):
    fig, (ax,) = plots.figure(panel_size=(5.5, 4.2))
    for name, run in train.items():
        ax.semilogy(run["losses"], label=f"{name} (test acc. {run['test_accuracy']:.3f})")
    ax.set_xlabel("adam step")
    ax.set_ylabel("training cross-entropy")
    ax.set_title("digits, gradients from a substrate")
    ax.legend(fontsize=7)
    return fig


def summary_table(clock, copies, mismatch, noise) -> Table:
    rows = []
    for label, curves in clock.items():
        for name, curve in curves.items():
            rows.append([f"{label}: {name}", curve["final_error"], curve["time_to_1e-10"] or "-"])
    rows.append(["copies, max error over beta in [1e-4, 1e2]", copies["max_error_beta_1e-4_to_1e2"], "-"])
    for name, m in mismatch["methods"].items():
        rows.append([f"mismatch, {name}: error at delta = 0 (slope {m['slope']:.2f})", m["exact_error"], "-"])
    for name, m in noise["methods"].items():
        slope = "-" if m["slope"] is None else f"{m['slope']:.2f}"
        rows.append([f"noise, {name}: error at T = 0 (slope {slope})", m["noise_floor"], "-"])
    return Table(columns=["method and substrate", "rel. L2 error vs jax.grad", "pseudo-time to 1e-10"], rows=rows,
                 caption="Physical substrates: clock-free relaxation, two copies, mismatch and noise (float64)",
                 label="tab:physical-substrate")


EXPERIMENT = Experiment(
    name="physical-substrate",
    description="no global clock, two physical copies, reciprocity mismatch and noise, against jax.grad",
    config=PhysicalSubstrateConfig(),
    run=run,
    headline=("copies.max_error_beta_1e-4_to_1e2",),
    figures={"physical_substrate_clock_free": "clock_free", "physical_substrate_copies": "copies",
             "physical_substrate_mismatch_and_noise": "mismatch_and_noise"},
)
