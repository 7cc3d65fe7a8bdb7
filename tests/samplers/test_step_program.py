"""The compiled size of a step map: how many copies of the log density one HMC step puts into a program.

Every copy of the log density and its gradient is compiled again wherever the step is (the parallel solve's
linearisation, the final pass, the fallback, the statistics, the exactness pass), so an HMC step holds one: the
gradient at the start is the trajectory loop's first evaluation (samplers/integrators.trajectory).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.samplers import HMC, integrators


def counting_density():
    calls = []

    def logdensity(x):
        calls.append(1)
        return -0.5 * jnp.sum(x**2) - 0.1 * jnp.sum(x**4)

    return logdensity, calls


@pytest.mark.parametrize("jitter", [None, 1.0], ids=["fixed_L", "jittered_L"])
def test_an_hmc_step_traces_its_log_density_once(jitter):
    logdensity, calls = counting_density()
    sampler = HMC(logdensity, 0.2, 7, integration_steps_jitter=jitter).bind(jnp.zeros(3))
    noise = jax.tree_util.tree_map(lambda a: a[0], sampler.noise(jax.random.key(0), 4))
    calls.clear()  # binding checks the density at the position
    jax.make_jaxpr(sampler.step)(jnp.ones(3), noise)
    assert len(calls) == 1  # two before: the gradient at the start and the one in the leapfrog loop


@pytest.mark.parametrize("num_steps", [1, 3, 7])
def test_the_trajectory_loop_gives_the_leapfrog_steps(num_steps):
    logdensity = lambda x: -0.5 * jnp.sum(x**2) - 0.1 * jnp.sum(x**4)
    value_and_grad = jax.value_and_grad(logdensity)
    velocity = lambda p: 0.7 * p
    x, p = jnp.array([0.3, -1.2, 0.8]), jnp.array([1.0, 0.5, -0.25])

    @jax.jit
    def leapfrog(x, p):  # the gradient at the start, then the steps of velocity_verlet
        ld, g = value_and_grad(x)
        one_step = integrators.velocity_verlet(value_and_grad, velocity)
        return ld, integrators.integrate(one_step, integrators.IntegratorState(x, p, ld, g), 0.1, num_steps)

    want = leapfrog(x, p)
    static = jax.jit(lambda x, p: integrators.trajectory(value_and_grad, velocity, x, p, 0.1, num_steps))(x, p)
    traced = jax.jit(lambda x, p, n: integrators.trajectory(value_and_grad, velocity, x, p, 0.1, n))(
        x, p, jnp.asarray(num_steps, jnp.int32)
    )
    for got in (static, traced):  # fori_loop with static bounds, and while_loop
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
