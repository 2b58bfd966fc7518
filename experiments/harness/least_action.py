"""The least-action methods under test: the sweep with each memory strategy, the sweep on
every other scheme, the doubled-variable tension, and the local and parallel-in-time
solvers of the discrete action.

They only call `integrators.sweep` / `integrators.tension` / `integrators.relax` /
`integrators.saddle_flow` / `integrators.newton_in_time`, which differentiate locally
(one layer map or one evaluation of `f` at a time). Whether a memory strategy
applies to a problem is the strategy's own `check`, what it costs its own `cost`
(`methods.sweep_evaluations`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

import integrators
import lagrangian

from .methods import Method, Prepared, sweep_evaluations, unit

class LeastAction(Method):
    """The least-action sweep (`integrators.sweep`) on the problem's own layer maps,
    with a memory strategy: the stationary point of the discrete action,
    `p_k = (dPhi_k/dx_k)^T p_{k+1}`, `dl/dtheta_k = (dPhi_k/dtheta_k)^T p_{k+1}`."""

    kind = "project"

    def __init__(self, name: str, memory: integrators.Memory, description: str):
        self.name, self.memory, self.description = name, memory, description

    def applies(self, problem):
        """The strategy's own verdict (`Memory.check`) on the problem's layer maps."""
        return _refusal(self.memory_for(problem.system), problem.system)

    def memory_for(self, system) -> integrators.Memory:
        """The memory strategy of the sweep on `system`."""
        return self.memory

    def prepare(self, problem):
        memory, system = self.memory_for(problem.system), problem.system

        def fn(theta, x0):
            solution = integrators.sweep(system, theta, x0, problem.loss, memory=memory, check=False)
            aux = {}
            if solution.reconstruction_error is not None:
                aux["reconstruction_error"] = solution.reconstruction_error
            return solution.grad, aux

        return Prepared(fn, (problem.theta, problem.x0), sweep_evaluations(problem, memory))


def _refusal(memory: integrators.Memory, system) -> str | None:
    """Why `memory` cannot sweep `system` (its `check`'s `ValueError`), or `None`."""
    try:
        memory.check(system)
    except ValueError as error:
        return str(error)
    return None


class Tension(Method):
    """The doubled-variable tension (docs/design.md 2.2): the two copies are nudged apart by
    `x-_N = beta grad l(x+_N)`, and `dl/dtheta = (dS_beta/dtheta) / beta` exactly.

    `integrators.tension` is the sweep with the loss scaled by `beta`, so this method is an
    alias of the sweep, not an independent computation; `tension-copies` (`TensionCopies`)
    reaches the same stationary point by relaxing two copies, with no call of the sweep."""

    kind = "project"

    def __init__(self, beta: float = 1e-3):
        self.beta = float(beta)
        self.name = "tension"
        self.description = f"tension x-/beta, beta = {self.beta:g} (alias of the sweep; independent: tension-copies)"

    def prepare(self, problem):
        beta = self.beta

        def fn(theta, x0):
            _, _, grad = integrators.tension(problem.system, theta, x0, problem.loss, beta)
            return jax.tree.map(lambda g: g / beta, grad), {}

        return Prepared(fn, (problem.theta, problem.x0), sweep_evaluations(problem, integrators.StoreAll()))


class LeastActionScheme(LeastAction):
    """The least-action sweep on the problem's vector field and grid, re-discretised by
    another scheme (`build(field, ts) -> LayerMaps`): one method per tableau, splitting
    and reversible scheme. The reference is computed on the same re-discretisation.
    A scheme that `Reversible()` memory can sweep (its `check` passes: the scheme has an
    algebraic inverse) is swept with it (O(1) in N, reconstruction error reported), any
    other with `StoreAll()`."""

    def __init__(self, name: str, scheme: str, build: Callable, description: str):
        super().__init__(name, integrators.StoreAll(), description)
        self.scheme, self.build = scheme, build

    @classmethod
    def named(cls, scheme: str) -> "LeastActionScheme":
        """The method `least-action-{scheme}` for any name `integrators.discretise` accepts."""
        try:
            tab = integrators.tableau(scheme)
            what = f"{scheme} (order {tab.order})"
        except ValueError:
            what = scheme
        return cls(f"least-action-{scheme}", scheme, lambda f, ts: integrators.discretise(f, ts, scheme),
                   f"least-action sweep, field re-discretised by {what}")

    def memory_for(self, system) -> integrators.Memory:
        reversible = integrators.Reversible()
        return integrators.StoreAll() if _refusal(reversible, system) else reversible

    def applies(self, problem):
        if not problem.is_ode:
            return "not an ODE problem (no vector field to re-discretise)"
        try:
            target = self.target(problem)
        except (ValueError, TypeError) as error:
            return str(error)
        return _refusal(self.memory_for(target.system), target.system)

    def target(self, problem):
        return problem.rediscretise(self.scheme, self.build)


class Relaxation(Method):
    """The local solver of docs/design.md 2.6 (`integrators.relax`): every `(x_k, p_k)` moves at
    once, reading only its neighbours, along the derivative of the action with respect to
    its conjugate. At `eta = 1` (Jacobi) the fixed point is reached after `2N + 1` steps;
    this method runs `2N + 2`, strictly (`on_unconverged="raise"`: an unconverged relaxation is
    an error of its cell, never a timed wrong answer), and records its final residual."""

    name = "least-action-relax"
    kind = "project"
    description = "local relaxation of (x_k, p_k), Jacobi eta = 1, 2N + 2 iterations"

    def applies(self, problem):
        return None

    def prepare(self, problem):
        iterations = 2 * problem.steps + 2

        def fn(theta, x0):
            result = integrators.relax(problem.system, theta, x0, problem.loss, iterations=iterations, eta=1.0,
                                       on_unconverged="raise")
            return result.grad, {"residual": result.residual, "converged": result.converged}

        n = iterations * problem.steps * problem.stages
        return Prepared(fn, (problem.theta, problem.x0), {"unit": unit(problem), "f": n, "vjp": n, "jvp": 0})


class TensionCopies(Method):
    """The tension read from two physical copies (`integrators.relax_copies`, docs/substrate.md):
    `x1` ascends and `x2` descends the doubled action `S_beta`, each by local forces, with no
    call of the sweep; `dl/dtheta = (dS_beta/dtheta) / beta` read from the copies after `2N + 2`
    Jacobi steps (`eta = 1`). The independent check of `tension` (which scales the sweep's loss);
    `beta = 1` keeps the difference of the copies above its rounding floor `eps |x+| / (beta |p|)`."""

    name = "tension-copies"
    kind = "project"

    def __init__(self, beta: float = 1.0):
        self.beta = float(beta)
        self.description = f"two copies relaxing under the doubled action, beta = {self.beta:g}, 2N + 2 Jacobi steps"

    def applies(self, problem):
        return None

    def prepare(self, problem):
        iterations, beta = 2 * problem.steps + 2, self.beta

        def fn(theta, x0):
            return integrators.relax_copies(problem.system, theta, x0, problem.loss, beta, iterations=iterations,
                                            eta=1.0).grad, {}

        n = iterations * problem.steps * problem.stages
        return Prepared(fn, (problem.theta, problem.x0), {"unit": unit(problem), "f": n, "vjp": n, "jvp": 0})


class SaddleFlow(Method):
    """The augmented-Lagrangian saddle flow of docs/design.md 2.6 (`integrators.saddle_flow`):
    descent in `x`, ascent in `p` on `S_d + (rho/2) sum |c_k|^2`, every layer updated at
    once from its neighbours, for a fixed budget of iterations. Its slowest mode diffuses
    along the depth (pseudo-time ~ N^2), so at a fixed budget it is approximate: its error
    is reported, not judged (`leastaction run local-dynamics` shows it reaching 1e-10), with its
    final residual and whether it met the tolerance (`on_unconverged="ignore"`: no warning)."""

    name = "least-action-saddle"
    kind = "project"
    tolerance = {"float64": None, "float32": None}

    def __init__(self, iterations: int = 2000, eta: float = 0.4, rho: float = 0.5):
        self.iterations, self.eta, self.rho = iterations, eta, rho
        self.description = f"augmented-Lagrangian saddle flow, {iterations} steps of eta = {eta:g}, rho = {rho:g}"

    def applies(self, problem):
        if problem.system.layout == "unrolled":
            return f"layers change shape ({type(problem.system).__name__}); the flow vmaps over one shape"
        return None

    def prepare(self, problem):
        def fn(theta, x0):
            result = integrators.saddle_flow(problem.system, theta, x0, problem.loss, iterations=self.iterations,
                                             eta=self.eta, rho=self.rho, on_unconverged="ignore")
            return result.grad, {"final_constraint_residual": result.forward_residual[-1],
                                 "residual": result.residual, "converged": result.converged}

        n = self.iterations * problem.steps * problem.stages
        return Prepared(fn, (problem.theta, problem.x0), {"unit": unit(problem), "f": n, "vjp": n, "jvp": 0})


def _per_sample(loss: lagrangian.Loss):
    """`(make, targets)`: the loss of one sample is `make(target_b)`; `targets` is `None`
    when all samples share one target. `None` for a loss this does not know."""
    if isinstance(loss, lagrangian.SquaredError):
        if loss.target is None or jnp.ndim(loss.target) == 1:
            return (lambda _: loss), None
        return (lambda y: lagrangian.SquaredError(target=y)), loss.target
    if isinstance(loss, lagrangian.CrossEntropy):
        return (lambda y: lagrangian.CrossEntropy(labels=y)), loss.labels
    return None


class NewtonInTime(Method):
    """Parallel-in-time Newton over the whole trajectory (`integrators.newton_in_time`,
    docs/design.md 2.6): linearised forward recurrences and the conjugate recurrence solved
    by associative scans (depth O(log N)); one sample at a time, averaged over the batch. Strict
    (`on_unconverged="raise"`), with the largest final residual over the batch recorded."""

    name = "least-action-newton"
    kind = "project"
    description = "parallel-in-time Newton with associative scans, per sample"

    def applies(self, problem):
        if problem.system.layout == "unrolled":
            return f"layers change shape ({type(problem.system).__name__}); associative scans need one shape"
        if problem.single_state:
            return "one state (n,), not a batch: this method maps over the samples of a batch"
        if _per_sample(problem.loss) is None:
            return f"no per-sample form of the loss {type(problem.loss).__name__}"
        return None

    def prepare(self, problem):
        make, targets = _per_sample(problem.loss)
        targets = jnp.zeros(problem.batch) if targets is None else targets
        system = problem.system

        def fn(theta, x0):
            def one(x, y):
                result = integrators.newton_in_time(system, theta, x, make(y), on_unconverged="raise")
                return result.grad, (result.iterations, result.residual, result.converged)

            grads, (iterations, residual, converged) = jax.vmap(one)(x0, targets)
            return jax.tree.map(lambda g: jnp.mean(g, axis=0), grads), {
                "iterations": jnp.max(iterations), "residual": jnp.max(residual), "converged": jnp.all(converged)}

        return Prepared(fn, (problem.theta, problem.x0), {"unit": unit(problem), "f": None, "vjp": None, "jvp": None})


def scheme_names() -> list[str]:
    """Every scheme `integrators` can discretise a field with (`integrators.scheme_names()`):
    the Butcher tableaux, then the splittings and the reversible schemes."""
    return integrators.scheme_names()


def least_action_methods() -> list[Method]:
    """The project's sweeps and solvers, as registered by default: one `LeastAction` per
    memory strategy, the tension, the local and parallel-in-time solvers, and one
    `LeastActionScheme` per scheme."""
    return [
        LeastAction("least-action", integrators.StoreAll(), "least-action sweep, store-all"),
        LeastAction("least-action-store-stages", integrators.StoreStages(),
                    "least-action sweep, every step's linearisation stored (the memory and arithmetic of jax.grad)"),
        LeastAction("least-action-checkpoint", integrators.Checkpoint(2),
                    "least-action sweep, recursive checkpointing, 2 levels (O(sqrt N) memory)"),
        LeastAction("least-action-checkpoint-log", integrators.Checkpoint.logarithmic(),
                    "least-action sweep, recursive checkpointing, log2 N levels (O(log N) memory)"),
        Tension(beta=1e-3),
        TensionCopies(beta=1.0),
        Relaxation(),
        SaddleFlow(),
        NewtonInTime(),
        *(LeastActionScheme.named(scheme) for scheme in scheme_names()),
    ]


__all__ = ["LeastAction", "LeastActionScheme", "NewtonInTime", "Relaxation", "SaddleFlow", "Tension",
           "TensionCopies", "least_action_methods", "scheme_names"]
