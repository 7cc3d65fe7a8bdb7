"""Bayesian logistic regression with MALA: a predictable target, where the parallel solve converges
in a handful of Newton iterations.

    ./dev.sh python examples/logistic_regression.py

The model (parmcmc/models/builtin.py, `logistic_regression_model`): beta ~ N(0, I),
y_i ~ Bernoulli(sigmoid(x_i . beta)), on synthetic data (200 points, 5 features).
"""

import jax

import parmcmc
from parmcmc.models.builtin import logistic_regression

jax.config.update("jax_enable_x64", True)


def main():
    ex = logistic_regression()
    result = parmcmc.compare(
        ex.model,
        rng_key=jax.random.key(0),
        sampler="mala",
        num_samples=2000,
        num_warmup=500,
        num_chains=4,
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        coords=ex.coords,
    )
    print(result)
    print("\ntrue coefficients:", ex.truth)


if __name__ == "__main__":
    main()
