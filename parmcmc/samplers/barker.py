"""Barker's proposal (Livingstone & Zanella 2022) as a step map.

Per coordinate i the proposal is ``y_i = x_i + b_i z_i`` with ``z_i ~ N(0, eps^2)`` and a sign
``b_i = +1`` with probability ``p_i = 1 / (1 + exp(-g_i z_i))`` (``g = grad log p(x)``), ``-1``
otherwise: a random-walk step whose direction leans on the gradient, accepted with the
Metropolis-Hastings ratio. Unlike MALA's drift ``eps * g``, the gradient enters only through the
coins' probabilities, which are bounded: a too-large step size or a steep gradient cannot throw the
proposal far away, which is why the sampler is robust to its step size and to heterogeneous scales.

Noise, arithmetic and accept test follow BlackJAX 1.7's ``blackjax.barker`` (alias
``blackjax.barker_proposal``) with its default (identity) metric, so the same ``rng_key`` gives the
same chain. With a preconditioner (``loc``, ``scale``) the chain is BlackJAX's Barker chain on the
transformed density ``z -> log p(loc + scale z)`` (see :mod:`parmcmc.samplers.base`).

As a step map for the parallel engine: with the coins' uniforms pre-drawn, the signs ``b`` are
piecewise constant in ``x``, so the proposal's Jacobian is the identity almost everywhere, and so is
the step map's, accepted or not. A Newton solver therefore sees the identity (DEER reduces to a
Picard-like iteration that fixes at least one more state per iteration); the chain's contraction
lives entirely in accept decisions and coins that flip between iterates (docs/samplers.md).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from parmcmc.samplers import gate as _gate
from parmcmc.samplers import noise as _noise
from parmcmc.samplers.base import AbstractSampler
from parmcmc.samplers.mala import MALAInfo

__all__ = ["Barker", "BarkerInfo", "BarkerNoise"]


class BarkerNoise(NamedTuple):
    """Pre-drawn noise of a Barker chain (or of one step, without the T axis).

    normal
        ``(T, D)`` standard normal draws (the proposal's ``z`` before the step size scales it).
    coin
        ``(T, D)`` uniforms on [0, 1) for the signs: ``b_i = +1`` iff ``coin_i < p_i``.
    uniform
        ``(T,)`` uniforms on [0, 1) for the accept test ``u < acceptance_rate``.
    """

    normal: Array
    coin: Array
    uniform: Array


# A Barker transition reports what a MALA transition does (BlackJAX's acceptance_rate and is_accepted, and the
# log density at the returned position): one type for both.
BarkerInfo = MALAInfo


class Barker(AbstractSampler):
    """Barker's proposal with a fixed step size, as a deterministic step map.

    Parameters
    ----------
    logdensity_fn
        Log density of the target on (pytree) positions.
    step_size
        Positive scale ``eps`` of the proposal's Gaussian increments (BlackJAX's ``step_size``).
    gate, gate_temperature
        As for :class:`~parmcmc.samplers.mala.MALA`: which derivative of the accept gate the solver
        sees (the values are identical).
    loc, scale
        An optional linear preconditioner, as for :class:`~parmcmc.samplers.mala.MALA`: the chain
        runs on ``z = scale^-1 (x - loc)`` (a diagonal ``scale``, the posterior's standard
        deviations, is Livingstone & Zanella's preconditioned Barker).

    Notes
    -----
    Each step evaluates ``jax.value_and_grad`` twice, at ``x`` and at the proposal, as MALA. The
    coins are drawn per leaf of the position, as BlackJAX draws them (one key per leaf), so the
    noise depends on the position's pytree structure, not only on its flat size.

    Example::

        sampler = Barker(logdensity_fn, 0.5).bind(position)
        x0 = sampler.ravel(position)
        inputs = sampler.noise(jax.random.key(0), 1000)
        x1 = sampler.step(x0, jax.tree.map(lambda a: a[0], inputs))
    """

    def __init__(
        self,
        logdensity_fn: Callable,
        step_size,
        *,
        gate: str = "hard",
        gate_temperature: float = 1.0,
        loc=None,
        scale=None,
    ):
        super().__init__(logdensity_fn, step_size, gate=gate, gate_temperature=gate_temperature, loc=loc, scale=scale)

    def _leaf_sizes(self) -> tuple[int, ...]:
        """Sizes of the leaves BlackJAX's kernel sees.

        The position's, or one flat ``z`` when preconditioned (BlackJAX then runs on the flat transformed state).
        """
        if self.is_preconditioned:
            return (self.layout.size,)
        return tuple(math.prod(s) for s in self.layout.shapes)

    def _leaf_dtypes(self) -> tuple:
        if self.is_preconditioned:
            return (self.layout.dtype,)
        return self.layout.dtypes

    def noise(self, rng_key: Array, num_steps: int) -> BarkerNoise:
        """Draw the chain's noise in BlackJAX's order.

        Per step ``(k_sample, k_acc) = split(split(rng_key, T)[t])``, ``(k_normal, k_coins) = split(k_sample)``,
        ``z = normal(k_normal, (D,))``, one coin key per leaf ``split(k_coins, num_leaves)`` with
        ``uniform(k_leaf, leaf.shape)``, and ``u = uniform(k_acc, ())``.
        """
        num_steps = _noise.check_num_steps(num_steps)
        layout = self.layout
        k_sample, k_acc = _noise.step_keys(rng_key, num_steps)
        pairs = jax.vmap(jax.random.split)(k_sample)
        k_normal, k_coins = pairs[:, 0], pairs[:, 1]
        sizes, dtypes = self._leaf_sizes(), self._leaf_dtypes()

        def coins(key):
            keys = jax.random.split(key, len(sizes))
            draws = [
                jax.random.uniform(k, (n,), d).astype(layout.dtype) for k, n, d in zip(keys, sizes, dtypes, strict=True)
            ]
            return jnp.concatenate(draws) if len(draws) > 1 else draws[0]

        return BarkerNoise(
            normal=_noise.standard_normal(k_normal, layout.size, layout.dtype),
            coin=jax.vmap(coins)(k_coins),
            uniform=_noise.uniform(k_acc, layout.dtype),
        )

    def _leafwise_sum(self, v: Array) -> Array:
        """``sum(jnp.sum(leaf) for leaf in leaves)``, in BlackJAX's order of summation."""
        sizes = self._leaf_sizes()
        if len(sizes) == 1:
            return 0 + jnp.sum(v)
        total, start = jnp.zeros((), v.dtype), 0
        for n in sizes:
            total = total + jnp.sum(v[start : start + n])
            start += n
        return total

    def _transition(self, x: Array, noise_t: BarkerNoise) -> tuple[Array, BarkerInfo]:
        eps = self.step_size
        logdensity, grad = self.value_and_grad(x)
        z = eps * noise_t.normal
        # p_i = exp(-log1p(exp(-g_i z_i))), written as BlackJAX writes it
        p = jnp.exp(-jnp.log1p(jnp.exp(-grad * z)))
        sign = noise_t.coin < p
        proposal = x + jnp.where(sign, z, -z)
        logdensity_prop, grad_prop = self.value_and_grad(proposal)

        y_minus_x = proposal - x
        x_minus_y = -y_minus_x
        n = self.layout.size
        # The identity metric's kinetic-energy terms cancel; BlackJAX keeps them (times n), and so do
        # we, so that the log ratio rounds as BlackJAX's does.
        ke_xy = 0.5 * jnp.dot(x_minus_y, x_minus_y)
        ke_yx = 0.5 * jnp.dot(y_minus_x, y_minus_x)
        sum_yx = self._leafwise_sum(jnp.log1p(jnp.exp(-x_minus_y * grad_prop)))
        sum_xy = self._leafwise_sum(jnp.log1p(jnp.exp(-y_minus_x * grad)))
        ratio_proposal = n * ke_xy - sum_yx - n * ke_yx + sum_xy
        log_ratio = _gate.safe_log_ratio(logdensity_prop - logdensity + ratio_proposal)

        new_x, is_accepted, p_accept = _gate.accept(
            x,
            proposal,
            log_ratio,
            noise_t.uniform,
            gate=self.gate,
            temperature=self.gate_temperature,
        )
        info = BarkerInfo(
            acceptance_rate=p_accept,
            is_accepted=is_accepted,
            logdensity=jnp.where(is_accepted, logdensity_prop, logdensity),
        )
        return new_x, info
