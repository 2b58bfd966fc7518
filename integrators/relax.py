"""Local and parallel-in-time solvers of the stationarity conditions (docs/design.md 2.6).

The stationarity conditions of `S_d = l(x_N) + sum_k p_{k+1} . (Phi_k(x_k) - x_{k+1})`
form one system over all `(x_k, p_k)` at once. The forward-then-backward sweep
is one way to solve it; these are two others.

Conjugate relaxation (`relax`): every variable moves, in a pseudo-time `tau`,
along the derivative of the action with respect to its conjugate,

    dx_{k+1}/dtau = dS_d/dp_{k+1} = Phi_k(x_k) - x_{k+1},
    dp_k/dtau     = dS_d/dx_k     = (dPhi_k/dx_k)^T p_{k+1} - p_k,   dp_N/dtau = grad l(x_N) - p_N,

integrated by forward Euler with step `eta` (all layers updated at once, each
reading only its neighbours `k - 1`, `k + 1` and `theta_k`). The Jacobian is
block-triangular with eigenvalues `-1`, so the iteration converges
exponentially to the forward pass plus exact backpropagation; the gradient
read at any `tau` is `(dPhi_k/dtheta_k)^T p_{k+1}` at the current `x_k`.

Augmented-Lagrangian saddle flow (`saddle_flow`): the action is the
Lagrangian of "minimise `l(x_N)` subject to `c_k = Phi_k(x_k) - x_{k+1} = 0`"
with multipliers `p_{k+1}`. The Arrow-Hurwicz flow descends in `x` and ascends
in `p`; on its own (`rho = 0`) it rotates around the saddle, since `S_d` is
linear in `p` and, but for the loss, flat in `x`. The augmented Lagrangian
`S_rho = S_d + (rho/2) sum_k |c_k|^2` adds the missing curvature without moving
the stationary point (its gradient vanishes where `c = 0`):

    dx_k/dtau     = -dS_rho/dx_k = mu_{k-1} - (dPhi_k/dx_k)^T mu_k,    mu_k = p_{k+1} + rho c_k,
    dx_N/dtau     = mu_{N-1} - grad l(x_N),
    dp_{k+1}/dtau = +dS_rho/dp_{k+1} = c_k,

integrated by semi-implicit Euler (the `x` step first, then `p` from the new
`x`), each update reading only layers `k - 1`, `k`, `k + 1`. For affine layers
and a convex loss `S_rho` is strongly convex in `x` and the flow converges
exponentially to the exact forward pass and gradient; the slowest mode is the
diffusion of the penalty along the depth, so the pseudo-time grows like `N^2`
(the conjugate relaxation's like `N`). For nonlinear layers it converges
locally, for `rho` large enough.

Both run a fixed number of iterations and then test the state they stop at: its residual
(the largest of the forward and conjugate residuals, `|Phi_k(x_k) - x_{k+1}|` and
`|dS/dx_k|`, at the final fields) against `tol * (1 + |fields|_inf)`. The result carries
`residual` and `converged`; a stop short of `tol` warns (`UnconvergedWarning`), raises, or
is only recorded, as `on_unconverged` says (`integrators.report_unconverged`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from lagrangian import LayerMaps, Loss

from ._convergence import check_on_unconverged, report_unconverged, within_tolerance
from .stationary import forward


def _largest(tree):
    """`max |a|` over every leaf of `tree` (the fields of any layout)."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in jax.tree.leaves(tree)]))


class RelaxationResult(eqx.Module):
    """Result of a relaxation: the fields and gradient at the final `tau`, the
    history (one row per iteration) of the largest forward and conjugate residuals,
    and the largest residual at the final fields with whether it met the tolerance.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=8)
        >>> result = integrators.relax(net, net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(), iterations=300)
        >>> result.forward_residual.shape, bool(result.forward_residual[-1] < 1e-12)    # one row per iteration
        ((300,), True)
        >>> bool(result.converged), bool(result.residual < 1e-10)     # the final fields met the tolerance
        (True, True)
    """

    xs: Array | tuple[Array, ...]
    ps: Array | tuple[Array, ...]
    grad: PyTree
    forward_residual: Array
    conjugate_residual: Array
    grads: PyTree | None = None
    residual: Array | None = None
    converged: Array | None = None


def layers_vmapped(system, fn, theta, *per_layer):
    """Apply `fn(k, theta_k, *args_k)` to every layer at once (`jax.vmap` over `k`)."""
    ks = jnp.arange(system.depth)
    if system.layout == "stacked":
        return jax.vmap(fn)(ks, theta, *per_layer)
    return jax.vmap(fn, in_axes=(0, None) + (0,) * len(per_layer))(ks, theta, *per_layer)


def check_scan_layout(system):
    if system.layout == "unrolled":
        raise ValueError(
            f"{type(system).__name__} has layers of changing shape; relax and newton_in_time need "
            "layers of one shape (layout 'stacked' or 'shared')"
        )


def relaxation_step(system, theta, loss, eta, xs, ps):
    """One Jacobi step of the conjugate relaxation; returns new fields, residuals, gradient.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4)
        >>> theta, loss = net.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> xs, ps = jnp.ones((5, 2)), jnp.zeros((5, 2))                   # x_k = x_0, p_k = 0
        >>> for _ in range(2 * net.depth + 1):                              # 2N + 1 Jacobi steps of eta = 1: exact
        ...     xs, ps, grad, r_x, r_p = integrators.relaxation_step(net, theta, loss, 1.0, xs, ps)
        >>> exact = integrators.sweep(net, theta, jnp.ones(2), loss)
        >>> bool(jnp.allclose(ps, exact.ps, atol=1e-15))
        True
    """
    if system.layout == "unrolled":
        return _relaxation_step_unrolled(system, theta, loss, eta, xs, ps)

    def local(k, theta_k, x_k, p_next):
        phi = system.layer(k, x_k, theta_k) if x_k.ndim == 1 else jax.vmap(lambda x: system.layer(k, x, theta_k))(x_k)
        p_k, g_k = system.conjugate(k, x_k, theta_k, p_next)
        return phi, p_k, g_k

    phi, back, grads = layers_vmapped(system, local, theta, xs[:-1], ps[1:])
    _, grad_l = loss.grad(xs[-1])
    r_forward = phi - xs[1:]
    r_conjugate = jnp.concatenate([back, grad_l[None]]) - ps
    xs = xs.at[1:].add(eta * r_forward)
    ps = ps + eta * r_conjugate
    if system.layout == "shared":
        grads = jax.tree.map(lambda g: jnp.sum(g, axis=0), grads)
    return xs, ps, grads, jnp.max(jnp.abs(r_forward)), jnp.max(jnp.abs(r_conjugate))


def _relaxation_step_unrolled(system, theta, loss, eta, xs, ps):
    """The same step for layers of changing widths (`xs`, `ps` are tuples)."""
    n = system.depth
    phi = [system.apply(k, xs[k], theta[k]) for k in range(n)]
    back, grads = zip(*[system.conjugate(k, xs[k], theta[k], ps[k + 1]) for k in range(n)])
    _, grad_l = loss.grad(xs[-1])
    r_forward = [phi[k] - xs[k + 1] for k in range(n)]
    r_conjugate = [back[k] - ps[k] for k in range(n)] + [grad_l - ps[-1]]
    new_xs = (xs[0], *[xs[k + 1] + eta * r_forward[k] for k in range(n)])
    new_ps = tuple(p + eta * r for p, r in zip(ps, r_conjugate))
    largest = lambda rs: jnp.max(jnp.stack([jnp.max(jnp.abs(r)) for r in rs]))
    return new_xs, new_ps, tuple(grads), largest(r_forward), largest(r_conjugate)


def relax(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    iterations: int = 300,
    eta: float = 0.2,
    record_grads: bool = False,
    *,
    tol: float = 1e-10,
    on_unconverged: str = "warn",
) -> RelaxationResult:
    """Run the conjugate relaxation for `iterations` steps of size `eta`, from
    `x_k = x_0` (layers of one shape) or `x_k = 0` (changing widths) and `p_k = 0`.

    With `eta = 1` the iteration is the Jacobi sweep, exact after `2N + 1` steps;
    smaller `eta` is the forward-Euler discretisation of the continuous relaxation.

    With `record_grads`, the gradient read at every iteration is returned in
    `grads` (leading axis `iterations`), for convergence curves.

    `residual` is the largest forward or conjugate residual at the final fields and
    `converged` whether it is within `tol * (1 + |fields|_inf)`; if not, the relaxation
    warns (`UnconvergedWarning`), raises (`on_unconverged="raise"`) or only records it
    (`"ignore"`, for curves that stop early on purpose).

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> relaxed = integrators.relax(mlp, theta, x0, loss, iterations=300, eta=0.2)
        >>> exact = integrators.sweep(mlp, theta, x0, loss).grad
        >>> bool(all(jnp.allclose(a, b, atol=1e-10) for a, b in zip(jax.tree.leaves(relaxed.grad), jax.tree.leaves(exact))))
        True
    """
    if not 0 < eta <= 1:
        raise ValueError(f"relaxation step eta must lie in (0, 1]; got {eta}")
    check_on_unconverged(on_unconverged)
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    result = _relax(system, theta, x0, loss, int(iterations), float(eta), bool(record_grads), float(tol))
    return report_unconverged("relax", result, result.converged, result.residual, int(iterations), tol,
                              on_unconverged, hint="(raise iterations, or eta towards 1); the gradient read "
                                                   "from these fields is not the exact one")


def _initial_fields(system, theta, x0):
    """`x_k = x_0` (layers of one shape) or `x_k = 0` (changing widths), `p_k = 0`."""
    if system.layout == "unrolled":
        # start every layer at zero with its own width (the forward pass fills them in)
        shapes = [z.shape for z in jax.eval_shape(lambda: forward(system, theta, x0))]
        xs = (x0, *[jnp.zeros(sh, x0.dtype) for sh in shapes[1:]])
        return xs, tuple(jnp.zeros(sh, x0.dtype) for sh in shapes)
    xs = jnp.broadcast_to(x0, (system.depth + 1,) + x0.shape)
    return xs, jnp.zeros_like(xs)


@eqx.filter_jit
def _relax(system, theta, x0, loss, iterations, eta, record_grads, tol):
    xs, ps = _initial_fields(system, theta, x0)

    def body(carry, _):
        xs, ps = carry
        xs, ps, grads, rf, rc = relaxation_step(system, theta, loss, eta, xs, ps)
        return (xs, ps), (rf, rc, grads if record_grads else None)

    (xs, ps), (rf, rc, history) = jax.lax.scan(body, (xs, ps), None, length=iterations)
    # the gradient and the residuals read at the final fields
    _, _, grads, rf_final, rc_final = relaxation_step(system, theta, loss, 0.0, xs, ps)
    residual = jnp.maximum(rf_final, rc_final)
    converged = within_tolerance(residual, jnp.maximum(_largest(xs), _largest(ps)), tol, x0.dtype)
    return RelaxationResult(xs=xs, ps=ps, grad=grads, forward_residual=rf, conjugate_residual=rc, grads=history,
                            residual=residual, converged=converged)


class SaddleFlowResult(eqx.Module):
    """Result of the augmented-Lagrangian saddle flow: fields and gradient at the final
    `tau`, the histories (per iteration, or per recorded block) of the largest
    constraint residual `|c_k|` and of the largest `|dS_rho/dx_k|`, with
    `record_every` the gradient history, and the larger of both residuals at the final
    fields with whether it met the tolerance.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4, activation="identity")
        >>> flow = integrators.saddle_flow(net, net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(),
        ...                                iterations=100, rho=0.0, on_unconverged="ignore")   # plain Arrow-Hurwicz
        >>> flow.forward_residual.shape, bool(flow.converged)           # the constraint residual per iteration
        ((100,), False)
    """

    xs: Array
    ps: Array
    grad: PyTree
    forward_residual: Array
    conjugate_residual: Array
    grads: PyTree | None = None
    residual: Array | None = None
    converged: Array | None = None


def _pullbacks(system, theta, xs, cotangents):
    """`((dPhi_k/dx_k)^T c_k, (dPhi_k/dtheta_k)^T c_k)` for every layer at once: `jax.vjp`
    of each layer map (summed over `k` for shared parameters)."""

    def local(k, theta_k, x_k, c_k):
        return system.conjugate(k, x_k, theta_k, c_k)

    back, grads = layers_vmapped(system, local, theta, xs[:-1], cotangents)
    if system.layout == "shared":
        grads = jax.tree.map(lambda g: jnp.sum(g, axis=0), grads)
    return back, grads


def _layer_maps(system, theta, xs):
    """`Phi_k(x_k)` for every layer at once."""

    def local(k, theta_k, x_k):
        return system.apply(k, x_k, theta_k)

    return layers_vmapped(system, local, theta, xs[:-1])


def _descent(system, theta, loss, rho, xs, ps, c):
    """`-dS_rho/dx_k` for `k = 1..N` at `xs` (`c` the constraint residuals there)."""
    mu = ps[1:] + rho * c
    back, _ = _pullbacks(system, theta, xs, mu)
    _, grad_l = loss.grad(xs[-1])
    return jnp.concatenate([mu[:-1] - back[1:], (mu[-1] - grad_l)[None]])


def saddle_flow_step(system, theta, loss, eta, rho, xs, ps, c):
    """One semi-implicit Euler step of the augmented-Lagrangian saddle flow.

    `c` holds the constraint residuals `c_k = Phi_k(x_k) - x_{k+1}` at `xs`. The
    `x` step reads `c` and `p`; the `p` step reads the residuals at the new `x`,
    which are returned for the next step. Returns `(xs, ps, c, |c|_max, |dS_rho/dx|_max)`.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4, activation="identity")
        >>> theta, loss = net.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> xs, ps = jnp.ones((5, 2)), jnp.zeros((5, 2))
        >>> c = jax.vmap(lambda k, x: net.layer(k, x, net.theta_at(theta, k)))(jnp.arange(4), xs[:-1]) - xs[1:]
        >>> xs, ps, c, c_max, dx_max = integrators.saddle_flow_step(net, theta, loss, 0.4, 0.5, xs, ps, c)
        >>> c.shape
        (4, 2)
    """
    descent = _descent(system, theta, loss, rho, xs, ps, c)
    xs = xs.at[1:].add(eta * descent)
    c = _layer_maps(system, theta, xs) - xs[1:]
    ps = ps.at[1:].add(eta * c)
    return xs, ps, c, jnp.max(jnp.abs(c)), jnp.max(jnp.abs(descent))


def saddle_flow(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    iterations: int = 10_000,
    eta: float = 0.4,
    rho: float = 0.5,
    record_every: int = 0,
    *,
    tol: float = 1e-10,
    on_unconverged: str = "warn",
) -> SaddleFlowResult:
    """Run the augmented-Lagrangian (`rho > 0`) or plain Arrow-Hurwicz (`rho = 0`)
    saddle flow for `iterations` steps of size `eta`, from `x_k = x_0`, `p_k = 0`.

    The defaults (`eta = 0.4`, `rho = 0.5`) were the fastest stable pair on the
    harness's ResNet and linear ODE; `eta >= 0.6` diverged there, and larger
    `rho` converged more slowly (the dual ascent then lags the penalised descent). With
    `record_every = m > 0`, the gradient `(dPhi_k/dtheta_k)^T p_{k+1}` at every
    `m`-th iteration is returned in `grads` (leading axis `iterations // m`).
    `forward_residual` is the largest `|c_k|` and `conjugate_residual` the
    largest `|dS_rho/dx_k|` per iteration; `ps[0] = (dPhi_0/dx_0)^T p_1`. `residual`
    is the larger of both at the final fields and `converged` whether it is within
    `tol * (1 + |fields|_inf)`; if not, the flow warns (`UnconvergedWarning`), raises
    (`on_unconverged="raise"`) or only records it (`"ignore"`: a fixed budget reported as
    such, or the plain Arrow-Hurwicz flow, which does not converge).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4, activation="identity")
        >>> theta, x0, loss = net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> flow = integrators.saddle_flow(net, theta, x0, loss, iterations=4000)      # augmented Lagrangian, rho = 0.5
        >>> exact = integrators.sweep(net, theta, x0, loss).grad["W"]
        >>> bool(jnp.allclose(flow.grad["W"], exact, atol=1e-10))
        True
    """
    check_scan_layout(system)
    if not eta > 0 or not rho >= 0:
        raise ValueError(f"saddle flow needs eta > 0 and rho >= 0; got eta={eta}, rho={rho}")
    if record_every < 0 or (record_every and iterations % record_every):
        raise ValueError(f"record_every must divide iterations; got {record_every} and {iterations}")
    check_on_unconverged(on_unconverged)
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    result = _saddle(system, theta, x0, loss, int(iterations), float(eta), float(rho), int(record_every), float(tol))
    return report_unconverged("saddle_flow", result, result.converged, result.residual, int(iterations), tol,
                              on_unconverged, hint="(raise iterations, or rho > 0 if it is 0); the gradient read "
                                                   "from these fields is not the exact one")


@eqx.filter_jit
def _saddle(system, theta, x0, loss, iterations, eta, rho, record_every, tol):
    xs = jnp.broadcast_to(x0, (system.depth + 1,) + x0.shape)
    ps = jnp.zeros_like(xs)
    c = _layer_maps(system, theta, xs) - xs[1:]

    def step(carry, _):
        xs, ps, c, _, _ = saddle_flow_step(system, theta, loss, eta, rho, *carry)
        return (xs, ps, c), None

    def block(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=max(record_every, 1) - 1)
        xs, ps, c, rf, rc = saddle_flow_step(system, theta, loss, eta, rho, *carry)
        grads = _pullbacks(system, theta, xs, ps[1:])[1] if record_every else None
        return (xs, ps, c), (rf, rc, grads)

    blocks = iterations // record_every if record_every else iterations
    (xs, ps, c), (rf, rc, history) = jax.lax.scan(block, (xs, ps, c), None, length=blocks)
    residual = jnp.maximum(jnp.max(jnp.abs(c)), jnp.max(jnp.abs(_descent(system, theta, loss, rho, xs, ps, c))))
    back, grads = _pullbacks(system, theta, xs, ps[1:])
    ps = ps.at[0].set(back[0])
    converged = within_tolerance(residual, jnp.maximum(_largest(xs), _largest(ps)), tol, x0.dtype)
    return SaddleFlowResult(xs=xs, ps=ps, grad=grads, forward_residual=rf, conjugate_residual=rc, grads=history,
                            residual=residual, converged=converged)


class RelaxedTraining(eqx.Module):
    """Result of `learn_while_relaxing`: final parameters and fields, per update
    the loss of the forward pass at the parameters used and the largest residuals, and
    the largest residual of the fields the last gradient was read from, with whether it
    met the tolerance.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4)
        >>> sgd = lambda th, g, state: (jax.tree.map(lambda a, b: a - 0.1 * b, th, g), state)
        >>> run = integrators.learn_while_relaxing(net, net.init(jax.random.key(0)), jnp.ones((8, 2)),
        ...                                        lagrangian.SquaredError(), sgd, None, updates=10)
        >>> run.losses.shape, run.forward_residual.shape                 # one entry per update
        ((10,), (10,))
    """

    theta: PyTree
    xs: Array | tuple[Array, ...]
    ps: Array | tuple[Array, ...]
    losses: Array
    forward_residual: Array
    conjugate_residual: Array
    residual: Array | None = None
    converged: Array | None = None


def learn_while_relaxing(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    update,
    state,
    updates: int,
    relax_steps: int = 1,
    eta: float = 1.0,
    *,
    tol: float = 1e-10,
    on_unconverged: str = "ignore",
) -> RelaxedTraining:
    """Learning while inferring: the fields `(x_k, p_k)` relax continuously and the
    parameters move during the relaxation, never waiting for it to converge.

    Each of the `updates` rounds takes `relax_steps` conjugate-relaxation steps
    (`relaxation_step`, step `eta`) from where the fields are, then one parameter
    update `(theta, state) = update(theta, g, state)` with the gradient
    `g = (dPhi_k/dtheta_k)^T p_{k+1}` read at the current, unconverged fields (an
    optax update fits: `update = lambda th, g, s: ...`). The fields are never reset.
    `losses[t]` is `l(x_N)` of the forward pass at the parameters of round `t`
    (a diagnostic; the training itself only reads the relaxing fields).

    `residual` is the largest forward or conjugate residual of the fields the last
    gradient was read from (`max(forward_residual[-1], conjugate_residual[-1])`) and
    `converged` whether it is within `tol * (1 + |fields|_inf)`: whether the last update
    used the exact gradient. Unconverged fields are this method, not a failure, so by
    default that is only recorded (`on_unconverged="ignore"`); `"warn"` or `"raise"` ask
    for the exact gradient at the end of training (e.g. `relax_steps >= 2N + 1` at `eta = 1`).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4)
        >>> theta, x0 = net.init(jax.random.key(0)), jnp.ones((8, 2))
        >>> sgd = lambda th, g, state: (jax.tree.map(lambda a, b: a - 0.1 * b, th, g), state)
        >>> run = integrators.learn_while_relaxing(net, theta, x0, lagrangian.SquaredError(), sgd, None,
        ...                                        updates=50, relax_steps=2)
        >>> bool(run.losses[-1] < run.losses[0])                         # it learns while the fields relax
        True
    """
    if int(updates) < 1 or int(relax_steps) < 1:
        raise ValueError(f"updates and relax_steps must be >= 1; got {updates}, {relax_steps}")
    if not 0 < eta <= 1:
        raise ValueError(f"relaxation step eta must lie in (0, 1]; got {eta}")
    check_on_unconverged(on_unconverged)
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    result = _learn(system, theta, x0, loss, update, state, int(updates), int(relax_steps), float(eta), float(tol))
    return report_unconverged("learn_while_relaxing", result, result.converged, result.residual,
                              int(updates) * int(relax_steps), tol, on_unconverged,
                              hint="of relaxation (raise relax_steps); the last update used an inexact gradient")


@eqx.filter_jit
def _learn(system, theta, x0, loss, update, state, updates, relax_steps, eta, tol):
    xs, ps = _initial_fields(system, theta, x0)

    def round_(carry, _):
        xs, ps, theta, state = carry
        value = loss(forward(system, theta, x0)[-1])
        for _ in range(relax_steps):
            xs, ps, grads, rf, rc = relaxation_step(system, theta, loss, eta, xs, ps)
        theta, state = update(theta, grads, state)
        return (xs, ps, theta, state), (value, rf, rc)

    (xs, ps, theta, _), (losses, rf, rc) = jax.lax.scan(round_, (xs, ps, theta, state), None, length=updates)
    residual = jnp.maximum(rf[-1], rc[-1])
    converged = within_tolerance(residual, jnp.maximum(_largest(xs), _largest(ps)), tol, x0.dtype)
    return RelaxedTraining(theta=theta, xs=xs, ps=ps, losses=losses, forward_residual=rf, conjugate_residual=rc,
                           residual=residual, converged=converged)
