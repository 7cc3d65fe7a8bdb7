"""The step maps reproduce BlackJAX 1.7 chain for chain (float64).

For each target, ``lax.scan`` of our step map over our pre-drawn noise must
give BlackJAX's ``run_inference_algorithm`` positions to 1e-8 with no accept
decision differing, and the statistics of the solved chain must equal
BlackJAX's info fields.
"""

import math

import blackjax
import blackjax.util
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.sampler_targets import TARGETS, correlated_gaussian, sequential_chain

from parmcmc.samplers import HMC, MALA
from parmcmc.samplers import noise as _noise
from parmcmc.samplers.hmc import jittered_integration_steps

NUM_STEPS = 2000
NUM_LEAPFROG = 6


def blackjax_chain(algorithm, position, rng_key, num_steps):
    _, (states, infos) = blackjax.util.run_inference_algorithm(
        rng_key, algorithm, num_steps, initial_state=algorithm.init(position)
    )
    return states, infos


def our_chain(sampler, position, rng_key, num_steps):
    sampler = sampler.bind(position)
    x0 = sampler.ravel(position)
    inputs = sampler.noise(rng_key, num_steps)
    states = sequential_chain(sampler, x0, inputs)
    stats = jax.jit(sampler.chain_stats)(x0, states, inputs)
    return sampler, states, stats


def assert_same_chain(sampler, states, stats, bj_states, bj_infos):
    bj_flat = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(bj_states.position)
    assert states.shape == bj_flat.shape
    assert float(jnp.max(jnp.abs(states - bj_flat))) <= 1e-8
    differing = int(jnp.sum(stats.is_accepted != bj_infos.is_accepted))
    assert differing == 0
    rejected = int(jnp.sum(~bj_infos.is_accepted))
    assert 0 < rejected < NUM_STEPS  # the decisions were actually exercised
    np.testing.assert_allclose(stats.acceptance_rate, bj_infos.acceptance_rate, rtol=0, atol=1e-10)
    np.testing.assert_allclose(stats.logdensity, bj_states.logdensity, rtol=1e-10, atol=1e-10)
    # the pytree round trip gives BlackJAX's positions back
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-8),
        sampler.unravel_chain(states),
        bj_states.position,
    )


@pytest.mark.parametrize("make_target", TARGETS, ids=lambda f: f.__name__)
def test_mala_matches_blackjax(make_target):
    target = make_target()
    key = jax.random.key(20240501)
    algorithm = blackjax.mala(target.logdensity_fn, target.mala_step)
    bj_states, bj_infos = blackjax_chain(algorithm, target.initial_position, key, NUM_STEPS)
    sampler, states, stats = our_chain(
        MALA(target.logdensity_fn, target.mala_step), target.initial_position, key, NUM_STEPS
    )
    assert_same_chain(sampler, states, stats, bj_states, bj_infos)


@pytest.mark.parametrize("make_target", TARGETS, ids=lambda f: f.__name__)
def test_hmc_matches_blackjax(make_target):
    target = make_target()
    imm = target.inverse_mass_matrix
    assert not np.allclose(imm, 1.0)
    key = jax.random.key(777)
    algorithm = blackjax.hmc(target.logdensity_fn, target.hmc_step, imm, NUM_LEAPFROG)
    bj_states, bj_infos = blackjax_chain(algorithm, target.initial_position, key, NUM_STEPS)
    sampler, states, stats = our_chain(
        HMC(target.logdensity_fn, target.hmc_step, NUM_LEAPFROG, imm),
        target.initial_position,
        key,
        NUM_STEPS,
    )
    assert_same_chain(sampler, states, stats, bj_states, bj_infos)
    np.testing.assert_allclose(stats.proposal_energy, bj_infos.energy, rtol=1e-10, atol=1e-10)
    assert bool(jnp.all(stats.is_divergent == bj_infos.is_divergent))
    # energy_error = H_end - H_start: -log(acceptance_rate) where that is < 1, <= 0 elsewhere
    below_one = bj_infos.acceptance_rate < 1
    np.testing.assert_allclose(stats.energy_error[below_one], -jnp.log(bj_infos.acceptance_rate[below_one]), atol=1e-8)
    assert bool(jnp.all(stats.energy_error[~below_one] <= 0))


def test_hmc_dense_mass_matrix_and_legacy_key():
    """A dense inverse mass matrix, and a raw uint32 PRNGKey instead of a typed key."""
    target = correlated_gaussian()
    rng = np.random.default_rng(3)
    a = rng.normal(size=(10, 10))
    imm = jnp.asarray(a @ a.T / 10 + np.eye(10)) * 0.5
    key = jax.random.PRNGKey(5)
    algorithm = blackjax.hmc(target.logdensity_fn, 0.3, imm, 5)
    bj_states, bj_infos = blackjax_chain(algorithm, target.initial_position, key, NUM_STEPS)
    sampler, states, stats = our_chain(HMC(target.logdensity_fn, 0.3, 5, imm), target.initial_position, key, NUM_STEPS)
    assert_same_chain(sampler, states, stats, bj_states, bj_infos)
    np.testing.assert_allclose(stats.proposal_energy, bj_infos.energy, rtol=1e-10, atol=1e-10)


def test_hmc_divergences_match_blackjax():
    """A step size far too large: divergent transitions flagged as BlackJAX flags them."""
    target = correlated_gaussian()
    key = jax.random.key(11)
    algorithm = blackjax.hmc(target.logdensity_fn, 3.0, jnp.ones(10), 5)
    bj_states, bj_infos = blackjax_chain(algorithm, target.initial_position, key, 200)
    _, states, stats = our_chain(HMC(target.logdensity_fn, 3.0, 5), target.initial_position, key, 200)
    assert int(jnp.sum(bj_infos.is_divergent)) > 0
    assert bool(jnp.all(stats.is_divergent == bj_infos.is_divergent))
    assert bool(jnp.all(stats.is_accepted == bj_infos.is_accepted))
    assert float(jnp.max(jnp.abs(states - bj_states.position))) <= 1e-8


def blackjax_stepwise(logdensity_fn, position, rng_key, num_steps, step_sizes, imm, num_leapfrog):
    """BlackJAX's HMC kernel called step by step, with the per-draw step sizes, under the keys
    run_inference_algorithm would use."""
    kernel = blackjax.hmc.build_kernel()

    def one(state, xs):
        key, eps = xs
        state, info = kernel(key, state, logdensity_fn, eps, imm, num_leapfrog)
        return state, (state, info)

    keys = jax.random.split(rng_key, num_steps)
    state = blackjax.hmc.init(position, logdensity_fn)
    return jax.jit(lambda s: jax.lax.scan(one, s, (keys, step_sizes))[1])(state)


@pytest.mark.parametrize("make_target", TARGETS, ids=lambda f: f.__name__)
def test_jittered_hmc_matches_blackjax_with_the_same_per_draw_step_sizes(make_target):
    target = make_target()
    imm = target.inverse_mass_matrix
    key = jax.random.key(4242)
    sampler = HMC(target.logdensity_fn, target.hmc_step, NUM_LEAPFROG, imm, step_size_jitter=0.5)
    bound = sampler.bind(target.initial_position)
    noise = bound.noise(key, NUM_STEPS)
    step_sizes = bound.step_sizes(noise)
    assert float(step_sizes.min()) < 0.6 * target.hmc_step and float(step_sizes.max()) > 1.4 * target.hmc_step
    bj_states, bj_infos = blackjax_stepwise(
        target.logdensity_fn, target.initial_position, key, NUM_STEPS, step_sizes, imm, NUM_LEAPFROG
    )
    bound, states, stats = our_chain(sampler, target.initial_position, key, NUM_STEPS)
    assert_same_chain(bound, states, stats, bj_states, bj_infos)
    np.testing.assert_allclose(stats.proposal_energy, bj_infos.energy, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stats.step_size, step_sizes, rtol=0, atol=0)
    # the jitter has a key stream of its own: the momenta and uniforms are the unjittered chain's
    plain = HMC(target.logdensity_fn, target.hmc_step, NUM_LEAPFROG, imm).bind(target.initial_position)
    plain_noise = plain.noise(key, NUM_STEPS)
    assert plain_noise.step_scale is None
    np.testing.assert_array_equal(plain_noise.momentum, noise.momentum)
    np.testing.assert_array_equal(plain_noise.uniform, noise.uniform)


def blackjax_dynamic_hmc(target, rng_key, num_steps, max_steps, jitter):
    """``blackjax.dynamic_hmc`` whose per-draw generator is the draw's index and whose
    ``integration_steps_fn`` draws L_t from the trajectory stream's key of that draw."""
    stream = _noise.side_keys(rng_key, num_steps, _noise.TRAJECTORY_STREAM)
    dtype = jnp.result_type(float)

    def integration_steps_fn(i, max_steps):
        return jittered_integration_steps(jax.random.uniform(stream[i], (), dtype), jitter, max_steps)

    algorithm = blackjax.dynamic_hmc(
        target.logdensity_fn,
        target.hmc_step,
        target.inverse_mass_matrix,
        next_random_arg_fn=lambda i: i + 1,
        integration_steps_fn=integration_steps_fn,
        integration_steps_params=(max_steps,),
    )
    _, (states, infos) = blackjax.util.run_inference_algorithm(
        rng_key, algorithm, num_steps, initial_state=algorithm.init(target.initial_position, 0)
    )
    return states, infos


@pytest.mark.parametrize("make_target", TARGETS, ids=lambda f: f.__name__)
def test_jittered_trajectory_length_matches_blackjax_dynamic_hmc(make_target):
    target = make_target()
    key, max_steps = jax.random.key(99), 12
    bj_states, bj_infos = blackjax_dynamic_hmc(target, key, NUM_STEPS, max_steps, 1.0)
    sampler = HMC(
        target.logdensity_fn, target.hmc_step, max_steps, target.inverse_mass_matrix, integration_steps_jitter=1.0
    )
    bound, states, stats = our_chain(sampler, target.initial_position, key, NUM_STEPS)
    assert_same_chain(bound, states, stats, bj_states, bj_infos)
    np.testing.assert_allclose(stats.proposal_energy, bj_infos.energy, rtol=1e-10, atol=1e-10)
    # jitter 1: every count 1..L is drawn, about equally often (2000 draws over 12 values)
    counts = np.bincount(np.asarray(stats.num_integration_steps), minlength=max_steps + 1)
    assert counts[0] == 0 and counts[1:].min() > 100
    # the counts have a key stream of their own: the momenta and uniforms are the fixed-length chain's
    plain = HMC(target.logdensity_fn, target.hmc_step, max_steps, target.inverse_mass_matrix)
    plain_noise = plain.bind(target.initial_position).noise(key, NUM_STEPS)
    assert plain_noise.num_steps is None
    noise = bound.noise(key, NUM_STEPS)
    np.testing.assert_array_equal(plain_noise.momentum, noise.momentum)
    np.testing.assert_array_equal(plain_noise.uniform, noise.uniform)


def test_partial_trajectory_jitter_draws_the_top_of_the_range():
    target = correlated_gaussian()
    sampler = HMC(target.logdensity_fn, 0.5, 10, integration_steps_jitter=0.4).bind(target.initial_position)
    steps = np.asarray(sampler.noise(jax.random.key(5), 500).num_steps)
    assert steps.min() == 7 and steps.max() == 10  # ceil((0.6 + 0.4 v) 10) with v uniform on [0, 1)
    with pytest.raises(ValueError, match="integration_steps_jitter must lie in"):
        HMC(target.logdensity_fn, 0.5, 10, integration_steps_jitter=0.0)


def test_hmc_energy_is_the_hamiltonian_of_the_draw():
    """energy = H at the draw (end of trajectory if accepted, start if not): finite at divergences."""
    target = correlated_gaussian()
    key = jax.random.key(11)
    sampler, _, stats = our_chain(HMC(target.logdensity_fn, 3.0, 5), target.initial_position, key, 200)
    assert int(jnp.sum(stats.is_divergent)) > 0 and bool(jnp.all(jnp.isfinite(stats.energy)))
    # H at the start: -log p(x_{t-1}) + |p_t|^2 / 2 (identity mass matrix)
    lp_prev = jnp.concatenate([target.logdensity_fn(target.initial_position)[None], stats.logdensity[:-1]])
    start = -lp_prev + 0.5 * jnp.sum(sampler.noise(key, 200).momentum ** 2, axis=1)
    expected = jnp.where(stats.is_accepted, stats.proposal_energy, start)
    np.testing.assert_allclose(stats.energy, expected, rtol=1e-12, atol=1e-12)
    assert not bool(jnp.all(stats.is_accepted))


@pytest.mark.parametrize("make_target", TARGETS, ids=lambda f: f.__name__)
def test_preconditioned_mala_is_blackjax_mala_on_the_transformed_density(make_target):
    """MALA(..., loc=m, scale=L) runs on z = L^-1 (x - m): BlackJAX's MALA on z -> log p(m + L z)."""
    target = make_target()
    flat0, unravel = jax.flatten_util.ravel_pytree(target.initial_position)
    dim = flat0.size
    rng = np.random.default_rng(7)
    a = rng.normal(size=(dim, dim))
    sd = np.sqrt(np.asarray(target.inverse_mass_matrix))  # about the posterior's scales
    cov = sd[:, None] * (a @ a.T / dim + np.eye(dim)) * sd[None, :] * 0.5
    loc = jnp.asarray(np.asarray(flat0) + 0.1 * sd * rng.normal(size=dim))
    scale = jnp.asarray(np.linalg.cholesky(cov))
    z_logdensity = lambda z: target.logdensity_fn(unravel(loc + scale @ z))
    z0 = jnp.asarray(np.linalg.solve(np.asarray(scale), np.asarray(flat0 - loc)))
    key = jax.random.key(99)
    eps = 0.3
    bj_states, bj_infos = blackjax_chain(blackjax.mala(z_logdensity, eps), z0, key, NUM_STEPS)
    sampler = MALA(target.logdensity_fn, eps, loc=loc, scale=scale)
    bound, states, stats = our_chain(sampler, target.initial_position, key, NUM_STEPS)
    assert float(jnp.max(jnp.abs(states - bj_states.position))) <= 1e-8  # the chain of z
    assert int(jnp.sum(stats.is_accepted != bj_infos.is_accepted)) == 0
    assert 0 < int(jnp.sum(~bj_infos.is_accepted)) < NUM_STEPS
    np.testing.assert_allclose(stats.logdensity, bj_states.logdensity, rtol=1e-10, atol=1e-10)
    # mapped back to positions at the output
    expected = jax.vmap(lambda z: unravel(loc + scale @ z))(bj_states.position)
    jax.tree.map(
        lambda u, v: np.testing.assert_allclose(u, v, rtol=0, atol=1e-8), bound.unravel_chain(states), expected
    )


def test_trajectory_length_sets_the_jitters_maximum_and_matches_blackjax_dynamic_hmc():
    """trajectory_length=T: L = ceil(T / step_size) (num_integration_steps is the cap), BlackJAX's chain for that L."""
    target = correlated_gaussian()
    key = jax.random.key(7)
    max_steps = math.ceil(2.3 / target.hmc_step)
    bj_states, bj_infos = blackjax_dynamic_hmc(target, key, NUM_STEPS, max_steps, 1.0)
    sampler = HMC(
        target.logdensity_fn, target.hmc_step, 1024, target.inverse_mass_matrix,
        integration_steps_jitter=1.0, trajectory_length=2.3,
    )  # fmt: skip
    bound, states, stats = our_chain(sampler, target.initial_position, key, NUM_STEPS)
    assert int(bound.max_integration_steps) == max_steps
    assert_same_chain(bound, states, stats, bj_states, bj_infos)
    assert int(np.max(stats.num_integration_steps)) == max_steps
    capped = HMC(target.logdensity_fn, target.hmc_step, 3, integration_steps_jitter=1.0, trajectory_length=2.3)
    assert int(capped.max_integration_steps) == 3
    with pytest.raises(ValueError, match="give integration_steps_jitter"):
        HMC(target.logdensity_fn, 0.5, 10, trajectory_length=2.0)
    with pytest.raises(ValueError, match="trajectory_length must be positive"):
        HMC(target.logdensity_fn, 0.5, 10, integration_steps_jitter=1.0, trajectory_length=0.0)
