"""Determinism: the draws are a function of the key, not of the run, the solver or the number of chains.

- the same call twice gives the same draws, bit for bit;
- chain k is the same whether 1 or 4 chains are run (starts, warmup and noise come from
  fold_in(key, k)): the same accept decisions, and warmup step sizes and draws equal to rounding.
  Not bit for bit: warmup and sampling are vmapped over chains, and XLA batches the log density's
  products (X @ beta for 1 chain, a matrix product for 4) with a summation order that depends on the
  batch size. Measured: 1.5e-14 in the draws, the same with parallel=False;
- parallel=True and parallel=False give the same draws to 1e-8 (float64) with the same accept decisions:
  asserted by every statistical test (tests/api/test_reliability_stats.py, assert_parallel_is_sequential,
  six configurations) and by tests/api/test_api.py::test_parallel_and_sequential_give_the_same_draws, so
  not run a third time here.

One NumPyro model (so NumPyro's per-chain starts are covered), short chains.
"""

import jax
import numpy as np
import pytest

import parmcmc
from parmcmc.models.builtin import linear_regression

REG = linear_regression(seed=5, num_data=20, num_features=2)
KEY = 1


def run(num_chains):
    return parmcmc.sample(
        REG.model,
        model_args=REG.model_args,
        model_kwargs=REG.model_kwargs,
        rng_key=jax.random.key(KEY),
        num_samples=200,
        num_warmup=100,
        num_chains=num_chains,
        parallel=True,
        progress_bar=False,
    )


@pytest.fixture(scope="module")
def four_chains():
    return run(4)


def draws(tree):
    return tree.posterior["beta"].values


def moved(tree):
    """Per draw, whether the chain moved: the accept decisions as the DataTree shows them. A rejected
    step of a parallel solve may move by rounding (the scan composes x_t = x_{t-1} + 0 in its own
    order), so "moved" means by more than 1e-8."""
    beta = draws(tree)
    return np.max(np.abs(beta[:, 1:] - beta[:, :-1]), axis=-1) > 1e-8


def test_same_key_same_draws_bit_for_bit(four_chains):
    again = run(4)
    assert np.array_equal(draws(again), draws(four_chains))
    assert np.array_equal(again.sample_stats["step_size"].values, four_chains.sample_stats["step_size"].values)


def test_chain_k_does_not_depend_on_the_number_of_chains(four_chains):
    one = run(1)
    step_one, step_four = one.sample_stats["step_size"].values[0], four_chains.sample_stats["step_size"].values[0]
    assert np.allclose(step_one, step_four, rtol=1e-12, atol=0)
    assert np.array_equal(moved(one)[0], moved(four_chains)[0])
    assert np.max(np.abs(draws(one)[0] - draws(four_chains)[0])) <= 1e-12
    assert bool(four_chains["solver_stats"]["solver_converged"].all())
    assert not bool(four_chains["solver_stats"]["solver_fell_back"].any())
