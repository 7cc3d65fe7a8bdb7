"""Draws and statistics -> ArviZ 1.x `xarray.DataTree`.

Groups (ArviZ's names):
    posterior            constrained draws, (chain, draw, *shape) per variable
    sample_stats         per-step statistics, all (chain, draw): acceptance_rate, diverging, lp, energy,
                         step_size (as NumPyro's NUTS output, so az.plot_trace(group="sample_stats"),
                         az.ess(group="sample_stats"), az.bfmi and az.plot_energy work on it)
    solver_stats         per-chain statistics of the parallel solve, (chain,): solver_iterations,
                         solver_residual, solver_converged, solver_fell_back, ...
    log_likelihood       pointwise log likelihood per observed site, (chain, draw, *obs_shape)
    posterior_predictive draws of the observed sites given the posterior, (chain, draw, *obs_shape)
    prior, prior_predictive  draws from the prior (one chain), when asked
    observed_data        observed values, no sample dims
    warmup_posterior     warmup draws, when given
    warmup_sample_stats  warmup per-step statistics, when given

The conversion itself is arviz_base's (`from_dict`, `dict_to_dataset`); this module checks shapes,
keeps the per-chain solve statistics in their own group and names dimensions. ArviZ >= 1.0 only
(xarray.DataTree); an older ArviZ gets a clear ImportError.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any

import numpy as np

# NumPyro before ArviZ: arviz_base loads numpyro lazily when it is not imported yet, and through that lazy
# module numpyro.infer.initialization is missing, which breaks az.from_numpyro (on our MCMC or NumPyro's).
import numpyro  # noqa: F401
import xarray as xr


def _require_arviz_1() -> None:
    """parmcmc writes xarray.DataTree (ArviZ >= 1.0); ArviZ 0.x's InferenceData is not supported."""
    try:
        version = importlib.metadata.version("arviz")
    except importlib.metadata.PackageNotFoundError:
        version = None
    major = None if version is None else int(version.split(".")[0])
    if major is not None and major < 1:
        raise ImportError(
            f"parmcmc needs arviz>=1.0 (its results are xarray.DataTree objects); this environment has arviz "
            f"{version}, whose InferenceData parmcmc does not write. Upgrade with `pip install 'arviz>=1.0'` "
            "(see https://python.arviz.org/en/latest/user_guide/migration_guide.html), or keep ArviZ 0.x in "
            "another environment."
        )


_require_arviz_1()
import arviz_base  # noqa: E402  (after the version check, so an old ArviZ gets the message above)

from parmcmc.io.names import datatree_name  # noqa: E402

__all__ = ["SOLVER_GROUP", "SOLVER_STATS", "solver_stats", "to_datatree"]

_CALLER = "to_datatree"
# Names of the per-chain statistics of the parallel solve, in the solver_stats group with dims (chain,).
SOLVER_STATS = ("solver_iterations", "solver_residual", "solver_converged")
# The group of per-chain statistics: sample_stats holds (chain, draw) variables only, as ArviZ expects.
SOLVER_GROUP = "solver_stats"


def solver_stats(solution: Any) -> dict:
    """Per-chain solve statistics from an engine solution, under the names of `SOLVER_STATS`.

    The solution is anything with `num_iters`, `residual`, `converged` whose leading axis is the chain (e.g.
    a solve vmapped over chains; scalars when one solve covers all chains).

    `residual` may carry more axes than the chain (e.g. per time step): it is reduced to its
    maximum absolute value per chain, so a NaN residual stays NaN.
    """
    missing = [f for f in ("num_iters", "residual", "converged") if not hasattr(solution, f)]
    if missing:
        raise TypeError(f"solver_stats: the solution has no field(s) {missing}; pass the engine's Solution.")
    residual = np.abs(np.asarray(solution.residual, dtype=np.float64))
    if residual.ndim > 1:
        residual = residual.reshape(residual.shape[0], -1).max(axis=1)
    return {
        "solver_iterations": np.asarray(solution.num_iters),
        "solver_residual": residual,
        "solver_converged": np.asarray(solution.converged, dtype=bool),
    }


def _as_numpy(group: str, data: Mapping | None) -> dict:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise TypeError(f"{_CALLER}: {group} must be a dict of name -> array; got {type(data).__name__}.")
    return {str(k): np.asarray(v) for k, v in data.items()}


def _check_sample_dims(group: str, data: dict, expect: tuple[int, int] | None) -> tuple[int, int] | None:
    """All variables share leading (chain, draw) axes; return them."""
    for name, value in data.items():
        if value.ndim < 2:
            raise ValueError(
                f"{_CALLER}: {group}[{name!r}] has shape {value.shape}; it needs leading (chain, draw) axes. "
                "Keep the chain axis even for one chain (shape (1, draws, ...))."
            )
        if expect is None:
            expect = value.shape[:2]
        elif value.shape[:2] != expect:
            raise ValueError(
                f"{_CALLER}: {group}[{name!r}] has leading axes {value.shape[:2]}, but other variables have "
                f"(chain, draw) = {expect}. Give every variable the same chains and draws."
            )
    return expect


def _per_step_stats(group: str, stats: dict, chain_draw: tuple[int, int] | None) -> dict:
    """step_size may be given per chain (chain,) or as a scalar: broadcast it to (chain, draw)."""
    if chain_draw is None:  # no draws in this phase: take (chain, draw) from the other stats
        chain_draw = _check_sample_dims(group, {k: v for k, v in stats.items() if k != "step_size"}, None)
    if "step_size" in stats and chain_draw is not None and stats["step_size"].ndim < 2:
        step = stats["step_size"]
        if step.ndim == 1:
            step = step[:, None]
        stats["step_size"] = np.broadcast_to(step, chain_draw).copy()
    _check_sample_dims(group, stats, chain_draw)
    return stats


def _dims_for(data_groups: dict, dims: Mapping | None) -> dict:
    """User dims win; otherwise dims given for a variable are kept only when they fit its shape."""
    merged = dict(dims or {})
    for group, data in data_groups.items():
        lead = 0 if group == "observed_data" else 2
        for name, value in data.items():
            if name in merged and len(merged[name]) != value.ndim - lead:
                raise ValueError(
                    f"{_CALLER}: dims[{name!r}] = {list(merged[name])} names {len(merged[name])} dimension(s), "
                    f"but {group}[{name!r}] has {value.ndim - lead} beyond the sample dims (shape {value.shape})."
                )
    return merged


def to_datatree(
    posterior: Mapping,
    *,
    sample_stats: Mapping | None = None,
    solver: Mapping | None = None,
    observed_data: Mapping | None = None,
    warmup_posterior: Mapping | None = None,
    warmup_sample_stats: Mapping | None = None,
    dims: Mapping | None = None,
    coords: Mapping | None = None,
    attrs: Mapping | None = None,
    log_likelihood: Mapping | None = None,
    posterior_predictive: Mapping | None = None,
    prior: Mapping | None = None,
    prior_predictive: Mapping | None = None,
) -> xr.DataTree:
    """Build an ArviZ DataTree.

    posterior            `{name: (chain, draw, *shape)}` constrained draws
    sample_stats         `{name: (chain, draw)}` per-step stats, ArviZ names (acceptance_rate, diverging,
                         lp, energy, step_size); step_size may be per chain (chain,) or a scalar
    solver               `{name: (chain,)}` per-chain solve stats, e.g. `solver_stats(solution)`; a scalar
                         (one solve for all chains) is repeated for every chain. They go to the
                         `solver_stats` group, not to sample_stats (whose variables ArviZ expects to
                         be (chain, draw)).
    observed_data        `{name: array}`
    log_likelihood       `{observed site: (chain, draw, *obs_shape)}` pointwise log likelihood (az.loo)
    posterior_predictive `{observed site: (chain, draw, *obs_shape)}`, same chains and draws as posterior
    prior, prior_predictive  `{name: (chain, draw, ...)}` draws from the prior (their own draw count)
    warmup_posterior, warmup_sample_stats   the same for the warmup phase (own draw count)
    dims, coords         ArviZ dims `{var: [dim, ...]}` (excluding chain and draw) and coordinate labels
                         `{dim: labels}`; unnamed dims become `<var>_dim_<i>`
    attrs                attributes of the root node (e.g. sampler, solver, versions)
    """
    groups = {
        "posterior": _as_numpy("posterior", posterior),
        "sample_stats": _as_numpy("sample_stats", sample_stats),
        "observed_data": _as_numpy("observed_data", observed_data),
        "warmup_posterior": _as_numpy("warmup_posterior", warmup_posterior),
        "warmup_sample_stats": _as_numpy("warmup_sample_stats", warmup_sample_stats),
    }
    if not groups["posterior"]:
        raise ValueError(f"{_CALLER}: posterior is empty; give at least one variable {{name: (chain, draw, ...)}}.")
    chain_draw = _check_sample_dims("posterior", groups["posterior"], None)
    assert chain_draw is not None  # the posterior has a variable (checked above)
    for group, data in (("log_likelihood", log_likelihood), ("posterior_predictive", posterior_predictive)):
        groups[group] = _as_numpy(group, data)
        _check_sample_dims(group, groups[group], chain_draw)
    for group, data in (("prior", prior), ("prior_predictive", prior_predictive)):
        groups[group] = _as_numpy(group, data)
    _check_sample_dims(
        "prior_predictive", groups["prior_predictive"], _check_sample_dims("prior", groups["prior"], None)
    )
    groups["sample_stats"] = _per_step_stats("sample_stats", groups["sample_stats"], chain_draw)
    warm = _check_sample_dims("warmup_posterior", groups["warmup_posterior"], None)
    groups["warmup_sample_stats"] = _per_step_stats("warmup_sample_stats", groups["warmup_sample_stats"], warm)
    for group in ("warmup_posterior", "warmup_sample_stats"):
        group_shape = _check_sample_dims(group, groups[group], None)
        if group_shape is not None and group_shape[0] != chain_draw[0]:
            raise ValueError(
                f"{_CALLER}: {group} has {group_shape[0]} chain(s) but posterior has {chain_draw[0]}; "
                "warmup and sampling must run the same chains."
            )

    per_chain = _as_numpy("solver", solver)
    for name, value in per_chain.items():
        if value.ndim == 0:  # one solve shared by all chains
            value = per_chain[name] = np.full(chain_draw[0], value)
        if value.shape != (chain_draw[0],):
            raise ValueError(
                f"{_CALLER}: solver[{name!r}] has shape {value.shape}; per-chain solve stats need shape "
                f"(chain,) = ({chain_draw[0]},). Reduce over time steps first (see solver_stats)."
            )
        if name in groups["sample_stats"]:
            raise ValueError(f"{_CALLER}: {name!r} is both a per-step and a per-chain statistic; rename one.")

    # A DataTree refuses '/' in a variable's name (its group separator): NumPyro's scope names sites "a/mu".
    data = {group: {datatree_name(k): v for k, v in values.items()} for group, values in groups.items() if values}
    dims = {datatree_name(k): [datatree_name(d) for d in v] for k, v in (dims or {}).items()}  # scope names plates
    coords = {datatree_name(k): v for k, v in (coords or {}).items()}
    tree = arviz_base.from_dict(
        data,
        dims=_dims_for(data, dims),
        coords=dict(coords or {}),
        save_warmup=True,
        attrs={"/": dict(attrs or {})} if attrs else None,
    )
    if per_chain:
        tree[SOLVER_GROUP] = xr.DataTree(arviz_base.dict_to_dataset(per_chain, sample_dims=["chain"]))
    return tree
