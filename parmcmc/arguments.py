"""The argument vocabulary every layer shares: the ``PyTree`` alias and the one integer check.

It stands on the ground floor (it imports nothing of parmcmc), so that the engine, the samplers, the
models and the user-facing checks all read their counts the same way and say the same thing when one
is wrong.
"""

import numbers
from typing import Any

__all__ = ["PyTree", "check_int"]

PyTree = Any
"""A JAX pytree: an array, or nested tuples, lists, dicts and registered nodes of arrays."""


def check_int(name: str, value: Any, *, minimum: int = 1, call: str | None = None) -> int:
    """Return ``value`` as a Python int, or raise an error that names the argument.

    Parameters
    ----------
    name
        The argument's name, as the caller spells it.
    value
        The value given. Python and NumPy integers pass; bools, floats and strings do not.
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
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{prefix}{name} must be {kind}; got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{prefix}{name} must be {kind}; got {value!r}.")
    return int(value)
