"""Kept for existing imports.

The predictability diagnostics now live in `parmcmc.predictability` (lyapunov, verdict, diagnose) and the fallback
warning beside the fallback, in `parmcmc.engine.results`.
"""

from parmcmc.engine.results import FallbackWarning, fallback_warning, warn_if_fell_back
from parmcmc.predictability.lyapunov import LyapunovEstimate, lyapunov_exponent
from parmcmc.predictability.verdict import (
    DEFAULT_ITERS_PER_LOG2T,
    Diagnosis,
    diagnose_recurrence,
    iteration_budget,
    predict_iterations,
)

__all__ = [
    "DEFAULT_ITERS_PER_LOG2T",
    "Diagnosis",
    "FallbackWarning",
    "LyapunovEstimate",
    "diagnose_recurrence",
    "fallback_warning",
    "iteration_budget",
    "lyapunov_exponent",
    "predict_iterations",
    "warn_if_fell_back",
]
