"""One MCMC chain, solved by any engine solver: the sampler meets the engine here.

The samplers know nothing of solvers and the engine nothing of MCMC; this
module draws the sampler's noise, hands its step map to
:func:`parmcmc.engine.solve`, and turns the solved flat chain back into
positions and per-step statistics.
"""
from typing import Any, NamedTuple

import jax
from jax import Array

from parmcmc.engine import QuasiDEER, solve
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.samplers.base import AbstractSampler

__all__ = ["ChainResult", "run_chain"]


class ChainResult(NamedTuple):
    """A solved chain.

    positions
        Pytree like the initial position, leaves with leading axis T:
        ``x_1 .. x_T`` (the initial position is not included, as in BlackJAX).
    stats
        The sampler's Info NamedTuple (``MALAInfo`` / ``HMCInfo``), leading
        axis T, computed from the solved chain in one vmapped pass.
    converged
        Whether the solver met its tolerance at every step (never True for a
        non-finite iterate).
    num_iters
        Solver iterations (0 for ``Sequential``).
    residual
        ``max_t |x_t - f(x_{t-1})|`` over all entries.
    result
        The parallel solve's result code (see :class:`parmcmc.engine.Solution`).
    sequential_from, fell_back
        With ``fallback="sequential"``: the first step computed sequentially after
        a failed parallel solve, and whether that happened.
    """

    positions: Any
    stats: Any
    converged: Array
    num_iters: Array
    residual: Array
    result: Array
    sequential_from: Array
    fell_back: Array


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
            "run_chain: sampler must be a parmcmc sampler such as MALA(...) or HMC(...), "
            f"got {type(sampler).__name__}."
        )
    solver = QuasiDEER() if solver is None else solver
    sampler, x0 = sampler.bound_at(initial_position)
    inputs = sampler.noise(rng_key, noise_offset + num_steps)
    if noise_offset:
        inputs = jax.tree_util.tree_map(lambda a: a[noise_offset:], inputs)
    solution = solve(sampler.step, x0, inputs, solver, **solve_kwargs)
    stats = jax.jit(sampler.chain_stats)(x0, solution.states, inputs)
    return ChainResult(
        positions=sampler.unravel_chain(solution.states),
        stats=stats,
        converged=solution.converged,
        num_iters=solution.num_iters,
        residual=solution.residual,
        result=solution.result,
        sequential_from=solution.sequential_from,
        fell_back=solution.fell_back,
    )
