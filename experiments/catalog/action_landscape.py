"""The discrete action around backpropagation's solution is a saddle, not a minimum.

System: an MLP `widths` (tanh) on one input `x_0`, loss `l = |x_N - y|^2 / 2`.
The least-action sweep gives the stationary point `z* = (x*_1..N, p*_1..N)` of

    S_d[x, p] = l(x_N) + sum_k p_{k+1} . (Phi_k(x_k) - x_{k+1})        (x_0 clamped).

What is measured:

1. The Hessian of `S_d` in `z = (x, p)` (`lagrangian.action_hessian`, assembled
   from one-layer derivatives; checked against `jax.hessian` of the whole
   action). It has the block form `[[A, B], [B^T, 0]]`: `S_d` is linear in `p`,
   and `B` (the layer Jacobians, `-I` on the diagonal) is invertible. By
   Sylvester's law of inertia the spectrum has exactly `M` positive and `M`
   negative eigenvalues (`M = sum_k n_k`): a saddle of index `M`. For linear
   layers with a linear loss (`A = 0`) the eigenvalues are exactly `+-sigma_i(B)`,
   symmetric pairs; with curvature the counts stay paired, the values shift.
2. `S_d` on perturbed trajectories `z* + eps u`: it rises along the top
   eigenvector, falls along the bottom one, and is exactly flat along every
   pure-`p` perturbation (`S_d` is linear in `p` and the forward residual
   vanishes at `z*`); its second difference matches `u . Hess u`. A 2-D slice
   through the top and bottom eigenvectors shows the saddle.
3. What this means for solvers (docs/design.md 2.6). A stationary point with `M`
   negative directions cannot be reached by minimising `S_d`: plain descent
   `dz/dtau = -grad S_d` has Jacobian `-Hess`, with `M` eigenvalues of positive
   real part, and runs away from `z*` along the `p`-rich negative directions
   (and ascent along the others); there is no minimum to find, since `S_d` is
   unbounded below and above. A solver must treat `x` and `p` differently: a
   saddle flow. The Arrow-Hurwicz flow (descend in `x`, ascend in `p`) is
   the classical one, but its Jacobian `diag(-I, I) Hess` has purely
   rotational parts when `A` is indefinite and may even be unstable, which is
   why it needs an augmented-Lagrangian penalty. The relaxation of docs/design.md
   2.6 moves each variable along the derivative with respect to its
   *conjugate*, `dx_{k+1}/dtau = dS/dp_{k+1}`, `dp_k/dtau = dS/dx_k`, i.e.
   `dz/dtau = K grad S_d` with `K = [[0, I], [I, 0]]`: its Jacobian
   `K Hess = [[B^T, 0], [A, B]]` is block triangular with every eigenvalue
   `-1`, so it converges exponentially from any start, through the saddle,
   with local (nearest-neighbour) updates. The experiment measures all three
   spectra and integrates the three pseudo-time flows from the same perturbed
   start.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import plots
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table

QUICK_SIZES = {"points": 21, "grid": 21, "tau_steps": 150}
"""What the `quick` preset runs instead of `points`, `grid` and `tau_steps`."""

TOTAL_STEPS = 6
FLOWS = ("descent", "arrow-hurwicz", "relaxation")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ValueError(f"config key 'widths' must be comma-separated integers; got {text!r}") from None
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ValueError(f"config key 'widths' needs at least two positive widths; got {text!r}")
    return widths


@dataclass(frozen=True)
class LandscapeConfig:
    """Defaults of the action-landscape experiment.

    seed: seed of the weights, the input, the target and the perturbation directions.
    widths: comma-separated layer widths `n_0, ..., n_N` of the tanh MLP.
    scale: weight scale of the MLP.
    epsilon: largest perturbation size along a unit direction in `z`.
    points: samples of `eps` in `[-epsilon, epsilon]` per direction.
    grid: samples per axis of the 2-D slice.
    tau_step: pseudo-time step of the forward-Euler pseudo-time flows.
    tau_steps: number of pseudo-time steps.
    start_distance: distance of the pseudo-time start from `z*`.
    quick: the small preset: `points`, `grid`, `tau_steps` become `QUICK_SIZES`.
    """

    seed: int = 0
    widths: str = "3,6,6,2"
    scale: float = 1.5
    epsilon: float = 1.0
    points: int = 81
    grid: int = 61
    tau_step: float = 0.1
    tau_steps: int = 300
    start_distance: float = 0.1
    quick: bool = False

    def __post_init__(self):
        _widths(self.widths)
        if self.quick:
            defaults = LandscapeConfig.__dataclass_fields__
            changed = [k for k in QUICK_SIZES if getattr(self, k) != defaults[k].default]
            if changed:
                raise ValueError(f"config key 'quick' replaces {', '.join(QUICK_SIZES)}; "
                                 f"do not also set {', '.join(changed)}")
        for key in ("points", "grid", "tau_steps"):
            if getattr(self, key) < 3:
                raise ValueError(f"config key {key!r} must be >= 3; got {getattr(self, key)}")
        for key in ("scale", "epsilon", "tau_step", "start_distance"):
            if not getattr(self, key) > 0:
                raise ValueError(f"config key {key!r} must be > 0; got {getattr(self, key)}")

    def sizes(self) -> dict:
        return dict(QUICK_SIZES) if self.quick else {k: getattr(self, k) for k in QUICK_SIZES}


QUICK = LandscapeConfig(quick=True)


class Problem:
    """One network, input, loss and its stationary point, with `S_d` as a function of flat `z`."""

    def __init__(self, network, theta, x0, loss):
        self.network, self.theta, self.x0, self.loss = network, theta, x0, loss
        solution = integrators.sweep(network, theta, x0, loss)
        self.xs, self.ps = solution.xs, solution.ps
        self.dims = [int(x.shape[0]) for x in self.xs[1:]]
        self.offsets = np.concatenate([[0], np.cumsum(self.dims)]).astype(int)
        self.m = int(self.offsets[-1])
        self.z_star = jnp.concatenate([*self.xs[1:], *self.ps[1:]])

    def split(self, z):
        """Flat `z = (x_1..x_N, p_1..p_N)` -> `(xs, ps)` with `x_0` clamped (and an unused `p_0 = 0`)."""
        o, m = self.offsets, self.m
        xs = [self.x0] + [z[o[k]:o[k + 1]] for k in range(len(self.dims))]
        ps = [jnp.zeros_like(self.x0)] + [z[m + o[k]:m + o[k + 1]] for k in range(len(self.dims))]
        return xs, ps

    def action(self, z):
        """`S_d(z)`."""
        xs, ps = self.split(z)
        return lagrangian.discrete_action(self.network, self.theta, xs, ps, self.loss)

    def hessian(self):
        return lagrangian.action_hessian(self.network, self.theta, self.xs, self.ps, self.loss)

    def coupling(self) -> np.ndarray:
        """`B`, the `(x, p)` block of the Hessian: rows `x_1..x_N`, columns `p_1..p_N`."""
        return np.asarray(self.hessian())[: self.m, self.m:]


def _unit(key, m, part: str, dtype):
    """A random unit vector of `R^{2m}` supported on `x` (first half), `p` (second half) or both."""
    v = jax.random.normal(key, (2 * m,), dtype)
    if part == "x":
        v = v.at[m:].set(0.0)
    elif part == "p":
        v = v.at[:m].set(0.0)
    return v / jnp.linalg.norm(v)


def pseudo_time(problem: Problem, gain: np.ndarray, z0, step: float, steps: int) -> np.ndarray:
    """Forward Euler of `dz/dtau = G grad S_d(z)` from `z0`; returns `|z_j - z*|`, `j = 0..steps`.

    `grad S_d` is `jax.grad` of the whole action: this is the experiment's model of a
    solver's linear behaviour, not the project's relaxation code (`integrators.relax`)."""
    grad = jax.grad(problem.action)
    gain = jnp.asarray(gain)

    def body(z, _):
        z_next = z + step * (gain @ grad(z))
        return z_next, jnp.linalg.norm(z_next - problem.z_star)

    _, distances = jax.lax.scan(body, z0, None, length=steps)
    return np.concatenate([[float(jnp.linalg.norm(z0 - problem.z_star))], np.asarray(distances)])


def run(config: LandscapeConfig, folder: RunFolder, progress: Progress) -> dict:
    """Measurements 1-3 of the module docstring, one figure and one table."""
    sizes = config.sizes()
    widths = _widths(config.widths)
    k_net, k_x, k_y, k_dir, k_start = jax.random.split(jax.random.key(config.seed), 5)
    network = lagrangian.MLP(widths, activation="tanh", scale=config.scale)
    theta = network.init(k_net)
    x0 = jax.random.normal(k_x, (widths[0],))
    loss = lagrangian.SquaredError(target=jax.random.normal(k_y, (widths[-1],)))
    problem = Problem(network, theta, x0, loss)
    m = problem.m
    results: dict = {"widths": list(widths), "variables_x": m, "variables_p": m, "sizes": sizes}
    folder.log(f"MLP {widths} tanh: {m} state and {m} conjugate variables")

    progress(1, TOTAL_STEPS, "Hessian of the discrete action and its spectrum")
    hess = np.asarray(problem.hessian())
    reference = np.asarray(jax.hessian(problem.action)(problem.z_star))
    eigenvalues, eigenvectors = np.linalg.eigh(hess)
    positive, negative, zero = lagrangian.inertia(eigenvalues)
    pos = np.sort(eigenvalues[eigenvalues > 0])
    neg = np.sort(-eigenvalues[eigenvalues < 0])
    pairing = float(np.max(np.abs(pos - neg)) / np.max(np.abs(eigenvalues))) if len(pos) == len(neg) else None
    results["hessian"] = {
        "max_abs_difference_vs_jax_hessian": float(np.max(np.abs(hess - reference))),
        "max_abs_entry": float(np.max(np.abs(reference))),
        "eigenvalues": eigenvalues.tolist(),
        "positive": positive, "negative": negative, "zero": zero,
        "pairing_relative_defect": pairing,
        "max_abs_A_block": float(np.max(np.abs(hess[:m, :m]))),
        "max_abs_pp_block": float(np.max(np.abs(hess[m:, m:]))),
        "det_B": float(np.linalg.det(problem.coupling())),
    }
    folder.log(f"inertia (+, -, 0) = ({positive}, {negative}, {zero}); |eig+| vs |eig-| relative defect {pairing:.3e}")

    progress(2, TOTAL_STEPS, "the zero-curvature case: linear layers and a linear loss")
    linear_net = lagrangian.MLP(widths, activation="identity", scale=config.scale)
    linear = Problem(linear_net, theta, x0, lagrangian.LinearFunctional(c=loss.target))
    linear_eigs = np.linalg.eigvalsh(np.asarray(linear.hessian()))
    sigma = np.linalg.svd(linear.coupling(), compute_uv=False)
    expected = np.sort(np.concatenate([sigma, -sigma]))
    results["zero_curvature"] = {
        "eigenvalues": linear_eigs.tolist(),
        "singular_values_B": sigma.tolist(),
        "max_abs_difference_vs_plus_minus_sigma": float(np.max(np.abs(linear_eigs - expected))),
        "pair_sum_max_abs": float(np.max(np.abs(linear_eigs + linear_eigs[::-1]))),
        "inertia": list(lagrangian.inertia(linear_eigs)),
    }

    progress(3, TOTAL_STEPS, "the action on perturbed trajectories")
    action = jax.jit(problem.action)
    s_star = float(action(problem.z_star))
    eps = np.linspace(-config.epsilon, config.epsilon, sizes["points"])
    k1, k2, k3 = jax.random.split(k_dir, 3)
    directions = {
        "top eigenvector": jnp.asarray(eigenvectors[:, -1]),
        "bottom eigenvector": jnp.asarray(eigenvectors[:, 0]),
        "random x only": _unit(k1, m, "x", x0.dtype),
        "random p only": _unit(k2, m, "p", x0.dtype),
        "random (x, p)": _unit(k3, m, "xp", x0.dtype),
    }
    slices = jax.jit(jax.vmap(lambda e, u: problem.action(problem.z_star + e * u) - problem.action(problem.z_star),
                              in_axes=(0, None)))
    small = 1e-3
    profiles, perturbed = {}, {}
    for name, u in directions.items():
        profile = np.asarray(slices(jnp.asarray(eps), u))
        profiles[name] = profile
        second = np.asarray(slices(jnp.asarray([small, -small]), u))
        perturbed[name] = {
            "curvature_u_H_u": float(u @ (hess @ u)),
            "second_difference": float((second[0] + second[1]) / small**2),
            "min_delta_S": float(profile.min()), "max_delta_S": float(profile.max()),
            "max_abs_delta_S": float(np.max(np.abs(profile))),
        }
    results["action_star"] = s_star
    results["perturbations"] = perturbed
    results["epsilon"] = eps.tolist()
    results["profiles"] = {name: p.tolist() for name, p in profiles.items()}

    progress(4, TOTAL_STEPS, "2-D slice and pseudo-time flows")
    g = np.linspace(-config.epsilon, config.epsilon, sizes["grid"])
    plane = jax.jit(jax.vmap(jax.vmap(
        lambda a, b: problem.action(problem.z_star + a * directions["top eigenvector"]
                                    + b * directions["bottom eigenvector"]) - s_star,
        in_axes=(0, None)), in_axes=(None, 0)))
    surface = np.asarray(plane(jnp.asarray(g), jnp.asarray(g)))  # [b, a]
    flows = {name: np.asarray(j) for name, j in lagrangian.linearised_flows(jnp.asarray(hess)).items()}
    eye, zero_block = np.eye(m), np.zeros((m, m))
    gains = {"descent": -np.eye(2 * m), "arrow-hurwicz": np.diag(np.concatenate([-np.ones(m), np.ones(m)])),
             "relaxation": np.block([[zero_block, eye], [eye, zero_block]])}
    z0 = problem.z_star + config.start_distance * _unit(k_start, m, "xp", x0.dtype)
    distances, spectra = {}, {}
    for name in FLOWS:
        eig = np.linalg.eigvals(flows[name])
        spectra[name] = eig
        distances[name] = pseudo_time(problem, gains[name], z0, config.tau_step, sizes["tau_steps"])
        results.setdefault("solvers", {})[name] = {
            "max_real_eigenvalue": float(eig.real.max()),
            "unstable_eigenvalues": int(np.sum(eig.real > 1e-12)),
            "max_abs_imaginary": float(np.max(np.abs(eig.imag))),
            "distance_start": float(distances[name][0]),
            "distance_end": float(distances[name][-1]),
        }
        folder.log(f"{name}: max Re eig {eig.real.max():+.3e}, |z - z*| {distances[name][0]:.2e} -> "
                   f"{distances[name][-1]:.2e}")
    shifted = flows["relaxation"] + np.eye(2 * m)
    results["solvers"]["relaxation"]["nilpotency_residual"] = float(
        np.max(np.abs(np.linalg.matrix_power(shifted, 2 * m))))
    results["solvers"]["relaxation"]["max_abs_eigenvalue_plus_one"] = float(np.max(np.abs(spectra["relaxation"] + 1)))

    progress(5, TOTAL_STEPS, "figure and table")
    folder.save_figure(landscape_figure(results, eps, profiles, g, surface, eigenvalues, linear_eigs, distances,
                                        config), "action_landscape")
    folder.save_table(landscape_table(results), "saddle")
    progress(6, TOTAL_STEPS, "done")
    return results


def landscape_figure(results, eps, profiles, g, surface, eigenvalues, linear_eigs, distances, config):
    """(a) `S - S*` along five directions; (b) the Hessian spectrum, positive against
    `|negative|` eigenvalues (and the zero-curvature `+-sigma(B)` pairs); (c) a 2-D slice
    through the top and bottom eigenvectors; (d) `|z - z*|` under three pseudo-time flows."""
    fig, axes = plots.figure(ncols=4)
    for name, profile in profiles.items():
        axes[0].plot(eps, profile, label=name)
    axes[0].axhline(0.0, color=plots.OKABE_ITO["black"], lw=0.6)
    axes[0].set_xlabel(r"$\varepsilon$")
    axes[0].set_ylabel(r"$S_d(z^* + \varepsilon u) - S_d(z^*)$")
    axes[0].set_title("perturbed trajectories")
    axes[0].legend(loc="best")
    m = len(eigenvalues) // 2
    index = np.arange(1, m + 1)
    pos, neg = np.sort(eigenvalues[eigenvalues > 0]), np.sort(-eigenvalues[eigenvalues < 0])
    axes[1].plot(index[: len(pos)], pos, "o", label=r"$\lambda > 0$ (tanh, $A \neq 0$)")
    axes[1].plot(index[: len(neg)], neg, "x", label=r"$|\lambda|$, $\lambda < 0$")
    lin_pos, lin_neg = np.sort(linear_eigs[linear_eigs > 0]), np.sort(-linear_eigs[linear_eigs < 0])
    axes[1].plot(index[: len(lin_pos)], lin_pos, "s", mfc="none", label=r"$+\sigma_i(B)$ ($A = 0$)")
    axes[1].plot(index[: len(lin_neg)], lin_neg, "+", ms=9, label=r"$|-\sigma_i(B)|$ ($A = 0$)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("sorted index $i$")
    axes[1].set_ylabel(r"$|\lambda_i|$ of Hess $S_d$")
    axes[1].set_title(f"spectrum: {results['hessian']['positive']} positive, {results['hessian']['negative']} negative")
    axes[1].legend(loc="best")
    from matplotlib.colors import TwoSlopeNorm

    levels = np.linspace(surface.min(), surface.max(), 21)
    norm = TwoSlopeNorm(vmin=min(surface.min(), -1e-12), vcenter=0.0, vmax=max(surface.max(), 1e-12))
    contour = axes[2].contourf(g, g, surface, levels=levels, cmap="RdBu_r", norm=norm)
    axes[2].contour(g, g, surface, levels=[0.0], colors=plots.OKABE_ITO["black"], linewidths=0.8)
    fig.colorbar(contour, ax=axes[2], label=r"$S_d - S_d^*$")
    axes[2].plot([0], [0], "o", color=plots.OKABE_ITO["black"], ms=4)
    axes[2].set_xlabel(r"$a$ (top eigenvector)")
    axes[2].set_ylabel(r"$b$ (bottom eigenvector)")
    axes[2].set_title("a saddle in $(x, p)$")
    taus = config.tau_step * np.arange(len(next(iter(distances.values()))))
    for name, d in distances.items():
        axes[3].semilogy(taus, np.maximum(d, 1e-300), label=name)
    axes[3].set_ylim(1e-17, 1e3)
    axes[3].set_xlabel(r"pseudo-time $\tau$")
    axes[3].set_ylabel(r"$|z(\tau) - z^*|$")
    axes[3].set_title("solvers: only the saddle flow converges")
    axes[3].legend(loc="best")
    return fig


def landscape_table(results) -> Table:
    """Curvature along each perturbation, and the spectrum of each pseudo-time flow."""
    rows = [[name, r["curvature_u_H_u"], r["second_difference"], r["min_delta_S"], r["max_delta_S"]]
            for name, r in results["perturbations"].items()]
    rows += [[f"flow: {name}", r["max_real_eigenvalue"], r["unstable_eigenvalues"], r["distance_start"],
              r["distance_end"]] for name, r in results["solvers"].items()]
    return Table(
        columns=["direction / flow", "u.Hu / max Re eig", "second difference / unstable", "min dS / |z0 - z*|",
                 "max dS / |z_end - z*|"],
        rows=rows,
        caption=(f"The discrete action around its stationary point (MLP {results['widths']}): "
                 f"inertia ({results['hessian']['positive']}, {results['hessian']['negative']}, "
                 f"{results['hessian']['zero']}), and the linearised pseudo-time flows"),
        label="tab:action-landscape",
    )


EXPERIMENT = Experiment(
    name="action-landscape",
    description="The discrete action S[x, p] is a saddle: Hessian spectrum, perturbed trajectories, "
                "and why relaxation must be a saddle flow",
    config=LandscapeConfig(),
    run=run,
    headline=(
        "hessian.positive",
        "hessian.negative",
        "hessian.max_abs_difference_vs_jax_hessian",
        "zero_curvature.max_abs_difference_vs_plus_minus_sigma",
        "solvers.descent.max_real_eigenvalue",
        "solvers.relaxation.max_real_eigenvalue",
    ),
    figures={"action_landscape_action_landscape": "action_landscape"},
)
