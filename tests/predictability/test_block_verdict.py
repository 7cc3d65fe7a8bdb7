"""diagnose's verdict for a block solve (predictability/block_verdict.py): a block pilot under sample()'s
fail-fast budget predicts whether the block solve of another chain falls back, and a pilot on every chain finds
the slow one. Small T, float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.systems import metropolis_walk

from parmcmc import MALA, diagnose
from parmcmc.engine import DEER, Jacobi, Shooting, solve
from parmcmc.engine.blocks import fail_fast_budget
from parmcmc.keys import chain_keys
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


def test_block_verdict_over_every_chain_predicts_the_slow_chain_that_is_not_chain_0():
    # Two MALA chains on a Gaussian: chain 0 (step 0.8) contracts fast; chain 1 (step 0.01) barely, so its block
    # Jacobi solve gains only the pinned block per iteration. Chain 0's pilot alone calls the pair parallel.
    T, B = 640, 16
    solver = Shooting(Jacobi(), B)
    x0 = jnp.array([[1.0, -0.5], [0.5, 1.0]])
    samplers = MALA(lambda x: -0.5 * jnp.sum(x**2), 0.5).bind(x0[0]).per_chain(step_size=jnp.array([0.8, 0.01]))
    d = diagnose(samplers, x0, jax.random.key(1), T, solver=solver, num_chains=2, pilot_steps=320, lle_steps=640)
    assert not d.parallel_pays and len(d.chain_iters) == 2, d.reason
    assert d.chain_iters[0] <= d.budget < d.chain_iters[1] == d.predicted_iters and "chains [1]" in d.reason
    first = jax.tree.map(lambda a: a[0], samplers)
    alone = diagnose(first, x0[0], jax.random.key(1), T, solver=solver, pilot_steps=320, lle_steps=640)
    assert alone.parallel_pays and alone.chain_iters == (alone.predicted_iters,)
    budget, patience = fail_fast_budget(T, B)
    options = dict(max_iters=T // B, budget=budget, patience=patience, fallback="sequential")
    run = jax.vmap(lambda s, x, k: solve(s.step, x, s.noise(k, T), solver, **options))(
        samplers, x0, chain_keys(jax.random.key(7), 2)
    )
    assert np.asarray(run.fell_back).tolist() == [False, True]
    with pytest.raises(ValueError, match="num_chains=2 needs a block solver"):
        diagnose(samplers, x0, jax.random.key(1), T, solver=DEER(), num_chains=2)
    with pytest.raises(ValueError, match="leading chain axis of 3"):
        diagnose(samplers, x0, jax.random.key(1), T, solver=solver, num_chains=3)
