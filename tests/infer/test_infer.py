"""parmcmc.infer.MCMC: NumPyro's MCMC interface over sample()'s pipeline; continuing a run; kernels."""

import copy

import arviz as az
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import parmcmc
from parmcmc.infer import HMC, MALA, MCMC, NUTS, AdjustedMCLMC, Barker, Predictive, log_likelihood

# The module's runs are short (what they test is the MCMC interface, not mixing): R-hat may pass 1.05 on them.
pytestmark = pytest.mark.filterwarnings("ignore::parmcmc.MixingWarning")

KEY = jax.random.key(3)


def model(x, y=None):
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    numpyro.deterministic("a2", 2.0 * a)
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.Normal(a * x, s), obs=y)


X = np.linspace(-1.0, 1.0, 12)
Y = 0.5 * X + 0.3 * np.random.default_rng(1).normal(size=12)


def mcmc(num_samples, **kw):
    return MCMC(MALA(model), num_warmup=100, num_samples=num_samples, num_chains=2, progress_bar=False, **kw)


@pytest.fixture(scope="module")
def long_run():
    m = mcmc(120)
    m.run(KEY, X, Y, extra_fields=("potential_energy", "accept_prob"))
    return m


def test_warmup_run_and_continued_run_give_the_draws_of_one_long_run(long_run):
    m = mcmc(60)
    m.warmup(KEY, X, Y)  # then run(KEY) samples from the warmup's state: the same as run(KEY, X, Y)
    assert m.post_warmup_state is not None and m.post_warmup_state.num_steps == 0
    m.run(KEY)
    first = m.get_samples(group_by_chain=True)
    m.post_warmup_state = m.last_state
    assert m.post_warmup_state is not None
    m.run(m.post_warmup_state.rng_key)
    second = m.get_samples(group_by_chain=True)
    whole = long_run.get_samples(group_by_chain=True)
    for site in ("a", "s", "a2"):
        joined = np.concatenate([first[site], second[site]], axis=1)
        np.testing.assert_allclose(joined, whole[site], rtol=0, atol=1e-8)
    assert m.last_state is not None and m.last_state.num_steps == 120
    assert bool(np.all(m.solver_stats["solver_converged"]))  # the second segment was solved in parallel
    assert int(np.max(m.solver_stats["solver_iterations"])) > 0


def test_get_samples_feed_predictive_and_log_likelihood(long_run):
    samples = long_run.get_samples()
    assert set(samples) == {"a", "s", "a2"} and samples["a"].shape == (240,)
    pred = Predictive(model, samples)(jax.random.key(1), X)
    assert pred["y"].shape == (240, 12)
    assert log_likelihood(model, samples, X, Y)["y"].shape == (240, 12)
    by_chain = long_run.get_samples(group_by_chain=True)
    assert by_chain["a"].shape == (2, 120)


def test_extra_fields_and_summary(long_run, capsys):
    extra = long_run.get_extra_fields(group_by_chain=True)
    assert set(extra) == {"potential_energy", "accept_prob"} and extra["accept_prob"].shape == (2, 120)
    tree = long_run.to_datatree()
    np.testing.assert_allclose(-extra["potential_energy"], tree["sample_stats"]["lp"].values)
    long_run.print_summary()
    out = capsys.readouterr().out
    assert "a" in out and "r_hat" in out and "a2" not in out and "Newton iterations per chain" in out
    with pytest.raises(ValueError, match="not recorded by MALA"):
        mcmc(10).run(KEY, X, Y, extra_fields=("energy",))


def test_az_from_numpyro_reads_our_mcmc(long_run):
    tree = az.from_numpyro(long_run, log_likelihood=True)
    assert tree["posterior"]["a"].shape == (2, 120)
    assert set(tree["sample_stats"].data_vars) == {"lp", "acceptance_rate"}
    np.testing.assert_allclose(  # pyright: ignore[reportCallIssue] (tree[group][var] is a DataArray; typed | DataTree)
        tree["log_likelihood"]["y"].values, long_run.to_datatree()["log_likelihood"]["y"]
    )


def test_thinning_keeps_numpyros_draws(long_run):
    m = copy.copy(long_run)  # the same run read with thinning=4 (sample() runs the pipeline with it below)
    m.thinning = 4
    np.testing.assert_array_equal(
        m.get_samples(group_by_chain=True)["a"], long_run.get_samples(group_by_chain=True)["a"][:, 3::4]
    )
    assert m.to_datatree()["posterior"].sizes["draw"] == 30
    assert m.get_extra_fields(group_by_chain=True)["accept_prob"].shape == (2, 30)


def test_sample_takes_thinning_and_init_strategy():
    tree = parmcmc.sample(
        model,
        rng_key=KEY,
        num_samples=30,
        num_warmup=20,
        num_chains=1,
        model_args=(X, Y),
        thinning=3,
        init_strategy=numpyro.infer.init_to_median,
        progress_bar=False,
        parallel=False,
    )
    assert tree["posterior"].sizes["draw"] == 10 and tree.attrs["thinning"] == 3
    with pytest.raises(ValueError, match="thinning"):
        parmcmc.sample(model, rng_key=KEY, num_samples=3, model_args=(X, Y), thinning=4)
    with pytest.raises(TypeError, match="init_strategy"):
        parmcmc.sample(model, rng_key=KEY, num_samples=3, model_args=(X, Y), init_strategy="median")


def test_kernels_refuse_what_they_cannot_do_yet():
    with pytest.raises(NotImplementedError, match="dense_mass"):
        HMC(model, dense_mass=[("a", "b")])
    assert HMC(model, dense_mass=True).sample_settings()["dense_mass"] is True
    with pytest.raises(NotImplementedError, match="HMC"):
        NUTS(model)
    with pytest.raises(NotImplementedError, match="num_steps"):
        HMC(model, trajectory_length=2.0)
    assert (
        HMC(model, step_size=0.1, adapt_step_size=False, adapt_mass_matrix=False, trajectory_length=1.0).num_steps == 10
    )
    with pytest.raises(ValueError, match="chain_method"):
        MCMC(HMC(model), num_warmup=1, num_samples=1, chain_method="pmap")
    with pytest.raises(TypeError, match="parmcmc kernel"):
        MCMC(numpyro.infer.NUTS(model), num_warmup=1, num_samples=1)
    settings = HMC(model, target_accept_prob=0.9, num_steps=5, parallel=False, max_iters=7).sample_settings()
    assert settings["target_acceptance"] == 0.9 and settings["num_integration_steps"] == 5
    assert settings["parallel"] is False and settings["max_iters"] == 7


def test_kernels_take_samples_sampler_options():
    """HMC's adaptation=, jitters and dense_mass="low_rank"; Barker and AdjustedMCLMC: sample()'s settings."""
    settings = HMC(
        model, adaptation="window_trajectory", integration_steps_jitter=0.5, step_size_jitter=0.0, dense_mass="low_rank"
    ).sample_settings()
    assert settings["adaptation"] == "window_trajectory" and settings["integration_steps_jitter"] == 0.5
    assert settings["step_size_jitter"] == 0.0 and settings["dense_mass"] == "low_rank"
    assert "adaptation" not in HMC(model).sample_settings()  # sample()'s default
    assert Barker(model).sample_settings()["sampler"] == "barker"
    assert AdjustedMCLMC(model, target_accept_prob=0.9).sample_settings()["sampler"] == "adjustedmclmc"
    with pytest.raises(ValueError, match="adaptation must be one of"):
        HMC(model, adaptation="nuts")
    with pytest.raises(ValueError, match=r"integration_steps_jitter must lie in \(0, 1\]"):
        HMC(model, integration_steps_jitter=0.0)
    with pytest.raises(ValueError, match=r"step_size_jitter must lie in \[0, 1\)"):
        HMC(model, step_size_jitter=1.0)
    with pytest.raises(ValueError, match="num_chains >= 2"):  # checked as sample() checks it, before any work
        MCMC(HMC(model, adaptation="chees"), num_warmup=5, num_samples=5, num_chains=1, progress_bar=False).run(
            KEY, X, Y
        )


def test_hmc_kernel_records_each_draws_leapfrog_steps():
    m = MCMC(
        HMC(model, adaptation="window_trajectory", parallel=False),
        num_warmup=30, num_samples=20, num_chains=1, progress_bar=False,
    )  # fmt: skip
    m.run(KEY, X, Y, extra_fields=("num_steps", "energy", "diverging"))
    steps = np.asarray(m.get_extra_fields()["num_steps"])
    assert steps.shape == (20,) and steps.min() >= 1 and len(np.unique(steps)) > 1  # drawn per draw
    assert np.all(np.isfinite(m.get_extra_fields()["energy"]))
