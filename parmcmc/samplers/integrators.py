"""Symplectic integrators for Hamiltonian dynamics on flat positions.

Only velocity Verlet (leapfrog) for now. Each step is written as BlackJAX 1.7
writes it (half momentum step, full position step, half momentum step, the
half steps of consecutive leapfrog steps *not* merged), so that floating-point
results agree with BlackJAX's HMC to rounding.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["IntegratorState", "integrate", "integrate_until", "velocity_verlet"]

ValueAndGrad = Callable[[Array], tuple[Array, Array]]


class IntegratorState(NamedTuple):
    """A point of phase space with its log density.

    position
        Flat position, shape ``(D,)``.
    momentum
        Momentum, shape ``(D,)``.
    logdensity
        Log density at ``position`` (scalar).
    logdensity_grad
        Gradient of the log density at ``position``, shape ``(D,)``.
    """

    position: Array
    momentum: Array
    logdensity: Array
    logdensity_grad: Array


def velocity_verlet(
    value_and_grad: ValueAndGrad, velocity: Callable[[Array], Array]
) -> Callable[[IntegratorState, float], IntegratorState]:
    """One velocity Verlet step: ``p += eps/2 g; x += eps M^{-1} p; p += eps/2 g``.

    Parameters
    ----------
    value_and_grad
        ``x -> (log density, gradient)`` on flat positions.
    velocity
        ``p -> M^{-1} p`` (the gradient of the kinetic energy).

    Returns
    -------
    ``one_step(state, step_size) -> state``; one gradient evaluation per step.
    """

    def one_step(state: IntegratorState, step_size) -> IntegratorState:
        half = step_size * 0.5
        momentum = state.momentum + half * state.logdensity_grad
        position = state.position + step_size * velocity(momentum)
        logdensity, logdensity_grad = value_and_grad(position)
        momentum = momentum + half * logdensity_grad
        return IntegratorState(position, momentum, logdensity, logdensity_grad)

    return one_step


def integrate(
    one_step: Callable[[IntegratorState, float], IntegratorState],
    state: IntegratorState,
    step_size,
    num_steps: int,
) -> IntegratorState:
    """Apply ``one_step`` ``num_steps`` times.

    A ``fori_loop`` with static bounds, so it stays forward- and reverse-differentiable.
    """
    return jax.lax.fori_loop(0, num_steps, lambda _, s: one_step(s, step_size), state)


def integrate_until(
    one_step: Callable[[IntegratorState, float], IntegratorState],
    state: IntegratorState,
    step_size,
    num_steps,
) -> IntegratorState:
    """Apply ``one_step`` a traced number ``num_steps`` of times (a ``while_loop``).

    Forward-differentiable (``jvp``, ``linearize``) but not reverse. Under ``vmap`` the loop runs until
    the longest lane is done, each lane keeping its state once its own count is reached: a batch pays
    the maximum of its counts, a single chain only its own.
    """

    def body(carry):
        i, s = carry
        return i + 1, one_step(s, step_size)

    zero = jnp.zeros_like(num_steps)
    return jax.lax.while_loop(lambda carry: carry[0] < num_steps, body, (zero, state))[1]
