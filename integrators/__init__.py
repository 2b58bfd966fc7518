"""The numerics of leastaction: tableaux and the one sweep over the doubled phase space."""

from .runge_kutta import RungeKutta, discretise, uniform_grid
from .memory import Checkpoint, Memory, Reversible, StoreAll, memory_named
from .solve import Solution, forward, output, sweep, tangent_sweep, tension
from .tableau import (
    BOSH3,
    EULER,
    HEUN,
    KUTTA3,
    MIDPOINT,
    RALSTON,
    RK4,
    RK38,
    TABLEAUX,
    ButcherTableau,
    tableau,
)

__all__ = [
    "BOSH3", "EULER", "HEUN", "KUTTA3", "MIDPOINT", "RALSTON", "RK4", "RK38", "TABLEAUX",
    "ButcherTableau", "Checkpoint", "Memory", "Reversible", "RungeKutta", "Solution", "StoreAll",
    "discretise", "forward", "memory_named", "output", "sweep",
    "tableau", "tangent_sweep", "tension", "uniform_grid",
]
