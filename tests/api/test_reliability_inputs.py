"""Bad input to sample() is refused before any heavy work, with a message that names the argument.

Every row of docs/bad_inputs.md points at a test here or at an older one (test_api.py,
test_samplers_inputs.py, test_numpyro_model.py, test_engine.py); this file holds only the rows those do
not cover. "Before any heavy work" is checked, not assumed: warmup and the sampling run are replaced by
functions that fail the test if they are reached.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.sample_checks import call_sample, gaussian

import parmcmc
import parmcmc.api
from parmcmc.models.builtin import linear_regression
from parmcmc.validate import check_float64_inputs

REG = linear_regression(seed=3, num_data=20, num_features=2)


HMC_WRONG_SIZE = parmcmc.HMC(gaussian, 0.1, 5, jnp.ones(4))

# (id, changes to the call, exception, message excerpt). The ids are the test names in docs/bad_inputs.md.
BAD_INPUTS = [
    # the log density at the start
    (
        "nan-gradient-at-start",
        dict(model=lambda x: -jnp.sum(jnp.sqrt(jnp.abs(x)))),
        ValueError,
        r"gradient of model .* is not finite at the initial position of chain\(s\) \[0, 1\]",
    ),
    (
        "nan-in-initial-position",
        dict(initial_position=jnp.array([0.0, jnp.nan, 0.0])),
        ValueError,
        "log density and gradient of model .* not finite",
    ),
    ("log-density-raises", dict(model=lambda x: x["missing"]), ValueError, "raised .*Error on the initial position"),
    # positions
    ("integer-position", dict(initial_position=jnp.zeros(3, jnp.int32)), TypeError, "must be floating point"),
    ("complex-position", dict(initial_position=jnp.zeros(3, jnp.complex64)), TypeError, "must be floating point"),
    (
        "position-of-the-wrong-shape",
        dict(model=lambda x: -0.5 * x @ jnp.eye(3) @ x, initial_position=jnp.zeros(2)),
        ValueError,
        "raised TypeError on the initial position: dot_general",
    ),
    (
        "log-density-without-initial-position",
        dict(initial_position=None),
        ValueError,
        "log-density function rather than a NumPyro model, pass initial_position=",
    ),
    ("vector-valued-log-density", dict(model=lambda x: -0.5 * x**2), ValueError, "must return a scalar"),
    (
        "model-args-with-a-log-density",
        dict(model_args=(1.0,)),
        ValueError,
        "model_args/model_kwargs are passed to NumPyro models",
    ),
    # step size
    ("step-size-nan", dict(step_size=float("nan")), ValueError, "sample: step_size must be positive and finite"),
    ("step-size-negative", dict(step_size=-1.0), ValueError, "positive and finite, got -1.0. Or leave step_size out"),
    ("step-size-inf", dict(step_size=float("inf")), ValueError, "step_size must be positive and finite"),
    ("step-size-string", dict(step_size="0.1"), TypeError, "step_size must be a positive real scalar"),
    ("step-size-array", dict(step_size=jnp.ones(2)), TypeError, "step_size must be a positive real scalar"),
    # HMC settings
    (
        "num-integration-steps-zero",
        dict(sampler="hmc", num_integration_steps=0),
        ValueError,
        "num_integration_steps must be a positive integer",
    ),
    (
        "num-integration-steps-float",
        dict(sampler="hmc", num_integration_steps=2.5),
        TypeError,
        "num_integration_steps must be a positive integer",
    ),
    (
        "mass-matrix-non-positive",
        dict(sampler="hmc", step_size=0.1, inverse_mass_matrix=jnp.array([1.0, 0.0, 2.0])),
        ValueError,
        r"must have positive entries; entries at flat indices \[1\]",
    ),
    (
        "mass-matrix-nan",
        dict(sampler="hmc", step_size=0.1, inverse_mass_matrix=jnp.array([1.0, jnp.nan, 2.0])),
        ValueError,
        "non-finite",
    ),
    (
        "mass-matrix-wrong-size",
        dict(sampler="hmc", step_size=0.1, inverse_mass_matrix=jnp.ones(4)),
        ValueError,
        "has size 4 but the flattened position has size 3",
    ),
    (
        "mass-matrix-wrong-size-in-instance",
        dict(sampler=HMC_WRONG_SIZE),
        ValueError,
        "has size 4 but the flattened position has size 3",
    ),
    ("mass-matrix-with-mala", dict(sampler="mala", inverse_mass_matrix=jnp.ones(3)), ValueError, "is an HMC setting"),
    (
        "mass-matrix-and-adaptation",
        dict(sampler="hmc", inverse_mass_matrix=jnp.ones(3)),
        ValueError,
        "without step_size=, so warmup would adapt both",
    ),
    (
        "mass-matrix-and-instance",
        dict(sampler=parmcmc.HMC(gaussian, 0.1, 5), inverse_mass_matrix=jnp.ones(3)),
        ValueError,
        "give it to the instance",
    ),
    # counts
    ("num-samples-bool", dict(num_samples=True), TypeError, "num_samples must be a positive integer"),
    ("num-samples-string", dict(num_samples="10"), TypeError, "num_samples must be a positive integer"),
    ("num-chains-zero", dict(num_chains=0), ValueError, "num_chains must be a positive integer"),
    ("num-chains-float", dict(num_chains=2.0), TypeError, "num_chains must be a positive integer"),
    ("num-warmup-float", dict(num_warmup=1.5), TypeError, "num_warmup must be a non-negative integer"),
    ("num-warmup-zero-nothing-to-adapt", dict(num_warmup=0), ValueError, "num_warmup=0 leaves nothing to adapt"),
    # keys
    (
        "rng-key-batch",
        dict(rng_key=jax.random.split(jax.random.key(0), 2)),
        TypeError,
        "rng_key must be one JAX random key",
    ),
    ("rng-key-float-array", dict(rng_key=jnp.zeros(2)), TypeError, "rng_key must be one JAX random key"),
    ("rng-key-none", dict(rng_key=None), TypeError, "rng_key must be one JAX random key"),
    # names and options
    ("sampler-class-not-instance", dict(sampler=parmcmc.HMC), ValueError, "unknown sampler"),
    ("solver-class-not-instance", dict(solver=parmcmc.DEER), TypeError, r"solver must be an engine solver"),
    ("solve-option-misspelt", dict(max_iter=5), TypeError, "unknown argument.*Did you mean 'max_iters'"),
    ("solve-option-max-iters-zero", dict(max_iters=0), ValueError, "max_iters must be a positive integer"),
    (
        "target-acceptance-out-of-range",
        dict(target_acceptance=1.5),
        ValueError,
        r"target_acceptance must lie in \(0, 1\)",
    ),
    ("model-not-callable", dict(model="model.py"), TypeError, "model must be a NumPyro model function"),
]


@pytest.mark.parametrize("changes, error, match", [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_refused_before_any_heavy_work(no_heavy_work, changes, error, match):
    with pytest.raises(error, match=match):
        call_sample(**changes)


def test_numpy_integer_counts_are_accepted(no_heavy_work):
    """np.int64 counts pass the checks and reach the run (num_chains used to be refused later)."""
    with pytest.raises(AssertionError, match="not caught before warmup"):
        call_sample(num_samples=np.int64(10), num_chains=np.int64(2), num_warmup=np.int64(5))


# ---------------------------------------------------------------- float64 input while JAX runs in float32

X_ROUNDED = np.linspace(0.1, 1.0, 5)  # float64 values that float32 cannot hold exactly


def test_float64_data_with_x64_off_warns_naming_the_arrays():
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error", parmcmc.Float64DataWarning)  # stop at the warning: no sampling
        with pytest.raises(parmcmc.Float64DataWarning, match=r"model_args\[0\], model_kwargs\['y'\] are float64"):
            parmcmc.sample(
                REG.model,
                model_args=REG.model_args,
                model_kwargs=REG.model_kwargs,
                rng_key=jax.random.key(0),
                num_samples=10,
                progress_bar=False,
            )
        with pytest.raises(parmcmc.Float64DataWarning, match=r"initial_position is float64.*jax_enable_x64"):
            call_sample(initial_position=X_ROUNDED)


def test_float64_values_beyond_float32_range_are_an_error():
    with (
        jax.enable_x64(False),
        pytest.raises(ValueError, match=r"model_kwargs\['y'\] hold float64 values beyond float32's range"),
    ):
        check_float64_inputs(model_kwargs={"y": np.array([1.0, 1e39])})


def test_float64_input_that_converts_exactly_or_with_x64_on_is_silent():
    labels = np.array([0.0, 1.0, 1.0])  # exact in float32: nothing is lost
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with jax.enable_x64(False):
            check_float64_inputs(model_args=(labels, np.float32(0.1) * np.ones(3)), model_kwargs={"n": 3})
        check_float64_inputs(model_args=(X_ROUNDED,))  # x64 on (conftest): float64 is used as it is
