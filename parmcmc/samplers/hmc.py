"""Hamiltonian Monte Carlo (static trajectory length) as a step map.

Assembled from the pieces, as BlackJAX assembles its HMC kernel: a Euclidean
metric (:mod:`~parmcmc.samplers.metrics`) gives the momentum and kinetic
energy, velocity Verlet (:mod:`~parmcmc.samplers.integrators`) integrates
``num_integration_steps`` steps, the end momentum is flipped, and the gate
(:mod:`~parmcmc.samplers.gate`) accepts with probability
``min(1, exp(H_start - H_end))``. Noise, arithmetic and accept test follow
BlackJAX 1.7's ``blackjax.hmc``, so the same ``rng_key`` gives the same chain.
"""

import numbers
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from parmcmc.arguments import check_int
from parmcmc.samplers import gate as _gate
from parmcmc.samplers import integrators, metrics
from parmcmc.samplers import noise as _noise
from parmcmc.samplers.base import AbstractSampler, _as_float_array, _is_traced

__all__ = ["HMC", "HMCInfo", "HMCNoise", "jittered_integration_steps"]


class HMCNoise(NamedTuple):
    """Pre-drawn noise of an HMC chain (or of one step, without the T axis).

    momentum
        ``(T, D)`` initial momenta, already scaled by ``M^{1/2}`` as BlackJAX's
        metric scales them.
    uniform
        ``(T,)`` uniforms on [0, 1) for the accept test ``u < acceptance_rate``.
    step_scale
        ``(T,)`` factor of each draw's step size, ``1 + jitter (2 v - 1)`` with ``v`` uniform on
        [0, 1) from a key stream of its own (``fold_in(rng_key, JITTER_STREAM)``), so BlackJAX's
        keys and draws are untouched; ``None`` without jitter.
    num_steps
        ``(T,)`` int32 leapfrog steps of each draw with ``integration_steps_jitter``
        (:func:`jittered_integration_steps` of a uniform from the stream
        ``fold_in(rng_key, TRAJECTORY_STREAM)``); ``None`` for a fixed number.
    """

    momentum: Array
    uniform: Array
    step_scale: Array | None = None
    num_steps: Array | None = None


class HMCInfo(NamedTuple):
    """Statistics of one HMC transition (leading axis T for a chain).

    acceptance_rate
        ``min(1, exp(H_start - H_end))`` (BlackJAX's field).
    is_accepted
        Whether the trajectory's end point was accepted (BlackJAX's field).
    is_divergent
        ``energy_error > divergence_threshold`` (BlackJAX's field; NumPyro's HMC counts divergences
        the same way, a NaN energy error counting as +inf).
    energy
        The Hamiltonian ``-log p + K`` *of the draw*: at the trajectory's end if it was accepted, at
        its start (the fresh momentum) if not. This is Stan's and NumPyro's ``energy``, the quantity
        ArviZ's ``bfmi`` and ``plot_energy`` expect; it is finite wherever the chain is.
    proposal_energy
        ``-log p + K`` at the end of the trajectory, accepted or not: BlackJAX's ``HMCInfo.energy``
        (NaN or infinite where the trajectory diverged).
    energy_error
        ``H_end - H_start``; ``+inf`` when it is NaN.
    logdensity
        Log density at the position the step returns.
    num_integration_steps
        Leapfrog steps of the transition (ArviZ's ``n_steps``).
    step_size
        The step size the transition used (the jittered one with ``step_size_jitter``).
    """

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array
    energy: Array
    proposal_energy: Array
    energy_error: Array
    logdensity: Array
    num_integration_steps: Array
    step_size: Array


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
    step_size_jitter
        ``None`` (a fixed step size) or a fraction j in [0, 1): draw t uses the step size
        ``step_size * (1 + j (2 v_t - 1))``, v_t uniform from the chain's pre-drawn noise (Stan's
        ``stepsize_jitter``). Jittering the trajectory length this way makes the step map contract
        on average and mixes directions a fixed trajectory would rotate by about pi
        (docs/samplers.md). The chain equals BlackJAX's ``hmc`` kernel called step by step with the
        same keys and these per-draw step sizes.
    integration_steps_jitter
        ``None`` (every draw takes ``num_integration_steps`` leapfrog steps) or a fraction a in (0, 1]:
        draw t takes ``L_t = ceil((1 - a + a v_t) L)`` steps, L = ``num_integration_steps`` (the
        maximum), v_t uniform from a key stream of its own (:func:`jittered_integration_steps`);
        a = 1 draws L_t uniformly from 1..L, as ``blackjax.chees_adaptation``'s kernel does. The
        chain equals ``blackjax.dynamic_hmc`` with that ``integration_steps_fn`` (a ``while_loop``
        runs the L_t steps: a single chain pays its own L_t, a batch the largest of its L_t).
    trajectory_length
        ``None`` or a positive integration time T (a leaf: one value per chain): with
        ``integration_steps_jitter``, the jitter's maximum is ``L = ceil(T / step_size)`` clipped to
        1..``num_integration_steps`` (then a cap), so T keeps its meaning whatever the adapted step
        size. The window warmup's ``adaptation="window_trajectory"`` sets it per chain from the chain's
        own warmup draws (docs/samplers.md).
    loc, scale
        An optional linear preconditioner, as for :class:`~parmcmc.samplers.mala.MALA`.

    Notes
    -----
    Each step costs L + 1 gradient evaluations: one at the start (BlackJAX
    carries it in its state) and one per leapfrog step.
    """

    _leaves = (
        *AbstractSampler._leaves,
        "inverse_mass_matrix",
        "step_size_jitter",
        "integration_steps_jitter",
        "trajectory_length",
    )
    _static = (*AbstractSampler._static, "num_integration_steps", "divergence_threshold")
    inverse_mass_matrix: Array  # None only before bind(), which fills in the identity
    step_size_jitter: Array | None
    integration_steps_jitter: Array | None
    trajectory_length: Array | None
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
        step_size_jitter=None,
        loc=None,
        scale=None,
        integration_steps_jitter=None,
        trajectory_length=None,
    ):
        super().__init__(logdensity_fn, step_size, gate=gate, gate_temperature=gate_temperature, loc=loc, scale=scale)
        self._set(
            num_integration_steps=_check_num_integration_steps(num_integration_steps),
            inverse_mass_matrix=_check_imm(inverse_mass_matrix),
            divergence_threshold=_check_divergence_threshold(divergence_threshold),
            step_size_jitter=_check_jitter(step_size_jitter),
            integration_steps_jitter=_check_steps_jitter(integration_steps_jitter),
            trajectory_length=_check_trajectory_length(trajectory_length),
        )
        if self.trajectory_length is not None and self.integration_steps_jitter is None:
            raise ValueError(
                "HMC: trajectory_length= sets the maximum of a jittered number of leapfrog steps; give "
                "integration_steps_jitter= too (1.0: uniform on 1..ceil(T / step_size))."
            )

    def _check_changes(self, changes: dict) -> dict:
        if "num_integration_steps" in changes:
            changes["num_integration_steps"] = _check_num_integration_steps(changes["num_integration_steps"])
        if "inverse_mass_matrix" in changes:
            imm = _check_imm(changes["inverse_mass_matrix"])
            if imm is not None and self.is_bound and not _is_traced(imm):
                metrics.check_inverse_mass_matrix(imm, size=self.dim)
            changes["inverse_mass_matrix"] = imm
        if "step_size_jitter" in changes:
            changes["step_size_jitter"] = _check_jitter(changes["step_size_jitter"])
        if "integration_steps_jitter" in changes:
            changes["integration_steps_jitter"] = _check_steps_jitter(changes["integration_steps_jitter"])
        if "trajectory_length" in changes:
            changes["trajectory_length"] = _check_trajectory_length(changes["trajectory_length"])
        if "divergence_threshold" in changes:
            changes["divergence_threshold"] = _check_divergence_threshold(changes["divergence_threshold"])
        return changes

    def _on_bind(self):
        bound = super()._on_bind()
        layout = bound.layout
        imm = bound.inverse_mass_matrix
        if imm is None:
            imm = jnp.ones((layout.size,), layout.dtype)
        elif not _is_traced(imm):
            metrics.check_inverse_mass_matrix(imm, size=layout.size)
        return bound._evolve(inverse_mass_matrix=imm)

    @property
    def metric(self) -> metrics.EuclideanMetric:
        """The Euclidean metric (with ``M^{1/2}``, a Cholesky factorisation for a dense matrix)."""
        self.layout  # noqa: B018 (the property raises the "bind first" error if unbound)
        return metrics.euclidean_metric(self.inverse_mass_matrix)

    def noise(self, rng_key: Array, num_steps: int) -> HMCNoise:
        """Draw the chain's noise in BlackJAX's order.

        Per step ``(k_mom, k_acc) = split(split(rng_key, T)[t])``, ``p = M^{1/2} normal(k_mom, (D,))``, ``u =
        uniform(k_acc, ())``, in the position's dtype; with a jitter, the step-size factors from the separate
        stream ``fold_in(rng_key, JITTER_STREAM)``.
        """
        num_steps = _noise.check_num_steps(num_steps)
        layout = self.layout
        k_mom, k_acc = _noise.step_keys(rng_key, num_steps)
        z = _noise.standard_normal(k_mom, layout.size, layout.dtype)
        scale = None
        if self.step_size_jitter is not None:
            v = _noise.uniform(_noise.side_keys(rng_key, num_steps, _noise.JITTER_STREAM), layout.dtype)
            scale = 1.0 + self.step_size_jitter * (2.0 * v - 1.0)
        num = None
        if self.integration_steps_jitter is not None:
            v = _noise.uniform(_noise.side_keys(rng_key, num_steps, _noise.TRAJECTORY_STREAM), layout.dtype)
            num = jittered_integration_steps(v, self.integration_steps_jitter, self.max_integration_steps)
        return HMCNoise(
            momentum=metrics.momentum_from_normal(self.metric, z),
            uniform=_noise.uniform(k_acc, layout.dtype),
            step_scale=scale,
            num_steps=num,
        )

    @property
    def max_integration_steps(self):
        """The jitter's maximum L: ``ceil(trajectory_length / step_size)`` clipped to 1..num_integration_steps."""
        if self.trajectory_length is None:
            return self.num_integration_steps
        steps = jnp.ceil(self.trajectory_length / self.step_size)
        return jnp.clip(steps, 1, self.num_integration_steps).astype(jnp.int32)

    def step_sizes(self, noise) -> Array:
        """The step size of each draw of ``noise`` (what BlackJAX's kernel is called with)."""
        if noise.step_scale is None:
            return jnp.broadcast_to(self.step_size, jnp.shape(noise.uniform))
        return self.step_size * noise.step_scale

    def _transition(self, x: Array, noise_t: HMCNoise) -> tuple[Array, HMCInfo]:
        # M^{1/2} is only needed for the noise; the step needs M^{-1} alone (no factorisation per step).
        metric = metrics.EuclideanMetric(self.inverse_mass_matrix, None)
        step_size = self.step_sizes(noise_t)
        velocity = lambda p: metrics.velocity(metric, p)
        if noise_t.num_steps is None:
            num_steps = jnp.asarray(self.num_integration_steps, jnp.int32)
            steps = self.num_integration_steps
        else:
            num_steps = steps = noise_t.num_steps
        # The gradient at the start is the trajectory loop's first evaluation: one compiled copy of the density.
        logdensity, end = integrators.trajectory(self.value_and_grad, velocity, x, noise_t.momentum, step_size, steps)
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
            energy=jnp.where(is_accepted, energy_end, energy_start),
            proposal_energy=energy_end,
            energy_error=energy_error,
            logdensity=jnp.where(is_accepted, end.logdensity, logdensity),
            num_integration_steps=num_steps,
            step_size=step_size,
        )
        return new_x, info


def _check_num_integration_steps(num_integration_steps) -> int:
    return check_int("num_integration_steps", num_integration_steps)


def _check_divergence_threshold(threshold) -> float:
    """A positive real (inf: nothing counts as divergent); a negative one used to mark every draw divergent."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not float(threshold) > 0:
        raise ValueError(
            f"divergence_threshold must be a positive number (an energy error; 1000 by default, as Stan, NumPyro "
            f"and BlackJAX), got {threshold!r}."
        )
    return float(threshold)


def _check_imm(inverse_mass_matrix):
    if inverse_mass_matrix is not None and not _is_traced(inverse_mass_matrix):
        inverse_mass_matrix = metrics.check_inverse_mass_matrix(inverse_mass_matrix)
    return _as_float_array(inverse_mass_matrix)


def _check_jitter(jitter):
    if jitter is None or _is_traced(jitter):
        return jitter
    if isinstance(jitter, bool) or not (isinstance(jitter, (int, float)) or jnp.ndim(jitter) == 0):
        raise TypeError(f"step_size_jitter must be None or a float in [0, 1), got {jitter!r}.")
    if not 0.0 <= float(jitter) < 1.0:
        raise ValueError(f"step_size_jitter must lie in [0, 1) (a fraction of the step size), got {jitter!r}.")
    return _as_float_array(jitter)


def jittered_integration_steps(v, jitter, num_integration_steps) -> Array:
    """Leapfrog steps of a draw with uniform ``v``: ``ceil((1 - jitter + jitter v) L)`` clipped to 1..L.

    int32; ``blackjax.chees_adaptation``'s ``integration_steps_fn`` with ``jitter_amount=jitter``. L may be
    an array (a chain's adapted maximum).
    """
    steps = jnp.ceil((1.0 - jitter + jitter * v) * num_integration_steps)
    return jnp.clip(steps, 1, num_integration_steps).astype(jnp.int32)


def _check_trajectory_length(length):
    if length is None or _is_traced(length):
        return length
    if isinstance(length, bool) or not (isinstance(length, (int, float)) or jnp.ndim(length) == 0):
        raise TypeError(f"trajectory_length must be None or a positive float, got {length!r}.")
    if not 0.0 < float(length) < float("inf"):  # inf: an unbounded number of leapfrog steps per draw
        raise ValueError(f"trajectory_length must be positive and finite (an integration time), got {length!r}.")
    return _as_float_array(length)


def _check_steps_jitter(jitter):
    if jitter is None or _is_traced(jitter):
        return jitter
    if isinstance(jitter, bool) or not (isinstance(jitter, (int, float)) or jnp.ndim(jitter) == 0):
        raise TypeError(f"integration_steps_jitter must be None or a float in (0, 1], got {jitter!r}.")
    if not 0.0 < float(jitter) <= 1.0:
        raise ValueError(
            "integration_steps_jitter must lie in (0, 1] (the fraction of num_integration_steps drawn at "
            f"random; None for a fixed number of steps), got {jitter!r}."
        )
    return _as_float_array(jitter)
