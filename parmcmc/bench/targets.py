"""Log-density targets with known tuning, shared by the sampler benchmarks and the sampler tests.

Each is a ``TunedTarget(name, logdensity_fn, initial_position, mala_step, hmc_step, inverse_mass_matrix)``
built from fixed seeds in float64: a correlated Gaussian, a logistic regression on synthetic data, and a
Gaussian over a dict-valued position. The inverse mass matrices are diagonal and not all ones, so that HMC
tests exercise the metric.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = ["TARGETS", "TunedTarget", "correlated_gaussian", "logistic_regression", "pytree_gaussian"]


class TunedTarget(NamedTuple):
    """A log density with a start and known tuning (step sizes, a diagonal inverse mass matrix)."""

    name: str
    logdensity_fn: Callable
    initial_position: Any
    mala_step: float
    hmc_step: float
    inverse_mass_matrix: Any  # 1-D, over the flattened position


def correlated_gaussian(dim: int = 10, dtype=jnp.float64) -> TunedTarget:
    """Every constant (and the initial position) in ``dtype``, so a float32 target keeps its chain in float32."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T / dim + 0.5 * np.eye(dim)
    precision = jnp.asarray(np.linalg.inv(cov), dtype)
    mean = jnp.asarray(rng.normal(size=dim), dtype)

    def logdensity_fn(x):
        r = x - mean
        return -0.5 * r @ precision @ r

    imm = jnp.asarray(np.diag(cov), dtype)  # the marginal variances, not all ones
    x0 = jnp.asarray(rng.normal(size=dim), dtype)
    return TunedTarget("gaussian", logdensity_fn, x0, 0.3, 0.5, imm)


def logistic_regression(dim: int = 10, num_data: int = 600) -> TunedTarget:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(num_data, dim))
    true_coef = rng.normal(size=dim)
    labels = rng.uniform(size=num_data) < 1 / (1 + np.exp(-features @ true_coef))
    features, labels = jnp.asarray(features), jnp.asarray(labels, float)

    def logdensity_fn(coef):
        logits = features @ coef
        loglik = jnp.sum(labels * logits - jnp.logaddexp(0.0, logits))
        return loglik - 0.5 * jnp.sum(coef**2)

    imm = jnp.asarray(np.linspace(0.5, 1.5, dim) * 0.02)
    return TunedTarget("logistic", logdensity_fn, jnp.zeros(dim), 0.008, 1.0, imm)


def pytree_gaussian() -> TunedTarget:
    """A dict position: independent Gaussians with different scales (D = 7)."""
    loc_mean = jnp.array([1.0, -2.0, 0.5])
    loc_sd = jnp.array([1.0, 0.5, 2.0])
    block_sd = jnp.array([[0.3, 1.0], [1.5, 0.7]])

    def logdensity_fn(position):
        z_loc = (position["loc"] - loc_mean) / loc_sd
        z_block = position["block"] / block_sd
        return -0.5 * (jnp.sum(z_loc**2) + jnp.sum(z_block**2))

    x0 = {"loc": jnp.zeros(3), "block": jnp.ones((2, 2))}
    # ravel_pytree order: sorted keys -> "block" (4) then "loc" (3).
    imm = jnp.concatenate([block_sd.ravel(), loc_sd]) ** 2 * 0.8
    return TunedTarget("pytree", logdensity_fn, x0, 0.12, 0.5, imm)


TARGETS = (correlated_gaussian, logistic_regression, pytree_gaussian)
