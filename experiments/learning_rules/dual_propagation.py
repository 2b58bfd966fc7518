"""Dual propagation (DP): dyadic neurons with two oppositely nudged compartments `s+, s-`.

Written for `lagrangian.MLP`, `x_{k+1} = sigma(W_k x_k + b_k)` (the readout affine or not),
following the update rules of Hoier, Staudt & Zach (ICML 2023) and of its adjoint reading,
DP-top, in Hoier & Zach (ICML 2024), as implemented in the authors' code for the 2024 paper
(github.com/Rasmuskh/dualprop_icml_2024, `src/models.py`: class `cnn_dualprop_RAOVR_ff` is DP,
`cnn_dualprop_Lagr_ff` is DP-top; equation numbers of the papers were not available here).
With `s_bar_k = alpha s+_k + (1 - alpha) s-_k`, `delta_k = s+_k - s-_k`, the pre-activation
`a_k = W_{k-1} s_bar_{k-1} + b_{k-1}` and the feedback `f_k = W_k^T delta_{k+1}`:

    DP      hidden   s+_k = sigma(a_k + alpha f_k),         s-_k = sigma(a_k - (1 - alpha) f_k)
            output   s+_N = a_N - alpha beta g,             s-_N = a_N + (1 - alpha) beta g,   g = grad l~(a_N)
    DP-top  hidden   s+_k = sigma(a_k + (1 - alpha) f_k),   s-_k = sigma(a_k - alpha f_k)
            output   s+_N = a_N - (1 - alpha) beta g,       s-_N = a_N + alpha beta g,         g = grad l~(a^0_N)

where `l~(a) = l(sigma_N(a))` is the loss of the output pre-activation (`sigma_N` the identity for
an affine readout) and `a^0_N` its forward-pass value (DP-top differentiates the loss at the
prediction; DP at the current state). The compartments start at the forward pass and are
updated layer by layer in the "fwbwK" order of the authors' code (`passes = K`: down from the
output, then `K - 1` up-and-down sweeps). The weight estimate is the contrastive Hebbian rule

    dl/dW_k ~ -delta_{k+1} s_bar_k^T / beta,   dl/db_k ~ -delta_{k+1} / beta   (batch-averaged).

Dyads against the doubled copies of docs/design.md 2.2 (`dyads_and_copies`): the copies
`x1 = x+ + x-/2`, `x2 = x+ - x-/2` have `x+` on the forward pass and `x- = beta p` at every
`beta` (the doubled action is linear in `x-`). The dyads have `s_bar = x+ + O(beta^2)` at
`alpha = 1/2` (DP) or for every `alpha` (DP-top), but `O(beta)` for DP at `alpha != 1/2`; and
`s- - s+ = beta D_k p_k + O(beta^2)` with `D_k = diag sigma'(a_k)`: the dyads' difference is
the conjugate field of the pre-activations, the copies' that of the states; they coincide on an
affine output layer and to first order in `beta` up to `D_k`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

import integrators
import lagrangian

from . import inference

VARIANTS = ("dp", "dp-top")


class Dyads(NamedTuple):
    """The compartments after inference: `s_plus[k]`, `s_minus[k]`, `k = 0..N`, each `(B, n_k)`
    (the output ones are pre-activations, as in the papers)."""

    s_plus: tuple[Array, ...]
    s_minus: tuple[Array, ...]


def check_mlp(system) -> None:
    """A `ValueError` unless `system` is a `lagrangian.MLP` (DP needs its weights and activation)."""
    if not isinstance(system, lagrangian.MLP):
        raise ValueError(f"dual propagation is written for lagrangian.MLP (weights, biases, an elementwise "
                         f"activation); got {type(system).__name__}")


def schedule(depth: int, passes: int) -> list[int]:
    """The "fwbwK" layer order of the authors' code: `[N..2] + ([1..N-1] + [N..1]) * (K - 1) + [1]`.

    Example:
        >>> schedule(3, 1)
        [3, 2, 1]
    """
    if passes < 1:
        raise ValueError(f"dual propagation needs passes >= 1; got {passes}")
    down = list(range(depth, 0, -1))
    up_down = list(range(1, depth)) + down
    return down[:-1] + up_down * (passes - 1) + [1]


def _activation(system, k):
    if system.readout and k == system.depth - 1:
        return lambda z: z
    return lagrangian.activation(system.activation)


def infer(system: lagrangian.MLP, theta: PyTree, x0: Array, loss: lagrangian.Loss, beta: float,
          alpha: float = 0.5, passes: int = 1, variant: str = "dp") -> Dyads:
    """The dyads after `passes` inference sweeps of DP or DP-top (module docstring), batch `x0` `(B, n_0)`."""
    check_mlp(system)
    if variant not in VARIANTS:
        raise ValueError(f"unknown dual-propagation variant {variant!r}; choose one of {VARIANTS}")
    n = system.depth
    lfn, targets = inference.sample_losses(loss, x0.shape[0])
    out_act = lagrangian.activation("identity") if system.readout else lagrangian.activation(system.activation)

    def output_loss_gradient(a):
        def one(a_, t):
            value, pull = jax.vjp(lambda z: lfn(out_act(z), t), a_)
            return pull(jnp.ones_like(value))[0]

        return jax.vmap(one, in_axes=(0, None if targets is None else 0))(a, targets)

    def pre(k, s):  # a_{k+1} = W_k s + b_k
        return s @ theta[k]["W"].T + theta[k]["b"]

    xs = integrators.forward(system, theta, x0)
    a_out0 = pre(n - 1, xs[n - 1])
    plus = [*xs[:-1], a_out0]
    minus = list(plus)
    up = alpha if variant == "dp" else 1.0 - alpha      # weight of the feedback in s+
    down = 1.0 - alpha if variant == "dp" else alpha    # and in s-
    for i in schedule(n, passes):
        s_bar = alpha * plus[i - 1] + (1 - alpha) * minus[i - 1]
        a = pre(i - 1, s_bar)
        if i == n:
            g = beta * output_loss_gradient(a if variant == "dp" else a_out0)
            plus[n], minus[n] = a - up * g, a + down * g
        else:
            fb = (plus[i + 1] - minus[i + 1]) @ theta[i]["W"]
            act = _activation(system, i - 1)
            plus[i], minus[i] = act(a + up * fb), act(a - down * fb)
    return Dyads(tuple(plus), tuple(minus))


def dual_propagation(system: lagrangian.MLP, theta: PyTree, x0: Array, loss: lagrangian.Loss, beta: float,
                     alpha: float = 0.5, passes: int = 1, variant: str = "dp") -> PyTree:
    """The DP / DP-top estimate of `dl/dtheta`: `-delta_{k+1} s_bar_k^T / beta`, `-delta_{k+1} / beta`
    (batch-averaged over `x0` `(B, n_0)`; the structure of `theta`).

    Example:
        >>> import jax, jax.numpy as jnp, lagrangian
        >>> net = lagrangian.MLP((2, 3, 1)); theta = net.init(jax.random.key(0))
        >>> dual_propagation(net, theta, jnp.ones((4, 2)), lagrangian.SquaredError(), 1e-3)[1]["W"].shape
        (1, 3)
    """
    dyads = infer(system, theta, x0, loss, beta, alpha, passes, variant)
    batch = x0.shape[0]
    grads = []
    for k in range(system.depth):
        s_bar = alpha * dyads.s_plus[k] + (1 - alpha) * dyads.s_minus[k]
        delta = dyads.s_plus[k + 1] - dyads.s_minus[k + 1]
        grads.append({"W": -delta.T @ s_bar / (beta * batch), "b": -jnp.sum(delta, axis=0) / (beta * batch)})
    return tuple(grads)


def dyads_and_copies(system: lagrangian.MLP, theta: PyTree, x0: Array, loss: lagrangian.Loss, beta: float,
                     alpha: float = 0.5, passes: int = 20, variant: str = "dp") -> dict:
    """Largest deviations, over layers `1..N-1` (hidden) and the output layer, between the dyads and
    the doubled copies of `integrators.tension` at the same `beta`:

    - `mean_vs_forward`: `|s_bar_k - x+_k|` (the copies' mean is the forward pass at every `beta`);
    - `difference_vs_tension`: `|(s-_k - s+_k) - D_k x-_k|` with `D_k = sigma'(a_k)` on hidden
      layers and the identity at the output (pre-activation coordinates), relative to `|x-|`;
    - `tension_vs_copies`: `|x1 - x2 - x-|`, zero by construction (the doubled copies).
    """
    dyads = infer(system, theta, x0, loss, beta, alpha, passes, variant)
    xs_plus, x_minus, _ = integrators.tension(system, theta, x0, loss, beta)
    batch = x0.shape[0]
    n = system.depth
    hidden_mean, hidden_diff, out_diff = 0.0, 0.0, 0.0
    scale = max(float(jnp.max(jnp.abs(x_minus[k] * batch))) for k in range(1, n + 1))
    act = lagrangian.activation(system.activation)
    for k in range(1, n + 1):
        s_bar = alpha * dyads.s_plus[k] + (1 - alpha) * dyads.s_minus[k]
        diff = dyads.s_minus[k] - dyads.s_plus[k]
        a = xs_plus[k - 1] @ theta[k - 1]["W"].T + theta[k - 1]["b"]
        tension_k = x_minus[k] * batch  # integrators.tension's x- is batch-averaged
        if k < n or not system.readout:
            slope = jax.vmap(jax.vmap(jax.grad(act)))(a)
        else:
            slope = jnp.ones_like(a)
        deviation = float(jnp.max(jnp.abs(diff - slope * tension_k))) / scale
        if k < n:
            hidden_mean = max(hidden_mean, float(jnp.max(jnp.abs(s_bar - xs_plus[k]))))
            hidden_diff = max(hidden_diff, deviation)
        else:
            out_diff = deviation
    return {"hidden_mean_vs_forward": hidden_mean, "hidden_difference_vs_tension": hidden_diff,
            "output_difference_vs_tension": out_diff}


__all__ = ["Dyads", "VARIANTS", "check_mlp", "dual_propagation", "dyads_and_copies", "infer", "schedule"]
