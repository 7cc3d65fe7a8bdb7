"""parmcmc.diagnose on MCMC targets: the verdict against measured iteration counts, and the fallback."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.sampler_targets import logistic_regression

from parmcmc import DEER, MALA, Sequential, diagnose, lyapunov_exponent, solve
from parmcmc.diagnostics import FallbackWarning, fallback_warning, iteration_budget, warn_if_fell_back

T_CHECK, T_PILOT = 2048, 256  # the LLE pilot is T_CHECK long: one noise draw shape, one compilation


def gaussian(scales):
    scales = jnp.asarray(scales, jnp.float64)
    return (lambda x: -0.5 * jnp.sum((x / scales) ** 2)), jnp.ones(scales.shape[0])


def correlated_gaussian(dim=5, condition=1e3):
    """Variances 1..condition along random orthogonal axes."""
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    precision = jnp.asarray(Q @ np.diag(1 / np.geomspace(1, condition, dim)) @ Q.T)
    return (lambda x: -0.5 * x @ precision @ x), jnp.ones(dim)


def funnel(k=4):
    """Neal's funnel: v ~ N(0, 3^2), x_i | v ~ N(0, e^v); a fixed step is too large in the neck."""

    def logdensity(z):
        v, x = z[0], z[1:]
        return -(v**2) / 18.0 - 0.5 * jnp.sum(x**2) * jnp.exp(-v) - 0.5 * k * v

    return logdensity, jnp.concatenate([jnp.zeros(1), jnp.ones(k)])


def small_logistic_regression():
    t = logistic_regression(dim=5, num_data=200)
    return t.logdensity_fn, t.initial_position


# name: (target, MALA step size, solver, expected verdict). Measured: the chain of T_CHECK steps solved
# with the budget of the definition, 8 log2(T) = 88 iterations, must converge iff the verdict says so.
# The sixth target, a chaotic map, is the logistic map of test_diagnostics.py.
TARGETS = {
    "well_conditioned_gaussian/DEER": (lambda: gaussian([1.0] * 5), 0.5, DEER(), True),
    # LLE ~ -1/condition is not clearly negative: the pilot is extrapolated linearly, and DEER (exact
    # Jacobians of a nearly affine map) is cheap enough to stay in budget. QuasiDEER on a dense
    # near-neutral map fails instead: see test_diagnostics.py.
    "ill_conditioned_gaussian/DEER": (correlated_gaussian, 0.5, DEER(), True),
    "logistic_regression/DEER": (small_logistic_regression, 0.02, DEER(), True),
    "funnel/DEER": (funnel, 0.2, DEER(), False),
    # |1 - eps| = 1.2 > 1: every accepted step overshoots and expands (LLE > 0, acceptance ~3%).
    "step_too_large/DEER": (lambda: gaussian([1.0] * 5), 2.2, DEER(), False),
}


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.filterwarnings("ignore::parmcmc.engine.NotConvergedWarning")  # the solve is measured: converged or not
def test_verdict_agrees_with_measured_iteration_counts_on_mcmc_targets(name):
    make, eps, solver, expected = TARGETS[name]
    logdensity, x0 = make()
    sampler = MALA(logdensity, eps).bind(x0)
    d = diagnose(sampler, x0, jax.random.key(1), T_CHECK, solver=solver, pilot_steps=T_PILOT, lle_steps=T_CHECK)
    inputs = sampler.noise(jax.random.key(7), T_CHECK)  # another chain than the pilot's
    measured = solve(sampler.step, x0, inputs, solver, max_iters=math.floor(iteration_budget(T_CHECK)))
    assert d.parallel_pays == expected, d.reason
    assert d.parallel_pays == bool(measured.converged), (d.reason, int(measured.num_iters))
    assert math.isfinite(d.lle) and d.T == T_CHECK


def test_lle_of_mala_on_a_standard_gaussian_is_the_accepted_contraction():
    # An accepted MALA step on N(0, I) maps x to (1 - eps) x + noise, a rejected one to x: the LLE is
    # (acceptance rate) * log|1 - eps|, here within the estimate's stated tolerance.
    logdensity, x0 = gaussian([1.0] * 3)
    sampler = MALA(logdensity, 0.5).bind(x0)
    inputs = sampler.noise(jax.random.key(3), 4096)
    est = lyapunov_exponent(sampler.step, x0, inputs)
    states = solve(sampler.step, x0, inputs, Sequential()).states
    moved = jnp.any(states != jnp.concatenate([x0[None], states[:-1]]), axis=1)
    rate = float(jnp.mean(moved[409:]))  # the estimate discards the first tenth
    assert 0.5 < rate < 0.95 and abs(est.lle - rate * math.log(0.5)) <= 0.02


def test_a_forced_nonconvergence_of_a_chain_falls_back_warns_once_and_is_the_sequential_chain():
    logdensity, x0 = small_logistic_regression()
    sampler = MALA(logdensity, 0.02).bind(x0)
    inputs = sampler.noise(jax.random.key(5), 500)
    ref = solve(sampler.step, x0, inputs, Sequential()).states
    sol = solve(sampler.step, x0, inputs, DEER(), max_iters=2, fallback="sequential")
    assert bool(sol.fell_back) and bool(sol.converged) and 2 <= int(sol.sequential_from) < 500
    assert float(jnp.max(jnp.abs(sol.states - ref))) <= 1e-8
    moved = lambda X: jnp.any(jnp.concatenate([x0[None], X[:-1]]) != X, axis=1)
    assert bool(jnp.all(moved(sol.states) == moved(ref)))  # no accept decision differs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_fell_back(sol, lambda: lyapunov_exponent(sampler.step, x0, inputs), call="sample", solver=DEER())
    assert len(caught) == 1 and caught[0].category is FallbackWarning
    text = str(caught[0].message)
    assert "did not converge within its budget of 2 iterations" in text and "of 500" in text
    assert "Lyapunov exponent of the step map: -0." in text and "negative: raise max_iters" in text
    # A ChainResult (positions instead of states) gets the same text.
    assert fallback_warning(_as_chain(sol), -0.1) == fallback_warning(sol, -0.1) != ""


def _as_chain(sol):
    from parmcmc.chain import ChainResult

    return ChainResult(sol.states, None, sol._replace(states=None))


def test_diagnose_checks_its_arguments():
    logdensity, x0 = gaussian([1.0])
    with pytest.raises(TypeError, match="parmcmc sampler"):
        diagnose(logdensity, x0, jax.random.key(0), 100)
    with pytest.raises(ValueError, match="num_steps"):
        diagnose(MALA(logdensity, 0.1), x0, jax.random.key(0), 1)
    with pytest.raises(TypeError, match="window"):
        diagnose(MALA(logdensity, 0.1), x0, jax.random.key(0), 100, window=10)
