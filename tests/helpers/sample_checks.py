"""What the tests of sample()'s input checks share: a cheap target, a call with small defaults, and a fixture
that fails a test when the warmup or the sampling run starts (so a check is proven to come before them)."""

import jax
import jax.numpy as jnp
import pytest

import parmcmc
import parmcmc.api


def gaussian(x):
    return -0.5 * jnp.sum(x**2)


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail if warmup or the sampling run starts: the error must come before them."""

    def reached(*args, **kwargs):
        raise AssertionError("the bad input was not caught before warmup or sampling")

    import parmcmc.api
    import parmcmc.prepare

    for name in ("mala_warmup", "hmc_warmup", "chees_warmup", "barker_warmup", "mclmc_warmup", "vmapped_chains"):
        monkeypatch.setattr(parmcmc.prepare, name, reached)
    for name in ("run_chains", "vmapped_chains"):
        monkeypatch.setattr(parmcmc.api, name, reached)


def small_args(**changes) -> dict:
    """sample()'s arguments for `gaussian` from zeros(3), 2 chains x 10 draws after 10 warmup steps, quiet."""
    args = dict(
        model=gaussian,
        initial_position=jnp.zeros(3),
        rng_key=jax.random.key(0),
        num_samples=10,
        num_warmup=10,
        num_chains=2,
        progress_bar=False,
    )
    args.update(changes)
    return args


def call_sample(**changes):
    """parmcmc.sample with small_args(**changes)."""
    args = small_args(**changes)
    return parmcmc.sample(args.pop("model"), **args)
