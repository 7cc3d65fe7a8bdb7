"""NumPyro model -> `Target`: log density on the unconstrained space, starts, and the way back.

Everything NumPyro-specific lives here. The samplers and the engine only ever see
`Target.logdensity_fn` (minus NumPyro's potential energy, Jacobians included) and unconstrained
position dicts; `Target.postprocess` turns the unconstrained draws into constrained values and
deterministic sites at the output end.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.infer.util as numpyro_util
from numpyro.handlers import seed, substitute, trace
from numpyro.infer.initialization import init_to_uniform, init_to_value
from numpyro.infer.util import initialize_model

from parmcmc.arguments import check_int
from parmcmc.jitcache import program_jit
from parmcmc.keys import chain_keys
from parmcmc.models.target import ChainStarts, Target, check_initial_positions, from_logdensity

__all__ = ["from_numpyro", "model_name"]

_CALLER = "from_numpyro"
# NumPyro's find_valid_initial_params redraws a start whose potential energy or gradient is not finite,
# at most this many times per chain (a constant of NumPyro's, not a parameter).
NUMPYRO_INIT_TRIES = 100


def model_name(model: Callable) -> str:
    """A readable name for a model function (unwraps functools.partial)."""
    while isinstance(model, functools.partial):
        model = model.func
    return getattr(model, "__name__", None) or repr(model)


def _raw_keys(rng_key: jax.Array, num: int) -> jax.Array:
    """`num` keys, one per chain: threefry's in NumPyro's raw uint32 layout, another implementation's typed.

    NumPyro takes a raw key only in threefry's (2,) layout; an rbg key's data, (4,), it refuses. Key k does not
    depend on `num`, so chain k starts at the same place whatever the number of chains.
    """
    keys = chain_keys(rng_key, num)
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if not typed and keys.shape[-1:] != (2,):  # raw data of another default implementation (jax_default_prng_impl)
        keys, typed = jax.random.wrap_key_data(keys), True
    if typed and jax.random.key_data(keys).shape[-1:] == (2,):
        keys = jax.random.key_data(keys)
    return keys


def _trace_model(model, rng_key, model_args, model_kwargs, name) -> dict:
    """Run the model once with prior draws; wrap whatever it raises with the model's name.

    Latent sites take init_to_uniform's values rather than prior draws, so that priors that cannot be
    sampled (ImproperUniform) still trace: only their support and shape are needed here.
    """
    try:
        return trace(substitute(seed(model, rng_key), substitute_fn=init_to_uniform)).get_trace(
            *model_args, **model_kwargs
        )
    except Exception as err:
        if not str(err).strip():
            err = type(err)(f"{type(err).__name__} with no message, raised by {_raising_frame(err)}")
        raise ValueError(
            f"{_CALLER}: model {name!r} raised {type(err).__name__} when run with the given model_args and "
            f"model_kwargs: {err}. Check that the arguments match the model's signature and that the model "
            "runs under numpyro.handlers.seed. If it is a log-density function rather than a NumPyro model, "
            "pass initial_position= (a starting point) as well."
        ) from err


def _raising_frame(err: BaseException) -> str:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "an unknown frame"
    code = tb.tb_frame.f_code
    return f"{code.co_name} ({code.co_filename}:{tb.tb_lineno})"


class ObservedShapeWarning(UserWarning):
    """An observed value's shape differs from its distribution's shape, so NumPyro broadcasts the likelihood."""


def _check_observed_shapes(model_trace: dict, name: str) -> None:
    """Warn when an observed value's shape differs from its distribution's (batch + event) shape.

    NumPyro then broadcasts, e.g. obs (20, 1) against a (20,) location gives a 20 x 20 likelihood, without a word.
    """
    for site_name, site in model_trace.items():
        if site["type"] != "sample" or not site["is_observed"]:
            continue
        dist_shape = tuple(site["fn"].batch_shape) + tuple(site["fn"].event_shape)
        value_shape = tuple(np.shape(site["value"]))
        # A smaller distribution shape is the i.i.d. idiom (a scalar location for a data vector): fine. The
        # fault is a value that NumPyro has to replicate, i.e. the broadcast shape exceeds the value's.
        fits = _broadcastable(value_shape, dist_shape) and np.broadcast_shapes(value_shape, dist_shape) == value_shape
        if not fits:
            warnings.warn(
                f"{_CALLER}: model {name!r}: the observed value of site {site_name!r} has shape {value_shape}, but "
                f"its distribution has shape {dist_shape} (batch {tuple(site['fn'].batch_shape)} + event "
                f"{tuple(site['fn'].event_shape)}), so NumPyro broadcasts the log likelihood to shape "
                f"{np.broadcast_shapes(value_shape, dist_shape) if _broadcastable(value_shape, dist_shape) else '?'}"
                ", counting each observation more than once. Reshape the data (e.g. y.reshape(-1) or y[:, None]) "
                "or the distribution's parameters so that both shapes match.",
                ObservedShapeWarning,
                stacklevel=5,
            )


def _broadcastable(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _check_sites(model_trace: dict, name: str) -> None:
    latent = [n for n, s in model_trace.items() if s["type"] == "sample" and not s["is_observed"]]
    discrete = [n for n in latent if model_trace[n]["fn"].support.is_discrete]
    if discrete:
        raise ValueError(
            f"{_CALLER}: model {name!r} has discrete latent sample site(s) {discrete}. MALA and HMC move "
            "through a continuous space with gradients, so every latent site must be continuous. Marginalise "
            "the discrete sites out in the model (e.g. sum over their values with a mixture such as "
            "numpyro.distributions.MixtureSameFamily), or sample them with NumPyro's own MCMC "
            "(enumeration with infer={'enumerate': 'parallel'}, or DiscreteHMCGibbs)."
        )
    if not latent:
        params = [n for n, s in model_trace.items() if s["type"] == "param"]
        raise ValueError(
            f"{_CALLER}: model {name!r} has no latent sample sites (all sites are observed or deterministic); "
            "there is nothing to sample. Remove obs= from the sites you want to infer."
            + (
                f" Its numpyro.param site(s) {params} are not sampled: give each a prior with numpyro.sample."
                if params
                else ""
            )
        )
    shapes = {n: tuple(np.shape(model_trace[n]["value"])) for n in latent}
    if not any(np.prod(shape, dtype=int) for shape in shapes.values()):
        raise ValueError(
            f"{_CALLER}: model {name!r} has latent sample site(s) of size 0 only ({shapes}); there is nothing to "
            "sample. Check the plate sizes or the .expand([...]) shapes that come from the data."
        )


def _bad_observations(site: dict):
    """(mask of entries whose log likelihood is not finite at the traced parameters, the value) or None."""
    value = site["value"]
    try:
        with warnings.catch_warnings():  # NumPyro's "Out-of-support values" warning: the finding is reported here
            warnings.simplefilter("ignore")
            lp = site["fn"].log_prob(value)
        if site.get("mask") is not None:  # numpyro.handlers.mask: masked entries do not count
            lp = jnp.where(site["mask"], lp, 0.0)
        bad = ~np.isfinite(np.asarray(lp))
    except Exception:  # a distribution that cannot score this value at all: leave it to NumPyro's own message
        return None
    return (bad, np.asarray(value)) if bad.any() else None


def _entries(mask, limit: int = 5) -> str:
    where = [tuple(int(i) for i in ix) if len(ix) != 1 else int(ix[0]) for ix in np.argwhere(mask)[:limit]]
    return f"{where}{' ...' if mask.sum() > limit else ''} ({int(mask.sum())} of {mask.size})"


def _check_observed_values(model_trace: dict, name: str) -> None:
    """Refuse observed data holding NaN or inf where they count (masked-out entries and obs_mask's are fine).

    Such data used to surface as 'no valid start found ... try a narrower init', which sends the user to the
    wrong place: no start can make the likelihood of a NaN observation finite.
    """
    for site_name, site in model_trace.items():
        if site["type"] != "sample" or not site["is_observed"]:
            continue
        data = np.asarray(site["value"])
        if not np.issubdtype(data.dtype, np.inexact) or np.all(np.isfinite(data)):
            continue  # the common case: no likelihood is evaluated here
        found = _bad_observations(site)
        if found is None:
            continue
        bad, value = found
        event_dim = site["fn"].event_dim
        nonfinite = ~np.isfinite(value)
        if event_dim:
            nonfinite = nonfinite.any(axis=tuple(range(value.ndim - event_dim, value.ndim)))
        if nonfinite.shape != bad.shape or not (nonfinite & bad).any():
            continue
        raise ValueError(
            f"{_CALLER}: the observed data of site {site_name!r} of model {name!r} hold NaN or inf at entries "
            f"{_entries(nonfinite & bad)}, so its log likelihood is not finite for any parameters. Drop those "
            "entries, or let NumPyro impute them: numpyro.sample(..., obs=y, obs_mask=jnp.isfinite(y)) samples the "
            "missing entries, numpyro.handlers.mask(mask=...) leaves them out."
        )


def _check_init_values(init_strategy, model_trace: dict, name: str) -> None:
    """init_to_value(values=...) naming no latent site: NumPyro ignores the name and starts that site at random."""
    values = getattr(init_strategy, "keywords", {}).get("values")
    if getattr(init_strategy, "func", None) is not init_to_value or not isinstance(values, dict):
        return
    latent = sorted(n for n, s in model_trace.items() if s["type"] == "sample" and not s["is_observed"])
    unknown = sorted(set(values) - set(latent))
    if unknown:
        raise ValueError(
            f"{_CALLER}: init_to_value(values=...) names {unknown}, which are not latent sample sites of model "
            f"{name!r} (NumPyro would ignore them and start those sites at random); its latent sites are {latent}."
        )


def _observed_diagnosis(model_trace: dict) -> tuple[str, str]:
    """Why no start may exist: observed sites (then factors) whose terms are not finite at a start tried."""
    notes, factors = [], []
    for site_name, site in model_trace.items():
        if site["type"] == "sample" and site["is_observed"]:
            found = _bad_observations(site)
            if found is not None and site.get("infer", {}).get("is_auxiliary"):  # numpyro.factor: the value is the term
                factors.append(f" numpyro.factor {site_name!r} is not finite at a start tried: {site['fn'].log_factor}")
            elif found is not None:
                bad, value = found
                aligned = value.shape[: bad.ndim] == bad.shape
                values = f" (values {value[bad][:3].tolist()})" if aligned else ""
                inside = aligned and bool(np.all(np.asarray(site["fn"].support(value))[bad]))
                check = (
                    "those data lie inside the support, so the distribution's parameters are not finite there: check "
                    "the covariates (or parameters) they are computed from at those entries, e.g. for an overflow."
                    if inside
                    else "check those data against the distribution's support."
                )
                notes.append(
                    f" The observed data of site {site_name!r} have a log likelihood that is not finite (at a start "
                    f"drawn by init_to_uniform) at entries {_entries(bad)}{values} under {type(site['fn']).__name__} "
                    f"with support {site['fn'].support}: {check}"
                )
    return "".join(notes), "".join(factors)


def _init_error(name: str, init_strategy, num_chains: int, model_trace: dict) -> ValueError:
    data, factors = _observed_diagnosis(model_trace)
    if data:  # the data, not the starts, are the likely cause: say that first
        return ValueError(
            f"{_CALLER}: no valid start found for model {name!r} ({NUMPYRO_INIT_TRIES} starts tried per chain)."
            + data
            + factors
        )
    return ValueError(
        f"{_CALLER}: no valid start found for model {name!r}: for at least one of {num_chains} chain(s), "
        f"{NUMPYRO_INIT_TRIES} starts drawn with {getattr(init_strategy, '__name__', init_strategy)!r} all "
        "gave a log density or gradient that is not finite. Try a narrower init "
        "(init_strategy=numpyro.infer.init_to_uniform(radius=0.5)), init_to_median or "
        "init_to_value(values={...}) with values inside every site's support, and check the model's "
        "priors and likelihood for log(0), division by zero or overflow (float64 helps with overflow)." + factors
    )


_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _compiled_init_search():
    """Run NumPyro's start search through program_jit for the duration of initialize_model.

    NumPyro's start search (find_valid_initial_params) runs eagerly and closes over the model's data, so JAX
    compiles its loop again on every call; through program_jit it compiles once per program, the data
    hoisted into arguments.
    """
    original = numpyro_util.find_valid_initial_params

    def search(rng_key, model, **kwargs):
        return program_jit(lambda key: original(key, model, **kwargs))(rng_key)

    with _INIT_LOCK:
        numpyro_util.find_valid_initial_params = search
        try:
            yield
        finally:
            numpyro_util.find_valid_initial_params = original


def _site_dims(site: dict) -> list[str] | None:
    """Dimension names of one site from its plates; None when no plate names a dimension."""
    shape = np.shape(site["value"])
    event_dim = site["fn"].event_dim if site["type"] == "sample" else 0
    batch_ndim = len(shape) - event_dim
    dims = [f"{site['name']}_dim_{i}" for i in range(len(shape))]
    named = False
    for frame in site.get("cond_indep_stack", []):
        axis = batch_ndim + frame.dim
        if 0 <= axis < batch_ndim and shape[axis] == frame.size and frame.name not in dims:
            dims[axis] = frame.name
            named = True
    return dims if named else None


def from_numpyro(
    model: Callable,
    rng_key: jax.Array,
    *,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    num_chains: int = 1,
    init_strategy: Callable = init_to_uniform,
) -> Target:
    """Turn a NumPyro model into a `Target` with one NumPyro-chosen start per chain.

    model, model_args, model_kwargs
        The model function and what to call it with (observed data included).
    rng_key
        Key for the starts. Chain c's start is drawn as NumPyro draws it from `init_strategy`
        (default: uniform in (-2, 2) on the unconstrained space), redrawn up to 100 times while
        the log density or its gradient is not finite.
    num_chains
        Number of chains, i.e. the leading axis of `Target.initial_positions`.

    Errors (ValueError, raised before any sampling): the model raises; it has discrete latent
    sites; it has no latent site; no finite start is found.
    """
    name = model_name(model)
    if not callable(model):
        raise TypeError(f"{_CALLER}: model must be a NumPyro model function; got {type(model).__name__}.")
    if not isinstance(model_args, tuple):
        raise TypeError(f"{_CALLER}: model_args must be a tuple of positional arguments; got {type(model_args)}.")
    model_kwargs = {} if model_kwargs is None else model_kwargs
    if not isinstance(model_kwargs, dict):
        raise TypeError(f"{_CALLER}: model_kwargs must be a dict; got {type(model_kwargs)}.")
    check_int("num_chains", num_chains, call=_CALLER)

    trace_key, init_key = jax.random.split(rng_key)
    keys = _raw_keys(init_key, num_chains)
    model_trace = _trace_model(model, _raw_keys(trace_key, 1)[0], model_args, model_kwargs, name)
    _check_sites(model_trace, name)
    _check_observed_shapes(model_trace, name)
    _check_observed_values(model_trace, name)
    _check_init_values(init_strategy, model_trace, name)

    try:
        with _compiled_init_search():
            info = initialize_model(
                keys[:num_chains],
                model,
                init_strategy=init_strategy,
                model_args=model_args,
                model_kwargs=model_kwargs,
            )
    except RuntimeError as err:
        if "Cannot find valid initial parameters" in str(err):
            raise _init_error(name, init_strategy, num_chains, model_trace) from err
        raise ValueError(f"{_CALLER}: NumPyro could not initialise model {name!r}: {err}") from err
    except Exception as err:
        raise ValueError(
            f"{_CALLER}: NumPyro could not initialise model {name!r} ({type(err).__name__}: {err}). "
            "If the message points at an init strategy, try init_strategy=numpyro.infer.init_to_uniform."
            + "".join(_observed_diagnosis(model_trace))
        ) from err

    potential_fn = info.potential_fn
    initial_positions = info.param_info.z

    def logdensity_fn(position: dict) -> jax.Array:
        return -potential_fn(position)

    check_initial_positions(logdensity_fn, initial_positions, _CALLER, name)

    one_position = jax.tree_util.tree_map(lambda leaf: leaf[0], initial_positions)
    out_shapes = jax.eval_shape(info.postprocess_fn, one_position)
    var_shapes = {k: tuple(v.shape) for k, v in out_shapes.items()}
    postprocess = program_jit(jax.vmap(jax.vmap(info.postprocess_fn)))  # data hoisted, compiled once

    observed = {n: np.asarray(s["value"]) for n, s in model_trace.items() if s["type"] == "sample" and s["is_observed"]}
    dims = {}
    for site_name, site in model_trace.items():
        if site_name in var_shapes or site_name in observed:
            site_dims = _site_dims(site)
            if site_dims is not None:
                dims[site_name] = site_dims
    return Target(logdensity_fn, initial_positions, postprocess, var_shapes, observed, dims, name)


def from_model(model, key, num_chains, model_args, model_kwargs, initial_position, init_strategy=None) -> Target:
    """The `Target` of sample()'s `model`: a log density when `initial_position` is given, else a NumPyro model."""
    if isinstance(initial_position, ChainStarts):  # one start per chain (parmcmc.infer.MCMC's init_params)
        return from_logdensity(model, initial_positions=initial_position.positions)
    if initial_position is not None:
        return from_logdensity(model, initial_position=initial_position, num_chains=num_chains)
    init = {} if init_strategy is None else {"init_strategy": init_strategy}
    return from_numpyro(model, key, model_args=model_args, model_kwargs=model_kwargs, num_chains=num_chains, **init)
