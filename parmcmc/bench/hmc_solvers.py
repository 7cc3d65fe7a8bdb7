"""Which Newton variant solves HMC chains through sample(): iterations and fallbacks per chain.

    ./dev.sh bench hmc_solvers

Float64, 2 chains x 1000 draws after 300 warmup steps, key 3. Results: docs/sampler_iterations.md.
Takes about ten minutes on a 2-core CPU (most of it compilation and the slow eight-schools solves).
"""

import time
import warnings

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

jax.config.update("jax_enable_x64", True)

import parmcmc  # noqa: E402
from parmcmc.models.builtin import eight_schools, logistic_regression  # noqa: E402

BB_DATA = np.array([1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0], dtype=np.float64)


def beta_bernoulli(y):
    p = numpyro.sample("p", dist.Beta(2.0, 2.0))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Bernoulli(probs=p), obs=y)


def main():
    schools, logistic = eight_schools(), logistic_regression()
    models = {
        "beta_bernoulli": dict(model=beta_bernoulli, model_args=(BB_DATA,)),
        "eight_schools": dict(model=schools.model, model_args=schools.model_args, model_kwargs=schools.model_kwargs),
        "logistic": dict(model=logistic.model, model_args=logistic.model_args, model_kwargs=logistic.model_kwargs),
    }
    solvers = [parmcmc.DEER(), parmcmc.DEER(clip=1.0), parmcmc.DEER(damping=0.55, clip=1.0), parmcmc.ELK()]
    for name, model in models.items():
        for solver in solvers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", parmcmc.FallbackWarning)
                t0 = time.perf_counter()
                tree = parmcmc.sample(
                    rng_key=jax.random.key(3),
                    sampler="hmc",
                    parallel=True,
                    progress_bar=False,
                    num_samples=1000,
                    num_warmup=300,
                    num_chains=2,
                    solver=solver,
                    **model,
                )
            stats = tree.sample_stats
            print(
                f"{name:15s} {solver!r:48s} iterations {stats['solver_iterations'].values} "
                f"fell back {stats['solver_fell_back'].values} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
