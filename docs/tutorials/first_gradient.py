"""Tutorial 1: a first least-action gradient.

A 2-D neural ODE dx/dt = f(x) = W2 tanh(W1 x + b1) + b2, stepped by RK4 on a uniform grid, is a layered system.
`integrators.sweep` solves the stationarity conditions of its discrete action: the forward
field x_k, the conjugate field p_k = dl/dx_k and dl/dtheta. We check the gradient against
jax.grad through the composed forward map, check that p_k . v_k is constant along the flow,
and draw both fields over the streamlines of f.

Run from the top of the repository:  python docs/tutorials/first_gradient.py
It writes docs/tutorials/figures/first_gradient.png.
"""

from pathlib import Path

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)  # exactness is measured in float64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import integrators as I  # noqa: E402
import lagrangian as L  # noqa: E402
from experiments import harness, plots  # noqa: E402

FIGURE = Path(__file__).parent / "figures" / "first_gradient.png"

# --- the system: a neural ODE on a time grid is a stack of layer maps -------------------
field = L.MLPField(state_dim=2, hidden=16)                # f(x) = W2 tanh(W1 x + b1) + b2
ts = I.uniform_grid(t_final=3.0, steps=60)                    # h = 0.05
ode = I.discretise(field, ts, "rk4")                          # Phi_k = one RK4 step
theta = field.init(jax.random.key(0))                         # {"W1": (16, 2), "b1": (16,), ...}

angles = jnp.linspace(0.0, 2 * jnp.pi, 8, endpoint=False)
x0 = 1.5 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)   # (B, 2) = (8, 2)
target = x0 @ jnp.array([[0.0, 1.0], [-1.0, 0.0]])                # a quarter turn of each point
loss = L.SquaredError(target=target)                             # l = mean_b 0.5 |x_N - y|^2

# --- the least-action gradient: forward field, conjugate field, dl/dtheta ---------------
solution = I.sweep(ode, theta, x0, loss)
print("loss", float(solution.loss))
print("xs", solution.xs.shape, "ps", solution.ps.shape)        # (N + 1, B, 2) each

# --- the reference: jax.grad through the whole forward map ------------------------------
reference = jax.grad(lambda th: loss(I.output(ode, th, x0)))(theta)
error = harness.relative_error(solution.grad, reference)    # |g - g_ref|_2 / |g_ref|_2 over all leaves
print(f"relative L2 error vs jax.grad: {error:.1e}")
assert error < 1e-12, error   # float64: the discrete gradient is exact, not approximate

# --- an invariant of the stationary point: p_k . v_k is constant in k -------------------
v0 = jax.random.normal(jax.random.key(1), x0.shape)
vs = I.tangent_sweep(ode, theta, solution.xs, v0)             # v_{k+1} = (dPhi_k/dx_k) v_k
invariant = L.bilinear_invariant(solution.ps, vs)           # sum_b p_k . v_k, shape (N + 1,)
spread = float(jnp.max(invariant) - jnp.min(invariant)) / float(jnp.max(jnp.abs(invariant)))
print(f"relative spread of p_k . v_k over k: {spread:.1e}")
assert spread < 1e-12, spread

# --- phase portraits of x and p ---------------------------------------------------------
f_plane = jax.jit(jax.vmap(lambda x: field(0.0, x, theta)))
fig, (ax_x, ax_p) = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
plots.phase_portrait(ax_x, f_plane, np.asarray(solution.xs), title="forward field $x(t)$")
plots.phase_portrait(ax_p, lambda z: np.zeros_like(z), np.asarray(solution.ps),
                     labels=("$p_1$", "$p_2$"), title="conjugate field $p(t) = d\\ell/dx(t)$",
                     markers=None)
fig.suptitle(f"2-D neural ODE, RK4, {ode.depth} steps: gradient error vs jax.grad {float(error):.0e}")
FIGURE.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(FIGURE, dpi=110)
print("wrote", FIGURE)
