"""Eight schools (non-centred) with HMC: sampled in parallel over time and sequentially, side by side.

    ./dev.sh python examples/eight_schools.py

The model lives in parmcmc/models/builtin.py (`eight_schools_model`):

    mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_z[j] ~ N(0, 1), theta[j] = mu + tau * theta_z[j],
    y[j] ~ N(theta[j], sigma[j])

compare() runs one warmup, then the same chains with the parallel solver and with the sequential
reference; their draws agree to floating-point tolerance.
"""

import arviz as az
import jax

import parmcmc
from parmcmc.models.builtin import eight_schools

jax.config.update("jax_enable_x64", True)


def main():
    ex = eight_schools()
    result = parmcmc.compare(
        ex.model,
        rng_key=jax.random.key(0),
        sampler="hmc",
        num_samples=2000,
        num_warmup=1000,
        num_chains=4,
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        coords=ex.coords,
    )
    print(result)
    tree = result.parallel
    print(
        "\ndivergences:",
        int(tree.sample_stats["diverging"].sum()),
        " Newton iterations per chain:",
        tree["solver_stats"]["solver_iterations"].values.tolist(),
    )
    print(az.summary(tree, var_names=["mu", "tau"]))


if __name__ == "__main__":
    main()
