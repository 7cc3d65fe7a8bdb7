"""Checks of user input for sample() and compare(), raised before any heavy work.

Each error names the argument, the problem and what to do.
"""

import difflib
import inspect
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from parmcmc.arguments import check_int
from parmcmc.arguments import check_rng_key as check_rng_key_of
from parmcmc.memory import available_bytes as available_bytes
from parmcmc.memory import check_memory as check_memory
from parmcmc.memory import estimate_run_bytes as estimate_run_bytes
from parmcmc.memory import log_density_scratch_bytes as log_density_scratch_bytes
from parmcmc.samplers import HMC, MALA, AdjustedMCLMC, Barker
from parmcmc.samplers.base import AbstractSampler
from parmcmc.samplers.metrics import check_inverse_mass_matrix

SAMPLERS = {"mala": MALA, "hmc": HMC, "barker": Barker, "adjustedmclmc": AdjustedMCLMC}


def check_positive_int(name: str, value, *, allow_zero: bool = False, caller: str = "sample") -> int:
    """A count of sample(): :func:`parmcmc.arguments.check_int` (``allow_zero``: 0 is allowed too)."""
    return check_int(name, value, minimum=0 if allow_zero else 1, call=caller)


def check_rng_key(rng_key, caller: str = "sample") -> None:
    """Raise TypeError unless ``rng_key`` is one JAX random key (:func:`parmcmc.arguments.check_rng_key`)."""
    check_rng_key_of(rng_key, call=caller)


def check_model(model, caller: str = "sample") -> None:
    """Raise TypeError unless ``model`` is callable."""
    if not callable(model):
        raise TypeError(
            f"{caller}: model must be a NumPyro model function or a log-density function; got {type(model).__name__}."
        )


def resolve_sampler(sampler, caller: str = "sample"):
    """("mala" | "hmc", None) for a name, or (name, instance) for a MALA/HMC instance."""
    if isinstance(sampler, AbstractSampler):
        return type(sampler).__name__.lower(), sampler
    if isinstance(sampler, str) and sampler.lower() in SAMPLERS:
        return sampler.lower(), None
    raise ValueError(
        f"{caller}: unknown sampler {sampler!r}; use one of {sorted(SAMPLERS)} or an instance such as "
        "parmcmc.HMC(logdensity_fn, step_size, num_integration_steps)."
    )


class Float64DataWarning(UserWarning):
    """float64 arrays given while JAX runs in float32 (jax_enable_x64 off) lose digits on conversion."""


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _float64_leaves(tree, label):
    """(name, array) for every float64 NumPy leaf of `tree` (JAX arrays cannot be float64 with x64 off)."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if getattr(leaf, "dtype", None) == np.float64:
            out.append((label + jax.tree_util.keystr(path), np.asarray(leaf)))
    return out


def check_float64_inputs(caller: str = "sample", **named) -> None:
    """With jax_enable_x64 off, JAX converts float64 input to float32 (and int64 to int32) silently.

    Raise for values that would overflow to inf (or wrap around, for integers) there; warn (Float64DataWarning) for
    values that float32 rounds; say nothing when the conversion is exact (0/1 labels, small integers) or x64 is on.
    """
    if jax.dtypes.canonicalize_dtype(np.float64) == np.float64:
        return
    rounded, overflow = [], []
    for label, tree in named.items():
        for name, arr in _float64_leaves(tree, label):
            finite = np.isfinite(arr)
            if np.any(np.abs(arr[finite]) > FLOAT32_MAX):
                overflow.append(name)
            elif not np.array_equal(arr.astype(np.float32).astype(np.float64), arr, equal_nan=True):
                rounded.append(name)
    wrapped = [  # int64 data beyond int32's range: JAX wraps it without a word (2**33 becomes 0)
        label + jax.tree_util.keystr(path)
        for label, tree in named.items()
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        if isinstance(leaf, np.ndarray | np.integer)
        and leaf.dtype in (np.int64, np.uint64)
        and np.size(leaf)
        and not (np.iinfo(np.int32).min <= np.min(leaf) and np.max(leaf) <= np.iinfo(np.int32).max)
    ]
    if wrapped:
        raise ValueError(
            f"{caller}: {', '.join(wrapped)} hold int64 values beyond int32's range, and JAX runs in 32 bits "
            "(jax_enable_x64 is off): they would wrap around silently. Call jax.config.update('jax_enable_x64', "
            "True) at the start of the program, or convert the data (e.g. to float, or subtract an offset)."
        )
    if overflow:
        raise ValueError(
            f"{caller}: {', '.join(overflow)} hold float64 values beyond float32's range (+-{FLOAT32_MAX:.3g}), "
            "and JAX runs in float32 (jax_enable_x64 is off): they would become inf. Call "
            "jax.config.update('jax_enable_x64', True) at the start of the program, or rescale the data."
        )
    if rounded:
        warnings.warn(
            f"{caller}: {', '.join(rounded)} {'is' if len(rounded) == 1 else 'are'} float64, but JAX runs in "
            "float32 (jax_enable_x64 is off), so the values are rounded to float32 (about 7 significant "
            "digits) and sampling runs in float32. To sample in float64, call "
            "jax.config.update('jax_enable_x64', True) at the start of the program; to keep float32 and "
            "silence this warning, pass float32 arrays (np.asarray(x, np.float32)).",
            Float64DataWarning,
            stacklevel=4,
        )


def check_solve_option_names(solve_kwargs: dict, solve_fn, caller: str = "sample") -> None:
    """Refuse keyword arguments that the engine's solve does not take, with the closest name it does take."""
    known = [n for n, p in inspect.signature(solve_fn).parameters.items() if p.kind == p.KEYWORD_ONLY]
    known = [n for n in known if n != "observe"]  # the chain's own hook into the final pass (parmcmc/chain.py)
    unknown = sorted(set(solve_kwargs) - set(known))
    if unknown:
        close = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        hint = "".join(f" Did you mean {c[0]!r} for {u!r}?" for u, c in close.items() if c)
        raise TypeError(
            f"{caller}: unknown argument(s) {unknown}. Keyword arguments that are not {caller}()'s own go to "
            f"the engine's solve, which takes {known}.{hint}"
        )


def check_solve_options(solve_kwargs: dict, solve_fn, caller: str = "sample") -> None:
    """Extra keyword arguments of sample() go to the engine's solve.

    Check their names (and the integer options) now, not after the warmup.
    """
    check_solve_option_names(solve_kwargs, solve_fn, caller)
    for name in ("max_iters", "window", "patience", "budget"):
        if solve_kwargs.get(name) is not None:
            solve_kwargs[name] = check_int(name, solve_kwargs[name], call=caller)
    for name in ("atol", "rtol"):
        value = solve_kwargs.get(name)
        if (
            value is not None
            and hasattr(value, "dtype")
            and np.ndim(value) == 0
            and np.asarray(value).dtype.kind in "fiu"
        ):
            value = solve_kwargs[name] = float(value)  # a 0-d NumPy/JAX array
        if value is not None and (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, numbers.Real)
            or not value >= 0  # pyright: ignore[reportOperatorIssue] (typeshed's numbers.Real has no order)
            or not np.isfinite(value)  # pyright: ignore[reportCallIssue, reportArgumentType]
        ):
            raise ValueError(
                f"{caller}: {name}={value!r} must be a finite real number >= 0 (e.g. {name}=1e-8), or left out "
                "for the default by dtype (1e-11 in float64, 1e-5 in float32)."
            )
    if solve_kwargs.get("atol") == 0 and solve_kwargs.get("rtol") == 0:  # used to fail in the solve, after the warmup
        raise ValueError(
            f"{caller}: atol=0 and rtol=0 ask for an exact fixed point, which floating point cannot promise; give "
            "one of them > 0 (e.g. rtol=1e-10 in float64), or leave both out for the default by dtype."
        )
    if "fallback" in solve_kwargs and solve_kwargs["fallback"] != "sequential":
        fallback = solve_kwargs["fallback"]
        if fallback is None:
            raise ValueError(
                f"{caller}: fallback=None is refused: {caller}() promises that every chain it returns is "
                "converged, so a parallel solve that fails is finished sequentially "
                "(fallback='sequential', the default). For the raw, possibly unconverged solve use "
                "parmcmc.run_chain(..., fallback=None) or parmcmc.solve, which warn (or raise with throw=True)."
            )
        raise ValueError(f"{caller}: fallback={fallback!r}; the only choice is 'sequential' (the default).")
    if "throw" in solve_kwargs and not isinstance(solve_kwargs["throw"], (bool, np.bool_)):
        raise TypeError(f"{caller}: throw={solve_kwargs['throw']!r} must be True or False.")
    progress = solve_kwargs.get("progress")
    if progress is not None and not callable(progress):
        raise TypeError(
            f"{caller}: progress={progress!r} must be a callable progress(iteration, residual, window_start), or "
            "None; for the built-in display use progress_bar=True."
        )
    if solve_kwargs.get("initial_guess") is not None:
        raise ValueError(
            f"{caller}: initial_guess= is not supported by {caller}() (each chain starts from its own warmed-up "
            "position). Use parmcmc.run_chain(sampler, x0, key, T, initial_guess=...) for one chain."
        )


def check_parallel(parallel, caller: str = "sample"):
    """True, False (NumPy bools become Python bools) or "auto"; anything else is refused.

    An int used to pass (``1 == True``) and then miss every ``parallel is True`` test downstream: ``parallel=0`` ran
    a parallel solve.
    """
    if isinstance(parallel, (bool, np.bool_)):
        return bool(parallel)
    if isinstance(parallel, str) and parallel == "auto":
        return parallel
    raise ValueError(f"{caller}: parallel={parallel!r}; use True, False or 'auto' (the default).")


def check_initial_position(initial_position, caller: str = "sample", *, adapting: bool = False) -> None:
    """Every leaf a real number or a real array (JAX refuses strings and objects with a raw message).

    ``adapting``: an adapting warmup will run; with x64 on, BlackJAX's warmups fail on float32 starts.
    """
    if initial_position is None:
        return
    x64 = jax.dtypes.canonicalize_dtype(np.float64) == np.float64
    leaves = jax.tree_util.tree_leaves(initial_position)
    if adapting and x64 and any(getattr(leaf, "dtype", None) == np.float32 for leaf in leaves):
        raise TypeError(
            f"{caller}: initial_position holds float32 arrays while jax_enable_x64 is on; the adapting warmup "
            "(BlackJAX's) mixes them with its float64 step size and fails deep inside. Cast the start to float64 "
            "(jnp.asarray(x, jnp.float64)), or turn x64 off to sample in float32, or give step_size= (the burn-in "
            "then keeps float32)."
        )
    if not leaves or not any(np.size(leaf) for leaf in leaves):  # {} or {"a": None} or jnp.zeros(0)
        raise ValueError(
            f"{caller}: initial_position={initial_position!r:.60} has no entries (no array leaves, or only empty "
            "ones); there is nothing to sample. Give a start with at least one floating-point entry, e.g. "
            "jnp.zeros(3) or {'mu': 0.0}."
        )
    for path, leaf in jax.tree_util.tree_flatten_with_path(initial_position)[0]:
        numeric = isinstance(leaf, (numbers.Number, np.ndarray, jax.Array))
        dtype = leaf.dtype if isinstance(leaf, (np.ndarray, jax.Array)) else np.asarray(leaf).dtype if numeric else None
        if dtype is not None and jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4:  # float16, bfloat16
            raise TypeError(
                f"{caller}: initial_position{jax.tree_util.keystr(path)} has dtype {dtype}; sampling runs in "
                "float32 or float64 (the warmup's adaptation and the accept test need their range and precision; "
                "float16 used to fail deep inside the warmup). Cast it, e.g. jnp.asarray(x, jnp.float32)."
            )
        kind = dtype.kind if numeric and dtype is not None else None
        if kind is None or kind not in "fiubc":  # numeric dtypes other than float get the target's message
            raise TypeError(
                f"{caller}: initial_position{jax.tree_util.keystr(path)} is {type(leaf).__name__} "
                f"{leaf!r:.60}; the initial position must be a pytree (array, dict, tuple) of floating-point "
                "arrays, e.g. jnp.zeros(3) or {'mu': 0.0, 'beta': jnp.zeros(2)}."
            )


def check_flags_and_names(caller: str = "sample", **named) -> None:
    """True/False switches are bools; dims and coords are dicts (or None)."""
    if "progress_bar" in named and not (
        isinstance(named["progress_bar"], (bool, np.bool_)) or named["progress_bar"] == "always"
    ):  # "always": shown when stderr is not a terminal too (parmcmc.progress; parmcmc.infer.MCMC documents it)
        raise TypeError(
            f"{caller}: progress_bar={named['progress_bar']!r} must be True or False (or 'always': shown even when "
            "stderr is not a terminal)."
        )
    if "keep_warmup" in named and not isinstance(named["keep_warmup"], (bool, np.bool_)):
        raise TypeError(f"{caller}: keep_warmup={named['keep_warmup']!r} must be True or False.")
    for name, example in (("dims", "{'beta': ['feature']}"), ("coords", "{'feature': ['age', 'income']}")):
        value = named.get(name)
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{caller}: {name} must be a dict such as {example}, or None; got {type(value).__name__}.")


# MALA's dense preconditioner is estimated from the warmup's draws from this many warmup steps on (prepare.warm_up).
MALA_PRECONDITION_MIN_WARMUP = 20


class IgnoredArgumentWarning(UserWarning):
    """An argument was given that the rest of the call makes meaningless; it is ignored."""


def warn_ignored_arguments(
    *,
    parallel,
    solver,
    solve_kwargs,
    sampler_name,
    instance,
    num_integration_steps,
    step_size,
    target_acceptance,
    keep_warmup,
    num_warmup,
    adaptation=None,
    dense_mass=None,
    caller="sample",
) -> None:
    """One IgnoredArgumentWarning per argument that the other arguments make meaningless."""
    ignored = []
    if parallel is False and solver is not None:
        ignored.append(
            ("solver=", "parallel=False runs the sequential reference (lax.scan); use parallel=True to solve with it")
        )
    engine = sorted(k for k in ("max_iters", "atol", "rtol", "window", "progress") if solve_kwargs.get(k) is not None)
    if parallel is False and engine:
        ignored.append(
            (
                ", ".join(f"{k}=" for k in engine),
                "they set the parallel solve, and parallel=False runs the sequential reference",
            )
        )
    if num_integration_steps is not None and (sampler_name != "hmc" or instance is not None):
        why = (
            "MALA and Barker take one gradient step per draw; adjusted MCLMC takes "
            "parmcmc.warmup_scale.ADJUSTED_MCLMC_STEPS (an AdjustedMCLMC instance sets its own)"
            if sampler_name != "hmc"
            else "the HMC instance's own num_integration_steps is used; set it there"
        )
        ignored.append(("num_integration_steps=", why))
    adapts = instance is None and step_size is None and num_warmup > 0
    if target_acceptance is not None and not adapts:
        ignored.append(
            (
                "target_acceptance=",
                "no step size is adapted (step_size= or a sampler instance was given, or num_warmup=0)",
            )
        )
    if keep_warmup and not adapts:
        ignored.append(
            (
                "keep_warmup=True",
                "warmup draws are kept only when warmup adapts the step size "
                "(num_warmup > 0, no step_size=, no sampler instance)",
            )
        )
    if adaptation is not None and not adapts:  # used to be ignored without a word
        ignored.append(
            ("adaptation=", "nothing is adapted (step_size= or a sampler instance was given, or num_warmup=0)")
        )
    if dense_mass and not adapts:
        ignored.append(
            (
                "dense_mass=",
                "no mass matrix or preconditioner is adapted (step_size= or a sampler instance "
                "was given, or num_warmup=0)",
            )
        )
    elif dense_mass and sampler_name == "mala" and num_warmup < MALA_PRECONDITION_MIN_WARMUP:
        ignored.append(
            (
                "dense_mass=",
                f"MALA's preconditioner is estimated from the warmup's draws and needs "
                f"num_warmup >= {MALA_PRECONDITION_MIN_WARMUP}",
            )
        )
    for name, why in ignored:
        warnings.warn(f"{caller}: {name} is ignored: {why}.", IgnoredArgumentWarning, stacklevel=4)


def check_mass_matrix_setting(inverse_mass_matrix, sampler_name: str, instance, step_size, caller: str = "sample"):
    """inverse_mass_matrix= is an HMC setting used as given: refuse the cases where it would be ignored."""
    if inverse_mass_matrix is None:
        return
    if sampler_name != "hmc":
        raise ValueError(
            f"{caller}: inverse_mass_matrix= is an HMC setting, but the sampler is {sampler_name!r} (MALA and "
            "Barker have no mass matrix). Use sampler='hmc', or leave inverse_mass_matrix out."
        )
    if instance is not None:
        raise ValueError(
            f"{caller}: inverse_mass_matrix= is given together with an HMC instance; give it to the instance "
            "(parmcmc.HMC(logdensity_fn, step_size, num_integration_steps, inverse_mass_matrix)) only."
        )
    check_inverse_mass_matrix(inverse_mass_matrix)
    if step_size is None:
        raise ValueError(
            f"{caller}: inverse_mass_matrix= is given without step_size=, so warmup would adapt both and "
            "replace your matrix. Give step_size= as well to use the matrix as it is (warmup then only burns "
            "in), or leave inverse_mass_matrix out to have warmup adapt a diagonal one."
        )
