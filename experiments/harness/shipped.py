"""The problems the harness ships, registered in `PROBLEMS` when `experiments.harness` is
imported, and `neural_ode_problem`, the neural-ODE problem of any size that the
benchmark-gradients, memory and resnet-limit experiments measure methods on.

Networks: MLPs, a ResNet, a recurrent network (batch 16). ODEs (batch 4), each
stepped by RK4 on a uniform grid (the `least-action-{scheme}` methods re-discretise
it by every other scheme): neural ODEs in 2, 16 and 64 dimensions, a linear ODE
and the harmonic oscillator (closed-form continuous references), the pendulum, and
a chain of anharmonic oscillators stepped by leapfrog.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .problems import (
    ADJOINT_ODE_SOURCE,
    Builder,
    Problem,
    adjoint_ode_reference,
    custom_problem,
    harmonic_closed_form,
    linear_closed_form,
    register_problem,
)

BATCH = 4
"""Batch size of the ODE problems (the networks use 16)."""


def _draw(key, system: lagrangian.System, dtype, shapes: tuple[tuple[int, ...], ...]):
    """`(theta, normals)`: `theta = system.init(key)` and one standard-normal array per shape.

    The data arrays (inputs, targets, input sequences) come from numpy's PCG64
    seeded by the key's bits: one jax compilation per random draw would cost
    more than the draws themselves.
    """
    k_theta, k_data = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_data)))
    normals = tuple(jnp.asarray(rng.standard_normal(shape), dtype) for shape in shapes)
    return system.init(k_theta, dtype), normals


def _mlp(key, dtype) -> Problem:
    system = lagrangian.MLP((8, 32, 32, 4), activation="tanh", readout=True)
    theta, (x0,) = _draw(key, system, dtype, ((16, 8),))
    labels = np.random.default_rng(np.asarray(jax.random.key_data(key))).integers(0, 4, 16)
    return Problem(
        name="mlp", description="MLP 8-32-32-4 (tanh, affine readout), cross-entropy, batch 16",
        system=system, theta=theta, x0=x0, loss=lagrangian.CrossEntropy(labels=jnp.asarray(labels)),
    )


def _mlp_deep(key, dtype) -> Problem:
    system = lagrangian.MLP((5, 8, 8, 8, 3), activation="tanh", scale=1.5)
    theta, (x0, target) = _draw(key, system, dtype, ((16, 5), (16, 3)))
    return Problem(
        name="mlp-deep", description="MLP 5-8-8-8-3 (tanh on every layer, weight scale 1.5), squared error, batch 16",
        system=system, theta=theta, x0=x0, loss=lagrangian.SquaredError(target=target),
    )


def _resnet(key, dtype) -> Problem:
    system = lagrangian.ResNet(dim=16, depth=20, h=0.1)
    theta, (x0, target) = _draw(key, system, dtype, ((16, 16), (16, 16)))
    return Problem(
        name="resnet", description="ResNet x + 0.1 tanh(W_k x + b_k), d = 16, 20 blocks, batch 16",
        system=system, theta=theta, x0=x0, loss=lagrangian.SquaredError(target=target),
    )


def _recurrent(key, dtype) -> Problem:
    shape_only = lagrangian.Recurrent(inputs=jnp.zeros((20, 4), dtype), dim=16)
    theta, (inputs, x0, target) = _draw(key, shape_only, dtype, ((20, 4), (16, 16), (16, 16)))
    return Problem(
        name="recurrent", description="recurrent tanh(W x + U u_k + b), d = 16, 20 steps, batch 16",
        system=lagrangian.Recurrent(inputs=inputs, dim=16), theta=theta, x0=x0,
        loss=lagrangian.SquaredError(target=target),
    )


def _ode(name, description, field, t_final, steps, scheme, key, dtype, batch, with_target=True,
         continuous=adjoint_ode_reference, source=ADJOINT_ODE_SOURCE) -> Problem:
    n = field.state_dim
    theta, normals = _draw(key, field, dtype, ((batch, n), (batch, n)) if with_target else ((batch, n),))
    ts = integrators.uniform_grid(t_final, steps)
    return Problem(
        name=name, description=description, system=integrators.discretise(field, ts, scheme),
        theta=theta, x0=normals[0], loss=lagrangian.SquaredError(target=normals[1] if with_target else None),
        field=field, ts=ts, scheme=scheme, family=name.removesuffix(f"-{scheme}"),
        continuous=continuous, continuous_source=source,
    )


def _neural_ode(dim: int, scheme: str) -> Builder:
    def build(key, dtype):
        return _ode(f"node-d{dim}-{scheme}", f"neural ODE tanh(W x + b), d = {dim}, T = 1, 10 steps; {scheme}",
                    lagrangian.NeuralODE(state_dim=dim), 1.0, 10, scheme, key, dtype, BATCH)

    return build


def _linear(scheme: str) -> Builder:
    def build(key, dtype):
        return _ode(f"linear-{scheme}", f"linear ODE dx/dt = A x, d = 4, T = 1, 10 steps, l = 0.5|x(T)|^2; {scheme}",
                    lagrangian.Linear(state_dim=4), 1.0, 10, scheme, key, dtype, BATCH, with_target=False,
                    continuous=linear_closed_form, source="closed form: Van Loan block expm (scipy)")

    return build


def _harmonic(key, dtype) -> Problem:
    return _ode("harmonic-rk4", "harmonic oscillator, omega = 1.3, T = 2, 20 steps; rk4",
                lagrangian.HarmonicOscillator(omega=1.3), 2.0, 20, "rk4", key, dtype, BATCH,
                continuous=harmonic_closed_form, source="closed form: Van Loan block expm of A(omega) (scipy)")


def _pendulum(key, dtype) -> Problem:
    return _ode("pendulum-rk4", "pendulum, omega = 1.2, T = 3, 30 steps; rk4",
                lagrangian.Pendulum(omega=1.2), 3.0, 30, "rk4", key, dtype, BATCH)


CHAIN_OSCILLATORS, CHAIN_STEP, CHAIN_STEPS = 6, 0.05, 200
"""The oscillator-chain problem: 6 oscillators, leapfrog with h = 0.05 for 200 steps (T = 10)."""


def _oscillator_chain(key, dtype) -> Problem:
    """Chain of anharmonic oscillators (`lagrangian.OscillatorChain`), leapfrog; initial states of
    amplitude 0.5 (standard normal * 0.5), standard-normal targets for the full state (phi, pi)."""
    field = lagrangian.OscillatorChain(oscillators=CHAIN_OSCILLATORS)
    n = field.state_dim
    theta, (x0, target) = _draw(key, field, dtype, ((BATCH, n), (BATCH, n)))
    ts = integrators.uniform_grid(CHAIN_STEP * CHAIN_STEPS, CHAIN_STEPS)
    return Problem(
        name="oscillator-chain",
        description=f"chain of {CHAIN_OSCILLATORS} anharmonic oscillators H = |pi|^2/2 + V(phi; k, c), "
                    f"h = {CHAIN_STEP:g}, {CHAIN_STEPS} steps; leapfrog",
        system=integrators.discretise(field, ts, "leapfrog"), theta=theta, x0=0.5 * x0,
        loss=lagrangian.SquaredError(target=target), field=field, ts=ts, scheme="leapfrog",
        family="oscillator-chain", continuous=adjoint_ode_reference, continuous_source=ADJOINT_ODE_SOURCE,
    )


def _register_defaults() -> None:
    register_problem("mlp", "MLP 8-32-32-4, tanh, cross-entropy", _mlp)
    register_problem("mlp-deep", "MLP 5-8-8-8-3, tanh, weight scale 1.5, squared error (energy-based rules)",
                     _mlp_deep)
    register_problem("resnet", "ResNet, d = 16, 20 blocks", _resnet)
    register_problem("recurrent", "recurrent network with shared weights, d = 16, 20 steps", _recurrent)
    # Each ODE is registered once, stepped by RK4; the `least-action-{scheme}` methods
    # re-discretise it by every other scheme (Euler = the ResNet projection included).
    for dim in (2, 16, 64):
        register_problem(f"node-d{dim}-rk4", f"neural ODE, d = {dim}, rk4", _neural_ode(dim, "rk4"),
                         family=f"node-d{dim}", is_ode=True)
    register_problem("linear-rk4", "linear ODE dx/dt = A x (closed form), rk4", _linear("rk4"), family="linear",
                     is_ode=True)
    register_problem("harmonic-rk4", "harmonic oscillator (closed form), rk4", _harmonic, family="harmonic",
                     is_ode=True)
    register_problem("pendulum-rk4", "pendulum, rk4", _pendulum, family="pendulum", is_ode=True)
    register_problem("oscillator-chain", "chain of 6 anharmonic oscillators (time-reversible), leapfrog",
                     _oscillator_chain, family="oscillator-chain", is_ode=True)


def neural_ode_problem(dim: int, steps: int, *, batch: int | None = 8, t_final: float = 1.0, scale: float = 1.0,
                       seed: int = 0, scheme: str = "heun", targets: bool = True) -> Problem:
    """The neural ODE `dx/dt = tanh(W x + b)` in `dim` dimensions (`lagrangian.NeuralODE`,
    weight scale `scale`) on `steps` uniform steps of `[0, t_final]`, stepped by `scheme`;
    `batch` standard-normal initial states (`batch=None`: one state of shape `(dim,)`, the
    core's unbatched path) and, with `targets`, standard-normal targets `y`:
    `l = (1/B) sum_b 0.5 |x_N^b - y^b|^2` (without: `y = 0`, `l = (1/B) sum_b 0.5 |x_N^b|^2`),
    float64. Weights, states and targets depend on `seed`, `dim` and `batch` only, not on
    `steps` or `scheme`, so a convergence study in `steps` differentiates one function.
    Named ``node-d{dim}-{scheme}``; its continuous reference is the adjoint ODE (scipy).

    Example:
        >>> from experiments.harness.shipped import neural_ode_problem
        >>> problem = neural_ode_problem(4, 100)
        >>> problem.name, problem.steps, problem.x0.shape
        ('node-d4-heun', 100, (8, 4))
        >>> neural_ode_problem(4, 100, batch=None, scheme="rk4", targets=False).x0.shape
        (4,)
    """
    k_theta, k_x0, k_target = jax.random.split(jax.random.fold_in(jax.random.key(seed), dim), 3)
    field = lagrangian.NeuralODE(state_dim=dim, scale=scale)
    shape = (dim,) if batch is None else (batch, dim)
    x0 = jax.random.normal(k_x0, shape, jnp.float64)
    loss = lagrangian.SquaredError(target=jax.random.normal(k_target, shape, jnp.float64) if targets else None)
    states = "one state" if batch is None else f"batch {batch}"
    problem = custom_problem(f"node-d{dim}-{scheme}", field, x0, loss, field.init(k_theta),
                             ts=integrators.uniform_grid(t_final, steps), scheme=scheme,
                             description=f"neural ODE tanh(W x + b), d = {dim}, {states}, T = {t_final:g}, "
                                         f"{steps} steps; {scheme}")
    # custom_problem promotes one state to a batch of one; keep it unbatched
    return dataclasses.replace(problem, x0=x0) if batch is None else problem


_register_defaults()
