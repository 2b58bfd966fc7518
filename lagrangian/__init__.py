"""The physics of leastaction: systems, actions, doubled variables, invariants,
and the classical mechanics of learning (Noether charges, phase volume, the action landscape).

Nothing here steps in time; `integrators` does.
"""

from .action import (
    continuous_action,
    discrete_action,
    euler_lagrange_residuals,
    hamilton_equations,
    hamiltonian,
    stationarity_residuals,
    time_derivative,
)
from .doubled import copies, doubled_action, mean_and_difference
from .energy_models import hopfield_energy, hopfield_init, layered_energy, prediction_errors, total_energy
from .fields import HarmonicOscillator, Linear, MLPField, NeuralODE, Pendulum
from .invariants import bilinear_invariant, energy, symplectic_form, symplecticity_defect
from .landscape import action_hessian, inertia, linearised_flows
from .learning import GradientFlow, HeavyBall, network_risk
from .loss import CrossEntropy, LinearFunctional, Loss, SquaredError
from .networks import ACTIVATIONS, MLP, Recurrent, ResNet, activation
from .noether import (
    angular_momentum_matrix,
    balance_matrix,
    bias_sum,
    charge_scale,
    generator_defects,
    gradient_flow_charge,
    invariance_defect,
    linear_group,
    momentum_charge,
    rescaling,
    rescaling_charges,
    translation,
)
from .oscillator_chain import OscillatorChain, exchange, momentum_flip
from .phase_space import HamiltonFlow, friction_log_volume, log_volume
from .system import Batched, BatchedField, LayerMaps, System, VectorField, batched, check_finite, check_params

__all__ = [
    "ACTIVATIONS", "Batched", "BatchedField", "batched", "CrossEntropy", "GradientFlow", "HamiltonFlow", "HarmonicOscillator", "HeavyBall",
    "LinearFunctional", "LayerMaps", "Linear", "Loss", "MLP",
    "MLPField", "NeuralODE", "OscillatorChain", "Pendulum", "Recurrent", "ResNet", "SquaredError", "System",
    "VectorField", "activation", "bilinear_invariant", "check_finite",
    "check_params", "continuous_action", "copies", "discrete_action", "doubled_action", "energy",
    "euler_lagrange_residuals", "exchange", "momentum_flip", "hamilton_equations", "hamiltonian", "mean_and_difference",
    "stationarity_residuals", "symplectic_form", "symplecticity_defect", "time_derivative",
    "action_hessian", "angular_momentum_matrix", "balance_matrix", "bias_sum", "charge_scale",
    "friction_log_volume", "generator_defects", "gradient_flow_charge", "inertia", "invariance_defect",
    "linear_group", "linearised_flows", "log_volume", "momentum_charge", "network_risk", "rescaling",
    "rescaling_charges", "translation",
    "hopfield_energy", "hopfield_init", "layered_energy", "prediction_errors", "total_energy",
]
