"""Multiple shooting: solve a recurrence over blocks of B consecutive steps (docs/convergence.md).

The T steps are cut into n = ceil(T / B) blocks. The unknowns are only the states at the block ends,
s_k = x_{kB}, and they obey the n-step recurrence s_k = F_k(s_{k-1}), where the block map F_k runs B
steps of fn sequentially (a `lax.scan`) with block k's inputs. Any iterative solver of the driver
solves that recurrence (Jacobi on blocks is s_k <- F_k(s_{k-1}) of the previous guess; QuasiDEER and
DEER take the Jacobian of F_k by forward mode through the inner scan), with all its guards: the pin
makes at least one more block exact per iteration, so at most n iterations are needed. A final
vmapped pass runs every block from its solved start and records all T states.

Why: inside a block every decision of a discontinuous step map (an MCMC accept/reject) is taken
sequentially from the block's start, so the iteration never linearises across a wrong decision
within a block; the only error is the start, and a contracting chain forgets it within its coupling
time. With B above that time, block-Jacobi converges in a few iterations whatever T is.

Cost: an iteration evaluates fn T times (as one batched sweep; DEER's block Jacobians cost D forward
passes more, like DEER's), but its sequential depth is B steps, not one. The padded steps of a last,
shorter block repeat the last real input and keep the state unchanged: fn is never evaluated on
anything but real inputs at real states.
"""

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from parmcmc.arguments import check_int
from parmcmc.engine.checks import check_count
from parmcmc.engine.residual import per_step_check
from parmcmc.engine.results import NONFINITE
from parmcmc.engine.solvers import AbstractSolver, Jacobi

__all__ = [
    "BLOCK_DEFAULT",
    "Shooting",
    "block_of",
    "block_recurrence",
    "block_size",
    "fail_fast_budget",
    "plan",
    "solve_blocked",
]

BLOCK_DEFAULT = 128  # the block length when nothing is known about the chain's contraction
BLOCK_MIN, BLOCK_MAX = 16, 512


def block_size(lle: float | None, num_steps: int, tol: float = 1e-11, scale: float = 1.0) -> int:
    """The block length B for a chain of `num_steps` steps whose largest Lyapunov exponent is `lle`.

    A chain that contracts at rate |lle| per step forgets an error of size `scale` down to `tol` in
    ln(scale / tol) / |lle| steps: with B at least that, one block-Jacobi sweep puts every block end
    within tolerance of the true chain once the accept decisions have coupled. Clipped to
    [BLOCK_MIN, BLOCK_MAX] and to num_steps; BLOCK_DEFAULT when lle is unknown (None, NaN) or >= 0.
    """
    if lle is None or not math.isfinite(lle) or lle >= 0:
        b = BLOCK_DEFAULT
    else:
        b = math.ceil(math.log(max(scale, tol * 10) / tol) / -lle)
    b = min(max(b, BLOCK_MIN), BLOCK_MAX)
    return max(1, min(b, num_steps))


def fail_fast_budget(num_steps: int, block: int) -> tuple[int, int]:
    """(max_iters, patience) of a block solve that fails fast, both counted in block iterations.

    A block solve pays only while its sequential depth, (iterations + 2) x B, stays below half the chain's, T / 2:
    so max_iters = n // 2 - 2 for n = ceil(T / B) blocks (at least 1). A chain that has not converged by then is
    rerun sequentially (solve_blocked's fallback): depth T more, but one step per state of work instead of a sweep
    per block, and a chain that did not converge by then is one that does not couple. patience = max_iters // 2 (at
    most 16): at each checkpoint the driver's fail-fast rule (engine/solve.py) stops a chain whose exact prefix grew
    by about the pinned block per iteration only (its projected iterations pass 2 max_iters, about n) and whose
    residual did not fall 100-fold: a chain that does not contract (LLE >= 0) never couples and would need all n blocks.
    """
    n = -(-num_steps // block)
    max_iters = max(1, n // 2 - 2)
    return max_iters, max(1, min(16, max_iters // 2))


def block_of(solver, num_steps: int) -> int | None:
    """The block length a Shooting solver runs with for a chain of `num_steps` steps (None: not a block solve)."""
    if not isinstance(solver, Shooting):
        return None
    return min(block_size(None, num_steps) if solver.block is None else solver.block, num_steps)


@dataclasses.dataclass(frozen=True)
class Shooting(AbstractSolver):
    """`solver` over blocks of `block` steps, as one solver object for callers that pick a solver (sample()).

    solve(fn, x0, inputs, Shooting(s, B)) is solve(fn, x0, inputs, s, block=B).

    solver: the iterative solver of the recurrence between block ends (default Jacobi(): once the
        decisions have coupled, a sweep shrinks every block end's error by e^(LLE B), and it needs no
        Jacobian). block: the block length; None picks `block_size(None, T)` = BLOCK_DEFAULT, clipped to T.
    """

    parallel: ClassVar[bool] = True
    solver: AbstractSolver = dataclasses.field(default_factory=Jacobi)
    block: int | None = None

    def __post_init__(self):
        if not isinstance(self.solver, AbstractSolver) or not self.solver.parallel or isinstance(self.solver, Shooting):
            raise TypeError(
                f"Shooting(solver={self.solver!r}): the solver of the block ends must be an iterative solver "
                "such as Jacobi() or DEER()."
            )
        if self.block is not None:  # a NumPy integer or a 0-d integer array is read as the int it holds
            object.__setattr__(self, "block", check_int("block", self.block, call="Shooting"))


def plan(solver, block, num_steps, mesh, solve_jit, observer=None):
    """solve()'s (solver, flat solve, number of unknowns) for `block=` or a Shooting solver.

    The inner solver, the driver's jitted solve wrapped to run over blocks, and ceil(T / B) (the default max_iters).
    Without blocks (or for the sequential reference, which ignores them): unchanged, and T. `observer`: solve()'s
    hoisted `observe=`, run by the final pass of a block solve (refused for any other solve).
    """
    if isinstance(solver, Shooting):  # the same solve as solver=solver.solver, block=solver.block
        solver, block = solver.solver, block_size(None, num_steps) if solver.block is None else solver.block
    block = None if block is None else min(check_count("block", block), num_steps)
    if block is not None and mesh is not None:
        raise ValueError("solve: block= does not compose with mesh= yet; pass one of them.")
    if block is None or not solver.parallel:
        if observer is not None:
            raise ValueError(
                "solve: observe= is run by the final pass of a block solve; pass it with block= and an iterative "
                "solver (Jacobi(), DEER(), ...), or with a Shooting solver."
            )
        return solver, solve_jit, num_steps
    return solver, functools.partial(solve_blocked, solve_jit, block, observer), -(-num_steps // block)


def _blocked_inputs(inputs, block: int, num_blocks: int):
    """Return inputs (T, ...) as (n, B, ...) and the mask (n, B) of the real steps.

    The missing steps of the last block are filled with the last real input.
    """
    T = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    pad = num_blocks * block - T

    def one(a):
        a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a
        return a.reshape((num_blocks, block, *a.shape[1:]))

    mask = (jnp.arange(num_blocks * block) < T).reshape(num_blocks, block)
    return jax.tree_util.tree_map(one, inputs), mask


def block_recurrence(fn, inputs, block: int):
    """The recurrence between block ends: (F, its inputs), F(s, inputs_k) the state after block k's steps from s.

    For callers that time or linearise one block iteration (parmcmc.weigh) as the driver does.
    """
    T = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    blocked = _blocked_inputs(inputs, block, -(-T // block))
    return (lambda s, u: _run_block(fn, s, *u)[0]), blocked


def _run_block(fn, x, block_inputs, mask):
    """B steps of fn from x (masked steps keep the state); all B states."""

    def body(x, um):
        u, m = um
        y = fn(x, u)
        y = jax.tree_util.tree_map(lambda a, b: jnp.where(m, a, b), y, x)
        return y, y

    return jax.lax.scan(body, x, (block_inputs, mask))


@dataclasses.dataclass(frozen=True)
class _BlockProgress:
    """progress(iteration, residual, window_start) with the window start in steps, not blocks.

    Hashable, so that a compiled solve is reused for the same callback.
    """

    progress: Callable
    block: int

    def __call__(self, it, residual, start):
        return self.progress(it, residual, start * self.block)


@dataclasses.dataclass(frozen=True)
class _BlockMap:
    """F(consts, s, (inputs, mask)) = the state after B steps of fn from s.

    The driver's hoisted step map over blocks. Hashable through the hoisted fn, so compiled block solves are
    reused like plain ones.
    """

    hoisted: Any

    def __call__(self, consts, x, block_inputs_and_mask):
        u, m = block_inputs_and_mask
        return _run_block(functools.partial(self.hoisted, consts), x, u, m)[0]


def solve_blocked(
    solve_jit,
    block,
    observer,
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
    mesh,
    patience,
    budget=None,
):
    """Run the driver's flat solve `solve_jit` by multiple shooting over blocks of `block` steps.

    `solve_jit` is passed in to keep the import graph one-way (same arguments after `observer`); returns the
    driver's tuple over all T steps, and with an `observer` (flatten_observer's triple) the outputs it observed at
    the T steps of the final pass after them.

    window (in steps) and progress's window start are translated to blocks; max_iters counts block
    iterations, and so does num_iters; sequential_from is a step index (the start of the first block
    that did not converge); residual is the largest |s_k - F_k(s_{k-1})| over the block ends (the states
    inside a block are recomputed sequentially from its solved start, so their residual is 0).
    """
    T = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    n = -(-T // block)
    blocked, mask = _blocked_inputs(inputs, block, n)
    block_guess = None
    if guess is not None:  # the guessed state at each block end (the last block ends at step T)
        ends = jnp.minimum(jnp.arange(1, n + 1) * block, T) - 1
        block_guess = guess[ends]
    window = -(-window // block)
    progress = None if progress is None else _BlockProgress(progress, block)
    block_map = _BlockMap(hoisted)
    # The fallback runs here, not in the driver: it stores the chain's states, and the final pass below takes each
    # step from the stored state before it, which is the check of every continued step.
    ends, converged, it, residual, code, seq_from, _ = solve_jit(
        block_map,
        consts,
        x0,
        (blocked, mask),
        block_guess,
        solver,
        max_iters,
        window,
        atol,
        rtol,
        None,
        progress,
        None,
        patience,
        budget,
    )
    fell_back = jnp.logical_and(fallback is not None, ~converged)
    forced = None
    if fallback:  # the whole chain step by step (see _continue), and the final pass taken along its states
        # A loop that starts at n where the solve converged: under vmap it runs only as long as a failed chain needs.
        forced = (fell_back, _continue(hoisted, consts, x0, blocked, mask, jnp.where(fell_back, 0, n)))
    states, observed, computed = _all_states(
        hoisted, consts, x0, ends, blocked, mask, *(observer or (None,) * 3), forced
    )
    if fallback:  # as the driver's fallback: every continued step checked, a non-finite residual reported as such
        ok, residual_after = per_step_check(states, computed, atol, rtol)
        converged = jnp.where(fell_back, jnp.all(ok), converged)
        residual = jnp.where(fell_back, residual_after, residual)
        code = jnp.where(jnp.isfinite(residual), code, NONFINITE).astype(code.dtype)
        seq_from = jnp.where(fell_back, 0, seq_from)
    seq_from = jnp.minimum(seq_from * block, T).astype(jnp.int32)
    out = states[:T], converged, it, residual, code, seq_from, fell_back
    if observer is None:
        return out
    return *out, jax.tree_util.tree_map(lambda a: a.reshape((-1, *a.shape[2:]))[:T], observed)


def _continue(hoisted, consts, x0, blocked, mask, first):
    """The sequential fallback: every state of the chain, step by step from x0, as (n, B, ...) blocks.

    `first`: 0, or n for none (zeros); the states of blocks before `first` are zeros.

    From x0, not from the solve's exact prefix: the final pass reruns each block from its start in another
    compiled program than the solve's, and on a chaotic chain (positive LLE) the last bits by which two
    programs' roundings differ grow over a block until its end is no longer the solved one (a jump in the chain).
    Stored step by step here, the final pass takes every step from the stored state before it (one step: nothing
    grows) and checks it, so the chain returned is this one, whatever its LLE.
    """
    fn = functools.partial(hoisted, consts)

    def one(k, carry):
        x, xs = carry
        u = jax.tree_util.tree_map(lambda a: a[k], (blocked, mask))
        _, block_states = _run_block(fn, x, *u)
        return block_states[-1], xs.at[k].set(block_states)

    xs = jnp.zeros((*mask.shape, *jnp.shape(x0)), x0.dtype)
    return jax.lax.fori_loop(first, mask.shape[0], one, (x0, xs))[1]


@functools.partial(jax.jit, static_argnums=(0, 6))
def _all_states(hoisted, consts, x0, ends, blocked, mask, observer=None, observer_consts=None, c0=None, forced=None):
    """Every block run from its solved start, as (T', ...) states (T' = n B, the padded steps included).

    The last state of block k is its solved end s_k, so that the next block starts where the solve says. With an
    observer, its g takes the steps instead of fn (the carry from c0 in every block, kept over padded steps) and its
    outputs come second, (n, B, ...); else None.

    forced: None, or (on, stored) with `stored` the chain's states as (n, B, ...) blocks (the sequential
    fallback's): where `on`, every step is taken from the stored state before it instead of the step before, and
    the states returned are the stored ones. Third: what each step computed, (T', ...), for the check against the
    states (None without `forced`).
    """
    starts = jnp.concatenate([x0[None], ends[:-1]])
    fn = functools.partial(hoisted, consts)
    on, stored = (False, None) if forced is None else forced

    def run(x, u, m, before):
        def body(carry, inputs):
            (x, c), (u, m, b) = carry, inputs
            if b is not None:  # teacher forcing: the step from the stored state before it
                x = jnp.where(on, b, x)
            if observer is None:
                y, c_next, out = fn(x, u), c, None
            else:
                y, c_next, out = observer(observer_consts, x, c, u)
            keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(m, a, b), new, old)
            y = keep(y, x)
            return (y, keep(c_next, c)), (y, out)

        return jax.lax.scan(body, (x, c0), (u, m, before))[1]

    def one(x, e, u, m, b):
        xs, out = run(x, u, m, b)
        return xs.at[-1].set(e), out, xs

    flat = lambda a: a.reshape((-1, *a.shape[2:]))
    before = None if stored is None else jnp.concatenate([x0[None], flat(stored)[:-1]]).reshape(stored.shape)
    xs, observed, computed = jax.vmap(one)(starts, ends, blocked, mask, before)
    if stored is None:
        return flat(xs), observed, None
    return flat(jnp.where(on, stored, xs)), observed, flat(computed)
