"""Models in, `Target` out: what the samplers need from a model, and the way back to named values."""

from parmcmc.models.numpyro import from_model, from_numpyro
from parmcmc.models.target import Target, from_logdensity

__all__ = ["Target", "from_logdensity", "from_model", "from_numpyro"]
