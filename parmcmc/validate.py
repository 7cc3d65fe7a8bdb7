"""Checks of user input for sample()/compare(), raised before any heavy work, each naming the
argument, the problem and what to do."""

import difflib
import inspect
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from parmcmc.samplers import HMC, MALA
from parmcmc.samplers.base import AbstractSampler
from parmcmc.samplers.metrics import check_inverse_mass_matrix

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
        shape = getattr(rng_key, "shape", None)
        raise TypeError(
            f"{caller}: rng_key must be one JAX random key, e.g. jax.random.key(0) or jax.random.PRNGKey(0); "
            f"got {type(rng_key).__name__}{'' if shape is None else f' of shape {shape}'}."
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


class Float64DataWarning(UserWarning):
    """float64 arrays given while JAX runs in float32 (jax_enable_x64 off) lose digits on conversion."""


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _float64_leaves(tree, label):
    """(name, array) for every float64 NumPy leaf of `tree` (JAX arrays cannot be float64 with x64 off)."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if getattr(leaf, "dtype", None) == np.float64:
            out.append((label + jax.tree_util.keystr(path), np.asarray(leaf)))
    return out


def check_float64_inputs(caller: str = "sample", **named) -> None:
    """With jax_enable_x64 off, JAX converts float64 input to float32 silently. Raise for values that
    would overflow to inf there; warn (Float64DataWarning) for values that float32 rounds; say nothing
    when the conversion is exact (0/1 labels, small integers) or x64 is on."""
    if jax.dtypes.canonicalize_dtype(np.float64) == np.float64:
        return
    rounded, overflow = [], []
    for label, tree in named.items():
        for name, arr in _float64_leaves(tree, label):
            finite = np.isfinite(arr)
            if np.any(np.abs(arr[finite]) > FLOAT32_MAX):
                overflow.append(name)
            elif not np.array_equal(arr.astype(np.float32).astype(np.float64), arr, equal_nan=True):
                rounded.append(name)
    if overflow:
        raise ValueError(
            f"{caller}: {', '.join(overflow)} hold float64 values beyond float32's range (+-{FLOAT32_MAX:.3g}), "
            "and JAX runs in float32 (jax_enable_x64 is off): they would become inf. Call "
            "jax.config.update('jax_enable_x64', True) at the start of the program, or rescale the data."
        )
    if rounded:
        warnings.warn(
            f"{caller}: {', '.join(rounded)} {'is' if len(rounded) == 1 else 'are'} float64, but JAX runs in "
            "float32 (jax_enable_x64 is off), so the values are rounded to float32 (about 7 significant "
            "digits) and sampling runs in float32. To sample in float64, call "
            "jax.config.update('jax_enable_x64', True) at the start of the program; to keep float32 and "
            "silence this warning, pass float32 arrays (np.asarray(x, np.float32)).",
            Float64DataWarning,
            stacklevel=4,
        )


def check_solve_options(solve_kwargs: dict, solve_fn, caller: str = "sample") -> None:
    """Extra keyword arguments of sample() go to the engine's solve: check their names (and the integer
    options) now, not after the warmup."""
    known = [name for name, p in inspect.signature(solve_fn).parameters.items() if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(solve_kwargs) - set(known))
    if unknown:
        close = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        hint = "".join(f" Did you mean {c[0]!r} for {u!r}?" for u, c in close.items() if c)
        raise TypeError(
            f"{caller}: unknown argument(s) {unknown}. Keyword arguments that are not sample()'s own go to "
            f"the engine's solve, which takes {known}.{hint}"
        )
    for name in ("max_iters", "window"):
        if solve_kwargs.get(name) is not None:
            check_positive_int(name, solve_kwargs[name], caller=caller)


def check_mass_matrix_setting(inverse_mass_matrix, sampler_name: str, instance, step_size, caller: str = "sample"):
    """inverse_mass_matrix= is an HMC setting used as given: refuse the cases where it would be ignored."""
    if inverse_mass_matrix is None:
        return
    if sampler_name != "hmc":
        raise ValueError(
            f"{caller}: inverse_mass_matrix= is an HMC setting, but the sampler is {sampler_name!r} (MALA has "
            "no mass matrix). Use sampler='hmc', or leave inverse_mass_matrix out."
        )
    if instance is not None:
        raise ValueError(
            f"{caller}: inverse_mass_matrix= is given together with an HMC instance; give it to the instance "
            "(parmcmc.HMC(logdensity_fn, step_size, num_integration_steps, inverse_mass_matrix)) only."
        )
    check_inverse_mass_matrix(inverse_mass_matrix)
    if step_size is None:
        raise ValueError(
            f"{caller}: inverse_mass_matrix= is given without step_size=, so warmup would adapt both and "
            "replace your matrix. Give step_size= as well to use the matrix as it is (warmup then only burns "
            "in), or leave inverse_mass_matrix out to have warmup adapt a diagonal one."
        )
