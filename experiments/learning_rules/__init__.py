"""Physical learning rules side by side (issue 12): equilibrium propagation, predictive coding and
dual propagation on layered networks, each an estimate of `dl/dtheta` that the comparison harness
judges against `jax.grad`, next to the exact least-action methods.

- `inference`: equilibria of the layered energy (Newton, gradient-descent relaxation);
- `equilibrium_propagation`: one-sided and symmetric EP, the classic Hopfield EP network;
- `predictive_coding`: clamped-output, weak-output-precision and fixed-prediction PC;
- `dual_propagation`: dual propagation (DP) and its adjoint variant (DP-top), dyads vs doubled copies.
"""

from . import dual_propagation, equilibrium_propagation, inference, predictive_coding

__all__ = ["dual_propagation", "equilibrium_propagation", "inference", "predictive_coding"]
