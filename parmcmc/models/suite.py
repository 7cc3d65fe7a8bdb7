"""A suite of NumPyro posteriors with synthetic data generated in code.

The models people actually run, at the sizes they run them: hierarchies with funnels, correlated and
ill-conditioned posteriors, sparse and high-dimensional regressions, time series. Each builder returns
an `ExampleModel` (as `parmcmc.models.builtin` does) whose data are drawn with a fixed NumPy seed, so
the suite is the same on every machine; `SUITE` maps each name to its builder.

    >>> from parmcmc.models.suite import SUITE, build
    >>> ex = build("radon")
    >>> parmcmc.sample(ex.model, model_args=ex.model_args, model_kwargs=ex.model_kwargs, ...)

Names (unconstrained dimension D in brackets):

    eight_schools_centered      eight schools, centred: theta ~ N(mu, tau), the funnel in view (10)
    eight_schools_noncentered   eight schools, non-centred (the built-in model) (10)
    radon                       varying-intercept linear model, 85 groups, 919 rows (89)
    german_credit               logistic regression, N = 1000, D = 25 (intercept + 24 features) (25)
    horseshoe_logistic          logistic regression with a horseshoe prior, N = 200, 20 features (42)
    softmax_regression          multinomial logistic regression, 3 classes, 5 features, N = 300 (12)
    stochastic_volatility       log-volatility AR(1) random walk over 100 returns (103)
    random_walk_missing         Gaussian random walk, 30 states, every third observation missing (31)
    rotated_gaussian            100-D Gaussian, condition number 1e3, under a random rotation (100)
    irt_2pl                     two-parameter item response model, 20 students x 8 items (36)
    gp_hyperparameters          GP regression, marginal likelihood of 30 points, 3 hyperparameters (3)
    funnel                      Neal's funnel, 1 + 9 dimensions (10)
    banana                      the banana x2 | x1 ~ N(0.03 (x1^2 - 100), 1), x1 ~ N(0, 10^2) (2)
"""

# numpyro.sample and numpyro.deterministic are annotated as returning ArrayLike (Python scalars included): in a
# model they return arrays, which the models index.
# pyright: reportIndexIssue=false

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from parmcmc.models.builtin import (
    EIGHT_SCHOOLS_NAMES,
    EIGHT_SCHOOLS_SIGMA,
    EIGHT_SCHOOLS_Y,
    ExampleModel,
    eight_schools_model,
)

__all__ = ["SUITE", "build", "names"]


def _ex(name, model, args=(), kwargs=None, coords=None, truth=None) -> ExampleModel:
    return ExampleModel(name, model, args, kwargs or {}, coords or {}, truth or {})


# ---------------------------------------------------------------- hierarchies


def eight_schools_centered_model(sigma, y=None):
    """Centred eight schools: theta_j ~ N(mu, tau), the funnel between tau and theta in view."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", len(sigma)):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_centered() -> ExampleModel:
    return _ex(
        "eight_schools_centered",
        eight_schools_centered_model,
        (EIGHT_SCHOOLS_SIGMA,),
        {"y": EIGHT_SCHOOLS_Y},
        {"school": EIGHT_SCHOOLS_NAMES},
    )


def eight_schools_noncentered() -> ExampleModel:
    return _ex(
        "eight_schools_noncentered",
        eight_schools_model,
        (EIGHT_SCHOOLS_SIGMA,),
        {"y": EIGHT_SCHOOLS_Y},
        {"school": EIGHT_SCHOOLS_NAMES},
    )


def radon_model(group, floor, num_groups, y=None):
    """Varying intercepts a_j ~ N(mu_a, sigma_a), common floor slope b: y_i ~ N(a_j[i] + b floor_i, sigma)."""
    mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 10.0))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(5.0))
    b = numpyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    with numpyro.plate("county", num_groups):
        a = numpyro.sample("a", dist.Normal(mu_a, sigma_a))
    with numpyro.plate("obs", len(group)):
        numpyro.sample("y", dist.Normal(a[group] + b * floor, sigma), obs=y)


def radon(seed: int = 0, num_groups: int = 85, num_rows: int = 919) -> ExampleModel:
    """Synthetic data shaped like the Minnesota radon set.

    Unbalanced groups (a few large counties), a binary floor indicator, log-radon responses.
    """
    rng = np.random.default_rng(seed)
    weights = rng.gamma(0.7, size=num_groups)
    extra = rng.choice(num_groups, num_rows - num_groups, p=weights / weights.sum())
    group = np.concatenate([np.arange(num_groups), extra])  # every county has at least one row
    floor = (rng.uniform(size=num_rows) < 0.17).astype(np.float64)
    a = 1.5 + 0.3 * rng.normal(size=num_groups)
    y = a[group] - 0.7 * floor + 0.75 * rng.normal(size=num_rows)
    return _ex("radon", radon_model, (group, floor, num_groups), {"y": y}, truth={"a": a, "b": -0.7})


# ---------------------------------------------------------------- regressions


def logistic_model(X, y=None):
    """y_n ~ Bernoulli(sigmoid(x_n . beta)), beta ~ N(0, I) (the first column of X is the intercept)."""
    with numpyro.plate("feature", X.shape[1]):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0))
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def german_credit(seed: int = 0, num_data: int = 1000, num_features: int = 24) -> ExampleModel:
    """Shaped like the German credit set: an intercept and 24 standardised features (some binary)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(num_data, num_features))
    X[:, ::3] = (X[:, ::3] > 0.5).astype(np.float64)
    X = (X - X.mean(0)) / X.std(0)
    X = np.concatenate([np.ones((num_data, 1)), X], axis=1)
    beta = 0.4 * rng.normal(size=num_features + 1)
    y = (rng.uniform(size=num_data) < 1.0 / (1.0 + np.exp(-X @ beta))).astype(np.float64)
    return _ex("german_credit", logistic_model, (X,), {"y": y}, truth={"beta": beta})


def horseshoe_logistic_model(X, y=None):
    """Logistic regression with a horseshoe prior: beta_d = tau lambda_d z_d, lambda_d, tau ~ HalfCauchy."""
    D = X.shape[1]
    tau = numpyro.sample("tau", dist.HalfCauchy(1.0))
    intercept = numpyro.sample("intercept", dist.Normal(0.0, 5.0))
    with numpyro.plate("feature", D):
        lam = numpyro.sample("lambda", dist.HalfCauchy(1.0))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    beta = numpyro.deterministic("beta", tau * lam * z)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=intercept + X @ beta), obs=y)


def horseshoe_logistic(seed: int = 0, num_data: int = 200, num_features: int = 20) -> ExampleModel:
    """Three of the 20 coefficients are non-zero."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(num_data, num_features))
    beta = np.zeros(num_features)
    beta[:3] = [2.0, -1.5, 1.0]
    y = (rng.uniform(size=num_data) < 1.0 / (1.0 + np.exp(-X @ beta))).astype(np.float64)
    return _ex("horseshoe_logistic", horseshoe_logistic_model, (X,), {"y": y}, truth={"beta": beta})


def softmax_model(X, num_classes, y=None):
    """Multinomial logistic regression; class 0 is the reference (its coefficients are zero)."""
    D = X.shape[1]
    W = numpyro.sample("W", dist.Normal(0.0, 1.0).expand([D, num_classes - 1]).to_event(2))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([num_classes - 1]).to_event(1))
    logits = jnp.concatenate([jnp.zeros((X.shape[0], 1)), X @ W + b], axis=1)
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=logits), obs=y)  # pyright: ignore[reportArgumentType] (a factory)


def softmax_regression(seed: int = 0, num_data: int = 300, num_features: int = 5, num_classes: int = 3) -> ExampleModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(num_data, num_features))
    W = rng.normal(size=(num_features, num_classes - 1))
    logits = np.concatenate([np.zeros((num_data, 1)), X @ W], axis=1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(num_classes, p=row) for row in p])
    return _ex("softmax_regression", softmax_model, (X, num_classes), {"y": y}, truth={"W": W})


def irt_2pl_model(student, item, num_students, num_items, y=None):
    """2PL item response: P(correct) = sigmoid(a_j (theta_i - b_j)), log a_j ~ N(0, 0.5)."""
    with numpyro.plate("student", num_students):
        theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))
    with numpyro.plate("item", num_items):
        b = numpyro.sample("b", dist.Normal(0.0, 2.0))
        a = numpyro.sample("a", dist.LogNormal(0.0, 0.5))
    with numpyro.plate("obs", len(student)):
        numpyro.sample("y", dist.Bernoulli(logits=a[item] * (theta[student] - b[item])), obs=y)


def irt_2pl(seed: int = 0, num_students: int = 20, num_items: int = 8) -> ExampleModel:
    rng = np.random.default_rng(seed)
    theta, b, a = rng.normal(size=num_students), rng.normal(size=num_items), np.exp(0.3 * rng.normal(size=num_items))
    student, item = (m.ravel() for m in np.meshgrid(np.arange(num_students), np.arange(num_items), indexing="ij"))
    p = 1.0 / (1.0 + np.exp(-a[item] * (theta[student] - b[item])))
    y = (rng.uniform(size=p.shape) < p).astype(np.float64)
    return _ex(
        "irt_2pl",
        irt_2pl_model,
        (student, item, num_students, num_items),
        {"y": y},
        truth={"theta": theta, "a": a, "b": b},
    )


# ---------------------------------------------------------------- time series


def stochastic_volatility_model(returns):
    """h_t = mu + phi (h_{t-1} - mu) + sigma eta_t (non-centred), r_t ~ N(0, exp(h_t / 2))."""
    T = returns.shape[0]
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    phi_raw = numpyro.sample("phi_raw", dist.Beta(20.0, 1.5))
    phi = numpyro.deterministic("phi", 2.0 * phi_raw - 1.0)
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.5))
    eta = numpyro.sample("eta", dist.Normal(0.0, 1.0).expand([T]).to_event(1))
    h0 = mu + sigma * eta[0] / jnp.sqrt(1.0 - phi**2)  # pyright: ignore[reportCallIssue, reportArgumentType] (as above)

    def step(h_prev, e):
        h = mu + phi * (h_prev - mu) + sigma * e
        return h, h

    h = jnp.concatenate([h0[None], jax.lax.scan(step, h0, eta[1:])[1]])  # pyright: ignore[reportCallIssue, reportArgumentType]
    numpyro.sample("r", dist.Normal(0.0, jnp.exp(h / 2.0)), obs=returns)


def stochastic_volatility(seed: int = 0, num_steps: int = 100) -> ExampleModel:
    rng = np.random.default_rng(seed)
    mu, phi, sigma = -1.0, 0.95, 0.25
    h = np.empty(num_steps)
    h[0] = mu + sigma / np.sqrt(1 - phi**2) * rng.normal()
    for t in range(1, num_steps):
        h[t] = mu + phi * (h[t - 1] - mu) + sigma * rng.normal()
    r = np.exp(h / 2) * rng.normal(size=num_steps)
    return _ex("stochastic_volatility", stochastic_volatility_model, (r,), truth={"h": h})


def random_walk_model(observed, mask, y=None):
    """x_t = x_{t-1} + s eps_t, y_t ~ N(x_t, 0.5) observed where mask; a 30-D correlated posterior."""
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    x = numpyro.sample("x", dist.GaussianRandomWalk(s, num_steps=mask.shape[0]))
    with numpyro.handlers.mask(mask=mask):
        numpyro.sample("y", dist.Normal(x, 0.5), obs=observed)


def random_walk_missing(seed: int = 0, num_steps: int = 30) -> ExampleModel:
    rng = np.random.default_rng(seed)
    x = np.cumsum(0.3 * rng.normal(size=num_steps))
    y = x + 0.5 * rng.normal(size=num_steps)
    mask = np.arange(num_steps) % 3 != 2
    y = np.where(mask, y, 0.0)  # missing entries are masked out of the likelihood
    return _ex("random_walk_missing", random_walk_model, (y, mask), truth={"x": x})


# ---------------------------------------------------------------- geometry


def rotated_gaussian_model(rotation, scales):
    """x = R diag(scales) z with z ~ N(0, I): a Gaussian with condition number (max/min scale)^2."""
    precision = rotation @ np.diag(1.0 / scales**2) @ rotation.T
    numpyro.sample("x", dist.MultivariateNormal(jnp.zeros(len(scales)), precision_matrix=precision))


def rotated_gaussian(seed: int = 0, dim: int = 100, cond: float = 1e3) -> ExampleModel:
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    scales = np.logspace(0.0, 0.5 * np.log10(cond), dim)
    return _ex("rotated_gaussian", rotated_gaussian_model, (rotation, scales))


def gp_model(X, y=None):
    """GP regression with a squared-exponential kernel: the marginal likelihood of the hyperparameters."""
    amplitude = numpyro.sample("amplitude", dist.LogNormal(0.0, 1.0))
    length = numpyro.sample("length", dist.LogNormal(0.0, 1.0))
    noise = numpyro.sample("noise", dist.LogNormal(-1.0, 1.0))
    d2 = (X[:, None] - X[None, :]) ** 2
    K = amplitude**2 * jnp.exp(-0.5 * d2 / length**2) + (noise**2 + 1e-6) * jnp.eye(X.shape[0])
    numpyro.sample("y", dist.MultivariateNormal(jnp.zeros(X.shape[0]), covariance_matrix=K), obs=y)


def gp_hyperparameters(seed: int = 0, num_data: int = 30) -> ExampleModel:
    rng = np.random.default_rng(seed)
    X = np.sort(rng.uniform(-3, 3, size=num_data))
    y = np.sin(1.5 * X) + 0.2 * rng.normal(size=num_data)
    return _ex("gp_hyperparameters", gp_model, (X,), {"y": y})


def funnel_model(dim=9):
    """Neal's funnel: v ~ N(0, 3), x_i | v ~ N(0, exp(v / 2)), sampled as written (centred)."""
    v = numpyro.sample("v", dist.Normal(0.0, 3.0))
    numpyro.sample("x", dist.Normal(0.0, jnp.exp(v / 2.0)).expand([dim]).to_event(1))


def funnel(dim: int = 9) -> ExampleModel:
    return _ex("funnel", funnel_model, (), {"dim": dim})


def banana_model():
    """The banana of TFP's inference gym: x1 ~ N(0, 10^2), x2 | x1 ~ N(0.03 (x1^2 - 100), 1)."""
    x1 = numpyro.sample("x1", dist.Normal(0.0, 10.0))
    numpyro.sample("x2", dist.Normal(0.03 * (x1**2 - 100.0), 1.0))


def banana() -> ExampleModel:
    return _ex("banana", banana_model)


SUITE: dict[str, Callable[[], ExampleModel]] = {
    "eight_schools_centered": eight_schools_centered,
    "eight_schools_noncentered": eight_schools_noncentered,
    "radon": radon,
    "german_credit": german_credit,
    "horseshoe_logistic": horseshoe_logistic,
    "softmax_regression": softmax_regression,
    "stochastic_volatility": stochastic_volatility,
    "random_walk_missing": random_walk_missing,
    "rotated_gaussian": rotated_gaussian,
    "irt_2pl": irt_2pl,
    "gp_hyperparameters": gp_hyperparameters,
    "funnel": funnel,
    "banana": banana,
}


def names() -> list[str]:
    """The suite's model names, in table order."""
    return list(SUITE)


def build(name: str) -> ExampleModel:
    """The suite model `name` with its data (see the module docstring for the list)."""
    if name not in SUITE:
        raise ValueError(f"build: no suite model {name!r}; choose one of {', '.join(SUITE)}.")
    return SUITE[name]()
