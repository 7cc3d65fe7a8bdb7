"""Weigh a block solve (engine/blocks.py, a Shooting solver) against the sequential chain, for parallel="auto".

A block solve's iteration is not a plain solve's: it runs every block's B steps from its start (a scan of B
batched steps over the n = T / B blocks) and linearises the block map (the inner solver's tangents through
those B steps). So its cost is

    parallel = (k + 2) x (seconds of one block iteration)

with k the block iterations diagnose predicts from its block pilot (predictability/block_verdict.py), plus
the evaluation at the guess and the pass that records every state. One block iteration is timed directly
(the inner solver's linearisation and step on the recurrence between block ends) at min(T, probe) states and
scaled to T; the cost model of stage 0 (parmcmc.weigh.cost_model_choice) counts the inner solver's tangents.
"""

from __future__ import annotations

import math
import time

import jax.numpy as jnp

from parmcmc.engine.blocks import Shooting, block_of, block_recurrence
from parmcmc.engine.solvers import AbstractIterativeSolver, shift

__all__ = ["block_iteration_seconds", "choose_blocks", "weigh_blocks"]

MIN_BLOCK_ITERS = 1  # a block solve that converges still evaluates the guess, iterates once and records the states


def block_iteration_seconds(fn, x0, inputs, solver: Shooting, T: int) -> float:
    """Predicted seconds of one iteration of the block solve `solver` over T steps (from a probe, scaled to T)."""
    from parmcmc import weigh

    B = block_of(solver, T) or T
    n = max(1, weigh._probe_states(T) // B)  # whole blocks, at least one
    inner = solver.solver
    assert isinstance(inner, AbstractIterativeSolver)  # Shooting checks it

    def one_iteration(x0):
        F, U = block_recurrence(fn, weigh._inputs(inputs, n * B), B)
        S = jnp.broadcast_to(x0, (n, *x0.shape))
        aux = inner.init(x0, n)
        lin = inner.linearize(F, shift(S, x0), U, aux)
        return inner.step(F, x0, S, U, aux, lin, inner.init_state(x0))[0]

    return weigh._fastest(one_iteration, x0) * max(1.0, T / (n * B))


def weigh_blocks(iteration_s: float, predicted_iters: float) -> float:
    """Predicted seconds of a block solve: k block iterations, the evaluation at the guess and the recording pass."""
    return (predicted_iters + 2) * iteration_s if math.isfinite(predicted_iters) else math.inf


def choose_blocks(flat_fn, x_flat, inputs, solver: Shooting, T: int, diagnose, seq, measured, platform, t_start):
    """weigh.choose's stages 2 and 3 for a block solve: time one block iteration, then ask the block diagnosis.

    seq: the sequential chain's predicted seconds (measured: from the warmup's steps); platform: for the reasons.
    """
    from parmcmc import weigh

    name = f"Shooting({type(solver.solver).__name__}, {block_of(solver, T)})"
    iteration = block_iteration_seconds(flat_fn, x_flat, inputs, solver, T)
    lower = weigh_blocks(iteration, MIN_BLOCK_ITERS)
    if lower >= seq:
        reason = f"on {platform} even {MIN_BLOCK_ITERS + 2} block iterations of {name} cost more than the chain"
        return weigh.Choice(weigh.Sequential(), seq, lower, math.nan, reason, time.perf_counter() - t_start, None)
    diagnosis = diagnose()
    k = float(diagnosis.predicted_iters)  # block iterations (the block pilot's prediction)
    par, source = weigh_blocks(iteration, k), "the warmup's steps" if measured else "a timed scan"
    if diagnosis.parallel_pays and par < seq and measured:  # the warmup's step bounds a step from above: confirm
        seq, source = min(seq, weigh.sequential_seconds(flat_fn, x_flat, inputs, T)), "a timed scan"
    if not diagnosis.parallel_pays:
        reason = diagnosis.reason
    elif par < seq:
        reason = f"{name}'s predicted {k:.0f} block iterations beat the sequential chain on {platform} ({source})"
    else:
        reason = f"{name}'s predicted {k:.0f} block iterations cost more than the sequential chain on {platform}"
    chosen = solver if diagnosis.parallel_pays and par < seq else weigh.Sequential()
    return weigh.Choice(chosen, seq, par, k, reason, time.perf_counter() - t_start, diagnosis)
