"""What every sampler shares: binding to a position layout, flat log density,
input checks and the vmapped statistics pass.

A sampler is a description (log density, step size, gate) until it is
*bound* to an initial position with :meth:`AbstractSampler.bind`. Binding
records the pytree layout of the position (so the step map can work on the
flat vector ``x`` of shape ``(D,)`` and call the user's log density on the
pytree), checks the initial position and returns a bound copy. The bound
sampler offers

- ``ravel(position) -> x`` and ``unravel(x) -> position`` (and
  ``unravel_chain`` for a whole chain),
- ``noise(rng_key, num_steps) -> inputs``: every random number of the chain,
  leaves with leading axis T, in BlackJAX's key order,
- ``step(x_prev, inputs_t) -> x_t``: the pure step map,
- ``stats(x_prev, inputs_t) -> Info`` and ``chain_stats(x0, states, inputs)``.
"""
import abc
import copy
import math
import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree

from parmcmc.jitcache import program_jit
from parmcmc.samplers import gate as _gate

__all__ = ["AbstractSampler", "check_step_size"]


def _is_traced(value) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def check_step_size(step_size, name: str = "step_size"):
    """A positive finite real scalar (checks are skipped for traced values)."""
    if _is_traced(step_size):
        return step_size
    is_real_array = (
        hasattr(step_size, "dtype")
        and jnp.ndim(step_size) == 0
        and (
            jnp.issubdtype(step_size.dtype, jnp.floating)
            or jnp.issubdtype(step_size.dtype, jnp.integer)
        )
    )
    if isinstance(step_size, bool) or not (isinstance(step_size, numbers.Real) or is_real_array):
        raise TypeError(
            f"{name} must be a positive real scalar, got {step_size!r} "
            f"of type {type(step_size).__name__}."
        )
    value = float(step_size)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}.")
    return step_size


class _Layout(NamedTuple):
    unravel: Callable[[Array], Any]
    size: int
    dtype: Any


class AbstractSampler(abc.ABC):
    """Base class of the step-map samplers. Subclasses define ``noise`` and
    ``_transition``; everything else is shared.

    Instances are compared and hashed by identity, so bound methods such as
    ``sampler.step`` can be passed to ``jax.jit``.
    """

    def __init__(self, logdensity_fn: Callable, step_size, *, gate, gate_temperature):
        if not callable(logdensity_fn):
            raise TypeError(
                f"logdensity_fn must be callable, got {type(logdensity_fn).__name__}."
            )
        self.logdensity_fn = logdensity_fn
        self.step_size = check_step_size(step_size)
        self.gate, self.gate_temperature = _gate.check_gate(gate, gate_temperature)
        self._layout: _Layout | None = None

    def replace(self, **changes):
        """An unbound copy with some settings changed, e.g. ``replace(step_size=0.1)`` (checked as in
        the constructor; traced values, such as a per-chain step size under vmap, are not checked)."""
        unknown = [k for k in changes if k.startswith("_") or not hasattr(self, k)]
        if unknown:
            raise TypeError(f"{type(self).__name__}.replace: unknown setting(s) {unknown}.")
        if "logdensity_fn" in changes and not callable(changes["logdensity_fn"]):
            raise TypeError("replace: logdensity_fn must be callable.")
        if "step_size" in changes:
            check_step_size(changes["step_size"])
        new = copy.copy(self)
        new.__dict__.update(changes)
        new._layout = None
        new._check_settings()
        return new

    def _check_settings(self) -> None:
        """Hook: re-check settings a `replace` may have changed."""

    # ------------------------------------------------------------------ binding
    def bind(self, initial_position):
        """Bind to the layout of ``initial_position`` and check it.

        Returns a bound copy (``self`` is unchanged). Raises ``TypeError`` for
        a position that is not a pytree of real floating arrays and
        ``ValueError`` if the log density or its gradient is not finite there.
        """
        flat, unravel = ravel_pytree(initial_position)
        if flat.size == 0:
            raise ValueError("initial_position is empty: it has no array leaves.")
        if not jnp.issubdtype(flat.dtype, jnp.floating):
            raise TypeError(
                "initial_position must hold floating-point arrays (the samplers are "
                f"gradient-based), got dtype {flat.dtype}. Cast it, e.g. "
                "jax.tree.map(lambda a: jnp.asarray(a, float), position)."
            )
        bound = copy.copy(self)
        bound._layout = _Layout(unravel, int(flat.size), flat.dtype)
        bound._on_bind()
        bound.check_position(flat)
        return bound

    def bound_at(self, initial_position):
        """(bound sampler, flat x0): binds an unbound sampler to the position, or checks the position
        against a bound one (so callers can pass either)."""
        if self.is_bound:
            x0 = self.ravel(initial_position)
            self.check_position(x0)
            return self, x0
        bound = self.bind(initial_position)
        return bound, bound.ravel(initial_position)

    def _on_bind(self) -> None:
        """Hook for checks and set-up that need the flat size (e.g. the mass
        matrix); runs on the bound copy."""

    @property
    def is_bound(self) -> bool:
        return self._layout is not None

    @property
    def layout(self) -> _Layout:
        if self._layout is None:
            raise RuntimeError(
                f"{type(self).__name__} is not bound to a position yet: call "
                "`sampler = sampler.bind(initial_position)` first."
            )
        return self._layout

    @property
    def dim(self) -> int:
        """Size D of the flattened position."""
        return self.layout.size

    def ravel(self, position) -> Array:
        """Pytree position -> flat vector ``(D,)`` (layout checked)."""
        flat, _ = ravel_pytree(position)
        if flat.shape != (self.dim,):
            raise ValueError(
                f"position flattens to shape {flat.shape}, but the sampler was bound "
                f"to positions of flat size {self.dim}."
            )
        return flat.astype(self.layout.dtype)

    def unravel(self, x: Array):
        """Flat vector ``(D,)`` -> pytree position."""
        return self.layout.unravel(x)

    def unravel_chain(self, states: Array):
        """Flat chain ``(T, D)`` -> pytree whose leaves have leading axis T."""
        return jax.vmap(self.layout.unravel)(states)

    def check_position(self, x: Array) -> None:
        """Raise ``ValueError`` if the log density or its gradient is not finite
        at the flat position ``x`` (skipped under tracing)."""
        if _is_traced(x):
            return
        out = jax.eval_shape(self.logdensity, x)
        if out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(
                "logdensity_fn must return a real floating scalar, got shape "
                f"{out.shape} and dtype {out.dtype}."
            )
        logdensity, grad = program_jit(self.value_and_grad)(x)  # compiled once per program
        if not bool(jnp.isfinite(logdensity)):
            raise ValueError(
                f"The log density at the initial position is {float(logdensity)}; "
                "start the chain where it is finite (e.g. inside the support)."
            )
        if not bool(jnp.all(jnp.isfinite(grad))):
            bad = jnp.flatnonzero(~jnp.isfinite(grad))[:5].tolist()
            raise ValueError(
                "The gradient of the log density is not finite at the initial "
                f"position (flat indices {bad}); start the chain elsewhere."
            )

    # ------------------------------------------------------------ log density
    def logdensity(self, x: Array) -> Array:
        """Log density at the flat position ``x``."""
        return self.logdensity_fn(self.layout.unravel(x))

    def value_and_grad(self, x: Array) -> tuple[Array, Array]:
        """``(log density, flat gradient)`` at the flat position ``x``: one
        ``jax.value_and_grad`` call."""
        return jax.value_and_grad(self.logdensity)(x)

    # ------------------------------------------------------------- step map
    @abc.abstractmethod
    def noise(self, rng_key: Array, num_steps: int):
        """Every random number of a ``num_steps`` chain (leaves: leading axis T)."""

    @abc.abstractmethod
    def _transition(self, x: Array, noise_t) -> tuple[Array, NamedTuple]:
        """``(x_next, info)`` for one step from flat ``x`` with the step's noise."""

    def step(self, x: Array, noise_t) -> Array:
        """The step map ``x_t = f(x_{t-1}, noise_t)`` on flat positions. Pure;
        jit-, vmap- and jacfwd-able."""
        return self._transition(x, noise_t)[0]

    def stats(self, x_prev: Array, noise_t):
        """The step's statistics (the sampler's Info NamedTuple), recomputed from
        the previous position and the step's noise (the step is deterministic)."""
        return self._transition(x_prev, noise_t)[1]

    def chain_stats(self, x0: Array, states: Array, inputs):
        """Statistics of a whole solved chain in one vmapped pass.

        ``states`` is ``(T, D)`` with ``states[t] = x_{t+1}``; step t starts
        from ``x0`` for t = 0 and from ``states[t-1]`` after.
        """
        previous = jnp.concatenate([x0[None].astype(states.dtype), states[:-1]], axis=0)
        return jax.vmap(self.stats)(previous, inputs)

    def __repr__(self) -> str:
        bound = f", dim={self.dim}" if self.is_bound else ""
        return (
            f"{type(self).__name__}(step_size={self.step_size!r}, gate={self.gate!r}"
            f"{bound})"
        )
