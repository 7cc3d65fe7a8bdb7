"""Weigh a block solve (engine/blocks.py, a Shooting solver) against the sequential chain, for parallel="auto".

A block solve's iteration is not a plain solve's: it runs every block's B steps from its start (a scan of B
batched steps over the n = T / B blocks) and linearises the block map (the inner solver's tangents through
those B steps). So its cost is

    parallel = (k + 2) x (seconds of one block iteration)

with k the block iterations diagnose predicts from its block pilot (predictability/block_verdict.py), plus
the evaluation at the guess and the pass that records every state. parmcmc.weigh times one block iteration
(`one_block_iteration`, the inner solver's linearisation and step on the recurrence between block ends) at
min(T, probe) states and scales it to T; its cost model (stage 0) counts the inner solver's tangents.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp

from parmcmc.engine.blocks import Shooting, block_of, block_recurrence
from parmcmc.engine.solvers import AbstractIterativeSolver, shift

__all__ = ["MIN_BLOCK_ITERS", "decide_blocks", "one_block_iteration", "weigh_blocks"]

MIN_BLOCK_ITERS = 1  # a block solve that converges still evaluates the guess, iterates once and records the states


def one_block_iteration(fn, solver: Shooting, block: int, num_blocks: int, inputs: Callable) -> Callable:
    """x0 -> one iteration of the block solve over `num_blocks` blocks of `block` steps (a program to time).

    inputs: () -> the inputs of num_blocks * block steps (drawn inside the program).
    """
    inner = solver.solver
    assert isinstance(inner, AbstractIterativeSolver)  # Shooting checks it

    def one_iteration(x0):
        F, U = block_recurrence(fn, inputs(), block)
        S = jnp.broadcast_to(x0, (num_blocks, *x0.shape))
        aux = inner.init(x0, num_blocks)
        lin = inner.linearize(F, shift(S, x0), U, aux)
        return inner.step(F, x0, S, U, aux, lin, inner.init_state(x0))[0]

    return one_iteration


def weigh_blocks(iteration_s: float, predicted_iters: float) -> float:
    """Predicted seconds of a block solve: k block iterations, the evaluation at the guess and the recording pass."""
    return (predicted_iters + 2) * iteration_s if math.isfinite(predicted_iters) else math.inf


def decide_blocks(
    solver: Shooting, T: int, platform: str, iteration: float, seq: float, measured: bool, diagnose, timed_seq
):
    """weigh.choose's stages 2 and 3 for a block solve, from one timed block iteration.

    Returns (run the block solve?, sequential seconds, parallel seconds, predicted block iterations, reason,
    diagnosis). seq: the chain's predicted seconds (`measured`: from the warmup's steps, an upper bound, which
    `timed_seq()`, a timed scan, confirms before the block solve is chosen); diagnose: () -> its block Diagnosis.
    """
    name = f"Shooting({type(solver.solver).__name__}, {block_of(solver, T)})"
    lower = weigh_blocks(iteration, MIN_BLOCK_ITERS)
    if lower >= seq:
        reason = f"on {platform} even {MIN_BLOCK_ITERS + 2} block iterations of {name} cost more than the chain"
        return False, seq, lower, math.nan, reason, None
    diagnosis = diagnose()
    k = float(diagnosis.predicted_iters)  # block iterations (the block pilot's prediction)
    par, source = weigh_blocks(iteration, k), "the warmup's steps" if measured else "a timed scan"
    if not diagnosis.parallel_pays:
        return False, seq, par, k, diagnosis.reason, diagnosis
    if par < seq and measured:
        seq, source = min(seq, timed_seq()), "a timed scan"
    if par < seq:
        return (
            True,
            seq,
            par,
            k,
            f"{name}'s predicted {k:.0f} block iterations beat the chain on {platform} ({source})",
            diagnosis,
        )
    return (
        False,
        seq,
        par,
        k,
        f"{name}'s predicted {k:.0f} block iterations cost more than the chain on {platform}",
        diagnosis,
    )
