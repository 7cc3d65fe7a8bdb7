"""Will a parallel Newton solve of x_t = f(x_{t-1}, input_t) pay? The iteration model and the verdict.

Parallel Newton methods converge in few iterations when the dynamics forget perturbations (largest
Lyapunov exponent, LLE, below zero; `parmcmc.predictability.lyapunov`) and need about as many
iterations as there are steps when they amplify them (docs/design.md). From the LLE and a short
parallel pilot solve:

1. `predict_iterations`: the iteration model. A measured pilot solve of T_p steps that converged in k_p
   iterations is extrapolated to T steps as

       k(T) = k_p * log2(T) / log2(T_p)       if the LLE is clearly negative ("log" growth):
                                              lle + 2 * max(stderr, spread) < 0
       k(T) = min(T, k_p * T / T_p)           otherwise ("linear" growth),

   and a pilot that did not converge in its budget is extrapolated from the progress it made: every
   iteration of an LDS solver makes at least one more state exact, and the pilot made `p` states exact
   in k iterations, so k(T) = min(T, k * T / p) ("linear"). A pilot that met a non-finite iterate
   predicts k(T) = inf: Newton overflowed, and the full solve would have to fall back.
2. `diagnose_recurrence`: the LLE, the pilot and the verdict. Parallel pays at T iff the LLE is finite,
   the pilot converged, and the predicted iterations fit the budget k(T) <= iters_per_log2T * log2(T)
   (default 8 log2 T; docs/predictability.md). The LLE enters through the growth model: only a clearly
   negative LLE licenses the log-T extrapolation; otherwise the pilot must be cheap enough to stay in
   budget when scaled linearly in T. Under the log model the budget at T is met iff it is at T_p, so the
   pilot's budget is that at T_p.

Neither the engine nor this module knows about MCMC: samplers are wrapped in `diagnose.py`.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util

from parmcmc.arguments import check_int
from parmcmc.engine.blocks import Shooting, block_size
from parmcmc.engine.results import RESULTS
from parmcmc.engine.solve import default_tolerance, solve, unconverged_reported_by_caller
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.predictability.lyapunov import LyapunovEstimate, _num_steps, lyapunov_exponent

__all__ = [
    "DEFAULT_ITERS_PER_LOG2T",
    "Diagnosis",
    "diagnose_recurrence",
    "iteration_budget",
    "predict_block_iterations",
    "predict_iterations",
]

DEFAULT_ITERS_PER_LOG2T = 8.0
_Z = 2.0  # how many uncertainties below zero an LLE must lie to count as "clearly negative"


class Diagnosis(NamedTuple):
    """Whether a parallel solve of T steps pays, and why.

    Attributes
    ----------
    lle, spread
        The LLE estimate and its uncertainty (max of stderr and probe spread).
    predicted_iters
        Newton iterations predicted at T (float; inf if the pilot met a non-finite iterate).
    T
        The length predicted for.
    solver
        The solver's class name.
    parallel_pays
        Finite LLE, converged pilot, and predicted_iters <= budget (module docstring).
    reason
        One or two sentences a user can act on.
    budget
        ``iters_per_log2T * log2(T)``, the iteration count above which parallel does not pay.
    growth
        "log" or "linear", the model used to extrapolate the pilot.
    pilot_T, pilot_iters, pilot_result
        The measured pilot solve (result: "converged", "max_iters" or "non-finite").
    pilot_prefix
        The states the pilot made exact.
    lyapunov
        The full LyapunovEstimate.
    block, block_iters, block_depth
        The multiple-shooting solve (solve(..., block=B), engine/blocks.py) with B from the LLE (`block_size`): its
        predicted block iterations (`predict_block_iterations`) and sequential depth (block_iters + 2) * B, in
        steps, to set against T (the sequential chain) and predicted_iters (a plain solve).
    chain_iters
        A block pilot's predicted block iterations, per chain (several with diagnose's num_chains, whose other
        figures are the worst chain's). Empty for a plain solve.

    When the solver diagnosed is a block solve (a Shooting solver), the pilot is that block solve and every
    iteration figure counts block iterations (predicted_iters = block_iters; budget: the fail-fast budget at
    which sample()'s block solve hands over, depth T / 2); see `parmcmc.predictability.block_verdict`.
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
    block: int = 0
    block_iters: float = float("nan")
    block_depth: float = float("nan")
    chain_iters: tuple = ()

    def predicted_at(self, T: int) -> float:
        """The same model's prediction for another chain length T (the pilot is not rerun)."""
        if self.solver.startswith("Shooting("):  # block iterations, by the block model
            from parmcmc.predictability.block_verdict import extrapolate_blocks

            return extrapolate_blocks(
                self.pilot_result, self.pilot_iters, self.pilot_T, self.pilot_prefix, self.block, T
            )
        return _extrapolate(self.pilot_result, self.pilot_iters, self.pilot_T, self.pilot_prefix, self.growth, T)


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

    Parameters
    ----------
    inputs
        The pilot's inputs (leading axis T_in). The LLE is measured on all of them (a sequential scan is cheap: a
        few thousand steps give a standard error of about 0.01-0.02), the parallel pilot on the first T_p =
        min(pilot_steps, T_in, T) of them.
    solver
        The parallel solver whose iterations are predicted (not Sequential).
    T
        The chain length to predict for (default T_in).
    iters_per_log2T
        The budget constant c: parallel pays only if k(T) <= c * log2(T).
    atol, rtol
        The tolerances of the pilot solve (solve's defaults by dtype).
    """
    if not isinstance(solver, AbstractSolver) or not solver.parallel:
        raise TypeError(
            f"diagnose_recurrence: solver must be a parallel solver instance such as QuasiDEER() or DEER(); "
            f"got {solver!r}."
        )
    num_in = _num_steps(inputs, "diagnose_recurrence")
    T = num_in if T is None else T
    check_int("T", T, minimum=2, call="diagnose_recurrence")
    check_int("pilot_steps", pilot_steps, minimum=2, call="diagnose_recurrence")
    if not iters_per_log2T > 0:
        raise ValueError(f"diagnose_recurrence: iters_per_log2T={iters_per_log2T!r} must be > 0.")
    if num_in < 2:
        raise ValueError(f"diagnose_recurrence: inputs hold {num_in} step(s); a pilot needs at least 2.")

    est = lyapunov_exponent(fn, x0, inputs, num_probes=num_probes, key=key, burn_in=burn_in)
    if isinstance(solver, Shooting):  # a block solve: its own pilot and model (block_verdict.py)
        from parmcmc.predictability.block_verdict import block_pilot

        fields = block_pilot(fn, x0, inputs, solver, T, pilot_steps, est, atol, rtol)
        name = f"Shooting({type(solver.solver).__name__}, {fields['block']})"
        return Diagnosis(lle=est.lle, spread=est.uncertainty, T=T, solver=name, lyapunov=est, **fields)
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
    tol = default_tolerance(jax.flatten_util.ravel_pytree(x0)[0].dtype) if atol is None else max(atol, 1e-300)
    block = block_size(est.lle if predictable else None, T, tol=tol)
    block_iters = predict_block_iterations(est.lle if predictable else float("nan"), block, T, tol=tol)
    return Diagnosis(
        est.lle,
        est.uncertainty,
        predicted,
        T,
        name,
        pays,
        reason,
        budget,
        growth,
        T_p,
        k_p,
        result,
        prefix,
        est,
        block,
        block_iters,
        (block_iters + 2) * block,
    )


def predict_block_iterations(lle: float, block: int, T: int, *, tol: float = 1e-11, scale: float = 1.0) -> float:
    """Block iterations of a multiple-shooting solve with blocks of `block` steps (engine/blocks.py).

    Once the accept decisions of a chain started elsewhere have coupled with the true chain's, an error
    of a block's start shrinks by e^(lle B) over the block, so each block-Jacobi sweep multiplies the
    error of every block end by that factor: ceil(ln(scale / tol) / (|lle| B)) sweeps take an O(scale)
    guess to the tolerance. The pin makes one more block exact per sweep, so never more than the
    ceil(T / B) blocks. An LLE that is not negative (or NaN) predicts ceil(T / B): block-Jacobi's floor.
    Measured (docs/convergence.md): eight schools, HMC, B = 64 / 128 / 256, 2-5 / 1-2 / 1 iterations.
    """
    num_blocks = -(-T // block)
    if not math.isfinite(lle) or lle >= 0:
        return float(num_blocks)
    sweeps = math.ceil(math.log(max(scale, 10 * tol) / tol) / (-lle * block))
    return float(min(num_blocks, max(1, sweeps)))


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
