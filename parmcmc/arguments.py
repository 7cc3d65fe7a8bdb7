"""The argument vocabulary every layer shares: the ``PyTree`` alias and the one integer check.

It stands on the ground floor (it imports nothing of parmcmc), so that the engine, the samplers, the
models and the user-facing checks all read their counts the same way and say the same thing when one
is wrong.
"""

import numbers
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

__all__ = ["PyTree", "check_int", "check_rng_key"]

PyTree = Any
"""A JAX pytree: an array, or nested tuples, lists, dicts and registered nodes of arrays."""


def check_int(name: str, value: Any, *, minimum: int = 1, call: str | None = None) -> int:
    """Return ``value`` as a Python int, or raise an error that names the argument.

    Parameters
    ----------
    name
        The argument's name, as the caller spells it.
    value
        The value given. Python and NumPy integers pass, and so do concrete 0-d integer arrays
        (``jnp.int32(20)``, ``np.array(20)``); bools, floats and strings do not.
    minimum
        The smallest value allowed (1: a positive integer, 0: a non-negative one).
    call
        The function the user called (``"sample"``, ``"solve"``, ...), named at the start of the message.

    Returns
    -------
    int
        ``int(value)``.

    Raises
    ------
    TypeError
        When ``value`` is not an integer (a bool counts as none).
    ValueError
        When ``value < minimum``.
    """
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    prefix = f"{call}: " if call else ""
    value = _zero_dim_integer(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{prefix}{name} must be {kind}; got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{prefix}{name} must be {kind}; got {value!r}.")
    return int(value)


def _zero_dim_integer(value: Any) -> Any:
    """A concrete 0-d integer array (NumPy or JAX) as a Python int; anything else unchanged."""
    if isinstance(value, numbers.Number) or getattr(value, "ndim", None) != 0:
        return value
    try:
        kind = np.dtype(value.dtype).kind
    except TypeError:  # a dtype NumPy does not know (a JAX key)
        return value
    if kind not in "iu" or isinstance(value, jax.core.Tracer):
        return value
    return int(value)


def check_rng_key(rng_key: Any, call: str | None = None, name: str = "rng_key") -> None:
    """Raise TypeError unless ``rng_key`` is one JAX random key.

    A typed key of shape () (``jax.random.key(0)``) or a raw ``uint32`` key of shape (2,)
    (``jax.random.PRNGKey(0)``; (4,) under ``jax_default_prng_impl="rbg"``); traced keys pass the same test on
    their shape and dtype.

    Parameters
    ----------
    rng_key
        The value given.
    call
        The function the user called, named at the start of the message.
    name
        The argument's name, as the caller spells it.

    Raises
    ------
    TypeError
        For an int, a batch of keys, or an array that is not a key; the message says how to make one.
    """
    dtype = getattr(rng_key, "dtype", None)
    shape = getattr(rng_key, "shape", None)
    typed = dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)
    raw = not typed and dtype == np.uint32 and tuple(shape or ()) in ((2,), (4,))  # threefry's, or rbg's
    if (typed and shape == ()) or raw:
        return
    prefix = f"{call}: " if call else ""
    got = type(rng_key).__name__ + ("" if shape is None else f" of shape {tuple(shape)} and dtype {dtype}")
    hint = (
        " For one chain per key, call once per key (or use num_chains=); to derive a key from an int, use "
        "jax.random.key(seed)."
    )
    raise TypeError(
        f"{prefix}{name} must be one JAX random key, e.g. jax.random.key(0) or jax.random.PRNGKey(0); got {got}." + hint
    )
