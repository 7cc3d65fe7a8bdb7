"""The arguments of sample(), compare() and parmcmc.infer.MCMC, checked once before any heavy work.

`check_settings` takes every option (parmcmc.api.check_settings fills the ones a caller leaves out with
sample()'s defaults) and returns the `Settings` the rest of the pipeline reads.
"""

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from parmcmc.engine import sharding, solve
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.samplers.base import AbstractSampler, check_step_size
from parmcmc.validate import (
    check_flags_and_names,
    check_float64_inputs,
    check_initial_position,
    check_mass_matrix_setting,
    check_model,
    check_positive_int,
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


def _check_sampler_options(name, instance, dense_mass, step_size_jitter) -> None:
    if dense_mass not in (None, True, False):
        raise TypeError(f"sample: dense_mass must be True, False or None (by dimension); got {dense_mass!r}.")
    if dense_mass and name in ("barker", "adjustedmclmc"):
        raise ValueError(
            f"sample: dense_mass=True is not available for sampler={name!r} (its warmup adapts a diagonal scale)."
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


def check_settings(*, sampler, solve_kwargs, **kw) -> Settings:
    """Check every argument of sample() before any heavy work (each error names the argument and the fix)."""
    check_model(kw["model"])
    check_rng_key(kw["rng_key"])
    # Stored as Python ints: NumPy integers pass the check but not every later isinstance(..., int).
    kw["num_samples"] = check_positive_int("num_samples", kw["num_samples"])
    kw["num_chains"] = check_positive_int("num_chains", kw["num_chains"])
    kw["num_warmup"] = check_positive_int("num_warmup", kw["num_warmup"], allow_zero=True)
    given_steps = kw["num_integration_steps"]
    kw["num_integration_steps"] = (
        10 if given_steps is None else check_positive_int("num_integration_steps", given_steps)
    )
    if kw["step_size"] is not None:
        try:
            check_step_size(kw["step_size"])
        except (TypeError, ValueError) as err:
            raise type(err)(f"sample: {err} Or leave step_size out and let the warmup adapt it.") from None
    check_initial_position(kw["initial_position"])
    check_flags_and_names(
        progress_bar=kw["progress_bar"], keep_warmup=kw["keep_warmup"], dims=kw["dims"], coords=kw["coords"]
    )
    if kw["parallel"] not in (True, False, "auto"):
        raise ValueError(f"sample: parallel={kw['parallel']!r}; use True, False or 'auto'.")
    if kw["solver"] is not None and not isinstance(kw["solver"], AbstractSolver):
        raise TypeError(f"sample: solver must be an engine solver such as parmcmc.DEER(); got {kw['solver']!r}.")
    name, instance = resolve_sampler(sampler)
    if kw["num_warmup"] == 0 and instance is None and kw["step_size"] is None:
        raise ValueError("sample: num_warmup=0 leaves nothing to adapt the step size with; give step_size=.")
    check_mass_matrix_setting(kw["inverse_mass_matrix"], name, instance, kw["step_size"])
    kw.setdefault("dense_mass", None)
    kw.setdefault("step_size_jitter", None)
    _check_sampler_options(name, instance, kw["dense_mass"], kw["step_size_jitter"])
    accept = kw["target_acceptance"]
    if accept is not None and not (isinstance(accept, numbers.Real) and 0.0 < accept < 1.0):  # pyright: ignore[reportOperatorIssue]
        raise ValueError(f"sample: target_acceptance must lie in (0, 1); got {accept!r}.")
    args, kwargs = kw["model_args"], kw["model_kwargs"]
    has_data = not (isinstance(args, tuple) and not args) or not (kwargs is None or kwargs == {})
    if kw["initial_position"] is not None and has_data:
        raise ValueError(
            "sample: model_args/model_kwargs are passed to NumPyro models; with initial_position= the model is a "
            "log density of the position alone. Close over the data instead (functools.partial or a closure), "
            "or leave initial_position out for a NumPyro model."
        )
    solve_kwargs = dict(solve_kwargs)
    check_solve_options(solve_kwargs, solve)
    warn_ignored_arguments(
        parallel=kw["parallel"],
        solver=kw["solver"],
        solve_kwargs=solve_kwargs,
        sampler_name=name,
        instance=instance,
        num_integration_steps=given_steps,
        step_size=kw["step_size"],
        target_acceptance=accept,
        keep_warmup=kw["keep_warmup"],
        num_warmup=kw["num_warmup"],
    )
    _check_output_settings(kw)
    kw["mesh"] = sharding.check_mesh_for_chains(kw["mesh"], kw["num_chains"])
    check_float64_inputs(
        model_args=kw["model_args"],
        model_kwargs=kw["model_kwargs"],
        initial_position=kw["initial_position"],
        inverse_mass_matrix=kw["inverse_mass_matrix"],
    )
    return Settings(sampler_name=name, sampler=instance, solve_kwargs=solve_kwargs, **kw)


def _check_output_settings(kw: dict) -> None:
    """thinning, init_strategy, log_likelihood, posterior_predictive, prior (parmcmc.infer owns these)."""
    kw["thinning"] = check_positive_int("thinning", kw.get("thinning", 1))
    if kw["thinning"] > kw["num_samples"]:
        raise ValueError(
            f"sample: thinning={kw['thinning']} keeps no draw of num_samples={kw['num_samples']}; "
            "use thinning <= num_samples."
        )
    init = kw.get("init_strategy")
    if init is not None and not callable(init):
        raise TypeError(
            f"sample: init_strategy must be a NumPyro init strategy such as numpyro.infer.init_to_median; got {init!r}."
        )
    if init is not None and kw["initial_position"] is not None:
        raise ValueError(
            "sample: init_strategy= chooses the starts of a NumPyro model; with initial_position= "
            "the start is given. Leave one of them out."
        )
    for name in ("log_likelihood", "posterior_predictive"):
        if kw.get(name) not in (None, True, False):
            raise TypeError(f"sample: {name} must be True or False; got {kw[name]!r}.")
    if kw.get("prior") is not None:
        kw["prior"] = check_positive_int("prior", kw["prior"])
    if (kw.get("prior") or kw.get("posterior_predictive")) and kw["initial_position"] is not None:
        raise ValueError(
            "sample: prior= and posterior_predictive= draw from a NumPyro model; a log density "
            "given with initial_position= has no prior or observations to draw."
        )
