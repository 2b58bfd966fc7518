"""The physics of leastaction: systems, actions, doubled variables, invariants.

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
from .fields import HarmonicOscillator, Linear, MLPField, NeuralODE, Pendulum
from .invariants import bilinear_invariant, energy, symplectic_form, symplecticity_defect
from .loss import CrossEntropy, Loss, SquaredError
from .networks import ACTIVATIONS, MLP, Recurrent, ResNet, activation
from .system import LayerMaps, System, VectorField, check_finite, check_params

__all__ = [
    "ACTIVATIONS", "CrossEntropy", "HarmonicOscillator", "LayerMaps", "Linear", "Loss", "MLP",
    "MLPField", "NeuralODE", "Pendulum", "Recurrent", "ResNet", "SquaredError", "System",
    "VectorField", "activation", "bilinear_invariant", "check_finite",
    "check_params", "continuous_action", "copies", "discrete_action", "doubled_action", "energy",
    "euler_lagrange_residuals", "hamilton_equations", "hamiltonian", "mean_and_difference",
    "stationarity_residuals", "symplectic_form", "symplecticity_defect", "time_derivative",
]
