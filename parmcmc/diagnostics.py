"""Predictability diagnostics: will a parallel Newton solve of x_t = f(x_{t-1}, input_t) pay?

Parallel Newton methods converge in few iterations when the dynamics forget perturbations (largest
Lyapunov exponent, LLE, below zero) and need about as many iterations as there are steps when they
amplify them (DESIGN.md). This module measures both ingredients on a short pilot and predicts:

1. `lyapunov_exponent`: the LLE of the step map along a sequential pilot trajectory. P unit tangent
   vectors are pushed through the step Jacobians with forward-mode products (jax.linearize), renormalised
   every step; the LLE is the time average of the log growth, after a burn-in that lets the vectors
   align with the most expanding direction.
2. `predict_iterations`: the iteration model. A measured pilot solve of T_p steps that converged in k_p
   iterations is extrapolated to T steps as

       k(T) = k_p * log2(T) / log2(T_p)       if the LLE is clearly negative ("log" growth):
                                              lle + 2 * max(stderr, spread) < 0
       k(T) = min(T, k_p * T / T_p)           otherwise ("linear" growth),

   and a pilot that did not converge in its budget is extrapolated from the progress it made: every
   iteration of an LDS solver makes at least one more state exact, and the pilot made `p` states exact
   in k iterations, so k(T) = min(T, k * T / p) ("linear"). A pilot that met a non-finite iterate
   predicts k(T) = inf: Newton overflowed, and the full solve would have to fall back.
3. `diagnose_recurrence`: both, and the verdict. Parallel pays at T iff the LLE is finite, the pilot
   converged, and the predicted iterations fit the budget k(T) <= iters_per_log2T * log2(T) (default
   8 log2 T; the published GPU wins took about 5 and 8.5 iterations per log2 T, see DESIGN.md).
   The LLE enters through the growth model: only a clearly negative LLE licenses the log-T
   extrapolation; otherwise the pilot must be cheap enough to stay in budget when scaled linearly in T.
   Under the log model the budget at T is met iff it is at T_p, so the pilot's budget is that at T_p.

The engine knows nothing about MCMC, and neither does this module: samplers are wrapped elsewhere.
"""

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from parmcmc.engine.results import RESULTS
from parmcmc.engine.solve import Solution, solve, unconverged_reported_by_caller
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.jitcache import program_jit

DEFAULT_ITERS_PER_LOG2T = 8.0
_Z = 2.0  # how many uncertainties below zero an LLE must lie to count as "clearly negative"


class FallbackWarning(UserWarning):
    """A parallel solve failed and the chain was finished sequentially from its prefix (every step within
    tolerance; the sequential replay where the dynamics contract, a valid chain of the sampler otherwise)."""


class LyapunovEstimate(NamedTuple):
    """The largest Lyapunov exponent of a step map along one trajectory, per step (natural log).

    lle:       mean over probes of each probe's time-averaged log growth after burn-in.
    stderr:    standard error of the time average (batch means over `num_batches` blocks of the
               probe-averaged log-growth series): the statistical error of a finite pilot.
    spread:    standard deviation across probes: how much the answer depends on the initial direction
               (near zero once every probe has aligned with the most expanding direction).
    per_probe: (P,) numpy array, each probe's estimate.
    num_steps: the number of steps averaged (after burn-in).
    """

    lle: float
    stderr: float
    spread: float
    per_probe: np.ndarray
    num_steps: int

    @property
    def uncertainty(self) -> float:
        return max(self.stderr, self.spread)

    def __str__(self) -> str:
        return f"{self.lle:.4g} ± {self.uncertainty:.2g} per step"


class Diagnosis(NamedTuple):
    """Whether a parallel solve of T steps pays, and why.

    lle, spread:     the LLE estimate and its uncertainty (max of stderr and probe spread).
    predicted_iters: Newton iterations predicted at T (float; inf if the pilot met a non-finite iterate).
    T:               the length predicted for.
    solver:          the solver's class name.
    parallel_pays:   finite LLE, converged pilot, and predicted_iters <= budget (module docstring).
    reason:          one or two sentences a user can act on.
    budget:          iters_per_log2T * log2(T), the iteration count above which parallel does not pay.
    growth:          "log" or "linear", the model used to extrapolate the pilot.
    pilot_T, pilot_iters, pilot_result: the measured pilot solve (result: "converged", "max_iters" or
                     "non-finite"); pilot_prefix: the states it made exact.
    lyapunov:        the full LyapunovEstimate.
    """

    lle: float
    spread: float
    predicted_iters: float
    T: int
    solver: str
    parallel_pays: bool
    reason: str
    budget: float
    growth: str
    pilot_T: int
    pilot_iters: int
    pilot_result: str
    pilot_prefix: int
    lyapunov: LyapunovEstimate

    def predicted_at(self, T: int) -> float:
        """The same model's prediction for another chain length T (the pilot is not rerun)."""
        return _extrapolate(self.pilot_result, self.pilot_iters, self.pilot_T, self.pilot_prefix, self.growth, T)


def lyapunov_exponent(
    fn: Callable,
    x0: Any,
    inputs: Any,
    *,
    num_probes: int = 8,
    key: jax.Array | None = None,
    burn_in: int | None = None,
    num_batches: int = 20,
) -> LyapunovEstimate:
    """Estimate the largest Lyapunov exponent of x_t = fn(x_{t-1}, inputs[t]) along its trajectory from x0.

    A sequential lax.scan runs the recurrence and carries `num_probes` tangent vectors (random unit
    vectors drawn from `key`, default key 0), each pushed through the step Jacobian with a forward-mode
    product and renormalised every step. The log growths of the first `burn_in` steps (default T // 10)
    are discarded. Growth factors of zero are clamped at the dtype's smallest normal number, so a map
    that collapses every direction gets a very negative, finite estimate. Returns Python floats (not
    jittable); a non-finite Jacobian or state gives lle = nan.
    """
    num_steps = _num_steps(inputs, "lyapunov_exponent")
    burn_in = num_steps // 10 if burn_in is None else burn_in
    if not (isinstance(num_probes, int) and num_probes >= 1):
        raise ValueError(f"lyapunov_exponent: num_probes={num_probes!r} must be an integer >= 1.")
    if not (isinstance(burn_in, int) and 0 <= burn_in <= num_steps - 2):
        raise ValueError(
            f"lyapunov_exponent: burn_in={burn_in!r} must be an integer in [0, T - 2] for T={num_steps} steps."
        )
    x, unravel = ravel_pytree(x0)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"lyapunov_exponent: x0 must hold floating-point arrays; got dtype {x.dtype}.")
    key = jax.random.key(0) if key is None else key
    logs = _log_growth(lambda y, u: ravel_pytree(fn(unravel(y), u))[0].astype(y.dtype), x, inputs, num_probes, key)
    logs = np.asarray(logs, dtype=np.float64)[burn_in:]  # (N, P)
    per_probe = logs.mean(axis=0)
    series = logs.mean(axis=1)
    batches = np.array_split(series, min(num_batches, len(series)))
    means = np.array([b.mean() for b in batches])
    stderr = float(means.std(ddof=1) / math.sqrt(len(means))) if len(means) > 1 else float("inf")
    spread = float(per_probe.std(ddof=1)) if num_probes > 1 else 0.0
    return LyapunovEstimate(float(per_probe.mean()), stderr, spread, per_probe, len(series))


def _log_growth(flat_fn, x0, inputs, num_probes, key):
    """(T, P) log growth of P tangent vectors along the trajectory, renormalised every step."""
    V = jax.random.normal(key, (num_probes, x0.shape[0]), x0.dtype)
    V = V / jnp.linalg.norm(V, axis=1, keepdims=True)
    tiny = jnp.finfo(x0.dtype).tiny

    def step(carry, u):
        x, V = carry
        fx, push = jax.linearize(lambda y: flat_fn(y, u), x)
        W = jax.vmap(push)(V)
        norms = jnp.maximum(jnp.linalg.norm(W, axis=1), tiny)
        return (fx, W / norms[:, None]), jnp.log(norms)

    return program_jit(lambda x, V, u: jax.lax.scan(step, (x, V), u)[1])(x0, V, inputs)


def iteration_budget(T: int, iters_per_log2T: float = DEFAULT_ITERS_PER_LOG2T) -> float:
    """The most Newton iterations at which a parallel solve of T steps is said to pay: c * log2(T)."""
    return iters_per_log2T * math.log2(max(T, 2))


def predict_iterations(pilot_iters: float, pilot_T: int, T: int, *, growth: str) -> float:
    """Extrapolate a pilot's iteration count from pilot_T steps to T steps (module docstring).

    growth="log":    k_p * log2(T) / log2(T_p), the O(log T) of predictable dynamics, capped at T;
    growth="linear": k_p * T / T_p, capped at T (every iteration makes one more state exact).
    """
    if growth not in ("log", "linear"):
        raise ValueError(f"predict_iterations: growth={growth!r}; use 'log' or 'linear'.")
    if not pilot_T >= 2 or not T >= 1:
        raise ValueError(f"predict_iterations: need pilot_T >= 2 and T >= 1; got pilot_T={pilot_T}, T={T}.")
    if not math.isfinite(pilot_iters):
        return float("inf")
    scale = math.log2(max(T, 2)) / math.log2(pilot_T) if growth == "log" else T / pilot_T
    return float(min(T, pilot_iters * scale))


def diagnose_recurrence(
    fn: Callable,
    x0: Any,
    inputs: Any,
    *,
    solver: AbstractSolver,
    T: int | None = None,
    pilot_steps: int = 1024,
    num_probes: int = 8,
    key: jax.Array | None = None,
    burn_in: int | None = None,
    iters_per_log2T: float = DEFAULT_ITERS_PER_LOG2T,
    atol: float | None = None,
    rtol: float | None = None,
) -> Diagnosis:
    """Estimate the LLE, run a parallel pilot solve, predict the iterations at T, and give the verdict.

    inputs:      the pilot's inputs (leading axis T_in). The LLE is measured on all of them (a sequential
                 scan is cheap: a few thousand steps give a standard error of about 0.01-0.02), the
                 parallel pilot on the first T_p = min(pilot_steps, T_in, T) of them.
    solver:      the parallel solver whose iterations are predicted (not Sequential).
    T:           the chain length to predict for (default T_in).
    iters_per_log2T: the budget constant c: parallel pays only if k(T) <= c * log2(T).
    atol, rtol:  the tolerances of the pilot solve (solve's defaults by dtype).
    """
    if not isinstance(solver, AbstractSolver) or not solver.parallel:
        raise TypeError(
            f"diagnose_recurrence: solver must be a parallel solver instance such as QuasiDEER() or DEER(); "
            f"got {solver!r}."
        )
    num_in = _num_steps(inputs, "diagnose_recurrence")
    T = num_in if T is None else T
    if not (isinstance(T, int) and T >= 2):
        raise ValueError(f"diagnose_recurrence: T={T!r} must be an integer >= 2.")
    if not (isinstance(pilot_steps, int) and pilot_steps >= 2):
        raise ValueError(f"diagnose_recurrence: pilot_steps={pilot_steps!r} must be an integer >= 2.")
    if not iters_per_log2T > 0:
        raise ValueError(f"diagnose_recurrence: iters_per_log2T={iters_per_log2T!r} must be > 0.")
    if num_in < 2:
        raise ValueError(f"diagnose_recurrence: inputs hold {num_in} step(s); a pilot needs at least 2.")

    est = lyapunov_exponent(fn, x0, inputs, num_probes=num_probes, key=key, burn_in=burn_in)
    T_p = min(pilot_steps, num_in, T)
    pilot_budget = max(1, math.floor(iteration_budget(T_p, iters_per_log2T)))
    pilot_inputs = jax.tree_util.tree_map(lambda a: a[:T_p], inputs)
    with unconverged_reported_by_caller():  # a pilot that does not converge is an answer, not a fault
        sol = solve(fn, x0, pilot_inputs, solver, max_iters=pilot_budget, atol=atol, rtol=rtol)
    k_p, prefix = int(sol.num_iters), int(sol.sequential_from)
    result = RESULTS(int(sol.result)).label
    converged = bool(sol.converged)

    predictable = math.isfinite(est.lle) and est.lle + _Z * est.uncertainty < 0
    growth = "log" if predictable and converged else "linear"
    predicted = _extrapolate(result, k_p, T_p, prefix, growth, T)
    budget = iteration_budget(T, iters_per_log2T)
    pays = math.isfinite(est.lle) and converged and predicted <= budget
    name = type(solver).__name__
    reason = _reason(est, predictable, pays, name, T_p, k_p, pilot_budget, result, prefix, T, predicted, growth, budget)
    return Diagnosis(
        est.lle, est.uncertainty, predicted, T, name, pays, reason, budget, growth, T_p, k_p, result, prefix, est
    )


def _extrapolate(result, k_p, T_p, prefix, growth, T):
    if result == "converged":  # a pilot solved by its initial guess (k_p = 0) still costs an iteration at T
        return predict_iterations(max(k_p, 1), T_p, T, growth=growth)
    if result == "non-finite":
        return float("inf")
    return float(min(T, k_p * T / max(prefix, 1)))  # progress rate: k_p iterations made `prefix` states exact


def _reason(est, predictable, pays, name, T_p, k_p, pilot_budget, result, prefix, T, predicted, growth, budget):
    if not math.isfinite(est.lle):
        lle = "the LLE could not be estimated: the step map or its Jacobian is not finite along the pilot"
    elif predictable:
        lle = f"LLE {est} < 0 (predictable: the dynamics forget perturbations)"
    elif est.lle - _Z * est.uncertainty > 0:
        lle = (
            f"LLE {est} is positive (perturbations grow, and the conditioning of the linearised chain "
            f"with them), so the pilot is extrapolated linearly in T"
        )
    else:
        lle = f"LLE {est} is not clearly negative (perturbations persist), so the pilot is extrapolated linearly in T"
    its = lambda k: f"{k} iteration{'s' if k != 1 else ''}"
    if result == "converged":
        pilot = f"the {name} pilot of {T_p} steps converged in {its(k_p)}"
    elif result == "non-finite":
        pilot = (
            f"the {name} pilot of {T_p} steps met a non-finite iterate after {its(k_p)} "
            f"(Newton overflowed on unstable linearised dynamics)"
        )
    else:
        pilot = (
            f"the {name} pilot of {T_p} steps did not converge within {its(pilot_budget)} "
            f"(it made {prefix} states exact)"
        )
    capped = ", capped at T: one more exact state per iteration" if predicted == T else ""
    pred = (
        f"predicted {predicted:.0f} iterations at T={T} ({growth} growth{capped}), "
        f"against a budget of {budget:.0f} = {budget / math.log2(T):.3g} log2(T)"
    )
    if pays:
        return f"Parallel pays: {lle}; {pilot}; {pred}."
    if not predictable or result == "converged":
        advice = "Run sequentially."
    elif name.startswith("Quasi"):
        advice = "Run sequentially, or try a solver with a better Jacobian approximation (DEER, ELK)."
    else:
        advice = "Run sequentially, or try damped steps (ELK, or DEER with damping/clip)."
    return f"Sequential: {lle}; {pilot}; {pred}. {advice}"


def fallback_warning(solution: Solution, lle: Any = None, *, call: str = "solve", solver: Any = None) -> str:
    """The text of the warning for a solve that fell back to sequential evaluation ('' if none did).

    `solution` is an engine Solution or anything with its fields fell_back, result, num_iters,
    sequential_from, converged and states (or positions, as a ChainResult of parmcmc.chain has).

    Names the cause (from the Solution's result codes), how many iterations were spent, where the
    sequential continuation began, and the LLE estimate when one is given (a float, a LyapunovEstimate
    or a Diagnosis), with what its sign means. Works on batched Solutions (vmapped chains).
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
    msg = (
        f"{call}: the parallel solve{name} {' and '.join(causes) or 'failed'}{which}; it continued "
        f"sequentially from {where} (0-based) of {T}: the states before it satisfy the step map to "
        f"tolerance and the rest continues that prefix step by step, computed without the parallel "
        f"speed-up. Where the dynamics contract this is the sequential chain; on a chaotic chain (positive "
        f"LLE) it is a valid chain of the same sampler but not necessarily the sequential replay."
    )
    if lle is not None:
        if isinstance(lle, Diagnosis):
            lle = lle.lyapunov
        text = str(lle) if isinstance(lle, LyapunovEstimate) else f"{float(lle):.4g} per step"
        value = lle.lle if isinstance(lle, LyapunovEstimate) else float(lle)
        if value >= 0:
            hint = "not negative: the dynamics are unpredictable and sequential evaluation is the right tool"
        else:
            hint = "negative: raise max_iters, or use a solver with a better Jacobian such as DEER or ELK"
        msg += f" Estimated largest Lyapunov exponent of the step map: {text} ({hint})."
    return msg


def warn_if_fell_back(
    solution: Solution, lle: Any = None, *, call: str = "solve", solver: Any = None, stacklevel: int = 3
) -> bool:
    """Issue one FallbackWarning if the solution fell back; return whether it did. `lle` may be a
    callable returning the estimate, evaluated only when a warning is due (it costs a sequential pilot)."""
    if not np.asarray(solution.fell_back).any():
        return False
    lle = lle() if callable(lle) else lle
    warnings.warn(fallback_warning(solution, lle, call=call, solver=solver), FallbackWarning, stacklevel=stacklevel)
    return True


def _num_steps(inputs, call) -> int:
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves or any(jnp.ndim(a) == 0 for a in leaves) or len({jnp.shape(a)[0] for a in leaves}) != 1:
        raise ValueError(f"{call}: inputs must be a pytree of arrays sharing a leading axis T.")
    return int(jnp.shape(leaves[0])[0])
