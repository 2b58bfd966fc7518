"""Clock-free conjugate relaxation: no global clock, stale neighbours, per-layer time constants.

`integrators.relax` moves every node `(x_k, p_k)` in lock-step (a Jacobi step is a
global clock). Here each node `k` keeps its own time (docs/design.md 2.6, the drive of
node `k` reads nodes `k - 1..k + 1` only):

    x_k <- x_k + eta ( Phi_{k-1}(x_{k-1}) - x_k ),                     k = 1..N
    p_k <- p_k + eta ( (dPhi_k/dx_k)^T p_{k+1} - p_k ),                k = 0..N-1
    p_N <- p_N + eta ( grad l(x_N) - p_N ).

Asynchronous (`poisson_relax`): node `k` fires at the events of its own Poisson clock of
rate `1 / tau_k`; pseudo-time is cut into ticks of length `dt`, in each of which node `k`
fires with probability `1 - exp(-dt / tau_k)`, independently of every other node. A firing
node reads its own values as they are and its neighbours' (`x_{k-1}`, `p_{k+1}`) as they
were `d` ticks ago, `d` drawn uniformly from `0..max_lag` at every firing (stale signals
of a finite propagation speed). The fixed point is the same: the Jacobian of the update
map is strictly block-triangular in the order `x_1..x_N, p_N..p_0`, so the asynchronous
iteration with bounded delays converges to it (chaotic relaxation, Chazan & Miranker
1969); with `eta = 1` it is exact once every node has fired after its predecessor in that
order settled, and the error falls in steps.

The augmented-Lagrangian saddle flow without a clock (`poisson_saddle_flow`,
`asynchronous_saddle_step`): the same Poisson clocks and stale reads drive each node's
semi-implicit Euler step of `integrators.saddle_flow`, which also reads nodes `k - 1..k + 1`
only; it reaches the exact gradient where the synchronous flow does (tested on linear and
tanh ResNets of depth 8 and a linear one of depth 32), at about one firing per synchronous step.

Continuous (`continuous_relax`): the relaxation as an ODE in pseudo-time with one time
constant per node,

    tau_k dx_k/dtau = Phi_{k-1}(x_{k-1}) - x_k,      tau_k dp_k/dtau = (dPhi_k/dx_k)^T p_{k+1} - p_k,

integrated by an adaptive diffrax solver (Tsit5 with a PID step-size controller). Its
Jacobian is block-triangular with eigenvalues `-1/tau_k`, so it converges exponentially
whatever the spread of the `tau_k`; the slowest node sets the rate.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from lagrangian import LayerMaps, Loss

from . import _local as local


class ClockFreeResult(eqx.Module):
    """Fields and gradient of a clock-free relaxation at its final pseudo-time, and the
    gradient read at the recorded times (`grads`, leading axis `len(times)`).

    - `xs`, `ps`: nodes `0..N` (leading axis `N + 1`, or tuples when widths change);
    - `grad`: `(dPhi_k/dtheta_k)^T p_{k+1}` read at the final fields;
    - `times`: the recorded pseudo-times; `firings`: per node, how often it updated
      (asynchronous; the number of solver steps for the continuous flow).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4)
        >>> run = integrators.poisson_relax(net, net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError(),
        ...                                 jax.random.key(1), ticks=400, record_every=100)
        >>> run.times.shape, run.firings.shape       # four records; one count per node
        ((4,), (5,))
    """

    xs: Array | tuple[Array, ...]
    ps: Array | tuple[Array, ...]
    grad: PyTree
    grads: PyTree
    times: Array
    firings: Array


def time_constants(depth: int, spread: float, key: PRNGKeyArray | None = None) -> np.ndarray:
    """`tau_k`, `k = 0..depth`, log-uniform between `1` and `spread` (evenly spaced in log and
    shuffled by `key`, so the ratio of the slowest to the fastest node is exactly `spread`).

    Example:
        >>> taus = integrators.time_constants(4, 10.0, jax.random.key(0))
        >>> float(taus.min()), float(taus.max()), taus.shape
        (1.0, 10.0, (5,))
    """
    if not spread >= 1:
        raise ValueError(f"the spread of time constants is tau_max / tau_min >= 1; got {spread}")
    taus = np.geomspace(1.0, spread, depth + 1)
    if key is not None:
        taus = taus[np.asarray(jax.random.permutation(key, depth + 1))]
    return taus


def _grad_read(system, theta, loss, xs, ps):
    """`(dPhi_k/dtheta_k)^T p_{k+1}` at the current fields (what an observer of the nodes reads)."""
    return local.targets(system, theta, loss, local.head(xs), local.head(xs), local.tail(ps), xs[-1])[2]


def _gather(history, lags, offset):
    """Entries `j = 0..N-1` of field entry `j + offset`, each read `lags[j]` ticks ago."""
    if isinstance(history, tuple):
        n = len(history) - 1
        return tuple(history[j + offset][lags[j]] for j in range(n))
    n = history.shape[1] - 1
    return history[lags, jnp.arange(n) + offset]


def _mask(fields, fire):
    """`fire[k]` broadcast against entry `k` of a field."""
    if isinstance(fields, tuple):
        return tuple(jnp.asarray(fire[k], f.dtype) for k, f in enumerate(fields))
    return jnp.reshape(fire, fire.shape + (1,) * (fields.ndim - 1)).astype(fields.dtype)


def asynchronous_step(system: LayerMaps, theta: PyTree, loss: Loss, x_history, p_history, fire, lags,
                      eta: float = 1.0, feedback=None):
    """One tick: every node `k` with `fire[k]` updates from its own current values and its
    neighbours' values `lags[k]` ticks old; returns the new current `(xs, ps)`.

    `x_history`, `p_history`: the fields of the last ticks, newest first (leaf shapes
    `(L, N + 1, ...)`, or a tuple over nodes of `(L, ...)`); `fire`: `(N + 1,)` booleans;
    `lags`: `(N + 1,)` integers in `0..L-1`. `feedback`: optional mismatched couplings
    (`integrators.substrate`).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> theta, loss = net.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> hist = jnp.ones((1, 4, 2))                   # one tick of history: the current fields
        >>> fire = jnp.array([False, True, False, False])  # only node 1 fires
        >>> xs, ps = integrators.asynchronous_step(net, theta, loss, hist, 0 * hist, fire, jnp.zeros(4, int))
        >>> bool(jnp.all(xs[2:] == 1.0)), bool(jnp.all(xs[1] != 1.0))
        (True, True)
    """
    xs = jax.tree.map(lambda h: h[0], x_history)
    ps = jax.tree.map(lambda h: h[0], p_history)
    x_in = _gather(x_history, lags[1:], 0)        # x_{k-1} as node k reads it, k = 1..N
    p_in = _gather(p_history, lags[:-1], 1)       # p_{k+1} as node k reads it, k = 0..N-1
    phi, back, _, p_final = local.targets(system, theta, loss, x_in, local.head(xs), p_in, xs[-1],
                                          feedback=feedback)
    x_target = local.stack_like(xs, xs[0], phi)
    p_target = local.append_like(ps, back, p_final)
    m = _mask(xs, fire)
    new_xs = local.tmap(lambda x, t, f: x + eta * f * (t - x), xs, x_target, m)
    new_ps = local.tmap(lambda p, t, f: p + eta * f * (t - p), ps, p_target, m)
    return new_xs, new_ps


def _push(history, fields):
    """The history with `fields` as its newest entry (the oldest dropped)."""
    if isinstance(history, tuple):
        return tuple(jnp.concatenate([f[None], h[:-1]]) for h, f in zip(history, fields))
    return jnp.concatenate([fields[None], history[:-1]])


def poisson_relax(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    key: PRNGKeyArray,
    ticks: int = 2000,
    dt: float = 0.1,
    taus=None,
    max_lag: int = 0,
    eta: float = 1.0,
    record_every: int = 0,
    feedback=None,
) -> ClockFreeResult:
    """Asynchronous conjugate relaxation: `ticks` ticks of length `dt`, node `k` firing at
    the events of a Poisson clock of rate `1 / taus[k]` (default all `1`) and reading its
    neighbours up to `max_lag` ticks stale; starts from `x_k = x_0` (or `0`), `p_k = 0`.

    With `record_every = m > 0` the gradient read every `m` ticks is returned (`grads`,
    `times`). A node fires on average `ticks dt / tau_k` times.

    Example:
        >>> mlp = lagrangian.MLP((2, 4, 4, 1))
        >>> theta, x0, loss = mlp.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> run = integrators.poisson_relax(mlp, theta, x0, loss, jax.random.key(1), ticks=600, max_lag=3)
        >>> exact = jax.grad(lambda th: loss(integrators.output(mlp, th, x0)))(theta)
        >>> bool(all(jnp.allclose(a, b, rtol=1e-10, atol=0) for a, b in zip(jax.tree.leaves(run.grad), jax.tree.leaves(exact))))
        True
    """
    if not 0 < eta <= 1 or not dt > 0 or max_lag < 0:
        raise ValueError(f"poisson_relax needs 0 < eta <= 1, dt > 0, max_lag >= 0; got {eta}, {dt}, {max_lag}")
    if record_every < 0 or (record_every and ticks % record_every):
        raise ValueError(f"record_every must divide ticks; got {record_every} and {ticks}")
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    local.check_feedback(system, theta, feedback)
    taus = np.ones(system.depth + 1) if taus is None else np.asarray(taus, float)
    if taus.shape != (system.depth + 1,) or not np.all(taus > 0):
        raise ValueError(f"taus must hold depth + 1 = {system.depth + 1} positive time constants; got {taus.shape}")
    probability = jnp.asarray(-np.expm1(-dt / taus))
    return _poisson(system, theta, x0, loss, key, int(ticks), float(dt), probability, int(max_lag), float(eta),
                    int(record_every), feedback)


@eqx.filter_jit
def _poisson(system, theta, x0, loss, key, ticks, dt, probability, max_lag, eta, record_every, feedback):
    xs, ps = local.initial_fields(system, theta, x0)
    history = lambda f: jax.tree.map(lambda a: jnp.broadcast_to(a, (max_lag + 1,) + a.shape), f)
    n_nodes = system.depth + 1

    def tick(carry, key):
        xh, ph, firings = carry
        k_fire, k_lag = jax.random.split(key)
        fire = jax.random.uniform(k_fire, (n_nodes,)) < probability
        lags = jax.random.randint(k_lag, (n_nodes,), 0, max_lag + 1)
        xs, ps = asynchronous_step(system, theta, loss, xh, ph, fire, lags, eta, feedback)
        return (_push(xh, xs), _push(ph, ps), firings + fire), None

    def block(carry, key):
        carry, _ = jax.lax.scan(tick, carry, jax.random.split(key, max(record_every, 1)))
        xh, ph, _ = carry
        grads = _grad_read(system, theta, loss, *[jax.tree.map(lambda h: h[0], f) for f in (xh, ph)]) \
            if record_every else None
        return carry, grads

    blocks = ticks // record_every if record_every else ticks
    carry = (history(xs), history(ps), jnp.zeros(n_nodes, int))
    (xh, ph, firings), grads = jax.lax.scan(block, carry, jax.random.split(key, blocks))
    xs, ps = (jax.tree.map(lambda h: h[0], f) for f in (xh, ph))
    times = dt * max(record_every, 1) * jnp.arange(1, blocks + 1) if record_every else jnp.zeros(0)
    return ClockFreeResult(xs=xs, ps=ps, grad=_grad_read(system, theta, loss, xs, ps), grads=grads,
                           times=times, firings=firings)


def continuous_relax(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    taus=None,
    t_final: float = 200.0,
    records: int = 0,
    rtol: float = 1e-12,
    atol: float = 1e-14,
    max_steps: int = 100_000,
) -> ClockFreeResult:
    """The relaxation in continuous pseudo-time with time constants `taus` (`N + 1`, default
    all `1`), `tau_k d(x_k, p_k)/dtau = drive_k`, integrated by diffrax's Tsit5 with a PID
    controller (`rtol`, `atol`) up to `t_final`, from `x_k = x_0` (or `0`), `p_k = 0`.

    With `records = m > 0` the gradient is read at `m` evenly spaced times (`grads`,
    `times`). `firings` holds the number of accepted solver steps (one entry).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=8)
        >>> theta, x0, loss = net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> taus = integrators.time_constants(8, 5.0, jax.random.key(1))
        >>> run = integrators.continuous_relax(net, theta, x0, loss, taus, t_final=300.0)
        >>> exact = jax.grad(lambda th: loss(integrators.output(net, th, x0)))(theta)
        >>> bool(jnp.allclose(run.grad["W"], exact["W"], rtol=1e-10, atol=0))
        True
    """
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    taus = np.ones(system.depth + 1) if taus is None else np.asarray(taus, float)
    if taus.shape != (system.depth + 1,) or not np.all(taus > 0):
        raise ValueError(f"taus must hold depth + 1 = {system.depth + 1} positive time constants; got {taus.shape}")
    return _continuous(system, theta, x0, loss, jnp.asarray(1.0 / taus), float(t_final), int(records),
                       float(rtol), float(atol), int(max_steps))


def drive(system: LayerMaps, theta: PyTree, loss: Loss, xs, ps, rates=None):
    """`(d xs/dtau, d ps/dtau)` of the relaxation: each node's drive times its rate `1/tau_k`
    (the clamped `x_0` does not move).

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3)
        >>> theta, loss = net.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> dx, dp = integrators.drive(net, theta, loss, jnp.ones((4, 2)), jnp.zeros((4, 2)))
        >>> bool(jnp.all(dx[0] == 0)), bool(jnp.all(dp[:-1] == 0))    # x_0 clamped; p reads p_N first
        (True, True)
    """
    phi, back, _, p_final = local.targets(system, theta, loss, local.head(xs), local.head(xs), local.tail(ps), xs[-1])
    dx = local.stack_like(xs, jnp.zeros_like(xs[0]), local.tmap(lambda t, x: t - x, phi, local.tail(xs)))
    dp = local.tmap(lambda t, p: t - p, local.append_like(ps, back, p_final), ps)
    if rates is not None:
        m = lambda f: local.tmap(lambda a, r: a * r, f, _mask(f, rates))
        dx, dp = m(dx), m(dp)
    return dx, dp


@eqx.filter_jit
def _continuous(system, theta, x0, loss, rates, t_final, records, rtol, atol, max_steps):
    xs, ps = local.initial_fields(system, theta, x0)
    term = diffrax.ODETerm(lambda t, y, args: drive(system, theta, loss, *y, rates))
    times = jnp.linspace(t_final / records, t_final, records) if records else jnp.array([t_final])
    solution = diffrax.diffeqsolve(
        term, diffrax.Tsit5(), 0.0, t_final, 0.1, (xs, ps), saveat=diffrax.SaveAt(ts=times),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps,
    )
    x_saved, p_saved = solution.ys
    at = lambda i: [jax.tree.map(lambda a: a[i], f) for f in (x_saved, p_saved)]
    xs, ps = at(-1)
    grads = jax.vmap(lambda i: _grad_read(system, theta, loss, *at(i)))(jnp.arange(records)) if records else None
    return ClockFreeResult(xs=xs, ps=ps, grad=_grad_read(system, theta, loss, xs, ps), grads=grads,
                           times=times if records else jnp.zeros(0),
                           firings=jnp.atleast_1d(solution.stats["num_accepted_steps"]))


def asynchronous_saddle_step(system: LayerMaps, theta: PyTree, loss: Loss, x_history, p_history, fire, lags,
                             eta: float = 0.4, rho: float = 0.5):
    """One tick of the augmented-Lagrangian saddle flow (`integrators.saddle_flow`) without a clock:
    every node `k >= 1` with `fire[k]` takes its semi-implicit Euler step from its own current
    `(x_k, p_k)` and its neighbours' values `lags[k]` ticks old,

        x_k <- x_k + eta ( mu_{k-1} - (dPhi_k/dx_k)^T mu_k ),      (k = N: mu_{N-1} - grad l(x_N))
        p_k <- p_k + eta ( Phi_{k-1}(x_{k-1}) - x_k ),              with the new x_k,

    `mu_{k-1} = p_k + rho (Phi_{k-1}(x_{k-1}) - x_k)`, `mu_k = p_{k+1} + rho (Phi_k(x_k) - x_{k+1})`.
    Layers of one shape (layout 'stacked' or 'shared'); histories newest first, `(L, N + 1, ...)`.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=3, activation="identity")
        >>> theta, loss = net.init(jax.random.key(0)), lagrangian.SquaredError()
        >>> hist = jnp.ones((1, 4, 2))
        >>> fire = jnp.array([False, False, True, False])      # only node 2 moves
        >>> xs, ps = integrators.asynchronous_saddle_step(net, theta, loss, hist, 0 * hist, fire, jnp.zeros(4, int))
        >>> bool(jnp.all(xs[jnp.array([0, 1, 3])] == 1.0)), bool(jnp.any(xs[2] != 1.0))
        (True, True)
    """
    from .relax import layers_vmapped

    xs, ps = x_history[0], p_history[0]
    n = system.depth
    j = jnp.arange(n)
    x_prev_in = x_history[lags[1:], j]          # x_j as node j + 1 reads it
    p_next_in = p_history[lags[:-1], j + 1]     # p_{j+1} as node j reads it
    x_next_in = x_history[lags[:-1], j + 1]     # x_{j+1} as node j reads it

    def local(k, theta_k, x_at, x_prev, p_in, x_next):
        phi_prev = system.apply(k, x_prev, theta_k)
        phi, pull = jax.vjp(lambda x: system.apply(k, x, theta_k), x_at)
        back = pull(p_in + rho * (phi - x_next))[0]
        return phi_prev, back

    phi_prev, back = layers_vmapped(system, local, theta, xs[:-1], x_prev_in, p_next_in, x_next_in)
    mu_prev = ps[1:] + rho * (phi_prev - xs[1:])                        # nodes 1..N
    _, grad_l = loss.grad(xs[-1])
    descent = mu_prev - jnp.concatenate([back[1:], grad_l[None]])
    m = _mask(xs, fire)[1:]
    new_x = xs[1:] + eta * m * descent
    new_p = ps[1:] + eta * m * (phi_prev - new_x)
    return xs.at[1:].set(new_x), ps.at[1:].set(new_p)


def poisson_saddle_flow(
    system: LayerMaps,
    theta: PyTree,
    x0: Array,
    loss: Loss,
    key: PRNGKeyArray,
    ticks: int = 100_000,
    dt: float = 0.1,
    taus=None,
    max_lag: int = 0,
    eta: float = 0.4,
    rho: float = 0.5,
    record_every: int = 0,
) -> ClockFreeResult:
    """The augmented-Lagrangian saddle flow with Poisson clocks and stale reads
    (`asynchronous_saddle_step`), from `x_k = x_0`, `p_k = 0`; as `poisson_relax` otherwise.
    The gradient read is `(dPhi_k/dtheta_k)^T p_{k+1}`. A node fires about `ticks dt / tau_k`
    times, so it needs about as many firings as the synchronous flow needs steps.

    Example:
        >>> net = lagrangian.ResNet(dim=2, depth=4, activation="identity")
        >>> theta, x0, loss = net.init(jax.random.key(0)), jnp.ones(2), lagrangian.SquaredError()
        >>> run = integrators.poisson_saddle_flow(net, theta, x0, loss, jax.random.key(1), ticks=40_000, max_lag=2)
        >>> exact = jax.grad(lambda th: loss(integrators.output(net, th, x0)))(theta)
        >>> bool(jnp.allclose(run.grad["W"], exact["W"], rtol=1e-8, atol=0))
        True
    """
    if system.layout == "unrolled":
        raise ValueError("the asynchronous saddle flow needs layers of one shape (layout 'stacked' or 'shared')")
    if not eta > 0 or not rho >= 0 or not dt > 0 or max_lag < 0:
        raise ValueError(f"poisson_saddle_flow needs eta > 0, rho >= 0, dt > 0, max_lag >= 0; got {eta}, {rho}, "
                         f"{dt}, {max_lag}")
    if record_every < 0 or (record_every and ticks % record_every):
        raise ValueError(f"record_every must divide ticks; got {record_every} and {ticks}")
    x0 = jnp.asarray(x0)
    system.check(theta, x0)
    taus = np.ones(system.depth + 1) if taus is None else np.asarray(taus, float)
    if taus.shape != (system.depth + 1,) or not np.all(taus > 0):
        raise ValueError(f"taus must hold depth + 1 = {system.depth + 1} positive time constants; got {taus.shape}")
    probability = jnp.asarray(-np.expm1(-dt / taus))
    return _poisson_saddle(system, theta, x0, loss, key, int(ticks), float(dt), probability, int(max_lag),
                           float(eta), float(rho), int(record_every))


@eqx.filter_jit
def _poisson_saddle(system, theta, x0, loss, key, ticks, dt, probability, max_lag, eta, rho, record_every):
    xs = jnp.broadcast_to(x0, (system.depth + 1,) + x0.shape)
    ps = jnp.zeros_like(xs)
    history = lambda f: jnp.broadcast_to(f, (max_lag + 1,) + f.shape)
    n_nodes = system.depth + 1

    def tick(carry, key):
        xh, ph, firings = carry
        k_fire, k_lag = jax.random.split(key)
        fire = (jax.random.uniform(k_fire, (n_nodes,)) < probability).at[0].set(False)
        lags = jax.random.randint(k_lag, (n_nodes,), 0, max_lag + 1)
        xs, ps = asynchronous_saddle_step(system, theta, loss, xh, ph, fire, lags, eta, rho)
        return (_push(xh, xs), _push(ph, ps), firings + fire), None

    def block(carry, key):
        carry, _ = jax.lax.scan(tick, carry, jax.random.split(key, max(record_every, 1)))
        grads = _grad_read(system, theta, loss, carry[0][0], carry[1][0]) if record_every else None
        return carry, grads

    blocks = ticks // record_every if record_every else ticks
    (xh, ph, firings), grads = jax.lax.scan(block, (history(xs), history(ps), jnp.zeros(n_nodes, int)),
                                            jax.random.split(key, blocks))
    xs, ps = xh[0], ph[0]
    times = dt * max(record_every, 1) * jnp.arange(1, blocks + 1) if record_every else jnp.zeros(0)
    return ClockFreeResult(xs=xs, ps=ps, grad=_grad_read(system, theta, loss, xs, ps), grads=grads,
                           times=times, firings=firings)
