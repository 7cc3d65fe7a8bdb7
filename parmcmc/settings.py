"""The arguments of sample(), compare() and parmcmc.infer.MCMC, checked once before any heavy work.

`check_settings` takes every option (parmcmc.api.check_settings fills the ones a caller leaves out with
sample()'s defaults) and returns the `Settings` the rest of the pipeline reads.
"""

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from parmcmc.arguments import check_int
from parmcmc.engine import DEER, QuasiDEER, Sequential, sharding, solve
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.memory import check_memory, log_density_scratch_bytes
from parmcmc.samplers.base import AbstractSampler, check_step_size
from parmcmc.validate import (
    check_flags_and_names,
    check_float64_inputs,
    check_initial_position,
    check_mass_matrix_setting,
    check_model,
    check_parallel,
    check_rng_key,
    check_solve_options,
    resolve_sampler,
    warn_ignored_arguments,
)
from parmcmc.warmup import HMC_TARGET_ACCEPTANCE, MALA_TARGET_ACCEPTANCE
from parmcmc.warmup_scale import ADJUSTED_MCLMC_TARGET_ACCEPTANCE, BARKER_TARGET_ACCEPTANCE

TARGET_ACCEPTANCE = {
    "mala": MALA_TARGET_ACCEPTANCE,
    "hmc": HMC_TARGET_ACCEPTANCE,
    "barker": BARKER_TARGET_ACCEPTANCE,
    "adjustedmclmc": ADJUSTED_MCLMC_TARGET_ACCEPTANCE,
}  # warmup.py and warmup_scale.py own the values
# dense_mass=None: a dense mass matrix (HMC) or preconditioner (MALA) up to this many entries (docs/samplers.md).
DENSE_MASS_MAX_DIM = 0
# step_size_jitter=None: HMC's default jitter of the step size per draw (docs/samplers.md).
DEFAULT_STEP_SIZE_JITTER = 0.5
# adaptation=None and integration_steps_jitter=None: HMC's default warmup and jitter of the number of
# leapfrog steps per draw (docs/samplers.md).
DEFAULT_ADAPTATION = "window_trajectory"
DEFAULT_INTEGRATION_STEPS_JITTER = None
ADAPTATIONS = ("window", "chees", "window_trajectory")
# adaptation="window_trajectory": the cap on the adapted maximum number of leapfrog steps per draw.
MAX_INTEGRATION_STEPS = 1024


def _check_trajectory_options(name, instance, adaptation, jitter, num_chains, num_warmup, dense_mass) -> None:
    """adaptation= and integration_steps_jitter=: settings of sampler='hmc' (checked before any work)."""
    if adaptation is None and jitter is None:
        return
    if name != "hmc" or instance is not None:
        raise ValueError(
            "sample: adaptation= and integration_steps_jitter= are settings of sampler='hmc' (an HMC "
            "instance takes HMC(..., integration_steps_jitter=...) and is not adapted)."
        )
    if adaptation is not None and adaptation not in ADAPTATIONS:
        raise ValueError(f"sample: adaptation must be one of {ADAPTATIONS} (or None: the default); got {adaptation!r}.")
    if adaptation == "chees" and num_chains < 2:
        raise ValueError(
            "sample: adaptation='chees' adapts from cross-chain statistics and needs num_chains >= 2; "
            "use num_chains=4 or more, or adaptation='window'."
        )
    if adaptation == "chees" and dense_mass not in (None, False):
        raise ValueError(
            "sample: adaptation='chees' adapts a diagonal mass matrix; dense_mass= is a setting of "
            "adaptation='window'. Leave one of them out."
        )
    if adaptation == "chees" and num_warmup < 1:
        raise ValueError("sample: adaptation='chees' needs num_warmup >= 1 (it adapts during warmup).")
    if jitter is not None and (
        isinstance(jitter, bool) or not isinstance(jitter, numbers.Real) or not (0.0 < jitter <= 1.0)  # pyright: ignore[reportOperatorIssue]
    ):
        raise ValueError(
            "sample: integration_steps_jitter must lie in (0, 1] (the fraction of num_integration_steps drawn "
            f"at random per draw; 1: uniform on 1..L); got {jitter!r}."
        )


def _check_sampler_options(name, instance, dense_mass, step_size_jitter) -> None:
    if not (
        dense_mass is None or type(dense_mass) is bool or (isinstance(dense_mass, str) and dense_mass == "low_rank")
    ):
        raise TypeError(
            f"sample: dense_mass must be True, False, 'low_rank' (HMC) or None (by dimension); got {dense_mass!r}."
        )
    if dense_mass == "low_rank" and (name != "hmc" or instance is not None):
        raise ValueError("sample: dense_mass='low_rank' is a setting of sampler='hmc' (its window adaptation).")
    if dense_mass and name in ("barker", "adjustedmclmc"):
        raise ValueError(
            f"sample: dense_mass={dense_mass!r} is not available for sampler={name!r} (its warmup adapts a diagonal "
            "scale)."
        )
    if step_size_jitter is None:
        return
    if name != "hmc" or instance is not None:
        raise ValueError(
            "sample: step_size_jitter= is a setting of sampler='hmc' (an HMC instance takes it as "
            "HMC(..., step_size_jitter=...))."
        )
    if (
        isinstance(step_size_jitter, bool)
        or not isinstance(step_size_jitter, numbers.Real)
        or not (0.0 <= step_size_jitter < 1.0)  # pyright: ignore[reportOperatorIssue] (typeshed's Real has no order)
    ):
        raise ValueError(f"sample: step_size_jitter must lie in [0, 1); got {step_size_jitter!r}.")


class Settings(NamedTuple):
    """The arguments of sample()/compare(), checked once."""

    model: Callable
    rng_key: jax.Array
    num_samples: int
    num_warmup: int
    num_chains: int
    sampler_name: str
    sampler: AbstractSampler | None
    parallel: Any
    solver: AbstractSolver | None
    model_args: tuple
    model_kwargs: dict | None
    initial_position: Any
    step_size: float | None
    num_integration_steps: int
    inverse_mass_matrix: Any
    target_acceptance: float | None
    keep_warmup: bool
    progress_bar: bool
    dims: dict | None
    coords: dict | None
    solve_kwargs: dict
    thinning: int = 1
    init_strategy: Callable | None = None
    log_likelihood: bool | None = None
    posterior_predictive: bool = False
    prior: int | None = None
    mesh: Any = None
    dense_mass: Any = None
    step_size_jitter: Any = None
    adaptation: str | None = None
    integration_steps_jitter: Any = None


# The options of sample() that compare() and parmcmc.infer.MCMC pass on by name (the rest go to the engine's solve).
SAMPLE_OPTIONS = frozenset(Settings._fields) - {"model", "rng_key", "num_samples", "sampler_name", "solve_kwargs"}


def check_settings(
    *,
    model: Callable,
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
    solve_kwargs: dict | None = None,
) -> Settings:
    """Check every argument of sample() before any heavy work (each error names the argument and the fix).

    The arguments and their defaults are sample()'s (a test holds the two signatures equal); callers that
    set only some options (compare, parmcmc.infer.MCMC) leave the others to these defaults.
    ``solve_kwargs`` holds the options for the engine's solve.

    Returns
    -------
    Settings
        The checked arguments, counts as Python ints, the sampler resolved to its name and instance.
    """
    check_model(model)
    check_rng_key(rng_key)
    # Stored as Python ints: NumPy integers pass the check but not every later isinstance(..., int).
    num_samples = check_int("num_samples", num_samples, call="sample")
    num_chains = check_int("num_chains", num_chains, call="sample")
    num_warmup = check_int("num_warmup", num_warmup, minimum=0, call="sample")
    given_steps = num_integration_steps
    num_integration_steps = (
        10 if given_steps is None else check_int("num_integration_steps", given_steps, call="sample")
    )
    if step_size is not None:
        try:
            check_step_size(step_size)
        except (TypeError, ValueError) as err:
            raise type(err)(f"sample: {err} Or leave step_size out and let the warmup adapt it.") from None
    adapting = num_warmup > 0 and step_size is None and not isinstance(sampler, AbstractSampler)
    check_initial_position(initial_position, adapting=adapting)
    check_flags_and_names(progress_bar=progress_bar, keep_warmup=keep_warmup, dims=dims, coords=coords)
    parallel = check_parallel(parallel)
    if solver is not None and not isinstance(solver, AbstractSolver):
        raise TypeError(f"sample: solver must be an engine solver such as parmcmc.DEER(); got {solver!r}.")
    name, instance = resolve_sampler(sampler)
    if num_warmup == 0 and instance is None and step_size is None:
        raise ValueError("sample: num_warmup=0 leaves nothing to adapt the step size with; give step_size=.")
    check_mass_matrix_setting(inverse_mass_matrix, name, instance, step_size)
    _check_sampler_options(name, instance, dense_mass, step_size_jitter)
    _check_trajectory_options(name, instance, adaptation, integration_steps_jitter, num_chains, num_warmup, dense_mass)
    accept = target_acceptance
    if accept is not None and not (isinstance(accept, numbers.Real) and 0.0 < accept < 1.0):  # pyright: ignore[reportOperatorIssue]
        raise ValueError(f"sample: target_acceptance must lie in (0, 1); got {accept!r}.")
    has_data = not (isinstance(model_args, tuple) and not model_args) or not (
        model_kwargs is None or model_kwargs == {}
    )
    if initial_position is not None and has_data:
        raise ValueError(
            "sample: model_args/model_kwargs are passed to NumPyro models; with initial_position= the model is a "
            "log density of the position alone. Close over the data instead (functools.partial or a closure), "
            "or leave initial_position out for a NumPyro model."
        )
    solve_kwargs = dict(solve_kwargs or {})
    check_solve_options(solve_kwargs, solve)
    warn_ignored_arguments(
        parallel=parallel,
        solver=solver,
        solve_kwargs=solve_kwargs,
        sampler_name=name,
        instance=instance,
        num_integration_steps=given_steps,
        step_size=step_size,
        target_acceptance=accept,
        keep_warmup=keep_warmup,
        num_warmup=num_warmup,
        adaptation=adaptation,
        dense_mass=dense_mass,
    )
    if adaptation is None and (given_steps is not None or step_size is not None) and name == "hmc" and instance is None:
        adaptation = "window"  # a given number of leapfrog steps (or step size) is a fixed trajectory: not adapted
    thinning, prior = _check_output_settings(
        num_samples, initial_position, thinning, init_strategy, log_likelihood, posterior_predictive, prior
    )
    mesh = sharding.check_mesh_for_chains(mesh, num_chains)
    check_float64_inputs(
        model_args=model_args,
        model_kwargs=model_kwargs,
        initial_position=initial_position,
        inverse_mass_matrix=inverse_mass_matrix,
    )
    return Settings(
        model=model,
        rng_key=rng_key,
        num_samples=num_samples,
        num_warmup=num_warmup,
        num_chains=num_chains,
        sampler_name=name,
        sampler=instance,
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
        solve_kwargs=solve_kwargs,
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
    )


def _check_output_settings(
    num_samples, initial_position, thinning, init_strategy, log_likelihood, posterior_predictive, prior
) -> tuple[int, int | None]:
    """thinning, init_strategy, log_likelihood, posterior_predictive, prior (parmcmc.infer owns these)."""
    thinning = check_int("thinning", thinning, call="sample")
    if thinning > num_samples:
        raise ValueError(
            f"sample: thinning={thinning} keeps no draw of num_samples={num_samples}; use thinning <= num_samples."
        )
    if init_strategy is not None and not callable(init_strategy):
        raise TypeError(
            "sample: init_strategy must be a NumPyro init strategy such as numpyro.infer.init_to_median; "
            f"got {init_strategy!r}."
        )
    if init_strategy is not None and initial_position is not None:
        raise ValueError(
            "sample: init_strategy= chooses the starts of a NumPyro model; with initial_position= "
            "the start is given. Leave one of them out."
        )
    for name, value in (("log_likelihood", log_likelihood), ("posterior_predictive", posterior_predictive)):
        if value is not None and not isinstance(value, bool | jnp.bool_):  # 1 == True: 0, 1 and 1.0 are refused
            raise TypeError(f"sample: {name} must be True or False; got {value!r}.")
    if prior is not None:
        prior = check_int("prior", prior, call="sample")
    if (prior or posterior_predictive or log_likelihood) and initial_position is not None:
        raise ValueError(  # log_likelihood=True was ignored for a log density: a group asked for and never there
            "sample: prior=, posterior_predictive= and log_likelihood=True need a NumPyro model; a log density "
            "given with initial_position= has no prior or observations to draw or evaluate. Leave them out."
        )
    return thinning, prior


# The dense Jacobians of a DEER solve (T x D x D per chain, and about as much again in the scan's
# intermediates) may take this much memory before QuasiDEER (T x D) is chosen instead (docs/convergence.md).
DENSE_MEMORY_BYTES = 4 * 2**30


def dense_jacobian_fits(dim: int, num_steps: int, num_chains: int, dtype) -> bool:
    """Whether DEER's dense Jacobians fit DENSE_MEMORY_BYTES.

    Both DEER and QuasiDEER's exact diagonal cost D forward passes per step, so the dense scan's memory (not D <=
    16) is what limits DEER.
    """
    return 4 * num_chains * num_steps * dim * dim * jnp.dtype(dtype).itemsize <= DENSE_MEMORY_BYTES


def check_run_memory(s: Settings, bound, prepared_positions) -> bool:
    """Refuse a run that cannot fit, with the figure and what to do, before the warmup is spent.

    With parallel="auto" only the sequential chain must fit; returns whether the parallel solve fits too
    (auto then runs the sequential chain when it does not).
    """
    dim = bound.dim
    dense = dense_jacobian_fits(dim, s.num_samples, s.num_chains, bound.layout.dtype)
    parallel_solver = s.solver or (DEER() if dense else QuasiDEER())
    x0 = bound.ravel(jax.tree_util.tree_map(lambda a: a[0], prepared_positions))
    scratch = log_density_scratch_bytes(bound.logdensity, x0)

    def check(solver):
        check_memory(
            s.num_chains,
            s.num_samples,
            dim,
            bound.layout.dtype,
            solver,
            s.solve_kwargs.get("window"),
            scratch,
            num_warmup=s.num_warmup,
            keep_warmup=s.keep_warmup,
        )

    check(Sequential() if s.parallel is False or s.parallel == "auto" else parallel_solver)
    if s.parallel == "auto":
        try:
            check(parallel_solver)
        except MemoryError:
            return False
    return True


def hmc_adaptation(s: Settings) -> str:
    """HMC's warmup: the setting, else the default."""
    return DEFAULT_ADAPTATION if s.adaptation is None else s.adaptation


def hmc_integration_steps_jitter(s: Settings):
    """HMC's jitter of the number of leapfrog steps.

    The setting, else 1 under ChEES (its kernel's), else the default.
    """
    if s.integration_steps_jitter is not None:
        return s.integration_steps_jitter
    return 1.0 if hmc_adaptation(s) in ("chees", "window_trajectory") else DEFAULT_INTEGRATION_STEPS_JITTER


def hmc_step_size_jitter(s: Settings):
    """HMC's jitter of the step size: the setting, else none with an adapted trajectory, else the default."""
    if s.step_size_jitter is not None:
        return s.step_size_jitter
    return 0.0 if hmc_adaptation(s) == "window_trajectory" else DEFAULT_STEP_SIZE_JITTER
