"""The statistics and exactness pass: one compiled copy of the step, and the figures the separate passes gave."""

import jax
import jax.numpy as jnp
import numpy as np

from parmcmc.chain import _observed_block, run_chain
from parmcmc.engine import DEER, Sequential, Shooting, solve
from parmcmc.exactness import (
    LENGTH,
    lle_along,
    moved_by_tolerance,
    near_threshold,
    stats_and_exactness,
    unit_tangents,
)
from parmcmc.samplers import HMC

T = 4 * LENGTH + 17  # four whole windows and a padded one
TOL = 1e-11


def logdensity(x):
    # atan: a primitive that only the log density uses, and none of its derivatives
    return -0.5 * jnp.sum(x**2) - 0.2 * jnp.sum(jnp.arctan(x))


def chain():
    sampler = HMC(logdensity, 0.3, 5, integration_steps_jitter=1.0).bind(jnp.zeros(3))
    x0 = jnp.array([0.5, -0.2, 0.1])
    inputs = sampler.noise(jax.random.key(3), T)
    return sampler, x0, inputs, solve(sampler.step, x0, inputs, Sequential()).states


def test_the_pass_holds_one_copy_of_the_step():
    sampler, x0, inputs, states = chain()
    program = str(jax.make_jaxpr(lambda s: stats_and_exactness(sampler, x0, s, inputs, TOL, TOL))(states))
    # The statistics, those at the moved states and the LLE's tangent scan were three copies.
    assert program.count("atan ") == 1


def test_the_pass_gives_the_statistics_the_moved_acceptance_and_the_lle_of_every_whole_window():
    sampler, x0, inputs, states = chain()
    stats, figures = jax.jit(lambda s: stats_and_exactness(sampler, x0, s, inputs, TOL, TOL))(states)
    want = sampler.chain_stats(x0, states, inputs)
    for a, b in zip(stats, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # The LLE over every whole window of LENGTH steps: lle_along with that many windows, tiling them.
    whole = T // LENGTH
    lle = lle_along(
        sampler.step,
        x0,
        states[: whole * LENGTH],
        jax.tree_util.tree_map(lambda a: a[: whole * LENGTH], inputs),
        num_offsets=whole,
    )
    np.testing.assert_allclose(figures.lle, lle, rtol=1e-10)
    assert float(figures.lle) < 0  # a contracting chain
    moved = moved_by_tolerance(x0, states, TOL, TOL)
    alpha_moved = jax.vmap(sampler.stats)(moved, inputs).acceptance_rate
    assert int(figures.near_threshold) == int(
        near_threshold(sampler, x0, states, inputs, want, lle, TOL, TOL, alpha_moved)
    )


def block_reference_lle(sampler, x0, states, inputs, block):
    """The LLE over every whole block, the tangent started at the same unit vector in each (as the observed pass)."""
    n = states.shape[0] // block
    cut = lambda a: a[: n * block].reshape((n, block, *a.shape[1:]))
    previous = jnp.concatenate([x0[None], states[:-1]])

    def logs(xs, us):
        def body(w, xu):
            w = jax.jvp(lambda y: sampler.step(y, xu[1]), (xu[0],), (w,))[1]
            return w / jnp.linalg.norm(w), jnp.log(jnp.linalg.norm(w))

        return jax.lax.scan(body, unit_tangents(1, x0.shape[0], x0.dtype)[0], (xs, us))[1]

    growth = jax.jit(jax.vmap(logs))(cut(previous), jax.tree_util.tree_map(cut, inputs))
    return float(jnp.mean(growth[:, block // 4 :]))


def test_a_block_solve_observes_the_figures_in_its_final_pass():
    # sample()'s block solve: the final pass, which recomputes every state from its block's start anyway, computes the
    # statistics, the moved acceptance and the LLE as it goes. The windowed pass is gone from the program: the step
    # is held by the solve's loop and the final pass only (three copies with the fallback, four before).
    sampler, x0, inputs, states = chain()
    block = LENGTH // 2 + 16  # T is not a multiple of it: the last block is padded
    shooting = Shooting(DEER(), block)

    def run(x0, solver=shooting, **kw):
        return run_chain(sampler, x0, jax.random.key(3), T, solver=solver, **kw)

    copies = lambda **kw: str(jax.make_jaxpr(lambda x: run(x, **kw).positions)(x0)).count("atan ")
    assert copies() == 2
    assert copies(fallback="sequential") == 3
    result = run(x0)
    np.testing.assert_allclose(result.positions, states, rtol=0, atol=1e-12)
    for a, b in zip(result.stats, sampler.chain_stats(x0, states, inputs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.lle, block_reference_lle(sampler, x0, states, inputs, block), rtol=1e-10)
    moved = moved_by_tolerance(x0, states, TOL, TOL)
    alpha_moved = jax.vmap(sampler.stats)(moved, inputs).acceptance_rate
    want = near_threshold(sampler, x0, states, inputs, result.stats, result.lle, TOL, TOL, alpha_moved)
    assert int(result.near_threshold) == int(want)
    # Which solves observe: a block solve given by Shooting or by block=, with blocks of at least LENGTH // 2 steps
    # (a shorter block is too short a window for the LLE: such a solve keeps the windowed pass, a third copy).
    assert _observed_block(DEER(), T, {"block": block}) == block == _observed_block(shooting, T, {})
    assert _observed_block(Shooting(DEER(), LENGTH // 2 - 1), T, {}) is None
    assert _observed_block(DEER(), T, {}) is None and _observed_block(Sequential(), T, {"block": block}) is None
    assert copies(solver=Shooting(DEER(), LENGTH // 2 - 1)) == 3
    assert copies(solver=DEER(), block=np.int64(block)) == 2  # block= as solve() reads it, a NumPy integer too
