"""Samplers are immutable pytrees: array settings are leaves, so one compiled program serves every
step size and mass matrix of the same shapes, and per-chain settings vmap directly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.samplers import HMC, MALA


def logdensity_fn(x):
    return -0.5 * jnp.sum(x**2 * jnp.arange(1.0, 4.0))


X0 = jnp.array([0.3, -0.2, 0.5])


def _traced_step():
    traces = []

    @jax.jit
    def step(sampler, x, noise_t):
        traces.append(1)
        return sampler.step(x, noise_t)

    return step, traces


@pytest.mark.parametrize("kind", ["mala", "hmc"])
def test_samplers_differing_in_leaf_values_compile_once(kind):
    if kind == "mala":
        a = MALA(logdensity_fn, 0.1).bind(X0)
        b = MALA(logdensity_fn, 0.2).bind(X0)  # bound separately: equal layouts, one program
    else:
        a = HMC(logdensity_fn, 0.1, 4, jnp.array([1.0, 2.0, 3.0])).bind(X0)
        b = HMC(logdensity_fn, 0.2, 4, jnp.array([0.5, 0.6, 0.7])).bind(X0)
    noise = jax.tree.map(lambda v: v[0], a.noise(jax.random.key(0), 1))
    step, traces = _traced_step()
    xa, xb = step(a, X0, noise), step(b, X0, noise)
    assert len(traces) == 1
    # ... and the values are not served stale: each equals its own sampler's step.
    np.testing.assert_allclose(xa, a.step(X0, noise), rtol=1e-12)
    np.testing.assert_allclose(xb, b.step(X0, noise), rtol=1e-12)
    assert not np.allclose(xa, xb)
    # a changed static setting (the number of leapfrog steps, the gate) compiles anew
    c = a.replace(num_integration_steps=5) if kind == "hmc" else a.replace(gate="smooth")
    step(c, X0, noise)
    assert len(traces) == 2


def test_per_chain_settings_vmap_directly():
    sampler = HMC(logdensity_fn, 0.1, 4).bind(X0)
    eps = jnp.array([0.1, 0.2, 0.3])
    imm = jnp.array([[1.0, 1, 1], [0.5, 1, 2], [2.0, 1, 0.5]])
    batched = sampler.per_chain(step_size=eps, inverse_mass_matrix=imm)
    assert batched.step_size.shape == (3,) and batched.inverse_mass_matrix.shape == (3, 3)
    noise = jax.tree.map(lambda v: v[0], sampler.noise(jax.random.key(1), 1))
    xs = jax.vmap(lambda s: s.step(X0, noise))(batched)
    for c in range(3):
        one = sampler.replace(step_size=eps[c], inverse_mass_matrix=imm[c])
        np.testing.assert_allclose(xs[c], one.step(X0, noise), rtol=1e-12)


def test_immutable_and_replace_returns_a_checked_copy():
    sampler = MALA(logdensity_fn, 0.1)
    with pytest.raises(AttributeError, match="immutable"):
        sampler.step_size = 0.2  # pyright: ignore[reportAttributeAccessIssue] (the assignment under test)
    bound = sampler.bind(X0)
    assert not sampler.is_bound and bound.is_bound
    smaller = bound.replace(step_size=0.05)
    assert float(bound.step_size) == 0.1 and float(smaller.step_size) == 0.05 and smaller.is_bound
    with pytest.raises(ValueError, match="step_size must be positive"):
        bound.replace(step_size=-1.0)
    with pytest.raises(TypeError, match="unknown setting"):
        bound.replace(stepsize=0.1)
    leaves = jax.tree.leaves(bound)
    assert [jnp.shape(v) for v in leaves] == [()]  # the step size is the only array setting of MALA
