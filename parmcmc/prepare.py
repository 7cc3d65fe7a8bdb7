"""From settings to chains ready to sample: the target, the sampler, the warmup (sequential, BlackJAX).

The first half of sample()'s data flow (model -> Target -> warmup -> one step-map sampler per chain); api.py
runs the chains (the engine, vmapped over chains) and builds the DataTree.
"""

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from parmcmc import jitcache, progress
from parmcmc.chain import run_chain
from parmcmc.engine import Sequential
from parmcmc.health import model_errors_named
from parmcmc.io.names import check_dims_and_coords
from parmcmc.keys import chain_keys
from parmcmc.models import Target, from_model
from parmcmc.samplers import HMC, MALA, AdjustedMCLMC, Barker
from parmcmc.samplers.base import AbstractSampler
from parmcmc.settings import (
    DENSE_MASS_MAX_DIM,
    MAX_INTEGRATION_STEPS,
    TARGET_ACCEPTANCE,
    Settings,
    check_run_memory,
    hmc_adaptation,
    hmc_integration_steps_jitter,
    hmc_step_size_jitter,
)
from parmcmc.warmup import HMC_TRAJECTORY_TARGET_ACCEPTANCE, hmc_warmup, mala_warmup
from parmcmc.warmup_chees import CHEES_TARGET_ACCEPTANCE, chees_warmup
from parmcmc.warmup_scale import ADJUSTED_MCLMC_STEPS, barker_warmup, mclmc_warmup


class Prepared(NamedTuple):
    """Everything sampling needs once the warmup is done (one entry per chain where it varies)."""

    target: Target
    template: AbstractSampler  # the sampler, its log density set to the target's
    positions: Any  # (chain, ...) starting positions after warmup
    step_size: jax.Array  # (chain,)
    inverse_mass_matrix: Any  # (chain, D) for HMC, else None
    warmup: Any  # WarmupResult or None
    warmup_seconds: float
    preconditioner: Any = None  # {"loc": (chain, D), "scale": (chain, D, D)} for preconditioned MALA, else None
    # seconds of one sequential step of one chain, from the warmup's run (execution only; nan without a warmup):
    # parallel="auto" prices the sequential chain with it instead of a probe of its own
    step_seconds: float = float("nan")
    parallel_fits: bool = True  # whether the parallel solve fits in memory (parallel="auto" checks it)


def prepare(s: Settings) -> Prepared:
    """The target, its starting positions and the warmup.

    The part that is the same for parallel and sequential sampling.
    """
    init_key, warm_key, _ = jax.random.split(s.rng_key, 3)
    target = from_model(
        s.model, init_key, s.num_chains, s.model_args, s.model_kwargs, s.initial_position, s.init_strategy
    )
    check_dims_and_coords(s.dims, s.coords, target.var_shapes, target.observed_data, target.dims)
    for asked, what in (("log_likelihood", "the pointwise log likelihood"), ("posterior_predictive", "draws")):
        if getattr(s, asked) and not target.observed_data:  # the group asked for could never be there: say so now
            raise ValueError(
                f"sample: {asked}=True asks for {what} of the observed sites, but model {target.name!r} observes "
                f"nothing (no numpyro.sample(..., obs=...)). Pass the data, or leave {asked} out."
            )
    name, template = s.sampler_name, s.sampler
    if template is None:
        if name == "mala":
            template = MALA(target.logdensity_fn, 1.0)
        elif name == "barker":
            template = Barker(target.logdensity_fn, 1.0)
        elif name == "adjustedmclmc":
            template = AdjustedMCLMC(target.logdensity_fn, 1.0, ADJUSTED_MCLMC_STEPS)
        else:
            jitter = hmc_step_size_jitter(s)
            template = HMC(
                target.logdensity_fn,
                1.0,
                s.num_integration_steps,
                s.inverse_mass_matrix,
                step_size_jitter=jitter or None,
                integration_steps_jitter=hmc_integration_steps_jitter(s),
            )
        adapt = s.step_size is None
    else:
        template, adapt = template.replace(logdensity_fn=target.logdensity_fn), False
    # Bind to chain 0's start: the sampler's own checks (e.g. the mass matrix's size) run now, before warmup.
    template = template.bind(jax.tree_util.tree_map(lambda a: a[0], target.initial_positions))
    parallel_fits = check_run_memory(s, template, target.initial_positions)
    dense = s.dense_mass if s.dense_mass is not None else template.dim <= DENSE_MASS_MAX_DIM
    eps = jnp.full((s.num_chains,), s.step_size if s.step_size is not None else template.step_size)
    imm = getattr(template, "inverse_mass_matrix", None)
    imm = None if imm is None else jnp.broadcast_to(imm, (s.num_chains, *jnp.shape(imm)))
    t0 = time.perf_counter()
    with model_errors_named(target.name, "sample (warmup)"), jitcache.timed_runs() as clock:
        positions, eps, imm, warm, pre = warm_up(s, target, template, adapt, name, eps, imm, warm_key, dense)
        if warm is not None and warm.num_integration_steps is not None:  # ChEES adapted the trajectory length
            template = template.replace(num_integration_steps=max(1, math.ceil(float(warm.num_integration_steps))))
        if warm is not None and getattr(warm, "trajectory_length", None) is not None:  # per chain, capped
            template = template.replace(num_integration_steps=MAX_INTEGRATION_STEPS)
        jax.block_until_ready(positions)
    progress.end_phase()
    # the adapting warmups run the chains one after another (lax.map), the burn-in vmaps them
    steps = s.num_warmup * (s.num_chains if warm is not None else 1)
    step_s = clock.seconds / steps if steps and clock.runs else float("nan")
    return Prepared(target, template, positions, eps, imm, warm, time.perf_counter() - t0, pre, step_s, parallel_fits)


def warm_up(s, target, template, adapt, name, eps, imm, warm_key, dense):
    """Run the warmup the settings ask for: (positions, step sizes, mass matrices, WarmupResult, preconditioner).

    Adapting (window, ChEES, MALA's, Barker's or MCLMC's) when `adapt`, else a burn-in by the sequential chain.
    """
    warm, positions, pre = None, target.initial_positions, None
    if s.num_warmup and adapt:
        progress.start_phase(
            f"warmup  |  {s.num_warmup} steps x {s.num_chains} chains ({name}, adapting)", s.progress_bar
        )
        accept = TARGET_ACCEPTANCE[name] if s.target_acceptance is None else s.target_acceptance
        if name == "hmc" and s.target_acceptance is None and hmc_adaptation(s) == "window_trajectory":
            accept = HMC_TRAJECTORY_TARGET_ACCEPTANCE
        if name == "hmc" and hmc_adaptation(s) == "chees":
            warm = chees_warmup(
                target.logdensity_fn,
                positions,
                warm_key,
                s.num_warmup,
                target_acceptance=CHEES_TARGET_ACCEPTANCE if s.target_acceptance is None else s.target_acceptance,
                keep_draws=s.keep_warmup,
            )
            imm = warm.inverse_mass_matrix
        elif name == "mala":
            warm = mala_warmup(
                target.logdensity_fn,
                positions,
                warm_key,
                s.num_warmup,
                target_acceptance=accept,
                keep_draws=s.keep_warmup,
                precondition="hessian" if dense and s.num_warmup >= 20 else False,
            )
            pre = None if warm.loc is None else {"loc": warm.loc, "scale": warm.scale}
        elif name == "adjustedmclmc":  # step size and a diagonal scale (parmcmc/warmup_scale.py)
            warm = mclmc_warmup(
                target.logdensity_fn,
                positions,
                warm_key,
                s.num_warmup,
                template.num_integration_steps,
                target_acceptance=accept,
                keep_draws=s.keep_warmup,
            )
            pre = None if warm.scale is None else {"scale": warm.scale}
        elif name == "barker":  # step size and a diagonal scale (parmcmc/warmup_scale.py)
            warm = barker_warmup(
                target.logdensity_fn,
                positions,
                warm_key,
                s.num_warmup,
                target_acceptance=accept,
                keep_draws=s.keep_warmup,
            )
            pre = None if warm.scale is None else {"scale": warm.scale}
        else:
            warm = hmc_warmup(
                target.logdensity_fn,
                positions,
                warm_key,
                s.num_warmup,
                template.num_integration_steps,
                target_acceptance=accept,
                keep_draws=s.keep_warmup,
                dense_mass=dense if dense == "low_rank" else bool(dense),
                trajectory=hmc_adaptation(s) == "window_trajectory",
            )
            imm = warm.inverse_mass_matrix
            pre = None if warm.trajectory_length is None else {"trajectory_length": warm.trajectory_length}
        positions, eps = warm.positions, warm.step_size
    elif s.num_warmup:
        progress.start_phase(f"warmup  |  {s.num_warmup} steps x {s.num_chains} chains (burn-in)", s.progress_bar)
        keys = chain_keys(warm_key, s.num_chains)
        burn = vmapped_chains(template, positions, keys, eps, imm, s.num_warmup, Sequential(), {})
        positions = jax.tree_util.tree_map(lambda a: a[:, -1], burn.positions)
    return positions, eps, imm, warm, pre


def one_chain(prepared: Prepared, c: int):
    """(sampler with chain c's step size and mass matrix, chain c's start) after warmup."""
    settings = chain_settings(prepared.step_size, prepared.inverse_mass_matrix, prepared.preconditioner)
    x0 = jax.tree_util.tree_map(lambda a: a[c], prepared.positions)
    return prepared.template.replace(**{k: v[c] for k, v in settings.items()}), x0


def chain_settings(eps, imm, pre) -> dict:
    """The per-chain settings (leading axis: chain) as sampler fields."""
    settings = {"step_size": eps} if imm is None else {"step_size": eps, "inverse_mass_matrix": imm}
    return settings if pre is None else {**settings, **pre}


def vmapped_chains(
    template, positions, keys, eps, imm, num_steps, solver, solve_kwargs, noise_offset=0, pre=None, spmd_axis_name=None
):
    """Run `num_steps` steps of every chain with `solver`, vmapped over chains.

    Samplers are pytrees: the per-chain step sizes, mass matrices and preconditioners are leaves with a chain axis,
    so the chains vmap over one sampler.
    """
    samplers = template.per_chain(**chain_settings(eps, imm, pre))

    def one(sampler, key, x0):
        return run_chain(sampler, x0, key, num_steps, solver=solver, noise_offset=noise_offset, **solve_kwargs)

    return jax.vmap(one, spmd_axis_name=spmd_axis_name)(samplers, keys, positions)
