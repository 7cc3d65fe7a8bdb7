"""Hamiltonian Monte Carlo (static trajectory length) as a step map.

Assembled from the pieces, as BlackJAX assembles its HMC kernel: a Euclidean
metric (:mod:`~parmcmc.samplers.metrics`) gives the momentum and kinetic
energy, velocity Verlet (:mod:`~parmcmc.samplers.integrators`) integrates
``num_integration_steps`` steps, the end momentum is flipped, and the gate
(:mod:`~parmcmc.samplers.gate`) accepts with probability
``min(1, exp(H_start - H_end))``. Noise, arithmetic and accept test follow
BlackJAX 1.7's ``blackjax.hmc``, so the same ``rng_key`` gives the same chain.
"""
import operator
from typing import Callable, NamedTuple

import jax.numpy as jnp
from jax import Array

from parmcmc.samplers import gate as _gate
from parmcmc.samplers import integrators, metrics
from parmcmc.samplers import noise as _noise
from parmcmc.samplers.base import AbstractSampler, _is_traced

__all__ = ["HMC", "HMCNoise", "HMCInfo"]


class HMCNoise(NamedTuple):
    """Pre-drawn noise of an HMC chain (or of one step, without the T axis).

    momentum
        ``(T, D)`` initial momenta, already scaled by ``M^{1/2}`` as BlackJAX's
        metric scales them.
    uniform
        ``(T,)`` uniforms on [0, 1) for the accept test ``u < acceptance_rate``.
    """

    momentum: Array
    uniform: Array


class HMCInfo(NamedTuple):
    """Statistics of one HMC transition (leading axis T for a chain).

    acceptance_rate
        ``min(1, exp(H_start - H_end))`` (BlackJAX's field).
    is_accepted
        Whether the trajectory's end point was accepted (BlackJAX's field).
    is_divergent
        ``energy_error > divergence_threshold`` (BlackJAX's field).
    energy
        Total energy ``-log p + K`` at the *end of the trajectory*, whether or
        not it was accepted: BlackJAX's ``HMCInfo.energy``.
    energy_error
        ``H_end - H_start``; ``+inf`` when it is NaN.
    logdensity
        Log density at the position the step returns.
    """

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array
    energy: Array
    energy_error: Array
    logdensity: Array


class HMC(AbstractSampler):
    """HMC with fixed step size and number of leapfrog steps, as a step map.

    Parameters
    ----------
    logdensity_fn
        Log density of the target on (pytree) positions.
    step_size
        Positive leapfrog step size.
    num_integration_steps
        Number L >= 1 of leapfrog steps per transition.
    inverse_mass_matrix
        ``None`` (identity), a 1-D diagonal or a 2-D dense symmetric positive
        definite ``M^{-1}`` over the flattened position. Its size is checked
        when the sampler is bound to a position.
    gate, gate_temperature
        As for :class:`~parmcmc.samplers.mala.MALA`: ``"hard"`` by default,
        because it needs fewer solver iterations (docs/sampler_iterations.md).
    divergence_threshold
        Energy error above which a transition counts as divergent (1000, as
        BlackJAX, Stan and NumPyro).

    Notes
    -----
    Each step costs L + 1 gradient evaluations: one at the start (BlackJAX
    carries it in its state) and one per leapfrog step.
    """

    def __init__(
        self,
        logdensity_fn: Callable,
        step_size,
        num_integration_steps: int,
        inverse_mass_matrix=None,
        *,
        gate: str = "hard",
        gate_temperature: float = 1.0,
        divergence_threshold: float = 1000.0,
    ):
        super().__init__(
            logdensity_fn, step_size, gate=gate, gate_temperature=gate_temperature
        )
        if isinstance(num_integration_steps, bool):
            raise TypeError("num_integration_steps must be an int >= 1, got a bool.")
        try:
            num_integration_steps = operator.index(num_integration_steps)
        except TypeError:
            raise TypeError(
                "num_integration_steps must be an int >= 1, got "
                f"{num_integration_steps!r} of type "
                f"{type(num_integration_steps).__name__}."
            ) from None
        if num_integration_steps < 1:
            raise ValueError(
                f"num_integration_steps must be >= 1, got {num_integration_steps}."
            )
        self.num_integration_steps = num_integration_steps
        if inverse_mass_matrix is not None and not _is_traced(inverse_mass_matrix):
            inverse_mass_matrix = metrics.check_inverse_mass_matrix(inverse_mass_matrix)
        self.inverse_mass_matrix = inverse_mass_matrix
        self.divergence_threshold = float(divergence_threshold)

    def _check_settings(self) -> None:
        imm = self.inverse_mass_matrix
        if imm is not None and not _is_traced(imm):
            self.inverse_mass_matrix = metrics.check_inverse_mass_matrix(imm)

    def _on_bind(self) -> None:
        layout = self.layout
        imm = self.inverse_mass_matrix
        if imm is None:
            imm = jnp.ones((layout.size,), layout.dtype)
        elif not _is_traced(imm):
            metrics.check_inverse_mass_matrix(imm, size=layout.size)
        # In the position's dtype, so the step map keeps the chain's dtype.
        self._metric = metrics.euclidean_metric(jnp.asarray(imm, layout.dtype))

    @property
    def metric(self) -> metrics.EuclideanMetric:
        """The Euclidean metric (with ``M^{1/2}``), set when the sampler is bound."""
        self.layout  # raises the "bind first" error if unbound
        return self._metric

    def noise(self, rng_key: Array, num_steps: int) -> HMCNoise:
        """Draw the chain's noise in BlackJAX's order: per step ``(k_mom, k_acc)
        = split(split(rng_key, T)[t])``, ``p = M^{1/2} normal(k_mom, (D,))``,
        ``u = uniform(k_acc, ())``, in the position's dtype."""
        num_steps = _noise.check_num_steps(num_steps)
        layout = self.layout
        k_mom, k_acc = _noise.step_keys(rng_key, num_steps)
        z = _noise.standard_normal(k_mom, layout.size, layout.dtype)
        return HMCNoise(
            momentum=metrics.momentum_from_normal(self.metric, z),
            uniform=_noise.uniform(k_acc, layout.dtype),
        )

    def _transition(self, x: Array, noise_t: HMCNoise) -> tuple[Array, HMCInfo]:
        metric = self.metric
        logdensity, grad = self.value_and_grad(x)
        start = integrators.IntegratorState(x, noise_t.momentum, logdensity, grad)
        one_step = integrators.velocity_verlet(
            self.value_and_grad, lambda p: metrics.velocity(metric, p)
        )
        end = integrators.integrate(
            one_step, start, self.step_size, self.num_integration_steps
        )
        end_momentum = -1.0 * end.momentum  # flipped: makes the proposal reversible
        energy_start = -logdensity + metrics.kinetic_energy(metric, noise_t.momentum)
        energy_end = -end.logdensity + metrics.kinetic_energy(metric, end_momentum)
        log_ratio = _gate.safe_log_ratio(energy_start - energy_end)

        new_x, is_accepted, p_accept = _gate.accept(
            x,
            end.position,
            log_ratio,
            noise_t.uniform,
            gate=self.gate,
            temperature=self.gate_temperature,
        )
        energy_error = -log_ratio
        info = HMCInfo(
            acceptance_rate=p_accept,
            is_accepted=is_accepted,
            is_divergent=energy_error > self.divergence_threshold,
            energy=energy_end,
            energy_error=energy_error,
            logdensity=jnp.where(is_accepted, end.logdensity, logdensity),
        )
        return new_x, info
