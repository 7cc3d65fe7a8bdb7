"""A sampling run -> ArviZ DataTree: the output end of sample() and parmcmc.infer.MCMC.

This module sits below the API: it reads the run, the prepared target and the settings it is given,
never the package itself (the version comes from the installed distribution's metadata).
"""

from __future__ import annotations

import importlib.metadata
import warnings

import jax
import numpy as np

from parmcmc.io.arviz import solver_stats, to_datatree

__all__ = ["LOG_LIKELIHOOD_AUTO_LIMIT", "datatree_from_run", "package_version", "step_stats", "thin"]

# log_likelihood=None ("auto") skips the group, with a warning, above this many values (8 GB in float64).
LOG_LIKELIHOOD_AUTO_LIMIT = 2**30


def package_version() -> str:
    """The installed parmcmc's version, or "unknown" in a source tree that is not installed."""
    try:
        return importlib.metadata.version("parmcmc")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def thin(chains, thinning: int):
    """Keep every `thinning`-th draw of a ChainResult (leaves (chain, T, ...)), as NumPyro does.

    The last draw of each block of `thinning` steps, the first T % thinning steps dropped (T // thinning kept).
    """
    if thinning == 1:
        return chains
    T = jax.tree_util.tree_leaves(chains.positions)[0].shape[1]
    start = T % thinning + thinning - 1
    take = lambda a: a[:, start::thinning]
    return chains._replace(
        positions=jax.tree_util.tree_map(take, chains.positions), stats=jax.tree_util.tree_map(take, chains.stats)
    )


def step_stats(stats, lp_name="lp") -> dict:
    """The sampler's Info fields under ArviZ's sample_stats names."""
    fields = stats._asdict()
    out = {"acceptance_rate": fields["acceptance_rate"], lp_name: fields["logdensity"]}
    if "is_divergent" in fields:
        out["diverging"] = fields["is_divergent"]
    if "energy" in fields:  # the Hamiltonian of the draw (what az.bfmi and plot_energy expect)
        out["energy"] = fields["energy"]
    if "num_integration_steps" in fields:
        out["n_steps"] = fields["num_integration_steps"]
    return out


def _observation_groups(settings, samples: dict, target, num_draws: int) -> dict:
    """log_likelihood, posterior_predictive, prior, prior_predictive as the settings ask (NumPyro models)."""
    from parmcmc.io import numpyro as nio  # NumPyro's tools, only for NumPyro models

    out = {}
    if settings.initial_position is not None:
        return out  # a plain log density: no likelihood terms to separate out, no prior to draw from
    args, kwargs = settings.model_args, settings.model_kwargs or {}
    want = getattr(settings, "log_likelihood", None)
    size = num_draws * sum(int(np.size(v)) for v in target.observed_data.values())
    if not target.observed_data:
        pass  # nothing observed: no log_likelihood group
    elif want is None and size > LOG_LIKELIHOOD_AUTO_LIMIT:
        warnings.warn(
            f"sample: the log_likelihood group would hold {size:,} values; left out. Pass log_likelihood=True "
            "to compute it anyway (az.loo needs it), or thin the draws (thinning=).",
            RuntimeWarning,
            stacklevel=4,
        )
    elif want is None or want:
        out["log_likelihood"] = nio.pointwise_log_likelihood(settings.model, samples, args, kwargs)
    key = jax.random.fold_in(settings.rng_key, 0x7072)  # independent of the sampling keys
    if getattr(settings, "posterior_predictive", False):
        out["posterior_predictive"] = nio.posterior_predictive(settings.model, samples, key, args, kwargs)
    if getattr(settings, "prior", None):
        out["prior"], out["prior_predictive"] = nio.prior_draws(
            settings.model, settings.prior, jax.random.fold_in(key, 1), args, kwargs, list(target.var_shapes)
        )
    return out


def datatree_from_run(prepared, run, settings):
    """The DataTree of a sampling run (see sample() for its groups)."""
    target, solver = prepared.target, run.solver
    chains = thin(run.chains, getattr(settings, "thinning", 1))
    per_chain = solver_stats(chains)
    per_chain["solver_fell_back"] = np.asarray(chains.fell_back, dtype=bool)
    # Is chain c the sequential replay? (parmcmc.exactness; 0 and NaN for the sequential reference)
    shape = per_chain["solver_fell_back"].shape
    per_chain["solver_near_threshold"] = np.broadcast_to(np.asarray(chains.near_threshold), shape)
    per_chain["solver_lle"] = np.broadcast_to(np.asarray(chains.lle, dtype=np.float64), shape)
    kwargs = {}
    if settings.keep_warmup and prepared.warmup is not None and prepared.warmup.draws is not None:
        kwargs["warmup_posterior"] = target.postprocess(prepared.warmup.draws)
        kwargs["warmup_sample_stats"] = prepared.warmup.stats
    attrs = {
        "inference_library": "parmcmc",
        "inference_library_version": package_version(),
        "sampler": type(prepared.template).__name__,
        "solver": repr(solver),
        "parallel": solver.parallel,
        "sampling_seconds": run.seconds,
        "compile_seconds": run.compile_seconds,
        "warmup_seconds": prepared.warmup_seconds,
        "thinning": getattr(settings, "thinning", 1),
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0]),
    }
    choice = getattr(run, "choice", None)
    if choice is not None:  # parallel="auto": what it chose, why, what it predicted and what choosing cost
        attrs.update(
            auto_choice=str(choice),
            auto_reason=choice.reason,
            auto_seconds=choice.seconds,
            auto_predicted_sequential_seconds=choice.sequential_seconds,
            auto_predicted_parallel_seconds=choice.parallel_seconds,
        )
    posterior = target.postprocess(chains.positions)
    num_draws = int(np.prod(np.shape(next(iter(posterior.values())))[:2]))
    return to_datatree(
        posterior,
        sample_stats={**step_stats(chains.stats), "step_size": np.asarray(prepared.step_size)},
        solver=per_chain,
        observed_data=target.observed_data or None,
        dims={**target.dims, **(settings.dims or {})},
        coords=settings.coords,
        attrs=attrs,
        **_observation_groups(settings, posterior, target, num_draws),
        **kwargs,
    )
