"""Independent peers: diffrax's adjoints on the same vector field, and torch autograd.

Neither shares code with the least-action sweep; each reads only numbers from
a `Problem` (the parameters, the batch, the grid, the tableau coefficients).

diffrax (reference methods, ODE problems): the problem's vector field is
solved with `diffrax.diffeqsolve` on exactly the problem's grid
(`StepTo(ts)`), with the solver matching the problem's scheme: `diffrax.Euler`
for Euler, otherwise an `AbstractERK` built from the same Butcher tableau
(`diffrax_solver`). diffrax has no classical RK4 solver, so this is how RK4
is matched.

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


def _batched_term(field):
    import diffrax

    return diffrax.ODETerm(lambda t, y, args: jax.vmap(lambda x: field(t, x, args))(y))


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
        if problem.tableau is None:
            return f"scheme {problem.scheme!r} is not a Runge-Kutta tableau; no matching diffrax solver"
        if diffrax_solver(problem.tableau) is None:
            return f"tableau {problem.tableau.name!r} is implicit; no matching explicit diffrax solver"
        return None

    def prepare(self, problem):
        import diffrax

        solver = diffrax_solver(problem.tableau)
        ts = jnp.asarray(problem.ts).astype(problem.dtype)
        adjoint = self.make_adjoint(ts)
        term, n = _batched_term(problem.field), problem.steps

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
            def f(y):
                return torch.tanh(y @ theta["W"].T + theta["b"])

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
        import torch

        dtype = torch.float64 if problem.dtype_name == "float64" else torch.float32
        program = _torch_forward(problem, dtype)
        if isinstance(program, str):
            return program
        if _torch_loss(problem.loss, dtype) is None:
            return f"no torch twin of the loss {type(problem.loss).__name__}"
        return None

    def prepare(self, problem):
        import torch

        dtype = torch.float64 if problem.dtype_name == "float64" else torch.float32
        program, loss = _torch_forward(problem, dtype), _torch_loss(problem.loss, dtype)
        leaves, treedef = jax.tree.flatten(problem.theta)
        values = [np.array(leaf) for leaf in leaves]
        x0 = torch.tensor(np.asarray(problem.x0), dtype=dtype)

        def fn():
            params = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in values]
            value = loss(program(jax.tree.unflatten(treedef, params), x0))
            grads = torch.autograd.grad(value, params)
            return jax.tree.unflatten(treedef, [g.detach().numpy() for g in grads]), {}

        n = problem.steps * problem.stages
        return Prepared(fn, (), {"unit": unit(problem), "f": n, "vjp": n, "jvp": 0}, compiled=False)


def default_methods() -> list[Method]:
    """The peers registered by default (diffrax `ReversibleAdjoint` is not in diffrax 0.7)."""
    return [
        DiffraxAdjoint("diffrax-checkpoint", _recursive_checkpoint,
                       "diffrax RecursiveCheckpointAdjoint, same solver and grid", EXACT, backward_vjps=False),
        DiffraxAdjoint("diffrax-backsolve", _backsolve,
                       "diffrax BacksolveAdjoint (continuous adjoint solved backward), same solver and grid",
                       {"float64": None, "float32": None}, backward_vjps=True),
        TorchAutograd(),
    ]
