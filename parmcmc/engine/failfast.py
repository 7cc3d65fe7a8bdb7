"""Fail fast: when the driver's iteration stops early and hands a solve to the sequential fallback.

With `patience` P, two rules stop a solve that is not converging (result RESULTS.max_iters; with
fallback="sequential" it continues step by step from its exact prefix). Rates count unknowns (states, or
block ends for a block solve) per iteration; the pin makes at least one more unknown exact per iteration,
so one per iteration is the floor of any solve, and a solve that does not couple gains only that.

- Before the budget: every P iterations, a solve whose exact prefix, at its rate so far, projects past
  2 budget iterations and whose residual did not fall 100-fold since the last check stops. The factor 2:
  Newton on switching maps often makes the whole tail exact at once, so the prefix's rate underestimates it.
- From the budget on (up to max_iters, a hard cap): the solve goes on only while its exact prefix grew by
  at least `MIN_RATE` unknowns per iteration over the last P iterations. Past the budget the comparison is
  with the sequential remainder of m unknowns, which a solve at rate r finishes in m / r iterations: in
  depth it can never do worse than the sequential remainder (r >= 1), and it does clearly better while r
  stays above the cost of an iteration in units of one unknown's sequential steps (about one for a block
  solve, whose iteration runs its B steps in depth B). A chain still coupling is therefore not cut off by a
  fixed budget, and one that gains only the pinned unknown stops at the budget as before.

With budget = max_iters (the default) the second rule never fires before max_iters does, and the first is
the rule the driver always had.
"""

import jax.numpy as jnp

from parmcmc.engine.results import RESULTS

__all__ = ["MIN_RATE", "fail_fast", "init"]

MIN_RATE = 2  # unknowns per iteration, over the last `patience` iterations: clearly faster than the pin's one


def init(residual, t0, patience: int):
    """The fail-fast carry after the initial check: the residual at the last checkpoint, the last P prefixes."""
    return residual, jnp.full((patience,), t0, jnp.int32)


def fail_fast(status, carry, it, t0, residual, num_unknowns: int, max_iters: int, budget: int | None, patience: int):
    """Return (status, carry) after iteration `it` (iterations done) with exact prefix t0 and `residual`.

    status becomes RESULTS.max_iters where a running solve is to stop (module docstring).
    """
    r_ref, prefixes = carry
    soft = max_iters if budget is None else min(budget, max_iters)
    checkpoint = it % patience == 0
    projected = it * num_unknowns / jnp.maximum(t0, 1)
    stalled = checkpoint & (it < soft) & (projected > 2 * soft) & ~(residual < 1e-2 * r_ref)
    slot = it % patience  # holds the prefix after iteration it - P (or the initial one, while it < P)
    gained = t0 - prefixes[slot]
    slow = (it >= soft) & (gained < MIN_RATE * jnp.minimum(it, patience))
    status = jnp.where((status == RESULTS.running) & (stalled | slow), RESULTS.max_iters, status)
    r_ref = jnp.where(checkpoint, residual, r_ref)
    return status, (r_ref, prefixes.at[slot].set(t0.astype(jnp.int32)))
