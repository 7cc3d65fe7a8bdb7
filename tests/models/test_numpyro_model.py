"""NumPyro models and plain log densities -> Target: density, starts, postprocess, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.scipy.stats import norm
from numpyro.infer import init_to_value

from parmcmc.models import builtin
from parmcmc.models.numpyro import from_numpyro
from parmcmc.models.target import from_logdensity

KEY = jax.random.key(0)


def small_model(y=None):
    loc = numpyro.sample("loc", dist.Normal(0.0, 1.0))
    scale = numpyro.sample("scale", dist.HalfNormal(1.0))
    numpyro.deterministic("twice_loc", 2.0 * loc)
    numpyro.sample("y", dist.Normal(loc, scale), obs=y)


@pytest.fixture(scope="module")
def schools():
    ex = builtin.eight_schools()
    return from_numpyro(ex.model, KEY, model_args=ex.model_args, model_kwargs=ex.model_kwargs, num_chains=3)


def test_logdensity_is_the_unconstrained_density_with_jacobian():
    target = from_numpyro(small_model, KEY, model_kwargs={"y": 0.7})
    loc, u = 0.3, -0.4  # scale = exp(u): log-Jacobian u
    scale = jnp.exp(u)
    expected = norm.logpdf(loc) + (jnp.log(2.0) + norm.logpdf(scale)) + norm.logpdf(0.7, loc, scale) + u
    got = target.logdensity_fn({"loc": jnp.asarray(loc), "scale": jnp.asarray(u)})
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_postprocess_constrains_and_adds_deterministic_sites():
    target = from_numpyro(small_model, KEY, model_kwargs={"y": 0.7})
    draws = {"loc": jnp.arange(6.0).reshape(2, 3), "scale": jnp.full((2, 3), -1.0)}
    out = target.postprocess(draws)
    assert set(out) == {"loc", "scale", "twice_loc"}
    np.testing.assert_allclose(out["scale"], np.exp(-1.0))
    np.testing.assert_allclose(out["twice_loc"], 2 * np.arange(6.0).reshape(2, 3))
    assert target.var_shapes == {"loc": (), "scale": (), "twice_loc": ()}
    assert target.observed_data == {"y": np.asarray(0.7)}


def test_eight_schools_starts_shapes_dims(schools):
    assert schools.name == "eight_schools_model"
    assert {k: v.shape for k, v in schools.initial_positions.items()} == {"mu": (3,), "tau": (3,), "theta_z": (3, 8)}
    # init_to_uniform: every unconstrained start in (-2, 2), and the chains differ
    for leaf in jax.tree_util.tree_leaves(schools.initial_positions):
        assert np.all(np.abs(leaf) < 2)
    assert len(np.unique(np.asarray(schools.initial_positions["mu"]))) == 3
    assert np.all(np.isfinite(jax.vmap(schools.logdensity_fn)(schools.initial_positions)))
    assert schools.var_shapes == {"mu": (), "tau": (), "theta_z": (8,), "theta": (8,)}
    assert schools.dims == {"theta_z": ["school"], "theta": ["school"], "y": ["school"]}
    np.testing.assert_array_equal(schools.observed_data["y"], builtin.EIGHT_SCHOOLS_Y)


def test_eight_schools_postprocess_theta_is_mu_plus_tau_z(schools):
    draws = jax.tree_util.tree_map(lambda x: jnp.stack([x, x + 0.1], axis=1), schools.initial_positions)
    out = schools.postprocess(draws)
    assert out["theta"].shape == (3, 2, 8)
    np.testing.assert_allclose(out["theta"], out["mu"][..., None] + out["tau"][..., None] * out["theta_z"], rtol=1e-12)
    assert np.all(out["tau"] > 0)


def test_same_key_same_starts_and_init_strategy_is_used():
    ex = builtin.eight_schools()
    args = dict(model_args=ex.model_args, model_kwargs=ex.model_kwargs, num_chains=2)
    a = from_numpyro(ex.model, KEY, **args)
    b = from_numpyro(ex.model, KEY, **args)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.initial_positions, b.initial_positions)
    c = from_numpyro(ex.model, KEY, init_strategy=init_to_value(values={"tau": 2.0}), **args)
    np.testing.assert_allclose(c.initial_positions["tau"], np.log(2.0))


def test_conjugate_regression_posterior_mode_and_curvature():
    """The model's log density is Gaussian in beta with the analytic mean and covariance."""
    ex = builtin.linear_regression(num_features=3)
    target = from_numpyro(ex.model, KEY, model_args=ex.model_args, model_kwargs=ex.model_kwargs)
    post = builtin.analytic_posterior(ex.model_args[0], ex.model_kwargs["y"], 1.0, 1.0)
    mean = {"beta": jnp.asarray(post.mean)}
    np.testing.assert_allclose(jax.jit(jax.grad(target.logdensity_fn))(mean)["beta"], 0.0, atol=1e-10)
    hessian = jax.jit(jax.hessian(lambda b: target.logdensity_fn({"beta": b})))(mean["beta"])
    np.testing.assert_allclose(-np.linalg.inv(hessian), post.cov, rtol=1e-10)


def test_logistic_regression_builds():
    ex = builtin.logistic_regression(num_data=100, num_features=4)
    target = from_numpyro(ex.model, KEY, model_args=ex.model_args, model_kwargs=ex.model_kwargs, num_chains=2)
    assert target.var_shapes == {"beta": (4,)}
    assert target.dims == {"beta": ["feature"], "y": ["obs"]}
    assert ex.truth["beta"].shape == (4,)


# ---------------------------------------------------------------- errors


def test_discrete_latent_site_is_named():
    def mixture(y=None):
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        numpyro.sample("y", dist.Normal(3.0 * z, 1.0), obs=y)

    with pytest.raises(ValueError, match=r"discrete latent sample site\(s\) \['z'\].*Marginalise") as err:
        from_numpyro(mixture, KEY, model_kwargs={"y": 1.0})
    assert "mixture" in str(err.value)


def test_model_that_raises_is_wrapped():
    def broken(x):
        numpyro.sample("a", dist.Normal(0.0, 1.0))
        raise KeyError("column 'age' missing")

    with pytest.raises(ValueError, match=r"model '.*broken' raised KeyError.*column 'age' missing") as err:
        from_numpyro(broken, KEY, model_args=(1.0,))
    assert isinstance(err.value.__cause__, KeyError)


def test_wrong_arguments_are_wrapped():
    with pytest.raises(ValueError, match="small_model' raised TypeError"):
        from_numpyro(small_model, KEY, model_args=(1.0, 2.0, 3.0))


def test_no_finite_start_says_what_to_try():
    def nowhere_finite():
        a = numpyro.sample("a", dist.Normal(0.0, 1.0))
        numpyro.factor("bad", jnp.nan * a)

    with pytest.raises(ValueError, match=r"no valid start found for model '.*nowhere_finite'.*init_to_median"):
        from_numpyro(nowhere_finite, KEY, num_chains=2)


def test_no_latent_site():
    def all_observed(y=None):
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=y)

    with pytest.raises(ValueError, match="no latent sample sites"):
        from_numpyro(all_observed, KEY, model_kwargs={"y": 0.0})


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_chains": 0}, ValueError, "num_chains must be a positive int"),
        ({"model_args": [1.0]}, TypeError, "model_args must be a tuple"),
        ({"model_kwargs": ("y", 1.0)}, TypeError, "model_kwargs must be a dict"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        from_numpyro(small_model, KEY, **kwargs)


# ---------------------------------------------------------------- plain log densities


def gaussian(x):
    return -0.5 * jnp.sum(x**2)


def test_from_logdensity_shared_start_and_names():
    target = from_logdensity(gaussian, initial_position=jnp.ones(3), num_chains=4)
    assert target.initial_positions.shape == (4, 3)
    assert target.var_shapes == {"x": (3,)}
    assert target.observed_data == {} and target.dims == {}
    out = target.postprocess(jnp.zeros((4, 10, 3)))
    assert out["x"].shape == (4, 10, 3)


def test_from_logdensity_dict_positions_per_chain():
    def logdensity(p):
        return -0.5 * (p["a"] ** 2 + jnp.sum(p["b"] ** 2))

    target = from_logdensity(logdensity, initial_positions={"a": jnp.zeros(2), "b": jnp.ones((2, 5))})
    assert target.var_shapes == {"a": (), "b": (5,)}
    assert target.name == "logdensity"
    assert set(target.postprocess({"a": jnp.zeros((2, 7)), "b": jnp.zeros((2, 7, 5))})) == {"a", "b"}


def test_from_logdensity_non_finite_start_names_the_chain():
    with pytest.raises(ValueError, match=r"log density of model 'log' is not finite .* chain\(s\) \[1\]"):
        from_logdensity(lambda x: jnp.sum(jnp.log(x)), initial_positions=jnp.array([[1.0], [-1.0]]), name="log")


def test_from_logdensity_non_finite_gradient():
    with pytest.raises(ValueError, match="gradient of model"):
        from_logdensity(lambda x: jnp.sum(jnp.sqrt(x)), initial_position=jnp.zeros(2))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({}, ValueError, "exactly one of initial_position"),
        ({"initial_position": jnp.zeros(2), "initial_positions": jnp.zeros((1, 2))}, ValueError, "exactly one"),
        ({"initial_position": jnp.zeros(2, dtype=int)}, TypeError, "must be floating point"),
        ({"initial_positions": {"a": jnp.zeros((2,)), "b": jnp.zeros((3,))}}, ValueError, "same leading"),
        ({"initial_position": jnp.zeros(2), "num_chains": 0}, ValueError, "num_chains must be a positive int"),
    ],
)
def test_from_logdensity_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        from_logdensity(gaussian, **kwargs)


def test_from_logdensity_non_scalar_density():
    with pytest.raises(ValueError, match="must return a scalar"):
        from_logdensity(lambda x: -0.5 * x**2, initial_position=jnp.zeros(2))
