"""sample(): a NumPyro model (or a log density) in, an ArviZ DataTree out.

The data flow: model -> Target (log density on unconstrained space) -> warmup (sequential, BlackJAX)
-> one step-map sampler per chain -> run_chain (the engine solves each chain, vmapped over chains)
-> postprocess (constrained values, deterministic sites) -> DataTree.
"""

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp

from parmcmc import jitcache, progress, weigh
from parmcmc.engine import DEER, QuasiDEER, Sequential, Shooting, blocks, sharding
from parmcmc.engine.results import warn_if_fell_back
from parmcmc.engine.solve import unconverged_reported_by_caller
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.health import (
    model_errors_named,
    report_unconverged,
    warn_if_frozen,
    warn_if_infinite_density,
    warn_if_not_mixed,
    warn_if_replay_may_differ,
)
from parmcmc.io.output import datatree_from_run
from parmcmc.jitcache import program_jit
from parmcmc.keys import chain_keys
from parmcmc.predictability.lyapunov import lyapunov_exponent
from parmcmc.prepare import Prepared, one_chain, prepare, vmapped_chains
from parmcmc.progress import Progress
from parmcmc.settings import (
    Settings,
    check_settings,
    dense_jacobian_fits,
)
from parmcmc.weigh import Choice


def sample(
    model: Callable,
    *,
    rng_key: jax.Array,
    num_samples: int,
    num_warmup: int = 1000,
    num_chains: int = 4,
    sampler: Any = "hmc",
    parallel: Any = "auto",
    solver: AbstractSolver | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    initial_position: Any = None,
    step_size: float | None = None,
    num_integration_steps: int | None = None,
    inverse_mass_matrix: Any = None,
    target_acceptance: float | None = None,
    keep_warmup: bool = False,
    progress_bar: bool = True,
    dims: dict | None = None,
    coords: dict | None = None,
    thinning: int = 1,
    init_strategy: Callable | None = None,
    log_likelihood: bool | None = None,
    posterior_predictive: bool = False,
    prior: int | None = None,
    mesh: Any = None,
    dense_mass: Any = None,
    step_size_jitter: Any = None,
    adaptation: str | None = None,
    integration_steps_jitter: Any = None,
    **solve_kwargs,
):
    """Sample `model` with `num_chains` chains of `num_samples` draws; returns an ArviZ DataTree.

    Parameters
    ----------
    model
        A NumPyro model function, or a log-density function of a (pytree) position, given with `initial_position`.
    sampler
        "hmc" (default: window adaptation, then each chain's trajectory length T from its own warmup draws; draw t
        takes ceil(v_t T / eps) leapfrog steps, v_t uniform), "mala", "barker" (Barker's
        proposal; warmup adapts its step size toward 0.574 and a diagonal scale), "adjustedmclmc" (Metropolis-adjusted
        MCLMC, 5 isokinetic steps per draw; step size toward 0.8 and a diagonal scale), or a sampler instance (its
        settings are used as they are, with the model's log density; warmup then only burns in). With "mala"/"hmc",
        warmup adapts the step size by dual averaging toward `target_acceptance` (0.574 MALA, 0.9 HMC; 0.8 with
        adaptation="window") and, for HMC,
        a diagonal mass matrix by windowed adaptation, unless `step_size` is given. docs/samplers.md says which
        sampler for which model.
    parallel
        "auto" (default): the faster on this device of the sequential chain and the parallel solve
        (parmcmc.weigh; the sequential chain priced from the warmup's own steps, the parallel solve by a cost model
        where that decides, else by timed probes and the predicted Newton iterations). On a CPU that is the
        sequential chain; the tree's attrs `auto_choice`, `auto_reason`, `auto_seconds` say what it chose, why and
        what choosing cost. True: each chain is solved in parallel over time by `solver` (default: DEER while its
        dense Jacobians fit in memory, see settings.dense_jacobian_fits, QuasiDEER beyond; from 512 draws on, that
        solver on blocks of 32 draws: Shooting(DEER(), 32), docs/convergence.md). False: the sequential reference
        (lax.scan of the same step map; the same draws).
    solver
        The parallel solver. With parallel="auto" it is the candidate weighed against the sequential chain; when
        auto declines it (and any max_iters=, atol=, ... given), an IgnoredArgumentWarning says so: pass
        parallel=True to run it regardless.
    dense_mass
        Warmup adapts a dense inverse mass matrix (HMC; NumPyro's name) or a dense linear preconditioner
        ``z = L^-1 (x - m)`` (MALA; L from the posterior's curvature at the warmup draws) instead of a diagonal
        one (HMC) or none (MALA). The preconditioner makes the step map's Jacobian near-diagonal, so QuasiDEER
        converges in few iterations on correlated posteriors. None: dense up to DENSE_MASS_MAX_DIM entries (0: off).
    step_size_jitter
        HMC only: draw t uses ``step_size * (1 + j (2 v_t - 1))``, v_t uniform from the chain's pre-drawn noise (None:
        DEFAULT_STEP_SIZE_JITTER with adaptation="window", none otherwise). See docs/samplers.md.
    adaptation
        HMC only: "window_trajectory" (Stan's windowed adaptation chain by chain, then each chain's trajectory length
        T = pi x the longest sd of its last slow window's draws whitened by its mass matrix), "window" (the window
        adaptation alone, num_integration_steps fixed; the default when num_integration_steps= or step_size= is
        given) or "chees" (ChEES: step size, trajectory
        length and diagonal mass matrix from all chains together; draws then take ceil(v L) leapfrog steps, L
        adapted; needs num_chains >= 2, and chain k's warmup then depends on every chain). None:
        DEFAULT_ADAPTATION. See docs/samplers.md.
    integration_steps_jitter
        HMC only: draw t takes ceil((1 - a + a v_t) L) leapfrog steps, L = num_integration_steps (or the adapted
        ceil(T / eps)), v_t uniform from the chain's pre-drawn noise; a in (0, 1]. None: 1 with adaptation="chees"
        or "window_trajectory", else DEFAULT_INTEGRATION_STEPS_JITTER.
    **solve_kwargs
        Passed to the engine's solve (max_iters, atol, rtol, window, patience). A parallel solve that fails
        is finished sequentially (a block solve, the default from 512 draws on, reruns the chain from its start), with
        a warning: every returned chain is converged. Defaults
        here: max_iters = max(64, T // 8), patience = 16 (fail fast); for a block solve, counted in blocks,
        engine.blocks.fail_fast_budget: budget n // 2 - 2 block iterations of n = T / B (depth T / 2), past which a
        chain goes on, up to max_iters = n, only while its exact prefix gains 1.5 blocks per iteration (a max_iters
        given here is the budget too, as for a plain solve).
    thinning
        Keep every thinning-th draw (NumPyro's rule: num_samples // thinning draws are kept).
    init_strategy
        A NumPyro init strategy (numpyro.infer.init_to_median, init_to_value(values=...), ...) for the chains'
        starts; default init_to_uniform. NumPyro models only.
    log_likelihood
        Compute the `log_likelihood` group (az.loo); None: yes, unless it is huge.
    posterior_predictive
        Add a `posterior_predictive` group (one draw of each observed site per draw).
    prior
        A number of prior draws: adds `prior` and `prior_predictive` groups (one chain).
    mesh
        A jax.sharding.Mesh with axes "chain" and/or "time" (docs/scaling.md): chains are split over "chain"
        (num_chains must be a multiple of its size), the states of each chain's solve over "time". The draws are
        those without a mesh. The warmup is not split.

    Returns
    -------
    xarray.DataTree
        The tree holds `posterior` (constrained sites and deterministic sites), `sample_stats`
        ((chain, draw) only: acceptance_rate, lp, step_size; diverging and energy for HMC),
        `solver_stats` (per chain: solver_iterations, solver_residual, solver_converged,
        solver_fell_back), `observed_data` and `log_likelihood` for NumPyro models with observations,
        and `warmup_posterior`/`warmup_sample_stats` when keep_warmup=True.

    Notes
    -----
    Chain k's start, warmup and draws depend on (rng_key, k) only, not on num_chains.
    """
    settings = check_settings(
        model=model,
        rng_key=rng_key,
        num_samples=num_samples,
        num_warmup=num_warmup,
        num_chains=num_chains,
        sampler=sampler,
        parallel=parallel,
        solver=solver,
        model_args=model_args,
        model_kwargs=model_kwargs,
        initial_position=initial_position,
        step_size=step_size,
        num_integration_steps=num_integration_steps,
        inverse_mass_matrix=inverse_mass_matrix,
        target_acceptance=target_acceptance,
        keep_warmup=keep_warmup,
        progress_bar=progress_bar,
        dims=dims,
        coords=coords,
        thinning=thinning,
        init_strategy=init_strategy,
        log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive,
        prior=prior,
        mesh=mesh,
        dense_mass=dense_mass,
        step_size_jitter=step_size_jitter,
        adaptation=adaptation,
        integration_steps_jitter=integration_steps_jitter,
        solve_kwargs=solve_kwargs,
    )
    with progress.phases():  # an error or Ctrl-C stops the progress display's clock
        prepared = prepare(settings)
        choice = auto_choice(settings, prepared) if settings.parallel == "auto" else None
        solver = pick_solver(settings, prepared) if choice is None else choice.solver
        run = run_chains(settings, prepared, solver)._replace(choice=choice)
    return datatree_from_run(prepared, run, settings)


def pick_solver(s: Settings, prepared: Prepared) -> AbstractSolver:
    """The solver the settings ask for; "auto" weighs the device (auto_choice)."""
    parallel, solver = s.parallel, s.solver
    if parallel is False:
        return Sequential()
    if parallel == "auto":
        return auto_choice(s, prepared).solver
    if solver is None:
        dim, dtype = prepared.template.dim, prepared.template.layout.dtype  # the bound sampler's: no eager slicing
        solver = DEER() if dense_jacobian_fits(dim, s.num_samples, s.num_chains, dtype) else QuasiDEER()
        if parallel is True and s.mesh is None and s.num_samples >= SHOOTING_MIN_STEPS:
            solver = Shooting(solver, SHOOTING_BLOCK)  # multiple shooting where blocks pay (docs/convergence.md)
    return solver


# From SHOOTING_MIN_STEPS draws on, sample(parallel=True)'s default solver runs on blocks of SHOOTING_BLOCK steps
# (engine/blocks.py; docs/convergence.md: blocks pay when T is many blocks long).
SHOOTING_BLOCK = 32
SHOOTING_MIN_STEPS = 512


def auto_choice(s: Settings, prepared: Prepared) -> Choice:
    """Choose for parallel="auto": the sequential chain or the solver parallel=True would run.

    The faster on this device (parmcmc.weigh.auto), the sequential chain priced from the warmup's own steps; the
    Choice says why.
    """
    from parmcmc.predictability.diagnose import choose_solver  # timed probes, then a pilot if needed

    def probe():
        sampler, x0 = one_chain(prepared, 0)
        return choose_solver(sampler, x0, s.rng_key, s.num_samples, solver=candidate, sequential_step_seconds=step_s)

    candidate, step_s = pick_solver(s._replace(parallel=True), prepared), prepared.step_seconds
    choice = weigh.auto(candidate, s.num_samples, step_s, prepared.template.dim, prepared.parallel_fits, probe)
    if s.progress_bar:
        print(choice, flush=True)
    weigh.warn_if_declined(choice, s.solver, s.solve_kwargs, stacklevel=4)
    return choice


FAIL_FAST_PATIENCE = 16  # iterations between the fail-fast checks of sample()'s parallel solves
FAIL_FAST_MIN_BUDGET = 64  # sample()'s default max_iters is max(this, T // 8)


class Run(NamedTuple):
    """A sampling run: the chains, their wall-clock and compile seconds, and the solver used."""

    chains: Any  # ChainResult with leading chain axis
    seconds: float  # wall-clock of the sampling run (compiled, excluding compilation)
    compile_seconds: float
    solver: AbstractSolver
    choice: Any = None  # parallel="auto"'s parmcmc.weigh.Choice, else None


def run_chains(s: Settings, prepared: Prepared, solver: AbstractSolver, noise_offset: int = 0) -> Run:
    """Sample every chain from the prepared state with `solver` (vmapped over chains).

    noise_offset: skip the noise of the first `noise_offset` steps of each chain's key, so that a run
    continued from the last state of a run of `noise_offset` steps with the same key gives the draws of
    one long run (parmcmc.infer.MCMC's post_warmup_state).
    """
    num_samples = s.num_samples
    keys = chain_keys(jax.random.split(s.rng_key, 3)[2], s.num_chains)
    kwargs = dict(s.solve_kwargs)
    throw = bool(kwargs.pop("throw", False))
    display = Progress(
        type(solver).__name__,
        num_samples,
        progress_bar=s.progress_bar,
        tolerance=kwargs.get("atol"),
        num_chains=s.num_chains,
    )
    if solver.parallel:
        kwargs.setdefault("fallback", "sequential")
        # Fail fast (docs/convergence.md): a chain whose parallel solve is projected past this budget stops
        # early and is finished sequentially; the other chains are not held back.
        block = blocks.block_of(solver, num_samples)  # a block solve's budget is counted in blocks
        budget = (max(FAIL_FAST_MIN_BUDGET, num_samples // 8), FAIL_FAST_PATIENCE)
        if block is not None:  # past its budget, a block solve goes on while it converges (engine/failfast.py)
            budget = blocks.fail_fast_budget(num_samples, block)
            if kwargs.get("max_iters") is None and kwargs.get("patience", 1) is not None:  # else the user's budget
                kwargs.setdefault("budget", budget[0])
            budget = (-(-num_samples // block), budget[1])
        kwargs.setdefault("max_iters", budget[0])
        kwargs.setdefault("patience", budget[1])
        if display.show:  # one function for every run (compiled code stays reusable); it feeds `display`
            kwargs.setdefault("progress", progress.engine_callback)
    else:  # the sequential reference takes no solve options (warned about in check_settings)
        kwargs = {}
    args = (keys, prepared.positions, prepared.step_size, prepared.inverse_mass_matrix, prepared.preconditioner)
    axis = None
    if s.mesh is not None:  # chains over "chain", each solve's states over "time" (engine/sharding.py)
        kwargs["mesh"], args, axis = s.mesh, sharding.put_chains(args, s.mesh), sharding.chain_axis(s.mesh)
    # Keyed on the traced program, with the log density's data hoisted into arguments: a second
    # call with new data, keys or step sizes of the same shapes compiles nothing.
    # A parallel solve's program holds the step map three times: its compile is the cost (jitcache.compiler_options).
    fn = program_jit(
        lambda k, x, e, m, p: vmapped_chains(
            prepared.template, x, k, e, m, num_samples, solver, kwargs, noise_offset, p, axis
        ),
        light=solver.parallel,
    )
    progress.start_phase(f"{type(solver).__name__}  |  {s.num_chains} chains x {num_samples} steps", s.progress_bar)
    before, t0 = jitcache.stats(), time.perf_counter()
    # sample() reports every chain's outcome itself, below
    with unconverged_reported_by_caller(), display, model_errors_named(prepared.target.name, "sample"):
        chains = jax.block_until_ready(fn(*args))
    compile_s = jitcache.stats().compile_seconds - before.compile_seconds
    seconds = time.perf_counter() - t0 - compile_s
    progress.end_phase()
    display.finish(chains, seconds, compile_s)
    warn_if_fell_back(
        chains, lambda: _estimated_lle(prepared, chains, keys, num_samples), call="sample", solver=solver, stacklevel=4
    )
    warn_if_infinite_density(chains)
    report_unconverged(chains, solver, throw=throw, call="sample")
    if not warn_if_frozen(chains, prepared.step_size, call="sample"):  # a frozen chain has not mixed: said once
        warn_if_not_mixed(chains, call="sample")
    warn_if_replay_may_differ(chains, call="sample")
    return Run(chains, seconds, compile_s, solver)


def _estimated_lle(prepared: Prepared, chains, keys, num_samples):
    """The LLE of the first chain that fell back, from a sequential pilot (only when a warning is due)."""
    c = int(jnp.argmax(jnp.asarray(chains.fell_back)))
    sampler, x0 = one_chain(prepared, c)
    sampler = sampler.bind(x0)
    noise = sampler.noise(keys[c], min(num_samples, 2048))
    return lyapunov_exponent(sampler.step, sampler.ravel(x0), noise)


_one_chain = one_chain  # the name parmcmc.bench.suite and older callers import
