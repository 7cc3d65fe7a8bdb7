"""Parallel Kalman filter and RTS smoother for the ELK (Levenberg–Marquardt) step.

The damped step for the linearised chain minimises, over x_1..x_W with x_0 given,

    Σ_t ‖x_t − A_t x_{t−1} − b_t‖²  +  λ Σ_t ‖x_t − y_t‖²

which is the posterior mean of the linear-Gaussian state-space model

    x_t = A_t x_{t−1} + b_t + w_t,   w_t ~ N(0, I)        (dynamics, x_0 known exactly)
    y_t = x_t + v_t,                 v_t ~ N(0, I / λ)    (observations = current iterate)

The exact minimiser is the SMOOTHED (RTS) mean; the FILTERED mean (conditioned on y_1..y_t only) is the
cheaper variant used in published ELK code. Both are computed here in O(log W) depth with
`jax.lax.associative_scan`, following Särkkä & García-Fernández (2021), "Temporal parallelization of
Bayesian smoothers", IEEE TAC 66(1): filtering elements (A, b, C, η, J) and smoothing elements (E, g, L).

With unit dynamics noise, identity observation matrix and observation noise I/λ, the per-step Kalman
gain is the scalar κ = λ / (1 + λ), so no matrix is inverted to build the elements; matrices are only
inverted when two elements are combined.

A_t may be DENSE, shape (W, D, D), or DIAGONAL, shape (W, D). In the diagonal case the D coordinates
decouple and every quantity is a scalar per coordinate (a vectorised scalar filter): O(W·D) memory.

λ = 0 is the undamped (DEER) step x_t = A_t x_{t−1} + b_t. Every formula below is finite at λ = 0
(κ = 0, the observations drop out), but the state covariances then grow like the products of A_t and
can overflow on expanding systems, turning the means into NaN. `lm_step` therefore solves λ = 0
exactly with the affine recurrence instead (a `lax.cond`, so λ may be traced). As λ → 0⁺ the step
tends to the DEER step continuously.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve, solve_triangular

from parmcmc.engine.scan import blocked_associative_scan
from parmcmc.engine.sharding import affine_scan

__all__ = [
    "FilterElement",
    "GaussianMarginals",
    "SmoothElement",
    "damped_step",
    "lm_step",
    "parallel_filter",
    "parallel_smoother",
]


class FilterElement(NamedTuple):
    """One filtering element for the segment of time steps i..j (a single step when i = j).

    It encodes p(x_j | y_{i..j}, x_{i−1}) = N(A x_{i−1} + b, C) and, in information form, the
    likelihood p(y_{i..j} | x_{i−1}) ∝ exp(−½ x_{i−1}ᵀ J x_{i−1} + ηᵀ x_{i−1}).
    Shapes are for a stack of W elements; "dense | diagonal" per field.
    """

    A: jax.Array  # (W, D, D) | (W, D)
    b: jax.Array  # (W, D)
    C: jax.Array  # (W, D, D) | (W, D)
    eta: jax.Array  # (W, D)
    J: jax.Array  # (W, D, D) | (W, D)


class SmoothElement(NamedTuple):
    """One smoothing element for steps i..j: p(x_i | y_{1..j}, x_{j+1}) = N(E x_{j+1} + g, L)."""

    E: jax.Array  # (W, D, D) | (W, D)
    g: jax.Array  # (W, D)
    L: jax.Array  # (W, D, D) | (W, D)


class GaussianMarginals(NamedTuple):
    """Per-time Gaussian marginals: filtered or smoothed means and covariances of x_1..x_W."""

    mean: jax.Array  # (W, D)
    cov: jax.Array  # (W, D, D) | (W, D) (variances when A is diagonal)


def _is_diagonal(A, b):
    if A.ndim == b.ndim:
        return True
    if A.ndim == b.ndim + 1 and A.shape[-1] == A.shape[-2]:
        return False
    raise ValueError(
        f"kalman: A must have shape (W, D) (diagonal) or (W, D, D) (dense) to match b of shape "
        f"{b.shape}; got A of shape {A.shape}."
    )


def _check_inputs(A, b, x0, y, lam):
    diagonal = _is_diagonal(A, b)
    if A.shape[: b.ndim] != b.shape or y.shape != b.shape or x0.shape != b.shape[1:]:
        raise ValueError(
            "kalman: shapes disagree: expected A (W, D[, D]), b (W, D), x0 (D,), y (W, D); got "
            f"A {A.shape}, b {b.shape}, x0 {x0.shape}, y {y.shape}."
        )
    if jnp.ndim(lam) != 0:
        raise ValueError(f"kalman: the damping lam must be a scalar; got shape {jnp.shape(lam)}.")
    try:  # a concrete λ can be checked now; a traced one cannot
        negative = bool(np.asarray(lam) < 0)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        negative = False
    if negative:
        raise ValueError(f"kalman: the damping lam must be >= 0; got {lam}.")
    return diagonal


def _sym(M):
    return 0.5 * (M + jnp.swapaxes(M, -1, -2))


# ----------------------------------------------------------------------------------------------
# Filtering
# ----------------------------------------------------------------------------------------------


def _filter_elements(A, b, x0, y, lam, diagonal):
    """Single-step elements. x_0 is known, so step 1 is folded into an element with A = 0."""
    kappa = lam / (1.0 + lam)  # Kalman gain (scalar: H = I, Q = I, R = I/λ)
    omega = 1.0 / (1.0 + lam)  # 1 − κ, also the posterior variance of one step
    if diagonal:
        b = b.at[0].add(A[0] * x0)
        A = A.at[0].set(0.0)
        resid = y - b
        C = jnp.broadcast_to(omega, b.shape).astype(b.dtype)
        return FilterElement(A=omega * A, b=omega * b + kappa * y, C=C, eta=kappa * A * resid, J=kappa * A * A)
    b = b.at[0].add(A[0] @ x0)
    A = A.at[0].set(0.0)
    resid = y - b
    eye = jnp.eye(b.shape[-1], dtype=b.dtype)
    C = jnp.broadcast_to(omega * eye, A.shape).astype(b.dtype)
    return FilterElement(
        A=omega * A,
        b=omega * b + kappa * y,
        C=C,
        eta=kappa * jnp.einsum("wij,wi->wj", A, resid),
        J=kappa * jnp.einsum("wki,wkj->wij", A, A),
    )


def _combine_filter_diag(e1, e2):
    """e1 covers earlier steps, e2 the later ones; every field is elementwise."""
    denom = 1.0 + e1.C * e2.J
    A = e2.A * e1.A / denom
    b = e2.A * (e1.b + e1.C * e2.eta) / denom + e2.b
    C = e2.A * e2.A * e1.C / denom + e2.C
    eta = e1.A * (e2.eta - e2.J * e1.b) / denom + e1.eta
    J = e1.A * e1.A * e2.J / denom + e1.J
    return FilterElement(A, b, C, eta, J)


def _combine_filter_dense_one(e1, e2):
    # Särkkä & García-Fernández's combination needs M⁻¹ with M = I + C1 J2. C1 ⪰ I / (1 + λ) is
    # positive definite (every element's C is at least its last step's), so with C1 = L Lᵀ the
    # push-through identity gives M⁻¹ = I − K J2 with K = L S⁻¹ Lᵀ, S = I + Lᵀ J2 L ⪰ I: two
    # Cholesky factorisations and one triangular solve, no pivoting. M⁻¹ C1 = K and M⁻ᵀ = I − J2 K.
    # (An LU factorisation of M computes the same to rounding; its pivoting compiles ~2x slower.)
    eye = jnp.eye(e1.b.shape[-1], dtype=e1.b.dtype)
    L = jnp.linalg.cholesky(e1.C)
    R = jnp.linalg.cholesky(eye + L.T @ e2.J @ L)
    W = solve_triangular(R, L.T, lower=True)  # R⁻¹ Lᵀ, so that K = Wᵀ W
    K = W.T @ W
    KJ = K @ e2.J
    v = e2.eta - e2.J @ e1.b
    A = e2.A @ (e1.A - KJ @ e1.A)
    b = e2.A @ (e1.b + K @ v) + e2.b
    C = _sym(e2.A @ K @ e2.A.T + e2.C)
    eta = e1.A.T @ (v - KJ.T @ v) + e1.eta
    J = _sym(e1.A.T @ (e2.J - e2.J @ KJ) @ e1.A + e1.J)
    return FilterElement(A, b, C, eta, J)


_combine_filter_dense = jax.vmap(_combine_filter_dense_one)


def associative_scan(op, elems, reverse=False):
    """The scan the filter and smoother run.

    Two-level (scan.blocked_associative_scan), split over the devices of the "time" axis inside
    `sharding.use_mesh(mesh)`.
    """
    from parmcmc.engine import sharding

    mesh = sharding.current_mesh()
    if mesh is not None and sharding.time_size(mesh) > 1:
        return sharding.sharded_associative_scan(op, elems, mesh, reverse=reverse)
    return blocked_associative_scan(op, elems, reverse=reverse)


def parallel_filter(A, b, x0, y, lam, *, scan=None):
    """Filtered means and covariances of x_1..x_W, p(x_t | y_1..y_t), in low depth.

    A: (W, D, D) dense or (W, D) diagonal; b, y: (W, D); x0: (D,); lam: scalar ≥ 0.
    scan: an implementation of `jax.lax.associative_scan(op, elems, reverse=...)`; default
    `associative_scan` above (two-level, or time-sharded under a mesh).
    """
    diagonal = _check_inputs(A, b, x0, y, lam)
    lam = jnp.asarray(lam, b.dtype)
    elems = _filter_elements(A, b, x0, y, lam, diagonal)
    op = _combine_filter_diag if diagonal else _combine_filter_dense
    out = (scan or associative_scan)(op, elems)
    return GaussianMarginals(mean=out.b, cov=out.C)


# ----------------------------------------------------------------------------------------------
# Smoothing
# ----------------------------------------------------------------------------------------------


def _smooth_elements(A, b, filtered, diagonal):
    """Element t < W uses the dynamics into t+1; the last element is the filtered marginal."""
    m, P = filtered.mean[:-1], filtered.cov[:-1]
    F, c = A[1:], b[1:]
    if diagonal:
        E = P * F / (F * P * F + 1.0)
        g = m - E * (F * m + c)
        L = P - E * F * P
        zero = jnp.zeros_like(filtered.mean[-1:])
    else:

        def one(P, F, m, c):
            eye = jnp.eye(m.shape[-1], dtype=m.dtype)
            S = cho_factor(F @ P @ F.T + eye)  # predicted covariance of x_{t+1}, ⪰ I
            E = cho_solve(S, F @ P).T  # P Fᵀ S⁻¹
            return E, m - E @ (F @ m + c), _sym(P - E @ F @ P)

        E, g, L = jax.vmap(one)(P, F, m, c)
        zero = jnp.zeros_like(filtered.cov[-1:])
    return SmoothElement(
        E=jnp.concatenate([E, zero]),
        g=jnp.concatenate([g, filtered.mean[-1:]]),
        L=jnp.concatenate([L, filtered.cov[-1:]]),
    )


def _combine_smooth_diag(later, earlier):
    return SmoothElement(
        E=earlier.E * later.E,
        g=earlier.E * later.g + earlier.g,
        L=earlier.E * earlier.E * later.L + earlier.L,
    )


def _combine_smooth_dense(later, earlier):
    return SmoothElement(
        E=earlier.E @ later.E,
        g=jnp.einsum("wij,wj->wi", earlier.E, later.g) + earlier.g,
        L=_sym(earlier.E @ later.L @ jnp.swapaxes(earlier.E, -1, -2) + earlier.L),
    )


def parallel_smoother(A, b, x0, y, lam, *, scan=None):
    """Smoothed (RTS) means and covariances of x_1..x_W, p(x_t | y_1..y_W), in O(log W) depth.

    The smoothed mean is the exact minimiser of the Levenberg–Marquardt objective in the module
    docstring. Arguments as for `parallel_filter` (`scan` serves both passes). Unused covariances are
    removed by XLA under jit.
    """
    diagonal = _check_inputs(A, b, x0, y, lam)
    filtered = parallel_filter(A, b, x0, y, lam, scan=scan)
    elems = _smooth_elements(A, b, filtered, diagonal)
    op = _combine_smooth_diag if diagonal else _combine_smooth_dense
    # With reverse=True the scan runs from t = W down; the operator's first argument is the
    # accumulated later segment.
    out = (scan or associative_scan)(op, elems, reverse=True)
    return GaussianMarginals(mean=out.g, cov=out.L)


# ----------------------------------------------------------------------------------------------
# The step
# ----------------------------------------------------------------------------------------------


def lm_step(A, b, x0, y, lam, *, smoother=True):
    """The damped (ELK) step for the linear dynamical system x_t = A_t x_{t−1} + b_t.

    Minimises Σ_t ‖x_t − A_t x_{t−1} − b_t‖² + λ Σ_t ‖x_t − y_t‖² over x_1..x_W with x_0 = x0.

    Parameters
    ----------
    A
        (W, D, D) dense Jacobians, or (W, D) their diagonals (quasi-ELK).
    b
        (W, D) offsets.
    x0
        (D,) the fixed state before the window.
    y
        (W, D) the current iterate.
    lam
        Scalar λ ≥ 0 (may be traced). λ = 0 returns the undamped step exactly.
    smoother
        True for the smoothed mean (the exact minimiser); False for the filtered mean (the published ELK
        variant; not the minimiser, but costs one scan instead of two).

    Returns
    -------
    jax.Array
        The new iterate, shape (W, D).
    """
    _check_inputs(A, b, x0, y, lam)
    lam = jnp.asarray(lam, b.dtype)
    return jax.lax.cond(
        lam == 0,
        lambda: affine_scan(A, b, x0),
        lambda: damped_step(A, b, x0, y, lam, smoother=smoother),
    )


def damped_step(A, b, x0, y, lam, *, smoother=True):
    """`lm_step` for a λ known to be > 0 (ELK's, kept in [LAM_MIN, LAM_MAX]).

    The Kalman pass alone, without the λ = 0 branch, which would compile a second scan into every ELK iteration.
    """
    solve = parallel_smoother if smoother else parallel_filter
    return solve(A, b, x0, y, lam).mean
