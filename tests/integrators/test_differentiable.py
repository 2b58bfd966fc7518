"""`jax.grad` through `integrators.solve` is the least-action sweep.

Reference: `jax.grad` through the plain scan (`integrators.forward`) of the
same discrete map. Tolerance 1e-12 relative L2 in float64 (1e-10 for implicit
tableaux, whose stages are solved to 1e-14), 1e-5 in float32.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import integrators as I
import lagrangian as L
from tests.helpers import rel_l2


class EquinoxField(L.VectorField):
    """A vector field whose parameters are an equinox module: `f(t, x) = mlp(x)`."""

    state_dim: int = 3

    def init(self, key, dtype=jnp.float64):
        mlp = eqx.nn.MLP(self.state_dim, self.state_dim, 8, 1, activation=jnp.tanh, key=key)
        return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, mlp)

    def __call__(self, t, x, theta):
        return theta(x)


CASES = [
    ("rk4", I.StoreAll()),
    ("rk4", I.StoreStages()),
    ("gauss-legendre-2", I.StoreStages()),
    ("rk4", I.Checkpoint(levels=2)),
    ("dopri5", I.Checkpoint.logarithmic()),
    ("gauss-legendre-2", I.StoreAll()),
    ("leapfrog", I.StoreAll()),
    ("reversible-heun", I.Reversible()),
    ("asynchronous-leapfrog", I.Reversible()),
]

FAST = {("rk4", "StoreAll"), ("rk4", "StoreStages"), ("reversible-heun", "Reversible")}
"""The cases of `test_grad_through_solve_is_exact` in the default suite: RK4 with the stored
trajectory and with stored stages, and reversible memory. The others compile a program per
scheme and strategy (3-6 s each on one core, the implicit tableau the most) and are `slow`;
every strategy and every scheme is checked through the sweep by `test_memory.py`,
`test_methods.py` and `test_reversible.py`."""


def _setup(method, seed=0, dtype=jnp.float64, batch=5):
    key = jax.random.key(seed)
    field = L.Pendulum(omega=1.2) if method in I.SPLITTINGS else EquinoxField()
    theta = field.init(key, dtype)
    system = I.discretise(field, I.uniform_grid(1.0, 16, dtype=dtype), method)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (batch, field.state_dim), dtype)
    return system, theta, x0


def _losses(system, memory, saveat):
    def through_solve(theta, x0):
        out = I.solve(system, theta, x0, memory=memory, saveat=saveat)
        return jnp.sum(jnp.sin(out) * jnp.arange(1.0, 1.0 + out.shape[-1]))

    def through_scan(theta, x0):
        zs = I.forward(system, theta, x0)
        states = zs[-1] if saveat is None else jnp.stack([zs[i] for i in saveat])
        out = jax.vmap(system.project)(states) if states.ndim == 2 else jax.vmap(jax.vmap(system.project))(states)
        return jnp.sum(jnp.sin(out) * jnp.arange(1.0, 1.0 + out.shape[-1]))

    return through_solve, through_scan


def _grads(fn, theta, x0):
    return eqx.filter_grad(lambda params: fn(*params))((theta, x0))


IDS = [f"{m}-{type(s).__name__}" for m, s in CASES]


@pytest.mark.parametrize("method,memory", [
    pytest.param(m, s, id=i, marks=() if (m, type(s).__name__) in FAST else pytest.mark.slow)
    for (m, s), i in zip(CASES, IDS)
])
def test_grad_through_solve_is_exact(method, memory):
    """Saved states at 0, 4 (twice) and N: jumps at the start, inside, repeated and at the end."""
    _check_solve(method, memory, (0, 4, 4, 16))


@pytest.mark.parametrize("method,memory", [
    pytest.param(*CASES[0], id=IDS[0]),
    pytest.param(*CASES[1], id=IDS[1], marks=pytest.mark.slow),  # StoreStages: covered with saved states above
])
def test_grad_of_final_state(method, memory):
    _check_solve(method, memory, None)


@pytest.mark.slow
@pytest.mark.parametrize("method,memory", CASES, ids=IDS)
@pytest.mark.parametrize("saveat", [None, (3, 9)])
def test_grad_through_solve_every_case(method, memory, saveat):
    _check_solve(method, memory, saveat)


def _check_solve(method, memory, saveat):
    system, theta, x0 = _setup(method)
    through_solve, through_scan = _losses(system, memory, saveat)
    got = eqx.filter_jit(lambda th, x: _grads(through_solve, th, x))(theta, x0)
    ref = _grads(through_scan, theta, x0)
    implicit = method in I.TABLEAUX and not I.tableau(method).explicit
    tol = 1e-10 if implicit else 1e-12  # implicit stages are Newton-solved to 1e-14
    assert rel_l2(got, ref) <= tol


@pytest.mark.slow
@pytest.mark.parametrize("method", I.scheme_names())
def test_grad_through_solve_for_every_scheme(method):
    """Every scheme `discretise` accepts, store-all memory (and reversible memory for every
    scheme with an inverse step: the reversible schemes, the splittings, the symmetric
    tableaux), saved states inside and at the end."""
    memories = [I.StoreAll(), I.StoreStages(), I.Checkpoint.logarithmic()]
    if method in I.REVERSIBLE or method in I.SPLITTINGS or I.tableau(method).symmetric:
        memories.append(I.Reversible())
    for memory in memories:
        _check_solve(method, memory, (3, 16))


@pytest.mark.slow  # three examples, each compiling both gradients anew (about 15 s on one core);
# the equinox-module field is checked by test_grad_through_solve_is_exact in the default suite
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 6))
def test_random_equinox_fields(seed, batch):
    system, theta, x0 = _setup("rk4", seed, batch=batch)
    through_solve, through_scan = _losses(system, I.StoreAll(), (2, 16))
    assert rel_l2(_grads(through_solve, theta, x0), _grads(through_scan, theta, x0)) <= 1e-12


@pytest.mark.slow  # compiles both gradients in float32 (about 5 s on one core); float32 sweeps are
# checked against jax.grad by test_sweep.py's default case
def test_float32():
    system, theta, x0 = _setup("rk4", dtype=jnp.float32)
    through_solve, through_scan = _losses(system, I.Checkpoint(), (5, 16))
    got = _grads(through_solve, theta, x0)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(eqx.filter(got, eqx.is_inexact_array)))
    assert rel_l2(got, _grads(through_scan, theta, x0)) <= 1e-5


def test_vmap_over_initial_conditions_and_parameters():
    """`jax.vmap` of `jax.grad` through `solve`, each side compiled whole by `jax.jit` (run op by
    op, the four vmapped gradients took twice as long, 20 s on one core)."""
    system, theta, x0 = _setup("rk4", batch=32)

    def one(x):
        return jnp.sum(I.solve(system, theta, x) ** 2)

    def one_ref(x):
        return jnp.sum(I.output(system, theta, x) ** 2)

    assert rel_l2(jax.jit(jax.vmap(jax.grad(one)))(x0), jax.jit(jax.vmap(jax.grad(one_ref)))(x0)) <= 1e-12
    # vmap over a batch of parameter sets
    field = L.NeuralODE(3)
    thetas = jax.vmap(field.init)(jax.random.split(jax.random.key(3), 4))
    ode = I.discretise(field, I.uniform_grid(1.0, 10), "heun")
    xs = jnp.ones((2, 3))
    got = jax.jit(jax.vmap(jax.grad(lambda th: jnp.sum(I.solve(ode, th, xs, memory=I.Checkpoint()) ** 2))))(thetas)
    ref = jax.jit(jax.vmap(jax.grad(lambda th: jnp.sum(I.output(ode, th, xs) ** 2))))(thetas)
    assert rel_l2(got, ref) <= 1e-12


def test_layered_network_under_jax_grad():
    """Both gradients are compiled whole by `jax.jit` (op by op they took twice as long)."""
    mlp = L.MLP((3, 6, 4, 2))
    theta = mlp.init(jax.random.key(0))
    x0 = jax.random.normal(jax.random.key(1), (7, 3))

    def loss(th):
        hidden, out = I.solve(mlp, th, x0, saveat=(1, 3))
        return jnp.sum(out**2) + 0.1 * jnp.sum(hidden**3)

    def loss_ref(th):
        zs = I.forward(mlp, th, x0)
        return jnp.sum(zs[3] ** 2) + 0.1 * jnp.sum(zs[1] ** 3)

    assert rel_l2(jax.jit(jax.grad(loss))(theta), jax.jit(jax.grad(loss_ref))(theta)) <= 1e-12


def test_forward_mode_is_refused_clearly():
    system, theta, x0 = _setup("rk4")
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(lambda x: I.solve(system, theta, x), (x0,), (x0,))


def test_bad_saveat_and_memory():
    system, theta, x0 = _setup("rk4")
    with pytest.raises(ValueError, match=r"saveat indices must lie in 0..16"):
        I.solve(system, theta, x0, saveat=(3, 17))
    for times in ((0.25,), (2.7,), (1, True)):       # times, not layer indices: refused, never rounded
        with pytest.raises(ValueError, match="saveat takes layer indices"):
            I.solve(system, theta, x0, saveat=times)
    with pytest.raises(ValueError, match="no algebraic inverse"):
        I.solve(system, theta, x0, memory=I.Reversible())


class DrivenField(L.VectorField):
    """A non-autonomous field, so the grid enters through `t` as well as `h`:
    `f(t, x) = tanh(W x + b) + sin(omega t) c`."""

    state_dim: int = 3

    def init(self, key, dtype=jnp.float64):
        k1, k2, k3 = jax.random.split(key, 3)
        n = self.state_dim
        return {
            "W": jax.random.normal(k1, (n, n), dtype) / n,
            "b": jax.random.normal(k2, (n,), dtype),
            "c": jax.random.normal(k3, (n,), dtype),
        }

    def __call__(self, t, x, theta):
        return jnp.tanh(theta["W"] @ x + theta["b"]) + jnp.sin(3.0 * t) * theta["c"]


GRID_CASES = [
    pytest.param("euler", I.StoreAll(), marks=pytest.mark.slow),
    ("rk4", I.Checkpoint(levels=2)),
    pytest.param("gauss-legendre-2", I.StoreAll(), marks=pytest.mark.slow),
    pytest.param("yoshida4", I.StoreAll(), marks=pytest.mark.slow),
    # reversible memory on the time grid: 6 s on one core; the grid gradient is checked with RK4 above
    pytest.param("reversible-heun", I.Reversible(), marks=pytest.mark.slow),
    pytest.param("asynchronous-leapfrog", I.Reversible(), marks=pytest.mark.slow),
]
GRID_IDS = ["euler", "rk4-Checkpoint", "gauss-legendre-2", "yoshida4", "reversible-heun-Reversible",
            "asynchronous-leapfrog-Reversible"]


def _grid_setup(method):
    field = L.Pendulum(omega=1.2) if method in I.SPLITTINGS else DrivenField()
    theta = field.init(jax.random.key(3))
    ts = jnp.sort(jax.random.uniform(jax.random.key(4), (13,), minval=0.0, maxval=2.0))
    x0 = jax.random.normal(jax.random.key(5), (4, field.state_dim))
    return field, theta, ts, x0


@pytest.mark.parametrize("method,memory", GRID_CASES, ids=GRID_IDS)
def test_grad_reaches_the_time_grid(method, memory):
    """`dl/dts` (non-uniform grid, saved states inside, batch of 4) against `jax.grad`
    through the plain scan. 1e-12 relative L2 (1e-10 for the implicit tableau,
    whose stages are solved to 1e-14)."""
    field, theta, ts, x0 = _grid_setup(method)

    def through_solve(ts, theta, x0):
        out = I.solve(I.discretise(field, ts, method), theta, x0, memory=memory, saveat=(5, 12))
        return jnp.sum(jnp.sin(out))

    def through_scan(ts, theta, x0):
        system = I.discretise(field, ts, method)
        zs = I.forward(system, theta, x0)
        return jnp.sum(jnp.sin(jnp.stack([jax.vmap(system.project)(zs[i]) for i in (5, 12)])))

    # compiled whole by jax.jit: op by op, the two gradients took twice as long
    got = jax.jit(jax.grad(through_solve, argnums=(0, 1, 2)))(ts, theta, x0)
    want = jax.jit(jax.grad(through_scan, argnums=(0, 1, 2)))(ts, theta, x0)
    tol = 1e-10 if method == "gauss-legendre-2" else 1e-12
    assert rel_l2(got[0], want[0]) <= tol
    assert rel_l2(got, want) <= tol


@pytest.mark.slow  # nine solves and a gradient, compiled op by op (about 4 s on one core); the grid
# gradient is checked against jax.grad through the scan by test_grad_reaches_the_time_grid
def test_time_grid_gradient_against_finite_differences():
    """Independent of autodiff: central differences in four grid times (step 1e-6,
    error O(1e-12) / 1e-6 rounding + O(1e-12) truncation; tolerance 1e-7 relative)."""
    field, theta, ts, x0 = _grid_setup("rk4")

    def loss(ts):
        return jnp.sum(jnp.sin(I.solve(I.discretise(field, ts, "rk4"), theta, x0)))

    got = jax.grad(loss)(ts)
    eps, entries = 1e-6, (0, 5, 11, 12)  # the first time, interior ones and the last
    fd = jnp.array([(loss(ts.at[i].add(eps)) - loss(ts.at[i].add(-eps))) / (2 * eps) for i in entries])
    assert rel_l2(got[jnp.asarray(entries)], fd) <= 1e-7


def test_other_system_arrays_are_constants():
    """A recurrent network's input sequence is data held by the system: a clear error, not a silent zero."""
    net = L.Recurrent(inputs=jnp.ones((4, 2)), dim=3)
    theta = net.init(jax.random.key(0))

    def loss(inputs):
        return jnp.sum(I.solve(eqx.tree_at(lambda n: n.inputs, net, inputs), theta, jnp.ones(3)))

    with pytest.raises(Exception, match="constants"):
        jax.grad(loss)(jnp.ones((4, 2)))


@pytest.mark.slow  # compiles four gradient programs (about 8 s on one core); the same flat memory at
# N = 1e3 and 1e5 is checked in the default suite by test_reversible.py (reversible-rk4)
def test_reversible_memory_inside_jax_grad_is_flat_in_the_steps():
    """XLA's temporary-buffer size of the compiled `jax.grad` program (deterministic, no
    timing): reversible memory is the same at N = 1000 and 100 000 (within 10%), also with
    eight saved states (their cotangents are kept at the saved indices only), while store-all
    grows with N (more than 50x over the 100x range)."""
    from experiments.harness.metrics import compile_lowered

    field = L.NeuralODE(state_dim=8)
    theta = field.init(jax.random.key(0))
    x0 = jnp.ones((4, 8))

    def temp_bytes(steps, memory, saves=None):
        system = I.discretise(field, I.uniform_grid(1.0, steps), "reversible-heun")
        saveat = None if saves is None else tuple(range(0, steps + 1, steps // saves))
        grad = jax.grad(lambda th: jnp.sum(I.solve(system, th, x0, memory=memory, saveat=saveat) ** 2))
        return compile_lowered(jax.jit(grad).lower(theta))[2]

    reversible = [temp_bytes(n, I.Reversible()) for n in (1000, 100_000)]
    saving = [temp_bytes(n, I.Reversible(), saves=8) for n in (1000, 100_000)]
    store_all = [temp_bytes(n, I.StoreAll()) for n in (1000, 100_000)]
    assert reversible[1] <= 1.1 * reversible[0]
    assert saving[1] <= 1.1 * saving[0]
    assert store_all[1] >= 50 * store_all[0]


@pytest.mark.parametrize("scheme", [
    "rk4",
    # the implicit tableau and the reversible scheme compile their own sweeps (4-9 s each on one core)
    pytest.param("gauss-legendre-2", marks=pytest.mark.slow),
    pytest.param("reversible-heun", marks=pytest.mark.slow),
])
def test_a_decreasing_grid_integrates_backward_in_time(scheme, key):
    """`uniform_grid(t_final, steps, t0)` with `t_final < t0` steps backward (`h < 0`): on
    `dx/dt = A x` from `t = 1` to `t = 0` the final state is `exp(-A) x(1)` (scipy) to the
    scheme's order, and the sweep and `solve` give `jax.grad`'s gradients in `theta`, `x0` and
    the time grid."""
    import scipy.linalg

    field = L.Linear(state_dim=3)
    theta = field.init(key)
    ts = I.uniform_grid(0.0, 40, t0=1.0)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and bool(jnp.all(jnp.diff(ts) < 0))
    system = I.discretise(field, ts, scheme)
    x1 = jnp.array([0.5, -1.0, 0.3])
    loss = L.SquaredError(target=0.2)
    exact = scipy.linalg.expm(-np.asarray(theta["A"])) @ np.asarray(x1)
    sweep = I.sweep(system, theta, x1, loss)
    assert np.max(np.abs(np.asarray(sweep.x_final) - exact)) < 1e-4
    reference = jax.grad(lambda th: loss(I.output(system, th, x1)))(theta)  # jax.grad through the steps
    assert rel_l2(sweep.grad, reference) <= 1e-12

    def through(solver):
        def value(th, x, grid):
            return loss(solver(I.discretise(field, grid, scheme), th, x))
        return jax.grad(value, argnums=(0, 1, 2))(theta, x1, ts)

    by_sweep = through(I.solve)
    by_autodiff = through(I.output)
    assert rel_l2(by_sweep, by_autodiff) <= 1e-12
