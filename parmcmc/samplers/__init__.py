"""Samplers as deterministic step maps ``x_t = f(x_{t-1}, noise_t)``.

They know nothing about solvers: a sampler is a step map, its noise schedule
(BlackJAX's) and its per-step statistics.
"""

from parmcmc.samplers.barker import Barker, BarkerInfo, BarkerNoise
from parmcmc.samplers.base import AbstractSampler
from parmcmc.samplers.hmc import HMC, HMCInfo, HMCNoise
from parmcmc.samplers.mala import MALA, MALAInfo, MALANoise
from parmcmc.samplers.mclmc import AdjustedMCLMC, AdjustedMCLMCInfo, AdjustedMCLMCNoise

__all__ = [
    "HMC",
    "MALA",
    "AbstractSampler",
    "AdjustedMCLMC",
    "AdjustedMCLMCInfo",
    "AdjustedMCLMCNoise",
    "Barker",
    "BarkerInfo",
    "BarkerNoise",
    "HMCInfo",
    "HMCNoise",
    "MALAInfo",
    "MALANoise",
]
