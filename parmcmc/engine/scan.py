"""Affine recurrences x_t = A_t x_{t-1} + b_t, and associative scans in general, in low depth.

Every parallel Newton method of the engine ends in one of these: the linearised chain is a linear
dynamical system, solved exactly with the associative operator

    (A_i, b_i) o (A_j, b_j) = (A_j A_i, A_j b_i + b_j)      (i before j)

A_t may be diagonal (shape (T, D), elementwise products) or dense (shape (T, D, D)).

Two parallel forms are kept:

- `affine_scan_associative`: `jax.lax.associative_scan`, O(log T) depth. XLA unrolls it into ~2 log2 T
  levels of slicing and concatenation, so its compile time grows with T (docs/performance_scan.md).
- `affine_scan_blocked`: two levels. The T steps are cut into n blocks of B; (1) each block's composed
  map is computed by a sequential `lax.scan` over its B steps, vmapped over the blocks; (2) a sequential
  scan over the n block maps gives the state entering each block; (3) each block re-runs its B steps
  from that state (vmapped again). Its loop bodies compile once whatever T is, and step (3) is the
  sequential recurrence itself, so the result is the sequential chain up to the rounding of the
  block-entry states. It is also the shape of a scan split over devices (engine/sharding.py).

`blocked_associative_scan` is the same two-level pattern for any associative operator (the Kalman
filter and smoother elements of kalman.py).

The scans here know nothing of devices: `parmcmc.engine.sharding.affine_scan`, the scan the solvers call,
runs the blocked form, or its time-sharded twin when a solve runs with `mesh=`.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from parmcmc.arguments import check_int

# Steps per block of the blocked scans. Compile time does not depend on it; 128 balances the B
# sequential steps inside blocks against the T / B steps across them up to T ~ 100k.
DEFAULT_BLOCK = 128


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


def _check(name: str, A: jax.Array, b: jax.Array, x0: jax.Array) -> bool:
    """Validates the shapes; True when A is dense."""
    if b.ndim != 2 or x0.shape != b.shape[1:]:
        raise ValueError(f"{name}: b must be (T, D) and x0 (D,); got b {b.shape}, x0 {x0.shape}.")
    dense = A.ndim == 3
    if A.shape != (b.shape + b.shape[1:] if dense else b.shape):
        raise ValueError(f"{name}: A must be (T, D) or (T, D, D) matching b {b.shape}; got {A.shape}.")
    return dense


def _apply(A: jax.Array, x: jax.Array) -> jax.Array:
    """A x for one step: A is (D, D) dense or (D,) diagonal (also batched over leading axes)."""
    return jnp.einsum("...ij,...j->...i", A, x) if A.ndim == x.ndim + 1 else A * x


def affine_scan_associative(A: jax.Array, b: jax.Array, x0: jax.Array) -> jax.Array:
    """The same recurrence with `jax.lax.associative_scan` (O(log T) depth; compile time grows with T)."""
    dense = _check("affine_scan_associative", A, b, x0)
    # Fold x0 into the first element so that the cumulative offsets are the states themselves.
    b = b.at[0].set(_apply(A[0], x0) + b[0])
    compose = _compose_dense if dense else _compose_diag
    return jax.lax.associative_scan(compose, AffineElement(A, b)).b


def _pad_steps(A: jax.Array, b: jax.Array, length: int, identity: bool = False):
    """Append zero steps, or identity steps, up to `length`.

    Zero steps (A = 0, b = 0) follow every real step, so they change none of its states, and a zero map
    cannot overflow. Identity steps (A = I, b = 0) also keep the composed map of the steps before them, as
    the shards of a sharded scan need.
    """
    pad = length - b.shape[0]
    if pad == 0:
        return A, b
    zeros = lambda a: jnp.zeros((pad, *a.shape[1:]), a.dtype)
    if identity:
        one = jnp.eye(b.shape[1], dtype=A.dtype) if A.ndim == 3 else jnp.ones(b.shape[1:], A.dtype)
        pad_A = jnp.broadcast_to(one, (pad, *A.shape[1:]))
    else:
        pad_A = zeros(A)
    return jnp.concatenate([A, pad_A]), jnp.concatenate([b, zeros(b)])


def block_map(A: jax.Array, b: jax.Array) -> AffineElement:
    """The composed map x -> P x + c of the steps A[0..B), b[0..B) of one block, sequentially."""
    eye = jnp.eye(b.shape[-1], dtype=b.dtype) if A.ndim == 3 else jnp.ones_like(b[0])

    def step(Pc, Ab):
        (P, c), (A_t, b_t) = Pc, Ab
        P = A_t @ P if A_t.ndim == 2 else A_t * P
        return (P, _apply(A_t, c) + b_t), None

    return AffineElement(*jax.lax.scan(step, (eye, jnp.zeros_like(b[0])), (A, b))[0])


def block_states(A: jax.Array, b: jax.Array, x_in: jax.Array) -> jax.Array:
    """The states of one block entered from x_in: the sequential recurrence."""

    def step(x, Ab):
        x = _apply(Ab[0], x) + Ab[1]
        return x, x

    return jax.lax.scan(step, x_in, (A, b))[1]


def entry_states(maps: AffineElement, x0: jax.Array) -> jax.Array:
    """The state entering each of n consecutive maps (n, ...), the first entered from x0: (n, D)."""

    def step(x, m):
        return _apply(m.A, x) + m.b, x

    return jax.lax.scan(step, x0, maps)[1]


def affine_scan_blocked(A: jax.Array, b: jax.Array, x0: jax.Array, block: int = DEFAULT_BLOCK) -> jax.Array:
    """The same recurrence in two levels (module docstring): blocks of `block` steps, sequential inside.

    Any T works: the last block is padded with zero steps. Depth ~2 block + T / block; work ~2x the
    sequential loop's (dense: one D x D product per step for the block maps).
    """
    _check("affine_scan_blocked", A, b, x0)
    check_int("block", block, call="affine_scan_blocked")
    T, D = b.shape
    B = min(block, T)
    n = -(-T // B)
    A, b = _pad_steps(A, b, n * B)
    A, b = A.reshape((n, B, *A.shape[1:])), b.reshape(n, B, D)
    x_in = entry_states(jax.vmap(block_map)(A, b), x0)
    return jax.vmap(block_states)(A, b, x_in).reshape(n * B, D)[:T]


def picard_scan(b: jax.Array, x0: jax.Array) -> jax.Array:
    """The affine recurrence with A_t = I: a cumulative sum, x_t = x0 + sum_{s<=t} b_s."""
    return x0 + jnp.cumsum(b, axis=0)


def affine_scan_sequential(A: jax.Array, b: jax.Array, x0: jax.Array) -> jax.Array:
    """The same recurrence, one step at a time (the reference the parallel scans are tested against)."""
    return block_states(A, b, x0)


# ----------------------------------------------------------------------------------------------
# Any associative operator
# ----------------------------------------------------------------------------------------------


def _one(op: Callable) -> Callable:
    """`op` (written for stacks of elements with a leading axis) applied to two single elements."""
    lift = lambda e: jax.tree_util.tree_map(lambda a: a[None], e)
    return lambda a, b: jax.tree_util.tree_map(lambda r: r[0], op(lift(a), lift(b)))


def _take(tree, i):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def inclusive_scan_sequential(op: Callable, elems):
    """op-prefixes e_0, e_0 o e_1, ... of a stack of elements, one after the other (no identity needed)."""
    op1 = _one(op)
    first = _take(elems, 0)
    rest = jax.tree_util.tree_map(lambda a: a[1:], elems)

    def step(acc, e):
        acc = op1(acc, e)
        return acc, acc

    out = jax.lax.scan(step, first, rest)[1]
    return jax.tree_util.tree_map(lambda f, r: jnp.concatenate([f[None], r]), first, out)


def pad_with_edge(elems, length: int, front: bool = False):
    """Repeats the last element up to `length` (the first one, before them, when front=True).

    Padding AFTER the real elements of a forward scan (before them for a reverse one) changes none of their
    prefixes, and copies of a valid element keep every operation finite.
    """

    def pad(a):
        extra = length - a.shape[0]
        if extra == 0:
            return a
        edge = jnp.broadcast_to(a[:1] if front else a[-1:], (extra, *a.shape[1:]))
        return jnp.concatenate([edge, a] if front else [a, edge])

    return jax.tree_util.tree_map(pad, elems)


def blocked_associative_scan(op: Callable, elems, *, reverse: bool = False, block: int = DEFAULT_BLOCK):
    """`jax.lax.associative_scan(op, elems, reverse=reverse)` in two levels, with bodies compiled once.

    op(earlier, later) must act on stacks of elements (leading axis), as associative_scan's does.
    Prefixes inside blocks of `block` elements are computed sequentially (vmapped over blocks); then one
    sequential pass over the blocks combines each block's prefixes with the total of the blocks before it.
    reverse=True scans from the last element, as associative_scan does.
    """
    if reverse:
        flip = lambda tree: jax.tree_util.tree_map(lambda a: jnp.flip(a, 0), tree)
        return flip(blocked_associative_scan(op, flip(elems), block=block))
    T = jax.tree_util.tree_leaves(elems)[0].shape[0]
    B = min(block, T)
    n = -(-T // B)
    padded = pad_with_edge(elems, n * B)
    blocks = jax.tree_util.tree_map(lambda a: a.reshape((n, B, *a.shape[1:])), padded)
    local = jax.vmap(lambda e: inclusive_scan_sequential(op, e))(blocks)  # (n, B, ...)
    if n > 1:
        # One sequential pass over the blocks 1..n-1 carries the prefix entering each block and combines
        # it with all B of the block's own prefixes at once; the last of them enters the next block. (The
        # block totals scan and the fix-up in one loop: op is compiled twice per scan, not three times.)
        def fix(prefix, block_prefixes):
            fixed = op(jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (B, *a.shape)), prefix), block_prefixes)
            return _take(fixed, B - 1), fixed

        first = _take(jax.tree_util.tree_map(lambda a: a[0], local), B - 1)
        _, rest = jax.lax.scan(fix, first, jax.tree_util.tree_map(lambda a: a[1:], local))
        local = jax.tree_util.tree_map(lambda f, r: jnp.concatenate([f[:1], r]), local, rest)
    return jax.tree_util.tree_map(lambda a: a.reshape((n * B, *a.shape[2:]))[:T], local)
