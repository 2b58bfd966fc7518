"""Tutorial 2: your own system, and every gradient method on it.

Part 1 defines a layered system (`lagrangian.LayerMaps`) in a few lines and takes its
least-action gradient with three memory strategies. Part 2 defines a vector field
(`lagrangian.VectorField`, the Van der Pol oscillator), wraps both systems as harness problems
(`experiments.harness.custom_problem`) and runs several gradient methods on them against
jax.grad: the figure shows each method's relative error.

Run from the top of the repository:  python docs/tutorials/own_system.py
It writes docs/tutorials/figures/own_system.png.
"""

from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import integrators as I  # noqa: E402
import lagrangian as L  # noqa: E402
from experiments import harness  # noqa: E402

FIGURE = Path(__file__).parent / "figures" / "own_system.png"


# --- part 1: a layered system is one small class ----------------------------------------
class Swish(L.LayerMaps):
    """`Phi_k(x) = swish(W_k x)`, `W_k` of shape (dim, dim), stacked along a leading axis."""

    layout: ClassVar[str] = "stacked"           # theta leaves have a leading axis of length depth
    dim: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)

    @property
    def input_dim(self):
        return self.dim

    def init(self, key, dtype=jnp.float64):
        return {"W": jax.random.normal(key, (self.depth, self.dim, self.dim), dtype) / jnp.sqrt(self.dim)}

    def layer(self, k, x, theta_k):
        return jax.nn.swish(theta_k["W"] @ x)


net = Swish(dim=4, depth=12)
theta = net.init(jax.random.key(0))
x0 = jax.random.normal(jax.random.key(1), (16, 4))              # a batch of 16 inputs
loss = L.SquaredError(target=jnp.ones(4))

reference = jax.grad(lambda th: loss(I.output(net, th, x0)))(theta)["W"]
strategies = {"StoreAll()": I.StoreAll(), "Checkpoint(2)": I.Checkpoint(2),
              "Checkpoint.logarithmic()": I.Checkpoint.logarithmic()}
for label, memory in strategies.items():
    grad = I.sweep(net, theta, x0, loss, memory=memory).grad["W"]
    error = harness.relative_error(grad, reference)
    print(f"Swish, {label:>24}: relative error vs jax.grad {error:.1e}")
    assert error < 1e-12, error


# --- part 2: a vector field, discretised by any scheme ----------------------------------
class VanDerPol(L.VectorField):
    """`x = (q, v)`: `dq/dt = v`, `dv/dt = mu (1 - q^2) v - q`; `theta = {"mu": ()}`."""

    state_dim: int = eqx.field(static=True, default=2)

    def init(self, key, dtype=jnp.float64):
        return {"mu": jnp.asarray(1.5, dtype)}

    def __call__(self, t, x, theta):
        q, v = x[..., 0], x[..., 1]
        return jnp.stack([v, theta["mu"] * (1 - q**2) * v - q], axis=-1)


field = VanDerPol()
ts = I.uniform_grid(t_final=4.0, steps=100)
ode = I.discretise(field, ts, "rk4")
vdp_theta = field.init(jax.random.key(2))
vdp_x0 = jnp.array([[1.0, 0.0], [0.5, 0.5]])
solution = I.sweep(ode, vdp_theta, vdp_x0, L.SquaredError())
print("Van der Pol: dl/dmu =", float(solution.grad["mu"]))

problems = [
    harness.custom_problem("swish-12", net, x0, loss, theta),
    harness.custom_problem("van-der-pol-rk4", field, vdp_x0, L.SquaredError(), vdp_theta, ts=ts, scheme="rk4"),
]
methods = ["finite-diff", "diffrax-backsolve", "least-action", "least-action-checkpoint-log",
           "tension", "least-action-relax"]
comparison = harness.compare(problems=problems, methods=methods, repeats=1, budget=0.05)
print("project methods all within tolerance:", comparison.summary()["passed"])

# --- the figure: log10 relative error of each method, per problem -----------------------
fig, ax = plt.subplots(figsize=(8.5, 3.8), constrained_layout=True)
width = 0.38
for i, problem in enumerate(p.name for p in problems):
    errors = []
    for m in methods:
        cell = comparison.cell(m, problem)
        errors.append(cell.relative_error if cell.relative_error is not None else np.nan)
    errors = np.maximum(np.asarray(errors, dtype=float), 1e-17)    # exact zeros drawn at 1e-17
    ax.bar(np.arange(len(methods)) + (i - 0.5) * width, errors, width, label=problem)
    for j, m in enumerate(methods):
        print(f"{problem:>16} {m:>28}: {errors[j]:.1e} ({comparison.cell(m, problem).status})")
ax.set_yscale("log")
ax.set_xticks(np.arange(len(methods)), methods, rotation=20, ha="right")
ax.set_ylabel("relative L2 error vs jax.grad")
ax.axhline(1e-12, color="0.3", lw=0.8, ls="--")
ax.text(len(methods) - 0.5, 1.6e-12, "project tolerance 1e-12", ha="right", fontsize=8)
ax.legend()
ax.set_title("Your own systems in the comparison harness")
FIGURE.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(FIGURE, dpi=110)
print("wrote", FIGURE)
