"""The fail-fast rule (engine/failfast.py) on given sequences of exact prefixes: where it stops a solve."""

import jax.numpy as jnp
import pytest

from parmcmc.engine import failfast
from parmcmc.engine.results import RESULTS

N, MAX_ITERS, BUDGET, PATIENCE = 63, 63, 29, 14  # sample()'s block solve at T = 2000, B = 32


def _stop(prefixes, residual=1.0, budget=BUDGET, max_iters=MAX_ITERS, residuals=None):
    """The iteration at which the rule stops a solve with these exact prefixes after iterations 1, 2, ...

    `residuals`: the residual after each iteration (default: `residual`, the guess's, throughout).
    """
    carry = failfast.init(jnp.asarray(residual), 0, PATIENCE)
    residuals = [residual] * len(prefixes) if residuals is None else residuals
    for it, (t0, r) in enumerate(zip(prefixes, residuals, strict=True), start=1):
        if t0 >= N:
            return None  # converged
        status = jnp.asarray(RESULTS.max_iters if it >= max_iters else RESULTS.running)
        status, carry = failfast.fail_fast(
            status, carry, it, jnp.asarray(t0), jnp.asarray(r), N, max_iters, budget, PATIENCE
        )
        if int(status) != RESULTS.running:
            return it
    return len(prefixes)


def _cumulative(gains):
    out, t = [], 0
    for g in gains:
        t += g
        out.append(t)
    return out


def test_a_chain_gaining_only_the_pinned_block_stops_at_the_first_checkpoint():
    assert _stop(_cumulative([1] * 63)) == PATIENCE


@pytest.mark.parametrize(("budget", "max_iters", "stop"), [(BUDGET, MAX_ITERS, None), (None, BUDGET, BUDGET)])
def test_a_chain_still_gaining_two_blocks_per_iteration_goes_past_the_budget(budget, max_iters, stop):
    # converges at 32; the fixed budget of before (max_iters = 29, no budget) cut it off at 29
    assert _stop(_cumulative([2] * 40), budget=budget, max_iters=max_iters) == stop


def test_one_jump_does_not_carry_a_chain_that_went_back_to_the_pin_past_the_budget():
    # 1.9 blocks per iteration before the budget keeps it running (no checkpoint stop); one jump of 18 at 23,
    # then one block per iteration: the plain mean over the last 14 iterations (31 / 14) would carry it on.
    gains = [2, 2, 1] * 7 + [1, 18] + [1] * 30
    assert _stop(_cumulative(gains)) == BUDGET


def test_max_iters_stays_a_hard_cap():
    assert _stop(_cumulative([2] * 40), max_iters=30) == 30


# The residuals of a horseshoe regression's HMC chain (LLE +1 per step) under Shooting(DEER(), 32), from its guess's 6
CHAOTIC = [1e302, 1e138, 2e18, 1e33, 1e46, 3e56, 1e68] + [1e80] * 56


def test_a_chain_whose_residual_keeps_exploding_stops_without_waiting_for_a_checkpoint():
    assert _stop(_cumulative([1] * 63), residual=6.0, residuals=CHAOTIC) == failfast.EXPLOSION_STREAK


def test_a_transient_explosion_or_a_prefix_still_advancing_is_not_stopped_by_it():
    # Two exploded iterations (a poor guess's overflow, then repaired), then the pin's pace: the checkpoint rule.
    twice = [1e308, 7e41] + [3e2] * 61
    assert _stop(_cumulative([1] * 63), residual=5.0, residuals=twice) == PATIENCE
    # Exploding, but the exact prefix gains 3 blocks per iteration: converges at 21.
    assert _stop(_cumulative([3] * 21), residual=6.0, residuals=CHAOTIC[:21]) is None
