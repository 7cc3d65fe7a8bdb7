"""The Metropolis accept/reject gate, written as a differentiable map.

The accept step of a Metropolis-Hastings kernel is

    x_t = g * x_proposed + (1 - g) * x_{t-1},   g = 1[u < min(1, exp(log_ratio))]

with ``u`` the pre-drawn uniform of step t. The indicator ``g`` is piecewise
constant, so its derivative is zero almost everywhere and the Jacobian of the
step is ``g * d x_proposed / d x + (1 - g) * I`` (the *hard* gate).

The *smooth* gate keeps the forward value exactly (the same chain) but lets
forward-mode autodiff see the derivative of a sigmoid surrogate of ``g``::

    s = sigmoid((log_ratio - log u) / temperature)

so the Jacobian gains the term ``ds/dx * (x_proposed - x_{t-1})``. It is a
straight-through estimator: value ``g``, derivative ``ds``. The default
temperature 1 puts the sigmoid's unit slope on the natural scale of the log
ratio; large temperatures tend to the hard gate.

The samplers default to the hard gate because it needs fewer Newton
iterations on almost every target measured (docs/sampler_iterations.md has
the comparison, with its date and sizes).
"""

import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array, lax

__all__ = [
    "GATES",
    "accept",
    "acceptance_probability",
    "check_gate",
    "safe_log_ratio",
]

GATES = ("hard", "smooth")
Gate = Literal["hard", "smooth"]


def check_gate(gate, temperature) -> tuple[Gate, float]:
    """Validate the ``gate`` and ``gate_temperature`` arguments of a sampler."""
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}, got {gate!r}.")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"gate_temperature must be a positive float, got {temperature!r}.")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"gate_temperature must be positive and finite, got {temperature!r}.")
    return gate, float(temperature)


def safe_log_ratio(log_ratio: Array) -> Array:
    """A NaN log acceptance ratio counts as -inf: the proposal is rejected."""
    return jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)


def acceptance_probability(log_ratio: Array) -> Array:
    """``min(1, exp(log_ratio))``, computed as BlackJAX computes it."""
    return jnp.clip(jnp.exp(log_ratio), max=1)


def accept(
    previous: Array,
    proposal: Array,
    log_ratio: Array,
    uniform: Array,
    *,
    gate: Gate = "hard",
    temperature: float = 1.0,
) -> tuple[Array, Array, Array]:
    """Accept or reject ``proposal`` against ``previous``.

    Parameters
    ----------
    previous, proposal
        Flat positions, shape ``(D,)``.
    log_ratio
        Log Metropolis-Hastings ratio, already passed through
        :func:`safe_log_ratio`.
    uniform
        The step's pre-drawn uniform on [0, 1).
    gate
        ``"hard"`` or ``"smooth"`` (see the module docstring). The forward
        value is the same for both.
    temperature
        Temperature of the smooth gate's sigmoid; ignored by the hard gate.

    Returns
    -------
    (new_position, is_accepted, acceptance_probability)
    """
    p_accept = acceptance_probability(lax.stop_gradient(log_ratio))
    is_accepted = uniform < p_accept
    # `where`, not g*x + (1-g)*y: a rejected non-finite proposal must not
    # leak NaN (0 * inf), and jvp of `where` is exactly g*dx + (1-g)*dy.
    new_position = jnp.where(is_accepted, proposal, previous)
    if gate == "hard":
        return new_position, is_accepted, p_accept

    z = (log_ratio - jnp.log(uniform)) / temperature
    finite = jnp.isfinite(z)
    soft = jnp.where(finite, jax.nn.sigmoid(jnp.where(finite, z, 0.0)), 0.0)
    # Value exactly 0, tangent ds: adds ds * (proposal - previous) to the jvp.
    zero_with_tangent = soft - lax.stop_gradient(soft)
    jump = proposal - previous
    jump = jnp.where(jnp.isfinite(jump), jump, 0.0)
    return new_position + zero_with_tangent * jump, is_accepted, p_accept
