"""What a solve checks at every step: the step map at each state's predecessor, and whether each step holds.

Each step of a solution must satisfy x_t = f(x_{t-1}, u_t) to the tolerance atol + rtol |x_t|, with every entry
finite; the residual is the largest |x_t - f(x_{t-1}, u_t)|, infinite where anything is not finite.

The iteration's guard (keep the exact prefix, pin the state after it, reject a non-finite tail) and the check of
its result read the same arrays, the new states and f at them: `guard` tests both in one pass over them, a single
reduction per row with several outputs, and takes the check of the rows it keeps from the previous iteration (on a
CPU each pass over T x D is a kernel of its own, a launch plus a sweep through memory).
"""

import functools

import jax
import jax.numpy as jnp

from parmcmc.engine.solvers import shift

__all__ = ["at", "evaluate_all", "first_false", "first_false_and_max", "guard", "per_step_check", "row_check"]


def at(tree, t):
    """The leaves of `tree` at index t of their leading axis."""
    return jax.tree_util.tree_map(lambda a: a[t], tree)


def evaluate_all(fn, X, x0, inputs, chunk):
    """fn at every state's predecessor, in chunks to bound the memory of a windowed solve."""
    return jax.lax.map(lambda xu: fn(*xu), (shift(X, x0), inputs), batch_size=chunk)


_INT = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}


def _row_reduce(all_of, max_of):
    """Per row (axis 1 of (W, D) arrays): the conjunction of each of `all_of`, the maximum of each of `max_of`.

    `max_of` holds values >= 0 or +inf (never NaN), whose bit patterns order as their values do. Everything is
    reduced as integers (the flags as one bitwise or, the maxima of the bit patterns) in one variadic reduction:
    XLA fuses it with the producers of its operands into one pass, and integer reductions vectorise where a
    float maximum (whose NaN rules forbid reordering) runs as scalar code.
    """
    flags = functools.reduce(jnp.bitwise_or, [jnp.where(a, 0, 1 << i) for i, a in enumerate(all_of)])
    bits = [jax.lax.bitcast_convert_type(m, _INT[m.dtype.itemsize]) for m in max_of]
    init = (jnp.array(0, flags.dtype), *(jnp.array(0, b.dtype) for b in bits))
    top = lambda a, b: (a[0] | b[0], *(jnp.maximum(x, y) for x, y in zip(a[1:], b[1:], strict=True)))
    flags, *bits = jax.lax.reduce((flags, *bits), init, top, (1,))
    maxima = [jax.lax.bitcast_convert_type(b, m.dtype) for b, m in zip(bits, max_of, strict=True)]
    return (*((flags & (1 << i)) == 0 for i in range(len(all_of))), *maxima)


def _entries(X, fx, atol, rtol):
    """Per entry: finite and within tolerance; |x - f| with inf where it is not finite.

    |x - f| is finite exactly where both are (or where their difference overflows, which is no convergence
    either), so one test per entry decides both.
    """
    err = jnp.abs(X - fx)
    finite = jnp.isfinite(err)
    return finite & (err <= atol + rtol * jnp.abs(X)), jnp.where(finite, err, jnp.inf)


def row_check(X, fx, atol, rtol):
    """Per step (row): whether it is finite and within tolerance, and its largest |x - f| (inf if not finite)."""
    ok, err = _entries(X, fx, atol, rtol)
    return _row_reduce([ok], [err])


def per_step_check(X, fx, atol, rtol):
    """Which steps are finite and within tolerance, and the residual (inf where anything is not finite)."""
    ok, err = row_check(X, fx, atol, rtol)
    return ok, jnp.max(err).astype(X.dtype)


def first_false(mask):
    """The first index along axis 0 where `mask` is False, or its length if none.

    One variadic reduction whose outputs are coupled (the key twice, the second chosen by the first): XLA's CPU
    backend splits a plain reduction over a long axis into a tree of partial reductions, one kernel each, but runs
    a variadic one as a single pass (and would drop an unused output that the others do not depend on).
    """
    n = mask.shape[0]
    key = jnp.where(mask, n, jnp.arange(n))
    smaller = lambda a, b: (jnp.minimum(a[0], b[0]), jnp.where(b[0] < a[0], b[1], a[1]))
    return jax.lax.reduce((key, key), (jnp.array(n), jnp.array(n)), smaller, (0,))[1]


def first_false_and_max(mask, values):
    """`first_false(mask)` and the maximum of `values`, in one variadic reduction (one pass)."""
    n = mask.shape[0]
    key = jnp.where(mask, n, jnp.arange(n))
    init = (jnp.array(n, key.dtype), jnp.array(-jnp.inf, values.dtype))
    both = lambda a, b: (jnp.minimum(a[0], b[0]), jnp.maximum(a[1], b[1]))
    return jax.lax.reduce((key, values), init, both, (0,))


def guard(Xw, lin, new, new_lin, rel, q, pinned, last, first, atol, rtol, rows=None):
    """Keep the exact prefix, pin the state after it, reject the non-finite tail (engine/solve.py's `_iterate`).

    Xw, lin: the current states and their linearisation; new, new_lin: the step's. rel: the pinned row (the first
    unconverged); row q of new_lin is already taken after `pinned`, the state before it (so f at the pinned state,
    not at the step's own value there, decides whether that row is finite); `last` is lin.fx[-1]. Both are read
    before the step: read here, rows of the old arrays made XLA copy them in every iteration. `first` (the loop's
    iteration -1): keep the guess, take new_lin whole.

    rows: None, or the per-row check (ok, err) of (Xw, lin) from the previous iteration; then the check of the
    result is returned too. It equals `row_check` of the result, but is computed from the one pass over the step's
    arrays that also finds the non-finite tail, and from last iteration's rows, so that the result is not read
    again.

    Returns (states, linearisation, rows of the check or None).
    """
    W = Xw.shape[0]
    idx = jnp.arange(W)
    # new[t] and f at it (fx[t + 1] = f(new[t]); fx[q] = f(pinned)) finite
    # Materialised on its own: a scan's output can be a transposed view, slow to read inside the reduction's loop.
    new = jax.lax.optimization_barrier(new)
    fx_next = jnp.concatenate([new_lin.fx[1:], jnp.zeros_like(new_lin.fx[:1])])
    finite = jnp.isfinite(new) & jnp.isfinite(fx_next)
    if rows is None:
        (good,) = _row_reduce([finite], [])
    else:  # and, per row, the checks of (new, f at new) and of (the old state, f at new); the last row's old state
        # is `last` where the pinned row is the last (q == rel: f there taken again by the step)
        ok_new, err_new = _entries(new, new_lin.fx, atol, rtol)
        old = jnp.where(((idx == W - 1) & (q == rel) & ~first)[:, None], last, Xw)
        ok_mix, err_mix = _entries(old, new_lin.fx, atol, rtol)
        good, ok_new, ok_mix, err_new, err_mix = _row_reduce([finite, ok_new, ok_mix], [err_new, err_mix])
    j = first_false(good)  # the first row not finite, or W
    fresh = (idx > rel) & (idx < j) & ~first
    # The pin as a select, not an in-place row update: XLA then needs no copy of the carried states.
    pin = jnp.where(q == rel + 1, pinned, last)  # lin.fx[rel], the exact state there (q == rel only when last)
    out = jnp.where(((idx == rel) & ~first)[:, None], pin, jnp.where(fresh[:, None], new, Xw))
    # lin[t] is f (and A) at out[t-1]: the step's where out[t-1] is the step's or the pinned state (q),
    # the old one elsewhere.
    from_new = jnp.concatenate([jnp.zeros((1,), bool), fresh[:-1]]) | (idx == q) | first
    pick = lambda a, b: jnp.where(from_new.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    picked = jax.tree_util.tree_map(pick, new_lin, lin)
    if rows is None:
        return out, picked, None
    # The rows of the result, without reading it: the step's rows (rel < t < jj) are the step's state with f at it;
    # row jj, the old state after the step's last one with f at that (as is every row in iteration -1, which keeps
    # the guess); the pinned row rel is f at the old state before it, the same value as the old f there (so exact
    # where that was finite) unless it is the last row (q == rel), whose f the step took again; every other row is
    # the old state with the old f: last iteration's check.
    jj = jnp.maximum(j, rel + 1)
    old_ok, old_err = rows
    pinned_ok = jnp.where(q == rel, ok_mix, jnp.isfinite(old_err))
    pinned_err = jnp.where(q == rel, err_mix, jnp.where(jnp.isfinite(old_err), 0, jnp.inf).astype(old_err.dtype))
    at_rel, mixed = (idx == rel) & ~first, (idx == jj) | first
    step_row = (idx > rel) & (idx < jj)

    def merge(pinned, mix, step, old):
        return jnp.where(at_rel, pinned, jnp.where(mixed, mix, jnp.where(step_row, step, old)))

    return out, picked, (merge(pinned_ok, ok_mix, ok_new, old_ok), merge(pinned_err, err_mix, err_new, old_err))
