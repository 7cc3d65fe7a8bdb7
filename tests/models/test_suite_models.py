"""The model suite (parmcmc.models.suite): every model builds, and its log density and gradient are finite
at NumPyro's start."""

import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree

from parmcmc.models import from_numpyro
from parmcmc.models.suite import SUITE, build, names

DIMS = {
    "eight_schools_centered": 10,
    "eight_schools_noncentered": 10,
    "radon": 89,
    "german_credit": 25,
    "horseshoe_logistic": 42,
    "softmax_regression": 12,
    "stochastic_volatility": 103,
    "random_walk_missing": 31,
    "rotated_gaussian": 100,
    "irt_2pl": 36,
    "gp_hyperparameters": 3,
    "funnel": 10,
    "banana": 2,
}


def test_suite_lists_at_least_twelve_models():
    assert len(names()) >= 12 and set(DIMS) == set(SUITE)


@pytest.mark.parametrize("name", sorted(SUITE))
def test_suite_model_builds_with_finite_density(name):
    ex = build(name)
    target = from_numpyro(
        ex.model, jax.random.key(0), model_args=ex.model_args, model_kwargs=ex.model_kwargs, num_chains=1
    )
    x = jax.tree_util.tree_map(lambda a: a[0], target.initial_positions)
    flat, unravel = ravel_pytree(x)
    assert flat.size == DIMS[name] and flat.dtype == jnp.float64
    value, grad = jax.jit(jax.value_and_grad(lambda y: target.logdensity_fn(unravel(y))))(flat)
    assert jnp.isfinite(value) and bool(jnp.all(jnp.isfinite(grad)))


def test_unknown_suite_model_is_named():
    with pytest.raises(ValueError, match="no suite model 'nope'"):
        build("nope")
