"""sample(): a NumPyro model (or a log density) in, an ArviZ DataTree out.

The data flow: model -> Target (log density on unconstrained space) -> warmup (sequential, BlackJAX)
-> one step-map sampler per chain -> run_chain (the engine solves each chain, vmapped over chains)
-> postprocess (constrained values, deterministic sites) -> DataTree.
"""

import numbers
import time
import warnings
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from parmcmc.chain import run_chain
from parmcmc.diagnostics import lyapunov_exponent, warn_if_fell_back
from parmcmc.engine import DEER, QuasiDEER, Sequential, solve
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.keys import chain_keys
from parmcmc.models import Target, from_logdensity, from_numpyro
from parmcmc.output import datatree_from_run
from parmcmc.progress import Progress
from parmcmc.samplers import HMC, MALA
from parmcmc.samplers.base import AbstractSampler, check_step_size
from parmcmc.validate import (
    check_float64_inputs,
    check_mass_matrix_setting,
    check_model,
    check_positive_int,
    check_rng_key,
    check_solve_options,
    resolve_sampler,
)
from parmcmc.warmup import hmc_warmup, mala_warmup

TARGET_ACCEPTANCE = {"mala": 0.574, "hmc": 0.8}


class Prepared(NamedTuple):
    """Everything sampling needs once the warmup is done (one entry per chain where it varies)."""

    target: Target
    template: AbstractSampler     # the sampler, its log density set to the target's
    positions: Any                # (chain, ...) starting positions after warmup
    step_size: jax.Array          # (chain,)
    inverse_mass_matrix: Any      # (chain, D) for HMC, else None
    warmup: Any                   # WarmupResult or None
    warmup_seconds: float


class Settings(NamedTuple):
    """The arguments of sample()/compare(), checked once."""

    model: Callable
    rng_key: jax.Array
    num_samples: int
    num_warmup: int
    num_chains: int
    sampler_name: str
    sampler: Optional[AbstractSampler]
    parallel: Any
    solver: Optional[AbstractSolver]
    model_args: tuple
    model_kwargs: Optional[dict]
    initial_position: Any
    step_size: Optional[float]
    num_integration_steps: int
    inverse_mass_matrix: Any
    target_acceptance: Optional[float]
    keep_warmup: bool
    progress_bar: bool
    dims: Optional[dict]
    coords: Optional[dict]
    solve_kwargs: dict


def sample(
    model: Callable,
    *,
    rng_key: jax.Array,
    num_samples: int,
    num_warmup: int = 1000,
    num_chains: int = 4,
    sampler: Any = "mala",
    parallel: Any = True,
    solver: Optional[AbstractSolver] = None,
    model_args: tuple = (),
    model_kwargs: Optional[dict] = None,
    initial_position: Any = None,
    step_size: Optional[float] = None,
    num_integration_steps: int = 10,
    inverse_mass_matrix: Any = None,
    target_acceptance: Optional[float] = None,
    keep_warmup: bool = False,
    progress_bar: bool = True,
    dims: Optional[dict] = None,
    coords: Optional[dict] = None,
    **solve_kwargs,
):
    """Sample `model` with `num_chains` chains of `num_samples` draws; returns an ArviZ DataTree.

    model:       a NumPyro model function, or a log-density function of a (pytree) position, given
                 with `initial_position`.
    sampler:     "mala", "hmc", or a MALA/HMC instance (its settings are used as they are, with the
                 model's log density; warmup then only burns in). With "mala"/"hmc", warmup adapts the
                 step size by dual averaging toward `target_acceptance` (0.574 MALA, 0.8 HMC) and, for
                 HMC, a diagonal mass matrix by windowed adaptation, unless `step_size` is given.
    parallel:    True: each chain is solved in parallel over time by `solver` (default: DEER while its
                 dense Jacobians fit in memory, see api.dense_jacobian_fits, QuasiDEER beyond);
                 False: the sequential reference
                 (lax.scan of the same step map; the same draws); "auto": parmcmc.diagnose decides.
    solve_kwargs: passed to the engine's solve (max_iters, atol, rtol, window, patience). A parallel solve
                 that fails continues sequentially from its exact prefix, with a warning: every returned
                 chain is converged. Defaults here: max_iters = max(64, T // 8), patience = 16 (fail fast).
    Chain k's start, warmup and draws depend on (rng_key, k) only, not on num_chains.

    The tree holds `posterior` (constrained sites and deterministic sites), `sample_stats`
    (acceptance_rate, lp, step_size; diverging and energy for HMC; solver_iterations,
    solver_residual, solver_converged, solver_fell_back per chain), `observed_data` for NumPyro
    models with observations, and `warmup_posterior`/`warmup_sample_stats` when keep_warmup=True.
    """
    settings = check_settings(**{k: v for k, v in locals().items()})
    prepared = prepare(settings)
    solver = pick_solver(settings, prepared)
    run = run_chains(settings, prepared, solver)
    return datatree_from_run(prepared, run, settings)


def check_settings(*, sampler, solve_kwargs, **kw) -> Settings:
    """Check every argument before any heavy work."""
    check_model(kw["model"])
    check_rng_key(kw["rng_key"])
    # Stored as Python ints: NumPy integers pass the check but not every later isinstance(..., int).
    kw["num_samples"] = check_positive_int("num_samples", kw["num_samples"])
    kw["num_chains"] = check_positive_int("num_chains", kw["num_chains"])
    kw["num_warmup"] = check_positive_int("num_warmup", kw["num_warmup"], allow_zero=True)
    kw["num_integration_steps"] = check_positive_int("num_integration_steps", kw["num_integration_steps"])
    if kw["step_size"] is not None:
        try:
            check_step_size(kw["step_size"])
        except (TypeError, ValueError) as err:
            raise type(err)(f"sample: {err} Or leave step_size out and let the warmup adapt it.") from None
    if kw["parallel"] not in (True, False, "auto"):
        raise ValueError(f"sample: parallel={kw['parallel']!r}; use True, False or 'auto'.")
    if kw["solver"] is not None and not isinstance(kw["solver"], AbstractSolver):
        raise TypeError(f"sample: solver must be an engine solver such as parmcmc.DEER(); got {kw['solver']!r}.")
    name, instance = resolve_sampler(sampler)
    if kw["num_warmup"] == 0 and instance is None and kw["step_size"] is None:
        raise ValueError("sample: num_warmup=0 leaves nothing to adapt the step size with; give step_size=.")
    check_mass_matrix_setting(kw["inverse_mass_matrix"], name, instance, kw["step_size"])
    accept = kw["target_acceptance"]
    if accept is not None and not (isinstance(accept, numbers.Real) and 0.0 < accept < 1.0):
        raise ValueError(f"sample: target_acceptance must lie in (0, 1); got {accept!r}.")
    args, kwargs = kw["model_args"], kw["model_kwargs"]
    has_data = not (isinstance(args, tuple) and not args) or not (kwargs is None or kwargs == {})
    if kw["initial_position"] is not None and has_data:
        raise ValueError(
            "sample: model_args/model_kwargs are passed to NumPyro models; with initial_position= the model is a "
            "log density of the position alone. Close over the data instead (functools.partial or a closure), "
            "or leave initial_position out for a NumPyro model."
        )
    check_solve_options(solve_kwargs, solve)
    check_float64_inputs(model_args=kw["model_args"], model_kwargs=kw["model_kwargs"],
                         initial_position=kw["initial_position"], inverse_mass_matrix=kw["inverse_mass_matrix"])
    return Settings(sampler_name=name, sampler=instance, solve_kwargs=solve_kwargs, **kw)


def prepare(s: Settings) -> Prepared:
    """The target, its starting positions and the warmup: the part that is the same for parallel and
    sequential sampling."""
    init_key, warm_key, _ = jax.random.split(s.rng_key, 3)
    target = _target(s.model, init_key, s.num_chains, s.model_args, s.model_kwargs, s.initial_position)
    name, template = s.sampler_name, s.sampler
    if template is None:
        cls = MALA if name == "mala" else HMC
        args = (1.0,) if name == "mala" else (1.0, s.num_integration_steps, s.inverse_mass_matrix)
        template, adapt = cls(target.logdensity_fn, *args), s.step_size is None
    else:
        template, adapt = template.replace(logdensity_fn=target.logdensity_fn), False
    # Bind to chain 0's start: the sampler's own checks (e.g. the mass matrix's size) run now, before warmup.
    template.bind(jax.tree_util.tree_map(lambda a: a[0], target.initial_positions))
    eps = jnp.full((s.num_chains,), s.step_size if s.step_size is not None else template.step_size)
    imm = getattr(template, "inverse_mass_matrix", None)
    imm = None if imm is None else jnp.broadcast_to(imm, (s.num_chains,) + jnp.shape(imm))
    warm, positions, t0 = None, target.initial_positions, time.perf_counter()
    if s.num_warmup and adapt:
        if s.progress_bar:
            print(f"warmup: {s.num_warmup} steps x {s.num_chains} chains ({name}, sequential, adapting)", flush=True)
        accept = TARGET_ACCEPTANCE[name] if s.target_acceptance is None else s.target_acceptance
        if name == "mala":
            warm = mala_warmup(target.logdensity_fn, positions, warm_key, s.num_warmup,
                               target_acceptance=accept, keep_draws=s.keep_warmup)
        else:
            warm = hmc_warmup(target.logdensity_fn, positions, warm_key, s.num_warmup,
                              template.num_integration_steps, target_acceptance=accept, keep_draws=s.keep_warmup)
            imm = warm.inverse_mass_matrix
        positions, eps = warm.positions, warm.step_size
    elif s.num_warmup:
        if s.progress_bar:
            print(f"warmup: {s.num_warmup} steps x {s.num_chains} chains (burn-in, sequential)", flush=True)
        keys = chain_keys(warm_key, s.num_chains)
        burn = _vmapped_chains(template, positions, keys, eps, imm, s.num_warmup, Sequential(), {})
        positions = jax.tree_util.tree_map(lambda a: a[:, -1], burn.positions)
    jax.block_until_ready(positions)
    return Prepared(target, template, positions, eps, imm, warm, time.perf_counter() - t0)


def _target(model, key, num_chains, model_args, model_kwargs, initial_position) -> Target:
    check_model(model)
    if initial_position is not None:
        return from_logdensity(model, initial_position=initial_position, num_chains=num_chains)
    return from_numpyro(model, key, model_args=model_args, model_kwargs=model_kwargs, num_chains=num_chains)


def pick_solver(s: Settings, prepared: Prepared) -> AbstractSolver:
    """The solver the settings ask for; "auto" asks parmcmc.diagnose for its verdict."""
    parallel, solver = s.parallel, s.solver
    if parallel is False:
        return Sequential()
    if solver is None:
        flat = jax.flatten_util.ravel_pytree(jax.tree_util.tree_map(lambda a: a[0], prepared.positions))[0]
        solver = DEER() if dense_jacobian_fits(flat.size, s.num_samples, s.num_chains, flat.dtype) else QuasiDEER()
    if parallel == "auto":
        from parmcmc.diagnose import diagnose  # the verdict needs a pilot chain

        sampler, x0 = _one_chain(prepared, 0)
        verdict = diagnose(sampler, x0, s.rng_key, s.num_samples, solver=solver)
        return solver if verdict.parallel_pays else Sequential()
    return solver


# The dense Jacobians of a DEER solve (T x D x D per chain, and about as much again in the scan's
# intermediates) may take this much memory before QuasiDEER (T x D) is chosen instead (docs/convergence.md).
DENSE_MEMORY_BYTES = 4 * 2**30


def dense_jacobian_fits(dim: int, num_steps: int, num_chains: int, dtype) -> bool:
    """Whether DEER's dense Jacobians fit DENSE_MEMORY_BYTES: both DEER and QuasiDEER's exact diagonal
    cost D forward passes per step, so the dense scan's memory (not D <= 16) is what limits DEER."""
    return 4 * num_chains * num_steps * dim * dim * jnp.dtype(dtype).itemsize <= DENSE_MEMORY_BYTES


def _one_chain(prepared: Prepared, c: int):
    """(sampler with chain c's step size and mass matrix, chain c's start) after warmup."""
    imm = None if prepared.inverse_mass_matrix is None else prepared.inverse_mass_matrix[c]
    x0 = jax.tree_util.tree_map(lambda a: a[c], prepared.positions)
    return _chain_sampler(prepared.template, prepared.step_size[c], imm), x0


def _chain_sampler(template, eps, imm):
    return template.replace(step_size=eps) if imm is None else template.replace(step_size=eps, inverse_mass_matrix=imm)


def _vmapped_chains(template, positions, keys, eps, imm, num_steps, solver, solve_kwargs):
    def one(key, x0, eps, imm):
        return run_chain(_chain_sampler(template, eps, imm), x0, key, num_steps, solver=solver, **solve_kwargs)

    return jax.vmap(one, in_axes=(0, 0, 0, None if imm is None else 0))(keys, positions, eps, imm)


FAIL_FAST_PATIENCE = 16      # iterations between the fail-fast checks of sample()'s parallel solves
FAIL_FAST_MIN_BUDGET = 64    # sample()'s default max_iters is max(this, T // 8)


class Run(NamedTuple):
    chains: Any          # ChainResult with leading chain axis
    seconds: float       # wall-clock of the sampling run (compiled, excluding compilation)
    compile_seconds: float
    solver: AbstractSolver


def run_chains(s: Settings, prepared: Prepared, solver: AbstractSolver) -> Run:
    """Sample every chain from the prepared state with `solver` (vmapped over chains)."""
    num_samples = s.num_samples
    keys = chain_keys(jax.random.split(s.rng_key, 3)[2], s.num_chains)
    kwargs = dict(s.solve_kwargs)
    if not isinstance(solver, Sequential):
        kwargs.setdefault("fallback", "sequential")
        # Fail fast (docs/convergence.md): a chain whose parallel solve is projected past this budget stops
        # early and continues sequentially from its exact prefix; the other chains are not held back.
        kwargs.setdefault("max_iters", max(FAIL_FAST_MIN_BUDGET, num_samples // 8))
        kwargs.setdefault("patience", FAIL_FAST_PATIENCE)
        if s.progress_bar:
            kwargs.setdefault("progress", Progress(type(solver).__name__, num_samples))
    args = (keys, prepared.positions, prepared.step_size, prepared.inverse_mass_matrix)
    fn = jax.jit(lambda k, x, e, m: _vmapped_chains(prepared.template, x, k, e, m, num_samples, solver, kwargs))
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    chains = jax.block_until_ready(compiled(*args))
    seconds = time.perf_counter() - t0
    if s.progress_bar:
        Progress.finish(type(solver).__name__, chains, seconds, compile_s)
    warn_if_fell_back(chains, lambda: _estimated_lle(prepared, chains, keys, num_samples), call="sample",
                      solver=solver, stacklevel=4)
    _warn_if_infinite_density(chains)
    return Run(chains, seconds, compile_s, solver)


def _estimated_lle(prepared: Prepared, chains, keys, num_samples):
    """The LLE of the first chain that fell back, from a sequential pilot (only when a warning is due)."""
    c = int(jnp.argmax(jnp.asarray(chains.fell_back)))
    sampler, x0 = _one_chain(prepared, c)
    sampler = sampler.bind(x0)
    noise = sampler.noise(keys[c], min(num_samples, 2048))
    return lyapunov_exponent(sampler.step, sampler.ravel(x0), noise)


def _warn_if_infinite_density(chains) -> None:
    """A proposal whose log density is +inf is accepted (as in BlackJAX) and the chain never leaves it:
    every later proposal is rejected. Such draws look like a converged chain; say so."""
    lp = jnp.asarray(chains.stats.logdensity)  # (chain, draw)
    stuck = jnp.isposinf(lp)
    if bool(jnp.any(stuck)):
        rows = jnp.flatnonzero(jnp.any(stuck, axis=1)).tolist()
        first = [int(jnp.argmax(stuck[k])) for k in rows]
        warnings.warn(
            f"sample: the log density is +inf at the draws of chain(s) {rows} from draw(s) {first} on. A chain "
            "that accepts a point of infinite density never leaves it (every later proposal is rejected; HMC "
            "marks every step divergent), so these draws are not from the posterior. The density is unbounded "
            "there: look for log(0) with the wrong sign, a division by zero, or a density such as 1/x near 0.",
            RuntimeWarning,
            stacklevel=3,
        )

