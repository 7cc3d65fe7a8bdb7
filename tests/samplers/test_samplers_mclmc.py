"""Metropolis-adjusted MCLMC: BlackJAX's chain for the same key (float64, decision by decision), an
immutable pytree, parallel solves equal to the sequential chain, and sample(sampler="adjustedmclmc")."""

import blackjax
import blackjax.util
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.sampler_targets import TARGETS, correlated_gaussian, sequential_chain

import parmcmc
from parmcmc.chain import run_chain
from parmcmc.engine import DEER
from parmcmc.samplers import AdjustedMCLMC

NUM_STEPS = 500
STEPS_PER_DRAW = 4
STEP = {"gaussian": 2.5, "logistic": 0.5, "pytree": 2.5}  # acceptance 0.2-0.98: decisions exercised


@pytest.mark.parametrize("make_target", TARGETS, ids=lambda f: f.__name__)
def test_adjusted_mclmc_matches_blackjax(make_target):
    target = make_target()
    key, step = jax.random.key(5), STEP[target.name]
    algorithm = blackjax.adjusted_mclmc(target.logdensity_fn, step, num_integration_steps=STEPS_PER_DRAW)
    state = algorithm.init(target.initial_position)  # pyright: ignore[reportCallIssue] (init takes no rng_key)
    _, (bj_states, bj_infos) = blackjax.util.run_inference_algorithm(key, algorithm, NUM_STEPS, initial_state=state)

    sampler = AdjustedMCLMC(target.logdensity_fn, step, STEPS_PER_DRAW).bind(target.initial_position)
    x0 = sampler.ravel(target.initial_position)
    inputs = sampler.noise(key, NUM_STEPS)
    states = sequential_chain(sampler, x0, inputs)
    stats = jax.jit(sampler.chain_stats)(x0, states, inputs)
    bj_flat = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(bj_states.position)
    assert float(jnp.max(jnp.abs(states - bj_flat))) <= 1e-8
    assert int(jnp.sum(stats.is_accepted != bj_infos.is_accepted)) == 0
    assert 0 < int(jnp.sum(~bj_infos.is_accepted)) < NUM_STEPS
    np.testing.assert_allclose(stats.acceptance_rate, bj_infos.acceptance_rate, rtol=0, atol=1e-10)
    np.testing.assert_allclose(stats.proposal_energy, bj_infos.energy, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stats.logdensity, bj_states.logdensity, rtol=1e-10, atol=1e-10)


def test_adjusted_mclmc_is_a_pytree_and_checks_its_settings():
    target = correlated_gaussian(dim=3)
    x0 = target.initial_position
    a = AdjustedMCLMC(target.logdensity_fn, 0.5, 3).bind(x0)
    assert [jnp.shape(v) for v in jax.tree.leaves(a)] == [(), (3,)]  # step size, inverse mass matrix
    noise = jax.tree.map(lambda v: v[0], a.noise(jax.random.key(0), 1))
    traces = []

    @jax.jit
    def step(sampler, x, noise_t):
        traces.append(1)
        return sampler.step(x, noise_t)

    b = a.replace(step_size=0.7, inverse_mass_matrix=jnp.array([1.0, 2.0, 0.5]))
    np.testing.assert_allclose(step(b, x0, noise), b.step(x0, noise), rtol=1e-12)
    step(a, x0, noise)
    assert len(traces) == 1  # one program for both leaf values
    with pytest.raises(ValueError, match="1-D positive finite diagonal"):
        a.replace(inverse_mass_matrix=jnp.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="num_integration_steps must be >= 1"):
        a.replace(num_integration_steps=0)
    with pytest.raises(ValueError, match="flat size >= 2"):
        AdjustedMCLMC(lambda x: -jnp.sum(x**2), 0.5, 3).bind(jnp.zeros(1))


def test_parallel_solve_gives_the_sequential_chain():
    """A smooth step map (rejections give the identity): DEER returns the sequential chain."""
    target = correlated_gaussian(dim=4)
    sampler = AdjustedMCLMC(target.logdensity_fn, 3.0, 3).bind(target.initial_position)
    key, num_steps = jax.random.key(3), 32
    x0 = sampler.ravel(target.initial_position)
    inputs = sampler.noise(key, num_steps)
    states = sequential_chain(sampler, x0, inputs)
    accepted = jax.jit(sampler.chain_stats)(x0, states, inputs).is_accepted
    result = run_chain(sampler, target.initial_position, key, num_steps, solver=DEER(), max_iters=num_steps)
    assert bool(result.converged)
    assert float(jnp.max(jnp.abs(result.positions - states))) <= 1e-8
    assert int(jnp.sum(result.stats.is_accepted != accepted)) == 0
    assert 0 < int(jnp.sum(~accepted)) < num_steps


def test_sample_adjusted_mclmc_adapts_and_samples_a_badly_scaled_gaussian():
    """The warmup's diagonal scale and step size: the draws' sds within 15% of the truth (scales 0.1-10)."""
    scales = jnp.array([1.0, 10.0, 0.1])
    tree = parmcmc.sample(
        lambda x: -0.5 * jnp.sum((x / scales) ** 2),
        rng_key=jax.random.key(0),
        initial_position=jnp.full(3, 0.5),
        num_samples=1000,
        num_warmup=500,
        num_chains=2,
        sampler="adjustedmclmc",
        parallel=False,
        progress_bar=False,
    )
    x = np.asarray(tree["posterior"]["x"]).reshape(-1, 3)
    np.testing.assert_allclose(x.std(axis=0), scales, rtol=0.15)
