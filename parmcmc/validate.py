"""Checks of user input for sample()/compare(), raised before any heavy work, each naming the
argument, the problem and what to do."""

import numbers

import jax
import jax.numpy as jnp

from parmcmc.samplers import HMC, MALA
from parmcmc.samplers.base import AbstractSampler

SAMPLERS = {"mala": MALA, "hmc": HMC}


def check_positive_int(name: str, value, *, allow_zero: bool = False, caller: str = "sample") -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{caller}: {name} must be {kind} integer; got {value!r}.")
    return int(value)


def check_rng_key(rng_key, caller: str = "sample") -> None:
    dtype = getattr(rng_key, "dtype", None)
    is_typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    is_raw = not is_typed and dtype == jnp.uint32 and jnp.shape(rng_key) == (2,)
    if not ((is_typed and jnp.ndim(rng_key) == 0) or is_raw):
        raise TypeError(
            f"{caller}: rng_key must be one JAX random key, e.g. jax.random.key(0) or jax.random.PRNGKey(0); "
            f"got {type(rng_key).__name__} {getattr(rng_key, 'shape', '')}."
        )


def check_model(model, caller: str = "sample") -> None:
    if not callable(model):
        raise TypeError(
            f"{caller}: model must be a NumPyro model function or a log-density function; got {type(model).__name__}."
        )


def resolve_sampler(sampler, caller: str = "sample"):
    """("mala" | "hmc", None) for a name, or (name, instance) for a MALA/HMC instance."""
    if isinstance(sampler, AbstractSampler):
        return type(sampler).__name__.lower(), sampler
    if isinstance(sampler, str) and sampler.lower() in SAMPLERS:
        return sampler.lower(), None
    raise ValueError(
        f"{caller}: unknown sampler {sampler!r}; use one of {sorted(SAMPLERS)} or an instance such as "
        "parmcmc.HMC(logdensity_fn, step_size, num_integration_steps)."
    )
