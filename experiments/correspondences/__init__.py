"""Correspondences around backprop: the constructions behind the catalogue experiments
(see `specs/correspondences.md` and the README section "Correspondences around backprop")."""

from .argmin import ArgminErrors, Energy, descend, envelope_gradient, implicit_argmin_jacobian, newton_argmin, quadratic_closed_form, random_energy
from .checkpointing import STRATEGIES, CountingField, compiled_state_count, field_evaluations, stored_states
from .fixed_point import FixedPointLayer, IterationErrors, fitted_rate, iterate, linear_closed_form, newton_fixed_point, random_layer, unrolled_gradient
from .gradient_cost import CountedFunction, CostPoint, loglog_slope, tanh_unit, tanh_unit_gradient, xla_flops
from .kl_directions import Fit, Quadrature, fit, functional_derivatives, gaussian_moments, kl, mixture_moments, quadrature, truncated_normal_moments
from .residual_time import Normalisation, Path, continuous_density, random_path, resnet_gradient
from .reversible_leapfrog import Reconstruction, ReversibleSplitting, SeparableTanh, reconstruct, reversible_system
from .sinkhorn import Problem, SinkhornErrors, converged, dual, random_problem, sinkhorn_potentials
