"""The result of a solve: the states, whether they converged, a result code and the solve's statistics."""

from typing import Any, NamedTuple

import jax

from parmcmc.engine.results import messages

__all__ = ["Solution", "solution"]


class Solution(NamedTuple):
    """The outcome of a solve (as optimistix's Solution: the value, a result code and a statistics mapping).

    Attributes
    ----------
    states
        Pytree like ``x0`` with a leading axis T: ``states[t] = fn(states[t-1], inputs[t])``, ``x0`` before
        ``states[0]``.
    converged
        Bool: every state is finite and within tolerance.
    result
        int32 code of the parallel solve, a ``RESULTS`` member (successful, max_iters, nonfinite);
        ``message`` explains it.
    stats
        The solve's statistics, a dict of arrays: ``num_iters`` (iterations taken, 0 for ``Sequential``),
        ``residual`` (max over t of ``|states[t] - fn(states[t-1], inputs[t])|``), ``sequential_from``
        (the first state that did not converge in parallel: T when all did, 0 for ``Sequential``) and
        ``fell_back`` (``fallback="sequential"`` computed the states from ``sequential_from`` on step by
        step). Callers may add their own figures (``run_chain`` adds ``near_threshold`` and ``lle``).
        Each is also an attribute of the Solution (``solution.num_iters``).
    """

    states: Any
    converged: jax.Array
    result: jax.Array
    stats: dict[str, Any]

    @property
    def message(self) -> str:
        """What each code in `result` means (several, '; '-joined, for a batch of solves)."""
        return messages(self.result)

    @property
    def num_iters(self) -> jax.Array:
        """``stats["num_iters"]``: iterations taken (0 for ``Sequential``)."""
        return self.stats["num_iters"]

    @property
    def residual(self) -> jax.Array:
        """``stats["residual"]``: max over t of ``|states[t] - fn(states[t-1], inputs[t])|``."""
        return self.stats["residual"]

    @property
    def sequential_from(self) -> jax.Array:
        """``stats["sequential_from"]``: the first state computed step by step (T when none was)."""
        return self.stats["sequential_from"]

    @property
    def fell_back(self) -> jax.Array:
        """``stats["fell_back"]``: whether the sequential fallback ran."""
        return self.stats["fell_back"]


def solution(states, converged, result, *, num_iters, residual, sequential_from, fell_back, **more) -> Solution:
    """A Solution from its parts, the statistics named (``more``: further figures for ``stats``)."""
    stats = {
        "num_iters": num_iters,
        "residual": residual,
        "sequential_from": sequential_from,
        "fell_back": fell_back,
        **more,
    }
    return Solution(states, converged, result, stats)
