"""Numerical faults inside a chain or a solve: none may hang, crash, or return a wrong chain quietly.

- an iterate of a parallel solve that overflows (float32, expanding Jacobians) is rejected from its
  first non-finite step on and the solve goes on; a sequential solution that is itself not finite is
  reported as NONFINITE, never as converged; sample() finishes a failed solve sequentially and says so;
- a log density that is NaN or -inf partway along a chain: the proposal is rejected exactly as in the
  sequential chain, and HMC marks the step divergent; +inf is accepted (as BlackJAX does) and sample()
  warns that the chain is stuck;
- an unstable step size: bounded work (max_iters), and the draws are the sequential chain's.

Every solve is bounded by max_iters, so a test cannot hang.
"""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import parmcmc
from parmcmc.engine import NONFINITE, SolveError, default_tolerance

MAX_ITERS = 30


def sequential(sampler, x0, key, num_steps):
    return parmcmc.run_chain(sampler, x0, key, num_steps, solver=parmcmc.Sequential())


def assert_same_chain(result, reference, tol=1e-8):
    assert bool(result.converged), int(result.result)
    assert float(jnp.max(jnp.abs(result.positions - reference.positions))) <= tol
    assert bool(jnp.all(result.stats.is_accepted == reference.stats.is_accepted))


# ---------------------------------------------------------------- overflow of a parallel iterate


def test_float32_overflow_of_a_newton_iterate_is_rejected_and_the_solve_is_exact():
    """x_t = clip(3 x_{t-1} + u_t, -1, 1): the true sequence stays in [-1, 1], but the first Newton
    iterate follows the slope 3 across the unsaturated stretch and overflows float32 (3^81 > 3.4e38).
    The overflowing tail of the update is rejected (it used to end the solve as NONFINITE)."""
    fn = lambda x, u: jnp.clip(3.0 * x + u, -1.0, 1.0)
    inputs = jnp.asarray(0.1 * jax.random.normal(jax.random.key(0), (300, 1)), jnp.float32)
    x0 = jnp.zeros(1, jnp.float32)
    reference = parmcmc.solve(fn, x0, inputs, parmcmc.Sequential()).states

    sol = parmcmc.solve(fn, x0, inputs, parmcmc.DEER(), max_iters=MAX_ITERS, fallback="sequential")
    assert bool(sol.converged) and not bool(sol.fell_back) and bool(jnp.all(jnp.isfinite(sol.states)))
    assert float(jnp.max(jnp.abs(sol.states - reference))) <= default_tolerance(jnp.float32)


def test_a_sequential_solution_that_is_not_finite_is_reported_nonfinite():
    """fn itself is NaN from step 150 on: no solver can converge there, and the solve says so."""
    fn = lambda x, u: 0.5 * x + u
    inputs = jnp.zeros((300, 1), jnp.float32).at[150].set(jnp.nan)
    x0 = jnp.zeros(1, jnp.float32)
    with pytest.warns(parmcmc.NotConvergedWarning, match="non-finite"):
        failed = parmcmc.solve(fn, x0, inputs, parmcmc.DEER(), max_iters=MAX_ITERS)
    assert not bool(failed.converged) and int(failed.result) == NONFINITE
    assert "non-finite" in failed.message
    with pytest.raises(SolveError, match="non-finite"):
        parmcmc.solve(fn, x0, inputs, parmcmc.DEER(), max_iters=MAX_ITERS, throw=True)


def banana(x):
    """TFP's inference-gym banana: x1 ~ N(0, 10^2), x2 | x1 ~ N(0.03 (x1^2 - 100), 1)."""
    return -0.5 * (x[0] / 10.0) ** 2 - 0.5 * (x[1] - 0.03 * (x[0] ** 2 - 100.0)) ** 2


def test_float32_overflow_through_sample_warns_and_returns_the_sequential_chain(record_property):
    """Undamped DEER on HMC's banana chain in float32 (the published case that needs damping): a Newton
    iterate overflows (its non-finite tail is now rejected, and the solve fails fast by its budget
    instead: docs/convergence.md). sample() finishes the failed solve step by step,
    with a warning, and the draws are the float32 sequential chain's (compare() runs both). In float32 the
    two agree to the solver's tolerance up to the first accept decision that differs (precision.md);
    the differing decisions are counted."""
    with jax.enable_x64(False), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cmp = parmcmc.compare(
            banana,
            initial_position=np.array([7.0, -4.0], np.float32),
            rng_key=jax.random.key(1),
            num_samples=1000,
            num_warmup=0,
            num_chains=2,
            sampler="hmc",
            step_size=0.5,
            num_integration_steps=8,
            solver=parmcmc.DEER(),
            max_iters=MAX_ITERS,
            progress_bar=False,
        )
    messages = [str(w.message) for w in caught if issubclass(w.category, parmcmc.FallbackWarning)]
    assert any("did not converge" in m and "continued sequentially" in m for m in messages), messages
    stats = cmp.parallel["solver_stats"]
    assert bool(stats["solver_fell_back"].all()) and bool(stats["solver_converged"].all())
    par, seq = cmp.parallel.posterior["x"].values, cmp.sequential.posterior["x"].values
    assert par.dtype == np.float32 and np.all(np.isfinite(par))
    tol = default_tolerance(np.float32)
    assert np.all(stats["solver_residual"].values <= tol * (1 + np.abs(par).max()))
    moved = lambda draws: np.max(np.abs(draws[:, 1:] - draws[:, :-1]), axis=-1) > 1e-3  # rounding is not a move
    flips = moved(par) != moved(seq)
    record_property("differing_decisions", int(flips.sum()))
    for k in range(par.shape[0]):
        until = int(np.argmax(flips[k])) if flips[k].any() else par.shape[1]
        scale = 1 + np.abs(seq[k, : until + 1]).max()
        assert np.abs(par[k, : until + 1] - seq[k, : until + 1]).max() <= 10 * tol * scale


# ---------------------------------------------------------------- NaN / inf log density mid-chain


def log_density_with_holes(x):
    """A standard normal in 2-D; beyond x[0] > 1 the value AND the gradient are NaN; below x[0] < -1
    the value is -inf (outside the support)."""
    nan_beyond = 0.0 * jnp.sqrt(1.0 - x[0])  # 0 inside, NaN with a NaN gradient beyond 1
    return jnp.where(x[0] < -1.0, -jnp.inf, -0.5 * jnp.sum(x**2) + nan_beyond)


def mala_proposal_log_densities(sampler, x0, key, chain, eps):
    """The log density at every step's MALA proposal, recomputed from the chain and its noise."""
    noise = sampler.noise(key, chain.positions.shape[0])
    previous = jnp.concatenate([x0[None], chain.positions[:-1]])
    grads = jax.vmap(jax.grad(log_density_with_holes))(previous)
    proposals = previous + eps * grads + jnp.sqrt(2 * eps) * noise.normal
    return jax.vmap(log_density_with_holes)(proposals)


@pytest.mark.parametrize("kind", ["MALA", "HMC"])
def test_nan_and_minus_inf_log_density_mid_chain_are_rejected_as_in_the_sequential_chain(kind):
    x0, key, num_steps = jnp.zeros(2), jax.random.key(3), 400
    if kind == "MALA":
        eps = 0.5
        sampler = parmcmc.MALA(log_density_with_holes, eps).bind(x0)
    else:
        sampler = parmcmc.HMC(log_density_with_holes, 0.4, 5).bind(x0)
    reference = sequential(sampler, x0, key, num_steps)
    result = parmcmc.run_chain(sampler, x0, key, num_steps, solver=parmcmc.DEER(), max_iters=MAX_ITERS)
    assert_same_chain(result, reference)
    assert not bool(result.fell_back)

    stats = result.stats
    if kind == "MALA":
        lp_proposal = mala_proposal_log_densities(sampler, x0, key, result, eps)
    else:
        lp_proposal = -stats.proposal_energy  # energy at the trajectory's end: NaN or +inf there
    nan_steps, inf_steps = jnp.isnan(lp_proposal), jnp.isneginf(lp_proposal)
    assert int(nan_steps.sum()) >= 5 and int(inf_steps.sum()) >= 5  # the faults really happen
    bad = nan_steps | inf_steps
    assert not bool(jnp.any(stats.is_accepted[bad])) and bool(jnp.all(stats.acceptance_rate[bad] == 0))
    assert bool(jnp.all(jnp.abs(result.positions[:, 0]) <= 1.0)) and bool(jnp.all(jnp.isfinite(stats.logdensity)))
    if kind == "HMC":
        assert bool(jnp.all(stats.is_divergent[bad])) and bool(jnp.all(stats.energy_error[bad] == jnp.inf))


@pytest.mark.filterwarnings("ignore::parmcmc.FallbackWarning")  # the stuck chain also falls back: not the point here
def test_plus_inf_log_density_is_accepted_as_in_blackjax_and_sample_warns():
    """+inf is not rejected (BlackJAX accepts it, and the chains must agree), but a chain that reaches it
    never leaves: sample() warns instead of returning those draws quietly."""
    spike = lambda x: jnp.where(x[0] > 1.5, jnp.inf, -0.5 * jnp.sum(x**2))
    with pytest.warns(RuntimeWarning) as caught:
        tree = parmcmc.sample(
            spike,
            initial_position=jnp.zeros(2),
            rng_key=jax.random.key(2),
            num_samples=300,
            num_warmup=0,
            num_chains=1,
            step_size=0.5,
            parallel=True,
            solver=parmcmc.DEER(),
            max_iters=MAX_ITERS,
            progress_bar=False,
            sampler="mala",
        )
    messages = [str(w.message) for w in caught]
    assert any(re.search(r"log density is \+inf at the draws of chain\(s\) \[0\]", m) for m in messages), messages
    lp = tree.sample_stats["lp"].values[0]
    stuck = int(np.argmax(np.isposinf(lp)))
    draws = tree.posterior["x"].values[0]
    assert np.all(draws[stuck:] == draws[stuck]) and np.all(np.isposinf(lp[stuck:]))


# ---------------------------------------------------------------- unstable step size


@pytest.mark.parametrize("kind, step_size", [("MALA", 50.0), ("HMC", 2.5)])
def test_unstable_step_size_stays_bounded_and_gives_the_sequential_chain(kind, step_size):
    """MALA with eps far beyond 2 sigma^2 and HMC with leapfrog beyond its stability limit (eps > 2 sigma):
    proposals explode and are rejected, HMC steps are divergent; the parallel solve stops within max_iters
    and returns the sequential chain (directly or through the fallback)."""
    x0 = jnp.array([0.5, -0.3, 1.0])
    logdensity = lambda x: -0.5 * jnp.sum(x**2)
    if kind == "MALA":
        sampler = parmcmc.MALA(logdensity, step_size).bind(x0)
    else:
        sampler = parmcmc.HMC(logdensity, step_size, 10).bind(x0)
    key, num_steps = jax.random.key(4), 300
    reference = sequential(sampler, x0, key, num_steps)
    result = parmcmc.run_chain(
        sampler, x0, key, num_steps, solver=parmcmc.DEER(), max_iters=MAX_ITERS, fallback="sequential"
    )
    assert_same_chain(result, reference)
    assert int(result.num_iters) <= MAX_ITERS
    assert float(jnp.mean(result.stats.is_accepted)) < 0.05
    if kind == "HMC":
        assert float(jnp.mean(result.stats.is_divergent)) > 0.9
