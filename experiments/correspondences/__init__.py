"""Correspondences around backprop: other exact readings of the chain rule, each checked against an
independent computation (constructions from the design notes' `specs/correspondences.md`).

- `computation_graph`: scalar computation graphs with residuals, the `jax.grad` reference adjoints;
- `gaussian_bp`: Gaussian belief propagation on their factor graphs (backward messages = adjoints);
- `spn`: sum-product networks, backprop as exact inference, Bayesian networks compiled into SPNs;
- `i_projection`: the KL I-projection onto marginal constraints through an SPN's log-partition;
- `kl_projection`: backprop as the differential of the KL projection of a loss-tilted Gaussian lift;
- `kl_message_passing`: alternating KL projections (expectation propagation) on the lifted factor graph of
  a network of elementary operations: node adjoints and weight gradients from its differential;
- `convergence_order`: fitted orders of convergence.
- `forward_mode`: dual numbers, the course notes' worked example in both modes, costs of Jacobian chains;
- `kl_directions`: forward vs reverse KL fits of a Gaussian to a two-mode mixture;
- `gradient_cost`, `residual_time`, `checkpointing`, `reversible_leapfrog`, `fixed_point`, `argmin`,
  `sinkhorn`: the adjoint-state toolbox (cost of gradients, ResNets as time steps, memory schedules,
  exact reconstruction, implicit and envelope gradients).
"""

from .computation_graph import *  # noqa: F401,F403
from .gaussian_bp import *  # noqa: F401,F403
from .spn import *  # noqa: F401,F403
from .i_projection import *  # noqa: F401,F403
from .kl_projection import *  # noqa: F401,F403
from .kl_message_passing import *  # noqa: F401,F403
from .convergence_order import *  # noqa: F401,F403
from .argmin import ArgminErrors, Energy, descend, envelope_gradient, implicit_argmin_jacobian, newton_argmin, quadratic_closed_form, random_energy
from .checkpointing import STRATEGIES, CountingField, compiled_state_count, field_evaluations, stored_states
from .fixed_point import FixedPointLayer, IterationErrors, fitted_rate, iterate, linear_closed_form, newton_fixed_point, random_layer, unrolled_gradient
from . import forward_mode
from .gradient_cost import CountedFunction, CostPoint, loglog_slope, tanh_unit, tanh_unit_gradient, xla_flops
from .kl_directions import Fit, Quadrature, fit, functional_derivatives, gaussian_moments, kl, mixture_moments, quadrature, truncated_normal_moments
from .residual_time import Normalisation, Path, continuous_density, random_path, resnet_gradient
from .reversible_leapfrog import Reconstruction, SeparableTanh, reconstruct, reversible_system
from .sinkhorn import Problem, SinkhornErrors, converged, dual, random_problem, sinkhorn_potentials
