"""One MCMC chain, solved by any engine solver: the sampler meets the engine here.

The samplers know nothing of solvers and the engine nothing of MCMC; this
module draws the sampler's noise, hands its step map to
:func:`parmcmc.engine.solve`, and turns the solved flat chain back into
positions and per-step statistics.
"""

import functools
import operator
from typing import Any, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
from jax import Array

from parmcmc.arguments import check_int, check_rng_key
from parmcmc.engine import QuasiDEER, Solution, default_tolerance, solve
from parmcmc.engine.blocks import block_of
from parmcmc.engine.solve import _REPORTED_BY_CALLER
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.exactness import LENGTH, StepObserver, stats_and_exactness, unit_tangents
from parmcmc.health import warn_if_replay_may_differ
from parmcmc.jitcache import program_jit
from parmcmc.samplers.base import AbstractSampler
from parmcmc.validate import check_solve_option_names

__all__ = ["ChainResult", "run_chain"]


class ChainResult(NamedTuple):
    """A solved chain: the positions, the sampler's statistics per step, and the solve.

    Attributes
    ----------
    positions
        Pytree like the initial position, leaves with leading axis T:
        ``x_1 .. x_T`` (the initial position is not included, as in BlackJAX).
    stats
        The sampler's Info NamedTuple (``MALAInfo`` / ``HMCInfo``), leading
        axis T, computed from the solved chain in one vmapped pass.
    solution
        The engine's :class:`parmcmc.engine.Solution` of the chain (its ``states`` left out: they are
        ``positions``): ``converged``, the ``result`` code
        and its ``stats`` (``num_iters``, ``residual``, ``sequential_from``, ``fell_back``), to which
        ``run_chain`` adds whether the draws are the sequential replay (:mod:`parmcmc.exactness`):
        ``near_threshold``, the number of accept decisions within reach of the solver's tolerance (0: the
        very draws of the sequential chain), and ``lle``, the largest Lyapunov exponent measured along the
        solved chain (0 and NaN for ``Sequential``). Each is also an attribute of the ChainResult.
    """

    positions: Any
    stats: Any
    solution: Solution

    @property
    def converged(self) -> Array:
        """Whether the solver met its tolerance at every step (never True for a non-finite iterate)."""
        return self.solution.converged

    @property
    def result(self) -> Array:
        """The parallel solve's result code (see :class:`parmcmc.engine.Solution`)."""
        return self.solution.result

    @property
    def num_iters(self) -> Array:
        """Solver iterations (0 for ``Sequential``)."""
        return self.solution.stats["num_iters"]

    @property
    def residual(self) -> Array:
        """``max_t |x_t - f(x_{t-1})|`` over all entries."""
        return self.solution.stats["residual"]

    @property
    def sequential_from(self) -> Array:
        """The first step computed sequentially after a failed parallel solve (T when none was)."""
        return self.solution.stats["sequential_from"]

    @property
    def fell_back(self) -> Array:
        """Whether ``fallback="sequential"`` continued a failed parallel solve step by step."""
        return self.solution.stats["fell_back"]

    @property
    def near_threshold(self) -> Array | int:
        """Accept decisions within reach of the solver's tolerance (0 when the draws are the replay)."""
        return self.solution.stats.get("near_threshold", 0)

    @property
    def lle(self) -> Array | float:
        """The largest Lyapunov exponent measured along the solved chain (NaN for ``Sequential``)."""
        return self.solution.stats.get("lle", float("nan"))


def _stats_and_exactness(sampler, parallel, x0, states, inputs, atol, rtol):
    """The chain's statistics and, for a parallel solve, its exactness figures.

    One compilation, keyed on the traced program (never on the sampler object, whose log density may read changed
    values).
    """
    return program_jit(functools.partial(_stats_and_exactness_body, sampler, parallel))(x0, states, inputs, atol, rtol)


def _stats_and_exactness_body(sampler, parallel, x0, states, inputs, atol, rtol):
    if not parallel:  # the sequential reference is the replay by definition
        stats = sampler.chain_stats(x0, states, inputs)
        return stats, (jnp.zeros((), jnp.int32), jnp.full((), jnp.nan, states.dtype))
    stats, figures = stats_and_exactness(sampler, x0, states, inputs, atol, rtol)
    return stats, tuple(figures)


def _observed_block(solver: AbstractSolver, num_steps: int, solve_kwargs) -> int | None:
    """The block length of a block solve whose final pass can observe the chain's figures, else None.

    A block of fewer than LENGTH // 2 steps is too short a window for the LLE (a quarter of it is left out while the
    tangent aligns): such chains, and every solve that is not on blocks, get the separate windowed pass.
    """
    block = block_of(solver, num_steps)
    if block is None and solver.parallel and solve_kwargs.get("block") is not None:
        try:  # a NumPy integer or a 0-d integer array too, as solve() reads it; anything else solve() refuses
            block = min(operator.index(solve_kwargs["block"]), num_steps)
        except TypeError:
            return None
    return block if block is not None and block >= LENGTH // 2 and solve_kwargs.get("mesh") is None else None


def run_chain(
    sampler: AbstractSampler,
    initial_position,
    rng_key: Array,
    num_steps: int,
    *,
    solver: AbstractSolver | None = None,
    noise_offset: int = 0,
    **solve_kwargs,
) -> ChainResult:
    """Run ``num_steps`` steps of ``sampler`` from ``initial_position``.

    The chain is the one BlackJAX's ``run_inference_algorithm(rng_key, ...,
    initial_state=init(initial_position))`` gives for the same key, computed
    by ``solver`` (default ``QuasiDEER()``; ``Sequential()`` is the
    ``lax.scan`` reference).

    Parameters
    ----------
    sampler
        ``MALA`` or ``HMC``, bound or not. An unbound sampler is bound to
        ``initial_position`` (which checks it); pass an already bound one to
        reuse compiled code across calls.
    initial_position
        Pytree position to start from.
    rng_key
        Key of the whole chain.
    num_steps
        Chain length T.
    solver
        An engine solver instance.
    noise_offset
        Start at step ``noise_offset`` of the key's noise schedule: the chain continues one of
        ``noise_offset`` steps run with the same key (its last state given as ``initial_position``),
        and the two together are the chain of ``noise_offset + num_steps`` steps. Needs JAX's
        partitionable threefry (the default), under which ``split(key, n)[:m] == split(key, m)``.
    **solve_kwargs
        Passed to :func:`parmcmc.engine.solve` (``max_iters``, ``atol``,
        ``rtol``, ``window``, ``throw``, ``initial_guess``, ...).
    """
    if not isinstance(sampler, AbstractSampler):
        raise TypeError(
            f"run_chain: sampler must be a parmcmc sampler such as MALA(...) or HMC(...), got {type(sampler).__name__}."
        )
    # Checked here, by name, before the sampler is bound or any noise is drawn (a negative noise_offset used to
    # slice the noise from its end and return a chain of the wrong length without a word).
    num_steps = check_int("num_steps", num_steps, call="run_chain")
    noise_offset = check_int("noise_offset", noise_offset, minimum=0, call="run_chain")
    check_rng_key(rng_key, call="run_chain")
    if solver is not None and not isinstance(solver, AbstractSolver):
        raise TypeError(
            f"run_chain: solver must be an engine solver instance such as parmcmc.QuasiDEER() or parmcmc.DEER(); "
            f"got {solver!r}."
        )
    check_solve_option_names(solve_kwargs, solve, "run_chain")
    solver = QuasiDEER() if solver is None else solver
    sampler, x0 = sampler.bound_at(initial_position)
    inputs = sampler.noise(rng_key, noise_offset + num_steps)
    if noise_offset:
        inputs = jax.tree_util.tree_map(lambda a: a[noise_offset:], inputs)
    tol = default_tolerance(x0.dtype)
    atol, rtol = (solve_kwargs.get(k) for k in ("atol", "rtol"))
    atol, rtol = (tol if atol is None else atol), (tol if rtol is None else rtol)
    block = _observed_block(solver, num_steps, solve_kwargs)
    if block is None:
        solution = solve(sampler.step, x0, inputs, solver, **solve_kwargs)
        stats, (near, lle) = _stats_and_exactness(sampler, solver.parallel, x0, solution.states, inputs, atol, rtol)
    else:  # the block solve's final pass computes the figures as it recomputes the states: one copy of the step
        observer = StepObserver(sampler, x0, atol, rtol)
        v0 = unit_tangents(1, x0.shape[0], x0.dtype)[0]
        solution = solve(sampler.step, x0, inputs, solver, observe=(observer, v0), **solve_kwargs)
        finish = lambda figures, x0, states, inputs: tuple(observer.finish(figures, x0, states, inputs, block))
        stats, (near, lle) = program_jit(finish)(solution.stats.pop("observed"), x0, solution.states, inputs)
    positions = sampler.unravel_chain(solution.states)
    # The states live on as `positions` only (not twice); the statistics gain the exactness figures.
    solution = solution._replace(states=None, stats={**solution.stats, "near_threshold": near, "lle": lle})
    result = ChainResult(positions=positions, stats=stats, solution=solution)
    if not _REPORTED_BY_CALLER.get() and not isinstance(near, jax.core.Tracer):
        warn_if_replay_may_differ(result, call="run_chain")
    return result
