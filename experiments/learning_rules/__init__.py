"""Physical learning rules measured against the exact least-action gradient (issue 12).

- `hamiltonian_echo`: Hamiltonian echo learning on a time-reversible system
  (forward pass, momentum flip, two nudged echoes, `dH/dtheta` along them).
"""

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
    "Echo", "conjugate_field", "echo_and_conjugate_field", "echo_error_curve", "echo_perturbation", "hamiltonian_echo",
    "kick_weights",
]
