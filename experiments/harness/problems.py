"""The problems gradient methods are compared on: a system, its parameters, a batch and a loss.

A `Problem` is everything a gradient method needs to compute `dl/dtheta`:

    l(theta) = loss( x_N ),   x_N = output(system, theta, x0)   (x0 of shape (B, n), or (n,))

and, for problems that come from an ODE `dx/dt = f(t, x, theta)`, the vector
field, the time grid `ts` and the scheme that turned it into layer maps, so
that a method can solve the same ODE its own way (diffrax, torch) or on
another discretisation of the same grid (another tableau, a reversible scheme).

Problems are built by name from the registry `PROBLEMS`, deterministically
from a seed and a dtype: the PRNG key of a problem is `fold_in(key(seed),
crc32(name))`, so every problem has its own weights and the same ones on every
machine. A user-defined system becomes a problem with `custom_problem`, and
can be registered for the CLI with `register_problem`.

Continuous references (the gradient of the ODE itself, not of a
discretisation) are attached where one is available:

- `dx/dt = A x` (and the harmonic oscillator, a linear system with
  `A = [[0, 1], [-omega^2, 0]]`): closed form. For `l = (1/B) sum_b l_b(x_b(T))`
  with `g_b = dl/dx_b(T)` and `C = sum_b g_b x0_b^T`,

      dl/dA = integral_0^T exp(A^T (T - s)) C exp(A^T s) ds
            = top-right block of expm(T [[A^T, C], [0, A^T]])      (Van Loan 1978);

- any other vector field: the adjoint ODE (forward state, conjugate field and
  parameter gradient) solved by scipy's DOP853 at `rtol = atol = 1e-13` in
  float64: an optimise-then-discretise gradient, independent of the project's
  integrators and of diffrax.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field as dataclass_field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.linalg
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree

import integrators
import lagrangian

DTYPES = {"float64": jnp.float64, "float32": jnp.float32}
"""The dtypes a comparison runs in, by name."""


def dtype_named(name: str):
    """`jnp.float64` or `jnp.float32` from its name; a `ValueError` listing both otherwise."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}") from None


def cast(tree: PyTree, dtype) -> PyTree:
    """Every floating leaf of `tree` converted to `dtype` (integer leaves, e.g. labels, kept)."""

    def convert(leaf):
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(convert, tree)


ContinuousReference = Callable[["Problem"], PyTree]
"""`problem -> dl/dtheta` of the continuous problem (float64), the pytree structure of theta."""


@dataclass(frozen=True, eq=False)
class Problem:
    """One gradient problem.

    Attributes:
        name: unique name, e.g. ``node-d16-rk4``.
        description: one line for tables and `compare --list`.
        system: the layer maps `Phi_k` whose composed map is differentiated.
        theta: the parameters (pytree, in `dtype`).
        x0: the batch of initial states, shape `(B, n)`, or one state `(n,)` (the core's
            unbatched path, no `vmap`; see `single_state`).
        loss: the terminal loss (batch-averaged).
        field: the vector field `f(t, x, theta)` for ODE problems, else `None`.
        ts: the time grid `t_0 < ... < t_N` of the discretisation (ODE problems).
        scheme: name of the discretisation of `field` (a tableau name such as
            ``rk4``, or a scheme such as ``reversible-heun``); `None` for layered networks.
        family: the name without the scheme; re-discretisations of one ODE
            problem share it (and share the continuous reference).
        continuous: how to compute the continuous gradient (`None`: none available).
        continuous_source: one line saying what `continuous` is (closed form, adjoint ODE...).

    Example:
        >>> from experiments import harness
        >>> problem = harness.problem_named("node-d2-rk4")
        >>> problem.scheme, problem.x0.ndim, problem.field is not None
        ('rk4', 2, True)
    """

    name: str
    description: str
    system: lagrangian.LayerMaps
    theta: PyTree
    x0: Array
    loss: lagrangian.Loss
    field: lagrangian.VectorField | None = None
    ts: Array | None = None
    scheme: str | None = None
    family: str = ""
    continuous: ContinuousReference | None = dataclass_field(default=None, repr=False)
    continuous_source: str = ""

    def __post_init__(self):
        if not self.family:
            object.__setattr__(self, "family", self.name)
        x0 = jnp.asarray(self.x0)
        if x0.ndim not in (1, 2):
            raise ValueError(f"problem {self.name!r}: x0 must be a batch of shape (B, n) or one state (n,); "
                             f"got {x0.shape}")
        self.system.check(self.theta, x0)

    @property
    def dtype(self):
        return jnp.asarray(self.x0).dtype

    @property
    def dtype_name(self) -> str:
        return jnp.dtype(self.dtype).name

    @property
    def is_ode(self) -> bool:
        """True when the problem comes from a vector field on a time grid."""
        return self.field is not None and self.ts is not None

    @property
    def tableau(self) -> integrators.ButcherTableau | None:
        """The Butcher tableau of the discretisation, if it is a Runge-Kutta one."""
        tab = getattr(self.system, "tableau", None)
        return tab if isinstance(tab, integrators.ButcherTableau) else None

    @property
    def steps(self) -> int:
        """Number of layers / time steps `N`."""
        return int(self.system.depth)

    @property
    def stages(self) -> int:
        """Evaluations of `f` per step (Runge-Kutta stages), 1 for a layer map."""
        tab = self.tableau
        return tab.stages if tab is not None else 1

    @property
    def parameters(self) -> int:
        """Number of scalar parameters, `dim theta`."""
        return int(sum(np.size(leaf) for leaf in jax.tree.leaves(self.theta)))

    @property
    def single_state(self) -> bool:
        """True when `x0` is one state `(n,)` rather than a batch `(B, n)`."""
        return jnp.ndim(self.x0) == 1

    @property
    def batch(self) -> int:
        """The number of initial states (1 for a single state)."""
        return 1 if self.single_state else int(jnp.asarray(self.x0).shape[0])

    @property
    def state_dim(self) -> int:
        """`n`, the dimension of one state."""
        return int(jnp.asarray(self.x0).shape[-1])

    def loss_at(self, theta: PyTree, x0: Array | None = None):
        """`l(theta) = loss(output(system, theta, x0))`: plain JAX, differentiable end to end."""
        return self.loss(integrators.output(self.system, theta, self.x0 if x0 is None else x0))

    def astype(self, dtype) -> "Problem":
        """The same problem with theta, x0 and loss targets in `dtype`."""
        if jnp.dtype(dtype) == jnp.dtype(self.dtype):
            return self
        return dataclasses.replace(
            self, theta=cast(self.theta, dtype), x0=cast(self.x0, dtype), loss=cast(self.loss, dtype)
        )

    def rediscretise(self, scheme: str, build: Callable[[Any, Array], lagrangian.LayerMaps]) -> "Problem":
        """The same field, grid, parameters and batch, stepped by another scheme.

        `build(field, ts)` returns the layer maps (e.g. `integrators.discretise(field, ts, "heun")`).
        The result is named ``{family}-{scheme}``, so re-discretising two problems
        of one family with one scheme gives problems of the same name.
        """
        if not self.is_ode:
            raise ValueError(f"problem {self.name!r} is not an ODE problem; it cannot be re-discretised")
        if scheme == self.scheme:
            return self
        return dataclasses.replace(
            self, name=f"{self.family}-{scheme}", system=build(self.field, self.ts), scheme=scheme,
            description=f"{self.description.split(';')[0]}; {scheme} on the same grid",
        )

    def summary(self) -> dict:
        """The numbers that describe the problem (written to results.json)."""
        return {
            "description": self.description,
            "family": self.family,
            "scheme": self.scheme,
            "steps": self.steps,
            "stages": self.stages,
            "batch": self.batch,
            "single_state": self.single_state,
            "parameters": self.parameters,
            "state_dim": self.state_dim,
            "dtype": self.dtype_name,
            "continuous_reference": self.continuous_source or None,
        }


# --- continuous references -----------------------------------------------------------------


def van_loan_gradient(a: np.ndarray, x0: np.ndarray, t_final: float, loss: lagrangian.Loss) -> np.ndarray:
    """`dl/dA` of `l(exp(A T) x0)` for `dx/dt = A x`, from one matrix exponential.

    `x0` is a batch `(B, n)`; `g = dl/dx(T)` (batch-averaged loss) and
    `C = g^T x0 = sum_b g_b x0_b^T`; the answer is the top-right block of
    `expm(T [[A^T, C], [0, A^T]])`.
    """
    a = np.asarray(a, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    n = a.shape[0]
    x_final = x0 @ scipy.linalg.expm(a * t_final).T
    _, g = cast(loss, jnp.float64).grad(jnp.asarray(x_final))
    c = np.asarray(g).T @ x0
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n] = a.T
    block[:n, n:] = c
    block[n:, n:] = a.T
    return scipy.linalg.expm(t_final * block)[:n, n:]


def _t_final(problem: Problem) -> float:
    ts = np.asarray(problem.ts, dtype=np.float64)
    return float(ts[-1] - ts[0])


def linear_closed_form(problem: Problem) -> PyTree:
    """`dl/dA` of `dx/dt = A x` by Van Loan's block exponential."""
    a = np.asarray(problem.theta["A"], dtype=np.float64)
    return {"A": van_loan_gradient(a, problem.x0, _t_final(problem), problem.loss)}


def harmonic_closed_form(problem: Problem) -> PyTree:
    """`dl/domega` of the harmonic oscillator: `A(omega) = [[0, 1], [-omega^2, 0]]`,
    so `dl/domega = (dl/dA)_{21} * (-2 omega)` with `dl/dA` from Van Loan."""
    omega = float(np.asarray(problem.theta["omega"], dtype=np.float64))
    a = np.array([[0.0, 1.0], [-(omega**2), 0.0]])
    grad_a = van_loan_gradient(a, problem.x0, _t_final(problem), problem.loss)
    return {"omega": np.asarray(grad_a[1, 0] * (-2.0 * omega))}


class AdjointODEReference:
    """The continuous gradient from the adjoint ODE, solved by scipy's DOP853 at
    `rtol = atol = 1e-13` (float64): an optimise-then-discretise reference that
    shares no code with the project's integrators or with diffrax.

    Forward: `dx/dt = f(t, x, theta)` from `x_0` to `T` (`final_state`). Backward
    from `T` to `t_0`, with `x` re-integrated alongside (the problems are short and
    well conditioned),

        dx/dt = f,   dp/dt = -(df/dx)^T p,   dg/dt = -(df/dtheta)^T p,
        p(T) = grad l(x(T)),   g(T) = 0,   dl/dtheta = g(t_0).

    Each right-hand side is one jitted evaluation of `f` and `jax.vjp` of it.
    """

    def __init__(self, rtol: float = 1e-13):
        self.rtol = rtol

    def _parts(self, problem: Problem):
        p = problem.astype(jnp.float64)
        ts = np.asarray(p.ts, dtype=np.float64)
        x0 = np.asarray(p.x0, dtype=np.float64)
        flat_theta, unravel = ravel_pytree(p.theta)
        field, shape = p.field, x0.shape

        def f(t, x, theta_flat):
            theta = unravel(theta_flat)
            if p.single_state:
                return field(t, x, theta)
            return jax.vmap(lambda x_: field(t, x_, theta))(x.reshape(shape)).reshape(-1)

        def solve(rhs, t_span, y0):
            solution = scipy.integrate.solve_ivp(
                lambda t, y: np.asarray(rhs(t, jnp.asarray(y), flat_theta)), t_span, y0,
                method="DOP853", rtol=self.rtol, atol=self.rtol,
            )
            if not solution.success:
                raise RuntimeError(f"adjoint ODE reference failed: {solution.message}")
            return solution.y[:, -1]

        x_final = solve(jax.jit(f), (ts[0], ts[-1]), x0.reshape(-1))
        return p, ts, f, solve, x_final, flat_theta, unravel

    def final_state(self, problem: Problem) -> np.ndarray:
        """`x(T)` of every sample, `(B, n)`, solved at the same tolerance."""
        _, _, _, _, x_final, _, _ = self._parts(problem)
        return x_final.reshape(np.shape(problem.x0))

    def __call__(self, problem: Problem) -> PyTree:
        p, ts, f, solve, x_final, flat_theta, unravel = self._parts(problem)
        shape = np.shape(p.x0)
        size = x_final.size

        @jax.jit
        def backward(t, state, theta_flat):
            x, costate = state[:size], state[size : 2 * size]
            dx, pullback = jax.vjp(lambda x_, th: f(t, x_, th), x, theta_flat)
            dp, dg = pullback(costate)
            return jnp.concatenate([dx, -dp, -dg])

        _, p_final = p.loss.grad(jnp.asarray(x_final.reshape(shape)))
        start = np.concatenate([x_final, np.asarray(p_final).reshape(-1), np.zeros(flat_theta.shape[0])])
        state = solve(backward, (ts[-1], ts[0]), start)
        return jax.tree.map(np.asarray, unravel(jnp.asarray(state[2 * size :])))


adjoint_ode_reference = AdjointODEReference()
"""The continuous reference of ODE problems without a closed form."""
ADJOINT_ODE_SOURCE = "adjoint ODE by scipy DOP853, rtol = atol = 1e-13"


# --- the registry --------------------------------------------------------------------------


Builder = Callable[[jax.Array, Any], Problem]
"""`(key, dtype) -> Problem`."""


@dataclass(frozen=True)
class ProblemSpec:
    """A registered problem: its name, one line, and how to build it from a key and a dtype.

    The key is `fold_in(key(seed), crc32(family))`: problems of one family (e.g.
    ``node-d16-euler`` and ``node-d16-rk4``) get the same weights and batch, so
    their gradients differ only by the scheme.
    """

    name: str
    description: str
    build: Builder
    family: str = ""
    is_ode: bool = False
    """Whether the problem is an ODE on a grid (read before building it, to balance worker processes)."""

    def __call__(self, seed: int = 0, dtype=jnp.float64) -> Problem:
        key = jax.random.fold_in(jax.random.key(seed), zlib.crc32((self.family or self.name).encode()))
        problem = self.build(key, dtype)
        if problem.name != self.name:
            problem = dataclasses.replace(problem, name=self.name)
        return problem


PROBLEMS: dict[str, ProblemSpec] = {}
"""Every problem `compare` knows, by name (in registration order; the shipped ones are
registered by `experiments.harness.shipped` when the package is imported)."""


def register_problem(name: str, description: str, build: Builder, family: str = "",
                     is_ode: bool = False) -> ProblemSpec:
    """Add a problem to `PROBLEMS` (a `ValueError` if the name is taken).

    `build(key, dtype) -> Problem`; `family` names the problems that share weights
    (default: the name); `is_ode` says whether `build` gives an ODE on a grid.

    Example:
        >>> from experiments import harness
        >>> def build(key, dtype):
        ...     net = lagrangian.ResNet(dim=4, depth=32)
        ...     return harness.custom_problem("resnet-32", net, jnp.ones((8, 4), dtype), key=key, dtype=dtype)
        >>> spec = harness.register_problem("resnet-32", "tanh ResNet, depth 32, batch 8", build)
        >>> harness.problem_named("resnet-32").system.depth
        32
        >>> del harness.PROBLEMS["resnet-32"]                            # (keep the registry as it was)
    """
    if name in PROBLEMS:
        raise ValueError(f"a problem called {name!r} is already registered")
    spec = ProblemSpec(name, description, build, family or name, is_ode)
    PROBLEMS[name] = spec
    return spec


def problem_named(name: str, seed: int = 0, dtype=jnp.float64) -> Problem:
    """Build the registered problem `name`; a `ValueError` listing the valid names otherwise.

    Example:
        >>> from experiments import harness
        >>> harness.problem_named("mlp").name
        'mlp'
        >>> harness.problem_named("no-such-problem")
        Traceback (most recent call last):
        ValueError: unknown problem 'no-such-problem'; valid problems: ...
    """
    try:
        spec = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; valid problems: {', '.join(PROBLEMS)}") from None
    return spec(seed, dtype)


def custom_problem(
    name: str,
    system: lagrangian.System,
    x0: Array,
    loss: lagrangian.Loss | None = None,
    theta: PyTree | None = None,
    *,
    ts: Array | None = None,
    scheme: str = "rk4",
    key: jax.Array | None = None,
    dtype=None,
    description: str = "",
    continuous: ContinuousReference | None = None,
    continuous_source: str = "",
) -> Problem:
    """A `Problem` from any user-defined `System`.

    - a `LayerMaps` is used as is;
    - a `VectorField` needs a grid `ts` and is discretised with the tableau
      `scheme`; its continuous reference defaults to the adjoint ODE solved by scipy.

    `theta` defaults to `system.init(key)`; `loss` to `0.5 |x_N|^2`; `x0` of
    shape `(n,)` is promoted to a batch of one.

    Example:
        >>> from experiments import harness
        >>> net = lagrangian.ResNet(dim=3, depth=10)
        >>> problem = harness.custom_problem("my-resnet", net, jnp.ones(3))     # theta = net.init(key(0)), l = 0.5 |x_N|^2
        >>> problem.x0.shape                                                    # promoted to a batch of one
        (1, 3)
        >>> field = lagrangian.Pendulum()
        >>> ode_problem = harness.custom_problem("my-pendulum", field, jnp.array([1.0, 0.0]),
        ...                                      ts=integrators.uniform_grid(1.0, 20), scheme="leapfrog")
        >>> ode_problem.system.depth
        20
    """
    x0 = jnp.asarray(x0)
    dtype = dtype or x0.dtype
    x0 = jnp.atleast_2d(x0).astype(dtype)
    key = jax.random.key(0) if key is None else key
    field = None
    if isinstance(system, lagrangian.VectorField):
        if ts is None:
            raise ValueError(f"problem {name!r}: a VectorField needs a time grid ts (e.g. uniform_grid(T, N))")
        field, ts = system, jnp.asarray(ts)
        system = integrators.discretise(field, ts, scheme)
        if continuous is None:
            continuous, continuous_source = adjoint_ode_reference, ADJOINT_ODE_SOURCE
    elif not isinstance(system, lagrangian.LayerMaps):
        raise TypeError(f"problem {name!r}: system must be a LayerMaps or a VectorField; got {type(system).__name__}")
    theta = system.init(key, dtype) if theta is None else cast(theta, dtype)
    loss = lagrangian.SquaredError() if loss is None else cast(loss, dtype)
    family = name.removesuffix(f"-{scheme}") if field is not None else name
    return Problem(
        name=name, description=description or f"user-defined {type(system).__name__}", system=system,
        theta=theta, x0=x0, loss=loss, field=field, ts=ts, scheme=scheme if field is not None else None,
        family=family, continuous=continuous, continuous_source=continuous_source,
    )


def default_problems() -> list[str]:
    """The names `compare` runs with no `--problem`: every registered problem."""
    return list(PROBLEMS)


def select(names: str | Mapping | list[str] | None) -> list[str]:
    """Problem names from a list or a comma-separated string (``all`` or empty: every one)."""
    if names is None:
        return default_problems()
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names or names == ["all"]:
        return default_problems()
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        raise ValueError(f"unknown problem {unknown[0]!r}; valid problems: {', '.join(PROBLEMS)}")
    return names
