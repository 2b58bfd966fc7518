"""Correspondences around backprop: other exact readings of the chain rule, each checked against an
independent computation (constructions from the design notes' `specs/correspondences.md`).

- `computation_graph`: scalar computation graphs with residuals, the `jax.grad` reference adjoints;
- `gaussian_bp`: Gaussian belief propagation on their factor graphs (backward messages = adjoints);
- `spn`: sum-product networks, backprop as exact inference, Bayesian networks compiled into SPNs;
- `i_projection`: the KL I-projection onto marginal constraints through an SPN's log-partition;
- `kl_projection`: backprop as the differential of the KL projection of a loss-tilted Gaussian lift;
- `convergence_order`: fitted orders of convergence.
"""

from .computation_graph import *  # noqa: F401,F403
from .gaussian_bp import *  # noqa: F401,F403
from .spn import *  # noqa: F401,F403
from .i_projection import *  # noqa: F401,F403
from .kl_projection import *  # noqa: F401,F403
from .convergence_order import *  # noqa: F401,F403
