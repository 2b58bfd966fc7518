"""The adjoint partner of a Runge-Kutta tableau (Sanz-Serna 2016).

Integrating `x` with `(A, b)` and the conjugate field `p` with

    b_hat_i = b_i,    A_hat_ij = b_j - b_j a_ji / b_i

gives the exact gradient of the discrete forward map, and the pair
`(A, A_hat)` is a symplectic partitioned Runge-Kutta method on `(x, p)`:
`b_i A_hat_ij + b_j a_ji - b_i b_j = 0`. Symplectic tableaux (Gauss-Legendre)
are their own partner; the partner of Lobatto IIIA is Lobatto IIIB.
"""

import numpy as np

from .tableau import ButcherTableau


def partner_tableau(tableau: ButcherTableau) -> ButcherTableau:
    """`(A_hat, b_hat)` with `b_hat = b`, `A_hat_ij = b_j - b_j a_ji / b_i`.

    Raises `ValueError` naming the zero weight when some `b_i = 0` (the formula
    divides by it); such methods (midpoint, Bogacki-Shampine, Dormand-Prince,
    Tsitouras) get their exact gradient from the stage-wise conjugate step of
    `integrators.RungeKutta`, which needs no division.

    Example:
        >>> partner = integrators.partner_tableau(integrators.HEUN)
        >>> partner.b == integrators.HEUN.b
        True
    """
    a, b = np.asarray(tableau.a), np.asarray(tableau.b)
    zero = np.flatnonzero(b == 0.0)
    if zero.size:
        i = int(zero[0])
        raise ValueError(
            f"tableau {tableau.name!r} has b_{i + 1} = 0 (stage {i + 1} of {len(b)}): the partner formula "
            "A_hat_ij = b_j - b_j a_ji / b_i divides by it; use the stage-wise conjugate "
            "(integrators.RungeKutta.conjugate), which is exact for it"
        )
    a_hat = b[None, :] - b[None, :] * a.T / b[:, None]
    return ButcherTableau(
        name=f"{tableau.name}-partner",
        a=tuple(tuple(float(v) for v in row) for row in a_hat),
        b=tuple(float(v) for v in b),
        c=tuple(float(v) for v in a_hat.sum(axis=1)),
        order=tableau.order,
    )
