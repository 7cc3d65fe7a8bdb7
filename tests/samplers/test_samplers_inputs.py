"""Bad input is refused early, with a message that names the problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.samplers import HMC, MALA


def logdensity_fn(x):
    return -0.5 * jnp.sum(x**2)


X0 = jnp.zeros(3)


@pytest.mark.parametrize("cls", [MALA, lambda f, e, **kw: HMC(f, e, 5, **kw)], ids=["MALA", "HMC"])
@pytest.mark.parametrize(
    "step_size, error, match",
    [
        (0.0, ValueError, "step_size must be positive"),
        (-0.1, ValueError, "step_size must be positive"),
        (float("nan"), ValueError, "step_size must be positive and finite"),
        (float("inf"), ValueError, "step_size must be positive and finite"),
        ("0.1", TypeError, "step_size must be a positive real scalar"),
        (jnp.ones(2), TypeError, "step_size must be a positive real scalar"),
        (True, TypeError, "step_size"),
    ],
)
def test_bad_step_size(cls, step_size, error, match):
    with pytest.raises(error, match=match):
        cls(logdensity_fn, step_size)


def test_good_scalar_step_sizes_are_accepted():
    for step_size in (0.1, 1, np.float32(0.1), jnp.asarray(0.1)):
        MALA(logdensity_fn, step_size).bind(X0)


@pytest.mark.parametrize(
    "num, error, match",
    [
        (0, ValueError, "num_integration_steps must be a positive integer; got 0"),
        (-3, ValueError, "num_integration_steps must be a positive integer; got -3"),
        (2.5, TypeError, "num_integration_steps must be a positive integer; got 2.5 of type float"),
        (True, TypeError, "num_integration_steps must be a positive integer; got True of type bool"),
    ],
)
def test_bad_num_integration_steps(num, error, match):
    with pytest.raises(error, match=match):
        HMC(logdensity_fn, 0.1, num)


@pytest.mark.parametrize(
    "imm, error, match",
    [
        (jnp.array([1.0, 0.0, 2.0]), ValueError, r"positive entries; entries at flat indices \[1\]"),
        (jnp.array([1.0, -1.0, 2.0]), ValueError, "positive entries"),
        (jnp.array([1.0, jnp.nan, 2.0]), ValueError, "non-finite"),
        (jnp.ones((3, 3, 3)), TypeError, "1-D .* or 2-D"),
        (jnp.ones((3, 2)), ValueError, "must be square"),
        (jnp.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]), ValueError, "symmetric"),
        (jnp.array([[1.0, 2, 0], [2, 1, 0], [0, 0, 1]]), ValueError, "positive definite"),
    ],
)
def test_bad_inverse_mass_matrix(imm, error, match):
    with pytest.raises(error, match=match):
        HMC(logdensity_fn, 0.1, 5, imm)


@pytest.mark.parametrize("imm", [jnp.ones(4), jnp.eye(2)])
def test_inverse_mass_matrix_of_the_wrong_size(imm):
    sampler = HMC(logdensity_fn, 0.1, 5, imm)  # the size is unknown until bind
    with pytest.raises(ValueError, match=r"has size .* but the flattened position has size 3"):
        sampler.bind(X0)


@pytest.mark.parametrize("cls", [MALA, lambda f, e: HMC(f, e, 5)], ids=["MALA", "HMC"])
def test_initial_position_must_have_finite_density_and_gradient(cls):
    def bounded(x):  # log density of an Exponential: -inf at x <= 0
        return jnp.where(jnp.all(x > 0), -jnp.sum(x), -jnp.inf)

    with pytest.raises(ValueError, match="log density at the initial position is -inf"):
        cls(bounded, 0.1).bind(-jnp.ones(3))

    def kinked(x):  # finite value, infinite gradient at 0
        return -jnp.sum(jnp.sqrt(jnp.abs(x)))

    with pytest.raises(ValueError, match=r"gradient .* not finite .*flat indices \[0, 1, 2\]"):
        cls(kinked, 0.1).bind(X0)

    with pytest.raises(ValueError, match="must return a real floating scalar, got shape \\(3,\\)"):
        cls(lambda x: -0.5 * x**2, 0.1).bind(X0)


def test_bad_positions_and_unbound_use():
    with pytest.raises(TypeError, match="floating-point"):
        MALA(logdensity_fn, 0.1).bind(jnp.arange(3))
    with pytest.raises(ValueError, match="empty"):
        MALA(logdensity_fn, 0.1).bind({})
    unbound = MALA(logdensity_fn, 0.1)
    with pytest.raises(RuntimeError, match=r"not bound .* sampler.bind\(initial_position\)"):
        unbound.noise(jax.random.key(0), 10)
    bound = unbound.bind(X0)
    assert not unbound.is_bound and bound.is_bound and bound.dim == 3
    with pytest.raises(ValueError, match="flat size 3"):
        bound.ravel(jnp.zeros(4))


@pytest.mark.parametrize("num_steps, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), (False, TypeError)])
def test_bad_num_steps(num_steps, error):
    with pytest.raises(error, match="num_steps"):
        MALA(logdensity_fn, 0.1).bind(X0).noise(jax.random.key(0), num_steps)


def test_bad_gate_and_callable():
    with pytest.raises(ValueError, match=r"gate must be one of \('hard', 'smooth'\)"):
        MALA(logdensity_fn, 0.1, gate="soft")
    with pytest.raises(ValueError, match="gate_temperature must be positive"):
        MALA(logdensity_fn, 0.1, gate="smooth", gate_temperature=0.0)
    with pytest.raises(TypeError, match="logdensity_fn must be callable"):
        MALA(np.zeros(3), 0.1)


def test_step_is_jittable_and_vmappable_over_chains():
    sampler = HMC(logdensity_fn, 0.3, 5, jnp.array([1.0, 2.0, 0.5])).bind(X0)
    keys = jax.random.split(jax.random.key(0), 4)
    inputs = jax.vmap(lambda k: sampler.noise(k, 3))(keys)  # (chains, T, ...)
    first = jax.tree.map(lambda a: a[:, 0], inputs)
    x = jax.jit(jax.vmap(sampler.step))(jnp.ones((4, 3)), first)
    assert x.shape == (4, 3) and x.dtype == jnp.float64
