"""The NumPyro workflow with parmcmc: the import line is the only change.

    ./dev.sh python examples/numpyro_workflow.py            # 4 chains x 1000 draws, 500 warmup
    PARMCMC_EXAMPLE_SMALL=1 ./dev.sh python examples/numpyro_workflow.py   # the test's sizes

Two hierarchical models (eight schools, non-centred; a radon-like model with varying intercepts by
county), each taken through NumPyro's workflow: MCMC, print_summary, Predictive, az.from_numpyro,
az.loo, az.plot_trace, az.plot_energy. With `from numpyro.infer import ...` in place of the parmcmc
line below the same code runs NumPyro's own HMC (tests/api/test_examples_workflow.py runs both). A last
section, parmcmc's own, runs the same chains sequentially and shows that the draws agree.
See docs/numpyro_workflow.md.
"""

# numpyro.sample is annotated as returning ArrayLike (Python scalars included); in a model it returns arrays.
# pyright: reportIndexIssue=false

import os
import tempfile

import arviz as az
import jax
import matplotlib
import matplotlib.pyplot
import numpy as np
import numpyro
import numpyro.distributions as dist

from parmcmc.infer import HMC, MCMC, Predictive  # NumPyro: from numpyro.infer import HMC, MCMC, Predictive

matplotlib.use("Agg")
numpyro.enable_x64()
SMALL = os.environ.get("PARMCMC_EXAMPLE_SMALL") == "1"
NUM_WARMUP, NUM_SAMPLES, NUM_CHAINS = (100, 100, 2) if SMALL else (500, 1000, 4)
OUT = os.environ.get("PARMCMC_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="numpyro_workflow_")
MODELS = os.environ.get("PARMCMC_EXAMPLE_MODELS", "eight_schools,radon").split(",")


# Eight schools (Rubin 1981), non-centred as in NumPyro's tutorial.
J = 8
y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(J, sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        theta_z = numpyro.sample("theta_z", dist.Normal(0, 1))
        theta = numpyro.deterministic("theta", mu + tau * theta_z)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


# A radon-like model: log radon in houses, a varying intercept per county and a floor effect.
def radon_data(num_counties=12, houses_per_county=8, seed=0):
    rng = np.random.default_rng(seed)
    county = np.repeat(np.arange(num_counties), houses_per_county)
    floor = rng.integers(0, 2, size=county.size).astype(float)
    a = 1.5 + 0.4 * rng.normal(size=num_counties)
    log_radon = a[county] - 0.6 * floor + 0.7 * rng.normal(size=county.size)
    return county, floor, num_counties, log_radon


def radon(county, floor, num_counties, log_radon=None):
    mu_a = numpyro.sample("mu_a", dist.Normal(0, 5))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(1))
    b = numpyro.sample("b", dist.Normal(0, 1))
    sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(1))
    with numpyro.plate("county", num_counties):
        a_z = numpyro.sample("a_z", dist.Normal(0, 1))
    a = numpyro.deterministic("a", mu_a + sigma_a * a_z)
    with numpyro.plate("house", county.shape[0]):
        numpyro.sample("log_radon", dist.Normal(a[county] + b * floor, sigma_y), obs=log_radon)


def workflow(name, model, args, observed, site, rng_key):
    """NumPyro's workflow, line for line."""
    mcmc = MCMC(
        HMC(model, num_steps=10),
        num_warmup=NUM_WARMUP,
        num_samples=NUM_SAMPLES,
        num_chains=NUM_CHAINS,
        chain_method="vectorized",
        progress_bar=not SMALL,
    )
    mcmc.run(rng_key, *args, observed, extra_fields=("potential_energy", "energy"))
    mcmc.print_summary()

    samples = mcmc.get_samples()
    predictions = Predictive(model, samples)(jax.random.key(1), *args)
    print(
        f"{name}: posterior predictive mean of {site} vs data:",
        np.round(np.mean(predictions[site], axis=0)[:4], 2),
        np.round(observed[:4], 2),
    )

    idata = az.from_numpyro(mcmc, log_likelihood=True)
    print(az.loo(idata))
    az.plot_trace(
        idata, var_names=[v for v in map(str, idata["posterior"].data_vars) if idata["posterior"][v].ndim == 2]
    )
    matplotlib.pyplot.savefig(os.path.join(OUT, f"{name}_trace.png"))
    az.plot_energy(idata)
    matplotlib.pyplot.savefig(os.path.join(OUT, f"{name}_energy.png"))
    matplotlib.pyplot.close("all")
    return mcmc


def compare_with_sequential(name, model, args, observed, rng_key, mcmc):
    """Only with our MCMC: the same chains computed step by step (parallel=False) are the same draws."""
    sequential = MCMC(
        HMC(model, num_steps=10, parallel=False),
        num_warmup=NUM_WARMUP,
        num_samples=NUM_SAMPLES,
        num_chains=NUM_CHAINS,
        progress_bar=not SMALL,
    )
    sequential.run(rng_key, *args, observed)
    gap = max(float(np.max(np.abs(mcmc.get_samples()[k] - v))) for k, v in sequential.get_samples().items())
    stats = mcmc.solver_stats
    print(
        f"{name}: max |parallel - sequential| = {gap:.1e}; Newton iterations per chain "
        f"{stats['solver_iterations'].tolist()}, fell back to sequential: {stats['solver_fell_back'].tolist()}"
    )
    return gap


def main():
    runs = {
        "eight_schools": (eight_schools, (J, sigma), y, "obs"),
        "radon": (radon, radon_data()[:3], radon_data()[3], "log_radon"),
    }
    gaps = {}
    for i, name in enumerate(MODELS):
        model, args, observed, site = runs[name]
        mcmc = workflow(name, model, args, observed, site, jax.random.key(i))
        if hasattr(mcmc, "solver_stats"):  # parmcmc's MCMC
            gaps[name] = compare_with_sequential(name, model, args, observed, jax.random.key(i), mcmc)
    print("figures in", OUT)
    return gaps


if __name__ == "__main__":
    main()
