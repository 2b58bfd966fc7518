"""The numerics of leastaction: tableaux, their partners, the schemes that step a
field on a grid, memory strategies, and the one sweep over the doubled phase space."""

from ._convergence import (
    ON_UNCONVERGED,
    UnconvergedWarning,
    check_on_unconverged,
    report_unconverged,
    tolerance_floor,
    within_tolerance,
)
from ._diffeqsolve import SOLVERS, LeastAction, diffeqsolve
from .adaptive import AdaptiveGrid, adaptive_grid
from .differentiable import solve
from .discretisation import Discretisation, uniform_grid
from .schemes import REVERSIBLE, discretise, scheme_names
from .memory import MEMORIES, Checkpoint, Cost, Memory, Reversible, StoreAll, StoreStages, irreversible, memory_named
from .newton import newton_root
from .partner import partner_tableau
from .raveled import RaveledField, Raveling
from .parallel_in_time import NewtonInTimeResult, newton_in_time
from .relax import (
    RelaxedTraining,
    RelaxationResult,
    SaddleFlowResult,
    learn_while_relaxing,
    relax,
    relaxation_step,
    saddle_flow,
    saddle_flow_step,
)
from .reversible import AsynchronousLeapfrog, CoupledPullback, ReversibleHeun, ReversibleRungeKutta, reversible_name
from .runge_kutta import RungeKutta, StagePullback
from .stationary import Solution, forward, output, sweep, tangent_sweep, tension
from .splitting import Splitting
from .tableau import (
    BOSH3,
    DOPRI5,
    DOPRI8,
    EULER,
    GAUSS1,
    GAUSS2,
    GAUSS3,
    HEUN,
    IMPLICIT_EULER,
    KVAERNO3,
    KVAERNO4,
    KVAERNO5,
    KUTTA3,
    LEAPFROG,
    LOBATTO_IIIA,
    LOBATTO_IIIB,
    MIDPOINT,
    RALSTON,
    RK4,
    RK38,
    SEMI_IMPLICIT_EULER,
    SPLITTINGS,
    SYMPLECTIC_EULER,
    TABLEAUX,
    TSIT5,
    YOSHIDA4,
    ButcherTableau,
    SplittingTableau,
    tableau,
)

__all__ = [
    "BOSH3", "DOPRI5", "DOPRI8", "IMPLICIT_EULER", "KVAERNO3", "KVAERNO4", "KVAERNO5", "EULER", "GAUSS1", "GAUSS2", "GAUSS3", "HEUN", "KUTTA3", "LEAPFROG",
    "LOBATTO_IIIA", "LOBATTO_IIIB", "MIDPOINT", "RALSTON", "REVERSIBLE", "RK4", "RK38", "SEMI_IMPLICIT_EULER", "SPLITTINGS",
    "SYMPLECTIC_EULER", "TABLEAUX", "TSIT5", "YOSHIDA4", "AdaptiveGrid", "LeastAction", "SOLVERS", "diffeqsolve", "AsynchronousLeapfrog", "ButcherTableau",
    "Checkpoint", "Cost", "Discretisation", "MEMORIES", "Memory", "Reversible", "ReversibleHeun",
    "ReversibleRungeKutta", "RaveledField", "Raveling", "RungeKutta", "CoupledPullback", "reversible_name",
    "Solution", "Splitting", "SplittingTableau", "StagePullback", "StoreAll", "StoreStages", "adaptive_grid", "discretise", "forward",
    "irreversible", "memory_named", "scheme_names", "NewtonInTimeResult", "newton_in_time", "newton_root", "output", "partner_tableau",
    "learn_while_relaxing", "relax", "RelaxedTraining", "RelaxationResult", "relaxation_step", "saddle_flow", "SaddleFlowResult", "saddle_flow_step", "solve", "sweep", "tableau",
    "tangent_sweep", "tension", "uniform_grid",
    "ON_UNCONVERGED", "UnconvergedWarning", "check_on_unconverged", "report_unconverged", "tolerance_floor",
    "within_tolerance",
]

# the physical substrates (docs/substrate.md): clock-free relaxation, two copies, imperfect couplings
from .asynchronous import (
    ClockFreeResult,
    asynchronous_saddle_step,
    asynchronous_step,
    continuous_relax,
    drive,
    poisson_relax,
    poisson_saddle_flow,
    time_constants,
)
from .copies import CopiesResult, doubled_forces, relax_copies, rounding_floor
from .substrate import LangevinResult, langevin_copies, langevin_relax, mismatched_feedback

__all__ += [
    "ClockFreeResult", "asynchronous_saddle_step", "asynchronous_step", "continuous_relax", "drive",
    "poisson_relax", "poisson_saddle_flow", "time_constants",
    "CopiesResult", "doubled_forces", "relax_copies", "rounding_floor",
    "LangevinResult", "langevin_copies", "langevin_relax", "mismatched_feedback",
]
