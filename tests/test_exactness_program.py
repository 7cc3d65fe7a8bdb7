"""The statistics and exactness pass: one compiled copy of the step, and the figures the separate passes gave."""

import jax
import jax.numpy as jnp
import numpy as np

from parmcmc.engine import Sequential, solve
from parmcmc.exactness import LENGTH, lle_along, moved_by_tolerance, near_threshold, stats_and_exactness
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
