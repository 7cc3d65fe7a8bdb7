"""run_chain: every engine solver returns BlackJAX's chain.

float64: positions within 1e-8 of ``blackjax.util.run_inference_algorithm``
and no accept decision differing, for Sequential, Jacobi and Picard (short
chains: they may need up to T iterations), QuasiDEER and DEER.
(float32: test_samplers_chain_float32.py.)
"""

import blackjax
import blackjax.util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.sampler_targets import correlated_gaussian, pytree_gaussian

from parmcmc.chain import run_chain
from parmcmc.engine import DEER, Jacobi, Picard, QuasiDEER, Sequential
from parmcmc.samplers import HMC, MALA

KEY = jax.random.key(2024)
NUM_LEAPFROG = 5

SOLVERS = [  # (solver, T)
    (Sequential(), 200),
    (Jacobi(), 60),
    (Picard(), 60),
    (QuasiDEER(), 200),
    (DEER(), 200),
]


def make_pair(kind, target):
    """Our sampler and BlackJAX's algorithm, with the same settings."""
    if kind == "MALA":
        return (
            MALA(target.logdensity_fn, target.mala_step),
            blackjax.mala(target.logdensity_fn, target.mala_step),
        )
    imm = target.inverse_mass_matrix
    return (
        HMC(target.logdensity_fn, target.hmc_step, NUM_LEAPFROG, imm),
        blackjax.hmc(target.logdensity_fn, target.hmc_step, imm, NUM_LEAPFROG),
    )


def blackjax_chain(algorithm, position, num_steps):
    _, (states, infos) = blackjax.util.run_inference_algorithm(
        KEY, algorithm, num_steps, initial_state=algorithm.init(position)
    )
    return states, infos


def max_abs_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize("kind", ["MALA", "HMC"])
@pytest.mark.parametrize(
    "solver, num_steps", SOLVERS, ids=lambda s: type(s).__name__ if not isinstance(s, int) else str(s)
)
def test_every_solver_gives_the_blackjax_chain(kind, solver, num_steps):
    target = correlated_gaussian()
    sampler, algorithm = make_pair(kind, target)
    bj_states, bj_infos = blackjax_chain(algorithm, target.initial_position, num_steps)
    result = run_chain(sampler, target.initial_position, KEY, num_steps, solver=solver)

    assert bool(result.converged)
    assert max_abs_diff(result.positions, bj_states.position) <= 1e-8
    assert int(jnp.sum(result.stats.is_accepted != bj_infos.is_accepted)) == 0
    assert int(jnp.sum(~bj_infos.is_accepted)) > 0  # some rejections to get right
    np.testing.assert_allclose(result.stats.acceptance_rate, bj_infos.acceptance_rate, atol=1e-8)
    if kind == "HMC":
        np.testing.assert_allclose(result.stats.proposal_energy, bj_infos.energy, rtol=1e-8, atol=1e-8)
        assert bool(jnp.all(result.stats.is_divergent == bj_infos.is_divergent))
    if isinstance(solver, Sequential):
        assert int(result.num_iters) == 0
    else:
        assert 1 <= int(result.num_iters) <= num_steps


def test_jittered_trajectory_length_through_deer():
    """A per-draw number of leapfrog steps (a while_loop in the step map) linearises and solves in parallel
    to the sequential chain."""
    target = correlated_gaussian()
    sampler = HMC(target.logdensity_fn, target.hmc_step, 8, target.inverse_mass_matrix, integration_steps_jitter=1.0)
    sequential = run_chain(sampler, target.initial_position, KEY, 200, solver=Sequential())
    result = run_chain(sampler, target.initial_position, KEY, 200, solver=DEER())
    assert bool(result.converged)
    assert max_abs_diff(result.positions, sequential.positions) <= 1e-8
    assert int(jnp.sum(result.stats.is_accepted != sequential.stats.is_accepted)) == 0
    assert len(np.unique(np.asarray(result.stats.num_integration_steps))) == 8


def test_pytree_position_and_smooth_gate_through_deer():
    target = pytree_gaussian()
    algorithm = blackjax.mala(target.logdensity_fn, target.mala_step)
    bj_states, bj_infos = blackjax_chain(algorithm, target.initial_position, 200)
    sampler = MALA(target.logdensity_fn, target.mala_step, gate="smooth")
    result = run_chain(sampler, target.initial_position, KEY, 200, solver=DEER())
    assert bool(result.converged)
    assert jax.tree.structure(result.positions) == jax.tree.structure(bj_states.position)
    assert max_abs_diff(result.positions, bj_states.position) <= 1e-8
    assert int(jnp.sum(result.stats.is_accepted != bj_infos.is_accepted)) == 0


def test_a_bound_sampler_is_reused_and_checked():
    target = correlated_gaussian()
    sampler = MALA(target.logdensity_fn, target.mala_step).bind(target.initial_position)
    first = run_chain(sampler, target.initial_position, KEY, 50, solver=DEER())
    again = run_chain(sampler, target.initial_position, KEY, 50, solver=DEER())
    assert bool(jnp.all(first.positions == again.positions))
    with pytest.raises(ValueError, match="flat size 10"):
        run_chain(sampler, jnp.zeros(3), KEY, 50)
    with pytest.raises(TypeError, match="run_chain: sampler must be a parmcmc sampler"):
        run_chain(blackjax.mala(target.logdensity_fn, 0.1), target.initial_position, KEY, 5)
