"""The conjugate sweep equals backpropagation: least-action gradient vs `jax.grad`.

Tolerance: relative L2 error (all parameter leaves concatenated) <= 1e-12 in
float64 and <= 1e-5 in float32. Both sides perform the same floating-point
operations up to reassociation, so the error is a few ulps times the depth
and the condition of the network; the stated bounds leave room for depth 100.
"""

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings, strategies as st

import integrators as I
import lagrangian as L
from tests.helpers import cast, reference_grad, rel_l2

TOL = {jnp.float64: 1e-12, jnp.float32: 1e-5}


def _systems():
    return {
        "mlp-narrow-wide-narrow": L.MLP((3, 16, 16, 2), activation="tanh"),
        "mlp-funnel-relu": L.MLP((10, 8, 6, 4, 2), activation="relu", readout=True),
        "mlp-expand-softplus-readout": L.MLP((2, 5, 9, 17, 3), activation="softplus", readout=True),
        "resnet-1": L.ResNet(dim=4, depth=1),
        "resnet-10": L.ResNet(dim=4, depth=10),
        "resnet-100": L.ResNet(dim=4, depth=100),
        "recurrent": L.Recurrent(inputs=jnp.sin(jnp.arange(24.0)).reshape(12, 2), dim=5),
        "neural-ode-2": I.discretise(L.NeuralODE(2), I.uniform_grid(1.0, 20)),
        "neural-ode-16": I.discretise(L.NeuralODE(16), I.uniform_grid(1.0, 20)),
        "neural-ode-64": I.discretise(L.NeuralODE(64), I.uniform_grid(1.0, 20)),
        "mlp-field-8": I.discretise(L.MLPField(8, hidden=12), I.uniform_grid(2.0, 25)),
    }


SYSTEMS = _systems()


FLOAT32 = ["mlp-funnel-relu", "neural-ode-16"]
BATCHED = ["mlp-narrow-wide-narrow", "resnet-100", "recurrent"]
CASES = [(name, None, jnp.float64) for name in sorted(SYSTEMS)]
CASES += [(name, 32, jnp.float64) for name in BATCHED]
CASES += [(name, 32, jnp.float32) for name in FLOAT32]


EVERY = [(name, batch, dtype) for name in sorted(SYSTEMS) for batch in (None, 32) for dtype in (jnp.float64, jnp.float32)]
MORE = [case for case in EVERY if case not in CASES]

FAST = {("mlp-funnel-relu", None, jnp.float64), ("resnet-10", None, jnp.float64), ("recurrent", None, jnp.float64),
        ("neural-ode-2", None, jnp.float64), ("neural-ode-16", 32, jnp.float32)}
"""The cases of `test_gradient_equals_backprop` in the default suite: one of each kind of system
(MLP, ResNet, recurrent, neural ODE), and a batch in float32. Each case compiles the sweep and
its reference anew (3-9 s on one core), so the other cases of `CASES` are `slow`."""


def _ids(cases):
    return [f"{n}-{b}-{jnp.dtype(d).name}" for n, b, d in cases]


def _params(cases):
    return [pytest.param(*case, id=i, marks=() if case in FAST else pytest.mark.slow)
            for case, i in zip(cases, _ids(cases))]


@pytest.mark.slow
@pytest.mark.parametrize("name,batch,dtype", MORE, ids=_ids(MORE))
def test_gradient_equals_backprop_every_case(name, batch, dtype, key):
    test_gradient_equals_backprop(name, batch, dtype, key)


@pytest.mark.parametrize("name,batch,dtype", _params(CASES))
def test_gradient_equals_backprop(name, batch, dtype, key):
    system = SYSTEMS[name]
    k_theta, k_x, k_y = jax.random.split(key, 3)
    theta = system.init(k_theta, dtype)
    shape = (system.input_dim,) if batch is None else (batch, system.input_dim)
    x0 = jax.random.normal(k_x, shape, dtype)
    out_dim = I.forward(system, theta, x0)[-1].shape
    loss = L.SquaredError(target=jax.random.normal(k_y, out_dim, dtype))
    solution = I.sweep(system, theta, x0, loss)
    reference = reference_grad(system, theta, x0, loss)
    assert jax.tree.structure(solution.grad) == jax.tree.structure(theta)
    assert all(g.dtype == dtype for g in jax.tree.leaves(solution.grad))
    assert rel_l2(solution.grad, reference) <= TOL[dtype]
    if batch is None:  # p_0 is the gradient with respect to the input
        ref_x0 = jax.grad(lambda x: loss(I.forward(system, theta, x)[-1]))(x0)
        assert rel_l2(solution.grad_x0, ref_x0) <= TOL[dtype]


@pytest.mark.slow  # about 6 s on one core. A loss enters the sweep only as p_N = dl/dx_N; the default
# suite starts exact fields from a cross-entropy p_N in test_relax.py's learning test
def test_cross_entropy_loss_on_classifier(key):
    system = L.MLP((6, 7, 4), readout=True)
    theta = system.init(key)
    x0 = jax.random.normal(key, (32, 6))
    loss = L.CrossEntropy(labels=jnp.arange(32) % 4)
    assert rel_l2(I.sweep(system, theta, x0, loss).grad, reference_grad(system, theta, x0, loss)) <= 1e-12


# The random systems below compile a program per example (3-5 s each on one core): `slow`; the
# default suite checks each kind of system in test_gradient_equals_backprop.
@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(
    widths=st.lists(st.integers(1, 9), min_size=2, max_size=6),
    activation=st.sampled_from(sorted(L.ACTIVATIONS)),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.1, 3.0),
    batch=st.sampled_from([None, 1, 5]),
)
def test_random_mlps(widths, activation, seed, scale, batch):
    system = L.MLP(tuple(widths), activation=activation, scale=scale)
    _check_random(system, seed, batch)


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(
    depth=st.integers(1, 40),
    dim=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.1, 3.0),
    h=st.floats(0.01, 1.0),
    batch=st.sampled_from([None, 3]),
)
def test_random_resnets(depth, dim, seed, scale, h, batch):
    _check_random(L.ResNet(dim=dim, depth=depth, h=h, scale=scale), seed, batch)


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(
    steps=st.integers(1, 30),
    dim=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.1, 3.0),
    t_final=st.floats(0.1, 3.0),
    batch=st.sampled_from([None, 4]),
)
def test_random_neural_odes(steps, dim, seed, scale, t_final, batch):
    system = I.discretise(L.NeuralODE(dim, scale=scale), I.uniform_grid(t_final, steps))
    _check_random(system, seed, batch)


def _check_random(system, seed, batch):
    key = jax.random.key(seed)
    k_theta, k_x = jax.random.split(key)
    theta = system.init(k_theta)
    shape = (system.input_dim,) if batch is None else (batch, system.input_dim)
    x0 = jax.random.normal(k_x, shape)
    loss = L.SquaredError()
    reference = reference_grad(system, theta, x0, loss)
    assert rel_l2(I.sweep(system, theta, x0, loss).grad, reference) <= 1e-12
