"""The ResNet limit: depth N -> infinity converges to the continuous flow and its gradient.

A ResNet with shared weights, `x_{k+1} = x_k + h tanh(W x_k + b)`, `h = T/N`,
is forward Euler on the neural ODE `dx/dt = tanh(W x + b)`; a Runge-Kutta
tableau gives a "higher-order ResNet" with the same parameters. For each
method in `methods` and each depth `N` in `depths`:

- forward error `max |x_N - x(T)|` against `x(T)` solved by scipy's DOP853 at
  `rtol = atol = 1e-13`;
- gradient error `|dl/dtheta_N - dl/dtheta| / |dl/dtheta|` of the least-action
  sweep (the harness method ``least-action`` on the problem
  `harness.shipped.neural_ode_problem` stepped by the tableau) against the
  continuous gradient, the harness's adjoint-ODE reference at the same tolerance
  (`harness.problems.AdjointODEReference`);

and the orders fitted to both on log-log axes over the errors above
`FIT_ABOVE` (10^4 times the reference's tolerance, so that its own error does
not bend the fit): about the tableau's order `p`. The sweep is the exact gradient of each discrete map (its conjugate
step is the partner method `A_hat_ij = b_j - b_j a_ji / b_i` when every
`b_i != 0`, stage-wise otherwise); that is checked against the harness's
``jax-grad`` on the discrete map at the largest depth, and the partner's defining identity
`b_i A_hat_ij + b_j a_ji - b_i b_j = 0` (the symplectic-pair condition) is
measured for each tableau. For Euler, `lagrangian.ResNet` of depth `N` with
every layer's `(W_k, b_k)` set to `(W, b)` is compared with the discretised
field (same states, and its per-layer gradients sum to the shared one).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .. import harness, plots
from ..config import check_quick
from ..harness.metrics import relative, relative_error
from ..harness.problems import AdjointODEReference
from ..harness.shipped import neural_ode_problem
from ..runner import Experiment, Progress, RunFolder
from ..tables import Table


FIT_ABOVE = 1e-9
"""Orders are fitted over errors above this: 10^4 x the continuous reference's tolerance (1e-13)."""


@dataclass(frozen=True)
class ResNetLimitConfig:
    """Defaults of the ResNet-limit experiment.

    seed: PRNG seed of the weights, initial states and targets.
    dim: state dimension `d`.
    batch: number of initial states.
    t_final: horizon `T`.
    scale: weight scale.
    methods: comma-separated explicit Runge-Kutta tableaux.
    depths: comma-separated depths `N`.
    quick: the small preset (`methods` euler,rk4 and depths 4,8,16).
    """

    seed: int = 0
    dim: int = 4
    batch: int = 8
    t_final: float = 1.0
    scale: float = 1.0
    methods: str = "euler,heun,midpoint,kutta3,rk4"
    depths: str = "4,8,16,32,64,128,256,512,1024"
    quick: bool = False

    def __post_init__(self):
        if self.dim < 1 or self.batch < 1 or not self.t_final > 0:
            raise ValueError(f"config keys need dim, batch >= 1 and t_final > 0; got {self.dim}, {self.batch}, "
                             f"{self.t_final}")
        for name in self.lists()[0]:
            try:
                if not integrators.tableau(name).explicit:
                    raise ValueError(f"{name!r} is not explicit")
            except (ValueError, AttributeError) as error:
                raise ValueError(f"config key 'methods': {error}") from None
        check_quick(self, ("methods", "depths"))
        depths = self.lists()[1]
        if len(depths) < 2 or min(depths) < 1:
            raise ValueError(f"config key 'depths' needs at least two depths >= 1; got {self.depths!r}")

    def lists(self) -> tuple[list[str], list[int]]:
        """`(methods, depths)` actually run."""
        methods, depths = ("euler,rk4", "4,8,16") if self.quick else (self.methods, self.depths)
        try:
            return [m.strip() for m in methods.split(",") if m.strip()], [int(n) for n in depths.split(",")]
        except ValueError:
            raise ValueError(f"config key 'depths' must be comma-separated integers; got {depths!r}") from None


def partner_check(name: str) -> dict:
    """The partner tableau of `name` and the symplectic-pair defect, or why it has none."""
    t = integrators.tableau(name)
    try:
        partner = integrators.partner_tableau(t)
    except ValueError as error:
        return {"partner": None, "reason": str(error), "conjugate": "stage-wise (exact without the formula)"}
    a, b, a_hat = np.asarray(t.a), np.asarray(t.b), np.asarray(partner.a)
    defect = b[:, None] * a_hat + b[None, :] * a.T - b[:, None] * b[None, :]
    return {"partner": {"a": a_hat.tolist(), "b": list(partner.b), "c": list(partner.c)},
            "pair_condition_max_abs": float(np.max(np.abs(defect))), "conjugate": "partner method",
            "order": t.order}


def _gradient(method: str, problem: harness.Problem):
    """`dl/dtheta` of `problem` by the harness method `method` (compiled, called once)."""
    prepared = harness.method_named(method).prepare(problem)
    return jax.jit(prepared.fn)(*prepared.args)[0]


def run(config: ResNetLimitConfig, folder: RunFolder, progress: Progress) -> dict:
    methods, depths = config.lists()
    total, done = 2 + len(methods) * len(depths) + 1, 0

    def problem_at(scheme, n):
        return neural_ode_problem(config.dim, n, batch=config.batch, t_final=config.t_final, scale=config.scale,
                                  seed=config.seed, scheme=scheme)

    first = problem_at(methods[0], depths[0])
    theta, x0, loss = first.theta, first.x0, first.loss
    progress(1, total, "continuous reference: adjoint ODE, scipy DOP853, rtol = atol = 1e-13")
    reference = AdjointODEReference(1e-13)
    exact_grad, x_ref = reference(first), reference.final_state(first)
    results = {"continuous_reference": {"source": "adjoint ODE and x(T) by scipy DOP853, rtol = atol = 1e-13"},
               "methods": {}}
    for method in methods:
        entry = {"order": integrators.tableau(method).order, **partner_check(method), "depths": depths,
                 "forward_error": [], "gradient_error": []}
        for n in depths:
            done += 1
            progress(1 + done, total, f"{method}: depth {n}")
            problem = problem_at(method, n)
            x_final = integrators.output(problem.system, theta, x0)
            grad = _gradient("least-action", problem)
            entry["forward_error"].append(float(np.max(np.abs(np.asarray(x_final) - x_ref))))
            entry["gradient_error"].append(relative_error(grad, exact_grad))
        entry["gradient_error_vs_discrete_map_at_max_depth"] = relative_error(grad, _gradient("jax-grad", problem))
        h = config.t_final / np.asarray(depths, dtype=float)
        for kind in ("forward", "gradient"):
            errors = np.asarray(entry[f"{kind}_error"])
            above = errors > FIT_ABOVE
            entry[f"fitted_order_{kind}"] = plots.fitted_order(h[above], errors[above])
            entry[f"fit_points_{kind}"] = int(above.sum())
        results["methods"][method] = entry
        folder.log(f"{method}: orders forward {entry['fitted_order_forward']:.3f}, gradient "
                   f"{entry['fitted_order_gradient']:.3f}; exact vs jax.grad "
                   f"{entry['gradient_error_vs_discrete_map_at_max_depth']:.2e}")

    progress(total - 1, total, "ResNet of depth N with tied weights = Euler discretisation")
    n = depths[len(depths) // 2]
    resnet = lagrangian.ResNet(dim=config.dim, depth=n, h=config.t_final / n)
    tied = jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), theta)
    res_sol = integrators.sweep(resnet, tied, x0, loss)
    euler = integrators.sweep(problem_at("euler", n).system, theta, x0, loss)
    summed = jax.tree.map(lambda g: jnp.sum(g, axis=0), res_sol.grad)
    results["resnet_vs_euler"] = {
        "depth": n,
        "max_abs_state_difference": float(jnp.max(jnp.abs(res_sol.xs - euler.xs))),
        "summed_layer_gradient_relative_error": relative_error(summed, euler.grad),
        "loss_relative_difference": relative(abs(float(res_sol.loss - euler.loss)), abs(float(euler.loss))),
    }

    h_values = {m: config.t_final / np.asarray(depths, dtype=float) for m in methods}
    fig, axes = plots.figure(ncols=2, panel_size=(5.0, 4.2))
    plots.convergence(axes[0], h_values, {m: results["methods"][m]["forward_error"] for m in methods},
                      ylabel=r"$\max|x_N - x(T)|$", title="forward: depth-N network vs the flow", fit_above=FIT_ABOVE)
    plots.convergence(axes[1], h_values, {m: results["methods"][m]["gradient_error"] for m in methods},
                      ylabel=r"rel. error of $dl/d\theta$ vs continuous",
                      title="gradient: least-action sweep vs the continuous gradient", fit_above=FIT_ABOVE)
    for ax in axes:
        ax.set_xlabel(f"step $h = T/N$ (N = {depths[0]}..{depths[-1]})")
    folder.save_figure(fig, "error_vs_depth")
    folder.save_table(Table(
        columns=["method", "order", "conjugate", "fitted order (forward)", "fitted order (gradient)",
                 "grad. error vs continuous at max N", "grad. error vs jax.grad of the map"],
        rows=[[m, e["order"], e["conjugate"], e["fitted_order_forward"], e["fitted_order_gradient"],
               e["gradient_error"][-1], e["gradient_error_vs_discrete_map_at_max_depth"]]
              for m, e in results["methods"].items()],
        caption=(f"ResNet limit: neural ODE tanh(W x + b), d = {config.dim}, batch {config.batch}, T = "
                 f"{config.t_final:g}, depths {depths[0]}..{depths[-1]}; reference: adjoint ODE by DOP853 at tol 1e-13"),
        label="tab:resnet-limit"), "orders")
    progress(total, total, "done")
    return results


EXPERIMENT = Experiment(
    name="resnet-limit",
    description="ResNet depth N -> infinity: error vs N of the flow and its gradient for Euler and higher-order tableaux",
    config=ResNetLimitConfig(),
    run=run,
    headline=("methods.euler.fitted_order_gradient", "methods.rk4.fitted_order_gradient",
              "methods.rk4.gradient_error_vs_discrete_map_at_max_depth",
              "resnet_vs_euler.summed_layer_gradient_relative_error"),
    figures={"resnet_limit_error_vs_depth": "error_vs_depth"},
)
