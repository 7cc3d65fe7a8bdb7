import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.engine import affine_scan, affine_scan_sequential, picard_scan
from parmcmc.engine.scan import (
    AffineElement,
    _compose_dense,
    _compose_diag,
    affine_scan_associative,
    affine_scan_blocked,
    blocked_associative_scan,
)


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
    for scan in (affine_scan, affine_scan_associative):
        got = jax.jit(scan)(A, b, x0)
        assert got.dtype == dtype
        assert jnp.max(jnp.abs(got - expected)) <= tol * (1 + jnp.max(jnp.abs(expected)))
    assert jnp.max(jnp.abs(jax.jit(affine_scan_sequential)(A, b, x0) - expected)) <= tol * (
        1 + jnp.max(jnp.abs(expected))
    )


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


# The blocked (two-level) scans: equal to the sequential loop / associative_scan for every T vs the block.
BLOCKED_T = [1, 7, 16, 33, 100]  # T < B, T = B, T = 2B + 1, T a multiple of B... with block=16 below


def _problem(T, D, dense, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    A = jax.random.uniform(k1, (T, D, D) if dense else (T, D), minval=-1.0, maxval=1.0) / (D if dense else 1)
    return A, jax.random.normal(k2, (T, D)), jax.random.normal(k3, (D,))


@pytest.mark.parametrize("dense", [False, True])
def test_blocked_affine_scan_equals_sequential(dense):
    blocked = jax.jit(affine_scan_blocked, static_argnames="block")
    sequential = jax.jit(affine_scan_sequential)
    for T in BLOCKED_T:
        A, b, x0 = _problem(T, 3, dense)
        expected = sequential(A, b, x0)
        got = blocked(A, b, x0, block=16)
        assert got.shape == (T, 3)
        assert jnp.max(jnp.abs(got - expected)) <= 1e-12, T


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dense", [False, True])
def test_blocked_associative_scan_equals_associative_scan(dense, reverse):
    op = _compose_dense if dense else _compose_diag
    for T in BLOCKED_T:
        elems = AffineElement(*_problem(T, 3, dense, seed=1)[:2])
        got = jax.jit(lambda e: blocked_associative_scan(op, e, reverse=reverse, block=16))(elems)
        want = jax.lax.associative_scan(op, elems, reverse=reverse)
        for g, w in zip(got, want, strict=True):
            assert jnp.max(jnp.abs(g - w)) <= 1e-12, T


def test_the_solvers_scan_is_the_blocked_scan():
    A, b, x0 = _problem(300, 2, dense=False)
    assert jnp.array_equal(jax.jit(affine_scan)(A, b, x0), jax.jit(affine_scan_blocked)(A, b, x0))


def test_blocked_scan_rejects_a_bad_block():
    with pytest.raises(ValueError, match="block must be a positive integer; got 0"):
        affine_scan_blocked(jnp.ones((4, 2)), jnp.ones((4, 2)), jnp.ones(2), block=0)
