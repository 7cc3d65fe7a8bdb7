"""compare(): the same chains computed in parallel and sequentially, side by side."""

import warnings
from typing import Any, NamedTuple

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from parmcmc.api import check_settings, pick_solver, prepare, run_chains
from parmcmc.engine import Sequential
from parmcmc.io.output import datatree_from_run
from parmcmc.settings import SAMPLE_OPTIONS
from parmcmc.validate import IgnoredArgumentWarning

SUMMARY_STATS = ("mean", "sd", "ess_bulk", "ess_tail", "r_hat")


class Comparison(NamedTuple):
    """The same chains run in parallel and sequentially, side by side.

    Attributes
    ----------
    parallel, sequential
        The two DataTrees (same keys, same warmup, so the same draws).
    summary
        ArviZ's mean, sd, ess_bulk, ess_tail, r_hat per parameter, columns (run, statistic).
    runs
        Per run: wall-clock of sampling (compiled), compile time, Newton iterations (max over chains),
        converged, fell back, divergences (HMC; total over chains), mean acceptance rate, accept decisions
        near their threshold (parmcmc.exactness) and the largest LLE along the chains.
    max_abs_diff
        The largest ``|parallel - sequential|`` over all unconstrained draws.
    differing_decisions
        Accept decisions that differ between the two runs (all chains).
    verdict
        "same draws" (max_abs_diff within 1e-8 in float64, 1e-3 in float32, and no decision differs),
        "same distribution" (the draws differ, but every parameter's posterior mean agrees within 3 combined
        Monte Carlo standard errors, and so does its sd), or "different".
    """

    parallel: Any
    sequential: Any
    summary: pd.DataFrame
    runs: pd.DataFrame
    max_abs_diff: float
    differing_decisions: int = 0
    verdict: str = ""

    def __str__(self) -> str:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            return (
                f"{self.summary.round(3)}\n\n{self.runs}\n\n"
                f"max |parallel - sequential| over all draws: {self.max_abs_diff:.2e}, "
                f"{self.differing_decisions} accept decision(s) differ\nverdict: {self.verdict}"
            )


def compare(model, *, rng_key, num_samples, **kwargs) -> Comparison:
    """Run `model` with parallel=True and parallel=False on the same keys and warmup.

    Takes the arguments of parmcmc.sample (a `parallel` argument is ignored, with a warning) and returns a
    Comparison.
    """
    if "parallel" in kwargs:
        kwargs.pop("parallel")
        warnings.warn(
            "compare: parallel= is ignored: compare() runs both parallel=True and parallel=False.",
            IgnoredArgumentWarning,
            stacklevel=2,
        )
    given = {k: v for k, v in kwargs.items() if k in SAMPLE_OPTIONS}  # the rest go to the engine's solve
    solve_kwargs = {k: v for k, v in kwargs.items() if k not in SAMPLE_OPTIONS}
    settings = check_settings(  # options left out take sample()'s defaults
        model=model, rng_key=rng_key, num_samples=num_samples, parallel=True, solve_kwargs=solve_kwargs, **given
    )
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
    # az.summary returns a DataFrame here; it is annotated with the union of all its return kinds.
    summary = pd.concat(  # pyright: ignore[reportCallIssue]
        {name: _summary(tree)[list(SUMMARY_STATS)] for name, tree in trees.items()},  # pyright: ignore[reportArgumentType]
        axis=1,
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
                "divergences": int(np.sum(getattr(run.chains.stats, "is_divergent", np.zeros(1, int)))),
                "acceptance": round(float(np.mean(run.chains.stats.acceptance_rate)), 4),
                "near_threshold": int(np.sum(run.chains.near_threshold)),
                "lle_max": round(float(np.max(run.chains.lle)), 4) if name == "parallel" else float("nan"),
            }
            for name, run in runs.items()
        }
    ).T
    differing = int(
        np.sum(
            np.asarray(runs["parallel"].chains.stats.is_accepted)
            != np.asarray(runs["sequential"].chains.stats.is_accepted)
        )
    )
    dtype = jax.tree_util.tree_leaves(runs["parallel"].chains.positions)[0].dtype
    verdict = _verdict(trees, max_diff, differing, dtype)
    return Comparison(trees["parallel"], trees["sequential"], summary, table, max_diff, differing, verdict)


def _summary(tree):
    """``az.summary(tree, kind="all")``, without ArviZ's warnings about dividing by a variance of zero.

    A chain that never moved (already reported by FrozenChainWarning) has no variance: its ESS, MCSE and r-hat are
    NaN in the table, which says it; ArviZ's "invalid value encountered in scalar divide" would only repeat it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        return az.summary(tree, kind="all")


def _verdict(trees, max_diff, differing, dtype) -> str:
    """Same draws; same distribution within Monte Carlo error; or different (see Comparison)."""
    same_tol = 1e-8 if np.dtype(dtype) == np.float64 else 1e-3
    if np.isfinite(max_diff) and max_diff <= same_tol and differing == 0:
        return "same draws"
    stats = {name: _summary(tree) for name, tree in trees.items()}
    a, b = stats["parallel"], stats["sequential"]
    mcse = np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    mcse_sd = np.sqrt(a["mcse_sd"] ** 2 + b["mcse_sd"] ** 2)
    means_agree = bool(np.all(np.abs(a["mean"] - b["mean"]) <= 3 * mcse))
    sds_agree = bool(np.all(np.abs(a["sd"] - b["sd"]) <= 3 * mcse_sd))
    if means_agree and sds_agree:
        return (
            f"same distribution: the draws differ ({differing} accept decisions, max gap {max_diff:.3g}) but "
            "every posterior mean and sd agrees within 3 Monte Carlo standard errors"
        )
    worst = (np.abs(a["mean"] - b["mean"]) / mcse).idxmax()  # pyright: ignore[reportAttributeAccessIssue] (a Series)
    return (
        f"different: {worst}'s posterior mean differs by {float(np.abs(a['mean'] - b['mean'])[worst]):.3g}, "
        f"{float((np.abs(a['mean'] - b['mean']) / mcse)[worst]):.1f} Monte Carlo standard errors "
        f"({differing} accept decisions differ); check solver_converged, solver_fell_back and the warnings"
    )
