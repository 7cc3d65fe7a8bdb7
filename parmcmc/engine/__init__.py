"""The parallel-in-time engine: solves any recurrence x_t = f(x_{t-1}, input_t) over all t at once.

It knows nothing about MCMC; samplers hand it a step map.
"""

from parmcmc.engine.blocks import Shooting
from parmcmc.engine.elk import ELK, AbstractELK, QuasiELK
from parmcmc.engine.kalman import lm_step, parallel_filter, parallel_smoother
from parmcmc.engine.results import RESULTS
from parmcmc.engine.scan import (
    affine_scan_associative,
    affine_scan_blocked,
    affine_scan_sequential,
    blocked_associative_scan,
    picard_scan,
)
from parmcmc.engine.sharding import affine_scan
from parmcmc.engine.solve import (
    MAX_ITERS,
    NONFINITE,
    SUCCESSFUL,
    NotConvergedWarning,
    Solution,
    SolveError,
    default_tolerance,
    solve,
)
from parmcmc.engine.solvers import (
    DEER,
    AbstractIterativeSolver,
    AbstractLDSSolver,
    AbstractSolver,
    Jacobi,
    Linearization,
    Picard,
    QuasiDEER,
    Sequential,
)

__all__ = [
    "DEER",
    "ELK",
    "MAX_ITERS",
    "NONFINITE",
    "RESULTS",
    "SUCCESSFUL",
    "AbstractELK",
    "AbstractIterativeSolver",
    "AbstractLDSSolver",
    "AbstractSolver",
    "Jacobi",
    "Linearization",
    "NotConvergedWarning",
    "Picard",
    "QuasiDEER",
    "QuasiELK",
    "Sequential",
    "Shooting",
    "Solution",
    "SolveError",
    "affine_scan",
    "affine_scan_associative",
    "affine_scan_blocked",
    "affine_scan_sequential",
    "blocked_associative_scan",
    "default_tolerance",
    "lm_step",
    "parallel_filter",
    "parallel_smoother",
    "picard_scan",
    "solve",
]
