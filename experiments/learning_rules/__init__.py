"""Physical learning rules side by side, each an estimate of `dl/dtheta` that the comparison
harness judges against `jax.grad`, next to the exact least-action methods.

- `inference`: equilibria of the layered energy (Newton, sweeps, gradient-descent relaxation);
- `equilibrium_propagation`: one-sided and symmetric EP, the classic Hopfield EP network;
- `predictive_coding`: clamped-output, weak-output-precision and fixed-prediction PC;
- `dual_propagation`: dual propagation (DP) and its adjoint variant (DP-top), dyads vs doubled copies;
- `reciprocity`: EP and DP on imperfect substrates (mismatched feedback couplings, Langevin noise);
- `hamiltonian_echo`: Hamiltonian echo learning on a time-reversible system
  (forward pass, momentum flip, two nudged echoes, `dH/dtheta` along them).
"""

from . import dual_propagation, equilibrium_propagation, inference, predictive_coding, reciprocity
from .hamiltonian_echo import (
    Echo,
    conjugate_field,
    echo_and_conjugate_field,
    echo_error_curve,
    echo_perturbation,
    hamiltonian_echo,
    kick_weights,
)

__all__ = [
    "Echo", "conjugate_field", "dual_propagation", "echo_and_conjugate_field", "echo_error_curve",
    "echo_perturbation", "equilibrium_propagation", "hamiltonian_echo", "inference", "kick_weights",
    "predictive_coding", "reciprocity",
]
