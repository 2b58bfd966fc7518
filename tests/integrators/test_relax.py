"""Local relaxation and parallel-in-time Newton reach the same stationary point.

Reference: `jax.grad` through the composed forward map. Relaxation error
<= 1e-10 relative L2 after enough pseudo-time (its convergence is exponential);
Newton-in-time matches the sequential sweep to 1e-12.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from tests.helpers import reference_grad, rel_l2


@pytest.mark.parametrize(
    "system,iterations",
    [
        pytest.param(L.MLP((5, 8, 8)), 300, id="mlp-2"),
        # the deeper networks compile larger relaxations (3-7 s each on one core): `slow`
        pytest.param(L.MLP((5,) + (8,) * 8), 300, id="mlp-8", marks=pytest.mark.slow),
        pytest.param(L.MLP((5,) + (8,) * 32), 1000, id="mlp-32", marks=pytest.mark.slow),
        pytest.param(L.ResNet(dim=4, depth=64), 2000, id="resnet-64", marks=pytest.mark.slow),
    ],
)
def test_relaxation_reaches_the_exact_gradient(system, iterations, key):
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (system.input_dim,))
    loss = L.SquaredError(target=0.3)
    result = I.relax(system, theta, x0, loss, iterations=iterations, eta=0.2, on_unconverged="raise")
    assert rel_l2(result.grad, reference_grad(system, theta, x0, loss)) <= 1e-10
    assert bool(result.converged) and float(result.residual) <= 1e-10
    # the residual history decays: the last residuals are tiny, the first are not
    assert float(result.conjugate_residual[-1]) <= 1e-10 < float(result.conjugate_residual[0])


def test_jacobi_sweep_is_exact_after_2n_plus_1_steps(key):
    system = L.ResNet(dim=3, depth=10)
    theta = system.init(key)
    x0 = jnp.ones((4, 3))
    loss = L.SquaredError()
    result = I.relax(system, theta, x0, loss, iterations=2 * system.depth + 1, eta=1.0)
    assert rel_l2(result.grad, reference_grad(system, theta, x0, loss)) <= 1e-12


def test_relaxation_is_local(key):
    """Perturbing theta_j changes one step's update of layer k only if |j - k| <= 1."""
    system = L.ResNet(dim=3, depth=8)
    theta = system.init(key)
    loss = L.SquaredError(target=0.5)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (9, 3))
    ps = jax.random.normal(jax.random.fold_in(key, 2), (9, 3))
    base_x, base_p, *_ = I.relaxation_step(system, theta, loss, 0.3, xs, ps)
    for j in range(system.depth):
        bumped = jax.tree.map(lambda a: a.at[j].add(0.1), theta)
        new_x, new_p, *_ = I.relaxation_step(system, bumped, loss, 0.3, xs, ps)
        changed = {k for k in range(9) if not (np.array_equal(new_x[k], base_x[k]) and np.array_equal(new_p[k], base_p[k]))}
        assert changed and all(abs(j - k) <= 1 for k in changed), (j, changed)


@pytest.mark.parametrize("steps", [1000, pytest.param(10000, marks=pytest.mark.slow)])  # 10 000: 7 s on one core
def test_newton_in_time_matches_the_sequential_sweep(steps, key):
    """1e-12 relative L2 for the states, the conjugate field and the gradient (without
    the refinement step the scanned conjugate field is 3e-12 off at N = 10 000)."""
    tol = 1e-12
    field = L.NeuralODE(4, scale=1.5)
    theta = field.init(key)
    system = I.discretise(field, I.uniform_grid(2.0, steps), "euler")
    x0 = jnp.array([0.5, -1.0, 0.3, 0.8])
    loss = L.SquaredError(target=0.1)
    sequential = I.sweep(system, theta, x0, loss)
    parallel = I.newton_in_time(system, theta, x0, loss)
    assert 1 <= int(parallel.iterations) <= steps
    assert rel_l2(parallel.xs, sequential.xs) <= 1e-12
    assert rel_l2(parallel.ps, sequential.ps) <= tol
    assert rel_l2(parallel.grad, sequential.grad) <= tol


def test_bad_input(key):
    system = L.ResNet(dim=2, depth=3)
    with pytest.raises(ValueError, match=r"eta must lie in \(0, 1\]"):
        I.relax(system, system.init(key), jnp.ones(2), L.SquaredError(), eta=1.5)
    with pytest.raises(ValueError, match="layers of one shape"):
        mlp = L.MLP((2, 3, 1))
        I.newton_in_time(mlp, mlp.init(key), jnp.ones(2), L.SquaredError())
    with pytest.raises(ValueError, match="takes one state"):
        I.newton_in_time(system, system.init(key), jnp.ones((3, 2)), L.SquaredError())


# --- stopping short of the tolerance ---------------------------------------------------------


def _unconverged_runs(key):
    """`{solver: (call(on_unconverged), converged call)}`: each local solver stopped after too
    few iterations for its tolerance, and the same solver given enough."""
    resnet = L.ResNet(dim=3, depth=6)
    theta, x0, loss = resnet.init(key), jnp.ones((2, 3)), L.SquaredError(target=0.5)
    linear, theta_l, x_l, loss_l = _linear_resnet(4, key)
    field = L.NeuralODE(3, scale=1.5)
    ode = I.discretise(field, I.uniform_grid(2.0, 50), "euler")
    theta_f, x_f = field.init(key), jnp.array([0.5, -1.0, 0.3])
    return {
        "relax": (lambda policy: I.relax(resnet, theta, x0, loss, iterations=5, on_unconverged=policy),
                  lambda: I.relax(resnet, theta, x0, loss, iterations=2 * resnet.depth + 1, eta=1.0)),
        "saddle_flow": (lambda policy: I.saddle_flow(linear, theta_l, x_l, loss_l, iterations=20, on_unconverged=policy),
                        lambda: I.saddle_flow(linear, theta_l, x_l, loss_l, iterations=3000)),
        "newton_in_time": (lambda policy: I.newton_in_time(ode, theta_f, x_f, loss, max_iterations=1,
                                                           on_unconverged=policy),
                           lambda: I.newton_in_time(ode, theta_f, x_f, loss)),
    }


@pytest.mark.parametrize("solver", [
    "relax",
    # each solver compiles its warning, raising and silent programs (2-9 s on one core); the default
    # suite checks the policy on the Jacobi relaxation, which shares `on_unconverged` with the others
    pytest.param("saddle_flow", marks=pytest.mark.slow),
    pytest.param("newton_in_time", marks=pytest.mark.slow),
])
def test_a_solver_stopped_short_of_its_tolerance_warns_raises_or_records(solver, key):
    """Stopped after too few iterations, a solver warns (default) naming its residual, raises when
    asked (`on_unconverged="raise"`), or only records `converged = False` and the residual
    (`"ignore"`, also under jit); given enough iterations it is silent and `converged`."""
    import warnings

    short, enough = _unconverged_runs(key)[solver]
    with pytest.warns(I.UnconvergedWarning, match=rf"{solver} stopped before its tolerance 1e-[0-9]+: residual "
                                                  r"[0-9.e+-]+ after [0-9]+ iterations"):
        warned = short("warn")
        jax.effects_barrier()
    assert not bool(warned.converged) and float(warned.residual) > 1e-8
    with pytest.raises(Exception, match="stopped at its iteration limit before its tolerance"):
        jax.block_until_ready(short("raise").grad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        quiet = jax.jit(lambda: short("ignore"))()
        jax.effects_barrier()
        fine = enough()
        jax.effects_barrier()
    assert not bool(quiet.converged) and float(quiet.residual) == pytest.approx(float(warned.residual), rel=1e-12)
    assert bool(fine.converged) and float(fine.residual) <= 1e-10
    with pytest.raises(ValueError, match="on_unconverged must be one of"):
        short("loud")


def test_one_warning_class_for_every_solver():
    from experiments.learning_rules import inference

    assert inference.UnconvergedWarning is I.UnconvergedWarning and issubclass(I.UnconvergedWarning, RuntimeWarning)
    assert inference.ON_UNCONVERGED == I.ON_UNCONVERGED == ("warn", "raise", "ignore")


def test_float32_solves_at_rounding_count_as_converged(key):
    """A tolerance below the dtype's rounding is raised to 64 eps: float32 Jacobi and Newton in
    time, exact but for rounding, are converged and silent."""
    import warnings

    system = L.ResNet(dim=3, depth=6)
    theta = jax.tree.map(lambda a: a.astype(jnp.float32), system.init(key))
    x0 = jnp.ones(3, jnp.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jacobi = I.relax(system, theta, x0, L.SquaredError(), iterations=2 * system.depth + 1, eta=1.0)
        newton = I.newton_in_time(system, theta, x0, L.SquaredError())
        jax.effects_barrier()
    assert bool(jacobi.converged) and bool(newton.converged)
    assert 0 < I.tolerance_floor(jnp.float32) < 1e-5


# --- the augmented-Lagrangian saddle flow ----------------------------------------------------


def _linear_resnet(depth, key):
    """An affine network `x + 0.1 (W_k x + b_k)`: the saddle flow's convex case."""
    system = L.ResNet(dim=4, depth=depth, h=0.1, activation="identity")
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (3, 4))
    return system, system.init(key), x0, L.SquaredError(target=jnp.ones(4))


@pytest.mark.parametrize("depth,iterations", [(32, 9000), pytest.param(128, 40000, marks=pytest.mark.slow)])
def test_augmented_lagrangian_flow_is_exact_on_linear_networks(depth, iterations, key):
    """Affine layers, convex loss: the penalised flow converges exponentially to the
    exact gradient (measured: 3e-10 after 6000 steps at depth 32, 1e-12 after 30 000 at
    depth 128); 1e-10 relative L2 is the acceptance bound."""
    system, theta, x0, loss = _linear_resnet(depth, key)
    result = I.saddle_flow(system, theta, x0, loss, iterations=iterations, on_unconverged="raise")
    assert rel_l2(result.grad, reference_grad(system, theta, x0, loss)) <= 1e-10
    assert result.forward_residual[-1] <= 1e-10
    assert bool(result.converged) and float(result.residual) <= 1e-10


@pytest.mark.slow  # 9000 steps of the depth-32 flow compiled again without the penalty (about 2 s on one core)
def test_arrow_hurwicz_without_penalty_does_not_converge(key):
    """rho = 0 is the plain saddle flow: S_d is linear in p and flat in x but for the
    loss, so the flow rotates; after the budget that makes the penalised flow exact it is
    still at 1e-2 (measured), far from the gradient."""
    system, theta, x0, loss = _linear_resnet(32, key)
    with pytest.warns(I.UnconvergedWarning, match=r"saddle_flow stopped before its tolerance 1e-10: residual"):
        result = I.saddle_flow(system, theta, x0, loss, iterations=9000, rho=0.0)
        jax.effects_barrier()
    assert rel_l2(result.grad, reference_grad(system, theta, x0, loss)) > 1e-3
    assert not bool(result.converged) and float(result.residual) > 1e-3


@pytest.mark.slow  # about 4 s on one core; the flow's exactness is checked on the linear network above
def test_saddle_flow_on_a_nonlinear_network(key):
    """tanh layers: local convergence; the gradient error after 20 000 steps on a depth-8
    tanh ResNet is below 1e-10 (the error history is monotone over the recorded blocks
    after the first)."""
    system = L.ResNet(dim=4, depth=8, h=0.1)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (3, 4))
    loss = L.SquaredError(target=jnp.ones(4))
    reference = reference_grad(system, theta, x0, loss)
    result = I.saddle_flow(system, theta, x0, loss, iterations=20000, record_every=2000)
    errors = [rel_l2(jax.tree.map(lambda g: g[i], result.grads), reference) for i in range(10)]
    assert errors[-1] <= 1e-10
    assert all(b <= a for a, b in zip(errors[1:], errors[2:]))


def test_saddle_flow_is_local(key):
    """Perturbing theta_j changes one step's update of `(x_{k+1}, p_{k+1})` (the outputs
    of layer k) only if |j - k| <= 1."""
    system = L.ResNet(dim=3, depth=8)
    theta = system.init(key)
    loss = L.SquaredError(target=0.5)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (9, 3))
    ps = jax.random.normal(jax.random.fold_in(key, 2), (9, 3))

    def step(theta):
        c = jax.vmap(lambda k, x: system.apply(k, x, system.theta_at(theta, k)))(jnp.arange(8), xs[:-1]) - xs[1:]
        return I.saddle_flow_step(system, theta, loss, 0.3, 0.5, xs, ps, c)[:2]

    base_x, base_p = step(theta)
    for j in range(system.depth):
        new_x, new_p = step(jax.tree.map(lambda a: a.at[j].add(0.1), theta))
        changed = {k for k in range(8)
                   if not (np.array_equal(new_x[k + 1], base_x[k + 1]) and np.array_equal(new_p[k + 1], base_p[k + 1]))}
        assert changed and all(abs(j - k) <= 1 for k in changed), (j, changed)


def test_saddle_flow_bad_input(key):
    system, theta, x0, loss = _linear_resnet(4, key)
    with pytest.raises(ValueError, match="eta > 0"):
        I.saddle_flow(system, theta, x0, loss, eta=0.0)
    with pytest.raises(ValueError, match="rho >= 0"):
        I.saddle_flow(system, theta, x0, loss, rho=-1.0)
    with pytest.raises(ValueError, match="record_every must divide"):
        I.saddle_flow(system, theta, x0, loss, iterations=10, record_every=3)
    mlp = L.MLP((3, 4, 2))
    with pytest.raises(ValueError, match="changing shape"):
        I.saddle_flow(mlp, mlp.init(key), jnp.ones(3), loss)


# --- learning while inferring ----------------------------------------------------------------


def _sgd(lr):
    return lambda theta, g, state: (jax.tree.map(lambda a, b: a - lr * b, theta, g), state)


def test_learning_while_relaxing_with_converged_fields_is_gradient_descent(key):
    """With 2N + 2 Jacobi steps per update the fields are exact for the current theta
    (the Jacobi sweep is exact after 2N + 1 from any start), so the training is plain
    gradient descent: its loss curve equals one driven by jax.grad to 1e-12 relative."""
    system = L.MLP((5, 8, 8, 3), readout=True)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (6, 5))
    loss = L.CrossEntropy(labels=jnp.array([0, 1, 2, 0, 1, 2]))
    run = I.learn_while_relaxing(system, theta, x0, loss, _sgd(0.5), None, updates=20,
                                 relax_steps=2 * system.depth + 2)
    reference, th = [], theta
    for _ in range(20):
        reference.append(loss(I.forward(system, th, x0)[-1]))
        th = jax.tree.map(lambda a, b: a - 0.5 * b, th, reference_grad(system, th, x0, loss))
    assert rel_l2(run.losses, jnp.stack(reference)) <= 1e-12
    assert rel_l2(run.theta, th) <= 1e-12


def test_learning_while_inferring_one_step_per_update():
    """One relaxation step per update: the parameters move on gradients of fields that
    never converge, yet the loss falls like gradient descent's (measured with this key:
    3.68 -> 0.047 vs 0.036 in 200 updates of lr 0.2), and the curves differ (it is not
    backprop)."""
    key = jax.random.key(0)
    system = L.ResNet(dim=4, depth=6, h=0.5)
    theta = system.init(key)
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (8, 4))
    loss = L.SquaredError(target=jnp.tanh(x0 @ jax.random.normal(jax.random.fold_in(key, 2), (4, 4))))
    run = I.learn_while_relaxing(system, theta, x0, loss, _sgd(0.2), None, updates=200, relax_steps=1, eta=0.5)
    exact = I.learn_while_relaxing(system, theta, x0, loss, _sgd(0.2), None, updates=200, relax_steps=14)
    assert run.losses[-1] < 0.05 * run.losses[0]
    assert run.losses[-1] < 2 * exact.losses[-1]
    assert rel_l2(run.losses, exact.losses) > 1e-6
    # unconverged fields are the method: recorded, not warned about (the default "ignore")
    assert not bool(run.converged) and float(run.residual) == float(jnp.maximum(run.forward_residual[-1],
                                                                             run.conjugate_residual[-1]))
    assert bool(exact.converged)  # 14 >= 2N + 1 Jacobi steps: the last update used the exact gradient
    with pytest.warns(I.UnconvergedWarning, match="learn_while_relaxing stopped before its tolerance"):
        I.learn_while_relaxing(system, theta, x0, loss, _sgd(0.2), None, updates=5, on_unconverged="warn")
        jax.effects_barrier()


def test_learning_while_relaxing_bad_input(key):
    system = L.ResNet(dim=4, depth=2)
    with pytest.raises(ValueError, match="updates and relax_steps"):
        I.learn_while_relaxing(system, system.init(key), jnp.ones(4), L.SquaredError(), _sgd(0.1), None, updates=0)
