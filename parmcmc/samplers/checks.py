"""The samplers' checks of their settings: step sizes and preconditioners, and settings as array leaves.

Checks run on concrete values only: a traced value (a sampler built inside ``jit`` or ``vmap``) passes
through unchecked.
"""

import math
import numbers

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

__all__ = ["check_step_size"]


def _is_traced(value) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def check_step_size(step_size, name: str = "step_size"):
    """A positive finite real scalar (checks are skipped for traced values)."""
    if _is_traced(step_size):
        return step_size
    is_real_array = (
        hasattr(step_size, "dtype")
        and jnp.ndim(step_size) == 0
        and (jnp.issubdtype(step_size.dtype, jnp.floating) or jnp.issubdtype(step_size.dtype, jnp.integer))
    )
    if isinstance(step_size, bool) or not (isinstance(step_size, numbers.Real) or is_real_array):
        raise TypeError(f"{name} must be a positive real scalar, got {step_size!r} of type {type(step_size).__name__}.")
    value = float(step_size)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}.")
    return step_size


def _as_float_array(value):
    """A setting as an array leaf (floats, so that one program serves every value); traced as is."""
    if value is None or _is_traced(value):
        return value
    arr = jnp.asarray(value)
    return arr if jnp.issubdtype(arr.dtype, jnp.floating) else arr.astype(jnp.result_type(float))


def _check_preconditioner(loc, scale) -> dict:
    """``loc`` (D,) and ``scale`` (D,) positive or (D, D) lower triangular with a positive diagonal."""
    out = {"loc": _as_float_array(loc), "scale": _as_float_array(scale)}
    if loc is not None and not _is_traced(loc):
        arr = np.asarray(loc)
        if arr.ndim != 1 or not np.all(np.isfinite(arr)):
            raise ValueError(f"loc must be a finite 1-D array over the flattened position; got shape {arr.shape}.")
    if scale is not None and not _is_traced(scale):
        arr = np.asarray(scale)
        if arr.ndim not in (1, 2) or not np.all(np.isfinite(arr)):
            raise ValueError(
                "scale must be a finite 1-D (diagonal) or 2-D (lower-triangular) array, e.g. the Cholesky "
                f"factor of the posterior covariance; got shape {arr.shape}."
            )
        diag = arr if arr.ndim == 1 else np.diagonal(arr)
        if arr.ndim == 2 and (arr.shape[0] != arr.shape[1] or np.any(np.triu(arr, 1) != 0)):
            raise ValueError("scale (dense) must be square and lower triangular (a Cholesky factor).")
        if np.any(diag <= 0):
            raise ValueError("scale must have a positive diagonal.")
    return out
