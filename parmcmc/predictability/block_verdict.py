"""The verdict for a multiple-shooting solve (engine/blocks.py): a block pilot, extrapolated over blocks.

A block solve's iterations are not those of a plain solve: inside a block every step is taken sequentially,
so the iteration only has to find the block ends, and a chain that contracts does that once its accept
decisions have coupled with the true chain's, block by block, whatever T is. So the pilot is the block solve
itself on T_p steps (n_p = ceil(T_p / B) blocks), under the fail-fast budget sample() gives it
(`engine.blocks.fail_fast_budget`), and

    k(T) = k_p * log2(n) / log2(n_p)      if the pilot converged within its budget ("log": the slowest of
                                          n blocks to couple, the largest of n waiting times, grows like log n)
    k(T) = min(n, k_p * n / p)            otherwise ("linear": the pilot's rate, p exact blocks in k_p
                                          iterations; the pin's floor is one block per iteration),

with n = ceil(T / B). Parallel pays iff the LLE is finite and not clearly positive (a chaotic chain's block
ends are amplified rounding: docs/convergence.md), the pilot converged, and k(T) fits the budget at T, the
block iterations whose depth (k + 2) B is at most T / 2. That budget is the one sample()'s block solve stops
at, so a "sequential" verdict predicts the fallback, and "parallel" predicts none.
"""

import math

import jax

from parmcmc.engine.blocks import block_of, fail_fast_budget
from parmcmc.engine.results import RESULTS
from parmcmc.engine.solve import solve, unconverged_reported_by_caller

__all__ = ["block_pilot", "extrapolate_blocks"]

_Z = 2.0  # an LLE more than this many uncertainties above zero is "clearly positive"


def extrapolate_blocks(result: str, k_p: int, T_p: int, prefix: int, block: int, T: int) -> float:
    """The block iterations at T of a block pilot of T_p steps (module docstring); prefix: its exact steps."""
    n_p, n = -(-T_p // block), -(-T // block)
    if result == "converged":
        return min(float(n), max(k_p, 1) * math.log2(max(n, 2)) / math.log2(max(n_p, 2)))
    return math.inf if result == "non-finite" else min(float(n), k_p * n / max(prefix // block, 1))


def block_pilot(fn, x0, inputs, solver, T: int, pilot_steps: int, est, atol, rtol) -> dict:
    """Run the block pilot of `solver` (a Shooting solver) and predict its block iterations at T.

    Returns the Diagnosis fields that differ from a plain solve's: pilot_T, pilot_iters, pilot_result,
    pilot_prefix (steps), predicted_iters, budget, growth, parallel_pays, reason, block, block_iters, block_depth.
    """
    num_in = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    B = block_of(solver, T)
    assert B is not None
    T_p = min(num_in, T, max(pilot_steps, 8 * B))  # at least 8 blocks, so that log2(n_p) > 2
    B_p = min(B, T_p)
    max_iters, patience = fail_fast_budget(T_p, B_p)
    pilot_inputs = jax.tree_util.tree_map(lambda a: a[:T_p], inputs)
    with unconverged_reported_by_caller():  # a pilot that does not converge is an answer, not a fault
        sol = solve(fn, x0, pilot_inputs, solver, max_iters=max_iters, patience=patience, atol=atol, rtol=rtol)
    k_p, prefix, converged = int(sol.num_iters), int(sol.sequential_from), bool(sol.converged)
    result = RESULTS(int(sol.result)).label
    growth = "log" if converged else "linear"
    predicted = extrapolate_blocks(result, k_p, T_p, prefix, B_p, T)
    budget = float(fail_fast_budget(T, B)[0])
    chaotic = math.isfinite(est.lle) and est.lle - _Z * est.uncertainty > 0
    pays = math.isfinite(est.lle) and not chaotic and converged and predicted <= budget
    its = f"{k_p} block iteration{'s' if k_p != 1 else ''}"
    pilot = (
        f"the block pilot ({B_p}-step blocks, {T_p} steps) converged in {its}"
        if converged
        else f"the block pilot ({B_p}-step blocks, {T_p} steps) stopped after {its} ({result}; {prefix} steps exact)"
    )
    pred = (
        f"predicted {predicted:.0f} block iterations at T={T} ({growth}), against a budget of {budget:.0f} (depth T/2)"
    )
    if pays:
        reason = f"Parallel pays: LLE {est}; {pilot}; {pred}."
    elif chaotic:
        reason = f"Sequential: LLE {est} is positive (a chaotic chain: block ends amplify rounding); {pilot}; {pred}."
    else:
        reason = f"Sequential: LLE {est}; {pilot}; {pred}: the block solve would fall back. Run sequentially."
    return dict(
        pilot_T=T_p,
        pilot_iters=k_p,
        pilot_result=result,
        pilot_prefix=prefix,
        predicted_iters=predicted,
        budget=budget,
        growth=growth,
        parallel_pays=pays,
        reason=reason,
        block=B,
        block_iters=predicted,
        block_depth=(predicted + 2) * B,
    )
