"""parmcmc: MCMC chains computed in parallel over time."""

from parmcmc.engine import (
    DEER,
    Jacobi,
    Picard,
    QuasiDEER,
    Sequential,
    Solution,
    SolveError,
    solve,
)

__all__ = ["DEER", "Jacobi", "Picard", "QuasiDEER", "Sequential", "Solution", "SolveError", "solve"]
