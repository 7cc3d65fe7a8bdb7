"""NumPyro's inference interface over parmcmc: change the import line, keep the workflow.

    from parmcmc.infer import MCMC, HMC, Predictive   # instead of: from numpyro.infer import ...

`MCMC`, `HMC`, `MALA`, `Barker` and `AdjustedMCLMC` run parmcmc's pipeline (each chain solved in parallel over
time); `Predictive`, `log_likelihood` and the init strategies are NumPyro's own, re-exported so that one import
line serves.
"""

from numpyro.infer import (
    Predictive,
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
    log_likelihood,
)

from parmcmc.infer.kernels import HMC, MALA, NUTS, AbstractKernel, AdjustedMCLMC, Barker
from parmcmc.infer.mcmc import CHAIN_METHODS, MCMC, MCMCState

__all__ = [
    "CHAIN_METHODS",
    "HMC",
    "MALA",
    "MCMC",
    "NUTS",
    "AbstractKernel",
    "AdjustedMCLMC",
    "Barker",
    "MCMCState",
    "Predictive",
    "init_to_feasible",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
    "log_likelihood",
]
