"""Barker's proposal: BlackJAX's chain for the same key (float64, decision by decision), an immutable
pytree that compiles once per program, parallel solves equal to the sequential chain, and
sample(sampler="barker") with its warmup."""

import blackjax
import blackjax.util
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.sampler_targets import TARGETS, correlated_gaussian, pytree_gaussian, sequential_chain

import parmcmc
from parmcmc.chain import run_chain
from parmcmc.engine import DEER, QuasiDEER
from parmcmc.samplers import Barker
from parmcmc.warmup_scale import BARKER_TARGET_ACCEPTANCE, barker_warmup

NUM_STEPS = 500
STEP = {"gaussian": 0.5, "logistic": 0.05, "pytree": 0.6}  # acceptance 0.6-0.96: decisions exercised


def blackjax_chain(logdensity_fn, position, step_size, key, num_steps):
    algorithm = blackjax.barker(logdensity_fn, step_size)
    state = algorithm.init(position)  # pyright: ignore[reportCallIssue] (barker's init takes no rng_key)
    _, (states, infos) = blackjax.util.run_inference_algorithm(key, algorithm, num_steps, initial_state=state)
    return states, infos


def our_chain(sampler, position, key, num_steps):
    sampler = sampler.bind(position)
    x0 = sampler.ravel(position)
    inputs = sampler.noise(key, num_steps)
    states = sequential_chain(sampler, x0, inputs)
    return sampler, states, jax.jit(sampler.chain_stats)(x0, states, inputs)


@pytest.mark.parametrize("make_target", TARGETS, ids=lambda f: f.__name__)
def test_barker_matches_blackjax(make_target):
    """Positions within 1e-8 and no accept decision differing (pytree target: coins drawn per leaf)."""
    target = make_target()
    key = jax.random.key(5)
    step = STEP[target.name]
    bj_states, bj_infos = blackjax_chain(target.logdensity_fn, target.initial_position, step, key, NUM_STEPS)
    sampler, states, stats = our_chain(Barker(target.logdensity_fn, step), target.initial_position, key, NUM_STEPS)
    bj_flat = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(bj_states.position)
    assert float(jnp.max(jnp.abs(states - bj_flat))) <= 1e-8
    assert int(jnp.sum(stats.is_accepted != bj_infos.is_accepted)) == 0
    assert 0 < int(jnp.sum(~bj_infos.is_accepted)) < NUM_STEPS
    np.testing.assert_allclose(stats.acceptance_rate, bj_infos.acceptance_rate, rtol=0, atol=1e-10)
    np.testing.assert_allclose(stats.logdensity, bj_states.logdensity, rtol=1e-10, atol=1e-10)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-8),
        sampler.unravel_chain(states),
        bj_states.position,
    )


def test_preconditioned_barker_is_blackjax_barker_on_the_transformed_density():
    """Barker(..., scale=s) runs on z = x / s: BlackJAX's Barker on z -> log p(s z) (what the warmup tunes)."""
    target = pytree_gaussian()
    flat0, unravel = jax.flatten_util.ravel_pytree(target.initial_position)
    scale = jnp.sqrt(jnp.asarray(target.inverse_mass_matrix))
    key = jax.random.key(99)
    bj_states, bj_infos = blackjax_chain(
        lambda z: target.logdensity_fn(unravel(scale * z)), flat0 / scale, 1.2, key, NUM_STEPS
    )
    bound, states, stats = our_chain(
        Barker(target.logdensity_fn, 1.2, scale=scale), target.initial_position, key, NUM_STEPS
    )
    assert float(jnp.max(jnp.abs(states - bj_states.position))) <= 1e-8
    assert int(jnp.sum(stats.is_accepted != bj_infos.is_accepted)) == 0
    assert 0 < int(jnp.sum(~bj_infos.is_accepted)) < NUM_STEPS
    expected = jax.vmap(lambda z: unravel(scale * z))(bj_states.position)
    jax.tree.map(
        lambda u, v: np.testing.assert_allclose(u, v, rtol=0, atol=1e-8), bound.unravel_chain(states), expected
    )


def test_barker_is_an_immutable_pytree_that_compiles_once():
    target = correlated_gaussian(dim=3)
    x0 = target.initial_position
    a = Barker(target.logdensity_fn, 0.1).bind(x0)
    b = Barker(target.logdensity_fn, 0.2).bind(x0)
    with pytest.raises(AttributeError, match="immutable"):
        a.step_size = 0.3  # pyright: ignore[reportAttributeAccessIssue] (the assignment under test)
    assert [jnp.shape(v) for v in jax.tree.leaves(a)] == [()]  # the step size is its only array setting
    noise = jax.tree.map(lambda v: v[0], a.noise(jax.random.key(0), 1))
    traces = []

    @jax.jit
    def step(sampler, x, noise_t):
        traces.append(1)
        return sampler.step(x, noise_t)

    xa, xb = step(a, x0, noise), step(b, x0, noise)
    assert len(traces) == 1
    np.testing.assert_allclose(xa, a.step(x0, noise), rtol=1e-12)
    np.testing.assert_allclose(xb, b.step(x0, noise), rtol=1e-12)
    assert not np.allclose(xa, xb)
    # per-chain step sizes vmap over one sampler
    eps = jnp.array([0.1, 0.2])
    xs = jax.vmap(lambda s: s.step(x0, noise))(a.per_chain(step_size=eps))
    np.testing.assert_allclose(xs[1], xb, rtol=1e-12)
    with pytest.raises(ValueError, match="step_size must be positive"):
        a.replace(step_size=0.0)


@pytest.mark.parametrize("solver", [DEER(), QuasiDEER()], ids=lambda s: type(s).__name__)
def test_parallel_solve_gives_the_sequential_chain(solver):
    """The step map's Jacobian is the identity a.e. (the signs are piecewise constant): the solve still
    returns the sequential chain exactly (at most T iterations: DEER fixes one more state each)."""
    target = correlated_gaussian(dim=4)
    sampler = Barker(target.logdensity_fn, 0.5)
    key, num_steps = jax.random.key(3), 32
    _, states, stats = our_chain(sampler, target.initial_position, key, num_steps)
    result = run_chain(sampler, target.initial_position, key, num_steps, solver=solver, max_iters=num_steps)
    assert bool(result.converged)
    assert float(jnp.max(jnp.abs(result.positions - states))) <= 1e-8
    assert int(jnp.sum(result.stats.is_accepted != stats.is_accepted)) == 0
    assert 0 < int(jnp.sum(~stats.is_accepted)) < num_steps
    assert 1 <= int(result.num_iters) <= num_steps


SCALES = jnp.array([1.0, 10.0, 0.1])


def test_sample_barker_adapts_and_samples_a_badly_scaled_gaussian():
    """sample(sampler="barker"): the warmup finds the three scales (two decades apart) and the step size;
    the draws' sds are within 15% of the truth (about 200 effective draws per coordinate: sd error ~5%)."""
    tree = parmcmc.sample(
        lambda x: -0.5 * jnp.sum((x / SCALES) ** 2),
        rng_key=jax.random.key(0),
        initial_position=jnp.full(3, 0.5),
        num_samples=1000,
        num_warmup=500,
        num_chains=2,
        sampler="barker",
        parallel=False,
        progress_bar=False,
    )
    x = np.asarray(tree["posterior"]["x"]).reshape(-1, 3)
    np.testing.assert_allclose(x.std(axis=0), SCALES, rtol=0.15)
    accept = float(np.mean(tree["sample_stats"]["acceptance_rate"]))
    assert abs(accept - BARKER_TARGET_ACCEPTANCE) < 0.1


def test_barker_warmup_checks_its_arguments():
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        barker_warmup(lambda x: -jnp.sum(x**2), jnp.zeros((2, 3)), jax.random.key(0), 0)
    with pytest.raises(ValueError, match="dense_mass=True is not available for sampler='barker'"):
        parmcmc.sample(
            lambda x: -jnp.sum(x**2),
            rng_key=jax.random.key(0),
            initial_position=jnp.zeros(2),
            num_samples=10,
            sampler="barker",
            dense_mass=True,
        )
