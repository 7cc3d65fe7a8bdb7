"""After a sampling run: say what is wrong with it, never return it silently.

- report_unconverged:        a chain that is not converged (even after the sequential fallback) warns
                             NotConvergedWarning, or raises SolveError with throw=True.
- warn_if_frozen:            a chain that accepted no proposal, or whose draws barely move (a step size far
                             too large or far too small) warns FrozenChainWarning.
- warn_if_replay_may_differ: a chain with accept decisions within reach of the solver's tolerance (see
                             parmcmc.exactness) warns ReplayWarning: its draws are a valid chain of the sampler
                             but may differ from the sequential replay.
- warn_if_not_mixed:         chains whose rank-normalised split R-hat passes RHAT_LIMIT warn MixingWarning: they
                             have not explored the same distribution, so they are not yet samples of the posterior.
- warn_if_infinite_density: a chain stuck at a point of infinite log density warns RuntimeWarning.
- model_errors_named:        a runtime failure inside the compiled run (a host callback of the log density that
                             raised) is re-raised naming the model and what to do, instead of JAX's raw error.
"""

import contextlib
import re
import warnings

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from parmcmc.engine.solve import NotConvergedWarning, SolveError, failure_message
from parmcmc.io.names import datatree_name


class FrozenChainWarning(UserWarning):
    """A chain accepted no proposal, or its draws barely moved: its step size is far off."""


class MixingWarning(UserWarning):
    """The chains have not mixed (R-hat): their draws are not yet samples of the posterior."""


class ReplayWarning(UserWarning):
    """A parallel chain's draws may differ from the sequential replay (a valid chain of the same sampler)."""


def report_unconverged(chains, solver, *, throw: bool = False, call: str = "sample") -> None:
    """Warn NotConvergedWarning (or raise SolveError with throw=True) for chains that did not converge."""
    msg = failure_message(solver, chains.converged, chains.result, chains.num_iters, chains.residual, chains.fell_back)
    if not msg:
        return
    bad = np.flatnonzero(~np.asarray(chains.converged, dtype=bool).ravel()).tolist()
    msg = f"{call}: chain(s) {bad} are not converged: {msg} tree['solver_stats'].solver_converged marks them."
    if throw:
        raise SolveError(msg)
    warnings.warn(msg, NotConvergedWarning, stacklevel=4)


MIN_DRAWS = 10
RARELY_ACCEPTED = 0.05  # a frozen chain that accepted fewer of its proposals than this has too large a step


def warn_if_frozen(chains, step_size, *, call: str = "sample") -> bool:
    """Warn about the frozen chains and why; return whether any chain is frozen.

    Per chain: no accepted proposal (step size too large), or a largest relative move over the whole chain
    below sqrt(machine epsilon) (step size too small: the moves are lost in rounding).
    """
    accepted = np.asarray(chains.stats.is_accepted, dtype=bool)  # (chain, draw)
    accepted = accepted.reshape(-1, accepted.shape[-1])
    if accepted.shape[1] < MIN_DRAWS:  # too few draws to tell a frozen chain from chance
        return False
    flat = np.asarray(jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))(chains.positions))  # (chain, draw, D)
    flat = flat.reshape(-1, *flat.shape[-2:])
    eps = np.asarray(step_size).ravel()
    tiny = float(np.sqrt(np.finfo(flat.dtype).eps))
    with np.errstate(invalid="ignore"):
        moved = np.max((flat.max(axis=1) - flat.min(axis=1)) / (1.0 + np.abs(flat).max(axis=1)), axis=-1)
    never = np.flatnonzero(~accepted.any(axis=1)).tolist()
    still = [c for c in np.flatnonzero(moved < tiny).tolist() if c not in never]
    # A chain that accepts (almost) nothing barely moves too: its step size is too large, not too small.
    rare = [c for c in still if accepted[c].mean() < RARELY_ACCEPTED]
    never, still = never + rare, [c for c in still if c not in rare]
    if never:
        warnings.warn(
            f"{call}: chain(s) {never} accepted {'none' if not rare else 'almost none'} of their "
            f"{accepted.shape[1]} proposals (step size {_sizes(eps, never)}): the draws are (nearly all) the "
            "starting point, not a sample of the posterior. The step "
            "size is far too large for the target: leave step_size out to let the warmup adapt it, or give a "
            "smaller one.",
            FrozenChainWarning,
            stacklevel=4,
        )
    if still:
        warnings.warn(
            f"{call}: the draws of chain(s) {still} barely moved (largest change of any parameter over the "
            f"chain {float(np.min(moved[still])):.2g} relative to its size; step size {_sizes(eps, still)}): "
            "the chain has not explored the posterior. The step size is far too small: leave step_size out to "
            "let the warmup adapt it, or give a larger one.",
            FrozenChainWarning,
            stacklevel=4,
        )
    return bool(never or still)


def _sizes(eps, rows):
    shown = ", ".join(f"{float(eps[r if eps.size > 1 else 0]):.3g}" for r in rows[:4])
    return shown + (", ..." if len(rows) > 4 else "")


def warn_if_replay_may_differ(chains, *, call: str = "sample") -> None:
    """Warn ReplayWarning when a chain's draws may differ from the sequential replay."""
    near = getattr(chains, "near_threshold", None)
    if near is None:
        return
    near = np.asarray(near).ravel()
    if not (near > 0).any():
        return
    lle = np.asarray(chains.lle, dtype=np.float64).ravel()
    rows = np.flatnonzero(near > 0).tolist()
    detail = "; ".join(f"chain {r}: {int(near[r])} decision(s), LLE {lle[r]:+.3g}/step" for r in rows[:6])
    warnings.warn(
        f"{call}: the draws of chain(s) {rows} may differ from the sequential replay: accept decisions lie within "
        f"what the solver's tolerance can move ({detail}). Every returned step satisfies the step map to "
        "tolerance, so these are valid draws of the same sampler; they are the very draws of the sequential chain "
        "only where no decision flips. A positive LLE means the dynamics expand a 1e-13 difference until a "
        "decision near its threshold flips. For the replay itself use parallel=False; for fewer near-threshold "
        "decisions tighten atol/rtol. tree['solver_stats'].solver_near_threshold and solver_lle hold the figures.",
        ReplayWarning,
        stacklevel=4,
    )


@contextlib.contextmanager
def model_errors_named(model_name: str, call: str = "sample"):
    """Re-raise a failure inside the compiled run (a host callback that raised) naming the model."""
    try:
        yield
    except jax.errors.JaxRuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        # The Python exception the callback raised, e.g. "ValueError: ...", is the last such line.
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b.*", line)]
        first = raised[-1] if raised else (lines[0] if lines else repr(err))
        raise RuntimeError(
            f"{call}: the run failed inside the compiled computation of model {model_name!r}: {first[:400]}. "
            "This is usually a host callback in the log density (jax.pure_callback, io_callback or "
            "jax.debug.callback) that raised on some position the chain reached: the run is lost. Make the "
            "callback return -inf (or NaN) where it cannot evaluate (the proposal is then rejected), or write the "
            "density in JAX."
        ) from err


def warn_if_infinite_density(chains, call: str = "sample") -> None:
    """A proposal whose log density is +inf is accepted (as in BlackJAX) and the chain never leaves it.

    Every later proposal is rejected. Such draws look like a converged chain; say so.
    """
    lp = np.asarray(chains.stats.logdensity)  # (chain, draw), on the host
    stuck = np.isposinf(lp)
    if bool(np.any(stuck)):
        rows = np.flatnonzero(np.any(stuck, axis=1)).tolist()
        first = [int(np.argmax(stuck[k])) for k in rows]
        warnings.warn(
            f"{call}: the log density is +inf at the draws of chain(s) {rows} from draw(s) {first} on. A chain "
            "that accepts a point of infinite density never leaves it (every later proposal is rejected; HMC "
            "marks every step divergent), so these draws are not from the posterior. The density is unbounded "
            "there: look for log(0) with the wrong sign, a division by zero, or a density such as 1/x near 0.",
            RuntimeWarning,
            stacklevel=3,
        )


# Rank-normalised split R-hat above which the chains are reported as not mixed. Not 1.01 or 1.05: on mixed chains
# of 100-200 draws, 10 parameters, sampling noise alone passes 1.05 in 20-50 % of runs (AR(1) draws, rho 0.5); 1.1 in
# 0-8 %, and in 10-23 % at rho 0.8-0.9, whose few effective draws the warning then rightly names.
RHAT_LIMIT = 1.1
RHAT_MIN_DRAWS = 100  # fewer draws per chain are not judged
RHAT_MAX_ENTRIES = 4_000_000  # draws x parameters ranked at most: longer runs are thinned for the check


def split_rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat (Vehtari et al. 2021) of (chain, draw, k) draws: (k,), NaN where constant.

    The larger of the bulk R-hat (of the ranks, normal scores) and the tail R-hat (of the folded draws' ranks).
    """
    import scipy.special
    import scipy.stats

    half = draws.shape[1] // 2
    split = np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half :]])  # (2 chains, half, k)

    def rhat(x):
        flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)  # (k, draws): each row sorted in place
        z = scipy.special.ndtri((scipy.stats.rankdata(flat, axis=1) - 0.375) / (flat.shape[1] + 0.25))
        return _plain_rhat(z.T.reshape(x.shape))

    folded = np.abs(split - np.median(split.reshape(-1, split.shape[-1]), axis=0))
    return np.fmax(rhat(split), rhat(folded))


def _plain_rhat(split: np.ndarray) -> np.ndarray:
    """Gelman-Rubin's R-hat of (chain, draw, k) draws, without ranks: (k,)."""
    n = split.shape[1]
    within = np.mean(np.var(split, axis=1, ddof=1), axis=0)
    between = n * np.var(np.mean(split, axis=1), axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(((n - 1) / n * within + between / n) / within)


def warn_if_not_mixed(chains, *, call: str = "sample") -> None:
    """Warn MixingWarning when a parameter's rank-normalised split R-hat passes RHAT_LIMIT.

    Per entry of every variable of the chains' (unconstrained) positions; the split halves of each chain are
    compared, so one chain is checked too. Runs shorter than RHAT_MIN_DRAWS draws are not judged; a run of more
    than RHAT_MAX_ENTRIES draws x parameters is thinned for the check (ranking sorts every parameter's draws: 2.3 s
    for 1000 parameters x 8000 draws here).
    """
    leaves = jax.tree_util.tree_flatten_with_path(chains.positions)[0]
    if not leaves or np.shape(leaves[0][1])[1] < RHAT_MIN_DRAWS:
        return
    entries = sum(int(np.prod(np.shape(leaf)[2:])) for _, leaf in leaves) * int(np.prod(np.shape(leaves[0][1])[:2]))
    thin = max(1, -(-entries // RHAT_MAX_ENTRIES))
    worst = []
    for path, leaf in leaves:
        x = np.asarray(leaf, dtype=np.float64)[:, ::thin]
        r = split_rhat(x.reshape(*x.shape[:2], -1))
        name = datatree_name(".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path) or "x")
        scalar = np.ndim(leaf) == 2
        worst += [(float(v), name if scalar else f"{name}[{i}]") for i, v in enumerate(r) if v > RHAT_LIMIT]
    if not worst:
        return
    worst.sort(reverse=True)
    shown = ", ".join(f"{n} {v:.3g}" for v, n in worst[:5]) + (", ..." if len(worst) > 5 else "")
    warnings.warn(
        f"{call}: the chains have not mixed: the rank-normalised split R-hat of {len(worst)} parameter(s) is above "
        f"{RHAT_LIMIT} ({shown}; unconstrained). Their chains (or the two halves of one) have not explored the "
        "same distribution, or mix so slowly that these draws are too few to tell: they are not yet samples of "
        "the posterior to trust. Run a longer warmup and more draws; "
        "for parameters of very different scales try dense_mass='low_rank' (HMC: a metric fitted to draws and "
        "gradients) or adaptation='chees', for correlated ones dense_mass=True; reparameterise hierarchies "
        "(non-centred). arviz.summary(tree) shows R-hat and ESS per parameter.",
        MixingWarning,
        stacklevel=4,
    )
