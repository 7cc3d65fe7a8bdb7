"""Warmup: adapt the step size (and HMC's diagonal inverse mass matrix) before the parallel run.

Warmup runs sequentially with BlackJAX kernels, one independent adaptation per chain (vmapped,
each chain with its own key), and hands its final positions and tuned parameters to the sampling
run. It is adaptive, so its draws are not a Markov chain and are not solved in parallel.

    mala_warmup   dual averaging of the step size toward acceptance 0.574 (Roberts & Rosenthal 1998);
                  with precondition=True also a linear preconditioner z = L^-1 (x - m) from the
                  draws' mean m and covariance L L^T, then the step size re-adapted for z
    hmc_warmup    Stan's windowed adaptation (blackjax.window_adaptation): step size by dual averaging
                  toward 0.8 and a diagonal (or, with dense_mass=True, dense) inverse mass matrix
                  from the draws of slow windows
    (ChEES, which adapts the trajectory length from all chains together: parmcmc/warmup_chees.py)

It lives outside `parmcmc.samplers` because it uses BlackJAX's kernels, not parmcmc's step maps; the
step maps' chains equal BlackJAX's for the same key, so the tuned parameters carry over unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import blackjax
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn
from blackjax.adaptation.step_size import dual_averaging_adaptation

from parmcmc.arguments import PyTree, check_int
from parmcmc.jitcache import program_jit
from parmcmc.keys import chain_keys
from parmcmc.models.target import num_chains_of

__all__ = [
    "HMC_TARGET_ACCEPTANCE",
    "HMC_TRAJECTORY_TARGET_ACCEPTANCE",
    "MALA_TARGET_ACCEPTANCE",
    "WarmupResult",
    "hmc_warmup",
    "mala_warmup",
]

MALA_TARGET_ACCEPTANCE = 0.574
HMC_TARGET_ACCEPTANCE = 0.8
# adaptation="window_trajectory" (sample()'s default HMC): Stan's adapt_delta raised for robustness (docs/samplers.md)
HMC_TRAJECTORY_TARGET_ACCEPTANCE = 0.9
# hmc_warmup(trajectory=True): T = this x the longest whitened sd (uniform times on (0, T] decorrelate it)
TRAJECTORY_FACTOR = float(np.pi)
# ... estimated from the last slow window only when it holds at least this many draws (else 2 L eps)
TRAJECTORY_MIN_DRAWS = 50


class WarmupResult(NamedTuple):
    """What warmup hands to the sampling run (leading axis of every field: chain).

    positions            pytree, the last warmup position of each chain: the sampling run's x0
    step_size            (chain,) adapted step size of each chain
    inverse_mass_matrix  (chain, D) diagonal or (chain, D, D) dense inverse mass matrix per chain, in
                         `ravel_pytree` order of the position (HMC); None for MALA
    loc, scale           (chain, D) and (chain, D, D): MALA's preconditioner (the draws' mean and the
                         Cholesky factor of their regularised covariance) with precondition=True, else None
    draws                pytree with leaves (chain, num_steps, ...): the position after each warmup
                         step (unconstrained), or None when keep_draws=False
    stats                dict of (chain, num_steps) per-step statistics under ArviZ names:
                         acceptance_rate, lp (log density after the step), step_size (the step size
                         the step used), and for HMC diverging and energy (chees_warmup: and n_steps)
    num_integration_steps  chees_warmup only: the adapted trajectory length over the step size, the
                         maximum L of draws that take ceil(v L) leapfrog steps, v uniform on [0, 1)
    """

    positions: PyTree
    step_size: jax.Array
    inverse_mass_matrix: jax.Array | None
    draws: PyTree | None
    stats: dict
    loc: jax.Array | None = None
    scale: jax.Array | None = None
    num_integration_steps: jax.Array | None = None  # chees_warmup: the adapted maximum L (float) of the jitter
    trajectory_length: jax.Array | None = None  # hmc_warmup(trajectory=True): (chain,) integration time T


def _check_common(caller, initial_positions, num_steps, initial_step_size, target_acceptance) -> int:
    check_int("num_steps", num_steps, call=caller)
    if not (float(initial_step_size) > 0.0):
        raise ValueError(f"{caller}: initial_step_size must be positive; got {initial_step_size!r}.")
    if not (0.0 < float(target_acceptance) < 1.0):
        raise ValueError(f"{caller}: target_acceptance must lie in (0, 1); got {target_acceptance!r}.")
    return num_chains_of(initial_positions, caller)


def mala_warmup(
    logdensity_fn: Callable,
    initial_positions: PyTree,
    rng_key: jax.Array,
    num_steps: int,
    *,
    initial_step_size: float = 1.0,
    target_acceptance: float = MALA_TARGET_ACCEPTANCE,
    keep_draws: bool = True,
    precondition: bool | str = False,  # True, False or "hessian"
) -> WarmupResult:
    """Tune MALA's step size per chain by dual averaging (Hoffman & Gelman 2014, sec. 3.2.1).

    Every step runs `blackjax.mala`'s kernel at exp(log_step_size) and feeds its acceptance
    probability to dual averaging; the returned step size is the dual-averaging average,
    exp(log_step_size_avg), as in Stan. `initial_positions` carries a leading chain axis.

    precondition=True: Stan's schedule (a fast window, slow windows of doubling length, a final fast
    window); after each slow window the posterior mean m and covariance (shrunk toward its diagonal)
    are re-estimated from its draws, and the next window runs BlackJAX's MALA on z = L^-1 (x - m), L
    the covariance's Cholesky factor, re-adapting the step size. Returns loc m and scale L per chain,
    for `MALA(..., loc=m, scale=L)`; positions and draws stay in x.
    precondition="hessian": as True, but L is the Cholesky factor of the inverse mean negative Hessian
    at each window's last 8 draws (exact for a Gaussian posterior; MALA's short warmup draws estimate a
    correlated covariance poorly), the draws' covariance where that is not positive definite.
    """
    caller = "mala_warmup"
    num_chains = _check_common(caller, initial_positions, num_steps, initial_step_size, target_acceptance)
    if precondition and num_steps < 20:
        raise ValueError(
            f"{caller}: precondition=True needs num_steps >= 20 to estimate a covariance; got {num_steps}."
        )
    da_init, da_update, da_final = dual_averaging_adaptation(target_acceptance)
    kernel = blackjax.mala.build_kernel()

    def adapt(key, position, logdensity, to_x, num, step_size0):
        """`num` MALA steps on `logdensity` adapting the step size from `step_size0`; draws mapped by to_x."""

        def step(carry, key_t):
            state, da_state = carry
            step_size = jnp.exp(da_state.log_step_size)
            new_state, info = kernel(key_t, state, logdensity, step_size)
            # A NaN acceptance (proposal where the density is not finite) counts as a rejection.
            acceptance = jnp.where(jnp.isfinite(info.acceptance_rate), info.acceptance_rate, 0.0)
            stats = {"acceptance_rate": acceptance, "lp": new_state.logdensity, "step_size": step_size}
            return (new_state, da_update(da_state, acceptance)), (to_x(new_state.position), stats)

        state = blackjax.mala.init(position, logdensity)
        da_state = da_init(jnp.asarray(step_size0, dtype=state.logdensity.dtype))
        (state, da_state), (draws, stats) = jax.lax.scan(step, (state, da_state), jax.random.split(key, num))
        return state.position, da_final(da_state), draws, stats

    def one_chain(key, position):
        if not precondition:
            x, step_size, draws, stats = adapt(key, position, logdensity_fn, lambda p: p, num_steps, initial_step_size)
            return x, step_size, draws, stats, None, None
        # Stan's schedule: a fast window, slow windows of doubling length (each re-estimates m and L from its
        # draws, with the chain already preconditioned by the previous estimate), a final fast window. One
        # scan over the whole schedule, so that its body compiles once.
        flat, unravel = jax.flatten_util.ravel_pytree(position)
        flat_logdensity = lambda x: logdensity_fn(unravel(x))
        dim, dtype = flat.size, flat.dtype
        starts, ends, t = np.zeros(num_steps, bool), np.zeros(num_steps, bool), 0
        for num, estimate in _mala_windows(num_steps):
            starts[t], ends[t + num - 1] = True, estimate
            t += num
        z_logdensity = lambda loc, scale: lambda z: flat_logdensity(loc + scale @ z)
        # a window's statistics: count, running mean and co-moment of x (Welford), its last few draws of x
        empty = (
            jnp.zeros((), dtype),
            jnp.zeros(dim, dtype),
            jnp.zeros((dim, dim), dtype),
            jnp.zeros((_CURVATURE_POINTS, dim), dtype),
        )

        def step(carry, xs):
            state, da_state, loc, scale, window = carry
            key_t, start, end = xs
            window = jax.tree.map(lambda e, w: jnp.where(start, e, w), empty, window)
            step_size = jnp.exp(da_state.log_step_size)
            state, info = kernel(key_t, state, z_logdensity(loc, scale), step_size)
            acceptance = jnp.where(jnp.isfinite(info.acceptance_rate), info.acceptance_rate, 0.0)
            da_state = da_update(da_state, acceptance)
            x = loc + scale @ state.position
            n, mean, comoment, last = window
            n = n + 1
            delta = x - mean
            mean = mean + delta / n
            window = (n, mean, comoment + jnp.outer(delta, x - mean), jnp.roll(last, -1, axis=0).at[-1].set(x))
            stats = {"acceptance_rate": acceptance, "lp": state.logdensity, "step_size": step_size}

            def re_estimate(_):
                n, mean, comoment, last = window
                new_scale = _shrunk_cholesky(comoment / (n - 1), n)
                if precondition == "hessian":
                    new_scale = _curvature_cholesky(flat_logdensity, last, new_scale)
                ratio = jnp.exp(jnp.mean(jnp.log(jnp.diagonal(new_scale) / jnp.diagonal(scale))))
                z = jax.scipy.linalg.solve_triangular(new_scale, x - mean, lower=True)
                new_state = blackjax.mala.init(z, z_logdensity(mean, new_scale))
                # the step in z keeps its size in x; dual averaging restarts there, as Stan's after each window
                return new_state, da_init(da_final(da_state) / ratio), mean, new_scale

            state, da_state, loc, scale = jax.lax.cond(end, re_estimate, lambda _: (state, da_state, loc, scale), None)
            return (state, da_state, loc, scale, window), (x, stats)

        loc, scale = jnp.zeros(dim, dtype), jnp.eye(dim, dtype=dtype)
        state = blackjax.mala.init(flat, z_logdensity(loc, scale))
        da_state = da_init(jnp.asarray(initial_step_size, dtype=state.logdensity.dtype))
        xs = (jax.random.split(key, num_steps), jnp.asarray(starts), jnp.asarray(ends))
        (state, da_state, loc, scale, _), (draws, stats) = jax.lax.scan(step, (state, da_state, loc, scale, empty), xs)
        return unravel(loc + scale @ state.position), da_final(da_state), jax.vmap(unravel)(draws), stats, loc, scale

    positions, step_size, draws, stats, loc, scale = program_jit(_map_chains(one_chain))(
        chain_keys(rng_key, num_chains), initial_positions
    )
    return WarmupResult(positions, step_size, None, draws if keep_draws else None, stats, loc, scale)


_CURVATURE_POINTS = 8


def _map_chains(one_chain):
    """one_chain(key, position) over the chain axis, one chain after another (see hmc_warmup)."""
    return lambda keys, positions: jax.lax.map(lambda args: one_chain(*args), (keys, positions))


def _curvature_cholesky(flat_logdensity, points, fallback):
    """Cholesky factor of the inverse of the mean negative Hessian at the window's last draws.

    That is the Laplace approximation's covariance, exact for a Gaussian; `fallback` where it is not
    positive definite or not finite.
    """
    neg_hessian = -jnp.mean(jax.vmap(jax.hessian(flat_logdensity))(points), axis=0)
    neg_hessian = 0.5 * (neg_hessian + neg_hessian.T)
    chol_precision = jnp.linalg.cholesky(neg_hessian)
    eye = jnp.eye(points.shape[1], dtype=points.dtype)
    scale = jax.scipy.linalg.solve_triangular(chol_precision, eye, lower=True).T  # L with L L^T = H^-1
    # L = chol_precision^-T is upper triangular; the preconditioner needs a lower-triangular factor
    scale = jnp.linalg.cholesky(scale @ scale.T)
    ok = jnp.all(jnp.isfinite(scale))
    return jnp.where(ok, scale, fallback)


def _mala_windows(num_steps: int) -> list[tuple[int, bool]]:
    """(length, estimate the preconditioner after it) per window.

    15% fast, slow windows doubling from max(num_steps // 20, 10) (the last one takes the rest), 10% fast.
    """
    first, last = max(num_steps * 15 // 100, 1), max(num_steps // 10, 1)
    slow, width, windows = num_steps - first - last, max(num_steps // 20, 10), [(first, False)]
    while slow > 0:
        width = slow if slow < 3 * width else width
        windows.append((width, width >= 10))
        slow, width = slow - width, 2 * width
    return [*windows, (last, False)]


def _shrunk_cholesky(cov, n):
    """Cholesky factor of a window's covariance estimate from n draws, shrunk toward its diagonal.

    The weight is D / (n + D): a window of few draws is mostly diagonal; rank-deficient windows stay
    definite.
    """
    dim = cov.shape[0]
    weight = dim / (n + dim)
    cov = (1 - weight) * cov + weight * jnp.diag(jnp.diagonal(cov) + 1e-10)
    return jnp.linalg.cholesky(cov)


def hmc_warmup(
    logdensity_fn: Callable,
    initial_positions: PyTree,
    rng_key: jax.Array,
    num_steps: int,
    num_integration_steps: int,
    *,
    initial_step_size: float = 1.0,
    target_acceptance: float = HMC_TARGET_ACCEPTANCE,
    keep_draws: bool = True,
    dense_mass: bool | str = False,
    trajectory: bool = False,
) -> WarmupResult:
    """Tune HMC's step size and inverse mass matrix per chain with Stan's windowed adaptation.

    The mass matrix is diagonal (dense with dense_mass=True); the adaptation is `blackjax.window_adaptation`
    over `blackjax.hmc` with `num_integration_steps` leapfrog steps. `initial_positions` carries a leading
    chain axis.

    dense_mass="low_rank": `blackjax.window_adaptation_low_rank` instead (nutpie's metric: a diagonal
    scaling and up to 10 eigen-directions fitted to draws and gradients by minimising a Fisher
    divergence), returned as the dense matrix diag(s) (I + U (Lambda - I) U^T) diag(s) it stands for;
    each chain then starts from the adaptation's mean estimate mu*, as BlackJAX's run returns it.

    The schedule is BlackJAX's `build_schedule` (Stan's: a fast window, doubling slow windows
    whose draws estimate the variances, a final fast window); a short warmup means short slow
    windows and a noisier mass matrix.

    trajectory=True also returns each chain's integration time T = TRAJECTORY_FACTOR x sqrt(lambda_max),
    lambda_max the largest eigenvalue of the covariance of the chain's last slow window of draws
    preconditioned by its adapted mass matrix (the longest scale the mass matrix leaves): a trajectory of
    time uniform on (0, T] then decorrelates that direction (for a Gaussian, E cos(t / sigma) = 0 at
    T = pi sigma). Chain by chain, from the chain's own draws. A warmup whose last slow window has fewer than
    TRAJECTORY_MIN_DRAWS draws (under about 70 steps) gives T = 2 num_integration_steps eps: the fixed
    trajectory's mean cost.
    """
    caller = "hmc_warmup"
    num_chains = _check_common(caller, initial_positions, num_steps, initial_step_size, target_acceptance)
    check_int("num_integration_steps", num_integration_steps, call=caller)
    keep = get_filter_adapt_info_fn(
        state_keys={"position", "logdensity"} if keep_draws or trajectory else {"logdensity"},
        info_keys={"acceptance_rate", "is_divergent", "energy"},
        adapt_state_keys={"step_size"},
    )
    if dense_mass == "low_rank":
        adaptation = blackjax.window_adaptation_low_rank(
            blackjax.hmc,
            logdensity_fn,
            initial_step_size=initial_step_size,
            target_acceptance_rate=target_acceptance,
            num_integration_steps=num_integration_steps,
        )
    else:
        adaptation = blackjax.window_adaptation(
            blackjax.hmc,
            logdensity_fn,
            is_mass_matrix_diagonal=not dense_mass,
            initial_step_size=initial_step_size,
            target_acceptance_rate=target_acceptance,
            adaptation_info_fn=keep,
            num_integration_steps=num_integration_steps,
        )

    def one_chain(key, position):
        # blackjax annotates AdaptationAlgorithm.run as (key, position); window_adaptation's takes num_steps too.
        (state, parameters), info = adaptation.run(key, position, num_steps)  # pyright: ignore[reportCallIssue]
        # info.adaptation_state.step_size is the step size AFTER each step's update; the step used
        # the previous one (the first step used initial_step_size).
        after = info.adaptation_state.step_size
        used = jnp.concatenate([jnp.full((1,), initial_step_size, dtype=after.dtype), after[:-1]])
        stats = {
            "acceptance_rate": info.info.acceptance_rate,
            "lp": info.state.logdensity,
            "step_size": used,
            "diverging": info.info.is_divergent,
            # BlackJAX's energy: the trajectory end's, accepted or not (sampling's energy is the draw's)
            "energy": info.info.energy,
        }
        draws = info.state.position if keep_draws else None
        imm = parameters["inverse_mass_matrix"]
        if dense_mass == "low_rank":  # LowRankInverseMassMatrix(sigma, U, lam) as the dense M^-1 it stands for
            sigma, u, lam = imm
            imm = sigma[:, None] * (jnp.eye(sigma.size, dtype=sigma.dtype) + (u * (lam - 1.0)) @ u.T) * sigma[None, :]
        if not trajectory:
            length = jnp.zeros(())
        elif window is None:  # no slow window to learn from: L_t uniform on 1..2L, the fixed trajectory's mean cost
            length = 2.0 * num_integration_steps * parameters["step_size"]
        else:
            length = _trajectory_time(info.state.position, imm, window)
        return state.position, parameters["step_size"], imm, draws, stats, length

    window = _last_slow_window(num_steps)

    # Jitted as a whole: run eagerly, BlackJAX's set-up outside its scan compiles one primitive at a time.
    # One chain after another (lax.map), not vmapped: XLA's batched kernels round differently for 1 and for
    # 4 chains (log densities differing by 1e-15 after 4 steps flipped an accept decision after 29), and
    # chain k's warmup must depend on (rng_key, k) alone, not on num_chains.
    positions, step_size, inverse_mass_matrix, draws, stats, length = program_jit(_map_chains(one_chain))(
        chain_keys(rng_key, num_chains), initial_positions
    )
    length = length if trajectory else None
    return WarmupResult(positions, step_size, inverse_mass_matrix, draws, stats, trajectory_length=length)


def _last_slow_window(num_steps: int) -> tuple[int, int] | None:
    """(start, stop) of the last slow window of BlackJAX's schedule.

    None when it holds fewer than TRAJECTORY_MIN_DRAWS draws (a short warmup).
    """
    from blackjax.adaptation.window_adaptation import build_schedule

    schedule = np.asarray(build_schedule(num_steps), dtype=int).reshape(-1, 2)
    ends = np.nonzero(schedule[:, 1])[0]
    if not len(ends):
        return None
    after = int(ends[-2]) + 1 if len(ends) > 1 else 0
    slow = np.nonzero(schedule[after : ends[-1] + 1, 0] == 1)[0]
    start = after + (int(slow[0]) if len(slow) else 0)
    stop = int(ends[-1]) + 1
    return (start, stop) if stop - start >= TRAJECTORY_MIN_DRAWS else None


def _trajectory_time(positions, imm, window: tuple[int, int]) -> jax.Array:
    """TRAJECTORY_FACTOR x the largest sd of the window's draws whitened by the inverse mass matrix `imm`."""
    flat = jax.vmap(lambda x: jax.flatten_util.ravel_pytree(x)[0])(positions)[window[0] : window[1]]
    centred = flat - jnp.mean(flat, axis=0)
    if imm.ndim == 1:
        z = centred / jnp.sqrt(imm)
    else:
        z = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(imm), centred.T, lower=True).T
    top = jnp.linalg.svd(z, compute_uv=False)[0]
    sd = top / jnp.sqrt(jnp.maximum(z.shape[0] - 1, 1))
    return TRAJECTORY_FACTOR * jnp.where(jnp.isfinite(sd) & (sd > 0), sd, 1.0)
