"""The largest Lyapunov exponent (LLE) of a step map along a sequential pilot trajectory.

`lyapunov_exponent` pushes P unit tangent vectors through the step Jacobians with forward-mode products
(jax.linearize), renormalised every step; the LLE is the time average of the log growth, after a burn-in
that lets the vectors align with the most expanding direction. A negative LLE means the dynamics forget
perturbations, which is when parallel Newton methods converge in few iterations (docs/predictability.md).
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from parmcmc.arguments import check_int, check_rng_key
from parmcmc.jitcache import program_jit

__all__ = ["LyapunovEstimate", "lyapunov_exponent"]


class LyapunovEstimate(NamedTuple):
    """The largest Lyapunov exponent of a step map along one trajectory, per step (natural log).

    Attributes
    ----------
    lle
        Mean over probes of each probe's time-averaged log growth after burn-in.
    stderr
        Standard error of the time average (batch means over `num_batches` blocks of the probe-averaged log-growth
        series): the statistical error of a finite pilot.
    spread
        Standard deviation across probes: how much the answer depends on the initial direction (near zero once every
        probe has aligned with the most expanding direction).
    per_probe
        (P,) numpy array, each probe's estimate.
    num_steps
        The number of steps averaged (after burn-in).
    """

    lle: float
    stderr: float
    spread: float
    per_probe: np.ndarray
    num_steps: int

    @property
    def uncertainty(self) -> float:
        """The standard error of the estimate, from the spread over the offsets."""
        return max(self.stderr, self.spread)

    def __str__(self) -> str:
        return f"{self.lle:.4g} ± {self.uncertainty:.2g} per step"


def lyapunov_exponent(
    fn: Callable,
    x0: Any,
    inputs: Any,
    *,
    num_probes: int = 8,
    key: jax.Array | None = None,
    burn_in: int | None = None,
    num_batches: int = 20,
) -> LyapunovEstimate:
    """Estimate the largest Lyapunov exponent of x_t = fn(x_{t-1}, inputs[t]) along its trajectory from x0.

    A sequential lax.scan runs the recurrence and carries `num_probes` tangent vectors (random unit
    vectors drawn from `key`, default key 0), each pushed through the step Jacobian with a forward-mode
    product and renormalised every step. The log growths of the first `burn_in` steps (default T // 10)
    are discarded. Growth factors of zero are clamped at the dtype's smallest normal number, so a map
    that collapses every direction gets a very negative, finite estimate. Returns Python floats (not
    jittable); a non-finite Jacobian or state gives lle = nan.
    """
    num_steps = _num_steps(inputs, "lyapunov_exponent")
    burn_in = num_steps // 10 if burn_in is None else burn_in
    check_int("num_probes", num_probes, call="lyapunov_exponent")
    check_int("num_batches", num_batches, call="lyapunov_exponent")
    if key is not None:
        check_rng_key(key, "lyapunov_exponent", name="key")
    key = jax.random.key(0) if key is None else key
    if not (isinstance(burn_in, int) and 0 <= burn_in <= num_steps - 2):
        raise ValueError(
            f"lyapunov_exponent: burn_in={burn_in!r} must be an integer in [0, T - 2] for T={num_steps} steps."
        )
    x, unravel = ravel_pytree(x0)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"lyapunov_exponent: x0 must hold floating-point arrays; got dtype {x.dtype}.")
    logs = _log_growth(lambda y, u: ravel_pytree(fn(unravel(y), u))[0].astype(y.dtype), x, inputs, num_probes, key)
    logs = np.asarray(logs, dtype=np.float64)[burn_in:]  # (N, P)
    per_probe = logs.mean(axis=0)
    series = logs.mean(axis=1)
    batches = np.array_split(series, min(num_batches, len(series)))
    means = np.array([b.mean() for b in batches])
    stderr = float(means.std(ddof=1) / math.sqrt(len(means))) if len(means) > 1 else float("inf")
    spread = float(per_probe.std(ddof=1)) if num_probes > 1 else 0.0
    return LyapunovEstimate(float(per_probe.mean()), stderr, spread, per_probe, len(series))


def _log_growth(flat_fn, x0, inputs, num_probes, key):
    """(T, P) log growth of P tangent vectors along the trajectory, renormalised every step."""
    V = jax.random.normal(key, (num_probes, x0.shape[0]), x0.dtype)
    V = V / jnp.linalg.norm(V, axis=1, keepdims=True)
    tiny = jnp.finfo(x0.dtype).tiny

    def step(carry, u):
        x, V = carry
        fx, push = jax.linearize(lambda y: flat_fn(y, u), x)
        W = jax.vmap(push)(V)
        norms = jnp.maximum(jnp.linalg.norm(W, axis=1), tiny)
        return (fx, W / norms[:, None]), jnp.log(norms)

    return program_jit(lambda x, V, u: jax.lax.scan(step, (x, V), u)[1])(x0, V, inputs)


def _num_steps(inputs, call) -> int:
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves or any(jnp.ndim(a) == 0 for a in leaves) or len({jnp.shape(a)[0] for a in leaves}) != 1:
        raise ValueError(f"{call}: inputs must be a pytree of arrays sharing a leading axis T.")
    return int(jnp.shape(leaves[0])[0])
