"""Warmup of the samplers preconditioned by a diagonal scale: Barker's proposal and adjusted MCLMC.

Stan's schedule (BlackJAX's ``build_schedule``: a fast window, slow windows of doubling length, a
final fast window) over the sampler's BlackJAX kernel (``blackjax.barker``, or
``blackjax.adjusted_mclmc`` with a fixed number of steps). Every step adapts the step size by dual
averaging toward the target acceptance; the end of each slow window re-estimates the posterior's
marginal standard deviations from its draws (shrunk toward 1e-3 as Stan's mass matrix is), and the
chain continues on ``z = x / scale``, the kernel on ``z -> log p(scale * z)`` (for Barker, the
diagonally preconditioned Barker of Livingstone & Zanella 2022, their Appendix G). The result feeds
:class:`parmcmc.samplers.Barker` or :class:`parmcmc.samplers.AdjustedMCLMC` (``step_size``,
``scale``), whose chains equal BlackJAX's on that density.

Why not ``blackjax.window_adaptation(blackjax.barker, ...)``: it adapts an *inverse mass matrix*, and
BlackJAX's Barker kernel scales its increments by the metric's ``M^{1/2}`` = ``1 / sqrt(inverse mass
matrix)``, so an inverse mass matrix estimated as the posterior's variances shrinks the steps along
the wide directions instead of widening them (BlackJAX 1.7, ``metrics.gaussian_euclidean``).

Target acceptance: BlackJAX documents no value for Barker. We use 0.574, the default that rmcmc (the R
package accompanying Livingstone & Zanella's Barker papers) tunes Barker's scale to; it is also MALA's.
Nor does it for the static adjusted MCLMC kernel (its own tuner, written for the dynamic kernel, takes
the target as an argument); we use HMC's 0.8.
Like ``parmcmc.warmup``, it runs chain after chain (``lax.map``), so chain k's warmup depends on
``(rng_key, k)`` alone.
"""

from collections.abc import Callable
from typing import Any

import blackjax
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.adaptation.window_adaptation import build_schedule

from parmcmc.jitcache import program_jit
from parmcmc.keys import chain_keys
from parmcmc.models.target import num_chains_of
from parmcmc.warmup import WarmupResult

__all__ = ["ADJUSTED_MCLMC_STEPS", "ADJUSTED_MCLMC_TARGET_ACCEPTANCE", "BARKER_TARGET_ACCEPTANCE", "barker_warmup",
           "mclmc_warmup"]  # fmt: skip

BARKER_TARGET_ACCEPTANCE = 0.574
ADJUSTED_MCLMC_TARGET_ACCEPTANCE = 0.8
# sample(sampler="adjusted_mclmc")'s steps per draw: two gradients each, so HMC's 10 leapfrog steps' cost
ADJUSTED_MCLMC_STEPS = 5


def barker_warmup(
    logdensity_fn: Callable,
    initial_positions: Any,
    rng_key: jax.Array,
    num_steps: int,
    *,
    initial_step_size: float = 1.0,
    target_acceptance: float = BARKER_TARGET_ACCEPTANCE,
    keep_draws: bool = True,
    precondition: bool = True,
) -> WarmupResult:
    """Tune Barker's step size (and, with ``precondition``, a diagonal scale) per chain.

    Parameters
    ----------
    logdensity_fn
        Log density of the target on (pytree) positions.
    initial_positions
        Pytree whose leaves carry a leading chain axis.
    rng_key
        Chain k uses ``chain_keys(rng_key, num_chains)[k]``.
    num_steps
        Warmup steps; fewer than 20 adapt the step size only (BlackJAX's schedule).
    initial_step_size, target_acceptance
        Start and target of dual averaging.
    keep_draws
        Keep every warmup position (``WarmupResult.draws``).
    precondition
        Adapt the diagonal scale (``WarmupResult.scale``, ``(chain, D)``); otherwise ``scale`` is None.

    Returns
    -------
    WarmupResult
        ``positions``, ``step_size`` (the dual-averaging average, as Stan's), ``scale``, the draws
        and per-step statistics (acceptance_rate, lp, step_size).
    """
    return _scale_warmup(
        "barker_warmup", blackjax.barker.build_kernel(), blackjax.barker.init, logdensity_fn, initial_positions,
        rng_key, num_steps, initial_step_size, target_acceptance, keep_draws, precondition,
    )  # fmt: skip


def mclmc_warmup(
    logdensity_fn: Callable,
    initial_positions: Any,
    rng_key: jax.Array,
    num_steps: int,
    num_integration_steps: int = ADJUSTED_MCLMC_STEPS,
    *,
    initial_step_size: float = 1.0,
    target_acceptance: float = ADJUSTED_MCLMC_TARGET_ACCEPTANCE,
    keep_draws: bool = True,
    precondition: bool = True,
) -> WarmupResult:
    """Tune adjusted MCLMC's step size (and a diagonal scale) per chain, ``num_integration_steps`` fixed.

    As :func:`barker_warmup` otherwise, over ``blackjax.adjusted_mclmc``'s static kernel.
    """
    static = blackjax.adjusted_mclmc.build_kernel()

    def kernel(key, state, logdensity, step_size):
        return static(key, state, logdensity, step_size, integration_steps_params=(num_integration_steps,))

    return _scale_warmup(
        "mclmc_warmup", kernel, blackjax.adjusted_mclmc.init, logdensity_fn, initial_positions, rng_key, num_steps,
        initial_step_size, target_acceptance, keep_draws, precondition,
    )  # fmt: skip


def _scale_warmup(
    caller, kernel, init, logdensity_fn, initial_positions, rng_key, num_steps, initial_step_size, target_acceptance,
    keep_draws, precondition,
) -> WarmupResult:  # fmt: skip
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"{caller}: num_steps must be a positive int (number of warmup steps); got {num_steps!r}.")
    if not float(initial_step_size) > 0.0:
        raise ValueError(f"{caller}: initial_step_size must be positive; got {initial_step_size!r}.")
    if not 0.0 < float(target_acceptance) < 1.0:
        raise ValueError(f"{caller}: target_acceptance must lie in (0, 1); got {target_acceptance!r}.")
    num_chains = num_chains_of(initial_positions, caller)
    da_init, da_update, da_final = dual_averaging_adaptation(target_acceptance)
    schedule = np.asarray(build_schedule(num_steps), dtype=int).reshape(num_steps, 2)
    slow = jnp.asarray(schedule[:, 0] == 1) & precondition
    window_end = jnp.asarray(schedule[:, 1] == 1) & precondition

    def one_chain(key, position):
        flat, unravel = jax.flatten_util.ravel_pytree(position)
        flat_logdensity = lambda x: logdensity_fn(unravel(x))
        dtype = flat.dtype
        z_logdensity = lambda scale: lambda z: flat_logdensity(scale * z)
        empty = (jnp.zeros((), dtype), jnp.zeros_like(flat), jnp.zeros_like(flat))  # Welford: n, mean, M2

        def step(carry, xs):
            state, da_state, scale, welford = carry
            key_t, in_slow, at_end = xs
            step_size = jnp.exp(da_state.log_step_size)
            state, info = kernel(key_t, state, z_logdensity(scale), step_size)
            acceptance = jnp.where(jnp.isfinite(info.acceptance_rate), info.acceptance_rate, 0.0)
            da_state = da_update(da_state, acceptance)
            x = scale * state.position
            n, mean, m2 = welford
            n_new = n + 1
            delta = x - mean
            mean_new = mean + delta / n_new
            welford = jax.tree.map(
                lambda new, old: jnp.where(in_slow, new, old), (n_new, mean_new, m2 + delta * (x - mean_new)), welford
            )
            stats = {"acceptance_rate": acceptance, "lp": state.logdensity, "step_size": step_size}

            def re_estimate(_):
                n, _, m2 = welford
                variance = m2 / jnp.maximum(n - 1, 1)
                variance = (n / (n + 5.0)) * variance + 1e-3 * (5.0 / (n + 5.0))  # Stan's regularisation
                new_scale = jnp.where(jnp.isfinite(variance) & (variance > 0), jnp.sqrt(variance), scale)
                ratio = jnp.exp(jnp.mean(jnp.log(new_scale / scale)))
                new_state = init(x / new_scale, z_logdensity(new_scale))
                # the step in z keeps its size in x; dual averaging restarts there (Stan's rule after a window)
                return new_state, da_init(jnp.exp(da_state.log_step_size) / ratio), new_scale, empty

            state, da_state, scale, welford = jax.lax.cond(
                at_end, re_estimate, lambda _: (state, da_state, scale, welford), None
            )
            return (state, da_state, scale, welford), (x, stats)

        scale = jnp.ones_like(flat)
        state = init(flat, z_logdensity(scale))
        da_state = da_init(jnp.asarray(initial_step_size, dtype=dtype))
        xs = (jax.random.split(key, num_steps), slow, window_end)
        (state, da_state, scale, _), (draws, stats) = jax.lax.scan(step, (state, da_state, scale, empty), xs)
        x = scale * state.position
        return unravel(x), da_final(da_state), jax.vmap(unravel)(draws), stats, scale

    def all_chains(keys, positions):
        return jax.lax.map(lambda args: one_chain(*args), (keys, positions))

    positions, step_size, draws, stats, scale = program_jit(all_chains)(
        chain_keys(rng_key, num_chains), initial_positions
    )
    return WarmupResult(
        positions, step_size, None, draws if keep_draws else None, stats, None, scale if precondition else None
    )
