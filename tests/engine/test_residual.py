"""The iteration's guard and the check of its result (engine/residual.py), against the rule written out plainly.

The guard keeps the exact prefix, pins the state after it and rejects a non-finite tail; it also returns the check
of its result, computed from one pass over the step's arrays and last iteration's check instead of reading the
result again. These tests hold it to the rule row by row, on iterates built to reach every branch.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.engine.residual import first_false, first_false_and_max, guard, per_step_check, row_check
from parmcmc.engine.solvers import Linearization

W, D, ATOL, RTOL = 8, 3, 1e-6, 1e-6


def reference_guard(Xw, fx, A, new, nfx, nA, rel, q, first):
    """The guard's rule, one row at a time (docs/convergence.md)."""
    fx_next = np.concatenate([nfx[1:], np.zeros_like(nfx[:1])])
    bad = [not (np.all(np.isfinite(new[t])) and np.all(np.isfinite(fx_next[t]))) for t in range(W)]
    j = bad.index(True) if any(bad) else W
    if first:  # iteration -1: keep the guess, take the step's linearisation whole
        return Xw.copy(), nfx.copy(), nA.copy()
    out, fxo, Ao = Xw.copy(), fx.copy(), A.copy()
    out[rel] = fx[rel]  # the pinned state: its exact value
    fresh = [rel < t < j for t in range(W)]
    for t in range(W):
        if fresh[t]:
            out[t] = new[t]
        if (t > 0 and fresh[t - 1]) or t == q:  # f (and A) at out[t-1] is the step's
            fxo[t], Ao[t] = nfx[t], nA[t]
    return out, fxo, Ao


def reference_rows(X, fx):
    err = np.abs(X - fx)
    finite = np.isfinite(err)
    with np.errstate(invalid="ignore"):
        ok = np.all(finite & (err <= ATOL + RTOL * np.abs(X)), axis=1)
    return ok, np.max(np.where(finite, err, np.inf), axis=1)


def iterates(rng, rel, bad_row, bad_where, close_rows, dtype):
    """A converged old iterate up to rel, a step whose rows are close (within tolerance) or not, a non-finite entry."""
    Xw = rng.normal(size=(W, D)).astype(dtype)
    fx = Xw + rng.normal(size=(W, D)).astype(dtype) * 1e-3
    fx[:rel] = Xw[:rel]  # the prefix before rel is converged
    fx[rel] = Xw[rel] + 0.5  # rel itself is not
    new = rng.normal(size=(W, D)).astype(dtype)
    nfx = new + rng.normal(size=(W, D)).astype(dtype) * 1e-3
    for t in close_rows:
        nfx[t] = new[t]
        fx[t] = Xw[t]
    if bad_row is not None:
        (new if bad_where == "state" else nfx)[bad_row, 1] = np.nan if bad_row % 2 else np.inf
    if bad_where == "old f":  # f at the old iterate not finite at the pinned row (the loop never gets there)
        fx[rel, 0] = np.nan
    A, nA = rng.normal(size=(W, D)).astype(dtype), rng.normal(size=(W, D)).astype(dtype)
    return Xw, fx, A, new, nfx, nA


@jax.jit
def _guard(Xw, fx, A, new, nfx, nA, rel, q, pinned, last, first, rows):
    return guard(Xw, Linearization(fx, A), new, Linearization(nfx, nA), rel, q, pinned, last, first, ATOL, RTOL, rows)


CASES = list(
    itertools.product(
        [0, 3, W - 1],  # rel: the first unconverged row (W - 1: the step's pinned successor is the last row, q == rel)
        [None, 0, 2, 4, 5, W - 1],  # the first non-finite row of the step, before, at or after rel
        ["state", "f", "old f"],
        [False, True],  # iteration -1
    )
)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_guard_follows_its_rule_and_its_check_is_the_check_of_its_result(dtype):
    rng = np.random.default_rng(7)
    for rel, bad_row, bad_where, first in CASES:
        close = [t for t in range(W) if rng.random() < 0.5]
        Xw, fx, A, new, nfx, nA = iterates(rng, rel, bad_row, bad_where, close, dtype)
        q = min(rel + 1, W - 1)
        pinned = fx[rel] if q == rel + 1 else Xw[q - 1]
        rows = reference_rows(Xw, fx)
        args = (Xw, fx, A, new, nfx, nA, rel, q, pinned, fx[-1], first, rows)
        out, lin, (ok, err) = jax.tree_util.tree_map(np.asarray, _guard(*args))
        want_out, want_fx, want_A = reference_guard(Xw, fx, A, new, nfx, nA, rel, q, first)
        case = (rel, bad_row, bad_where, first)
        assert np.array_equal(out, want_out, equal_nan=True), case
        assert np.array_equal(lin.fx, want_fx, equal_nan=True) and np.array_equal(lin.A, want_A, equal_nan=True), case
        want_ok, want_err = reference_rows(want_out, want_fx)
        assert np.array_equal(ok, want_ok) and np.array_equal(err, want_err), case
        # and without the rows (a sliding window checks its result itself): the same guard
        out2, lin2, none = _guard(*args[:-1], None)
        assert none is None and np.array_equal(np.asarray(out2), out, equal_nan=True)
        assert np.array_equal(np.asarray(lin2.fx), want_fx, equal_nan=True)


def test_the_check_counts_nan_and_inf_as_unconverged_and_its_residual_as_inf():
    X = jnp.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [5.0, 5.0]])
    fx = jnp.array([[1.0, 2.0], [1.0, jnp.nan], [jnp.inf, 2.0], [0.0, 0.0], [5.0, 7.5]])
    ok, err = row_check(X, fx, 0.0, 0.1)
    assert ok.tolist() == [True, False, False, True, False]
    assert err.tolist() == [0.0, np.inf, np.inf, 0.0, 2.5]
    rows = jnp.array([0, 3, 4])
    ok, residual = per_step_check(X[rows], fx[rows], 0.0, 0.1)
    assert ok.tolist() == [True, True, False] and float(residual) == 2.5
    # the maxima are taken over bit patterns: the largest finite value comes back exactly, and above 1 and inf
    huge = jnp.array([[np.finfo(np.float32).max, 1.0]], jnp.float32)
    assert float(row_check(jnp.zeros((1, 2), jnp.float32), huge, 0.0, 0.0)[1][0]) == np.finfo(np.float32).max
    assert float(row_check(jnp.zeros((1, 2)), jnp.array([[1e300, np.inf]]), 0.0, 0.0)[1][0]) == np.inf


def test_first_false_finds_the_first_unconverged_row_and_the_largest_value():
    mask = jnp.array([True, True, False, True, False])
    assert int(first_false(mask)) == 2 and int(first_false(jnp.ones(5, bool))) == 5
    j, top = first_false_and_max(mask, jnp.array([0.5, 3.0, 1.0, np.inf, 2.0]))
    assert int(j) == 2 and float(top) == np.inf
