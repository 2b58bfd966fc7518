"""The physical learning rules and Hamiltonian echo learning as harness methods.

Each is an estimate of `dl/dtheta` computed by a physical process of the network
(`experiments.learning_rules`): equilibria of an energy, nudged compartments, or
echoes of a time-reversible Hamiltonian flow. Approximate by construction (their
bias is set by a nudge strength) unless said otherwise; each states its tolerance.
They are registered by `experiments.harness.register_defaults` (`physical_rules()`
and `HamiltonianEcho`).
"""

from __future__ import annotations

import jax
from jaxtyping import PyTree

import lagrangian

from .methods import Method, Prepared

def _tree_scale(tree: PyTree, factor: float) -> PyTree:
    return jax.tree.map(lambda g: factor * g, tree)


class PhysicalRule(Method):
    """A physical learning rule on a layered network (`experiments.learning_rules`): an estimate
    of `dl/dtheta` from the equilibria of an energy or from nudged compartments, approximate
    by construction (its bias is set by its nudge strength) except the fixed-prediction
    predictive coding. Registered on MLPs only (layer maps of changing widths, `lagrangian.MLP`)."""

    kind = "project"

    def applies(self, problem):
        if not isinstance(problem.system, lagrangian.MLP):
            return f"written for lagrangian.MLP; got {type(problem.system).__name__}"
        return None


class EquilibriumPropagation(PhysicalRule):
    """Equilibrium propagation on the layered energy `F_beta = E + beta l(x_N)`: one-sided
    `(dF/dtheta(x^beta) - dF/dtheta(x^0)) / beta` (bias `O(beta)`) or symmetric
    `(dF/dtheta(x^beta) - dF/dtheta(x^-beta)) / (2 beta)` (bias `O(beta^2)`); equilibria by the
    Hessian-free alternating sweeps to `1e-13` (`inference.sweeps`, a contraction at small beta;
    the experiment uses Newton). Tolerances: the bias at the default nudge on the shipped MLPs
    is at most 1.2e-5 (one-sided, beta = 1e-6) and 2.2e-6 (symmetric, beta = 1e-4); judged at
    1e-4 and 1e-5."""

    def __init__(self, beta: float, symmetric: bool):
        from experiments.learning_rules import equilibrium_propagation as ep

        self.ep, self.beta, self.symmetric = ep, float(beta), bool(symmetric)
        self.name = "ep-symmetric" if symmetric else "ep-one-sided"
        self.tolerance = {"float64": 1e-5 if symmetric else 1e-4, "float32": None}
        kind = "symmetric" if symmetric else "one-sided"
        self.description = f"equilibrium propagation, {kind}, beta = {self.beta:g}, equilibria by sweeps"

    def nudge(self, problem) -> float:
        """The signed nudge strength (a test-only copy flips it)."""
        return self.beta

    def prepare(self, problem):
        beta = self.nudge(problem)

        def fn(theta, x0):
            est = self.ep.equilibrium_propagation(problem.system, theta, x0, problem.loss, beta, self.symmetric,
                                                  solver="sweeps")
            grad = _tree_scale(est.grad, self.beta / beta)
            return grad, {"sweeps": est.iterations, "final_state_change": est.residual}

        return Prepared(fn, (problem.theta, problem.x0), {"unit": "layer", "f": None, "vjp": None, "jvp": None})


class PredictiveCoding(PhysicalRule):
    """Predictive coding with the output clamped to the squared-error target and the hidden
    states relaxed to equilibrium (Newton): output precision `gamma = 1` is Whittington &
    Bogacz's clamped network, solved by Newton (a different objective, the gradient of the
    clamped equilibrium energy: its error against `dl/dtheta` stays O(1), 0.95 on mlp-deep,
    so it is reported, not judged), `gamma << 1` the weak-output-precision variant by the
    Hessian-free sweeps (bias `O(gamma)`, 1.2e-5 at gamma = 1e-6 on mlp-deep; judged at 1e-4)."""

    def __init__(self, precision: float):
        from experiments.learning_rules import predictive_coding as pc

        self.pc, self.precision = pc, float(precision)
        strong = self.precision == 1.0
        self.name = "pc-clamped" if strong else "pc-weak-precision"
        self.solver = "newton" if strong else "sweeps"
        self.tolerance = {"float64": None if strong else 1e-4, "float32": None}
        self.description = (f"predictive coding, output clamped to the target, output precision {self.precision:g}, "
                            f"{self.solver} inference")

    def applies(self, problem):
        why = super().applies(problem)
        if why is None and not isinstance(problem.loss, lagrangian.SquaredError):
            return f"needs a squared-error target to clamp to; loss is {type(problem.loss).__name__}"
        return why

    def loss_for(self, problem) -> lagrangian.Loss:
        """The loss whose target the output is clamped to (a test-only copy reflects it)."""
        return problem.loss

    def prepare(self, problem):
        loss = self.loss_for(problem)

        def fn(theta, x0):
            est = self.pc.clamped(problem.system, theta, x0, loss, self.precision, solver=self.solver)
            return est.grad, {"iterations": est.iterations, "residual": est.residual}

        return Prepared(fn, (problem.theta, problem.x0), {"unit": "layer", "f": None, "vjp": None, "jvp": None})


class FixedPredictionPC(PhysicalRule):
    """Predictive coding under the fixed-prediction assumption: predictions held at the forward
    pass, output error `-grad l`, value nodes relaxed by `N - 1` Jacobi steps; equals backprop
    exactly (tolerance `EXACT`)."""

    name = "pc-fixed-prediction"
    description = "predictive coding, fixed predictions, N - 1 Jacobi inference steps (exact)"

    def __init__(self):
        from experiments.learning_rules import predictive_coding as pc

        self.pc = pc

    def nudge(self, problem) -> float:
        """The output error is `-nudge * grad l` (a test-only copy flips the sign)."""
        return 1.0

    def prepare(self, problem):
        nudge, n = self.nudge(problem), problem.steps

        def fn(theta, x0):
            return _tree_scale(self.pc.fixed_prediction(problem.system, theta, x0, problem.loss, nudge=nudge),
                               nudge), {}

        return Prepared(fn, (problem.theta, problem.x0),
                        {"unit": "layer", "f": 2 * n, "vjp": (n - 1) ** 2 + n, "jvp": 0})


class DualPropagation(PhysicalRule):
    """Dual propagation (Hoier, Staudt & Zach 2023) or its adjoint variant DP-top (Hoier & Zach
    2024): dyads nudged by `+-beta`, one downward inference sweep, contrastive Hebbian update.
    DP at alpha = 1/2 has bias `O(beta^2)` (1.9e-7 at beta = 1e-3 on mlp-deep; judged at 1e-5);
    DP-top at the asymmetric alpha = 0 `O(beta)` (4e-7 at beta = 1e-6; judged at 1e-4)."""

    def __init__(self, variant: str, beta: float, alpha: float, passes: int = 1):
        from experiments.learning_rules import dual_propagation as dp

        self.dp, self.variant, self.beta, self.alpha, self.passes = dp, variant, float(beta), float(alpha), passes
        self.name = "dual-prop" if variant == "dp" else "dual-prop-top"
        self.tolerance = {"float64": 1e-5 if alpha == 0.5 else 1e-4, "float32": None}
        self.description = (f"dual propagation ({'DP' if variant == 'dp' else 'DP-top'}), alpha = {alpha:g}, "
                            f"beta = {beta:g}, {passes} inference pass(es)")

    def nudge(self, problem) -> float:
        """The signed nudge strength (a test-only copy flips it)."""
        return self.beta

    def prepare(self, problem):
        beta, n = self.nudge(problem), problem.steps
        updates = len(self.dp.schedule(n, self.passes))

        def fn(theta, x0):
            grad = self.dp.dual_propagation(problem.system, theta, x0, problem.loss, beta, self.alpha, self.passes,
                                            self.variant)
            return _tree_scale(grad, beta / self.beta), {}

        return Prepared(fn, (problem.theta, problem.x0),
                        {"unit": "layer", "f": n + 2 * updates, "vjp": updates, "jvp": 0})


def physical_rules() -> list[Method]:
    """The physical learning rules `compare` knows, at their default nudges."""
    return [
        EquilibriumPropagation(beta=1e-6, symmetric=False),
        EquilibriumPropagation(beta=1e-4, symmetric=True),
        PredictiveCoding(precision=1.0),
        PredictiveCoding(precision=1e-6),
        FixedPredictionPC(),
        DualPropagation("dp", beta=1e-3, alpha=0.5),
        DualPropagation("dp-top", beta=1e-6, alpha=0.0),
    ]


class HamiltonianEcho(Method):
    """Hamiltonian echo learning (`experiments.learning_rules.hamiltonian_echo`): forward pass,
    momentum flip, two echoes from `Sigma x_N +- eps X grad l` (position and momentum components of
    the loss gradient exchanged), and

        dl/dtheta ~ -(1/(2 eps)) sum_j w_j (dH/dtheta(e+_j) - dH/dtheta(e-_j))

    with leapfrog's kick weights `w_j`. Forward passes and `jax.vjp` of `H` only; its error is
    `O(eps^2)` (6.5e-10 relative at `eps = 1e-4` on the oscillator chain), hence the tolerance 1e-8.
    Applies to leapfrog discretisations of a separable field with a Hamiltonian (`physical_energy`)."""

    name = "hamiltonian-echo"
    kind = "project"
    tolerance = {"float64": 1e-8, "float32": None}  # eps = 1e-4 is below float32's useful range: reported

    def __init__(self, eps: float = 1e-4):
        self.eps = float(eps)
        self.description = f"Hamiltonian echo learning, symmetric nudge eps = {self.eps:g} (forward passes only)"

    def applies(self, problem):
        from experiments.learning_rules.hamiltonian_echo import check_echo_system

        if not problem.is_ode:
            return "not an ODE problem (needs a time-reversible Hamiltonian field)"
        if not getattr(problem.field, "separable", False):
            return f"{type(problem.field).__name__} is not a separable Hamiltonian field"
        try:
            check_echo_system(problem.system)
        except ValueError as error:
            return str(error)
        return None

    def prepare(self, problem):
        from experiments.learning_rules.hamiltonian_echo import hamiltonian_echo

        def fn(theta, x0):
            return hamiltonian_echo(problem.system, theta, x0, problem.loss, self.eps).grad, {}

        n = problem.steps
        # three leapfrog passes (forward, two echoes); vjp counts the local pullbacks of H
        return Prepared(fn, (problem.theta, problem.x0), {"unit": "layer", "f": 3 * n, "vjp": 2 * (n + 1), "jvp": 0})


__all__ = ["DualPropagation", "EquilibriumPropagation", "FixedPredictionPC", "HamiltonianEcho", "PhysicalRule",
           "PredictiveCoding", "physical_rules"]
