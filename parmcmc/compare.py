"""compare(): the same chains computed in parallel and sequentially, side by side."""

from typing import Any, NamedTuple

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from parmcmc.api import check_settings, pick_solver, prepare, run_chains, sample
from parmcmc.engine import Sequential
from parmcmc.io.output import datatree_from_run

SUMMARY_STATS = ("mean", "sd", "ess_bulk", "ess_tail", "r_hat")


class Comparison(NamedTuple):
    """parallel, sequential: the two DataTrees (same keys, same warmup, so the same draws).
    summary: ArviZ's mean, sd, ess_bulk, ess_tail, r_hat per parameter, columns (run, statistic).
    runs:    per run: wall-clock of sampling (compiled), compile time, Newton iterations (max over
             chains), converged, fell back.
    max_abs_diff: the largest |parallel - sequential| over all unconstrained draws."""

    parallel: Any
    sequential: Any
    summary: pd.DataFrame
    runs: pd.DataFrame
    max_abs_diff: float

    def __str__(self) -> str:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            return (
                f"{self.summary.round(3)}\n\n{self.runs}\n\n"
                f"max |parallel - sequential| over all draws: {self.max_abs_diff:.2e}"
            )


def compare(model, *, rng_key, num_samples, **kwargs) -> Comparison:
    """Run `model` with parallel=True and parallel=False on the same keys and warmup; takes the
    arguments of parmcmc.sample (its `parallel` is ignored) and returns a Comparison."""
    kwargs.pop("parallel", None)
    params = _sample_params()
    given = {k: v for k, v in kwargs.items() if k in params}
    defaults = {k: p.default for k, p in params.items() if p.default is not p.empty}
    settings = check_settings(model=model, rng_key=rng_key, num_samples=num_samples, parallel=True,
                              solve_kwargs=_solve_kwargs(kwargs), **{**defaults, **given})
    prepared = prepare(settings)
    runs = {
        "parallel": run_chains(settings, prepared, pick_solver(settings, prepared)),
        "sequential": run_chains(settings, prepared, Sequential()),
    }
    trees = {name: datatree_from_run(prepared, run, settings) for name, run in runs.items()}
    diff = jax.tree_util.tree_map(
        lambda a, b: jnp.max(jnp.abs(a - b)), runs["parallel"].chains.positions, runs["sequential"].chains.positions
    )
    max_diff = float(max(jax.tree_util.tree_leaves(diff)))
    summary = pd.concat(
        {name: az.summary(tree, kind="all")[list(SUMMARY_STATS)] for name, tree in trees.items()}, axis=1
    )
    table = pd.DataFrame(
        {
            name: {
                "solver": type(run.solver).__name__,
                "wall_clock_s": round(run.seconds, 4),
                "compile_s": round(run.compile_seconds, 2),
                "newton_iterations": int(np.max(run.chains.num_iters)),
                "converged": bool(np.all(run.chains.converged)),
                "fell_back": bool(np.any(run.chains.fell_back)),
            }
            for name, run in runs.items()
        }
    ).T
    return Comparison(trees["parallel"], trees["sequential"], summary, table, max_diff)


def _sample_params():
    import inspect

    return {k: p for k, p in inspect.signature(sample).parameters.items()
            if p.kind == p.KEYWORD_ONLY and k not in ("parallel", "rng_key", "num_samples")}


def _solve_kwargs(kwargs):
    known = set(_sample_params())
    return {k: v for k, v in kwargs.items() if k not in known}
