"""Bad inputs found by an adversarial pass over the public API (docs/bad_inputs.md, "Adversarial pass").

Each test is one class of input that used to fail late, deep, or silently wrong; each fails before any heavy work
(the `no_heavy_work` fixture fails the test if warmup or the sampling run starts) or on a call that costs
milliseconds.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers.sample_checks import call_sample, gaussian, small_args

import parmcmc
import parmcmc.prepare
from parmcmc.arguments import check_int
from parmcmc.infer import MALA as InferMALA
from parmcmc.infer import MCMC
from parmcmc.models.numpyro import from_numpyro
from parmcmc.settings import check_settings

REACHED = "not caught before warmup"  # no_heavy_work's message: the checks passed and the run would start


def settings(**changes):
    args = small_args(**changes)
    return check_settings(
        model=args.pop("model"), solve_kwargs={k: args.pop(k) for k in ("atol", "rtol") if k in args}, **args
    )


# ---------------------------------------------------------------- sample(): arguments that passed and misled


@pytest.mark.parametrize("value", [0, 1, 1.0])
def test_parallel_given_as_a_number_is_refused(no_heavy_work, value):
    """parallel=0 used to pass (0 == False) and then miss `parallel is False`: it ran a parallel solve."""
    with pytest.raises(ValueError, match=rf"parallel={value!r}; use True, False or 'auto'"):
        call_sample(parallel=value)


def test_numpy_bools_are_plain_bools_after_the_checks():
    assert settings(parallel=np.bool_(False)).parallel is False
    assert settings(parallel=np.bool_(True)).parallel is True


def test_both_tolerances_zero_are_refused_before_warmup(no_heavy_work):
    """Used to fail inside the first solve, after the warmup."""
    with pytest.raises(ValueError, match="atol=0 and rtol=0 ask for an exact fixed point"):
        call_sample(parallel=True, atol=0.0, rtol=0)


def test_progress_bar_always_is_accepted_as_parmcmc_infer_documents():
    assert settings(progress_bar="always").progress_bar == "always"


@pytest.mark.parametrize(
    "position", [{}, {"a": None}, jnp.zeros(0), {"a": jnp.zeros((2, 0))}], ids=["dict", "none-leaf", "size-0", "2x0"]
)
def test_empty_initial_position_is_named(no_heavy_work, position):
    """Used to surface as the log density's own TypeError ('dict' ** int), or 'initial_position is empty'."""
    with pytest.raises(ValueError, match=r"sample: initial_position=.* has no entries"):
        call_sample(initial_position=position)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_position_is_refused(no_heavy_work, dtype):
    """float16 used to fail inside BlackJAX's warmup (a scan carry of float16 against float64)."""
    with pytest.raises(TypeError, match=r"has dtype (float16|bfloat16); sampling runs in float32 or float64"):
        call_sample(initial_position=jnp.zeros(3, dtype))


def test_zero_dimensional_integer_arrays_count_as_integers(no_heavy_work):
    """jnp.int32(20) used to be refused as 'not a positive integer'."""
    assert check_int("n", jnp.int32(20)) == 20 and check_int("n", np.array(3)) == 3
    with pytest.raises(TypeError, match="n must be a positive integer"):
        check_int("n", jnp.array([20]))
    with pytest.raises(ValueError, match="n must be a positive integer; got 0"):
        check_int("n", jnp.int32(0))
    with pytest.raises(AssertionError, match=REACHED):
        call_sample(num_samples=jnp.int32(10), num_warmup=np.array(5))


# ---------------------------------------------------------------- run_chain, diagnose, solve, samplers

MALA = parmcmc.MALA(gaussian, 0.5)
X0 = jnp.zeros(3)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: parmcmc.run_chain(MALA, X0, jax.random.key(0), 20, noise_offset=-1), ValueError, "noise_offset"),
        (lambda: parmcmc.run_chain(MALA, X0, jax.random.key(0), 20, noise_offset=1.5), TypeError, "noise_offset"),
        (lambda: parmcmc.run_chain(MALA, X0, jax.random.key(0), True), TypeError, "run_chain: num_steps"),
        (lambda: parmcmc.run_chain(MALA, X0, 0, 20), TypeError, "run_chain: rng_key must be one JAX random key"),
        (
            lambda: parmcmc.run_chain(MALA, X0, jax.random.split(jax.random.key(0), 2), 20),
            TypeError,
            r"rng_key must be one JAX random key.*shape \(2,\)",
        ),
        (
            lambda: parmcmc.run_chain(MALA, X0, jax.random.key(0), 20, max_iter=3),
            TypeError,
            "run_chain: unknown argument.*Did you mean 'max_iters'",
        ),
        (lambda: parmcmc.run_chain(MALA, X0, jax.random.key(0), 20, solver=parmcmc.DEER), TypeError, "solver must"),
        (lambda: parmcmc.diagnose(MALA, X0, 0, 100), TypeError, "rng_key must be one JAX random key"),
    ],
    ids=[
        "noise-offset-negative",
        "noise-offset-float",
        "num-steps-bool",
        "key-int",
        "key-batch",
        "misspelt-option",
        "solver-class",
        "diagnose-key-int",
    ],
)
def test_run_chain_and_diagnose_name_the_argument(call, error, match):
    """A negative noise_offset used to slice the noise from its end: a 1-step chain for 20 asked, without a word;
    an int key failed with "'int' object has no attribute 'dtype'" deep in the noise."""
    with pytest.raises(error, match=match):
        call()


def test_solve_refuses_an_infinite_tolerance_and_a_function_that_is_not_one():
    """atol=inf used to count the first guess as converged (converged=True after 0 iterations)."""
    inputs = jnp.ones((10, 2))
    for name in ("atol", "rtol"):
        with pytest.raises(ValueError, match=rf"solve: {name}=inf must be a real number >= 0 and finite"):
            parmcmc.solve(lambda x, u: 0.5 * x + u, jnp.ones(2), inputs, parmcmc.DEER(), **{name: float("inf")})
    with pytest.raises(TypeError, match="solve: fn must be a function"):
        parmcmc.solve(3, jnp.ones(2), inputs, parmcmc.DEER())


@pytest.mark.parametrize("threshold", [-1.0, 0, float("nan"), "x", True])
def test_hmc_divergence_threshold_is_checked(threshold):
    """-1 used to mark every draw divergent; 'x' raised float()'s own message."""
    with pytest.raises(ValueError, match="divergence_threshold must be a positive number"):
        parmcmc.HMC(gaussian, 0.1, 5, divergence_threshold=threshold)


# ---------------------------------------------------------------- NumPyro models: the data named, not the start


def normal_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def masked_model(y=None, mask=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y, obs_mask=mask)


def poisson_model(y=None):
    numpyro.sample("y", dist.Poisson(numpyro.sample("lam", dist.Gamma(2.0, 1.0))), obs=y)


Y = jnp.array([0.1, jnp.nan, 0.5, jnp.inf])


@pytest.mark.parametrize("data", [Y, Y[:, None] * jnp.ones(2)], ids=["scalar-site", "event-dim"])
def test_non_finite_observations_are_named_before_the_start_search(data):
    """Used to read 'no valid start found ... try a narrower init', which sends the user to the wrong place."""

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        d = dist.Normal(mu, 1.0) if y.ndim == 1 else dist.Normal(mu, jnp.ones(2)).to_event(1)
        numpyro.sample("y", d, obs=y)

    with pytest.raises(ValueError, match=r"observed data of site 'y' .* hold NaN or inf at entries \[1, 3\]"):
        from_numpyro(model, jax.random.key(0), model_kwargs={"y": data})


def test_non_finite_observations_under_a_mask_are_left_to_the_model():
    target = from_numpyro(masked_model, jax.random.key(0), model_kwargs={"y": Y, "mask": jnp.isfinite(Y)})
    assert set(target.var_shapes) >= {"mu", "y_unobserved"}


@pytest.mark.filterwarnings("ignore:Out-of-support values:UserWarning")  # NumPyro's, during its start search
def test_observations_outside_the_support_are_named_when_no_start_is_found():
    with pytest.raises(ValueError, match=r"site 'y' have a log likelihood that is not finite .* entries \[1\].*-3"):
        from_numpyro(poisson_model, jax.random.key(0), model_kwargs={"y": jnp.array([1, -3, 0])})


def test_models_with_nothing_to_sample_say_why():
    def param_only(y=None):
        numpyro.sample("y", dist.Normal(numpyro.param("mu", 0.0), 1.0), obs=y)

    def empty_only():
        numpyro.sample("z", dist.Normal(0.0, 1.0).expand([0]))

    with pytest.raises(ValueError, match=r"numpyro.param site\(s\) \['mu'\] are not sampled"):
        from_numpyro(param_only, jax.random.key(0), model_kwargs={"y": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"latent sample site\(s\) of size 0 only \(\{'z': \(0,\)\}\)"):
        from_numpyro(empty_only, jax.random.key(0))


# ---------------------------------------------------------------- parmcmc.infer.MCMC


def potential_mcmc(num_chains):
    kernel = InferMALA(potential_fn=lambda z: 0.5 * jnp.sum(z**2))
    return MCMC(kernel, num_warmup=5, num_samples=5, num_chains=num_chains, progress_bar=False)


def test_init_params_follow_numpyros_rule_for_several_chains(no_heavy_work, monkeypatch):
    """A (2, D) init_params for 2 chains used to be read as ONE start of a 2D-dimensional density."""
    with pytest.raises(ValueError, match=r"num_chains=2, init_params must hold one start per chain.*\[\(3,\)\]"):
        potential_mcmc(2).run(jax.random.key(0), init_params=jnp.zeros(3))
    seen = {}

    def record(logdensity_fn, positions, *args, **kwargs):
        seen["positions"] = positions
        raise AssertionError(REACHED)

    monkeypatch.setattr(parmcmc.prepare, "mala_warmup", record)
    starts = jnp.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    with pytest.raises(AssertionError, match=REACHED):
        potential_mcmc(2).run(jax.random.key(0), init_params=starts)
    np.testing.assert_array_equal(seen["positions"], starts)  # chain k starts at starts[k], D = 3


def test_mcmc_extra_fields_as_a_string_and_progress_bar_always(no_heavy_work):
    with pytest.raises(TypeError, match=r"extra_fields must be a tuple of names, e.g. extra_fields=\('accept_prob',\)"):
        potential_mcmc(1).run(jax.random.key(0), init_params=jnp.zeros(2), extra_fields="accept_prob")
    mcmc = MCMC(InferMALA(normal_model), num_warmup=5, num_samples=5, progress_bar="always")
    with pytest.raises(AssertionError, match=REACHED):  # documented by MCMC, used to be refused by the checks
        mcmc.run(jax.random.key(0), y=jnp.zeros(3))


# ---------------------------------------------------------------- dtypes JAX converts without a word


def test_int64_data_beyond_int32_with_x64_off_is_refused(no_heavy_work):
    """JAX used to wrap 2**33 to 0 and sample the wrong model."""
    big = {"y": np.array([2**33, 5], np.int64)}
    with jax.enable_x64(False), pytest.raises(ValueError, match=r"model_kwargs\['y'\] hold int64 values beyond int32"):
        parmcmc.sample(poisson_model, model_kwargs=big, rng_key=jax.random.key(0), num_samples=10, progress_bar=False)


def test_float32_start_with_x64_on_is_refused_when_the_warmup_adapts(no_heavy_work):
    """Every sampler's adapting warmup used to fail inside BlackJAX (a float32 carry against a float64 one)."""
    with pytest.raises(TypeError, match="holds float32 arrays while jax_enable_x64 is on"):
        call_sample(initial_position=jnp.zeros(3, jnp.float32))
    with pytest.raises(AssertionError, match=REACHED):  # a given step size: the burn-in keeps float32
        call_sample(initial_position=jnp.zeros(3, jnp.float32), step_size=0.3)


def test_half_precision_empty_state_and_unknown_init_values_are_named_where_they_enter():
    with pytest.raises(TypeError, match="initial_position has dtype float16; the samplers run in float32 or float64"):
        parmcmc.run_chain(MALA, jnp.zeros(3, jnp.float16), jax.random.key(0), 10)
    with pytest.raises(ValueError, match="solve: x0 has no entries"):
        parmcmc.solve(lambda x, u: x, jnp.zeros(0), jnp.ones((5, 1)), parmcmc.DEER())
    strategy = numpyro.infer.init_to_value(values={"muu": 1.0})
    with pytest.raises(ValueError, match=r"init_to_value\(values=...\) names \['muu'\], which are not latent"):
        from_numpyro(normal_model, jax.random.key(0), model_kwargs={"y": jnp.zeros(2)}, init_strategy=strategy)


def test_numpyro_model_given_with_initial_position_is_told_to_leave_it_out(no_heavy_work):
    """NumPyro raises an AssertionError with no message when its model is called with a position."""
    with pytest.raises(ValueError, match=r"If the model is a NumPyro model .* leave initial_position out"):
        call_sample(model=normal_model)


@pytest.mark.parametrize(
    "changes, name",
    [
        (dict(adaptation="chees", step_size=0.3), "adaptation="),
        (dict(adaptation="window_trajectory", num_warmup=0, step_size=0.3), "adaptation="),
        (dict(dense_mass=True, step_size=0.3), "dense_mass="),
        (dict(dense_mass=True, sampler=parmcmc.HMC(gaussian, 0.3, 5)), "dense_mass="),
        (dict(dense_mass=True, sampler="mala", num_warmup=10), r"dense_mass=.*needs num_warmup >= 20"),
    ],
    ids=["chees-step-size", "trajectory-no-warmup", "dense-step-size", "dense-instance", "mala-short"],
)
def test_warmup_settings_that_nothing_adapts_warn(no_heavy_work, changes, name):
    """These used to be dropped without a word (the run went on with a fixed step size and no dense metric)."""
    with pytest.warns(parmcmc.IgnoredArgumentWarning, match=rf"sample: {name}"), pytest.raises(AssertionError):
        call_sample(**changes)


def test_post_warmup_state_of_another_mcmc_is_named():
    """A state of 2 chains continued by a 1-chain MCMC used to fail inside vmap ('inconsistent sizes')."""
    from parmcmc.infer.mcmc import MCMCState, _check_state_fits

    state = MCMCState({"mu": jnp.zeros(2)}, jnp.ones(2), None, jax.random.key(0), 0)
    _check_state_fits(state, {"mu": jnp.zeros(2)}, 2)
    for positions, chains in (({"mu": jnp.zeros(1)}, 1), ({"a": jnp.zeros((2, 3))}, 2)):
        with pytest.raises(ValueError, match=r"post_warmup_state holds positions shaped \{'mu': \(2,\)\}"):
            _check_state_fits(state, positions, chains)


def test_unbounded_trajectory_and_fractional_probe_seed_are_refused():
    """trajectory_length=inf used to be accepted (ceil(inf / step) leapfrog steps); QuasiDEER(seed=1.5) too."""
    with pytest.raises(ValueError, match="trajectory_length must be positive and finite"):
        parmcmc.HMC(gaussian, 0.1, 5, trajectory_length=float("inf"), integration_steps_jitter=1.0)
    with pytest.raises(TypeError, match="QuasiDEER: seed must be an integer"):
        parmcmc.QuasiDEER(diagonal="hutchinson", seed=1.5)


def test_raw_keys_of_both_default_generators_pass_the_key_check():
    """A raw key is (2,) uint32 under threefry and (4,) under jax_default_prng_impl="rbg"; both are one key."""
    from parmcmc.arguments import check_rng_key

    for key in (jnp.zeros(2, jnp.uint32), jnp.zeros(4, jnp.uint32), jax.random.key(0)):
        check_rng_key(key)
    for key in (jnp.zeros(3, jnp.uint32), jnp.zeros((2, 2), jnp.uint32), jnp.zeros(2, jnp.int32), 0):
        with pytest.raises(TypeError, match="rng_key must be one JAX random key"):
            check_rng_key(key, call="sample")


def test_diagnose_and_lyapunov_counts_and_keys_are_named_on_entry():
    """diagnose(pilot_steps=0) used to fail after compiling the pilot's noise; lyapunov_exponent's num_batches=0 and
    key=0 failed inside NumPy and JAX."""
    sampler = parmcmc.MALA(lambda x: -0.5 * jnp.sum(x**2), step_size=0.5)
    x0 = jnp.zeros(2)
    for name in ("pilot_steps", "num_probes"):
        with pytest.raises(ValueError, match=rf"diagnose: {name} must be"):
            parmcmc.diagnose(sampler, x0, jax.random.key(0), 100, **{name: 0})
    step = lambda x, u: 0.5 * x + u
    u = jnp.ones((50, 2))
    with pytest.raises(ValueError, match="lyapunov_exponent: num_batches must be a positive integer; got 0"):
        parmcmc.lyapunov_exponent(step, x0, u, num_batches=0)
    with pytest.raises(TypeError, match="lyapunov_exponent: key must be one JAX random key"):
        parmcmc.lyapunov_exponent(step, x0, u, key=0)


def test_non_finite_guess_truthy_flags_and_dense_mass_one_are_refused_by_name():
    """A NaN initial_guess used to end 'non-finite after 0 iterations' and blame fn; ELK(adaptive="yes") and
    dense_mass=1 passed as true."""
    from parmcmc.engine import DEER, ELK, solve

    step = lambda x, u: 0.5 * x + u
    u, x0 = jnp.ones((20, 2)), jnp.zeros(2)
    with pytest.raises(ValueError, match="solve: initial_guess holds NaN or inf"):
        solve(step, x0, u, DEER(), initial_guess=jnp.full((20, 2), jnp.nan))
    for flag in ("adaptive", "smoother"):
        with pytest.raises(TypeError, match=rf"ELK\({flag}='yes'\): {flag} must be True or False"):
            ELK(**{flag: "yes"})
    with pytest.raises(TypeError, match="dense_mass must be True, False, 'low_rank'"):
        settings(dense_mass=1)


@pytest.mark.parametrize("name", ["log_likelihood", "posterior_predictive"])
@pytest.mark.parametrize("value", [0, 1, 1.0])
def test_the_output_switches_take_only_bools(no_heavy_work, name, value):
    """log_likelihood=1 used to pass (1 == True)."""
    with pytest.raises(TypeError, match=rf"sample: {name} must be True or False; got {value!r}"):
        call_sample(**{name: value})
    assert settings(**{name: np.bool_(False)}).initial_position is not None  # numpy's bools are bools


def test_log_likelihood_true_with_a_plain_log_density_is_refused(no_heavy_work):
    """A log density has no observed sites: the log_likelihood group asked for was silently never there."""
    with pytest.raises(ValueError, match=r"log_likelihood=True need a NumPyro model"):
        call_sample(log_likelihood=True)
    assert settings(log_likelihood=False).log_likelihood is False  # saying no is fine


def test_log_likelihood_true_for_a_model_that_observes_nothing_is_refused(no_heavy_work):
    """The group asked for could never be there: it used to be left out without a word."""

    def prior_only():
        numpyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match=r"log_likelihood=True .* model 'prior_only' observes nothing"):
        parmcmc.sample(prior_only, rng_key=jax.random.key(0), num_samples=10, num_warmup=10, log_likelihood=True)
