"""Optax training loops driven by any gradient method.

A trainer is a function `params -> (loss, dl/dparams)`: `jax.value_and_grad` of
a loss written around `integrators.solve` (the least-action gradient),
around the plain scan (`jax.grad` through the forward pass, the reference) or
around a diffrax solve (the peer). `fit` runs the same optax update on it,

    g_t = dl/dparams(params_t),   (u_t, s_{t+1}) = optimizer.update(g_t, s_t, params_t),
    params_{t+1} = params_t + u_t,

so two trainers started from the same `params_0` give loss curves that differ
only by the difference of their gradients.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
import optax
from jaxtyping import PyTree, Scalar

ValueAndGrad = Callable[[PyTree], tuple[Scalar, PyTree]]


class Curve(NamedTuple):
    """A training run: `losses[t] = l(params_t)` for `t = 0..steps-1`, the final
    parameters, and the wall time of each update step (step 0 includes compilation)."""

    losses: np.ndarray
    params: PyTree
    step_seconds: np.ndarray

    @property
    def seconds_per_step(self) -> float:
        """Median wall time of the warm steps (all but the first, which compiles)."""
        warm = self.step_seconds[1:] if self.step_seconds.shape[0] > 1 else self.step_seconds
        return float(np.median(warm))


def fit(
    value_and_grad: ValueAndGrad,
    params: PyTree,
    optimizer: optax.GradientTransformation,
    steps: int,
    on_step: Callable[[int, float], None] | None = None,
) -> Curve:
    """`steps` optax updates of `params` with the gradients of `value_and_grad`.

    `on_step(t, loss_t)` is called after every step (progress reporting).
    A non-finite loss stops training with a `FloatingPointError` naming the step.
    """
    if int(steps) < 1:
        raise ValueError(f"the number of training steps must be >= 1; got {steps}")

    @eqx.filter_jit
    def update(params, state):
        loss, grads = value_and_grad(params)
        updates, state = optimizer.update(grads, state, params)
        return eqx.apply_updates(params, updates), state, loss

    state = optimizer.init(eqx.filter(params, eqx.is_inexact_array))
    losses, seconds = [], []
    for t in range(int(steps)):
        start = time.perf_counter()
        params, state, loss = update(params, state)
        loss = float(jax.block_until_ready(loss))
        seconds.append(time.perf_counter() - start)
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss became non-finite at step {t}: {loss}")
        losses.append(loss)
        if on_step is not None:
            on_step(t, loss)
    return Curve(np.asarray(losses), params, np.asarray(seconds))


def max_relative_difference(curve: np.ndarray, reference: np.ndarray) -> float:
    """`max_t |l_t - l_t^ref| / |l_t^ref|` over two loss curves of the same length."""
    curve, reference = np.asarray(curve), np.asarray(reference)
    if curve.shape != reference.shape:
        raise ValueError(f"loss curves differ in length: {curve.shape} vs {reference.shape}")
    return float(np.max(np.abs(curve - reference) / np.abs(reference)))


__all__ = ["Curve", "ValueAndGrad", "fit", "max_relative_difference"]
