"""parmcmc: MCMC chains computed in parallel over time.

sample(model, parallel=True) runs NumPyro models (or log densities) with MALA or HMC, each chain solved
at once by a parallel Newton method, and returns an ArviZ DataTree; compare() puts the parallel and the
sequential run side by side. The engine (solve and its solvers) serves any recurrence x_t = f(x_{t-1}, u_t).
diagnose() says whether a parallel solve of a sampler's chain pays (docs/predictability.md).
"""

__version__ = "0.1.0"

from parmcmc.api import sample
from parmcmc.chain import ChainResult, run_chain
from parmcmc.compare import Comparison, compare

# From the submodule parmcmc.diagnose, so that parmcmc.diagnose is the function: a submodule loaded
# later for the first time would replace the attribute.
from parmcmc.diagnose import diagnose
from parmcmc.engine import (
    DEER,
    ELK,
    Jacobi,
    NotConvergedWarning,
    Picard,
    QuasiDEER,
    QuasiELK,
    Sequential,
    Shooting,
    Solution,
    SolveError,
    solve,
)
from parmcmc.engine.results import FallbackWarning
from parmcmc.health import FrozenChainWarning, MixingWarning, ReplayWarning
from parmcmc.predictability import Diagnosis, LyapunovEstimate, diagnose_recurrence, lyapunov_exponent
from parmcmc.samplers import HMC, MALA, AdjustedMCLMC, Barker
from parmcmc.validate import Float64DataWarning, IgnoredArgumentWarning

__all__ = [
    "DEER",
    "ELK",
    "HMC",
    "MALA",
    "AdjustedMCLMC",
    "Barker",
    "ChainResult",
    "Comparison",
    "Diagnosis",
    "FallbackWarning",
    "Float64DataWarning",
    "FrozenChainWarning",
    "IgnoredArgumentWarning",
    "Jacobi",
    "LyapunovEstimate",
    "MixingWarning",
    "NotConvergedWarning",
    "Picard",
    "QuasiDEER",
    "QuasiELK",
    "ReplayWarning",
    "Sequential",
    "Shooting",
    "Solution",
    "SolveError",
    "compare",
    "diagnose",
    "diagnose_recurrence",
    "lyapunov_exponent",
    "run_chain",
    "sample",
    "solve",
]
