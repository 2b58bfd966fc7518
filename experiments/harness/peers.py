"""Independent peers: diffrax's adjoints on the same vector field, torch autograd, and
torchdiffeq.

Neither shares code with the least-action sweep; each reads only numbers from
a `Problem` (the parameters, the batch, the grid, the tableau coefficients).

diffrax (reference methods, ODE problems): the problem's vector field is
solved with `diffrax.diffeqsolve` on exactly the problem's grid
(`StepTo(ts)`), with the solver matching the problem's scheme: `diffrax.Euler`
for Euler, otherwise an `AbstractERK` built from the same Butcher tableau
(`diffrax_solver`). diffrax has no classical RK4 solver, so this is how RK4
is matched. A problem stepped by ``reversible-heun`` is solved by diffrax's own
`diffrax.ReversibleHeun` (Kidger et al. 2021: the same map, which carries
`f(t_{k+1}, y_hat_{k+1})` to the next step and so evaluates `f` once per step).
diffrax 0.7 has no `ReversibleAdjoint`: `RecursiveCheckpointAdjoint` differentiates it.

- `RecursiveCheckpointAdjoint` differentiates the discrete solve (reverse mode
  with treeverse checkpointing): the gradient of the same discrete map, exact
  up to rounding.
- `BacksolveAdjoint` integrates the continuous adjoint ODE
  `da/dt = -(df/dx)^T a`, `dl/dtheta = int a . df/dtheta dt` backward in time
  with the same solver and grid, re-solving `x` backward alongside. Its answer
  is the continuous gradient up to the O(h^p) error of that backward solve and
  of the backward reconstruction of `x`, not the gradient of the discrete map:
  its error against `jax.grad` is reported, not judged, and its error against
  the continuous reference is shown next to the exact methods.

torch (peer): float64 (or float32) torch re-implementations of the MLP, the
ResNet, the recurrent network and the neural ODE `tanh(W x + b)` on the
problem's grid and tableau, differentiated by `torch.autograd.grad` with the
same weights. Skipped, with the reason shown, when torch is not importable
(install the `peers` extra).

torchdiffeq (peer, neural ODEs): `torchdiffeq.odeint(f, x0, [t_0, T], method="rk4")`
on the problem's grid (its `grid_constructor` returns the grid), differentiated by
plain torch autograd through the solver's steps (not `odeint_adjoint`).
torchdiffeq's ``rk4`` is Kutta's 3/8 rule (`rk4_alt_step_func`), so the method
solves the problem re-discretised by ``rk38`` (`TorchDiffEq.target`) and is judged
against `jax.grad` of that map.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import integrators
import lagrangian

from .methods import EXACT, Method, Prepared, unit
from .problems import Problem

# --- diffrax --------------------------------------------------------------------------------


@functools.cache
def diffrax_solver(tab: integrators.ButcherTableau):
    """The diffrax solver stepping exactly like `tab`, or `None` for an implicit tableau.

    Euler is `diffrax.Euler`; any other explicit tableau becomes a
    `diffrax.AbstractERK` subclass holding the same coefficients (zero error
    weights: the steps are fixed, nothing is adapted).
    """
    import diffrax

    if not tab.explicit:
        return None
    if tab.stages == 1:
        return diffrax.Euler()
    a = np.asarray(tab.a, dtype=np.float64)
    s = tab.stages
    coefficients = diffrax.ButcherTableau(
        c=np.asarray(tab.c[1:], dtype=np.float64),
        b_sol=np.asarray(tab.b, dtype=np.float64),
        b_error=np.zeros(s),
        a_lower=tuple(a[i, :i].copy() for i in range(1, s)),
    )
    order = tab.order
    solver = type(
        f"ERK_{tab.name.replace('-', '_')}",
        (diffrax.AbstractERK,),
        {
            "__module__": __name__,
            "__doc__": f"diffrax explicit Runge-Kutta solver with the {tab.name} tableau (order {order}).",
            "tableau": coefficients,
            "interpolation_cls": diffrax.ThirdOrderHermitePolynomialInterpolation.from_k,
            "order": lambda self, terms: order,
        },
    )
    return solver()


def _term(field, single_state: bool):
    """The diffrax term of `field` on one state, or vmapped over a batch `(B, n)`."""
    import diffrax

    if single_state:
        return diffrax.ODETerm(field)
    return diffrax.ODETerm(lambda t, y, args: jax.vmap(lambda x: field(t, x, args))(y))


def _solver_for(problem: Problem):
    """The diffrax solver of `problem`'s scheme: `diffrax.ReversibleHeun` for
    ``reversible-heun``, else `diffrax_solver` of its tableau (`None` if there is none)."""
    import diffrax

    if problem.scheme == "reversible-heun":
        return diffrax.ReversibleHeun()
    return None if problem.tableau is None else diffrax_solver(problem.tableau)


class DiffraxAdjoint(Method):
    """`jax.grad` of a diffrax solve of the problem's field on its grid, differentiated by
    the adjoint `make_adjoint(ts)` (a diffrax `AbstractAdjoint`)."""

    kind = "reference"

    def __init__(self, name, make_adjoint, description, tolerance, backward_vjps: bool):
        self.name, self.make_adjoint, self.description = name, make_adjoint, description
        self.tolerance = tolerance
        self.backward_vjps = backward_vjps

    def applies(self, problem):
        try:
            import diffrax  # noqa: F401
        except ImportError as error:  # diffrax is a runtime dependency; kept for clarity
            return f"diffrax not importable ({error})"
        if not problem.is_ode:
            return "not an ODE problem (no vector field)"
        if problem.tableau is None and problem.scheme != "reversible-heun":
            return (f"scheme {problem.scheme!r} is neither a Runge-Kutta tableau nor reversible-heun; "
                    "no matching diffrax solver")
        if _solver_for(problem) is None:
            return f"tableau {problem.tableau.name!r} is implicit; no matching explicit diffrax solver"
        return None

    def prepare(self, problem):
        import diffrax

        solver = _solver_for(problem)
        ts = jnp.asarray(problem.ts).astype(problem.dtype)
        adjoint = self.make_adjoint(ts)
        term, n = _term(problem.field, problem.single_state), problem.steps

        def fn(theta, x0):
            def loss(th):
                solution = diffrax.diffeqsolve(
                    term, solver, ts[0], ts[-1], None, x0, args=th,
                    stepsize_controller=diffrax.StepTo(ts), saveat=diffrax.SaveAt(t1=True),
                    adjoint=adjoint, max_steps=n,
                )
                return problem.loss(solution.ys[-1]), solution.stats["num_steps"]

            (_, steps), grad = jax.value_and_grad(loss, has_aux=True)(theta)
            return grad, {"steps": steps}

        s = problem.stages
        evaluations = {"unit": "f", "f": n * s if self.backward_vjps else None, "vjp": n * s, "jvp": 0}
        return Prepared(fn, (problem.theta, problem.x0), evaluations)


def _recursive_checkpoint(ts):
    import diffrax

    return diffrax.RecursiveCheckpointAdjoint()


def _backsolve(ts):
    import diffrax

    return diffrax.BacksolveAdjoint(stepsize_controller=diffrax.StepTo(ts[::-1]))


# --- torch ----------------------------------------------------------------------------------


def torch_missing() -> str | None:
    """Why torch cannot be used (`None` when it can)."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        return f"torch not importable ({error}); install the peers extra: pip install -e '.[peers]'"
    return None


def _torch_activation(name):
    import torch

    return {
        "tanh": torch.tanh,
        "relu": torch.relu,
        # log(1 + e^z) without torch's threshold cut-off (softplus returns z for z > 20).
        "softplus": lambda z: torch.logaddexp(z, torch.zeros_like(z)),
        "identity": lambda z: z,
    }[name]


def _torch_loss(loss: lagrangian.Loss, dtype):
    """The batch-averaged loss in torch, or `None` if this loss has no torch twin."""
    import torch

    if isinstance(loss, lagrangian.SquaredError):
        target = None if loss.target is None else torch.tensor(np.asarray(loss.target), dtype=dtype)

        def squared(x):
            d = x if target is None else x - target
            return (0.5 * (d * d).sum(dim=-1)).mean()

        return squared
    if isinstance(loss, lagrangian.CrossEntropy):
        labels = torch.tensor(np.asarray(loss.labels), dtype=torch.long)

        def cross_entropy(x):
            return (torch.logsumexp(x, dim=-1) - x.gather(-1, labels[:, None])[:, 0]).mean()

        return cross_entropy
    return None


def _torch_forward(problem: Problem, dtype):
    """`(theta_tree_of_tensors, inputs) -> x_N` in torch, or a string saying why there is none."""
    import torch

    system = problem.system
    if isinstance(system, lagrangian.MLP):
        act = _torch_activation(system.activation)

        def mlp(theta, x):
            for k, layer in enumerate(theta):
                z = x @ layer["W"].T + layer["b"]
                x = z if (system.readout and k == system.depth - 1) else act(z)
            return x

        return mlp
    if isinstance(system, lagrangian.ResNet):
        act, h = _torch_activation(system.activation), system.h

        def resnet(theta, x):
            for k in range(system.depth):
                x = x + h * act(x @ theta["W"][k].T + theta["b"][k])
            return x

        return resnet
    if isinstance(system, lagrangian.Recurrent):
        u = torch.tensor(np.asarray(system.inputs), dtype=dtype)

        def recurrent(theta, x):
            for k in range(system.depth):
                x = torch.tanh(x @ theta["W"].T + u[k] @ theta["U"].T + theta["b"])
            return x

        return recurrent
    if isinstance(problem.field, lagrangian.NeuralODE) and problem.tableau is not None and problem.tableau.explicit:
        tab = problem.tableau
        ts = np.asarray(problem.ts, dtype=np.float64)
        steps = [float(ts[k + 1] - ts[k]) for k in range(len(ts) - 1)]

        def node(theta, x):
            f = _torch_neural_ode(theta)
            for h in steps:
                slopes = []
                for i in range(tab.stages):
                    y = x
                    for j in range(i):
                        if tab.a[i][j] != 0.0:
                            y = y + (h * tab.a[i][j]) * slopes[j]
                    slopes.append(f(y))
                x = x + h * sum(bi * ki for bi, ki in zip(tab.b, slopes) if bi != 0.0)
            return x

        return node
    return (f"no torch twin of {type(system).__name__}"
            + (f" with field {type(problem.field).__name__}" if problem.field is not None else "")
            + " (torch peers: MLP, ResNet, Recurrent, NeuralODE)")


def _torch_neural_ode(theta):
    """`y -> tanh(y W^T + b)` in torch: `lagrangian.NeuralODE` on one state or a batch."""
    import torch

    def f(y):
        return torch.tanh(y @ theta["W"].T + theta["b"])

    return f


def _torch_dtype(problem: Problem):
    import torch

    return torch.float64 if problem.dtype_name == "float64" else torch.float32


def _torch_gradient(problem: Problem, forward):
    """`fn() -> (dl/dtheta, {})`: fresh leaf tensors holding `theta`, `l = loss(forward(theta, x0))`
    and `torch.autograd.grad` of it, returned as numpy arrays in the structure of `theta`."""
    import torch

    dtype = _torch_dtype(problem)
    loss = _torch_loss(problem.loss, dtype)
    leaves, treedef = jax.tree.flatten(problem.theta)
    values = [np.array(leaf) for leaf in leaves]
    x0 = torch.tensor(np.asarray(problem.x0), dtype=dtype)

    def fn():
        params = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in values]
        value = loss(forward(jax.tree.unflatten(treedef, params), x0))
        grads = torch.autograd.grad(value, params)
        return jax.tree.unflatten(treedef, [g.detach().numpy() for g in grads]), {}

    return fn


class TorchAutograd(Method):
    """torch autograd on an independent torch implementation of the same network and weights."""

    name = "torch"
    kind = "peer"
    description = "torch autograd, independent torch implementation, same weights"
    tolerance = EXACT

    def applies(self, problem):
        missing = torch_missing()
        if missing:
            return missing
        dtype = _torch_dtype(problem)
        program = _torch_forward(problem, dtype)
        if isinstance(program, str):
            return program
        if _torch_loss(problem.loss, dtype) is None:
            return f"no torch twin of the loss {type(problem.loss).__name__}"
        return None

    def prepare(self, problem):
        fn = _torch_gradient(problem, _torch_forward(problem, _torch_dtype(problem)))
        n = problem.steps * problem.stages
        return Prepared(fn, (), {"unit": unit(problem), "f": n, "vjp": n, "jvp": 0}, compiled=False)


def torchdiffeq_missing() -> str | None:
    """Why torchdiffeq cannot be used (`None` when it can)."""
    missing = torch_missing()
    if missing:
        return missing
    try:
        import torchdiffeq  # noqa: F401
    except ImportError as error:
        return f"torchdiffeq not importable ({error}); install the peers extra: pip install -e '.[peers]'"
    return None


class TorchDiffEq(Method):
    """torchdiffeq's fixed-grid ``rk4`` on the same neural ODE, grid and weights, differentiated
    by torch autograd through the solver's steps (`torchdiffeq.odeint`, not `odeint_adjoint`).

    torchdiffeq's ``rk4`` is Kutta's 3/8 rule (`rk4_alt_step_func`), so the method solves the
    problem re-discretised by ``rk38`` (`target`) and its reference is `jax.grad` of that map.
    `odeint` is given the span `[t_0, T]` and a `grid_constructor` returning the problem's
    grid, so it steps exactly the problem's steps and keeps only the two end states.

    Example:
        >>> from experiments import harness
        >>> method = harness.method_named("torchdiffeq")
        >>> method.target(harness.problem_named("node-d2-rk4")).scheme
        'rk38'
    """

    name = "torchdiffeq"
    kind = "peer"
    description = "torchdiffeq odeint, method rk4 (Kutta's 3/8 rule), autograd through the solver, same grid"
    tolerance = EXACT
    scheme = "rk38"

    def applies(self, problem):
        missing = torchdiffeq_missing()
        if missing:
            return missing
        if not problem.is_ode or not isinstance(problem.field, lagrangian.NeuralODE):
            return "the torchdiffeq peer solves neural ODEs tanh(W x + b) only"
        if _torch_loss(problem.loss, _torch_dtype(problem)) is None:
            return f"no torch twin of the loss {type(problem.loss).__name__}"
        return None

    def target(self, problem):
        return problem.rediscretise(self.scheme, lambda field, ts: integrators.discretise(field, ts, self.scheme))

    def prepare(self, problem):
        import torch
        import torchdiffeq

        grid = torch.tensor(np.asarray(problem.ts, dtype=np.float64))
        span = grid[[0, -1]]
        options = {"grid_constructor": lambda func, y0, t: grid}

        def forward(theta, x0):
            field = _torch_neural_ode(theta)
            return torchdiffeq.odeint(lambda t, y: field(y), x0, span, method="rk4", options=options)[-1]

        n = problem.steps * problem.stages
        return Prepared(_torch_gradient(problem, forward), (), {"unit": unit(problem), "f": n, "vjp": n, "jvp": 0},
                        compiled=False)


def default_methods() -> list[Method]:
    """The peers registered by default (diffrax `ReversibleAdjoint` is not in diffrax 0.7)."""
    return [
        DiffraxAdjoint("diffrax-checkpoint", _recursive_checkpoint,
                       "diffrax RecursiveCheckpointAdjoint, same solver and grid", EXACT, backward_vjps=False),
        DiffraxAdjoint("diffrax-backsolve", _backsolve,
                       "diffrax BacksolveAdjoint (continuous adjoint solved backward), same solver and grid",
                       {"float64": None, "float32": None}, backward_vjps=True),
        TorchAutograd(),
        TorchDiffEq(),
    ]
