"""Dual numbers, the course notes' worked example, Jacobian-chain costs.

References: jax.jvp / jax.grad, the closed-form gradient of the worked example, enumeration of all
parenthesisations, multiplications counted while multiplying."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.correspondences import forward_mode as fm


def test_dual_arithmetic_is_the_notes_algebra():
    x, y = fm.Dual(1.5, 0.3), fm.Dual(-0.7, 2.0)
    p = x * y
    assert (p.value, p.tangent) == (1.5 * -0.7, 1.5 * 2.0 + -0.7 * 0.3)     # xy + eps (x y' + y x')
    r = x.reciprocal()
    assert (r.value, r.tangent) == (1 / 1.5, -0.3 / 1.5 ** 2)             # 1/x - eps x'/x^2
    q = (x - 2.0) / y + 1.0 / x
    _, ref = jax.jvp(lambda a, b: (a - 2.0) / b + 1.0 / a, (1.5, -0.7), (0.3, 2.0))
    assert q.tangent == pytest.approx(float(ref), rel=1e-15)
    with pytest.raises(TypeError):
        x ** y


@pytest.mark.parametrize("point", [(2.0, 3.0), (1.5, 0.7), (5.0, 10.0)])
def test_worked_example_dual_forward_and_reverse_agree_with_jax_and_the_closed_form(point):
    x, y = point
    jf = lambda a, b: b * jnp.log(a) + jnp.sqrt(b * jnp.log(a))  # noqa: E731
    closed = fm.worked_example_gradient(x, y)
    for k, tangent in enumerate(((1.0, 0.0), (0.0, 1.0))):
        _, dual = fm.jvp_dual(fm.worked_example, point, tangent)
        _, ref = jax.jvp(jf, point, tangent)
        assert abs(dual - float(ref)) <= 1e-15 * abs(float(ref))
        assert fm.worked_example_forward(x, y, "xy"[k])["f"] == pytest.approx(closed[k], rel=1e-15)
    reverse = fm.worked_example_reverse(x, y)
    assert (reverse["x"], reverse["y"]) == pytest.approx(closed, rel=1e-15)
    # every forward-mode node derivative against jax.jvp of the sub-program up to that node
    subprograms = {"a": lambda a, b: jnp.log(a), "b": lambda a, b: b * jnp.log(a),
                   "c": lambda a, b: jnp.sqrt(b * jnp.log(a)), "f": jf}
    fwd = fm.worked_example_forward(x, y, "x")
    for node, program in subprograms.items():
        assert fwd[node] == pytest.approx(float(jax.jvp(program, point, (1.0, 0.0))[1]), rel=1e-15)


def test_dual_numbers_on_arrays_give_the_mlp_jvp():
    rng = np.random.default_rng(3)
    W1, W2 = rng.normal(size=(6, 4)), rng.normal(size=(2, 6))
    x, v = rng.normal(size=4), rng.normal(size=4)
    _, dual = fm.jvp_dual(lambda h: W2 @ fm.tanh(W1 @ h), (x,), (v,))
    _, ref = jax.jvp(lambda h: W2 @ jnp.tanh(W1 @ h), (jnp.asarray(x),), (jnp.asarray(v),))
    assert np.max(np.abs(dual - np.asarray(ref))) <= 1e-14 * np.max(np.abs(ref))


def test_chain_costs_formulas_counts_and_the_optimum():
    rng = np.random.default_rng(0)
    for _ in range(30):
        widths = [int(w) for w in rng.integers(1, 30, size=int(rng.integers(2, 8)))]
        t = len(widths) - 1
        assert fm.counted_multiplications(fm.forward_order(t), widths) == fm.forward_chain_cost(widths)
        assert fm.counted_multiplications(fm.reverse_order(t), widths) == fm.reverse_chain_cost(widths)
        best = fm.optimal_chain(widths)
        assert best.cost == min(c.cost for c in fm.all_chains(widths))
        assert fm.counted_multiplications(best.order, widths) == best.cost
    # the notes' point: with a scalar output reverse mode is n_0 / n_t times cheaper on a uniform chain
    assert fm.forward_chain_cost([100, 50, 50, 1]) == 100 * (50 * 50 + 50 * 1)
    assert fm.reverse_chain_cost([100, 50, 50, 1]) == 1 * (100 * 50 + 50 * 50)
    assert len(fm.all_chains([2, 3, 4, 5, 6])) == 5  # 4 factors: Catalan(3)
    assert len(fm.all_chains([2, 3, 4, 5, 6, 7])) == 14  # 5 factors: Catalan(4)


def test_all_orders_give_the_same_product():
    rng = np.random.default_rng(1)
    widths = [5, 7, 3, 8, 2]
    mats = {k: rng.normal(size=(widths[k], widths[k - 1])) for k in range(1, len(widths))}
    products = [fm.evaluate_chain(c.order, mats) for c in fm.all_chains(widths)]
    for p in products:
        assert np.allclose(p, products[0], rtol=1e-13, atol=1e-13)
