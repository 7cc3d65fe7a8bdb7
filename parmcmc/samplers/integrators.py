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

__all__ = ["IntegratorState", "integrate", "trajectory", "velocity_verlet"]

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


def trajectory(
    value_and_grad: ValueAndGrad,
    velocity: Callable[[Array], Array],
    position: Array,
    momentum: Array,
    step_size,
    num_steps,
) -> tuple[Array, IntegratorState]:
    """``num_steps`` velocity Verlet steps from ``(position, momentum)``, with the gradient at the start.

    Returns the log density at the start and the end state: what ``value_and_grad`` at the start followed by
    ``integrate`` of ``velocity_verlet`` gives, with the same arithmetic. The L + 1
    gradient evaluations are the L + 1 iterations of one loop (iteration i evaluates at the i-th position, closes
    step i's momentum update and opens step i + 1's), so a program holds one compiled copy of the log density and
    its gradient per trajectory, not two. A Python int ``num_steps`` runs a ``fori_loop`` with static bounds
    (reverse-differentiable); a traced one a ``while_loop`` (forward mode only; under ``vmap`` the loop runs until
    the longest lane is done, each lane keeping its state once its own count is reached).
    """
    half = step_size * 0.5

    def body(i, carry):
        x, p, logdensity_start, _, _ = carry
        logdensity, grad = value_and_grad(x)
        p = jnp.where(i > 0, p + half * grad, p)  # closes step i (none before the first)
        opened = p + half * grad  # opens step i + 1: unless it is the last position
        last = i >= num_steps
        x = jnp.where(last, x, x + step_size * velocity(opened))
        p = jnp.where(last, p, opened)
        logdensity_start = jnp.where(i == 0, logdensity, logdensity_start)
        return x, p, logdensity_start, logdensity, grad

    zero = jnp.zeros((), position.dtype)
    init = (position, momentum, zero, zero, jnp.zeros_like(position))
    if isinstance(num_steps, int):
        out = jax.lax.fori_loop(0, num_steps + 1, body, init)
    else:
        start = jnp.zeros_like(num_steps)
        out = jax.lax.while_loop(lambda c: c[0] <= num_steps, lambda c: (c[0] + 1, body(c[0], c[1])), (start, init))[1]
    x, p, logdensity_start, logdensity, grad = out
    return logdensity_start, IntegratorState(x, p, logdensity, grad)
