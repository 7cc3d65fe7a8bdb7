"""The parallel Kalman filter / RTS smoother against their serial twins and the LM normal equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.engine import affine_scan, kalman

# Jitted once per shape: eager associative scans dispatch hundreds of small ops.
lm_step = jax.jit(kalman.lm_step, static_argnames="smoother")
parallel_filter = jax.jit(kalman.parallel_filter)
parallel_smoother = jax.jit(kalman.parallel_smoother)
affine_scan = jax.jit(affine_scan)

# ---------------------------------------------------------------------------------------------
# Serial references (dense A only; a diagonal A is tested through jnp.diag of it)
# ---------------------------------------------------------------------------------------------


def sequential_filter(A, b, x0, y, lam):
    """Textbook Kalman filter, one step at a time: Q = I, H = I, R = I/λ, x_0 = x0 exactly."""
    D = x0.shape[0]
    eye = jnp.eye(D)

    def step(carry, inp):
        m, P = carry
        F, c, obs = inp
        m_pred, P_pred = F @ m + c, F @ P @ F.T + eye
        gain = lam * P_pred @ jnp.linalg.inv(lam * P_pred + eye)  # P⁻ (P⁻ + I/λ)⁻¹
        m_new = m_pred + gain @ (obs - m_pred)
        P_new = (eye - gain) @ P_pred
        return (m_new, P_new), (m_new, P_new, m_pred, P_pred)

    _, out = jax.lax.scan(step, (x0, jnp.zeros((D, D))), (A, b, y))
    return out


def sequential_smoother(A, b, x0, y, lam):
    """Rauch–Tung–Striebel backward pass over the sequential filter."""
    m, P, m_pred, P_pred = sequential_filter(A, b, x0, y, lam)

    def step(carry, inp):
        ms_next, Ps_next = carry
        m_t, P_t, F_next, mp_next, Pp_next = inp
        G = P_t @ F_next.T @ jnp.linalg.inv(Pp_next)
        ms = m_t + G @ (ms_next - mp_next)
        Ps = P_t + G @ (Ps_next - Pp_next) @ G.T
        return (ms, Ps), (ms, Ps)

    inputs = (m[:-1], P[:-1], A[1:], m_pred[1:], P_pred[1:])
    _, (ms, Ps) = jax.lax.scan(step, (m[-1], P[-1]), inputs, reverse=True)
    return jnp.concatenate([ms, m[-1:]]), jnp.concatenate([Ps, P[-1:]])


def normal_equations_solution(A, b, x0, y, lam):
    """argmin Σ‖x_t − A_t x_{t−1} − b_t‖² + λΣ‖x_t − y_t‖², from the dense (W·D)² system."""
    A, b, x0, y = map(np.asarray, (A, b, x0, y))
    W, D = b.shape
    M = np.eye(W * D)  # residual r = M x − c, M block lower-bidiagonal with −A_t below
    for t in range(1, W):
        M[t * D : (t + 1) * D, (t - 1) * D : t * D] = -A[t]
    c = b.copy()
    c[0] += A[0] @ x0
    lhs = M.T @ M + lam * np.eye(W * D)
    rhs = M.T @ c.reshape(-1) + lam * y.reshape(-1)
    return np.linalg.solve(lhs, rhs).reshape(W, D)


# ---------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------


def problem(seed, W, D, diagonal, scale=0.9):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    if diagonal:
        A = scale * jax.random.uniform(k1, (W, D), minval=-1.2, maxval=1.2)
    else:
        A = scale * jax.random.normal(k1, (W, D, D)) / jnp.sqrt(D)
    b = jax.random.normal(k2, (W, D))
    x0 = jax.random.normal(k3, (D,))
    y = 3.0 * jax.random.normal(k4, (W, D))
    return A, b, x0, y


def dense(A):
    return jax.vmap(jnp.diag)(A) if A.ndim == 2 else A


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


# Two shapes only, so that each jitted function compiles once per (shape, variant): compiling the
# dense scans dominates this file's run time. lm_step runs at SMALL, the parallel marginals at LONG.
SMALL, LONG = (9, 3), (32, 3)
DIAG = pytest.mark.parametrize("diagonal", [True, False], ids=["diag", "dense"])
SMOOTHER = pytest.mark.parametrize("smoother", [True, False], ids=["smoother", "filter"])


@DIAG
@pytest.mark.parametrize("lam", [1e-3, 0.3, 1.0, 25.0])
def test_smoother_step_solves_lm_normal_equations(diagonal, lam):
    A, b, x0, y = problem(0, *SMALL, diagonal)
    x = lm_step(A, b, x0, y, lam, smoother=True)
    want = normal_equations_solution(dense(A), b, x0, y, lam)
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-8 * np.abs(want).max())


@DIAG
def test_filter_step_is_not_the_minimiser(diagonal):
    A, b, x0, y = problem(1, *SMALL, diagonal)
    exact = normal_equations_solution(dense(A), b, x0, y, 1.0)
    filtered = lm_step(A, b, x0, y, 1.0, smoother=False)
    smoothed = lm_step(A, b, x0, y, 1.0, smoother=True)
    assert rel_err(filtered, exact) > 1e-2
    # They agree at the last time step, where the filter has seen every observation.
    np.testing.assert_allclose(filtered[-1], smoothed[-1], atol=1e-10)


@DIAG
@pytest.mark.parametrize("lam", [1e-2, 2.0])
def test_parallel_filter_and_smoother_match_sequential(diagonal, lam):
    A, b, x0, y = problem(2, *LONG, diagonal, scale=1.3)
    m, P, _, _ = sequential_filter(dense(A), b, x0, y, lam)
    ms, Ps = sequential_smoother(dense(A), b, x0, y, lam)
    filt, smooth = parallel_filter(A, b, x0, y, lam), parallel_smoother(A, b, x0, y, lam)
    cov = jax.vmap(jnp.diag) if diagonal else (lambda c: c)
    np.testing.assert_allclose(filt.mean, m, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(filt.cov, cov(P), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(smooth.mean, ms, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(smooth.cov, cov(Ps), rtol=1e-9, atol=1e-10)


def test_diagonal_equals_dense_of_diagonal():
    A, b, x0, y = problem(3, *LONG, diagonal=True)
    for solve in (parallel_filter, parallel_smoother):
        diag, full = solve(A, b, x0, y, 0.7), solve(dense(A), b, x0, y, 0.7)
        np.testing.assert_allclose(diag.mean, full.mean, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(diag.cov, jax.vmap(jnp.diag)(full.cov), rtol=1e-11, atol=1e-12)


@DIAG
@SMOOTHER
def test_small_lambda_is_the_deer_step(diagonal, smoother):
    # Expanding dynamics (|A| up to 2.4): the states grow, and λ must still vanish.
    A, b, x0, y = problem(4, *SMALL, diagonal, scale=2.0)
    deer = affine_scan(A, b, x0)  # tested against a serial loop in test_scan.py
    err = {lam: rel_err(lm_step(A, b, x0, y, lam, smoother=smoother), deer) for lam in (1e-10, 1e-12)}
    assert err[1e-10] < 1e-6
    assert err[1e-12] < 2e-2 * err[1e-10] + 1e-12  # the gap is O(λ): a true limit, not noise
    np.testing.assert_allclose(lm_step(A, b, x0, y, 0.0, smoother=smoother), deer, rtol=1e-12)


def test_lambda_zero_is_exact_where_the_covariances_overflow():
    # A = 1e40 over 9 steps: the λ = 0 state covariance reaches 1e720 = inf and the Kalman means
    # turn NaN, although the states themselves (all zero here) are finite. lm_step must not care.
    A, b, x0, y = jnp.full(SMALL, 1e40), jnp.zeros(SMALL), jnp.zeros(SMALL[1]), jnp.ones(SMALL)
    assert not bool(jnp.all(jnp.isfinite(parallel_smoother(A, b, x0, y, 0.0).mean)))
    np.testing.assert_array_equal(lm_step(A, b, x0, y, 0.0), jnp.zeros(SMALL))
    # Any λ > 0 bounds the covariances by 1/λ, so a small positive λ is finite too.
    assert bool(jnp.all(jnp.isfinite(lm_step(A, b, x0, y, 1e-10))))


def test_large_lambda_stays_at_the_iterate():
    A, b, x0, y = problem(5, *SMALL, diagonal=False)
    assert rel_err(lm_step(A, b, x0, y, 1e8), y) < 1e-6


def test_lambda_may_be_traced_and_vmapped():
    A, b, x0, y = problem(6, *SMALL, diagonal=False)
    lams = jnp.array([0.0, 0.5, 3.0])
    batched = jax.jit(jax.vmap(kalman.lm_step, in_axes=(None, None, None, None, 0)))
    for lam, x in zip(lams, batched(A, b, x0, y, lams), strict=True):
        np.testing.assert_allclose(x, lm_step(A, b, x0, y, lam), rtol=1e-12, atol=1e-14)


def test_bad_input_is_rejected():
    A, b, x0, y = problem(7, *SMALL, diagonal=False)
    lm_step = kalman.lm_step  # the checks run at trace time
    with pytest.raises(ValueError, match="lam must be >= 0"):
        lm_step(A, b, x0, y, -1.0)
    with pytest.raises(ValueError, match="scalar"):
        lm_step(A, b, x0, y, jnp.ones(3))
    with pytest.raises(ValueError, match="shape"):
        lm_step(A[:, :2], b, x0, y, 1.0)
