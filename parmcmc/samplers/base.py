"""What every sampler shares.

An immutable JAX pytree, a position layout, a flat log density, input checks and the vmapped statistics pass.

A sampler is an immutable pytree. Its *array leaves* are the settings that vary between chains and
runs (step size, inverse mass matrix, the preconditioner's shift and scale, the step-size jitter);
its *static* part is what fixes the program (the log density function, the position layout, the
gate, the number of leapfrog steps). Two samplers that differ only in leaf values therefore share
one compiled program (``jax.jit(lambda s, x, n: s.step(x, n))`` traces once), and per-chain settings
vmap directly: ``jax.vmap(lambda s, x: s.step(x, n))(samplers, xs)`` over a sampler whose leaves
carry a chain axis (:meth:`AbstractSampler.per_chain`).

A sampler is a description until it is *bound* to an initial position with
:meth:`AbstractSampler.bind`, which records the pytree layout of the position (a hashable value:
tree structure, shapes, dtypes) and checks the position; ``bind`` and ``replace`` return new
objects and never mutate. The bound sampler offers

- ``ravel(position) -> x`` and ``unravel(x) -> position`` (and ``unravel_chain`` for a chain),
- ``noise(rng_key, num_steps) -> inputs``: every random number of the chain, leaves with leading
  axis T, in BlackJAX's key order,
- ``step(x_prev, inputs_t) -> x_t``: the pure step map,
- ``stats(x_prev, inputs_t) -> Info`` and ``chain_stats(x0, states, inputs)``.

Instances hash by identity (as functions do), so bound methods such as ``sampler.step`` can be
passed to ``jax.jit``; pass the sampler itself as an argument to share compilations across samplers.

With a *preconditioner* (``loc`` m and lower-triangular or diagonal ``scale`` L), the flat state is
``z = L^-1 (x - m)``: ``ravel`` maps a position to z, ``unravel`` maps z back to the position, and
the log density is ``log p(m + L z)`` (the constant log|L| left out, so ``logdensity`` is the
target's). The chain is then BlackJAX's chain on that transformed density, mapped back at the output.
"""

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.core
import jax.numpy as jnp
import jax.scipy as jsp
import numpy as np
from jax import Array
from jax.flatten_util import ravel_pytree

from parmcmc.jitcache import program_jit
from parmcmc.samplers import gate as _gate
from parmcmc.samplers.checks import _as_float_array, _check_preconditioner, _is_traced, check_step_size

__all__ = ["AbstractSampler", "Layout", "check_step_size"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """The layout of a position pytree, as a hashable value (equal layouts share compilations).

    treedef, shapes, dtypes
        The position's tree structure and its leaves' shapes and dtypes.
    dtype
        The flat vector's dtype (``ravel_pytree``'s promotion of the leaf dtypes).
    size
        The flat size D.
    """

    treedef: Any
    shapes: tuple
    dtypes: tuple
    dtype: Any
    size: int

    @classmethod
    def of(cls, position) -> "Layout":
        """The layout of ``position``."""
        leaves, treedef = jax.tree.flatten(position)
        flat, _ = ravel_pytree(position)
        shapes = tuple(tuple(jnp.shape(a)) for a in leaves)
        dtypes = tuple(jnp.result_type(a) for a in leaves)
        return cls(treedef, shapes, dtypes, flat.dtype, int(flat.size))

    def unravel(self, flat: Array):
        """Flat vector ``(D,)`` -> position pytree (``ravel_pytree``'s inverse)."""
        sizes = [math.prod(s) for s in self.shapes]
        chunks = jnp.split(flat, np.cumsum(sizes)[:-1]) if len(sizes) > 1 else [flat]
        leaves = [
            c.reshape(s) if c.dtype == d else c.reshape(s).astype(d)
            for c, s, d in zip(chunks, self.shapes, self.dtypes, strict=True)
        ]
        return jax.tree.unflatten(self.treedef, leaves)


class AbstractSampler(abc.ABC):
    """Base class of the step-map samplers: an immutable pytree.

    Subclasses list their array settings in ``_leaves`` and their static settings in ``_static``,
    and define ``noise`` and ``_transition``; everything else is shared. Instances hash by identity.
    """

    _leaves: ClassVar[tuple[str, ...]] = ("step_size", "loc", "scale")
    _static: ClassVar[tuple[str, ...]] = ("logdensity_fn", "gate", "gate_temperature", "_layout")
    # The fields, set by __init__ (through _set) and by _tree_unflatten; declared for readers and type checkers.
    logdensity_fn: Callable
    step_size: Array
    gate: _gate.Gate
    gate_temperature: float
    loc: Array | None
    scale: Array | None
    _layout: Layout | None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

    def _tree_flatten(self):
        return (
            tuple(getattr(self, k) for k in self._leaves),
            tuple(getattr(self, k) for k in self._static),
        )

    @classmethod
    def _tree_unflatten(cls, static, leaves):
        new = object.__new__(cls)
        for k, v in zip(cls._leaves + cls._static, tuple(leaves) + tuple(static), strict=True):
            object.__setattr__(new, k, v)
        return new

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable: use sampler.replace({name}=...) for a changed copy.")

    def _set(self, **fields) -> None:
        """Set fields while constructing (the only mutation, on an object nobody holds yet)."""
        for k, v in fields.items():
            object.__setattr__(self, k, v)

    def __init__(self, logdensity_fn: Callable, step_size, *, gate, gate_temperature, loc=None, scale=None):
        if not callable(logdensity_fn):
            raise TypeError(f"logdensity_fn must be callable, got {type(logdensity_fn).__name__}.")
        gate, gate_temperature = _gate.check_gate(gate, gate_temperature)
        self._set(
            logdensity_fn=logdensity_fn,
            step_size=_as_float_array(check_step_size(step_size)),
            gate=gate,
            gate_temperature=gate_temperature,
            _layout=None,
        )
        self._set(**_check_preconditioner(loc, scale))

    # --------------------------------------------------------------- copies
    def _evolve(self, **changes):
        """A copy with some fields changed, unchecked."""
        leaves, static = self._tree_flatten()
        new = self._tree_unflatten(static, leaves)
        for k, v in changes.items():
            object.__setattr__(new, k, v)
        return new

    def replace(self, **changes):
        """A copy with some settings changed, e.g. ``replace(step_size=0.1)``.

        The changes are checked as in the constructor (traced values, such as a per-chain step size under
        vmap, are not checked). A bound sampler stays bound (changing ``logdensity_fn`` unbinds it: rebind to
        check).
        """
        names = set(self._leaves + self._static) - {"_layout"}
        unknown = sorted(k for k in changes if k not in names)
        if unknown:
            raise TypeError(f"{type(self).__name__}.replace: unknown setting(s) {unknown}.")
        if "logdensity_fn" in changes and not callable(changes["logdensity_fn"]):
            raise TypeError("replace: logdensity_fn must be callable.")
        if "step_size" in changes:
            changes["step_size"] = _as_float_array(check_step_size(changes["step_size"]))
        if "gate" in changes or "gate_temperature" in changes:
            changes["gate"], changes["gate_temperature"] = _gate.check_gate(
                changes.get("gate", self.gate), changes.get("gate_temperature", self.gate_temperature)
            )
        if "loc" in changes or "scale" in changes:
            changes.update(_check_preconditioner(changes.get("loc", self.loc), changes.get("scale", self.scale)))
        changes = self._check_changes(changes)
        if "logdensity_fn" in changes:
            changes["_layout"] = None
        new = self._evolve(**changes)
        return new._cast_leaves() if new.is_bound else new

    def per_chain(self, **settings):
        """A sampler whose array leaves carry a leading chain axis.

        Each setting in ``settings`` is given per chain (leading axis C), every other leaf is repeated.
        ``jax.vmap`` over it (in_axes 0) gives chain c the sampler ``self.replace(**{k: v[c]})``.
        """
        return jax.vmap(lambda kw: self.replace(**kw))(settings)

    def _check_changes(self, changes: dict) -> dict:
        """Hook: check (and convert) subclass settings a `replace` changes."""
        return changes

    def _cast_leaves(self):
        """The sampler with its floating leaves in the position's dtype.

        So the chain keeps that dtype, as BlackJAX's weakly typed Python floats do.
        """
        dtype = self.layout.dtype
        leaves, static = self._tree_flatten()
        leaves = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, leaves)
        return self._tree_unflatten(static, leaves)

    # ------------------------------------------------------------------ binding
    def bind(self, initial_position):
        """Bind to the layout of ``initial_position`` and check it.

        Returns a bound copy (``self`` is unchanged). Raises ``TypeError`` for
        a position that is not a pytree of real floating arrays and
        ``ValueError`` if the log density or its gradient is not finite there.
        """
        flat, _ = ravel_pytree(initial_position)
        if flat.size == 0:
            raise ValueError("initial_position is empty: it has no array leaves.")
        if not jnp.issubdtype(flat.dtype, jnp.floating):
            raise TypeError(
                "initial_position must hold floating-point arrays (the samplers are "
                f"gradient-based), got dtype {flat.dtype}. Cast it, e.g. "
                "jax.tree.map(lambda a: jnp.asarray(a, float), position)."
            )
        if jnp.finfo(flat.dtype).bits < 32:  # the noise and the accept test need float32's range at least
            raise TypeError(
                f"initial_position has dtype {flat.dtype}; the samplers run in float32 or float64. Cast it, e.g. "
                "jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), position)."
            )
        bound = self._evolve(_layout=Layout.of(initial_position))
        bound = bound._on_bind()._cast_leaves()
        bound.check_position(bound.ravel(initial_position))
        return bound

    def bound_at(self, initial_position):
        """(bound sampler, flat x0).

        Binds an unbound sampler to the position, or checks the position against a bound one (so callers can
        pass either).
        """
        if self.is_bound:
            x0 = self.ravel(initial_position)
            self.check_position(x0)
            return self, x0
        bound = self.bind(initial_position)
        return bound, bound.ravel(initial_position)

    def _on_bind(self):
        """Hook for checks and set-up that need the flat size (e.g. the mass matrix); returns the bound sampler."""
        size = self.layout.size
        for name in ("loc", "scale"):
            value = getattr(self, name)
            if value is not None and jnp.shape(value)[0] != size:
                raise ValueError(f"{name} has size {jnp.shape(value)[0]} but the flattened position has size {size}.")
        return self

    @property
    def is_bound(self) -> bool:
        """Whether the sampler has been bound to a position layout."""
        return self._layout is not None

    @property
    def layout(self) -> Layout:
        """The position layout of a bound sampler (an error if unbound)."""
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

    @property
    def is_preconditioned(self) -> bool:
        """Whether the sampler works on z = L^-1 (x - m) (a preconditioner is set)."""
        return self.scale is not None or self.loc is not None

    def to_state(self, flat: Array) -> Array:
        """Flat position ``x`` -> the chain's state ``z = L^-1 (x - m)`` (``x`` itself without a preconditioner)."""
        if self.loc is not None:
            flat = flat - self.loc
        if self.scale is None:
            return flat
        if self.scale.ndim == 1:
            return flat / self.scale
        return jsp.linalg.solve_triangular(self.scale, flat, lower=True)

    def from_state(self, z: Array) -> Array:
        """The chain's state ``z`` -> flat position ``m + L z``."""
        if self.scale is not None:
            z = self.scale * z if self.scale.ndim == 1 else jnp.dot(self.scale, z, precision="highest")
        return z if self.loc is None else z + self.loc

    def ravel(self, position) -> Array:
        """Pytree position -> the chain's flat state ``(D,)`` (layout checked)."""
        flat, _ = ravel_pytree(position)
        if flat.shape != (self.dim,):
            raise ValueError(
                f"position flattens to shape {flat.shape}, but the sampler was bound "
                f"to positions of flat size {self.dim}."
            )
        return self.to_state(flat.astype(self.layout.dtype))

    def unravel(self, x: Array):
        """The chain's flat state ``(D,)`` -> pytree position."""
        return self.layout.unravel(self.from_state(x))

    def unravel_chain(self, states: Array):
        """Flat chain ``(T, D)`` -> pytree whose leaves have leading axis T."""
        return jax.vmap(self.unravel)(states)

    def check_position(self, x: Array) -> None:
        """Raise ``ValueError`` if the log density or its gradient is not finite at the flat state ``x``.

        Skipped under tracing.
        """
        if _is_traced(x) or _is_traced(jax.tree.leaves(self)):
            return
        out = jax.eval_shape(self.logdensity, x)
        if out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(
                f"logdensity_fn must return a real floating scalar, got shape {out.shape} and dtype {out.dtype}."
            )
        logdensity, grad = program_jit(self.value_and_grad)(x)  # compiled once per program
        logdensity, grad = np.asarray(logdensity), np.asarray(grad)  # checked on the host: no eager programs
        if not bool(np.isfinite(logdensity)):
            raise ValueError(
                f"The log density at the initial position is {float(logdensity)}; "
                "start the chain where it is finite (e.g. inside the support)."
            )
        if not bool(np.all(np.isfinite(grad))):
            bad = np.flatnonzero(~np.isfinite(grad))[:5].tolist()
            raise ValueError(
                "The gradient of the log density is not finite at the initial "
                f"position (flat indices {bad}); start the chain elsewhere."
            )

    # ------------------------------------------------------------ log density
    def logdensity(self, x: Array) -> Array:
        """Log density at the flat state ``x``."""
        return self.logdensity_fn(self.unravel(x))

    def value_and_grad(self, x: Array) -> tuple[Array, Array]:
        """``(log density, flat gradient)`` at the flat state ``x``: one ``jax.value_and_grad`` call."""
        return jax.value_and_grad(self.logdensity)(x)

    # ------------------------------------------------------------- step map
    @abc.abstractmethod
    def noise(self, rng_key: Array, num_steps: int):
        """Every random number of a ``num_steps`` chain (leaves: leading axis T)."""

    @abc.abstractmethod
    def _transition(self, x: Array, noise_t) -> tuple[Array, Any]:
        """One step from flat ``x`` with the step's noise: ``(x_next, info)``.

        ``info`` is the sampler's Info NamedTuple.
        """

    def step(self, x: Array, noise_t) -> Array:
        """The step map ``x_t = f(x_{t-1}, noise_t)`` on flat positions.

        Pure; jit-, vmap- and jacfwd-able.
        """
        return self._transition(x, noise_t)[0]

    def stats(self, x_prev: Array, noise_t):
        """The step's statistics (the sampler's Info NamedTuple).

        Recomputed from the previous position and the step's noise (the step is deterministic).
        """
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
        pre = ", preconditioned" if self.is_preconditioned else ""
        return f"{type(self).__name__}(step_size={self.step_size!r}, gate={self.gate!r}{pre}{bound})"
