"""Correspondences around backprop: other exact readings of the chain rule, each checked
against an independent computation (see /work/shared/specs/correspondences.md)."""

from .computation_graph import *  # noqa: F401,F403
from .gaussian_bp import *  # noqa: F401,F403
from .spn import *  # noqa: F401,F403
from .i_projection import *  # noqa: F401,F403
from .kl_projection import *  # noqa: F401,F403
from .convergence_order import *  # noqa: F401,F403
