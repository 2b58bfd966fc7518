"""Noether charges: automatic charges against closed forms, conservation under fine-step
flows, and the measured breaking by weight decay, friction and finite learning rates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators as I
import lagrangian as L
from lagrangian import noether as N


def _relu_problem(key, widths=(5, 6, 3), batch=24):
    kn, kx, ky = jax.random.split(key, 3)
    net = L.MLP(widths, activation="relu", readout=True)
    x = jax.random.normal(kx, (batch, widths[0]))
    labels = jax.random.randint(ky, (batch,), 0, widths[-1])
    return net, net.init(kn), x, L.CrossEntropy(labels=labels)


def _linear_problem(key, widths=(4, 5, 5, 3), batch=16, softmax=False):
    """A linear network (identity activations) with a squared-error loss, or with a
    softmax cross-entropy readout (`softmax=True`, adding the logit translation symmetry)."""
    kn, kx, ky = jax.random.split(key, 3)
    net = L.MLP(widths, activation="identity")
    x = jax.random.normal(kx, (batch, widths[0]))
    if softmax:
        return net, net.init(kn), x, L.CrossEntropy(labels=jax.random.randint(ky, (batch,), 0, widths[-1]))
    y = jax.random.normal(ky, (batch, widths[-1]))
    return net, net.init(kn), x, L.SquaredError(target=y)


def _basis(m, i, j, symmetric):
    e = np.zeros((m, m))
    e[i, j] += 1.0
    e[j, i] += 1.0 if symmetric else -1.0
    return jnp.asarray(e)


# --- automatic charge = closed form (1e-12) ---------------------------------------------------
# Both sides are O(1) sums of O(10) products of O(1) numbers: rounding is ~1e-15.


def test_rescaling_charge_per_neuron_and_per_layer(key):
    net, theta, _, _ = _relu_problem(key, widths=(5, 7, 4, 3))
    for layer in (0, 1):
        closed = np.asarray(N.rescaling_charges(theta, layer))
        units = closed.shape[0]
        auto = jax.jit(lambda th: jnp.stack([N.gradient_flow_charge(N.rescaling(layer, i), th)
                                             for i in range(units)]))(theta)
        np.testing.assert_allclose(auto, closed, rtol=0, atol=1e-12)
        whole = float(jax.jit(lambda th: N.gradient_flow_charge(N.rescaling(layer), th))(theta))
        w, b = np.asarray(theta[layer]["W"]), np.asarray(theta[layer]["b"])
        w_next = np.asarray(theta[layer + 1]["W"])
        layer_form = 0.5 * ((w**2).sum() + (b**2).sum() - (w_next**2).sum())
        assert abs(whole - layer_form) <= 1e-12


def test_translation_charges(key):
    net, theta, _, _ = _relu_problem(key)
    momentum = jax.tree.map(lambda a: jax.random.normal(jax.random.key(3), a.shape), theta)
    assert abs(float(N.gradient_flow_charge(N.translation(1), theta)) - float(np.sum(theta[1]["b"]))) <= 1e-12
    assert abs(float(N.momentum_charge(N.translation(1), theta, momentum)) - float(np.sum(momentum[1]["b"]))) <= 1e-12


@pytest.mark.slow  # compiles a vmapped charge per layer and kind (about 6 s on one core); automatic
# charges equal their closed forms in the default suite for rescaling and translation
def test_linear_group_charges_are_the_balance_and_angular_momentum_matrices(key):
    net, theta, _, _ = _linear_problem(key)
    momentum = jax.tree.map(lambda a: jax.random.normal(jax.random.key(5), a.shape), theta)
    for layer in (0, 1):
        c = np.asarray(N.balance_matrix(theta, layer))
        w, b, w_next = (np.asarray(theta[layer]["W"]), np.asarray(theta[layer]["b"]),
                        np.asarray(theta[layer + 1]["W"]))
        np.testing.assert_allclose(c, w @ w.T + np.outer(b, b) - w_next.T @ w_next, atol=1e-12)
        m_mat = np.asarray(N.angular_momentum_matrix(theta, momentum, layer))
        m = c.shape[0]
        pairs = [(i, j) for i in range(m) for j in range(i, m)]
        sym = jax.jit(jax.vmap(lambda om: N.gradient_flow_charge(N.linear_group(layer, om), theta)))(
            jnp.stack([_basis(m, i, j, True) for i, j in pairs]))
        rot = jax.jit(jax.vmap(lambda om: N.momentum_charge(N.linear_group(layer, om), theta, momentum)))(
            jnp.stack([_basis(m, i, j, False) for i, j in pairs]))
        for (i, j), s_ij, r_ij in zip(pairs, np.asarray(sym), np.asarray(rot)):
            # Omega = E_ij + E_ji: 1/2 tr(Omega C) = C_ij (i != j) or C_ii (i == j, Omega = 2 E_ii)
            assert abs(s_ij - c[i, j]) <= 1e-12
            # Omega = E_ij - E_ji: tr(Omega M) = M_ji - M_ij (zero generator when i == j)
            assert abs(r_ij - (m_mat[j, i] - m_mat[i, j])) <= 1e-12


def test_generators_are_symmetries_and_of_the_right_type(key):
    net, theta, x, loss = _relu_problem(key)
    risk = lambda th: L.network_risk(net, th, x, loss)  # noqa: E731
    gradient_scale = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(jax.grad(risk)(theta)))))
    for gen in (N.rescaling(0, 2), N.rescaling(0), N.translation(1)):
        assert abs(float(jax.jit(lambda th: N.invariance_defect(risk, gen, th))(theta))) <= 1e-13 * gradient_scale
    d = jax.jit(lambda th: N.generator_defects(N.rescaling(0, 1), th, key))(theta)
    assert float(d["affine"]) <= 1e-14 and float(d["symmetric"]) <= 1e-14 and float(d["antisymmetric"]) > 1e-3
    lin, lin_theta, lx, lloss = _linear_problem(key)
    lin_risk = lambda th: L.network_risk(lin, th, lx, lloss)  # noqa: E731
    rot = N.linear_group(0, _basis(5, 0, 3, False))
    assert abs(float(jax.jit(lambda th: N.invariance_defect(lin_risk, rot, th))(lin_theta))) <= 1e-12
    d = jax.jit(lambda th: N.generator_defects(rot, th, key))(lin_theta)
    assert float(d["antisymmetric"]) <= 1e-14 and float(d["symmetric"]) > 1e-3
    # a tanh network has no rescaling symmetry: the check must see it
    tanh = L.MLP((5, 6, 3), activation="tanh", readout=True)
    tanh_risk = lambda th: L.network_risk(tanh, th, x, loss)  # noqa: E731
    assert abs(float(jax.jit(lambda th: N.invariance_defect(tanh_risk, N.rescaling(0, 2), th))(theta))) > 1e-4


def test_bad_generator_arguments_are_rejected(key):
    _, theta, _, _ = _relu_problem(key)
    with pytest.raises(ValueError, match="layer 1 out of range"):
        N.rescaling(1)(theta)
    with pytest.raises(ValueError, match="neuron 9 out of range"):
        N.rescaling(0, 9)(theta)
    with pytest.raises(ValueError, match="square"):
        N.linear_group(0, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="6 units"):
        N.linear_group(0, jnp.eye(4))(theta)
    with pytest.raises(ValueError, match="tuple of"):
        N.translation(0)({"W": jnp.ones(2)})


# --- conservation under fine-step flows (1e-8 relative) ---------------------------------------


def _flow(field, x0, method, steps, t_final, theta_field=None):
    system = I.discretise(field, I.uniform_grid(t_final, steps), method)
    return I.forward(system, field.init(None) if theta_field is None else theta_field, x0)


def _relative_drift(values, scale):
    values = np.asarray(values)
    return float(np.max(np.abs(values - values[0]), axis=0).max() / scale)


@pytest.mark.slow  # 400 RK4 steps of the gradient flow and the charges along them (about 5 s on one
# core); conservation under the flow is checked in the default suite on the balance matrix
def test_gradient_flow_conserves_rescaling_and_translation_charges(key):
    """A linear network with a softmax readout: per-unit rescaling and the logit
    translation are symmetries, and the field is smooth, so RK4 keeps both charges
    to its O(h^4) accuracy."""
    net, theta, x, loss = _linear_problem(key, softmax=True)
    field, x0 = L.GradientFlow.of(net, theta, x, loss)
    xs = _flow(field, x0, "rk4", 400, 2.0)
    params = jax.vmap(field.unflatten)(xs)
    for layer in (0, 1):
        per_unit = np.asarray(jax.vmap(lambda th: N.rescaling_charges(th, layer))(params))
        norms = 0.5 * float(jnp.sum(theta[layer]["W"] ** 2) + jnp.sum(theta[layer]["b"] ** 2)
                            + jnp.sum(theta[layer + 1]["W"] ** 2))
        # relative to the squared norms the charges are differences of (they can cancel)
        assert _relative_drift(per_unit, norms) <= 1e-8
    bias = np.asarray(jax.vmap(lambda th: N.bias_sum(th, 2))(params))
    assert _relative_drift(bias, float(jnp.sum(jnp.abs(theta[2]["b"])))) <= 1e-8
    # the flow did move: the charge is conserved, not the parameters
    assert float(jnp.max(jnp.abs(xs[-1] - xs[0]))) > 1e-2


@pytest.mark.slow
def test_relu_kinks_limit_the_rescaling_charge_to_first_order(key):
    """ReLU: `grad R` jumps where a pre-activation crosses zero, so RK4's drift of the
    rescaling charge falls only like `h` (a fixed number of kink crossings, each with
    an O(h) local error), while it falls like `h^4` for the smooth linear network."""
    drifts = {}
    for name, (net, theta, x, loss) in {"relu": _relu_problem(key), "linear": _linear_problem(key)}.items():
        field, x0 = L.GradientFlow.of(net, theta, x, loss)
        for steps in (100, 400):
            params = jax.vmap(field.unflatten)(_flow(field, x0, "rk4", steps, 2.0))
            q = np.asarray(jax.vmap(lambda th: N.rescaling_charges(th, 0))(params))
            drifts[name, steps] = float(np.max(np.abs(q - q[0])))
    relu_order = np.log(drifts["relu", 100] / drifts["relu", 400]) / np.log(4)
    assert 0.5 <= relu_order <= 1.6, drifts
    linear_order = np.log(drifts["linear", 100] / drifts["linear", 400]) / np.log(4)
    assert linear_order >= 3.5, drifts


def test_gradient_flow_conserves_the_balance_matrix(key):
    net, theta, x, loss = _linear_problem(key)
    field, x0 = L.GradientFlow.of(net, theta, x, loss)
    xs = _flow(field, x0, "rk4", 400, 1.0)
    params = jax.vmap(field.unflatten)(xs)
    for layer in (0, 1):
        c = np.asarray(jax.vmap(lambda th: N.balance_matrix(th, layer))(params))
        scale = float(jnp.sum(theta[layer]["W"] ** 2) + jnp.sum(theta[layer + 1]["W"] ** 2))
        assert _relative_drift(c.reshape(c.shape[0], -1), scale) <= 1e-8
    assert float(jnp.max(jnp.abs(xs[-1] - xs[0]))) > 1e-2


def test_momentum_flow_conserves_isometry_charges_and_breaks_rescaling(key):
    """Leapfrog heavy ball without friction: `p . delta` of rotations and translations
    is conserved; the rescaling charge is not (its rate is `p . Omega p != 0`)."""
    net, theta, x, loss = _linear_problem(key, softmax=True)
    velocity = jax.tree.map(lambda a: 0.3 * jax.random.normal(jax.random.key(7), a.shape), theta)
    field, z0 = L.HeavyBall.of(net, theta, x, loss, velocity=velocity)
    zs = _flow(field, z0, "leapfrog", 400, 2.0)
    params, momenta = field.split(zs)
    m = np.asarray(jax.vmap(lambda th, p: N.angular_momentum_matrix(th, p, 0))(params, momenta))
    angular = m - np.swapaxes(m, 1, 2)
    scale = float(np.max(np.abs(angular[0])))
    assert scale > 1e-2
    assert _relative_drift(angular.reshape(angular.shape[0], -1), scale) <= 1e-8
    bias_momentum = np.asarray(jax.vmap(lambda p: N.bias_sum(p, 2))(momenta))
    assert _relative_drift(bias_momentum, float(np.sum(np.abs(velocity[2]["b"])))) <= 1e-8
    balance = np.asarray(jax.vmap(lambda th: N.balance_matrix(th, 0))(params))
    assert _relative_drift(balance.reshape(balance.shape[0], -1), float(np.max(np.abs(balance[0])))) > 1e-3


# --- breaking, against closed forms -----------------------------------------------------------


def test_weight_decay_breaks_charges_exponentially(key):
    """`dQ/dt = -2 lambda Q` (rescaling, quadratic) and `-lambda Q` (translation, linear)."""
    lam, t_final, steps = 0.3, 2.0, 400
    net, theta, x, loss = _linear_problem(key, softmax=True)
    field, x0 = L.GradientFlow.of(net, theta, x, loss, weight_decay=lam)
    xs = _flow(field, x0, "rk4", steps, t_final)
    ts = np.linspace(0.0, t_final, steps + 1)
    params = jax.vmap(field.unflatten)(xs)
    q = np.asarray(jax.vmap(lambda th: N.gradient_flow_charge(N.rescaling(0), th))(params))
    np.testing.assert_allclose(q, q[0] * np.exp(-2 * lam * ts), rtol=1e-8)  # RK4, h = 5e-3
    b = np.asarray(jax.vmap(lambda th: N.bias_sum(th, 2))(params))
    np.testing.assert_allclose(b, b[0] * np.exp(-lam * ts), rtol=1e-8)


def test_friction_damps_momentum_charges_by_the_discrete_factor(key):
    """Leapfrog kick `v -> (1 - h gamma/2) v - (h/2) grad R` twice per step: an isometry
    charge `p . Omega q` is multiplied by exactly `(1 - h gamma/2)^2` per step."""
    gamma, t_final, steps = 0.8, 2.0, 200
    h = t_final / steps
    net, theta, x, loss = _linear_problem(key)
    velocity = jax.tree.map(lambda a: 0.3 * jax.random.normal(jax.random.key(8), a.shape), theta)
    field, z0 = L.HeavyBall.of(net, theta, x, loss, friction=gamma, velocity=velocity)
    zs = _flow(field, z0, "leapfrog", steps, t_final)
    params, momenta = field.split(zs)
    rot = N.linear_group(1, _basis(5, 1, 4, False))
    q = np.asarray(jax.vmap(lambda th, p: N.momentum_charge(rot, th, p))(params, momenta))
    k = np.arange(steps + 1)
    np.testing.assert_allclose(q, q[0] * (1 - h * gamma / 2) ** (2 * k), rtol=1e-10)  # rounding over 200 steps
    # and the continuous law exp(-gamma t): (1 - h gamma/2)^2 = exp(-h gamma - h^2 gamma^2/4 + O(h^3)),
    # so the kicks treat friction to first order, a relative error of about T h gamma^2 / 4 at t = T
    decay = np.exp(-gamma * t_final)
    first_order = t_final * h * gamma**2 / 4
    assert 0.9 * first_order <= abs(q[-1] / q[0] - decay) / decay <= 1.1 * first_order


def test_one_gradient_step_breaks_a_quadratic_charge_by_its_closed_form(key):
    """Gradient descent `theta' = theta - eta g`: `Q(theta') - Q(theta) = eta^2/2 g . Omega g`
    since `g . delta(theta) = 0`; `Omega g = delta(g)` for a linear generator."""
    net, theta, x, loss = _relu_problem(key)
    risk = lambda th: L.network_risk(net, th, x, loss)  # noqa: E731
    g = jax.grad(risk)(theta)
    gen = N.rescaling(0)
    for eta in (0.3, 0.1, 0.03):
        stepped = jax.tree.map(lambda a, b: a - eta * b, theta, g)
        change = float(N.gradient_flow_charge(gen, stepped) - N.gradient_flow_charge(gen, theta))
        closed = 0.5 * eta**2 * float(sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g),
                                                                        jax.tree.leaves(gen(g)))))
        assert abs(closed) > 1e-8
        assert abs(change - closed) <= 1e-12 * float(N.charge_scale(gen, theta))
