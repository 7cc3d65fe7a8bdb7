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
from parmcmc.diagnostics import (
    Diagnosis,
    FallbackWarning,
    LyapunovEstimate,
    diagnose_recurrence,
    lyapunov_exponent,
)

__all__ = [
    "DEER", "Diagnosis", "FallbackWarning", "Jacobi", "LyapunovEstimate", "Picard", "QuasiDEER", "Sequential",
    "Solution", "SolveError", "diagnose_recurrence", "lyapunov_exponent", "solve",
]
