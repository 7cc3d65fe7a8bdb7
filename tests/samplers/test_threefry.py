"""The straight-line threefry draws are JAX's own, bit for bit, and the noise falls back where they are not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.samplers import noise, threefry


def reference(rng_key, num_steps, size, dtype):
    keys = jax.random.split(rng_key, num_steps)
    pairs = jax.vmap(jax.random.split)(keys)
    normal = jax.vmap(lambda k: jax.random.normal(k, (size,), dtype))(pairs[:, 0])
    uniform = jax.vmap(lambda k: jax.random.uniform(k, (), dtype))(pairs[:, 1])
    return jax.random.key_data(pairs) if pairs.dtype != jnp.uint32 else pairs, normal, uniform


def ours(rng_key, num_steps, size, dtype):
    k1, k2 = noise.step_keys(rng_key, num_steps)
    pairs = jnp.stack([jax.random.key_data(k1), jax.random.key_data(k2)], axis=1) if k1.dtype != jnp.uint32 else None
    if pairs is None:
        pairs = jnp.stack([k1, k2], axis=1)
    return pairs, noise.standard_normal(k1, size, dtype), noise.uniform(k2, dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("raw", [False, True])
def test_the_noise_is_jax_random_bit_for_bit(dtype, raw):
    for seed in (0, 7, 2**31 + 5):
        key = jax.random.PRNGKey(seed) if raw else jax.random.key(seed)
        assert threefry.applies(key, dtype)
        for got, want in zip(ours(key, 33, 5, dtype), reference(key, 33, 5, dtype), strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_batched_keys_under_vmap_and_jit_give_the_same_draws():
    keys = jax.random.split(jax.random.key(3), 4)
    got = jax.jit(jax.vmap(lambda k: ours(k, 17, 3, jnp.float32)))(keys)
    want = jax.vmap(lambda k: reference(k, 17, 3, jnp.float32))(keys)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_other_generators_and_dtypes_fall_back_to_jax_random():
    rbg = jax.random.key(0, impl="rbg")
    assert not threefry.applies(rbg)
    for got, want in zip(ours(rbg, 9, 2, jnp.float32)[1:], reference(rbg, 9, 2, jnp.float32)[1:], strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert not threefry.applies(jax.random.key(0), jnp.float16)
    np.testing.assert_array_equal(
        np.asarray(noise.uniform(jax.random.split(jax.random.key(1), 4), jnp.float16)),
        np.asarray(jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float16))(jax.random.split(jax.random.key(1), 4))),
    )


def test_the_unpartitionable_threefry_falls_back_to_jax_random():
    key, before = jax.random.key(4), jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", False)
    try:
        assert not threefry.applies(key)
        for got, want in zip(ours(key, 9, 3, jnp.float32), reference(key, 9, 3, jnp.float32), strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    finally:
        jax.config.update("jax_threefry_partitionable", before)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_the_host_draws_are_jax_randoms(dtype):
    for seed, shape in ((0, (8, 5)), (1, (7,)), (3, (2, 3))):
        want = np.asarray(jax.random.normal(jax.random.key(seed), shape, dtype))
        got = threefry.host_normal(seed, shape, dtype)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(want.dtype).eps, atol=0)  # SciPy's erfinv: an ulp
        coin = np.asarray(jax.random.bernoulli(jax.random.key(seed), 0.5, shape))
        np.testing.assert_array_equal(threefry.host_coin(seed, shape), coin)


@pytest.mark.parametrize("raw", [False, True])
def test_side_keys_are_jax_randoms_fold_in_and_split_bit_for_bit_and_compile_no_hash_loop(raw):
    kd = lambda k: np.asarray(k if k.dtype == jnp.uint32 else jax.random.key_data(k))
    for seed in (0, 7, 2**31 + 5):
        key = jax.random.PRNGKey(seed) if raw else jax.random.key(seed)
        for stream in (0, 1, noise.JITTER_STREAM, noise.TRAJECTORY_STREAM, 2**32 - 1):
            np.testing.assert_array_equal(kd(threefry.fold_in(key, stream)), kd(jax.random.fold_in(key, stream)))
            want = jax.random.split(jax.random.fold_in(key, stream), 9)
            np.testing.assert_array_equal(kd(noise.side_keys(key, 9, stream)), kd(want))
    # jax.random's hashes lower as rolled loops (one compiled loop kernel each); the straight-line hash has none.
    program = jax.jit(lambda k: noise.side_keys(k, 9, noise.JITTER_STREAM)).lower(jax.random.key(0)).as_text()
    assert "while" not in program
