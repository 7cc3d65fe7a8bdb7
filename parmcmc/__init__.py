"""parmcmc: MCMC chains computed in parallel over time."""

from parmcmc.engine import (
    DEER,
    ELK,
    Jacobi,
    Picard,
    QuasiDEER,
    QuasiELK,
    Sequential,
    Solution,
    SolveError,
    solve,
)

__all__ = ["DEER", "ELK", "Jacobi", "Picard", "QuasiDEER", "QuasiELK", "Sequential", "Solution", "SolveError", "solve"]
