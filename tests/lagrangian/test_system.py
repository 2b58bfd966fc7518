"""Bad input gets a clear error that names the problem."""

import jax
import jax.numpy as jnp
import pytest

import integrators as I
import lagrangian as L


@pytest.mark.smoke
def test_mismatched_layer_and_parameter_shapes(key):
    system = L.MLP((3, 4, 2))
    theta = list(system.init(key))
    theta[1] = {"W": jnp.zeros((2, 5)), "b": jnp.zeros(2)}
    with pytest.raises(ValueError, match=r"theta\[1\]\['W'\] has shape \(2, 5\), expected \(2, 4\)"):
        I.sweep(system, tuple(theta), jnp.ones(3), L.SquaredError())


def test_wrong_number_of_layers(key):
    system = L.MLP((3, 4, 2))
    theta = system.init(key)[:1]
    with pytest.raises(ValueError, match="wrong number of layers"):
        I.sweep(system, theta, jnp.ones(3), L.SquaredError())


@pytest.mark.smoke
def test_wrong_input_dimension(key):
    system = L.ResNet(dim=3, depth=4)
    with pytest.raises(ValueError, match="x0 has dimension 5 but the system's input dimension is 3"):
        I.sweep(system, system.init(key), jnp.ones((7, 5)), L.SquaredError())
    with pytest.raises(ValueError, match=r"x0 must have shape \(n,\) or \(batch, n\)"):
        I.sweep(system, system.init(key), jnp.ones((2, 2, 3)), L.SquaredError())


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_non_finite_inputs_and_parameters(bad, key):
    system = L.ResNet(dim=3, depth=4)
    theta = system.init(key)
    with pytest.raises(ValueError, match=r"x0 holds 1 non-finite value"):
        I.sweep(system, theta, jnp.array([0.0, bad, 1.0]), L.SquaredError())
    theta_bad = {**theta, "b": theta["b"].at[2, 1].set(bad)}
    with pytest.raises(ValueError, match=r"theta\['b'\] holds 1 non-finite value"):
        I.sweep(system, theta_bad, jnp.ones(3), L.SquaredError())


def test_non_finite_time_grid(key):
    field = L.NeuralODE(2)
    system = I.discretise(field, jnp.array([0.0, 0.5, jnp.nan]))
    with pytest.raises(ValueError, match="time grid holds non-finite"):
        I.sweep(system, field.init(key), jnp.ones(2), L.SquaredError())
    system = I.discretise(field, jnp.array([0.0, 0.5, 0.2]))
    with pytest.raises(ValueError, match="time grid must be monotone, increasing or decreasing"):
        I.sweep(system, field.init(key), jnp.ones(2), L.SquaredError())


@pytest.mark.smoke
def test_bad_constructors():
    with pytest.raises(ValueError, match="unknown activation 'sigmoidal'"):
        L.MLP((2, 3), activation="sigmoidal")
    with pytest.raises(ValueError, match="at least two positive integers"):
        L.MLP((2,))
    with pytest.raises(ValueError, match="Recurrent inputs must have shape"):
        L.Recurrent(inputs=jnp.ones(5), dim=2)


def test_user_defined_system_in_a_few_lines(key):
    """The README's example: a new layered system is one class with `layer` and `init`."""
    from typing import ClassVar

    import equinox as eqx

    class Swish(L.LayerMaps):
        layout: ClassVar[str] = "stacked"
        dim: int = eqx.field(static=True)
        depth: int = eqx.field(static=True)

        @property
        def input_dim(self):
            return self.dim

        def init(self, key, dtype=jnp.float64):
            return {"W": jax.random.normal(key, (self.depth, self.dim, self.dim), dtype) / self.dim}

        def layer(self, k, x, theta_k):
            return jax.nn.swish(theta_k["W"] @ x)

    system = Swish(dim=3, depth=5)
    theta = system.init(key)
    x0 = jnp.ones((4, 3))
    loss = L.SquaredError()
    sol = I.sweep(system, theta, x0, loss)
    ref = jax.grad(lambda th: loss(I.forward(system, th, x0)[-1]))(theta)
    assert float(jnp.linalg.norm(sol.grad["W"] - ref["W"]) / jnp.linalg.norm(ref["W"])) <= 1e-12


@pytest.mark.parametrize("loss,x,message", [
    (L.SquaredError(target=jnp.ones(3)), jnp.ones((4, 2)),
     r"SquaredError: target of shape \(3,\) and final states of shape \(4, 2\) do not match: "
     r"give one target of shape \(2,\) or one per sample, of shape \(4, 2\)"),
    (L.SquaredError(target=jnp.ones((5, 2))), jnp.ones((4, 2)), r"target of shape \(5, 2\) and final states"),
    (L.SquaredError(target=jnp.ones((4, 2))), jnp.ones(2),  # a batch of targets for one state: was silently broadcast
     r"target of shape \(4, 2\) and final states of shape \(2,\) do not match: give one target of shape \(2,\)(\n|$)"),
    (L.CrossEntropy(labels=jnp.array([0, 1, 2])), jnp.ones((4, 3)),
     r"CrossEntropy: label of shape \(3,\) .* give one label of shape \(\) or one per sample, of shape \(4,\)"),
    (L.LinearFunctional(c=jnp.ones((2, 3))), jnp.ones((4, 3)), r"LinearFunctional: c of shape \(2, 3\)"),
])
def test_a_target_of_the_wrong_shape_is_a_value_error_naming_both_shapes(loss, x, message):
    """Not a raw JAX TypeError from the broadcast (or a vmap size error), nor a silent broadcast:
    the loss, its gradient and a sweep that ends in it all say which shapes do not match."""
    for fn in (loss, loss.grad):
        with pytest.raises(ValueError, match=message):
            fn(x)


def test_targets_that_fit_are_accepted(key):
    x = jnp.ones((4, 2))
    for loss in (L.SquaredError(), L.SquaredError(target=0.3), L.SquaredError(target=jnp.ones(2)),
                 L.SquaredError(target=jnp.ones((4, 2))), L.SquaredError(target=jnp.ones((4, 1))),
                 L.LinearFunctional(c=jnp.ones(2)), L.CrossEntropy(labels=jnp.array(1)),
                 L.CrossEntropy(labels=jnp.array([0, 1, 1, 0]))):
        loss(x), loss.grad(x)
        if loss.targets() is None or jnp.ndim(loss.targets()) <= loss.target_ndim:  # one target for all: fits one state too
            loss(x[0])
    system = L.ResNet(dim=2, depth=3)
    with pytest.raises(ValueError, match=r"target of shape \(3,\) and final states of shape \(4, 2\)"):
        I.sweep(system, system.init(key), x, L.SquaredError(target=jnp.ones(3)))
