"""Fail fast: when the driver's iteration stops early and hands a solve to the sequential fallback.

With `patience` P, three rules stop a solve that is not converging (result RESULTS.max_iters; with
fallback="sequential" it is finished step by step). Rates count unknowns (states, or
block ends for a block solve) per iteration; the pin makes at least one more unknown exact per iteration,
so one per iteration is the floor of any solve, and a solve that does not couple gains only that.

- Before the budget: every P iterations, a solve whose exact prefix, at its rate so far, projects past
  2 budget iterations and whose residual did not fall 100-fold since the last check stops. The factor 2:
  Newton on switching maps often makes the whole tail exact at once, so the prefix's rate underestimates it.
- From the budget on (up to max_iters, a hard cap): the solve goes on only while its exact prefix still
  advances clearly faster than the pinned unknown: over the last P iterations, without the largest single
  gain, at least `MIN_RATE` unknowns per iteration. Leaving out the largest gain keeps a chain that does not
  couple, whose prefix jumped once (a cluster of blocks that happened to couple) and then went back to the
  pin's pace, from being carried on by that one jump. Past the budget the comparison is with the sequential
  remainder of m unknowns, which a solve gaining r per iteration finishes in m / r iterations: in depth it
  never does worse than the sequential remainder (r >= 1), and it does clearly better while r stays above
  the cost of an iteration in units of one unknown's sequential steps (about one for a block solve, whose
  iteration runs its B steps in depth B, plus the overhead of its Jacobians). So a chain still coupling is
  not cut off by a fixed budget, and one that gains only the pinned unknown stops at the budget as before.

- At any iteration: a solve whose residual has been above EXPLOSION times its guess's (or 1, the larger) for
  EXPLOSION_STREAK
  iterations in a row, and whose exact prefix projects past 2 budget iterations as above, stops without waiting
  for a checkpoint. Newton's linearisation keeps expanding there (a chaotic chain: a horseshoe regression's HMC
  chain went from 6 to 1e302, 1e138, 2e18, ... and would have spent 7, or at T = 2000 14, block iterations of
  D + 1 forward passes each before its first checkpoint). A transient overflow from a poor guess is repaired by
  the rejection of its non-finite tail within an iteration or two (two in a row on tests/helpers' expanding_guess,
  which then converges); a solve whose prefix still advances fast is not stopped.

With budget = max_iters (the default) the second rule never fires before max_iters does, and the first is
the rule the driver always had.
"""

import jax.numpy as jnp

from parmcmc.engine.results import RESULTS

__all__ = ["MIN_RATE", "fail_fast", "init"]

MIN_RATE = 1.5  # unknowns per iteration past the budget (largest gain left out): clearly faster than the pin's 1
EXPLOSION = 1e6  # a residual this many times the guess's ...
EXPLOSION_STREAK = 3  # ... this many iterations in a row: the linearisation keeps expanding


def init(residual, t0, patience: int):
    """The fail-fast carry after the initial check.

    The residual at the last checkpoint, the last exact prefix, the prefix's gains in the last P iterations, the
    guess's residual and how many iterations in a row the residual has been EXPLOSION times above it.
    """
    t0 = jnp.asarray(t0, jnp.int32)
    return residual, t0, jnp.zeros((patience,), jnp.int32), residual, jnp.zeros((), jnp.int32)


def fail_fast(status, carry, it, t0, residual, num_unknowns: int, max_iters: int, budget: int | None, patience: int):
    """Return (status, carry) after iteration `it` (iterations done) with exact prefix t0 and `residual`.

    status becomes RESULTS.max_iters where a running solve is to stop (module docstring).
    """
    r_ref, last, gains, r_guess, streak = carry
    t0 = jnp.asarray(t0, jnp.int32)
    # it == 0: the guess's own check, in the loop of a solve that linearises the guess there (engine/solve.py); the
    # record of gains starts from it, as `init` starts it for a solve that checks the guess before its loop.
    last = jnp.where(it == 0, t0, last)
    r_guess = jnp.where(it == 0, residual, r_guess)
    soft = max_iters if budget is None else min(budget, max_iters)
    checkpoint = it % patience == 0
    projected = it * num_unknowns / jnp.maximum(t0, 1)
    stalled = checkpoint & (it < soft) & (projected > 2 * soft) & ~(residual < 1e-2 * r_ref)
    # Relative to the guess, but never below 1: a nearly exact guess does not make a modest residual an explosion.
    exploded = residual > EXPLOSION * jnp.maximum(r_guess, 1.0)
    streak = jnp.where((it > 0) & exploded, streak + 1, 0).astype(streak.dtype)
    stalled = stalled | ((streak >= EXPLOSION_STREAK) & (projected > 2 * soft))
    gains = gains.at[it % patience].set(t0 - last)  # the last min(it, P) gains; the others are 0
    span = jnp.minimum(it, patience)
    trimmed = jnp.where(span > 1, jnp.sum(gains) - jnp.max(gains), jnp.sum(gains))
    slow = (it >= soft) & (trimmed < MIN_RATE * jnp.maximum(span - 1, 1))
    status = jnp.where((status == RESULTS.running) & (stalled | slow), RESULTS.max_iters, status)
    r_ref = jnp.where(checkpoint, residual, r_ref)
    return status, (r_ref, t0, gains, r_guess, streak)
