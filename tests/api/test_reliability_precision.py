"""What float32 guarantees, end to end through sample() with x64 off (docs/precision.md).

The float64 guarantee (parallel equals sequential to 1e-8, no accept decision differs) is asserted by
tests/samplers/test_samplers_chain.py::test_every_solver_gives_the_blackjax_chain (every solver, MALA and HMC,
against BlackJAX) and by every statistical test through compare() (test_reliability_stats.py,
assert_parallel_is_sequential); the run_chain-level float32 check is
tests/samplers/test_samplers_chain_float32.py. This file adds the float32 run a user gets: a NumPyro model with
float32 data, JAX's default precision, warmup, the parallel solve and the DataTree.
"""

import warnings

import jax
import numpy as np
import pytest

import parmcmc
from parmcmc.engine import default_tolerance
from parmcmc.models.builtin import linear_regression

REG = linear_regression(seed=7, num_data=40, num_features=3)


def moved(draws, threshold):
    return np.max(np.abs(draws[:, 1:] - draws[:, :-1]), axis=-1) > threshold


# MALA, the default sampler, on a converging solve; HMC in float32 through sample() is
# tests/api/test_reliability_numerics.py::test_float32_overflow_through_sample_warns_and_returns_the_sequential_chain.
@pytest.mark.parametrize("sampler", ["mala"])
def test_float32_sample_meets_the_tolerance_and_counts_differing_decisions(sampler, record_property):
    X, y = (np.asarray(a, np.float32) for a in (REG.model_args[0], REG.model_kwargs["y"]))
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error", parmcmc.Float64DataWarning)  # float32 data: nothing to warn about
        cmp = parmcmc.compare(
            REG.model,
            model_args=(X,),
            model_kwargs={"y": y},
            rng_key=jax.random.key(3),
            sampler=sampler,
            num_samples=1000,
            num_warmup=300,
            num_chains=2,
            progress_bar=False,
        )
    par, seq = cmp.parallel.posterior["beta"].values, cmp.sequential.posterior["beta"].values
    assert par.dtype == seq.dtype == np.float32
    stats = cmp.parallel["solver_stats"]
    assert bool(stats["solver_converged"].all()) and not bool(stats["solver_fell_back"].any())

    tol = default_tolerance(np.float32)  # the engine's float32 atol = rtol
    scale = 1 + np.abs(par).max()
    # |x_t - f(x_{t-1})| <= atol + rtol |x_t| per entry: the chain is the float32 step map's, to tolerance
    assert np.all(stats["solver_residual"].values <= tol * scale)

    flips = moved(par, 1e-3) != moved(seq, 1e-3)  # accepted moves are O(0.1); rounding is 1e-6
    record_property("differing_decisions", int(flips.sum()))
    print(
        f"\nfloat32 {sampler}: {int(flips.sum())} of {flips.size} accept decisions differ from the sequential "
        f"chain; max |parallel - sequential| {np.abs(par - seq).max():.2e}; residual "
        f"{stats['solver_residual'].values.max():.2e}",
        end="",
    )
    for k in range(par.shape[0]):  # up to the first differing decision, the chains agree to tolerance
        until = int(np.argmax(flips[k])) if flips[k].any() else par.shape[1]
        assert np.abs(par[k, : until + 1] - seq[k, : until + 1]).max() <= 10 * tol * scale
