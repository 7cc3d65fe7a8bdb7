"""ArviZ's tools on parmcmc's output exactly as on az.from_numpyro(mcmc)'s (NumPyro's NUTS, same model).

One small sampled tree per run kind, shared by the module: a regression with a plate, 2 chains x 200
draws after 200 warmup steps. Each test runs one ArviZ function on both trees and compares what comes out.
"""

import arviz as az
import jax
import matplotlib
import matplotlib.pyplot
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

import parmcmc

matplotlib.use("Agg")
NUTS_FIELDS = ("potential_energy", "energy", "accept_prob", "diverging", "adapt_state.step_size")


def model(x, y=None):
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(a * x, s), obs=y)


X = np.linspace(-1.0, 1.0, 20)
Y = 0.5 * X + 0.3 * np.random.default_rng(0).normal(size=20)


@pytest.fixture(scope="module")
def nuts():
    mcmc = MCMC(
        NUTS(model), num_warmup=200, num_samples=200, num_chains=2, progress_bar=False, chain_method="sequential"
    )
    mcmc.run(jax.random.key(0), X, Y, extra_fields=NUTS_FIELDS)
    return az.from_numpyro(mcmc, log_likelihood=True)


@pytest.fixture(scope="module")
def ours():
    return parmcmc.sample(
        model,
        rng_key=jax.random.key(0),
        num_samples=200,
        num_warmup=200,
        num_chains=2,
        sampler="hmc",
        model_args=(X, Y),
        progress_bar=False,
        posterior_predictive=True,
        prior=50,
    )


def test_sample_stats_hold_what_nuts_output_holds(ours, nuts):
    ss, ref = ours["sample_stats"], nuts["sample_stats"]
    # and HMC's leapfrog steps per draw, n_steps (NUTS's comes with tree_depth, not recorded here)
    assert set(ss.data_vars) - set(ref.data_vars) == {"n_steps"} and set(ref.data_vars) <= set(ss.data_vars)
    for name in ref.data_vars:
        assert ss[name].dims == ref[name].dims == ("chain", "draw"), name
        assert ss[name].dtype.kind == ref[name].dtype.kind, name
    assert set(ours["solver_stats"].data_vars) >= {"solver_iterations", "solver_converged", "solver_fell_back"}


def test_log_likelihood_group_is_numpyro_log_likelihood_of_the_draws(ours, nuts):
    ll = ours["log_likelihood"]["y"]
    assert ll.dims == nuts["log_likelihood"]["y"].dims == ("chain", "draw", "obs")
    draws = {k: ours["posterior"][k].values for k in ("a", "s")}
    expected = numpyro.infer.log_likelihood(model, draws, X, Y, batch_ndims=2)["y"]
    np.testing.assert_allclose(ll.values, expected, rtol=1e-12)


def test_loo(ours, nuts):
    # az.loo returns an ELPDData; arviz-stats annotates it as a tuple, so the checker misses its fields.
    mine, ref = az.loo(ours), az.loo(nuts)
    assert mine.n_data_points == ref.n_data_points == 20 and mine.n_samples == ref.n_samples == 400  # pyright: ignore[reportAttributeAccessIssue]
    # Same posterior: the estimates differ by Monte Carlo error, far below the standard error over data points.
    assert abs(mine.elpd - ref.elpd) < ref.se  # pyright: ignore[reportAttributeAccessIssue]


def test_waic_from_the_log_likelihood_group(ours, nuts):
    # ArviZ 1.x has no az.waic (arviz-stats dropped it for loo); WAIC from the group, as arviz 0.x computed it.
    def waic(tree):
        ll = tree["log_likelihood"]["y"].stack(sample=("chain", "draw")).values  # (obs, sample)
        lppd = np.log(np.mean(np.exp(ll), axis=1))
        return np.sum(lppd - np.var(ll, axis=1, ddof=1))

    assert not hasattr(az, "waic") or callable(az.waic)
    assert abs(waic(ours) - waic(nuts)) < az.loo(nuts).se  # pyright: ignore[reportAttributeAccessIssue] (ELPDData)


@pytest.mark.parametrize("group", ["posterior", "sample_stats"])
def test_plot_trace(ours, nuts, group):
    mine, ref = az.plot_trace(ours, group=group), az.plot_trace(nuts, group=group)
    assert set(mine.viz["plot"].data_vars) - {"n_steps"} == set(ref.viz["plot"].data_vars)  # + HMC's n_steps
    matplotlib.pyplot.close("all")


def test_plot_energy(ours, nuts):
    mine, ref = az.plot_energy(ours), az.plot_energy(nuts)
    assert type(mine) is type(ref)
    matplotlib.pyplot.close("all")


def test_bfmi(ours, nuts):
    mine, ref = az.bfmi(ours), az.bfmi(nuts)
    assert mine["energy"].dims == ref["energy"].dims == ("chain",)
    assert np.all(np.isfinite(mine["energy"].values)) and np.all(mine["energy"].values > 0)


@pytest.mark.parametrize("group", ["posterior", "sample_stats"])
def test_ess(ours, nuts, group):
    mine, ref = az.ess(ours, group=group), az.ess(nuts, group=group)
    assert set(mine.data_vars) - {"n_steps"} == set(ref.data_vars)  # + HMC's leapfrog steps per draw
    for name in ref.data_vars:
        assert mine[name].dims == ref[name].dims


def test_rhat(ours, nuts):
    mine, ref = az.rhat(ours), az.rhat(nuts)
    assert set(mine.data_vars) == set(ref.data_vars) == {"a", "s"}
    assert mine["a"].dims == ref["a"].dims == ()
    # The value measures the sampler's mixing, not the output: HMC with a fixed trajectory (10 steps) mixes
    # slowly on this posterior (R-hat ~1.1 at 2 x 200 draws, NUTS ~1.005), so only finiteness is asserted.
    assert all(np.isfinite(float(mine[k])) and float(mine[k]) > 0.99 for k in ("a", "s"))


def test_predictive_and_prior_groups(ours):
    pp = ours["posterior_predictive"]["y"]
    assert pp.dims == ("chain", "draw", "obs") and pp.shape == (2, 200, 20)
    assert not np.allclose(pp.values[0, 0], Y)  # fresh draws, not the data
    assert ours["prior"].sizes == {"chain": 1, "draw": 50} and set(ours["prior"].data_vars) == {"a", "s"}
    assert ours["prior_predictive"]["y"].shape == (1, 50, 20)
