"""Metropolis-adjusted microcanonical HMC (adjusted MCLMC) as a step map.

Each draw starts from a fresh momentum drawn uniformly on the unit sphere, integrates L steps of the
isokinetic (ESH) dynamics with McLachlan's two-stage integrator, and accepts the end point with
probability ``min(1, exp(log p(x_L) - log p(x_0) - Delta K))``, ``Delta K`` the kinetic-energy
change the ESH momentum updates accumulate. The momentum is refreshed fully at every draw, so the
chain's state is the position alone, as for HMC. Noise, arithmetic and accept test follow BlackJAX
1.7's ``blackjax.adjusted_mclmc`` (the static kernel, ``L_proposal_factor = inf``: no partial
refresh inside the trajectory, the default), so the same ``rng_key`` gives the same chain.

``inverse_mass_matrix`` is BlackJAX's diagonal preconditioner of the isokinetic integrator (the
gradient and the velocity are scaled by its square root).
"""

import operator
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from parmcmc.samplers import gate as _gate
from parmcmc.samplers import noise as _noise
from parmcmc.samplers.base import AbstractSampler, _as_float_array, _is_traced

__all__ = ["AdjustedMCLMC", "AdjustedMCLMCInfo", "AdjustedMCLMCNoise"]

# McLachlan's minimal-norm two-stage integrator, as BlackJAX's ``isokinetic_mclachlan``:
# momentum b1, position a1, momentum b2, position a1, momentum b1.
_B1 = 0.1931833275037836
_A1 = 0.5
_B2 = 1 - 2 * _B1
_COEFFICIENTS = (_B1, _A1, _B2, _A1, _B1)


class AdjustedMCLMCNoise(NamedTuple):
    """Pre-drawn noise of an adjusted MCLMC chain (or of one step, without the T axis).

    momentum
        ``(T, D)`` initial momenta, unit vectors (a standard normal draw over its norm).
    uniform
        ``(T,)`` uniforms on [0, 1) for the accept test ``u < acceptance_rate``; BlackJAX draws it
        from the integrator's key after L splits.
    """

    momentum: Array
    uniform: Array


class AdjustedMCLMCInfo(NamedTuple):
    """Statistics of one transition (leading axis T for a chain).

    acceptance_rate, is_accepted, is_divergent
        As BlackJAX's ``HMCInfo`` (divergent: energy error above ``divergence_threshold``).
    proposal_energy
        ``-log p`` at the end of the trajectory (BlackJAX's ``HMCInfo.energy`` for this kernel). Not named
        ``energy``: it is not the Hamiltonian of the draw that ArviZ's ``bfmi`` reads, so sample() leaves
        ``energy`` out of sample_stats for this sampler.
    energy_error
        ``-(log p(x_L) - log p(x_0) - Delta K)``; ``+inf`` when it is NaN.
    logdensity
        Log density at the position the step returns.
    num_integration_steps
        Integrator steps of the transition.
    """

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array
    proposal_energy: Array
    energy_error: Array
    logdensity: Array
    num_integration_steps: Array


class AdjustedMCLMC(AbstractSampler):
    """Metropolis-adjusted MCLMC with a fixed step size and number of steps, as a step map.

    Parameters
    ----------
    logdensity_fn
        Log density of the target on (pytree) positions (flat size D >= 2: the ESH update divides
        by D - 1).
    step_size
        Positive integrator step size.
    num_integration_steps
        Number L >= 1 of integrator steps per draw (each costs two gradient evaluations).
    inverse_mass_matrix
        ``None`` (identity) or a 1-D positive diagonal over the flattened position.
    gate, gate_temperature
        As for :class:`~parmcmc.samplers.mala.MALA`.
    divergence_threshold
        Energy error above which a transition counts as divergent (1000, as BlackJAX).
    loc, scale
        An optional linear preconditioner, as for :class:`~parmcmc.samplers.mala.MALA`.
    """

    _leaves = (*AbstractSampler._leaves, "inverse_mass_matrix")
    _static = (*AbstractSampler._static, "num_integration_steps", "divergence_threshold")
    inverse_mass_matrix: Array
    num_integration_steps: int
    divergence_threshold: float

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
        loc=None,
        scale=None,
    ):
        super().__init__(logdensity_fn, step_size, gate=gate, gate_temperature=gate_temperature, loc=loc, scale=scale)
        self._set(
            num_integration_steps=_check_steps(num_integration_steps),
            inverse_mass_matrix=_check_diagonal(inverse_mass_matrix),
            divergence_threshold=float(divergence_threshold),
        )

    def _check_changes(self, changes: dict) -> dict:
        if "num_integration_steps" in changes:
            changes["num_integration_steps"] = _check_steps(changes["num_integration_steps"])
        if "inverse_mass_matrix" in changes:
            changes["inverse_mass_matrix"] = _check_diagonal(changes["inverse_mass_matrix"], self._layout)
        if "divergence_threshold" in changes:
            changes["divergence_threshold"] = float(changes["divergence_threshold"])
        return changes

    def _on_bind(self):
        bound = super()._on_bind()
        size = bound.layout.size
        if size < 2:
            raise ValueError("AdjustedMCLMC needs a position of flat size >= 2 (the ESH update divides by D - 1).")
        imm = bound.inverse_mass_matrix
        if imm is None:
            imm = jnp.ones((size,), bound.layout.dtype)
        else:
            _check_diagonal(imm, bound.layout)
        return bound._evolve(inverse_mass_matrix=imm)

    def noise(self, rng_key: Array, num_steps: int) -> AdjustedMCLMCNoise:
        """Draw the chain's noise in BlackJAX's order.

        Per step ``(k_mom, k_int) = split(split(rng_key, T)[t])``, ``p = z / |z|`` with ``z = normal(k_mom, (D,))``,
        and the accept uniform from ``k_int`` split L times (``k <- split(k)[1]``), as the kernel's trajectory loop
        leaves it.
        """
        num_steps = _noise.check_num_steps(num_steps)
        layout = self.layout
        k_mom, k_int = _noise.step_keys(rng_key, num_steps)
        z = _noise.standard_normal(k_mom, layout.size, layout.dtype)

        def accept_key(key):
            for _ in range(self.num_integration_steps):
                key = jax.random.split(key)[1]
            return key

        return AdjustedMCLMCNoise(
            momentum=z / jnp.linalg.norm(z, axis=-1, keepdims=True),
            uniform=_noise.uniform(jax.vmap(accept_key)(k_int), layout.dtype),
        )

    def _esh_update(self, momentum, grad, coef, previous):
        """BlackJAX's ESH momentum update: (new momentum, velocity, accumulated kinetic energy change)."""
        sqrt_imm = jnp.sqrt(self.inverse_mass_matrix)
        eps = self.step_size
        g = grad * sqrt_imm
        norm = jnp.linalg.norm(g)
        unit_g = jnp.where(norm > 1e-13, g / norm, g)
        dims = momentum.shape[0]
        proj = jnp.dot(momentum, unit_g)
        delta = eps * coef * norm / (dims - 1)
        zeta = jnp.exp(-delta)
        raw = unit_g * (1 - zeta) * (1 + zeta + proj * (1 - zeta)) + 2 * zeta * momentum
        raw_norm = jnp.linalg.norm(raw)
        new_momentum = jnp.where(raw_norm > 1e-13, raw / raw_norm, raw)
        s_plus = 0.5 * jnp.square(momentum + unit_g).sum()
        s_minus = 0.5 * jnp.square(momentum - unit_g).sum()
        log_a = jnp.log(jnp.where(zeta**2 <= 1, s_plus * (1 - zeta**2) + 2 * zeta**2, s_minus * (zeta**2 - 1) + 2))
        change = (delta - jnp.log(2) + log_a) * (dims - 1)
        if previous is not None:
            change = change + previous
        return new_momentum, new_momentum * sqrt_imm, change

    def _transition(self, x: Array, noise_t: AdjustedMCLMCNoise) -> tuple[Array, AdjustedMCLMCInfo]:
        eps = self.step_size
        logdensity0, grad0 = self.value_and_grad(x)

        def one_step(carry, _):
            position, momentum, logdensity, grad, kinetic = carry
            change = None
            velocity = momentum
            for i, coef in enumerate(_COEFFICIENTS):
                if i % 2 == 0:
                    momentum, velocity, change = self._esh_update(momentum, grad, coef, change)
                else:
                    position = position + eps * coef * velocity
                    logdensity, grad = self.value_and_grad(position)
            return (position, momentum, logdensity, grad, kinetic + change), None

        start = (x, noise_t.momentum, logdensity0, grad0, logdensity0 * 0.0)
        (end_x, _, end_logdensity, _, kinetic), _ = jax.lax.scan(
            one_step, start, None, length=self.num_integration_steps
        )
        log_ratio = _gate.safe_log_ratio(-logdensity0 + end_logdensity - kinetic)
        new_x, is_accepted, p_accept = _gate.accept(
            x, end_x, log_ratio, noise_t.uniform, gate=self.gate, temperature=self.gate_temperature
        )
        info = AdjustedMCLMCInfo(
            acceptance_rate=p_accept,
            is_accepted=is_accepted,
            is_divergent=-log_ratio > self.divergence_threshold,
            proposal_energy=-end_logdensity,
            energy_error=-log_ratio,
            logdensity=jnp.where(is_accepted, end_logdensity, logdensity0),
            num_integration_steps=jnp.asarray(self.num_integration_steps, jnp.int32),
        )
        return new_x, info


def _check_steps(num_integration_steps) -> int:
    if isinstance(num_integration_steps, bool):
        raise TypeError("num_integration_steps must be an int >= 1, got a bool.")
    try:
        value = operator.index(num_integration_steps)
    except TypeError:
        raise TypeError(f"num_integration_steps must be an int >= 1, got {num_integration_steps!r}.") from None
    if value < 1:
        raise ValueError(f"num_integration_steps must be >= 1, got {value}.")
    return value


def _check_diagonal(inverse_mass_matrix, layout=None):
    if inverse_mass_matrix is None or _is_traced(inverse_mass_matrix):
        return inverse_mass_matrix
    arr = jnp.asarray(inverse_mass_matrix)
    if arr.ndim != 1 or not bool(jnp.all(jnp.isfinite(arr))) or bool(jnp.any(arr <= 0)):
        raise ValueError(
            f"AdjustedMCLMC: inverse_mass_matrix must be a 1-D positive finite diagonal; got shape {arr.shape}."
        )
    if layout is not None and arr.shape[0] != layout.size:
        raise ValueError(
            f"inverse_mass_matrix has size {arr.shape[0]} but the flattened position has size {layout.size}."
        )
    return _as_float_array(arr)
