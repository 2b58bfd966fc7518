"""Reversible leapfrog for a separable field: the backward sweep rebuilds the forward pass.

Separable field on `x = (s, r)` (`integrators` calls the halves `(q, v)`):

    ds/dt = G(r) = tanh(A r + a),   dr/dt = F(s) = tanh(B s + b)      (`SeparableTanh`)

The splitting step of the course notes,

    r_{k+1} = r_k + tau F(s_k),   s_{k+1} = s_k + tau G(r_{k+1}),

is the project's ``symplectic-euler`` splitting (kick `r`, then drift `s`).
Each sub-step is a shear, so the step is inverted exactly, in reverse order:

    s_k = s_{k+1} - tau G(r_{k+1}),   r_k = r_{k+1} - tau F(s_k).

`integrators.Splitting` has that inverse (for any
splitting tableau: the sub-steps undone last to first, with the times each
drift carried), which makes `integrators.Reversible()` memory available to it:
the conjugate sweep reconstructs `x_k` from `x_{k+1}` instead of storing it.
In floating point the reconstruction is exact up to rounding; its error is
measured against the stored forward pass at every step. For contrast, undoing
a forward-Euler step by the explicit backward step `x_k ~ x_{k+1} - tau f(x_{k+1})`
(what a naive backward integration does) leaves an O(tau) error per step.
"""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from ..harness.metrics import relative_error


class SeparableTanh(lagrangian.VectorField):
    """`x = (s, r)`: `ds/dt = tanh(A r + a)`, `dr/dt = tanh(B s + b)`; `theta = {"A", "a", "B", "b"}`."""

    separable: ClassVar[bool] = True
    state_dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.state_dim < 2 or self.state_dim % 2:
            raise ValueError(f"SeparableTanh needs an even state_dim >= 2 (x = (s, r)); got {self.state_dim}")

    def init(self, key, dtype=jnp.float64):
        n = self.state_dim // 2
        k = jax.random.split(key, 4)
        w = self.scale / np.sqrt(n)
        return {"A": w * jax.random.normal(k[0], (n, n), dtype), "a": 0.1 * jax.random.normal(k[1], (n,), dtype),
                "B": w * jax.random.normal(k[2], (n, n), dtype), "b": 0.1 * jax.random.normal(k[3], (n,), dtype)}

    def __call__(self, t, x, theta):
        n = self.state_dim // 2
        s, r = x[:n], x[n:]
        return jnp.concatenate([jnp.tanh(theta["A"] @ r + theta["a"]), jnp.tanh(theta["B"] @ s + theta["b"])])


def reversible_system(field, t_final: float, steps: int, method: str = "symplectic-euler") -> integrators.Splitting:
    """`field` on a uniform grid stepped by the splitting `method`, with its inverse."""
    tableau = integrators.tableau(method)
    if not isinstance(tableau, integrators.SplittingTableau):
        raise ValueError(f"{method!r} is not a splitting method; choose one of {sorted(integrators.SPLITTINGS)}")
    return integrators.Splitting(field=field, ts=integrators.uniform_grid(t_final, steps), tableau=tableau)


def reconstruct(system, theta, x_final):
    """`x_N, x_{N-1}, ..., x_0` rebuilt by `system.inverse`, returned in forward order `(N + 1, n)`."""

    def body(x_next, k):
        x = system.inverse(k, x_next, theta)
        return x, x

    _, back = jax.lax.scan(body, x_final, jnp.arange(system.depth - 1, -1, -1))
    return jnp.concatenate([back[::-1], x_final[None]])


class Reconstruction(NamedTuple):
    """One run. `max_error`, `error_at_x0`: `max_k |x_k^rec - x_k|_inf / max |x|` over the stored
    forward pass (and at `k = 0`); `sweep_reconstruction_error`: what the `Reversible()` sweep
    reports (`|x_0^rec - x_0|_inf / |x_0|_inf`); `gradient_relative_error`: the sweep's gradient
    against `jax.grad` of the forward map (L2, leaves concatenated); `euler_backstep_error`:
    `|x_0^back - x_0|_inf / max |x|` for forward Euler undone by explicit back-steps."""

    steps: int
    max_error: float
    error_at_x0: float
    sweep_reconstruction_error: float
    gradient_relative_error: float
    euler_backstep_error: float


def measure(steps: int, dim: int = 4, t_final: float = 1.0, seed: int = 0, method: str = "symplectic-euler"):
    """`(numbers, per-step errors)` for `steps` steps: the inverse sweep against the stored forward pass,
    the `Reversible()` sweep's gradient against `jax.grad` of the forward map, and the naive Euler back-step."""
    field = SeparableTanh(state_dim=dim, scale=1.5)
    system = reversible_system(field, t_final, steps, method)
    theta = system.init(jax.random.key(seed))
    x0 = jax.random.normal(jax.random.key(seed + 1), (dim,))
    loss = lagrangian.SquaredError()
    xs = integrators.forward(system, theta, x0)
    rebuilt = jax.jit(reconstruct)(system, theta, xs[-1])
    scale = float(jnp.max(jnp.abs(xs)))
    per_step = np.asarray(jnp.max(jnp.abs(rebuilt - xs), axis=1)) / scale
    sol = integrators.sweep(system, theta, x0, loss, memory=integrators.Reversible())
    reference = jax.grad(lambda th: loss(integrators.forward(system, th, x0)[-1]))(theta)
    grad_error = relative_error(sol.grad, reference)
    euler = integrators.discretise(field, system.ts, "euler")
    xe = integrators.forward(euler, theta, x0)
    tau = t_final / steps

    def back(x_next, k):
        x = x_next - tau * field(system.ts[k], x_next, theta)
        return x, x

    x0_back, _ = jax.lax.scan(back, xe[-1], jnp.arange(steps - 1, -1, -1))
    return (
        Reconstruction(
            steps=steps, max_error=float(per_step.max()), error_at_x0=float(per_step[0]),
            sweep_reconstruction_error=float(sol.reconstruction_error), gradient_relative_error=grad_error,
            euler_backstep_error=float(jnp.max(jnp.abs(x0_back - x0)) / jnp.max(jnp.abs(xe))),
        ),
        per_step,
    )
