"""Fitted orders of convergence: the slope of `log(error)` against `log(parameter)`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fitted_order(parameters: Sequence[float], errors: Sequence[float], floor: float = 0.0) -> float:
    """Least-squares slope of `log(error)` on `log(parameter)` over the points with `error > floor`
    (the rounding floor); `nan` if fewer than two points remain.

    Example:
        >>> h = [0.1, 0.05, 0.025]
        >>> round(fitted_order(h, [x**2 for x in h]), 12)      # errors O(h^2)
        2.0
    """
    x, y = np.asarray(parameters, dtype=float), np.asarray(errors, dtype=float)
    keep = (y > floor) & np.isfinite(y) & (x > 0)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def fitted_orders_2d(a: Sequence[float], b: Sequence[float], errors: np.ndarray, floor: float = 0.0
                     ) -> tuple[float, float]:
    """`(p, q)` of the least-squares fit `log error = p log a + q log b + c` over a grid
    `errors[i, j]` at `(a[i], b[j])`, using the points with `error > floor`."""
    A, B = np.meshgrid(np.asarray(a, float), np.asarray(b, float), indexing="ij")
    E = np.asarray(errors, dtype=float)
    keep = (E > floor) & np.isfinite(E)
    if keep.sum() < 3:
        return float("nan"), float("nan")
    design = np.stack([np.log(A[keep]), np.log(B[keep]), np.ones(keep.sum())], axis=1)
    coef = np.linalg.lstsq(design, np.log(E[keep]), rcond=None)[0]
    return float(coef[0]), float(coef[1])


__all__ = ["fitted_order", "fitted_orders_2d"]
