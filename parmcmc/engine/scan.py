"""Affine recurrences x_t = A_t x_{t-1} + b_t solved in O(log T) depth.

Every parallel Newton method of the engine ends in one of these: the linearised chain is a linear
dynamical system, and `jax.lax.associative_scan` solves it exactly with the operator

    (A_i, b_i) o (A_j, b_j) = (A_j A_i, A_j b_i + b_j)      (i before j)

A_t may be diagonal (shape (T, D), elementwise products) or dense (shape (T, D, D)).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class AffineElement(NamedTuple):
    """One element of the scan: the map x -> A x + b.

    A: (T, D) for diagonal maps or (T, D, D) for dense ones.
    b: (T, D).
    """

    A: jax.Array
    b: jax.Array


def _compose_diag(earlier: AffineElement, later: AffineElement) -> AffineElement:
    return AffineElement(later.A * earlier.A, later.A * earlier.b + later.b)


def _compose_dense(earlier: AffineElement, later: AffineElement) -> AffineElement:
    A = jnp.einsum("...ij,...jk->...ik", later.A, earlier.A)
    b = jnp.einsum("...ij,...j->...i", later.A, earlier.b) + later.b
    return AffineElement(A, b)


def affine_scan(A: jax.Array, b: jax.Array, x0: jax.Array) -> jax.Array:
    """All states of x_t = A_t x_{t-1} + b_t for t = 1..T, from a fixed x0.

    A: (T, D) (diagonal) or (T, D, D) (dense); b: (T, D); x0: (D,). Returns (T, D), the state after
    each step (x0 itself is not included).
    """
    if b.ndim != 2 or x0.shape != b.shape[1:]:
        raise ValueError(f"affine_scan: b must be (T, D) and x0 (D,); got b {b.shape}, x0 {x0.shape}.")
    dense = A.ndim == 3
    if A.shape != (b.shape + b.shape[1:] if dense else b.shape):
        raise ValueError(f"affine_scan: A must be (T, D) or (T, D, D) matching b {b.shape}; got {A.shape}.")
    # Fold x0 into the first element so that the cumulative offsets are the states themselves.
    first_b = (A[0] @ x0 if dense else A[0] * x0) + b[0]
    b = b.at[0].set(first_b)
    compose = _compose_dense if dense else _compose_diag
    return jax.lax.associative_scan(compose, AffineElement(A, b)).b


def picard_scan(b: jax.Array, x0: jax.Array) -> jax.Array:
    """The affine recurrence with A_t = I: a cumulative sum, x_t = x0 + sum_{s<=t} b_s."""
    return x0 + jnp.cumsum(b, axis=0)


def affine_scan_sequential(A: jax.Array, b: jax.Array, x0: jax.Array) -> jax.Array:
    """The same recurrence, one step at a time (the reference the parallel scan is tested against)."""
    dense = A.ndim == 3

    def step(x, Ab):
        A_t, b_t = Ab
        x = (A_t @ x if dense else A_t * x) + b_t
        return x, x

    return jax.lax.scan(step, x0, (A, b))[1]
