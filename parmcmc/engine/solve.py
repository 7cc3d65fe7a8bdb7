"""The driver: runs any solver over a whole sequence, under jit, and says how it went.

solve(fn, x0, inputs, solver) computes x_t = fn(x_{t-1}, inputs[t]) for t = 1..T. Iterative solvers
stop when every state satisfies |x_t - fn(x_{t-1})| <= atol + rtol |x_t| (checked for finiteness
explicitly: a NaN never counts as converged), when fn is not finite at the state after the exact prefix
(the sequential solution itself is not finite there), at max_iters, or when failing fast (`patience`).
A non-finite update no longer ends a solve: it is rejected from its first non-finite step on.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from parmcmc.engine import blocks, failfast, sharding
from parmcmc.engine.checks import check_count, check_tolerance, num_steps_of
from parmcmc.engine.hoist import flatten_fn, flatten_observer
from parmcmc.engine.residual import at as _at
from parmcmc.engine.residual import evaluate_all as _evaluate_all
from parmcmc.engine.residual import first_false_and_max as _first_false_and_max
from parmcmc.engine.residual import guard as _guard
from parmcmc.engine.residual import per_step_check as _per_step_check
from parmcmc.engine.residual import row_check as _row_check
from parmcmc.engine.results import _REPORTED_BY_CALLER as _REPORTED_BY_CALLER  # chain.py reads it
from parmcmc.engine.results import (
    MAX_ITERS,
    NONFINITE,
    RESULTS,
    RUNNING,
    SUCCESSFUL,
    NotConvergedWarning,
    SolveError,
    failure_message,
    throw_if_failed,
    unconverged_reported_by_caller,
    warn_if_unconverged,
)
from parmcmc.engine.solution import Solution, solution
from parmcmc.engine.solvers import AbstractSolver, shift

# The result names used to live here; callers still import them from this module.
__all__ = [
    "MAX_ITERS",
    "NONFINITE",
    "RESULTS",
    "RUNNING",
    "SUCCESSFUL",
    "NotConvergedWarning",
    "Solution",
    "SolveError",
    "default_tolerance",
    "failure_message",
    "solution",
    "solve",
    "unconverged_reported_by_caller",
]

_DEFAULT_TOL = {"float64": 1e-11, "float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2}


def default_tolerance(dtype) -> float:
    """The default atol and rtol of a solve in `dtype` (1e-11 in float64, 1e-5 in float32)."""
    return _DEFAULT_TOL.get(jnp.dtype(dtype).name, 1e-5)


def solve(
    fn: Callable,
    x0: Any,
    inputs: Any,
    solver: AbstractSolver,
    *,
    max_iters: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    window: int | None = None,
    throw: bool = False,
    initial_guess: Any = None,
    fallback: str | None = None,
    progress: Callable | None = None,
    mesh: Any = None,
    patience: int | None = None,
    block: int | None = None,
    budget: int | None = None,
    observe: tuple[Callable, Any] | None = None,
) -> Solution:
    """All states of x_t = fn(x_{t-1}, inputs[t]), t = 1..T, computed by `solver`.

    Parameters
    ----------
    fn
        (state, input_t) -> state; a state is a float array or a pytree of them.
    x0
        The state before the first step (not part of the output).
    inputs
        Pytree whose leaves share the leading axis T.
    solver
        Sequential(), Jacobi(), Picard(), QuasiDEER(), DEER(), ELK(), QuasiELK(), or Shooting(s, B) (the same as s
        with block=B).
    max_iters
        Iteration budget (default T: Jacobi-type methods are exact after T sweeps).
    atol, rtol
        Convergence tolerance per entry, ``|x_t - fn(x_{t-1})| <= atol + rtol |x_t|`` (defaults by dtype: 1e-11 for
        float64, 1e-5 for float32).
    window
        Solve at most `window` states at a time, the window starting at the first state not yet converged: Jacobians
        take memory O(window), not O(T). The answer equals the full solve.
    throw
        False (default): an unconverged result is returned with converged=False and a NotConvergedWarning naming the
        cause, iterations, residual and what to try. True: raise SolveError instead. Under an outer jit/vmap the
        check runs when the computation does (an io_callback): the error then surfaces as a JaxRuntimeError carrying
        the same text.
    initial_guess
        Pytree like `states` to start from (default: x0 repeated).
    fallback
        "sequential" continues a failed solve step by step from its first unconverged state (the states before it
        are exact; a block solve reruns the chain from x0 instead, engine/blocks.py), so the answer is always the
        exact sequence unless fn itself is not finite there; `sequential_from` says where the sequential part began.
    progress
        Called on the host after every evaluation as progress(iteration, residual, window_start) (through
        jax.debug.callback; batched arrays under vmap). For progress displays.
    mesh
        A jax.sharding.Mesh with an axis "time" (and/or "chain"): the T states, inputs and Jacobians are split over
        the "time" devices and the scans run as two-level scans across them (engine/sharding.py, docs/scaling.md).
        The answer equals the unsharded solve up to rounding.
    patience
        Fail fast: every `patience` iterations, stop (result MAX_ITERS) if the exact prefix, at its rate so far,
        would need more than 2 max_iters (or 2 budget) iterations and the residual has not fallen 100-fold since the
        last check; past the budget, or when the residual explodes, sooner (engine/failfast.py).
        With fallback="sequential" the chain then continues step by step from its exact prefix (a block solve reruns
        it from its start: engine/blocks.py). None (default): run to convergence or max_iters.
    block
        Multiple shooting (engine/blocks.py, docs/convergence.md): the unknowns are the states at the ends of blocks
        of `block` consecutive steps, each block run sequentially from its start, and `solver` solves the recurrence
        between block ends (max_iters, patience and num_iters count block iterations; window stays in steps); then
        every block is recomputed from its solved start. No decision of a discontinuous step map is linearised
        inside a block.
    budget
        With patience: the iterations after which the solve goes on, up to max_iters (a hard cap), only while its
        exact prefix grew by at least 1.5 per iteration over the last `patience` iterations (its largest gain left
        out); patience's checkpoints project against it instead of max_iters (engine/failfast.py). None (default):
        max_iters.
    observe
        For a block solve only: a pair (g, c0). The final pass, which runs every block from its solved start, then
        takes each step as ``x_next, c, out = g(x, c, u)`` instead of fn (c starts at c0 in every block), and
        ``stats["observed"]`` holds the outputs `out` of the T steps (leading axis T). The states returned are g's
        x_next, which must be fn(x, u): the convergence and residual describe fn's blocks. A caller
        that needs a figure of every step (parmcmc.chain: statistics, a tangent) gets it without a second pass
        over the chain, or a second compiled copy of fn.

    Returns
    -------
    Solution
        The states, whether they converged, the result code and the solve's statistics.

    Notes
    -----
    Every iterative solver converges within T iterations when the sequential solution is finite: the
    state after the converged prefix is set to its exact value each iteration, and a non-finite update
    is rejected from its first non-finite step on instead of ending the solve (docs/convergence.md).
    """
    if not isinstance(solver, AbstractSolver):
        raise TypeError(f"solve: solver must be a solver instance such as parmcmc.engine.DEER(); got {solver!r}.")
    x0_flat, unravel = ravel_pytree(x0)
    if not jnp.issubdtype(x0_flat.dtype, jnp.floating):
        raise TypeError(f"solve: x0 must hold floating-point arrays; got dtype {x0_flat.dtype}.")
    num_steps = num_steps_of(inputs)
    hoisted, consts = flatten_fn(fn, x0, x0_flat, unravel, inputs)
    observer = None if observe is None else flatten_observer(observe, x0, x0_flat, unravel, inputs)
    tol = default_tolerance(x0_flat.dtype)
    atol = tol if atol is None else check_tolerance("atol", atol)
    rtol = tol if rtol is None else check_tolerance("rtol", rtol)
    if atol + rtol <= 0:
        raise ValueError(f"solve: atol={atol}, rtol={rtol}: tolerances must be >= 0 and not both 0.")
    solver, solve_jit, num_unknowns = blocks.plan(solver, block, num_steps, mesh, _solve_jit, observer)
    max_iters = num_unknowns if max_iters is None else check_count("max_iters", max_iters)
    window = num_steps if window is None else check_count("window", window)
    window = min(window, num_steps)
    if not isinstance(throw, (bool, np.bool_)):
        raise TypeError(f"solve: throw={throw!r} must be True or False.")
    if progress is not None and not callable(progress):
        raise TypeError(
            f"solve: progress={progress!r} must be a callable progress(iteration, residual, window_start) or None."
        )
    guess = None
    if initial_guess is not None:
        guess = jax.vmap(lambda s: ravel_pytree(s)[0])(initial_guess)
        if guess.shape != (num_steps, *x0_flat.shape):
            raise ValueError(
                f"solve: initial_guess must be shaped like the states, leading axis T={num_steps}; "
                f"got flattened shape {guess.shape}."
            )
        guess = guess.astype(x0_flat.dtype)
        if not isinstance(guess, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(guess))):
            raise ValueError("solve: initial_guess holds NaN or inf; give finite states, or None (x0 repeated).")

    if fallback not in (None, "sequential"):
        raise ValueError(f"solve: fallback={fallback!r}; use None or 'sequential'.")
    if patience is not None:
        patience = check_count("patience", patience)
    if budget is not None:
        budget = check_count("budget", budget)
        if patience is None:
            raise ValueError(f"solve: budget={budget} needs patience= (the iterations its rate is measured over).")
    mesh = sharding.check_mesh(mesh)
    inputs = sharding.constrain_time(inputs, mesh)
    with sharding.use_mesh(mesh):  # the scans read the mesh while _solve_jit is traced
        out = solve_jit(
            hoisted,
            consts,
            x0_flat,
            inputs,
            guess,
            solver,
            max_iters,
            window,
            atol,
            rtol,
            fallback,
            progress,
            mesh,
            patience,
            budget,
        )
    states, converged, num_iters, residual, result, sequential_from, fell_back = out[:7]
    sol = solution(
        jax.vmap(unravel)(states),
        converged,
        result,
        num_iters=num_iters,
        residual=residual,
        sequential_from=sequential_from,
        fell_back=fell_back,
        **({} if observe is None else {"observed": out[-1]}),
    )
    if throw:
        throw_if_failed(sol, solver)
    elif not _REPORTED_BY_CALLER.get():
        warn_if_unconverged(sol, solver)
    return sol


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7, 10, 11, 12, 13, 14))
def _solve_jit(
    hoisted,
    consts,
    x0,
    inputs,
    guess,
    solver,
    max_iters,
    window,
    atol,
    rtol,
    fallback,
    progress,
    mesh=None,
    patience=None,
    budget=None,
):  # mesh: a static key only; the scans read it from sharding.use_mesh
    fn = functools.partial(hoisted, consts)
    if not solver.parallel:
        states = solver.scan(fn, x0, inputs)
        residual = jnp.zeros((), x0.dtype)
        finite = jnp.all(jnp.isfinite(states))
        code = jnp.where(finite, RESULTS.successful, RESULTS.nonfinite)
        zero = jnp.zeros((), jnp.int32)
        return states, finite, zero, residual, code.astype(jnp.int32), zero, jnp.zeros((), bool)
    return _iterate(fn, x0, inputs, guess, solver, max_iters, window, atol, rtol, fallback, progress, patience, budget)


def _iterate(fn, x0, inputs, guess, solver, max_iters, W, atol, rtol, fallback, progress, patience=None, budget=None):
    """The iteration of every non-sequential solver (docs/convergence.md).

    Three guards wrap the solver's step, so that any Newton-type method converges within T iterations
    on a recurrence whose sequential solution is finite:
    - the converged prefix is kept, and the state right after it is pinned to its exact value
      f(x_{t0-1}) (guaranteed progress: at least one more exact state per iteration);
    - an update that is not finite from step j on (a state, or f at it) is rejected from j on: the
      states from j keep their previous values, which the next iteration linearises again;
    - with `patience`, a solve that is not converging stops early (result RESULTS.max_iters), so that a
      failing chain hands over to the sequential fallback early: engine/failfast.py.
    """
    T = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    X = jnp.broadcast_to(x0, (T, *x0.shape)) if guess is None else guess
    aux = solver.init(x0, T)
    # Without a sliding window (W == T) the window always starts at 0: no slicing, no copy into X.
    full = W == T
    window = lambda a, s, n: jax.lax.dynamic_slice_in_dim(a, s, n)
    take = lambda tree, s, n=W: tree if full else jax.tree_util.tree_map(lambda a: window(a, s, n), tree)
    x_start = lambda X, s: x0 if full else jnp.where(s == 0, x0, X[jnp.maximum(s - 1, 0)])

    def linearize(X, s):
        return solver.linearize(fn, shift(take(X, s), x_start(X, s)), take(inputs, s), take(aux, s))

    def check(rows, s, it):
        """The status of an iterate from its per-row check, its first unconverged index t0, and the residual.

        The states before t0 are exact.
        """
        j, residual = _first_false_and_max(*rows)  # one pass
        residual = residual.astype(X.dtype)
        if progress is not None:
            jax.debug.callback(progress, it, residual, s)
        status = jnp.where(
            ~jnp.isfinite(residual),
            RESULTS.nonfinite,
            jnp.where(
                (j == W) & (s + W == T),
                RESULTS.successful,
                jnp.where(it >= max_iters, RESULTS.max_iters, RESULTS.running),
            ),
        )
        return status, s + j, residual

    def rows_of(X, lin, s):
        return _row_check(take(X, s), lin.fx, atol, rtol)

    def advance(X, lin, s, t0):
        """Slide the window to the first unconverged state, re-evaluating only if it moved."""
        if W == T:
            return lin, s
        s_new = jnp.minimum(t0, T - W)
        lin = jax.lax.cond(s_new == s, lambda: lin, lambda: linearize(X, s_new))
        return lin, s_new

    def pinned_successor(Xw, lin, start, rel):
        """Return (q, the state before step q, the last row of lin.fx: the guard's check reads it).

        q = rel + 1 follows the pinned state, whose value lin.fx[rel] is known before the step, so the step
        linearises row q at it (`extra`). When rel = W - 1, q = W - 1 and the state before it lies in the kept
        prefix (or is `start`).
        """
        q = jnp.minimum(rel + 1, W - 1)
        pinned = jnp.where(q == rel + 1, lin.fx[rel], jnp.where(q == 0, start, Xw[jnp.maximum(q - 1, 0)]))
        return q, pinned, lin.fx[W - 1]

    def body(carry):
        X, lin, s, state, it, _, t0, ff, rows = carry
        start, Xw, rel = x_start(X, s), take(X, s), jnp.clip(t0 - s, 0, W - 1)
        # Materialised on its own: read in the step's kernels, it made XLA copy the carried states every iteration.
        q, pinned, last = jax.lax.optimization_barrier(pinned_successor(Xw, lin, start, rel))
        new, new_lin, state = solver.step(fn, start, Xw, take(inputs, s), take(aux, s), lin, state, (q, pinned))
        # Without a window the guard also checks its result from the step's arrays and last iteration's rows.
        Xw, lin, rows = _guard(Xw, lin, new, new_lin, rel, q, pinned, last, it < 0, atol, rtol, rows if full else None)
        X = Xw if full else jax.lax.dynamic_update_slice_in_dim(X, Xw, s, axis=0)
        rows = rows if full else rows_of(X, lin, s)
        status, t0, residual = check(rows, s, it + 1)
        if patience is not None:
            status, ff = failfast.fail_fast(status, ff, it + 1, t0, residual, T, max_iters, budget, patience)
        lin, s = advance(X, lin, s, t0)
        return X, lin, s, state, it + 1, status, t0, ff, rows

    s0 = jnp.zeros((), jnp.int32)
    # With a linearisation whose step returns the states unchanged (`ident`), iteration -1 linearises and checks the
    # guess in the loop's own step: the program then holds one copy of the linearised step map, not two.
    ident = solver.identity_linearization(take(X, s0)) if hasattr(solver, "identity_linearization") else None
    if ident is None:
        lin = linearize(X, s0)
        rows = rows_of(X, lin, s0)
        status, t0, residual = check(rows, s0, 0)
        lin, s0 = advance(X, lin, s0, t0)
        it0 = jnp.zeros((), jnp.int32)
    else:  # the carry as check and advance type it; iteration -1 checks every row itself
        rows = (jnp.zeros((W,), bool), jnp.zeros((W,), X.dtype))
        code, t0 = jax.eval_shape(check, rows, s0, 0)[:2]
        status, t0, s0, residual = jnp.full((), RESULTS.running, code.dtype), *jnp.zeros((2,), t0.dtype), X[0, 0]
        lin, it0 = ident, jnp.full((), -1, jnp.int32)
    ff = None if patience is None else failfast.init(residual, t0, patience)
    init = (X, lin, s0, solver.init_state(x0), it0, status, t0, ff, rows)
    X, lin, _, _, it, status, _, _, _ = jax.lax.while_loop(lambda c: c[5] == RESULTS.running, body, init)

    fx = lin.fx if W == T else _evaluate_all(fn, X, x0, inputs, W)  # a window saw only its part
    ok, residual = _per_step_check(X, fx, atol, rtol)
    converged = (status == RESULTS.successful) & jnp.all(ok)
    status = jnp.where(converged | (status != RESULTS.successful), status, RESULTS.max_iters)
    fell_back = jnp.logical_and(fallback is not None, ~converged)
    seq_from = jnp.where(converged, T, jnp.argmin(ok)).astype(jnp.int32)
    if fallback:
        # The states before the first unconverged one are exact: continue sequentially from there.
        def go_on(X):
            def one(t, X):
                return X.at[t].set(fn(jnp.where(t == 0, x0, X[jnp.maximum(t - 1, 0)]), _at(inputs, t)))

            X = jax.lax.fori_loop(seq_from, T, one, X)
            ok, residual = _per_step_check(X, _evaluate_all(fn, X, x0, inputs, W), atol, rtol)
            return X, jnp.all(ok), residual

        X, converged, residual = jax.lax.cond(converged, lambda X: (X, converged, residual), go_on, X)
    status = jnp.where(jnp.isfinite(residual), status, RESULTS.nonfinite)
    return X, converged, it, residual, status.astype(jnp.int32), seq_from, fell_back
