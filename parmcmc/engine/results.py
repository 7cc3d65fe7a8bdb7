"""How a solve ended: the result codes with their messages, and how an unconverged solve is reported.

`RESULTS` is the one home of the codes a solve returns in `Solution.result` (int32 arrays, batched under
vmap) and of the text that explains each; as an `enum.IntEnum` its members compare equal to those int32
codes and can be used inside `jnp.where`. An unconverged solve raises `SolveError` (throw=True) or warns
with `NotConvergedWarning`, on the host when the result is concrete and through a callback under jit; a
solve that was finished by the sequential fallback (solve's fallback="sequential") is reported by its
callers with `warn_if_fell_back` as a `FallbackWarning`.
"""

import contextlib
import contextvars
import enum
import warnings
from typing import Any

import jax
import jax.experimental
import numpy as np
from jax.core import Tracer

__all__ = [
    "MAX_ITERS",
    "NONFINITE",
    "RESULTS",
    "RUNNING",
    "SUCCESSFUL",
    "FallbackWarning",
    "NotConvergedWarning",
    "SolveError",
    "failure_message",
    "fallback_warning",
    "throw_if_failed",
    "unconverged_reported_by_caller",
    "warn_if_fell_back",
    "warn_if_unconverged",
]


class RESULTS(enum.IntEnum):
    """The outcome codes of a solve, each with its `message` and `label`.

    `message` says what happened and what to try; `label` is a short name, as written into the ArviZ
    attributes and diagnostics.

    Members are ints: ``int(sol.result) == RESULTS.successful`` and ``jnp.where(ok, RESULTS.successful,
    RESULTS.max_iters)`` work on the int32 codes of a `Solution`.
    """

    running = 0, "running", "the solve did not finish (internal error: please report it)"
    successful = 1, "converged", "converged"
    max_iters = (
        2,
        "max_iters",
        "did not converge within max_iters iterations (or, with patience, was projected not to). "
        "Raise max_iters, use a solver with a better "
        "Jacobian approximation (DEER or ELK instead of Jacobi/Picard/QuasiDEER), or check whether the "
        "dynamics are unpredictable (positive Lyapunov exponent), where sequential evaluation is the right tool",
    )
    nonfinite = (
        3,
        "non-finite",
        "fn returned a non-finite value (NaN or inf) at a state after the exact prefix: the sequential "
        "solution itself is not finite there (non-finite Newton updates are rejected, not returned). "
        "Check fn on the sequential solution",
    )

    label: str
    message: str

    def __new__(cls, value: int, label: str, message: str):
        """A member: its int code, its short label and its message."""
        member = int.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.message = message
        return member


# The names the codes had before RESULTS, kept for existing imports.
RUNNING, SUCCESSFUL, MAX_ITERS, NONFINITE = RESULTS.running, RESULTS.successful, RESULTS.max_iters, RESULTS.nonfinite


class SolveError(RuntimeError):
    """A solve that did not converge, raised by solve(..., throw=True)."""


class NotConvergedWarning(UserWarning):
    """solve()/run_chain() returned a result that did not converge (throw=False).

    The text names the cause, the iterations, the residual and what to try. `throw=True` raises SolveError instead.
    """


class FallbackWarning(UserWarning):
    """A parallel solve failed and the chain was finished sequentially from its prefix.

    Every step is within tolerance: the sequential replay where the dynamics contract, a valid chain of the
    sampler otherwise.
    """


# Set while a caller that reports unconverged results itself (sample(), the diagnose pilot) runs solve.
_REPORTED_BY_CALLER = contextvars.ContextVar("parmcmc_unconverged_reported_by_caller", default=False)


@contextlib.contextmanager
def unconverged_reported_by_caller():
    """Within this context solve() does not warn about an unconverged result: the caller reports it."""
    token = _REPORTED_BY_CALLER.set(True)
    try:
        yield
    finally:
        _REPORTED_BY_CALLER.reset(token)


def messages(result) -> str:
    """The messages of every code in `result` (an int32 array of any shape), in code order."""
    codes = sorted({int(c) for c in np.ravel(np.asarray(result))})
    return "; ".join(RESULTS(c).message for c in codes)


def failure_message(solver, converged, result, num_iters, residual, fell_back=None) -> str:
    """'' for a converged solve; else what failed, after how many iterations, the residual, what to try."""
    converged, result = np.asarray(converged), np.asarray(result)
    if bool(np.all(converged)):
        return ""
    bad = ~converged
    codes = sorted({int(c) for c in np.ravel(result[bad] if result.shape == bad.shape else result)} - {SUCCESSFUL})
    why = "; ".join(RESULTS(c).message for c in codes) or RESULTS.nonfinite.message
    if not solver.parallel:
        why = "fn returned a non-finite value (NaN or inf) along the sequence; check fn on these states"
    which = "" if bad.size == 1 else f" in {int(bad.sum())} of {bad.size} batched solves"
    seq = ""
    if fell_back is not None and bool(np.any(np.asarray(fell_back)[bad] if np.ndim(fell_back) else fell_back)):
        seq = " The sequential fallback ran too and did not help: fn is not finite along the sequence."
    return (
        f"solve with {type(solver).__name__} failed{which} after {int(np.max(num_iters))} iterations "
        f"(residual {float(np.max(np.asarray(residual, dtype=np.float64))):.3g}): {why}.{seq} The states "
        "returned are not the solution: check Solution.converged before using them, pass "
        "fallback='sequential' to finish a failed solve step by step, or throw=True to raise."
    )


def _traced(args) -> bool:
    return any(isinstance(a, Tracer) for a in args)


def throw_if_failed(sol, solver) -> None:
    """Raise SolveError for an unconverged solve.

    On the host when the result is concrete, or, under an outer jit/vmap, from an io_callback when the computation
    runs (as equinox's error_if raises from a callback; an io_callback is effectful, so XLA never drops it, and it
    sees the whole batch at once).
    """
    args = (sol.converged, sol.result, sol.num_iters, sol.residual, sol.fell_back)

    def fail(*values):
        msg = failure_message(solver, *values)
        if msg:
            raise SolveError(msg)

    if _traced(args):
        jax.experimental.io_callback(fail, None, *args, ordered=False)
    else:
        fail(*args)


def warn_if_unconverged(sol, solver) -> None:
    """Warn NotConvergedWarning for an unconverged result (under an outer jit: when the computation runs).

    Called from solve(): the warning points at solve's caller.
    """
    args = (sol.converged, sol.result, sol.num_iters, sol.residual, sol.fell_back)

    def warn(*values):
        msg = failure_message(solver, *values)
        if msg:
            warnings.warn(msg, NotConvergedWarning, stacklevel=4)

    if _traced(args):
        jax.debug.callback(warn, *args)
    else:
        warn(*args)


def fallback_warning(solution: Any, lle: Any = None, *, call: str = "solve", solver: Any = None) -> str:
    """The text of the warning for a solve that fell back to sequential evaluation ('' if none did).

    `solution` is an engine Solution or anything with its fields fell_back, result, num_iters,
    sequential_from, converged and states (or positions, as a ChainResult of parmcmc.chain has).

    Names the cause (from the Solution's result codes), how many iterations were spent, where the
    sequential continuation began, and the LLE estimate when one is given (a float, a LyapunovEstimate
    or a Diagnosis of parmcmc.predictability), with what its sign means. Works on batched Solutions (vmapped chains).
    """
    fell = np.asarray(solution.fell_back).ravel()
    if not fell.any():
        return ""
    codes = np.asarray(solution.result).ravel()[fell]
    iters = int(np.max(np.asarray(solution.num_iters).ravel()[fell]))
    starts = np.asarray(solution.sequential_from).ravel()[fell]
    states = solution.states if hasattr(solution, "states") else solution.positions  # Solution or ChainResult
    T = int(jax.tree_util.tree_leaves(states)[0].shape[np.ndim(solution.converged)])
    name = f" ({type(solver).__name__})" if solver is not None else ""
    causes = []
    if (codes == RESULTS.max_iters).any():
        causes.append(f"did not converge within its budget of {iters} iterations")
    if (codes == RESULTS.nonfinite).any():
        causes.append("met a non-finite iterate (NaN or inf)")
    which = "" if fell.size == 1 else f" in {int(fell.sum())} of {fell.size} chains"
    where = (
        f"state index {int(starts.min())}"
        if starts.min() == starts.max()
        else f"state indices {int(starts.min())}..{int(starts.max())}"
    )
    if starts.max() == 0:  # a block solve's fallback (engine/blocks.py) reruns the chain from its start
        how = (
            f"the chain of {T} states was computed step by step from its start instead, without the parallel "
            f"speed-up, every step checked. This is the sequential chain, up to the rounding of another compiled "
            f"program, which a chaotic chain (positive LLE) can grow: it is then a valid chain of the same "
            f"sampler but not necessarily the sequential replay."
        )
    else:
        how = (
            f"it continued sequentially from {where} (0-based) of {T}: the states before it satisfy the step map "
            f"to tolerance and the rest continues that prefix step by step, computed without the parallel "
            f"speed-up. Where the dynamics contract this is the sequential chain; on a chaotic chain (positive "
            f"LLE) it is a valid chain of the same sampler but not necessarily the sequential replay."
        )
    msg = f"{call}: the parallel solve{name} {' and '.join(causes) or 'failed'}{which}; {how}"
    if lle is not None:
        lle = getattr(lle, "lyapunov", lle)  # a Diagnosis carries its LyapunovEstimate
        estimate = hasattr(lle, "lle")  # a LyapunovEstimate (the engine does not import predictability)
        text = str(lle) if estimate else f"{float(lle):.4g} per step"
        value = float(lle.lle) if estimate else float(lle)
        if value >= 0:
            hint = "not negative: the dynamics are unpredictable and sequential evaluation is the right tool"
        else:
            hint = "negative: raise max_iters, or use a solver with a better Jacobian such as DEER or ELK"
        msg += f" Estimated largest Lyapunov exponent of the step map: {text} ({hint})."
    return msg


def warn_if_fell_back(
    solution: Any, lle: Any = None, *, call: str = "solve", solver: Any = None, stacklevel: int = 3
) -> bool:
    """Issue one FallbackWarning if the solution fell back; return whether it did.

    `lle` may be a callable returning the estimate, evaluated only when a warning is due (it costs a sequential
    pilot).
    """
    if not np.asarray(solution.fell_back).any():
        return False
    lle = lle() if callable(lle) else lle
    warnings.warn(fallback_warning(solution, lle, call=call, solver=solver), FallbackWarning, stacklevel=stacklevel)
    return True
