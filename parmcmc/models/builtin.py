"""Built-in NumPyro models with data, for the demo, the examples and the statistical tests.

Each builder returns an `ExampleModel` holding the model function and the arguments to call it with,
so `from_numpyro(ex.model, key, model_args=ex.model_args, model_kwargs=ex.model_kwargs)` runs it.
Plate names double as ArviZ dimension names (`from_numpyro` reads them), and `coords` labels them.

    eight_schools()         non-centred eight schools (Rubin 1981), the classic funnel-shaped hierarchy
    logistic_regression()   Bayesian logistic regression on synthetic data with known true coefficients
    linear_regression()     conjugate Gaussian linear regression; `analytic_posterior` gives the exact answer
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpyro
import numpyro.distributions as dist

__all__ = [
    "ExampleModel",
    "GaussianPosterior",
    "analytic_posterior",
    "eight_schools",
    "eight_schools_model",
    "linear_regression",
    "linear_regression_model",
    "logistic_regression",
    "logistic_regression_model",
]


class ExampleModel(NamedTuple):
    """A NumPyro model with its data.

    name          short name for reports
    model         the NumPyro model function
    model_args    positional arguments to call it with
    model_kwargs  keyword arguments (the observed data among them)
    coords        ArviZ coordinate labels for the plate dimensions, `{dim: labels}`
    truth         the parameter values the synthetic data were drawn from (`{}` for real data)
    """

    name: str
    model: Callable
    model_args: tuple
    model_kwargs: dict
    coords: dict
    truth: dict


class GaussianPosterior(NamedTuple):
    """An exact Gaussian posterior: `mean` (D,) and `cov` (D, D)."""

    mean: np.ndarray
    cov: np.ndarray


# ---------------------------------------------------------------- eight schools

EIGHT_SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
EIGHT_SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
EIGHT_SCHOOLS_NAMES = [
    "Choate",
    "Deerfield",
    "Phillips Andover",
    "Phillips Exeter",
    "Hotchkiss",
    "Lawrenceville",
    "St. Paul's",
    "Mt. Hermon",
]


def eight_schools_model(sigma, y=None):
    """Non-centred eight schools.

    Theta = mu + tau * theta_z with theta_z ~ N(0, 1), so the sampler never sees the funnel between tau and theta.
    """
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", len(sigma)):
        theta_z = numpyro.sample("theta_z", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_z)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools() -> ExampleModel:
    """The eight schools data with the non-centred model."""
    return ExampleModel(
        name="eight_schools",
        model=eight_schools_model,
        model_args=(EIGHT_SCHOOLS_SIGMA,),
        model_kwargs={"y": EIGHT_SCHOOLS_Y},
        coords={"school": EIGHT_SCHOOLS_NAMES},
        truth={},
    )


# ---------------------------------------------------------------- logistic regression


def logistic_regression_model(X, y=None, prior_scale=1.0):
    """y_n ~ Bernoulli(sigmoid(x_n . beta)), beta_d ~ N(0, prior_scale^2)."""
    num_data, num_features = X.shape
    with numpyro.plate("feature", num_features):
        beta = numpyro.sample("beta", dist.Normal(0.0, prior_scale))
    with numpyro.plate("obs", num_data):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def logistic_regression(seed: int = 0, num_data: int = 200, num_features: int = 5) -> ExampleModel:
    """Synthetic data: X ~ N(0, 1) entries, true beta ~ N(0, 1), y drawn from the model (numpy RNG `seed`)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(num_data, num_features))
    beta = rng.normal(size=num_features)
    y = (rng.uniform(size=num_data) < 1.0 / (1.0 + np.exp(-X @ beta))).astype(np.float64)
    return ExampleModel(
        name="logistic_regression",
        model=logistic_regression_model,
        model_args=(X,),
        model_kwargs={"y": y},
        coords={"feature": [f"x{i}" for i in range(num_features)]},
        truth={"beta": beta},
    )


# ---------------------------------------------------------------- conjugate linear regression


def linear_regression_model(X, y=None, prior_sd=1.0, noise_sd=1.0):
    """y ~ N(X beta, noise_sd^2 I), beta ~ N(0, prior_sd^2 I), noise_sd known: exactly conjugate."""
    num_data, num_features = X.shape
    with numpyro.plate("feature", num_features):
        beta = numpyro.sample("beta", dist.Normal(0.0, prior_sd))
    with numpyro.plate("obs", num_data):
        numpyro.sample("y", dist.Normal(X @ beta, noise_sd), obs=y)


def linear_regression(
    seed: int = 0, num_data: int = 50, num_features: int = 3, prior_sd: float = 1.0, noise_sd: float = 1.0
) -> ExampleModel:
    """Synthetic data from the model itself (numpy RNG `seed`); pair with `analytic_posterior`."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(num_data, num_features))
    beta = prior_sd * rng.normal(size=num_features)
    y = X @ beta + noise_sd * rng.normal(size=num_data)
    return ExampleModel(
        name="linear_regression",
        model=linear_regression_model,
        model_args=(X,),
        model_kwargs={"y": y, "prior_sd": prior_sd, "noise_sd": noise_sd},
        coords={"feature": [f"x{i}" for i in range(num_features)]},
        truth={"beta": beta},
    )


def analytic_posterior(X, y, prior_sd: float = 1.0, noise_sd: float = 1.0) -> GaussianPosterior:
    """Exact posterior of beta in `linear_regression_model`.

    Precision ``P = X'X / noise_sd^2 + I / prior_sd^2``, ``cov = P^-1``, ``mean = cov X'y / noise_sd^2``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"analytic_posterior: X must be (N, D) and y (N,); got X {X.shape} and y {y.shape}.")
    if prior_sd <= 0 or noise_sd <= 0:
        raise ValueError(f"analytic_posterior: prior_sd and noise_sd must be positive; got {prior_sd}, {noise_sd}.")
    precision = X.T @ X / noise_sd**2 + np.eye(X.shape[1]) / prior_sd**2
    cov = np.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (X.T @ y) / noise_sd**2
    return GaussianPosterior(mean, cov)
