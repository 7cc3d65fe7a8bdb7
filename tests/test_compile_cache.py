"""Compiled code is reused exactly when it computes the same thing.

A changed Python value that the step map reads is a different program and must never be served
stale; changing only array values (data, keys, step sizes, starts of the same shapes) compiles
nothing, down to a whole second sample() call with new data.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import parmcmc
from parmcmc import api, jitcache
from parmcmc.engine import DEER, Jacobi, QuasiDEER, Sequential, solve
from parmcmc.models.builtin import eight_schools


def test_a_changed_python_value_is_never_served_stale():
    a = 0.5
    fn = lambda x, u: a * x + u
    x0, inputs = jnp.zeros(1), jnp.ones((50, 1))
    first = solve(fn, x0, inputs, DEER()).states[-1, 0]
    a = 0.9
    second = solve(fn, x0, inputs, DEER()).states[-1, 0]
    assert np.isclose(first, 2.0, atol=1e-12)
    assert np.isclose(second, (1 - 0.9**50) / (1 - 0.9), atol=1e-10)  # 9.948..., as Sequential gives
    assert np.isclose(second, solve(fn, x0, inputs, Sequential()).states[-1, 0], atol=1e-10)


def test_new_arrays_of_the_same_shapes_compile_nothing(count_compiles):
    W = jnp.array([[0.5, 0.1], [0.0, 0.4]])
    fn = lambda x, u: jnp.tanh(W @ x + u)
    keys = jax.random.split(jax.random.key(0), 2)
    inputs = [jax.random.normal(k, (64, 2)) for k in keys]
    x0s = [jnp.zeros(2), jnp.ones(2)]
    W1 = W + 0.1
    solve(fn, x0s[0], inputs[0], QuasiDEER(), atol=1e-9, rtol=1e-9)
    with count_compiles() as n:
        W = W1  # new closed-over data, new inputs, new start, new tolerance values
        sol = solve(fn, x0s[1], inputs[1], QuasiDEER(), atol=1e-10, rtol=1e-10)
        assert n() == 0
    ref = solve(fn, x0s[1], inputs[1], Sequential())
    assert float(jnp.max(jnp.abs(sol.states - ref.states))) <= 1e-8


def test_a_reused_bound_sampler_sees_its_log_density_change():
    sd = 1.0
    sampler = parmcmc.MALA(lambda x: -0.5 * jnp.sum((x / sd) ** 2), 0.5).bind(jnp.zeros(2))
    key = jax.random.key(3)
    before = parmcmc.run_chain(sampler, jnp.zeros(2), key, 300, solver=QuasiDEER())
    sd = 10.0
    after = parmcmc.run_chain(sampler, jnp.zeros(2), key, 300, solver=QuasiDEER())
    seq = parmcmc.run_chain(sampler, jnp.zeros(2), key, 300, solver=Sequential())
    assert float(jnp.max(jnp.abs(after.positions - seq.positions))) <= 1e-8
    assert float(jnp.max(jnp.abs(after.positions - before.positions))) > 0.1
    # step size 0.5 on sd 10: acceptance near 1, where sd 1 rejected a good part
    assert float(jnp.mean(after.stats.is_accepted)) > float(jnp.mean(before.stats.is_accepted))


def test_program_jit_keys_on_the_program_and_hoists_data():
    data = jnp.arange(6.0).reshape(3, 2)
    scale = 2.0
    f = lambda x: scale * jnp.sum(data @ x)
    g = jitcache.program_jit(f)
    x = jnp.ones(2)
    assert float(g(x)) == 30.0
    c0 = jitcache.stats().compiles
    data = data + 1.0
    assert float(g(x)) == 42.0 and jitcache.stats().compiles == c0  # new data: same program
    scale = 3.0
    assert float(g(x)) == 63.0 and jitcache.stats().compiles == c0 + 1  # new Python value: new program
    h = jitcache.program_jit(lambda x: scale * jnp.sum(data @ x))  # a new function object, same program
    assert float(h(x)) == 63.0 and jitcache.stats().compiles == c0 + 1


def test_host_callbacks_are_part_of_the_program():
    seen_a, seen_b = [], []
    f = lambda cb: jitcache.program_jit(lambda x: (jax.debug.callback(cb, x), x + 1)[1])
    f(seen_a.append)(jnp.ones(()))
    f(seen_b.append)(jnp.ones(()))
    jax.effects_barrier()
    assert len(seen_a) == 1 and len(seen_b) == 1  # the second program called its own callback


@pytest.mark.filterwarnings("ignore::parmcmc.MixingWarning")  # a short run: R-hat is not what is tested here
def test_a_second_sample_call_with_new_data_compiles_nothing(count_compiles, capsys):
    ex = eight_schools()
    common = dict(num_samples=64, num_warmup=32, num_chains=2, sampler="mala", parallel=False)  # solve: see above
    sigma, y = ex.model_args[0], ex.model_kwargs["y"]
    first = parmcmc.sample(ex.model, model_args=(sigma,), model_kwargs={"y": y}, rng_key=jax.random.key(0), **common)
    sigma2, y2, key2 = sigma * 1.5, y + 3.0, jax.random.key(1)
    with count_compiles() as n:
        # new data of the same shapes, a new key, a new model function object
        second = parmcmc.sample(
            functools.partial(ex.model), model_args=(sigma2,), model_kwargs={"y": y2}, rng_key=key2, **common
        )
        assert n() == 0
    capsys.readouterr()
    assert not np.allclose(first.posterior["mu"].values, second.posterior["mu"].values)
    assert second.posterior["mu"].shape == (2, 64)


def _regression_density(X, y):
    return lambda w: -0.5 * jnp.sum((y - X @ w) ** 2) - 0.5 * jnp.sum(w**2)


@pytest.mark.parametrize("sampler", ["mala", "hmc"])  # hmc: BlackJAX nests the data in a jit (parmcmc/jitlift.py)
def test_closed_over_data_is_an_argument_not_a_constant(count_compiles, sampler):
    """A log density closing over a data matrix (1,000,000 x 3 took minutes as an XLA
    constant): a second data set of the same shapes, through warmup, checks and the solve, compiles
    nothing, which could not hold if the data were baked into the compiled programs."""
    rng = np.random.default_rng(0)
    data = [(jnp.asarray(rng.normal(size=(2000, 3))), jnp.asarray(rng.normal(size=2000))) for _ in range(2)]
    x0, keys = jnp.zeros(3), [jax.random.key(0), jax.random.key(1)]
    common = dict(
        num_samples=32, num_warmup=16, num_chains=2, solver=Jacobi(), parallel=True, progress_bar=False, sampler=sampler
    )
    trees = [parmcmc.sample(_regression_density(*data[0]), initial_position=x0, rng_key=keys[0], **common)]
    with count_compiles() as n:
        trees.append(parmcmc.sample(_regression_density(*data[1]), initial_position=x0, rng_key=keys[1], **common))
        assert n() == 0
    assert not np.allclose(trees[0].posterior["x"].values, trees[1].posterior["x"].values)


@pytest.fixture
def compile_options_seen(monkeypatch):
    """The compiler_options of every compile, in order (None where none were given)."""
    seen, compile_ = [], jax.stages.Lowered.compile

    def spy(self, compiler_options=None, **kw):
        seen.append(compiler_options)
        return compile_(self, compiler_options, **kw)

    monkeypatch.setattr(jax.stages.Lowered, "compile", spy)
    return seen


@pytest.fixture
def users_build():
    """XLA's optimisations on, as users run (the suite compiles most programs with them off: tests/conftest.py)."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def test_a_light_program_compiles_with_llvm_at_level_1_on_a_cpu_and_the_same_values(compile_options_seen, users_build):
    assert (
        jitcache.compiler_options(jnp.zeros(2))
        == jitcache.CPU_COMPILER_OPTIONS
        == {"xla_backend_optimization_level": 1}
    )
    assert jitcache.compiler_options(jnp.zeros(2), light=False) == {}
    W = jnp.linspace(0.1, 0.9, 9).reshape(3, 3)
    fn = lambda x: jnp.tanh(W @ jnp.sin(x)) * jnp.exp(-x)
    x = jnp.linspace(-1.0, 2.0, 3)
    light, default = jitcache.program_jit(fn, light=True)(x), jitcache.program_jit(fn)(x)
    assert compile_options_seen == [
        {"xla_backend_optimization_level": 1},
        {},
    ]  # two programs: the key holds the options
    np.testing.assert_allclose(light, default, rtol=1e-14, atol=0)
    # jax_disable_most_optimizations (level 0) stands: a light program asks for nothing then, and the same program
    # compiled before in another build is not served (the build is part of the key).
    jax.config.update("jax_disable_most_optimizations", True)
    assert jitcache.compiler_options(jnp.zeros(2)) == {}
    np.testing.assert_allclose(jitcache.program_jit(fn)(x), default, rtol=1e-14, atol=0)
    assert len(compile_options_seen) == 3


def test_sample_compiles_a_parallel_program_light_and_the_sequential_chain_in_the_default_build(monkeypatch):
    asked = []

    class Asked(Exception):
        pass

    def spy(fn, **options):  # records what the chains' program asks for, and stops the call before it compiles
        asked.append(options.get("light", False))
        raise Asked

    monkeypatch.setattr(api, "program_jit", spy)
    ex = eight_schools()
    kw = dict(model_args=ex.model_args, model_kwargs=ex.model_kwargs, num_warmup=20, num_chains=1, progress_bar=False)
    kw["rng_key"] = jax.random.key(0)
    for parallel in (True, False):
        with pytest.raises(Asked):
            parmcmc.sample(ex.model, num_samples=64, parallel=parallel, **kw)
    assert asked == [True, False]  # the chains' programs: the parallel solve's light, the sequential chain's not
