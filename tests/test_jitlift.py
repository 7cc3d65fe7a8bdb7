"""Constants a nested jit keeps are lifted to arguments: new data compiles nothing, a changed value is never stale."""

import jax
import jax.numpy as jnp
import numpy as np

from parmcmc import jitcache, jitlift


def _program(data, scale=1.0):
    """A jit inside scan, while and cond bodies, each closing over `data` (and a Python float)."""

    def f(x):
        g = jax.jit(lambda y: scale * y * data)
        s = jax.lax.scan(lambda c, _: (c + g(c).sum(), None), x, None, length=2)[0]
        w = jax.lax.while_loop(lambda c: c < jax.jit(lambda: data.sum())() + 10, lambda c: c + data[0] + 1, s)
        return jax.lax.cond(w > 0, lambda: jax.jit(lambda: w * data)(), lambda: w + data)

    return f


def test_new_data_of_the_same_shapes_compiles_nothing_and_gives_its_own_answer():
    first = jnp.arange(3.0)
    assert jitlift.has_nested_consts(jax.make_jaxpr(_program(first))(1.0))
    np.testing.assert_allclose(jitcache.program_jit(_program(first))(1.0), _program(first)(1.0))
    second = jnp.arange(3.0) + 5.0
    before = jitcache.stats().compiles
    np.testing.assert_allclose(jitcache.program_jit(_program(second))(1.0), _program(second)(1.0))
    assert jitcache.stats().compiles == before


def test_a_changed_python_value_in_a_nested_jit_is_a_new_program():
    data = jnp.arange(3.0)
    np.testing.assert_allclose(jitcache.program_jit(_program(data, 2.0))(1.0), _program(data, 2.0)(1.0))
    before = jitcache.stats().compiles
    np.testing.assert_allclose(jitcache.program_jit(_program(data, 3.0))(1.0), _program(data, 3.0)(1.0))
    assert jitcache.stats().compiles == before + 1


def test_a_jit_inside_a_primitive_it_does_not_rebuild_is_left_nested_and_keyed_by_value():
    def make(data):
        return lambda x: jax.checkpoint(lambda y: jax.jit(lambda z: z * data)(y).sum())(x)

    closed = jax.make_jaxpr(make(jnp.arange(3.0)))(1.0)
    assert jitlift.has_nested_consts(closed) and jitlift.lift(closed, [jnp.asarray(1.0)]) is None
    for data in (jnp.arange(3.0), jnp.arange(3.0) + 1.0):  # correct either way (the second compiles again)
        np.testing.assert_allclose(jitcache.program_jit(make(data))(2.0), make(data)(2.0))


def test_a_vmapped_while_loop_inside_a_nested_jit_is_lifted_with_its_batched_predicate():
    """vmap of a while_loop whose predicate differs per lane leaves a while with a batched predicate in the
    jaxpr (default HMC's jittered number of leapfrog steps, vmapped over chains); the lift must rebuild it."""

    def make(data):
        step = jax.jit(lambda c: c * 2.0 + data[0])  # a jit holding `data` inside the while's body
        inner = jax.jit(lambda x: jax.lax.while_loop(lambda c: c < data.sum(), step, x))
        return lambda xs: jax.lax.scan(lambda c, _: (jax.vmap(inner)(c), None), xs, None, length=2)[0]

    xs = jnp.array([0.5, 3.0, 20.0])
    closed = jax.make_jaxpr(make(jnp.arange(4.0)))(xs)
    assert jitlift.has_nested_consts(closed) and jitlift.lift(closed, [xs]) is not None
    np.testing.assert_allclose(jitcache.program_jit(make(jnp.arange(4.0)))(xs), make(jnp.arange(4.0))(xs))
    before = jitcache.stats().compiles
    np.testing.assert_allclose(jitcache.program_jit(make(jnp.arange(4.0) + 1.0))(xs), make(jnp.arange(4.0) + 1.0)(xs))
    assert jitcache.stats().compiles == before
