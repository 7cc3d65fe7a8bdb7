"""The verdict for a multiple-shooting solve (engine/blocks.py): a block pilot, extrapolated over blocks.

A block solve's iterations are not those of a plain solve: inside a block every step is taken sequentially,
so the iteration only has to find the block ends, and a chain that contracts does that once its accept
decisions have coupled with the true chain's, block by block, whatever T is. So the pilot is the block solve
itself on T_p steps (n_p = ceil(T_p / B) blocks), under the fail-fast rule sample() gives it
(`engine.blocks.fail_fast_budget`, engine/failfast.py: past the budget only while it still gains 1.5 blocks per
iteration), and

    k(T) = k_p * log2(n) / log2(n_p)      if the pilot converged ("log": the slowest of
                                          n blocks to couple, the largest of n waiting times, grows like log n)
    k(T) = min(n, k_p * n / p)            otherwise ("linear": the pilot's rate, p exact blocks in k_p
                                          iterations; the pin's floor is one block per iteration),

with n = ceil(T / B). Parallel pays iff the LLE is finite and not clearly positive (a chaotic chain's block
ends are amplified rounding: docs/convergence.md), the pilot converged, and k(T) fits the budget at T, the
block iterations whose depth (k + 2) B is at most T / 2. That budget is the one sample()'s block solve stops
at, so a "sequential" verdict predicts the fallback (or a depth past T / 2), and "parallel" predicts none.
With several chains (`parmcmc.diagnose`'s num_chains) the pilot runs on each, vmapped, and the worst chain decides.
"""

import math

import jax
import numpy as np

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


def block_pilot(fn, x0, inputs, solver, T: int, pilot_steps: int, est, atol, rtol, pilot=None) -> dict:
    """Run the block pilot of `solver` (a Shooting solver) and predict its block iterations at T.

    pilot: None (one chain: the solve of fn from x0 over inputs), or a callable pilot(T_p, **solve_kwargs) returning
    the Solution of every chain's pilot (leading chain axis; `parmcmc.diagnose`'s num_chains), whose worst chain
    gives the verdict: the one with the most predicted block iterations, any chain predicted to fall back making it
    "sequential". Returns the Diagnosis fields that differ from a plain solve's: pilot_T, pilot_iters, pilot_result,
    pilot_prefix (steps), predicted_iters, budget, growth, parallel_pays, reason, block, block_iters, block_depth,
    chain_iters (every chain's predicted block iterations).
    """
    num_in = jax.tree_util.tree_leaves(inputs)[0].shape[0 if pilot is None else 1]
    B = block_of(solver, T)
    assert B is not None
    T_p = min(num_in, T, max(pilot_steps, 8 * B))  # at least 8 blocks, so that log2(n_p) > 2
    B_p = min(B, T_p)
    budget_p, patience = fail_fast_budget(T_p, B_p)
    options = dict(max_iters=-(-T_p // B_p), budget=budget_p, patience=patience, atol=atol, rtol=rtol)
    if pilot is None:
        pilot = lambda n, **kw: solve(fn, x0, jax.tree_util.tree_map(lambda a: a[:n], inputs), solver, **kw)
    with unconverged_reported_by_caller():  # a pilot that does not converge is an answer, not a fault
        sol = pilot(T_p, **options)
    ks, prefixes = np.atleast_1d(sol.num_iters).tolist(), np.atleast_1d(sol.sequential_from).tolist()
    results = [RESULTS(int(r)).label for r in np.atleast_1d(sol.result)]
    chain_iters = [extrapolate_blocks(r, k, T_p, p, B_p, T) for r, k, p in zip(results, ks, prefixes, strict=True)]
    c = int(np.argmax(chain_iters))  # the worst chain (inf: non-finite)
    k_p, prefix, result, predicted = int(ks[c]), int(prefixes[c]), results[c], chain_iters[c]
    converged = all(r == "converged" for r in results)
    growth = "log" if converged else "linear"
    budget = float(fail_fast_budget(T, B)[0])
    chaotic = math.isfinite(est.lle) and est.lle - _Z * est.uncertainty > 0
    pays = math.isfinite(est.lle) and not chaotic and converged and predicted <= budget
    its = f"{k_p} block iteration{'s' if k_p != 1 else ''}"
    who = "the block pilot" if len(ks) == 1 else f"the slowest of {len(ks)} block pilots (chain {c})"
    pilot_text = (
        f"{who} ({B_p}-step blocks, {T_p} steps) converged in {its}"
        if result == "converged"
        else f"{who} ({B_p}-step blocks, {T_p} steps) stopped after {its} ({result}; {prefix} steps exact)"
    )
    if len(ks) > 1:
        over = [i for i, k in enumerate(chain_iters) if results[i] != "converged" or k > budget]
        pilot_text += f"; pilots' block iterations {'/'.join(map(str, ks))}"
        pilot_text += f", chains {over} predicted to fall back" if over else ""
    pred = (
        f"predicted {predicted:.0f} block iterations at T={T} ({growth}), against a budget of {budget:.0f} (depth T/2)"
    )
    if pays:
        reason = f"Parallel pays: LLE {est}; {pilot_text}; {pred}."
    elif chaotic:
        chaos = "is positive (a chaotic chain: block ends amplify rounding)"
        reason = f"Sequential: LLE {est} {chaos}; {pilot_text}; {pred}."
    else:
        reason = f"Sequential: LLE {est}; {pilot_text}; {pred}: the block solve would fall back. Run sequentially."
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
        chain_iters=tuple(chain_iters),
    )
