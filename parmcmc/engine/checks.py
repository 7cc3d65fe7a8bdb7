"""solve()'s argument checks: each names the argument, the value and what to pass instead."""

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from parmcmc.arguments import check_int

__all__ = ["check_count", "check_tolerance", "num_steps_of"]


def check_tolerance(name: str, value: Any) -> float:
    """A tolerance: a finite real number >= 0 (a concrete 0-d array is accepted).

    An infinite tolerance is refused: every iterate, the first guess included, would count as converged.
    """
    concrete_scalar = hasattr(value, "shape") and np.ndim(value) == 0 and not isinstance(value, Tracer)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 <= float(value) < math.inf:
        if concrete_scalar:
            return check_tolerance(name, float(value))
        raise ValueError(
            f"solve: {name}={value!r} must be a real number >= 0 and finite (e.g. {name}=1e-8), or None for the "
            "default by dtype (1e-11 in float64, 1e-5 in float32); tolerances must be >= 0 and not both 0 (an infinite "
            "tolerance would count any guess as converged)."
        )
    return float(value)


def check_count(name: str, value: Any) -> int:
    """A positive count of solve(): :func:`parmcmc.arguments.check_int` with ``call="solve"``."""
    return check_int(name, value, call="solve")


def num_steps_of(inputs) -> int:
    """T, the leading axis shared by every leaf of inputs."""
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves:
        raise ValueError("solve: inputs is empty; pass a pytree of arrays with leading axis T (T >= 1).")
    lengths = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    if len(lengths) != 1 or None in lengths or 0 in lengths:
        raise ValueError(
            f"solve: every leaf of inputs needs the same leading axis T >= 1; got leading sizes {lengths}."
        )
    return next(n for n in lengths if n is not None)
