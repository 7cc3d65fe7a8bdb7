"""Predictability: whether a parallel-in-time solve pays for a recurrence or a sampler's chain.

- `lyapunov`: the largest Lyapunov exponent of a step map along a sequential pilot trajectory;
- `verdict`: the iteration model (a pilot solve extrapolated to T) and the verdict for any recurrence;
- `diagnose`: the same for a sampler's chain, and the timed choice of sample(parallel="auto").

See docs/predictability.md. The warning for a solve that fell back to sequential evaluation lives beside
the fallback, in `parmcmc.engine.results`.
"""

from parmcmc.predictability.diagnose import choose_solver, diagnose
from parmcmc.predictability.lyapunov import LyapunovEstimate, lyapunov_exponent
from parmcmc.predictability.verdict import (
    DEFAULT_ITERS_PER_LOG2T,
    Diagnosis,
    diagnose_recurrence,
    iteration_budget,
    predict_block_iterations,
    predict_iterations,
)

__all__ = [
    "DEFAULT_ITERS_PER_LOG2T",
    "Diagnosis",
    "LyapunovEstimate",
    "choose_solver",
    "diagnose",
    "diagnose_recurrence",
    "iteration_budget",
    "lyapunov_exponent",
    "predict_block_iterations",
    "predict_iterations",
]
