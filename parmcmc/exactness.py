"""Does a parallel chain equal the sequential replay? Measured on the solved chain, without the replay.

Every step the solver returns satisfies the step map to the solver's tolerance. Whether the draws are also
the very draws of the sequential chain depends on two things this module measures per chain:

- the accept decisions within reach of the tolerance: step t accepts iff log u_t < log alpha_t. Moving the
  previous state by the tolerance (|delta_i| = atol + rtol |x_i|, fixed random signs) moves log alpha_t by
  some Delta_t, measured by recomputing the step's statistics at the moved state. A decision is "near its
  threshold" when its margin |log u_t - log alpha_t| is at most 10 Delta_t times the growth the dynamics can
  give a difference over the chain (below).
- the largest Lyapunov exponent (LLE) along the solved chain: a tangent vector pushed through the step Jacobians
  at the solved states in every window of L steps, the windows vmapped (depth L, not T). Where the LLE is
  negative differences shrink and the growth factor is 1; where it is positive a difference can grow by up to
  exp(LLE T) (capped at 1 / machine epsilon) before it meets a decision.

A chain with no near-threshold decision gives the sequential chain's draws; otherwise its draws are a valid
chain of the same sampler that may part from the replay at such a decision (docs/precision.md).
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from parmcmc.samplers import threefry

NUM_OFFSETS, LENGTH, SAFETY = 8, 64, 10.0


class Exactness(NamedTuple):
    """near_threshold: int, accept decisions within reach of the tolerance. lle: the LLE estimate per step."""

    near_threshold: jax.Array
    lle: jax.Array


def lle_along(step, x0, states, inputs, *, num_offsets: int = NUM_OFFSETS, length: int = LENGTH) -> jax.Array:
    """LLE of x_t = step(x_{t-1}, inputs[t]) along the known states.

    Mean log growth of a tangent vector over `num_offsets` windows of `length` steps (the first quarter of each
    discarded while the vector aligns).
    """
    T = states.shape[0]
    L = max(1, min(length, T))
    K = max(1, min(num_offsets, T // L))
    starts = jnp.asarray([round(k * (T - L) / max(K - 1, 1)) for k in range(K)], jnp.int32)
    previous = jnp.concatenate([x0[None].astype(states.dtype), states[:-1]], axis=0)
    tiny = jnp.finfo(states.dtype).tiny
    # Fixed starting tangents, jax.random.normal(key(0), ...), drawn on the host: a constant of the program, not a
    # hash in it (which compiled in as long as the rest of the LLE).
    v0 = unit_tangents(K, states.shape[1], states.dtype)

    def one(start, v):
        xs = jax.lax.dynamic_slice_in_dim(previous, start, L)
        us = jax.tree_util.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, L), inputs)

        def body(v, xu):
            x, u = xu
            w = jax.jvp(lambda y: step(y, u), (x,), (v,))[1]
            n = jnp.maximum(jnp.linalg.norm(w), tiny)
            return w / n, jnp.log(n)

        logs = jax.lax.scan(body, v, (xs, us))[1]
        return jnp.mean(logs[L // 4 :])

    return jnp.mean(jax.vmap(one)(starts, v0))


def moved_by_tolerance(x0, states, atol, rtol):
    """The previous state of every step, moved by the tolerance (fixed random signs per entry)."""
    previous = jnp.concatenate([x0[None].astype(states.dtype), states[:-1]], axis=0)
    return _moved(previous, _signs(previous.shape[1:]), atol, rtol)


def _signs(shape) -> np.ndarray:
    """Fixed random signs per entry: bernoulli(key(1), 0.5), drawn on the host (constants of the program)."""
    return np.where(threefry.host_coin(1, shape), 1.0, -1.0)


def _moved(x, signs, atol, rtol):
    """x (one state or a stack of them) moved by the tolerance, |delta_i| = atol + rtol |x_i|, with `signs`."""
    return x + jnp.asarray(signs, x.dtype) * (atol + rtol * jnp.abs(x))


def near_threshold(sampler, x0, states, inputs, stats, lle, atol, rtol, alpha_moved=None) -> jax.Array:
    """Accept decisions whose margin |log u - log alpha| is within what the tolerance can move (module doc).

    `alpha_moved`, the acceptance probabilities from `moved_by_tolerance`, is computed here unless given.
    """
    if alpha_moved is None:
        moved = moved_by_tolerance(x0, states, atol, rtol)
        alpha_moved = jax.vmap(sampler.stats)(moved, inputs).acceptance_rate
    log_alpha, log_moved = jnp.log(stats.acceptance_rate), jnp.log(alpha_moved)
    delta = jnp.abs(log_moved - log_alpha)
    delta = jnp.where(jnp.isfinite(delta), delta, 0.0)
    margin = jnp.abs(jnp.log(inputs.uniform) - log_alpha)
    T, eps = states.shape[0], jnp.finfo(states.dtype).eps
    growth = jnp.minimum(jnp.exp(jnp.clip(jnp.nan_to_num(lle, nan=jnp.inf), 0.0, None) * T), 1.0 / eps)
    return jnp.sum(margin <= SAFETY * delta * growth).astype(jnp.int32)


class StepObserver:
    """One step of a chain, observed: ``(x_next, v_next, figures) = observer(x, v, u)``.

    The step's transition evaluated forward-mode at the state x (with the tangent v, for the LLE) and at x moved by
    the tolerance (for the near-threshold count), as a batch of two: x_next is the step's next state, v_next the
    normalised tangent, and figures every statistic of the two lanes packed into two arrays, ``(2, k)`` reals (the
    tangent's log growth last) and ``(2, m)`` integers and flags, so that a time axis moves in a transpose or two, not
    one per statistic. One copy of the step and its derivative serves the statistics, the moved statistics and the
    LLE (three passes before). `finish` turns the figures of a chain into its statistics and Exactness.
    """

    def __init__(self, sampler, x0, atol, rtol):
        self.sampler, self.atol, self.rtol = sampler, atol, rtol
        self.signs = _signs(x0.shape)
        self.layout = None  # the statistics' leaves, tree and packs: read from the first trace of a step

    def _packing(self, info, dtype):
        """(leaves, treedef, which leaves are real, the two packs' dtypes) of one lane of the step's statistics."""
        leaves, treedef = jax.tree_util.tree_flatten(
            jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), info)
        )
        real = [jnp.issubdtype(t.dtype, jnp.floating) for t in leaves]
        pick = lambda r: [t.dtype for t, is_real in zip(leaves, real, strict=True) if is_real == r]
        return leaves, treedef, real, (jnp.result_type(dtype, *pick(True)), jnp.result_type(jnp.int32, *pick(False)))

    def __call__(self, x, v, u):
        """The step from x with input u: (next state, next unit tangent, packed figures of the two lanes)."""
        moved = _moved(x, self.signs, self.atol, self.rtol)
        transition = lambda y, t: jax.jvp(lambda z: self.sampler._transition(z, u), (y,), (t,), has_aux=True)
        y, dx, info = jax.vmap(transition)(jnp.stack([x, moved]), jnp.stack([v, jnp.zeros_like(v)]))
        size = jnp.maximum(jnp.linalg.norm(dx[0]), jnp.finfo(x.dtype).tiny)
        self.layout = self._packing(info, x.dtype)
        _, _, real, packs = self.layout
        columns = [a.reshape((2, -1)) for a in jax.tree_util.tree_leaves(info)]
        floats = [c.astype(packs[0]) for c, r in zip(columns, real, strict=True) if r]
        ints = [c.astype(packs[1]) for c, r in zip(columns, real, strict=True) if not r]
        floats.append(jnp.broadcast_to(jnp.log(size), (2, 1)).astype(packs[0]))
        ints = jnp.concatenate([jnp.zeros((2, 0), packs[1]), *ints], axis=1)
        return y[0], dx[0] / size, (jnp.concatenate(floats, axis=1), ints)

    def finish(self, figures, x0, states, inputs, length: int):
        """(statistics, Exactness) of a chain from its steps' figures, ``(T, 2, k)`` and ``(T, 2, m)``.

        The LLE is the mean log growth over every whole window of `length` steps (the tangent restarted at each
        window's start), the first quarter of each left out while the tangent aligns.
        """
        floats, ints = figures
        T = states.shape[0]
        if self.layout is None:  # read from the trace of a step, which produced the figures; else traced here
            one_input = jax.tree_util.tree_map(lambda a: a[0], inputs)
            info = jax.eval_shape(lambda x, u: self.sampler.stats(x, u), x0.astype(states.dtype), one_input)
            self.layout = self._packing(
                jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((2, *a.shape), a.dtype), info), states.dtype
            )
        leaves, treedef, real, _ = self.layout

        def lane(j):
            """The statistics of lane j (0: the solved states, 1: the moved ones), unpacked."""
            out, columns = [], {True: 0, False: 0}  # the next column of the real and of the integer pack
            for t, r in zip(leaves, real, strict=True):
                size, pack, at = math.prod(t.shape), floats if r else ints, columns[r]
                out.append(pack[:, j, at : at + size].reshape((T, *t.shape)).astype(t.dtype))
                columns[r] = at + size
            return jax.tree_util.tree_unflatten(treedef, out)

        stats = lane(0)
        whole = T // length
        logs = floats[: whole * length, 0, -1].reshape((whole, length))
        lle = jnp.mean(logs[:, length // 4 :])
        near = near_threshold(
            self.sampler, x0, states, inputs, stats, lle, self.atol, self.rtol, lane(1).acceptance_rate
        )
        return stats, Exactness(near, lle)


def unit_tangents(n: int, dim: int, dtype) -> jax.Array:
    """n fixed starting tangents of unit length (jax.random.normal(key(0), ...), drawn on the host: constants)."""
    v0 = threefry.host_normal(0, (n, dim), dtype)
    return jnp.asarray(v0 / np.linalg.norm(v0, axis=1, keepdims=True), dtype)


def stats_and_exactness(sampler, x0, states, inputs, atol, rtol):
    """The chain's statistics (as sampler.chain_stats) and its Exactness, from one compiled copy of the step.

    One pass of StepObserver over the chain cut into windows of LENGTH steps (vmapped; the last one padded with the
    last step), each window's tangent started afresh. The LLE is the mean over every whole window (it was 8 of them,
    evenly spaced: `lle_along`). A block solve observes its final pass instead (parmcmc.chain), with no pass here.
    """
    T, D = states.shape
    L = max(1, min(LENGTH, T))
    n = -(-T // L)
    previous = jnp.concatenate([x0[None].astype(states.dtype), states[:-1]], axis=0)
    observer = StepObserver(sampler, x0.astype(states.dtype), atol, rtol)

    def windows(a):  # (T, ...) -> (n, L, ...), the last window padded with the last step
        a = jnp.concatenate([a, jnp.repeat(a[-1:], n * L - T, axis=0)]) if n * L > T else a
        return a.reshape((n, L, *a.shape[1:]))

    def run(v, xs, us):
        return jax.lax.scan(lambda v, xu: observer(xu[0], v, xu[1])[1:], v, (xs, us))[1]

    packed = jax.vmap(run)(
        unit_tangents(n, D, states.dtype), windows(previous), jax.tree_util.tree_map(windows, inputs)
    )
    figures = tuple(p.reshape((n * L, 2, p.shape[-1]))[:T] for p in packed)  # (T, lane, figure)
    return observer.finish(figures, x0, states, inputs, L)


def any_may_differ(result: Any) -> bool:
    """Whether any chain has an accept decision within reach of the solver's tolerance."""
    return bool(jnp.any(jnp.asarray(result.near_threshold) > 0))
