"""What a solve checks at every step: the step map at each state's predecessor, and whether each step holds.

Each step of a solution must satisfy x_t = f(x_{t-1}, u_t) to the tolerance atol + rtol |x_t|, with every entry
finite; the residual is the largest |x_t - f(x_{t-1}, u_t)|, infinite where anything is not finite.
"""

import jax
import jax.numpy as jnp

from parmcmc.engine.solvers import shift

__all__ = ["at", "evaluate_all", "per_step_check"]


def at(tree, t):
    """The leaves of `tree` at index t of their leading axis."""
    return jax.tree_util.tree_map(lambda a: a[t], tree)


def evaluate_all(fn, X, x0, inputs, chunk):
    """fn at every state's predecessor, in chunks to bound the memory of a windowed solve."""
    return jax.lax.map(lambda xu: fn(*xu), (shift(X, x0), inputs), batch_size=chunk)


def per_step_check(X, fx, atol, rtol):
    """Which steps are finite and within tolerance, and the residual (inf where anything is not finite).

    |x - f| is finite exactly where both are (or where their difference overflows, which is no convergence
    either), so one test per entry decides both, in one pass (a hot spot of every iteration).
    """
    err = jnp.abs(X - fx)
    finite = jnp.isfinite(err)
    ok = jnp.all(finite & (err <= atol + rtol * jnp.abs(X)), axis=1)
    residual = jnp.max(jnp.where(finite, err, jnp.inf)).astype(X.dtype)
    return ok, residual
