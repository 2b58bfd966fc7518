"""Gradient methods: one object, one interface, one registry.

A `Method` takes a `Problem` and returns `Prepared`: a function `fn(*args) ->
(gradient, aux)` with its arguments (the harness compiles it with XLA when
`compiled`, warms it up and times it), plus the number of evaluations the
method performs. `gradient` has the structure of `theta`; `aux` is a dict of
scalar diagnostics (e.g. the reconstruction error of a reversible sweep).

Three kinds:

- ``reference``: how the answer is known independently of the project.
  `jax.grad` through `integrators.forward` (store-all reverse mode, the default
  reference), forward mode (`jax.jvp`, one column of the Jacobian per
  parameter), central finite differences, diffrax's adjoints on the same
  vector field and scheme (`peers.py`).
- ``peer``: an independent implementation in another framework (torch
  autograd, `peers.py`).
- ``project``: the least-action methods under test. They only call
  `integrators.sweep` / `integrators.tension`, which differentiate locally
  (one layer map or one evaluation of `f` at a time); `compare` exits non-zero
  if one misses its tolerance.

A method may solve a different discretisation of an ODE problem than the
problem's own scheme (`Method.target`): the least-action sweep on each
tableau, or on a reversible scheme. Its reference is then computed on that same
discretisation, and its error against the continuous gradient shows the order.

Tolerances (relative L2 error against the reference, by dtype) are stated per
method; `None` means reported, not judged (diffrax `BacksolveAdjoint`, whose
answer is the continuous gradient up to discretisation error, not the gradient
of the discrete map).

New methods are one line: `register(LeastAction("name", memory, "what it is"))`,
`register(LeastActionScheme.named("scheme"))`, ...; every scheme
`integrators.discretise` accepts (the tableaux in `integrators.TABLEAUX`, the
splittings, the reversible schemes) is registered when this package is imported.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import PyTree

import integrators
import lagrangian

from .problems import Problem

Kind = Literal["reference", "peer", "project"]

EXACT = {"float64": 1e-12, "float32": 1e-5}
"""Tolerance of a method exact up to rounding: relative L2 error against `jax.grad`
of the same discretisation (the project's acceptance bound)."""


@dataclass(frozen=True)
class Prepared:
    """A method ready to run on one problem.

    `fn(*args) -> (gradient, aux)`. With `compiled`, the harness compiles `fn`
    with `jax.jit` (so `args` must be arrays or pytrees of arrays) and reads
    its XLA memory analysis; otherwise `fn` is called as is (torch).
    `evaluations` counts what the method evaluates, in units of `unit`:
    ``f`` (one evaluation of the vector field, per Runge-Kutta stage) or
    ``layer`` (one layer map); keys `f` (primal evaluations, including
    recomputation), `vjp`, `jvp`; `None` where not known.
    `program`, when set, names the function `fn` computes of its `args`: the
    harness compiles one program per `program` (and argument shapes) and calls
    it with each `args` (e.g. every explicit 4-stage tableau on one field).
    `padding`, when set, says how to compute the same gradient with the
    tableau padded to more stages (`Padding`; used for untimed references).

    Example:
        >>> from experiments import harness
        >>> problem = harness.problem_named("linear-rk4")
        >>> prepared = harness.method_named("least-action").prepare(problem)
        >>> gradient, aux = prepared.fn(*prepared.args)                   # what the harness compiles and times
        >>> jax.tree.structure(gradient) == jax.tree.structure(problem.theta)
        True
    """

    fn: Callable[..., tuple[PyTree, Mapping[str, Any]]]
    args: tuple
    evaluations: Mapping[str, Any] = field(default_factory=dict)
    compiled: bool = True
    program: Any = None
    padding: "Padding | None" = None


@dataclass(frozen=True)
class Padding:
    """How a method computes the same gradient with its Runge-Kutta tableau padded to more
    stages (`integrators.RungeKutta.padded`: zero coefficients, so the same map up to exact
    zeros). The harness uses it for programs it runs once, untimed: the references of
    tableaux with different stage counts but one `key` (field, grid, loss, explicitness)
    become one program, padded to the largest `stages` among them."""

    key: Any
    stages: int
    prepare: Callable[[int], Prepared]


class Method(abc.ABC):
    """A gradient method. Subclasses set `name`, `kind`, `description`,
    `tolerance` and implement `prepare`; `applies` returns the reason a problem
    is not applicable (or `None`), and `target` the problem actually solved.

    Example:
        >>> from experiments import harness
        >>> method = harness.method_named("least-action-checkpoint-log")
        >>> method.kind, method.tolerance_for("float64")
        ('project', 1e-12)
    """

    name: str
    kind: Kind
    description: str
    tolerance: Mapping[str, float | None] = EXACT

    def applies(self, problem: Problem) -> str | None:
        """`None` if this method can differentiate `problem`, else why not (shown as n/a)."""
        return None

    def target(self, problem: Problem) -> Problem:
        """The problem this method differentiates (a re-discretisation, or `problem` itself)."""
        return problem

    @abc.abstractmethod
    def prepare(self, problem: Problem) -> Prepared:
        """The function computing `dl/dtheta` on `problem` (already the target)."""

    def computation(self, target: Problem) -> tuple:
        """A key naming what this method computes on `target`: two methods with the same
        key run the same program (e.g. `least-action-rk4` on a problem already stepped
        by RK4 is `least-action`), so the harness runs it once and shares the result."""
        return (self.name, target.name)

    def tolerance_for(self, dtype_name: str) -> float | None:
        return self.tolerance.get(dtype_name)

    def info(self) -> dict:
        return {"kind": self.kind, "description": self.description, "tolerance": dict(self.tolerance)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


METHODS: dict[str, Method] = {}
"""Every method `compare` knows, by name (references, then peers, then project methods)."""

SHIPPED: frozenset[str] = frozenset()
"""The methods `register_defaults` registered (what a fresh process knows)."""


def register(method: Method) -> Method:
    """Add `method` to `METHODS` (a `ValueError` if its name is taken).

    Example:
        >>> from experiments import harness
        >>> from experiments.harness.methods import LeastAction
        >>> method = harness.register(LeastAction("least-action-checkpoint-3", integrators.Checkpoint(3),
        ...                                       "the sweep with 3-level checkpointing"))
        >>> "least-action-checkpoint-3" in harness.METHODS
        True
        >>> del harness.METHODS["least-action-checkpoint-3"]            # (keep the registry as it was)
    """
    if method.name in METHODS:
        raise ValueError(f"a method called {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def method_named(name: str) -> Method:
    """The registered method called `name` (a `ValueError` listing the valid names otherwise).

    Example:
        >>> method_named("least-action").kind
        'project'
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


def select(names: str | list[str] | None) -> list[str]:
    """Method names from a list or a comma-separated string (``all`` or empty: every one)."""
    if names is None:
        return list(METHODS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names or names == ["all"]:
        return list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; valid methods: {', '.join(METHODS)}")
    return names


# --- evaluation counts ---------------------------------------------------------------------


def _unit(problem: Problem) -> str:
    return "f" if problem.tableau is not None else "layer"


def _checkpoint_steps(levels: int, m: int) -> int:
    """Forward steps recomputed by `integrators`' recursive checkpointing below the first pass:
    level 1 re-runs its `m` steps, level `l` runs its `m` segments of `m^(l-1)` steps and recurses."""
    if levels == 1:
        return m
    return m**levels + m * _checkpoint_steps(levels - 1, m)


def sweep_evaluations(problem: Problem, memory: integrators.Memory) -> dict:
    """Algorithmic counts of the least-action sweep: primal evaluations (forward pass,
    checkpoint recomputation, and the stage values a Runge-Kutta conjugate step
    recomputes from `x_k`) and local VJPs (one per stage per step)."""
    n, s = problem.steps, problem.stages
    backward = n
    if isinstance(memory, integrators.Checkpoint):
        levels, m = memory.segment(n)
        backward = m**levels  # padded steps run masked
        forward = backward + _checkpoint_steps(levels, m)
    elif isinstance(memory, integrators.Reversible):
        forward = 2 * n  # the forward pass and the algebraic inverse step per layer
    else:
        forward = n
    recompute = backward * s if problem.tableau is not None and s > 1 else 0
    return {"unit": _unit(problem), "f": forward * s + recompute, "vjp": backward * s, "jvp": 0}


def coefficient_form(problem: Problem, stages: int | None = None) -> tuple[Callable, tuple, Any]:
    """`(system_at, extra_args, program)`: the problem's system, closed over (no extra arguments,
    no shared program)."""
    system = problem.system
    return (lambda: system), (), None


# --- reference methods ---------------------------------------------------------------------


class JaxGrad(Method):
    """`jax.grad` of `loss(output(system, theta, x0))`: store-all reverse mode through
    the whole composed forward map. The default reference."""

    name = "jax-grad"
    kind = "reference"
    description = "jax.grad through integrators.forward (store-all reverse mode)"

    def prepare(self, problem):
        return self._prepare(problem)

    def _prepare(self, problem, stages: int | None = None):
        """`stages`: compute with the tableau padded to that many stages (`Padding`)."""
        system_at, extra, program = coefficient_form(problem, stages)

        def fn(theta, x0, *extra):
            system = system_at(*extra)
            return jax.grad(lambda th: problem.loss(integrators.output(system, th, x0)))(theta), {}

        n = problem.steps * (stages or problem.stages)
        padding = None
        if program is not None:
            key = (self.name, program[:3], problem.system.padding_structure)   # field, grid, loss; not the stages
            padding = Padding(key, problem.system.tableau.stages, lambda more: self._prepare(problem, more))
        return Prepared(fn, (problem.theta, problem.x0, *extra), {"unit": _unit(problem), "f": n, "vjp": n, "jvp": 0},
                        program=program and (self.name, program), padding=padding)


class ForwardMode(Method):
    """Forward mode: `dl/dtheta_i = jvp(l, e_i)`, one JVP of the whole forward map per
    parameter (columns mapped in chunks of `chunk`)."""

    name = "jax-jvp"
    kind = "reference"
    description = "forward mode, jax.jvp column by column (chunks of 128)"
    chunk = 128

    def prepare(self, problem):
        flat_theta, unravel = ravel_pytree(problem.theta)

        def fn(flat_theta, x0):
            def column(e):
                return jax.jvp(lambda v: problem.loss_at(unravel(v), x0), (flat_theta,), (e,))[1]

            basis = jnp.eye(flat_theta.size, dtype=flat_theta.dtype)
            return unravel(jax.lax.map(column, basis, batch_size=min(self.chunk, flat_theta.size))), {}

        n = problem.parameters * problem.steps * problem.stages
        return Prepared(fn, (flat_theta, problem.x0), {"unit": _unit(problem), "f": 0, "vjp": 0, "jvp": n})


class FiniteDifferences(Method):
    """Central finite differences, one pair of forward solves per parameter:

        dl/dtheta_i ~ (l(theta + h_i e_i) - l(theta - h_i e_i)) / (2 h_i),
        h_i = eps^(1/3) * max(1, |theta_i|),

    with `eps` the machine epsilon of the dtype. `eps^(1/3)` balances the
    truncation error `h^2 |l'''| / 6` against the rounding error `eps |l| / h`,
    so the error is about `eps^(2/3)` (~4e-11 relative in float64, ~3e-5 in
    float32) times the conditioning of `l`. The step is made exactly
    representable: the denominator is the difference of the perturbed
    parameters as stored, `(theta_i + h_i) - (theta_i - h_i)`.
    """

    name = "finite-diff"
    kind = "reference"
    description = "central finite differences, h_i = eps^(1/3) max(1, |theta_i|)"
    tolerance = {"float64": 1e-6, "float32": 5e-2}
    chunk = 256

    def prepare(self, problem):
        flat_theta, unravel = ravel_pytree(problem.theta)

        def fn(flat_theta, x0):
            eps = jnp.finfo(flat_theta.dtype).eps
            h = eps ** (1.0 / 3.0) * jnp.maximum(1.0, jnp.abs(flat_theta))

            def column(i):
                plus = flat_theta.at[i].add(h[i])
                minus = flat_theta.at[i].add(-h[i])
                width = plus[i] - minus[i]
                return (problem.loss_at(unravel(plus), x0) - problem.loss_at(unravel(minus), x0)) / width

            index = jnp.arange(flat_theta.size)
            return unravel(jax.lax.map(column, index, batch_size=min(self.chunk, flat_theta.size))), {}

        n = 2 * problem.parameters * problem.steps * problem.stages
        return Prepared(fn, (flat_theta, problem.x0), {"unit": _unit(problem), "f": n, "vjp": 0, "jvp": 0})


# --- project methods -----------------------------------------------------------------------


class LeastAction(Method):
    """The least-action sweep (`integrators.sweep`) on the problem's own layer maps,
    with a memory strategy: the stationary point of the discrete action,
    `p_k = (dPhi_k/dx_k)^T p_{k+1}`, `dl/dtheta_k = (dPhi_k/dtheta_k)^T p_{k+1}`."""

    kind = "project"

    def __init__(self, name: str, memory: integrators.Memory, description: str):
        self.name, self.memory, self.description = name, memory, description

    def applies(self, problem):
        if problem.system.layout == "unrolled" and not isinstance(self.memory, integrators.StoreAll):
            return f"layers change shape ({type(problem.system).__name__}); only store-all applies"
        if isinstance(self.memory, integrators.Reversible) and not hasattr(problem.system, "inverse"):
            return f"{type(problem.system).__name__} has no algebraic inverse"
        return None

    def memory_for(self, system) -> integrators.Memory:
        """The memory strategy of the sweep on `system`."""
        return self.memory

    def computation(self, target):
        return ("least-action sweep", repr(self.memory_for(target.system)), target.name)

    def prepare(self, problem):
        memory = self.memory_for(problem.system)
        system_at, extra, program = coefficient_form(problem)

        def fn(theta, x0, *extra):
            solution = integrators.sweep(system_at(*extra), theta, x0, problem.loss, memory=memory, check=False)
            aux = {}
            if solution.reconstruction_error is not None:
                aux["reconstruction_error"] = solution.reconstruction_error
            return solution.grad, aux

        return Prepared(fn, (problem.theta, problem.x0, *extra), sweep_evaluations(problem, memory),
                        program=program and ("least-action sweep", repr(memory), program))


class Tension(Method):
    """The doubled-variable tension (DESIGN.md 2.2): the two copies are nudged apart by
    `x-_N = beta grad l(x+_N)`, and `dl/dtheta = (dS_beta/dtheta) / beta` exactly."""

    kind = "project"

    def __init__(self, beta: float = 1e-3):
        self.beta = float(beta)
        self.name = "tension"
        self.description = f"tension x-/beta of the doubled action, beta = {self.beta:g}"

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
    A scheme with an algebraic inverse (`system.inverse`) is swept with `Reversible()`
    memory (O(1) in N, reconstruction error reported), any other with `StoreAll()`."""

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
        return integrators.Reversible() if hasattr(system, "inverse") else integrators.StoreAll()

    def applies(self, problem):
        if not problem.is_ode:
            return "not an ODE problem (no vector field to re-discretise)"
        try:
            self.target(problem)
        except (ValueError, TypeError) as error:
            return str(error)
        return None

    def target(self, problem):
        return problem.rediscretise(self.scheme, self.build)


class Relaxation(Method):
    """The local solver of DESIGN.md 2.6 (`integrators.relax`): every `(x_k, p_k)` moves at
    once, reading only its neighbours, along the derivative of the action with respect to
    its conjugate. At `eta = 1` (Jacobi) the fixed point is reached after `2N + 1` steps;
    this method runs `2N + 2`."""

    name = "least-action-relax"
    kind = "project"
    description = "local relaxation of (x_k, p_k), Jacobi eta = 1, 2N + 2 iterations"

    def applies(self, problem):
        return None

    def prepare(self, problem):
        iterations = 2 * problem.steps + 2

        def fn(theta, x0):
            return integrators.relax(problem.system, theta, x0, problem.loss, iterations=iterations, eta=1.0).grad, {}

        n = iterations * problem.steps * problem.stages
        return Prepared(fn, (problem.theta, problem.x0), {"unit": _unit(problem), "f": n, "vjp": n, "jvp": 0})


class SaddleFlow(Method):
    """The augmented-Lagrangian saddle flow of DESIGN.md 2.6 (`integrators.saddle_flow`):
    descent in `x`, ascent in `p` on `S_d + (rho/2) sum |c_k|^2`, every layer updated at
    once from its neighbours, for a fixed budget of iterations. Its slowest mode diffuses
    along the depth (pseudo-time ~ N^2), so at a fixed budget it is approximate: its error
    is reported, not judged (`leastaction run local-dynamics` shows it reaching 1e-10)."""

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
                                             eta=self.eta, rho=self.rho)
            return result.grad, {"final_constraint_residual": result.forward_residual[-1]}

        n = self.iterations * problem.steps * problem.stages
        return Prepared(fn, (problem.theta, problem.x0), {"unit": _unit(problem), "f": n, "vjp": n, "jvp": 0})


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
    DESIGN.md 2.6): linearised forward recurrences and the conjugate recurrence solved
    by associative scans (depth O(log N)); one sample at a time, averaged over the batch."""

    name = "least-action-newton"
    kind = "project"
    description = "parallel-in-time Newton with associative scans, per sample"

    def applies(self, problem):
        if problem.system.layout == "unrolled":
            return f"layers change shape ({type(problem.system).__name__}); associative scans need one shape"
        if _per_sample(problem.loss) is None:
            return f"no per-sample form of the loss {type(problem.loss).__name__}"
        return None

    def prepare(self, problem):
        make, targets = _per_sample(problem.loss)
        targets = jnp.zeros(problem.batch) if targets is None else targets
        system = problem.system

        def fn(theta, x0):
            def one(x, y):
                result = integrators.newton_in_time(system, theta, x, make(y))
                return result.grad, result.iterations

            grads, iterations = jax.vmap(one)(x0, targets)
            return jax.tree.map(lambda g: jnp.mean(g, axis=0), grads), {"iterations": jnp.max(iterations)}

        return Prepared(fn, (problem.theta, problem.x0), {"unit": _unit(problem), "f": None, "vjp": None, "jvp": None})


# --- physical learning rules (issue 12) -----------------------------------------------------


def _tree_scale(tree: PyTree, factor: float) -> PyTree:
    return jax.tree.map(lambda g: factor * g, tree)


class PhysicalRule(Method):
    """A physical learning rule on a layered network (`experiments.learning_rules`): an estimate
    of `dl/dtheta` from the equilibria of an energy or from nudged compartments, approximate
    by construction (its bias is set by its nudge strength) except the fixed-prediction
    predictive coding. Registered on MLPs only (layer maps of changing widths, `lagrangian.MLP`)."""

    kind = "project"

    def applies(self, problem):
        if not isinstance(problem.system, lagrangian.MLP):
            return f"written for lagrangian.MLP; got {type(problem.system).__name__}"
        return None


class EquilibriumPropagation(PhysicalRule):
    """Equilibrium propagation on the layered energy `F_beta = E + beta l(x_N)`: one-sided
    `(dF/dtheta(x^beta) - dF/dtheta(x^0)) / beta` (bias `O(beta)`) or symmetric
    `(dF/dtheta(x^beta) - dF/dtheta(x^-beta)) / (2 beta)` (bias `O(beta^2)`); equilibria by the
    Hessian-free alternating sweeps to `1e-13` (`inference.sweeps`, a contraction at small beta;
    the experiment uses Newton). Tolerances: the bias at the default nudge on the shipped MLPs
    is at most 1.2e-5 (one-sided, beta = 1e-6) and 2.2e-6 (symmetric, beta = 1e-4); judged at
    1e-4 and 1e-5."""

    def __init__(self, beta: float, symmetric: bool):
        from experiments.learning_rules import equilibrium_propagation as ep

        self.ep, self.beta, self.symmetric = ep, float(beta), bool(symmetric)
        self.name = "ep-symmetric" if symmetric else "ep-one-sided"
        self.tolerance = {"float64": 1e-5 if symmetric else 1e-4, "float32": None}
        kind = "symmetric" if symmetric else "one-sided"
        self.description = f"equilibrium propagation, {kind}, beta = {self.beta:g}, equilibria by sweeps"

    def nudge(self, problem) -> float:
        """The signed nudge strength (a test-only copy flips it)."""
        return self.beta

    def prepare(self, problem):
        beta = self.nudge(problem)

        def fn(theta, x0):
            est = self.ep.equilibrium_propagation(problem.system, theta, x0, problem.loss, beta, self.symmetric,
                                                  solver="sweeps")
            grad = _tree_scale(est.grad, self.beta / beta)
            return grad, {"sweeps": est.iterations, "final_state_change": est.residual}

        return Prepared(fn, (problem.theta, problem.x0), {"unit": "layer", "f": None, "vjp": None, "jvp": None})


class PredictiveCoding(PhysicalRule):
    """Predictive coding with the output clamped to the squared-error target and the hidden
    states relaxed to equilibrium (Newton): output precision `gamma = 1` is Whittington &
    Bogacz's clamped network, solved by Newton (a different objective, the gradient of the
    clamped equilibrium energy: its error against `dl/dtheta` stays O(1), 0.95 on mlp-deep,
    so it is reported, not judged), `gamma << 1` the weak-output-precision variant by the
    Hessian-free sweeps (bias `O(gamma)`, 1.2e-5 at gamma = 1e-6 on mlp-deep; judged at 1e-4)."""

    def __init__(self, precision: float):
        from experiments.learning_rules import predictive_coding as pc

        self.pc, self.precision = pc, float(precision)
        strong = self.precision == 1.0
        self.name = "pc-clamped" if strong else "pc-weak-precision"
        self.solver = "newton" if strong else "sweeps"
        self.tolerance = {"float64": None if strong else 1e-4, "float32": None}
        self.description = (f"predictive coding, output clamped to the target, output precision {self.precision:g}, "
                            f"{self.solver} inference")

    def applies(self, problem):
        why = super().applies(problem)
        if why is None and not isinstance(problem.loss, lagrangian.SquaredError):
            return f"needs a squared-error target to clamp to; loss is {type(problem.loss).__name__}"
        return why

    def loss_for(self, problem) -> lagrangian.Loss:
        """The loss whose target the output is clamped to (a test-only copy reflects it)."""
        return problem.loss

    def prepare(self, problem):
        loss = self.loss_for(problem)

        def fn(theta, x0):
            est = self.pc.clamped(problem.system, theta, x0, loss, self.precision, solver=self.solver)
            return est.grad, {"iterations": est.iterations, "residual": est.residual}

        return Prepared(fn, (problem.theta, problem.x0), {"unit": "layer", "f": None, "vjp": None, "jvp": None})


class FixedPredictionPC(PhysicalRule):
    """Predictive coding under the fixed-prediction assumption: predictions held at the forward
    pass, output error `-grad l`, value nodes relaxed by `N - 1` Jacobi steps; equals backprop
    exactly (tolerance `EXACT`)."""

    name = "pc-fixed-prediction"
    description = "predictive coding, fixed predictions, N - 1 Jacobi inference steps (exact)"

    def __init__(self):
        from experiments.learning_rules import predictive_coding as pc

        self.pc = pc

    def nudge(self, problem) -> float:
        """The output error is `-nudge * grad l` (a test-only copy flips the sign)."""
        return 1.0

    def prepare(self, problem):
        nudge, n = self.nudge(problem), problem.steps

        def fn(theta, x0):
            return _tree_scale(self.pc.fixed_prediction(problem.system, theta, x0, problem.loss, nudge=nudge),
                               nudge), {}

        return Prepared(fn, (problem.theta, problem.x0),
                        {"unit": "layer", "f": 2 * n, "vjp": (n - 1) ** 2 + n, "jvp": 0})


class DualPropagation(PhysicalRule):
    """Dual propagation (Hoier, Staudt & Zach 2023) or its adjoint variant DP-top (Hoier & Zach
    2024): dyads nudged by `+-beta`, one downward inference sweep, contrastive Hebbian update.
    DP at alpha = 1/2 has bias `O(beta^2)` (1.9e-7 at beta = 1e-3 on mlp-deep; judged at 1e-5);
    DP-top at the asymmetric alpha = 0 `O(beta)` (4e-7 at beta = 1e-6; judged at 1e-4)."""

    def __init__(self, variant: str, beta: float, alpha: float, passes: int = 1):
        from experiments.learning_rules import dual_propagation as dp

        self.dp, self.variant, self.beta, self.alpha, self.passes = dp, variant, float(beta), float(alpha), passes
        self.name = "dual-prop" if variant == "dp" else "dual-prop-top"
        self.tolerance = {"float64": 1e-5 if alpha == 0.5 else 1e-4, "float32": None}
        self.description = (f"dual propagation ({'DP' if variant == 'dp' else 'DP-top'}), alpha = {alpha:g}, "
                            f"beta = {beta:g}, {passes} inference pass(es)")

    def nudge(self, problem) -> float:
        """The signed nudge strength (a test-only copy flips it)."""
        return self.beta

    def prepare(self, problem):
        beta, n = self.nudge(problem), problem.steps
        updates = len(self.dp.schedule(n, self.passes))

        def fn(theta, x0):
            grad = self.dp.dual_propagation(problem.system, theta, x0, problem.loss, beta, self.alpha, self.passes,
                                            self.variant)
            return _tree_scale(grad, beta / self.beta), {}

        return Prepared(fn, (problem.theta, problem.x0),
                        {"unit": "layer", "f": n + 2 * updates, "vjp": updates, "jvp": 0})


def physical_rules() -> list[Method]:
    """The physical learning rules `compare` knows, at their default nudges."""
    return [
        EquilibriumPropagation(beta=1e-6, symmetric=False),
        EquilibriumPropagation(beta=1e-4, symmetric=True),
        PredictiveCoding(precision=1.0),
        PredictiveCoding(precision=1e-6),
        FixedPredictionPC(),
        DualPropagation("dp", beta=1e-3, alpha=0.5),
        DualPropagation("dp-top", beta=1e-6, alpha=0.0),
    ]


class HamiltonianEcho(Method):
    """Hamiltonian echo learning (`experiments.learning_rules.hamiltonian_echo`): forward pass,
    momentum flip, two echoes from `Sigma x_N +- eps X grad l` (position and momentum components of
    the loss gradient exchanged), and

        dl/dtheta ~ -(1/(2 eps)) sum_j w_j (dH/dtheta(e+_j) - dH/dtheta(e-_j))

    with leapfrog's kick weights `w_j`. Forward passes and `jax.vjp` of `H` only; its error is
    `O(eps^2)` (6.5e-10 relative at `eps = 1e-4` on the oscillator chain), hence the tolerance 1e-8.
    Applies to leapfrog discretisations of a separable field with a Hamiltonian (`physical_energy`)."""

    name = "hamiltonian-echo"
    kind = "project"
    tolerance = {"float64": 1e-8, "float32": None}  # eps = 1e-4 is below float32's useful range: reported

    def __init__(self, eps: float = 1e-4):
        self.eps = float(eps)
        self.description = f"Hamiltonian echo learning, symmetric nudge eps = {self.eps:g} (forward passes only)"

    def applies(self, problem):
        from experiments.learning_rules.hamiltonian_echo import check_echo_system

        if not problem.is_ode:
            return "not an ODE problem (needs a time-reversible Hamiltonian field)"
        if not getattr(problem.field, "separable", False):
            return f"{type(problem.field).__name__} is not a separable Hamiltonian field"
        try:
            check_echo_system(problem.system)
        except ValueError as error:
            return str(error)
        return None

    def prepare(self, problem):
        from experiments.learning_rules.hamiltonian_echo import hamiltonian_echo

        def fn(theta, x0):
            return hamiltonian_echo(problem.system, theta, x0, problem.loss, self.eps).grad, {}

        n = problem.steps
        # three leapfrog passes (forward, two echoes); vjp counts the local pullbacks of H
        return Prepared(fn, (problem.theta, problem.x0), {"unit": "layer", "f": 3 * n, "vjp": 2 * (n + 1), "jvp": 0})


def scheme_names() -> list[str]:
    """Every scheme `integrators` can discretise a field with (`integrators.scheme_names()`):
    the Butcher tableaux, then the splittings and the reversible schemes."""
    return integrators.scheme_names()


def register_defaults() -> None:
    """Register every shipped method: references, peers, then project methods."""
    from . import peers

    register(JaxGrad())
    register(ForwardMode())
    register(FiniteDifferences())
    for method in peers.default_methods():
        register(method)
    register(LeastAction("least-action", integrators.StoreAll(), "least-action sweep, store-all"))
    register(LeastAction("least-action-checkpoint", integrators.Checkpoint(2),
                         "least-action sweep, recursive checkpointing, 2 levels (O(sqrt N) memory)"))
    register(LeastAction("least-action-checkpoint-log", integrators.Checkpoint.logarithmic(),
                         "least-action sweep, recursive checkpointing, log2 N levels (O(log N) memory)"))
    register(Tension(beta=1e-3))
    register(Relaxation())
    register(SaddleFlow())
    register(NewtonInTime())
    register(HamiltonianEcho(eps=1e-4))
    for scheme in scheme_names():
        register(LeastActionScheme.named(scheme))
    for method in physical_rules():
        register(method)
    global SHIPPED
    SHIPPED = frozenset(METHODS)


__all__ = [
    "DualPropagation", "EXACT", "EquilibriumPropagation", "FiniteDifferences", "FixedPredictionPC", "ForwardMode",
    "HamiltonianEcho", "JaxGrad", "LeastAction", "LeastActionScheme", "METHODS", "PhysicalRule", "PredictiveCoding",
    "physical_rules",
    "NewtonInTime", "Relaxation", "SaddleFlow",
    "Method", "Prepared", "Tension", "coefficient_form", "method_named", "register", "register_defaults",
    "scheme_names", "select", "sweep_evaluations",
]
