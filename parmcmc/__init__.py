"""parmcmc: MCMC chains computed in parallel over time.

sample(model, parallel=True) runs NumPyro models (or log densities) with MALA or HMC, each chain solved
at once by a parallel Newton method, and returns an ArviZ DataTree; compare() puts the parallel and the
sequential run side by side. The engine (solve and its solvers) serves any recurrence x_t = f(x_{t-1}, u_t).
"""

__version__ = "0.1.0"

from parmcmc.api import sample
from parmcmc.chain import ChainResult, run_chain
from parmcmc.compare import Comparison, compare
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
from parmcmc.samplers import HMC, MALA
from parmcmc.validate import Float64DataWarning

__all__ = [
    "ChainResult", "Comparison", "DEER", "Float64DataWarning", "HMC", "Jacobi", "MALA", "Picard", "QuasiDEER", "Sequential",
    "Solution", "SolveError", "compare", "run_chain", "sample", "solve",
]
