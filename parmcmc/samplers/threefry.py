"""JAX's own threefry draws, written as straight-line code that compiles in a fraction of the time.

On the CPU, JAX lowers every ``threefry2x32`` hash as a rolled loop of five iterations, which XLA
compiles as a separate loop kernel: BlackJAX's noise schedule (split, split again, normal, uniform) costs
four of them and about a second of compilation in every program that draws a chain's noise. Here the same
20 rounds are plain elementwise operations, one fused kernel per level of the key tree, with an
optimisation barrier between the levels (without it XLA fuses the chained levels into one kernel whose
compilation grows faster than its size).

The draws are bit for bit JAX's, for typed and raw keys, under JAX's default generator (threefry2x32 with
``jax_threefry_partitionable``, the default since JAX 0.5) and float32/float64: ``applies`` says when, and
the callers fall back to ``jax.random`` otherwise.

``split``, ``fold_in``, ``uniform`` and ``normal`` are jitted functions: called outside a program (a test, an
eager noise schedule) each is one compiled program per shape instead of some twenty-five eager operations
compiled one by one; inside a program they are inlined as any nested jit.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["applies", "fold_in", "normal", "split", "uniform"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def applies(keys, dtype=None) -> bool:
    """Whether ``keys`` are threefry2x32 keys that JAX splits and draws from as this module does."""
    if not jax.config.jax_threefry_partitionable:
        return False
    if dtype is not None and jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        return False
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(keys)) == "threefry2x32"
    return keys.dtype == jnp.uint32 and keys.shape[-1:] == (2,) and jax.config.jax_default_prng_impl == "threefry2x32"


def _data(keys):
    """(key data (..., 2) uint32, a function that turns key data back into keys of the caller's kind)."""
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(keys)
        return jax.random.key_data(keys), lambda data: jax.random.wrap_key_data(data, impl=impl)
    return keys, lambda data: data


def _rounds(k1, k2, x1, x2):
    """Threefry-2x32's 20 rounds of the counters (x1, x2) under the key (k1, k2): numpy or JAX uint32, broadcasting."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r))) ^ x1  # rotate left (logical shifts: unsigned)
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _hash(k1, k2, x1, x2):
    """The hash in a compiled program, elementwise: one kernel per level (module docstring)."""
    return lax.optimization_barrier(_rounds(k1, k2, x1, x2))


def _counted(data, n: int):
    """The hash of the counters 0..n-1 under every key of ``data`` (..., 2): two (..., n) uint32 arrays.

    JAX's partitionable threefry counts with a 64-bit iota split in two words; below 2**32 the high word is 0.
    """
    lo = lax.broadcasted_iota(jnp.uint32, (*data.shape[:-1], n), data.ndim - 1)
    return _hash(data[..., 0:1], data[..., 1:2], jnp.zeros_like(lo), lo)


@partial(jax.jit, static_argnames="num")
def split(keys, num: int):
    """``jax.vmap(lambda k: jax.random.split(k, num))`` over any leading axes of ``keys``: shape (..., num)."""
    data, wrap = _data(keys)
    b1, b2 = _counted(data, num)
    return wrap(jnp.stack([b1, b2], axis=-1))


@partial(jax.jit, static_argnames="data")
def fold_in(keys, data: int):
    """``jax.random.fold_in(key, data)`` per key, for a Python int ``0 <= data < 2**32``: the hash of (0, data)."""
    data_, wrap = _data(keys)
    x2 = jnp.full(data_.shape[:-1], np.uint32(data))
    b1, b2 = _hash(data_[..., 0], data_[..., 1], jnp.zeros_like(x2), x2)
    return wrap(jnp.stack([b1, b2], axis=-1))


def _bits(keys, n: int, dtype):
    """``jax.random.bits(key, (n,), uint of dtype's width)`` per key: shape (..., n)."""
    data, _ = _data(keys)
    b1, b2 = _counted(data, n)
    if jnp.dtype(dtype).itemsize == 8:
        return lax.shift_left(b1.astype(jnp.uint64), np.uint64(32)) | b2.astype(jnp.uint64)
    return b1 ^ b2


def _from_bits(bits, dtype, minval, maxval):
    """JAX's conversion of random bits to a uniform float in [minval, maxval): random mantissa, exponent 0."""
    dtype = jnp.dtype(dtype)
    uint = bits.dtype
    nbits, nmant = 8 * dtype.itemsize, jnp.finfo(dtype).nmant
    mantissa = lax.shift_right_logical(bits, np.array(nbits - nmant, uint))
    floats = lax.bitcast_convert_type(mantissa | np.array(1.0, dtype).view(uint), dtype) - np.array(1.0, dtype)
    lo, hi = np.array(minval, dtype), np.array(maxval, dtype)
    return lax.max(lo, floats * (hi - lo) + lo)


@partial(jax.jit, static_argnames=("n", "dtype"))
def uniform(keys, n: int, dtype):
    """``jax.random.uniform(key, (n,), dtype)`` per key: shape (..., n)."""
    return _from_bits(_bits(keys, n, dtype), dtype, 0.0, 1.0)


@partial(jax.jit, static_argnames=("n", "dtype"))
def normal(keys, n: int, dtype):
    """``jax.random.normal(key, (n,), dtype)`` per key: shape (..., n)."""
    dtype = jnp.dtype(dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = _from_bits(_bits(keys, n, dtype), dtype, lo, 1.0)
    return lax.mul(np.array(np.sqrt(2), dtype), lax.erf_inv(u))


# The same draws computed on the host with numpy, for the few fixed numbers a program uses as constants (no hash
# in the compiled program, no compilation to get them).


def host_bits(seed: int, shape, nbits: int) -> np.ndarray:
    """``jax.random.bits(jax.random.key(seed), shape, uint{nbits})`` (nbits 32 or 64) on the host, for seed < 2**32."""
    lo = np.arange(int(np.prod(shape)), dtype=np.uint32)
    b1, b2 = _rounds(np.uint32(0), np.uint32(seed), np.zeros_like(lo), lo)
    bits = (b1.astype(np.uint64) << np.uint64(32)) | b2.astype(np.uint64) if nbits == 64 else b1 ^ b2
    return bits.reshape(shape)


def host_normal(seed: int, shape, dtype) -> np.ndarray:
    """``jax.random.normal(jax.random.key(seed), shape, dtype)`` on the host (float32/float64; to an ulp or two).

    The bits and the uniform are JAX's exactly; the inverse error function is SciPy's, so the last bit may differ.
    """
    from scipy.special import erfinv

    dtype = np.dtype(dtype)
    nbits, nmant = 8 * dtype.itemsize, np.finfo(dtype).nmant
    uint = np.uint64 if nbits == 64 else np.uint32
    bits = host_bits(seed, shape, nbits).astype(uint)
    mantissa = (bits >> uint(nbits - nmant)) | np.array(1.0, dtype).view(uint)
    floats = mantissa.view(dtype) - np.array(1.0, dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = np.maximum(lo, floats * (np.array(1.0, dtype) - lo) + lo)
    return (np.sqrt(2.0) * erfinv(u.astype(np.float64))).astype(dtype)


def host_coin(seed: int, shape) -> np.ndarray:
    """``jax.random.bernoulli(jax.random.key(seed), 0.5, shape)`` on the host, exactly (uniform < 0.5: top bit 0)."""
    nbits = 64 if jax.config.jax_enable_x64 else 32  # p = 0.5 is a Python float: float64 under x64
    bits = host_bits(seed, shape, nbits)
    return (bits >> (np.uint64(63) if nbits == 64 else np.uint32(31))) == 0
