"""diagnose's verdict for a block solve (predictability/block_verdict.py): a block pilot under sample()'s
fail-fast budget predicts whether the block solve of another chain falls back. Small T, float64."""

import jax.numpy as jnp
import pytest
from helpers.systems import metropolis_walk

from parmcmc.engine import DEER, Shooting, solve
from parmcmc.engine.blocks import fail_fast_budget
from parmcmc.predictability import diagnose_recurrence


@pytest.mark.parametrize("a", [1.0, 0.8], ids=["neutral", "contracting"])
def test_block_verdict_predicts_the_fallback_of_another_chain(a):
    T, B = 640, 16
    fn, x0, pilot_inputs = metropolis_walk(a, seed=5)
    d = diagnose_recurrence(fn, x0, pilot_inputs, solver=Shooting(DEER(), B), T=T, pilot_steps=320)
    assert d.solver == "Shooting(DEER, 16)" and d.block == B and d.pilot_T == 320
    assert d.budget == fail_fast_budget(T, B)[0] and d.block_depth == (d.predicted_iters + 2) * B
    assert d.predicted_at(T) == d.predicted_iters
    fn, x0, u = metropolis_walk(a, seed=4)  # the chain itself: other noise than the pilot's
    max_iters, patience = fail_fast_budget(T, B)
    sol = solve(fn, x0, u, Shooting(DEER(), B), max_iters=max_iters, patience=patience, fallback="sequential")
    assert d.parallel_pays == (not bool(sol.fell_back)) == (a < 1.0), d.reason
    if d.parallel_pays:  # log growth from 20 to 40 blocks: within one iteration of the measured count
        assert d.growth == "log" and abs(d.predicted_iters - int(sol.num_iters)) <= 1.5, (d.reason, int(sol.num_iters))
    else:  # the pin's floor: one block per iteration, all 40
        assert d.growth == "linear" and d.predicted_iters >= 30 and "fall back" in d.reason
    assert bool(jnp.isfinite(sol.states).all())
