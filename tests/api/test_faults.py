"""Fault injection: every user mistake and numerical failure, with the exact behaviour asserted.

Each test injects one fault (a bad argument, a bad log density, an unconverged solve, a chaotic chain) and
asserts what parmcmc does: the error's type and that its message names the argument and the fix, or the
warning, or the right answer. docs/bad_inputs.md links its rows here. Checks that happen before warmup run
under `no_heavy_work`, which fails the test if warmup or the sampling run starts.
"""

import inspect
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers.sample_checks import call_sample, gaussian, small_args

import parmcmc
import parmcmc.api
import parmcmc.models.numpyro
from parmcmc.compare import _verdict
from parmcmc.diagnostics import fallback_warning
from parmcmc.io.arviz import to_datatree
from parmcmc.models import from_numpyro
from parmcmc.samplers.metrics import check_inverse_mass_matrix
from parmcmc.validate import estimate_run_bytes


def funnel(x):
    v, z = x[0], x[1:]
    return -(v**2) / 18.0 - 0.5 * jnp.sum(z**2) * jnp.exp(-v) - 0.5 * z.size * v


def check(**changes):
    """sample()'s argument checks alone (no model evaluation, no warmup); options left out take sample()'s
    defaults, as api.check_settings fills them."""
    args = small_args(**changes)
    params = inspect.signature(parmcmc.sample).parameters
    solve_kwargs = {k: args.pop(k) for k in list(args) if k not in params}
    return parmcmc.api.check_settings(**args, solve_kwargs=solve_kwargs)


# ---------------------------------------------------------------- arguments refused before warmup
LATE_ERRORS = [  # (id, changes, exception, excerpt naming the argument and the fix)
    ("atol-negative", dict(atol=-1), ValueError, r"atol=-1 must be a finite real number >= 0 \(e.g. atol=1e-8\)"),
    ("rtol-string", dict(rtol="tight"), ValueError, r"rtol='tight' must be a finite real number >= 0"),
    ("atol-nan", dict(atol=float("nan")), ValueError, r"atol=nan must be a finite real number"),
    ("fallback-misspelt", dict(fallback="seq"), ValueError, r"fallback='seq'; the only choice is 'sequential'"),
    (
        "fallback-none",
        dict(fallback=None),
        ValueError,
        r"fallback=None is refused: sample\(\) promises that every chain it returns is converged.*run_chain",
    ),
    ("progress-not-callable", dict(progress=123), TypeError, r"progress=123 must be a callable"),
    ("throw-not-bool", dict(throw="yes"), TypeError, r"throw='yes' must be True or False"),
    (
        "initial-guess",
        dict(initial_guess=jnp.zeros((10, 3))),
        ValueError,
        r"initial_guess= is not supported.*run_chain",
    ),
    ("max-iters-zero-numpy", dict(max_iters=np.int64(0)), ValueError, r"max_iters must be a positive integer"),
    ("window-float", dict(window=64.0), TypeError, r"window must be a positive integer"),
]


@pytest.mark.parametrize("changes, exc, match", [c[1:] for c in LATE_ERRORS], ids=[c[0] for c in LATE_ERRORS])
def test_solve_options_are_refused_before_warmup(no_heavy_work, changes, exc, match):
    with pytest.raises(exc, match=match):
        call_sample(**changes)


def test_numpy_integers_are_accepted_wherever_a_count_is_taken():
    s = check(
        num_samples=np.int64(10),
        num_chains=np.int32(2),
        num_warmup=np.int64(5),
        num_integration_steps=np.int64(3),
        sampler="hmc",
        max_iters=np.int64(100),
        window=np.int64(64),
    )
    assert s.solve_kwargs == {"max_iters": 100, "window": 64}
    assert all(
        type(v) is int
        for v in (s.num_samples, s.num_chains, s.num_warmup, s.num_integration_steps, *s.solve_kwargs.values())
    )
    sol = parmcmc.solve(
        lambda x, u: 0.5 * x + u,
        jnp.zeros(1),
        jnp.ones((20, 1)),
        parmcmc.DEER(),
        max_iters=np.int64(50),
        window=np.int32(8),
    )
    assert bool(sol.converged)


@pytest.mark.parametrize("num_samples, num_chains", [(10**12, 4), (3 * 10**8, 4)], ids=["1e12", "3e8x4"])
def test_a_run_that_cannot_fit_is_refused_up_front_with_the_figure(no_heavy_work, num_samples, num_chains):
    with pytest.raises(MemoryError, match=r"would need about [\d.e+]+ GB .*more than the .* GB of .*fewer draws"):
        call_sample(num_samples=num_samples, num_chains=num_chains)


def test_a_warmup_that_cannot_fit_is_refused_up_front(no_heavy_work):
    with pytest.raises(MemoryError, match=r"warmup [\d.e+]+ GB.*a shorter num_warmup \(or keep_warmup=False\)"):
        call_sample(num_warmup=10**11, keep_warmup=True)


def test_memory_estimate_counts_jacobians_by_solver_and_window():
    dense = estimate_run_bytes(4, 1000, 10, np.float64, parmcmc.DEER())
    quasi = estimate_run_bytes(4, 1000, 10, np.float64, parmcmc.QuasiDEER())
    windowed = estimate_run_bytes(4, 1000, 10, np.float64, parmcmc.DEER(), window=100)
    assert dense["jacobians"] == 10 * quasi["jacobians"] == 10 * windowed["jacobians"] == 3 * 4 * 1000 * 100 * 8
    assert estimate_run_bytes(4, 1000, 10, np.float64, parmcmc.Sequential())["jacobians"] == 0


# ---------------------------------------------------------------- ignored arguments
IGNORED = [
    ("solver-with-sequential", dict(parallel=False, solver=parmcmc.DEER()), r"solver= is ignored: parallel=False"),
    ("solve-options-with-sequential", dict(parallel=False, max_iters=5), r"max_iters= is ignored"),
    (
        "integration-steps-with-mala",
        dict(sampler="mala", num_integration_steps=5),
        r"num_integration_steps= is ignored: MALA",
    ),
    (
        "integration-steps-with-instance",
        dict(sampler=parmcmc.HMC(gaussian, 0.1, 3), num_integration_steps=5),
        r"num_integration_steps= is ignored: the HMC instance's own",
    ),
    (
        "target-acceptance-with-step-size",
        dict(step_size=0.1, target_acceptance=0.6),
        r"target_acceptance= is ignored: no step size is adapted",
    ),
    ("keep-warmup-without-adaptation", dict(step_size=0.1, keep_warmup=True), r"keep_warmup=True is ignored"),
]


@pytest.mark.parametrize("changes, match", [c[1:] for c in IGNORED], ids=[c[0] for c in IGNORED])
def test_ignored_arguments_warn(changes, match):
    with pytest.warns(parmcmc.IgnoredArgumentWarning, match=match):
        check(**changes)


def test_arguments_that_are_used_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", parmcmc.IgnoredArgumentWarning)
        check(sampler="hmc", num_integration_steps=5, target_acceptance=0.7, keep_warmup=True, max_iters=5)


# ---------------------------------------------------------------- bad log densities, before warmup
BAD_DENSITIES = [
    (
        "returns-int",
        lambda x: jnp.sum(x).astype(jnp.int32),
        TypeError,
        r"must return a real floating-point scalar; it returned dtype int32.*jnp.asarray\(value, dtype=float\)",
    ),
    ("returns-bool", lambda x: jnp.sum(x) > 0, TypeError, r"returned dtype bool"),
    ("returns-complex", lambda x: jnp.sum(x**2) + 0j, TypeError, r"returned dtype complex128.*jnp.real"),
    (
        "pure-callback-without-jvp",
        lambda x: jax.pure_callback(
            lambda v: np.asarray(-0.5 * np.sum(v**2)),
            jax.ShapeDtypeStruct((), jnp.float64),
            x,
            vmap_method="sequential",
        ),
        ValueError,
        r"gradient of the log density of model .* cannot be computed .*jax.custom_jvp",
    ),
]


@pytest.mark.parametrize("model, exc, match", [c[1:] for c in BAD_DENSITIES], ids=[c[0] for c in BAD_DENSITIES])
def test_bad_log_density_is_named_before_warmup(no_heavy_work, model, exc, match):
    with pytest.raises(exc, match=match):
        call_sample(model=model)


@jax.custom_jvp
def _callback_density(x):
    return jax.pure_callback(lambda v: np.asarray(-0.5 * np.sum(v**2)), jax.ShapeDtypeStruct((), x.dtype), x)


_callback_density.defjvp(lambda p, t: (_callback_density(p[0]), -jnp.sum(p[0] * t[0])))


def test_pure_callback_without_vmap_method_is_named(no_heavy_work):
    with pytest.raises(ValueError, match=r"cannot be vmapped .*vmap_method='sequential'"):
        call_sample(model=_callback_density)


def test_host_callback_that_raises_mid_run_is_named():
    calls = [0]

    def host(v):
        calls[0] += 1
        if calls[0] > 20:
            raise ValueError("the external solver diverged")
        return np.asarray(-0.5 * np.sum(v**2))

    @jax.custom_jvp
    def density(x):
        return jax.pure_callback(host, jax.ShapeDtypeStruct((), x.dtype), x, vmap_method="sequential")

    density.defjvp(lambda p, t: (density(p[0]), -jnp.sum(p[0] * t[0])))
    with pytest.raises(
        RuntimeError,
        match=r"sample: the run failed inside the compiled computation of model "
        r"'density': ValueError: the external solver diverged.*return -inf",
    ):
        call_sample(model=density, parallel=False, step_size=0.1, num_warmup=0, num_samples=30)


# ---------------------------------------------------------------- NumPyro models
def test_observed_value_that_numpyro_broadcasts_warns():
    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 1).expand([20]))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with pytest.warns(
        parmcmc.models.numpyro.ObservedShapeWarning,
        match=r"site 'y' has shape \(20, 1\), but its distribution has shape \(20,\).*\(20, 20\)",
    ):
        from_numpyro(model, jax.random.key(0), model_kwargs={"y": np.zeros((20, 1))})


def test_iid_observations_against_a_scalar_location_do_not_warn():
    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("error", parmcmc.models.numpyro.ObservedShapeWarning)
        from_numpyro(model, jax.random.key(0), model_kwargs={"y": np.zeros(20)})


def test_improper_uniform_prior_is_sampled():
    y = np.linspace(-1.0, 2.0, 20)

    def model(y=None):
        mu = numpyro.sample("mu", dist.ImproperUniform(dist.constraints.real, (), ()))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    tree = parmcmc.sample(
        model,
        model_kwargs={"y": y},
        rng_key=jax.random.key(0),
        num_samples=400,
        num_warmup=0,
        step_size=0.05,
        num_chains=1,
        parallel=False,
        progress_bar=False,
    )
    draws = np.asarray(tree.posterior["mu"]).ravel()[100:]
    # the posterior is N(mean(y), 1/20): its mean within 4 of its sds after a short burn-in
    assert abs(draws.mean() - y.mean()) < 4 * np.sqrt(1 / 20)


# ---------------------------------------------------------------- HMC mass matrix
def test_float32_inverse_of_a_covariance_is_accepted_and_symmetrised():
    a = np.random.default_rng(0).normal(size=(6, 6)).astype(np.float32)
    inv = np.asarray(jnp.linalg.inv(jnp.asarray(a @ a.T + 6 * np.eye(6, dtype=np.float32))))
    assert np.max(np.abs(inv - inv.T)) > 0  # rounding made it asymmetric
    m = np.asarray(check_inverse_mass_matrix(inv))
    assert m.dtype == np.float32 and np.array_equal(m, m.T)


def test_genuinely_asymmetric_mass_matrix_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"must be symmetric; max \|M - M\^T\| is 0.1.*Pass \(M \+ M.T\) / 2"):
        check_inverse_mass_matrix(np.array([[1.0, 0.1], [0.0, 1.0]]))


# ---------------------------------------------------------------- unconverged results are never silent
def _logistic_map():
    return (lambda x, u: 3.9 * x * (1 - x) + 0 * u), jnp.array([0.3]), jnp.zeros((200, 1))


def test_unconverged_solve_warns_with_cause_iterations_residual_and_advice():
    fn, x0, inputs = _logistic_map()
    with pytest.warns(
        parmcmc.NotConvergedWarning,
        match=r"Jacobi failed after 5 iterations \(residual "
        r"[\d.]+\): did not converge within max_iters.*fallback=",
    ):
        sol = parmcmc.solve(fn, x0, inputs, parmcmc.Jacobi(), max_iters=5)
    assert not bool(sol.converged)


def test_unconverged_solve_raises_with_throw_eagerly_and_under_jit_and_vmap():
    fn, x0, inputs = _logistic_map()
    with pytest.raises(parmcmc.SolveError, match="failed after 5 iterations"):
        parmcmc.solve(fn, x0, inputs, parmcmc.Jacobi(), max_iters=5, throw=True)
    jitted = jax.jit(lambda x: parmcmc.solve(fn, x, inputs, parmcmc.Jacobi(), max_iters=5, throw=True).states)
    with pytest.raises(jax.errors.JaxRuntimeError, match="SolveError: solve with Jacobi failed after 5"):
        jitted(x0).block_until_ready()
    batched = jax.jit(
        jax.vmap(lambda x: parmcmc.solve(fn, x, inputs, parmcmc.Jacobi(), max_iters=5, throw=True).states)
    )
    with pytest.raises(jax.errors.JaxRuntimeError, match="SolveError"):
        batched(jnp.stack([x0, x0])).block_until_ready()
    converged = jax.jit(
        lambda x: parmcmc.solve(lambda y, u: 0.5 * y + u, x, jnp.ones((50, 1)), parmcmc.DEER(), throw=True).states
    )
    assert float(converged(x0)[-1, 0]) == pytest.approx(2.0, abs=1e-9)  # a converged solve passes through


def test_run_chain_with_a_small_budget_warns():
    with pytest.warns(parmcmc.NotConvergedWarning, match="QuasiDEER failed after 2 iterations"):
        res = parmcmc.run_chain(
            parmcmc.MALA(gaussian, 0.5), jnp.zeros(3), jax.random.key(1), 200, solver=parmcmc.QuasiDEER(), max_iters=2
        )
    assert not bool(res.converged)


def test_solve_tolerances_and_options_are_checked():
    fn, x0, inputs = _logistic_map()
    with pytest.raises(ValueError, match=r"atol=-1 must be a real number >= 0"):
        parmcmc.solve(fn, x0, inputs, parmcmc.DEER(), atol=-1)
    with pytest.raises(TypeError, match=r"progress=123 must be a callable"):
        parmcmc.solve(fn, x0, inputs, parmcmc.DEER(), progress=123)


# ---------------------------------------------------------------- frozen chains
@pytest.mark.parametrize(
    "step_size, match", [(1e30, "accepted none of their 100 proposals"), (1e-30, "barely moved")], ids=["huge", "tiny"]
)
def test_extreme_step_size_warns_frozen_chain(step_size, match):
    with pytest.warns(parmcmc.FrozenChainWarning, match=match):
        call_sample(
            model=lambda x: -0.5 * jnp.sum((x - 1.0) ** 2),
            step_size=step_size,
            num_warmup=0,
            num_samples=100,
            parallel=False,
        )


def test_compare_on_frozen_chains_warns_frozen_chain_and_lets_no_arviz_warning_through():
    """Frozen chains have no variance: compare's summary shows NaN ESS and MCSE; ArviZ's 0/0 RuntimeWarnings were
    let through on top of FrozenChainWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        comparison = parmcmc.compare(
            lambda x: -0.5 * jnp.sum((x - 1.0) ** 2),
            rng_key=jax.random.key(0),
            num_samples=100,
            num_warmup=0,
            num_chains=2,
            initial_position=jnp.zeros(3),
            step_size=1e30,
            sampler="mala",
            progress_bar=False,
        )
    assert {w.category for w in caught} == {parmcmc.FrozenChainWarning}, [str(w.message)[:80] for w in caught]
    assert comparison.verdict == "same draws" and comparison.summary.isna().to_numpy().any()


# ---------------------------------------------------------------- exactness: replay or valid chain
def test_contracting_chain_reports_the_sequential_draws():
    sampler, x0 = parmcmc.MALA(gaussian, 0.5), jnp.full(3, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", parmcmc.ReplayWarning)
        par = parmcmc.run_chain(sampler, x0, jax.random.key(3), 300, solver=parmcmc.DEER())
    seq = parmcmc.run_chain(sampler, x0, jax.random.key(3), 300, solver=parmcmc.Sequential())
    assert int(par.near_threshold) == 0 and float(par.lle) < 0
    assert float(jnp.max(jnp.abs(par.positions - seq.positions))) <= 1e-8


def test_expanding_chain_is_flagged_and_does_part_from_the_replay():
    sampler, x0 = parmcmc.HMC(funnel, 0.3, 10), jnp.concatenate([jnp.ones(1), jnp.full(9, 0.5)])
    with pytest.warns(parmcmc.ReplayWarning, match=r"may differ from the sequential replay.*LLE \+"):
        par = parmcmc.run_chain(
            sampler, x0, jax.random.key(3), 200, solver=parmcmc.DEER(), max_iters=200, fallback="sequential"
        )
    seq = parmcmc.run_chain(sampler, x0, jax.random.key(3), 200, solver=parmcmc.Sequential())
    assert bool(par.converged)
    assert int(par.near_threshold) > 0 and float(par.lle) > 0
    # what the flag predicts happens: the chains part at a decision (measured: 7 differ; 62 at T = 300)
    assert int(jnp.sum(par.stats.is_accepted != seq.stats.is_accepted)) > 0


@pytest.mark.filterwarnings("ignore::parmcmc.MixingWarning")  # a short run: R-hat is not what is tested here
def test_sample_reports_exactness_per_chain_next_to_the_solver_statistics():
    # adaptation="window" (10 steps, step size jittered): 20 warmup steps leave the default's un-jittered step size
    # unstable on one chain (2.82 on a standard normal), which this test of the solver's statistics is not about
    tree = call_sample(
        num_samples=100, num_warmup=20, parallel=True, max_iters=np.int64(200), window=np.int64(64), adaptation="window"
    )
    stats = tree["solver_stats"]
    assert stats["solver_near_threshold"].dims == ("chain",) and stats["solver_lle"].dims == ("chain",)
    assert np.all(np.asarray(stats["solver_near_threshold"]) == 0) and np.all(np.asarray(stats["solver_lle"]) < 0)


def test_fallback_warning_states_what_is_true():
    class Fell:
        fell_back, result, num_iters = np.array([True]), np.array([2]), np.array([7])
        sequential_from, converged, states = np.array([5]), np.array(True), np.zeros((10, 1))

    text = fallback_warning(Fell(), 0.2)
    assert "satisfy the step map to tolerance" in text and "not necessarily the sequential replay" in text
    assert "the result is the sequential chain" not in text


# ---------------------------------------------------------------- compare()'s verdict
def _tree(mean):
    draws = np.random.default_rng(0).normal(size=(2, 400)) + mean
    return to_datatree({"x": draws})


def test_compare_verdict_same_draws_same_distribution_different():
    same = _tree(0.0)
    assert _verdict({"parallel": same, "sequential": same}, 1e-14, 0, np.float64) == "same draws"
    shuffled = to_datatree({"x": np.random.default_rng(1).normal(size=(2, 400))})
    verdict = _verdict({"parallel": same, "sequential": shuffled}, 3.0, 250, np.float64)
    assert verdict.startswith("same distribution")
    verdict = _verdict({"parallel": same, "sequential": _tree(2.0)}, 3.0, 250, np.float64)
    assert verdict.startswith("different: x's posterior mean differs by 2")


# ---------------------------------------------------------------- more arguments of the same classes
MORE_BAD = [
    ("progress-bar-string", dict(progress_bar="no"), TypeError, r"progress_bar='no' must be True or False"),
    ("dims-not-a-dict", dict(dims=["x"]), TypeError, r"dims must be a dict such as"),
    (
        "dims-unknown-variable",
        dict(dims={"beta": ["feature"]}),
        ValueError,
        r"dims names 'beta', which is not a variable of the model; its variables are \['x'\]",
    ),
    (
        "dims-wrong-length",
        dict(dims={"x": ["a", "b"]}),
        ValueError,
        r"dims\['x'\] = \['a', 'b'\] must list 1 dimension",
    ),
    (
        "coords-wrong-size",
        dict(dims={"x": ["param"]}, coords={"param": ["a", "b"]}),
        ValueError,
        r"coords\['param'\] has 2 label\(s\), but dimension 'param' has size 3",
    ),
    (
        "initial-position-string",
        dict(initial_position={"a": "x"}),
        TypeError,
        r"initial_position\['a'\] is str 'x'; the initial position must be a pytree .* of floating-point arrays",
    ),
]


@pytest.mark.parametrize("changes, exc, match", [c[1:] for c in MORE_BAD], ids=[c[0] for c in MORE_BAD])
def test_more_bad_arguments_are_refused_before_warmup(no_heavy_work, changes, exc, match):
    with pytest.raises(exc, match=match):
        call_sample(**changes)


def test_zero_dimensional_array_tolerances_are_accepted():
    assert check(atol=jnp.asarray(1e-9), rtol=np.float32(1e-9)).solve_kwargs == {
        "atol": 1e-9,
        "rtol": pytest.approx(1e-9),
    }


def test_sample_reports_a_chain_still_unconverged_after_the_fallback():
    from parmcmc.health import report_unconverged

    class Chains:  # two chains, the second not finite even step by step
        converged, result, num_iters = np.array([True, False]), np.array([1, 3]), np.array([4, 9])
        residual, fell_back = np.array([1e-13, np.inf]), np.array([False, True])

    with pytest.warns(
        parmcmc.NotConvergedWarning,
        match=r"sample: chain\(s\) \[1\] are not converged: .*"
        r"non-finite.*sequential fallback ran too",
    ):
        report_unconverged(Chains(), parmcmc.DEER())
    with pytest.raises(parmcmc.SolveError, match=r"chain\(s\) \[1\] are not converged"):
        report_unconverged(Chains(), parmcmc.DEER(), throw=True)


def test_compare_warns_that_parallel_is_ignored(monkeypatch):
    def stop(**kwargs):
        raise KeyboardInterrupt("checked")

    monkeypatch.setattr(sys.modules["parmcmc.compare"], "check_settings", stop)
    with (
        pytest.warns(parmcmc.IgnoredArgumentWarning, match=r"compare: parallel= is ignored"),
        pytest.raises(KeyboardInterrupt),
    ):
        parmcmc.compare(gaussian, rng_key=jax.random.key(0), num_samples=10, parallel=False)
