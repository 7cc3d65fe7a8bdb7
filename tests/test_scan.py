import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.engine import affine_scan, affine_scan_sequential, picard_scan


@pytest.mark.parametrize("dtype, tol", [(jnp.float64, 1e-12), (jnp.float32, 2e-5)])
@pytest.mark.parametrize("dense", [False, True])
def test_affine_scan_equals_sequential_loop(dense, dtype, tol):
    T, D = 257, 5  # T not a power of two on purpose
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    shape = (T, D, D) if dense else (T, D)
    A = (jax.random.uniform(k1, shape, minval=-1.0, maxval=1.0) / (D if dense else 1)).astype(dtype)
    b = jax.random.normal(k2, (T, D)).astype(dtype)
    x0 = jax.random.normal(k3, (D,)).astype(dtype)
    # A plain NumPy loop, independent of JAX.
    An, bn, x = np.asarray(A), np.asarray(b), np.asarray(x0)
    expected = []
    for t in range(T):
        x = (An[t] @ x if dense else An[t] * x) + bn[t]
        expected.append(x)
    expected = jnp.asarray(np.stack(expected))
    got = jax.jit(affine_scan)(A, b, x0)
    assert got.dtype == dtype
    assert jnp.max(jnp.abs(got - expected)) <= tol * (1 + jnp.max(jnp.abs(expected)))
    assert jnp.max(jnp.abs(jax.jit(affine_scan_sequential)(A, b, x0) - expected)) <= tol * (1 + jnp.max(jnp.abs(expected)))


def test_picard_scan_is_identity_recurrence():
    b = jax.random.normal(jax.random.key(1), (100, 3))
    x0 = jnp.arange(3.0)
    expected = affine_scan_sequential(jnp.ones((100, 3)), b, x0)
    assert jnp.max(jnp.abs(picard_scan(b, x0) - expected)) < 1e-12


def test_affine_scan_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="A must be"):
        affine_scan(jnp.ones((10, 3, 2)), jnp.ones((10, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match="x0"):
        affine_scan(jnp.ones((10, 3)), jnp.ones((10, 3)), jnp.ones(4))
