"""The accept gate as a differentiable map: hard and smooth Jacobians."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.sampler_targets import correlated_gaussian, sequential_chain

from parmcmc.samplers import HMC, MALA

TEMPERATURE = 0.7


def one_step_noise(inputs, t):
    return jax.tree.map(lambda a: a[t], inputs)


def mala_pieces(target, x, noise_t):
    """Proposal and log ratio of MALA, written out independently of the package."""
    eps = target.mala_step
    vg = jax.value_and_grad(target.logdensity_fn)

    def proposal(x):
        return x + eps * vg(x)[1] + jnp.sqrt(2 * eps) * noise_t.normal

    def log_ratio(x):
        xp = proposal(x)
        (lp, g), (lpp, gp) = vg(x), vg(xp)
        log_q_fwd = -jnp.sum((xp - x - eps * g) ** 2) / (4 * eps)
        log_q_bwd = -jnp.sum((x - xp - eps * gp) ** 2) / (4 * eps)
        return lpp + log_q_bwd - lp - log_q_fwd

    return proposal, log_ratio


@pytest.fixture(scope="module")
def mala_setup():
    target = correlated_gaussian()
    hard = MALA(target.logdensity_fn, target.mala_step).bind(target.initial_position)
    smooth = MALA(target.logdensity_fn, target.mala_step, gate="smooth", gate_temperature=TEMPERATURE).bind(
        target.initial_position
    )
    x0 = hard.ravel(target.initial_position)
    inputs = hard.noise(jax.random.key(3), 300)
    states = sequential_chain(hard, x0, inputs)
    stats = hard.chain_stats(x0, states, inputs)
    return target, hard, smooth, x0, inputs, states, stats


def test_smooth_gate_keeps_the_chain(mala_setup):
    _, _hard, smooth, x0, inputs, states, _ = mala_setup
    smooth_states = sequential_chain(smooth, x0, inputs)
    assert bool(jnp.all(smooth_states == states))  # bit for bit


@pytest.mark.parametrize("accepted", [True, False])
def test_mala_jacobians(mala_setup, accepted):
    target, hard, smooth, _x0, inputs, states, stats = mala_setup
    t = int(jnp.flatnonzero(stats.is_accepted == accepted)[3])
    x_prev = states[t - 1]
    noise_t = one_step_noise(inputs, t)
    proposal, log_ratio = mala_pieces(target, x_prev, noise_t)
    g = float(accepted)

    j_hard = jax.jacfwd(hard.step)(x_prev, noise_t)
    j_prop = jax.jacfwd(proposal)(x_prev)
    expected = g * j_prop + (1 - g) * jnp.eye(x_prev.size)
    np.testing.assert_allclose(j_hard, expected, rtol=1e-9, atol=1e-12)

    # smooth: hard Jacobian + (x_prop - x_prev) ds^T, s = sigmoid((log r - log u) / T)
    def soft(x):
        return jax.nn.sigmoid((log_ratio(x) - jnp.log(noise_t.uniform)) / TEMPERATURE)

    j_smooth = jax.jacfwd(smooth.step)(x_prev, noise_t)
    jump = proposal(x_prev) - x_prev
    np.testing.assert_allclose(j_smooth, expected + jnp.outer(jump, jax.grad(soft)(x_prev)), rtol=1e-8, atol=1e-10)
    assert float(jnp.max(jnp.abs(j_smooth - j_hard))) > 1e-6  # it does change the jvp
    # ... while the value is the hard gate's, exactly
    assert bool(jnp.all(smooth.step(x_prev, noise_t) == hard.step(x_prev, noise_t)))


def test_hmc_hard_jacobian_selects_proposal_or_identity():
    target = correlated_gaussian()
    sampler = HMC(target.logdensity_fn, 0.6, 5, target.inverse_mass_matrix)
    sampler = sampler.bind(target.initial_position)
    x0 = sampler.ravel(target.initial_position)
    inputs = sampler.noise(jax.random.key(8), 200)
    states = sequential_chain(sampler, x0, inputs)
    stats = sampler.chain_stats(x0, states, inputs)
    assert 0 < int(jnp.sum(~stats.is_accepted)) < 200
    jac = jax.jit(jax.jacfwd(sampler.step))
    for t in (int(jnp.flatnonzero(stats.is_accepted)[2]), int(jnp.flatnonzero(~stats.is_accepted)[2])):
        noise_t = one_step_noise(inputs, t)
        always = noise_t._replace(uniform=jnp.zeros(()))  # u = 0 accepts: the proposal map
        j_prop = jac(states[t - 1], always)
        g = float(stats.is_accepted[t])
        expected = g * j_prop + (1 - g) * jnp.eye(x0.size)
        np.testing.assert_allclose(jac(states[t - 1], noise_t), expected, atol=1e-12)
        assert float(jnp.max(jnp.abs(j_prop - jnp.eye(x0.size)))) > 1e-3


@pytest.mark.parametrize("gate", ["hard", "smooth"])
def test_out_of_support_proposal_is_rejected_without_nan(gate):
    """Outside x > 0 this log density and its gradient are NaN: the NaN log
    ratio counts as -inf, the proposal is rejected, value and Jacobian stay finite."""

    def logdensity_fn(x):
        return jnp.sum(2 * jnp.log(jnp.sqrt(x)) - x)

    x = jnp.array([0.05, 2.0])
    for sampler in (MALA(logdensity_fn, 0.5, gate=gate), HMC(logdensity_fn, 0.5, 5, gate=gate)):
        sampler = sampler.bind(x)
        inputs = sampler.noise(jax.random.key(0), 50)
        nexts, stats, jacs = jax.jit(
            jax.vmap(lambda n: (sampler.step(x, n), sampler.stats(x, n), jax.jacfwd(sampler.step)(x, n)))
        )(inputs)
        assert bool(jnp.all(jnp.isfinite(nexts))) and bool(jnp.all(jnp.isfinite(jacs)))
        outside = stats.acceptance_rate == 0  # proposals with a NaN log density
        assert int(jnp.sum(outside)) > 0
        assert not bool(jnp.any(stats.is_accepted[outside]))
        assert bool(jnp.all(nexts[outside] == x))
        # log ratio -inf: no sigmoid slope either, so both gates give the identity
        np.testing.assert_array_equal(jacs[outside], jnp.broadcast_to(jnp.eye(2), jacs[outside].shape))
