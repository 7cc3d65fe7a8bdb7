"""The solvers: one small class per method.

Every iterative solver linearises the recurrence around the current guess and solves the resulting
linear dynamical system x_t = A_t x_{t-1} + b_t, b_t = f(x_{t-1}^(i)) - A_t x_{t-1}^(i). They differ
only in A_t (docs/design.md):

    Jacobi     A_t = 0                      Picard     A_t = I
    QuasiDEER  A_t = diag(df/dx)            DEER       A_t = df/dx (dense)

`AbstractSolver` is the root: a solver says whether it is `parallel` (class attribute). The sequential
reference computes the states itself (`Sequential.scan`); every parallel solver is an
`AbstractIterativeSolver` and works on one window of W consecutive states (W = T without sliding windows) of flat
(D,)-vectors. The driver (`solve.py`) calls `linearize` to evaluate f and A_t at a guess, and `step`
to move the guess; `step` returns the linearisation at the new guess, so that f is evaluated once per
iteration. Solvers are frozen dataclasses: hashable, so they can be static arguments of `jax.jit`.
"""

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from parmcmc.arguments import check_int
from parmcmc.engine.scan import picard_scan
from parmcmc.engine.sharding import affine_scan

StepFn = Callable[[jax.Array, Any], jax.Array]


class Linearization(NamedTuple):
    """The recurrence evaluated at a guess of one window.

    fx: (W, D), f(x_{t-1}, input_t) at the guessed x_{t-1}.
    A:  None (Jacobi, Picard), (W, D) for diagonal or (W, D, D) for dense Jacobian approximations.
    """

    fx: jax.Array
    A: jax.Array | None


def shift(states: jax.Array, x_start: jax.Array) -> jax.Array:
    """x_{t-1} for every t of a window: x_start followed by all but the last state."""
    return jnp.concatenate([x_start[None], states[:-1]], axis=0)


class AbstractSolver(abc.ABC):
    """A method that computes all states of x_t = fn(x_{t-1}, input_t).

    Subclasses set the class attribute `parallel`: False for the sequential reference (`Sequential`,
    which `solve` runs with `lax.scan`), True for the iterative solvers (`AbstractIterativeSolver`).
    Callers dispatch on `solver.parallel`, never on the class.
    """

    parallel: ClassVar[bool]


class AbstractIterativeSolver(AbstractSolver):
    """A parallel-in-time solver: the driver iterates `step` from a guess of all states.

    `init(x0, num_steps)` returns per-step auxiliary data (a pytree with leading axis T, or None),
    sliced with the window; `init_state(x0)` returns the solver's carried state (e.g. a damping).
    """

    parallel: ClassVar[bool] = True

    def init(self, x0: jax.Array, num_steps: int) -> Any:
        """Auxiliary per-step values fixed across iterations (leading axis T), or None."""
        return None

    def init_state(self, x0: jax.Array) -> Any:
        """State carried from one iteration to the next (e.g. ELK's λ), or None."""
        return ()

    @abc.abstractmethod
    def linearize(self, fn: StepFn, x_prev: jax.Array, inputs: Any, aux: Any) -> Linearization:
        """Evaluate fn (and A_t) at the guessed predecessors x_prev (W, D)."""

    @abc.abstractmethod
    def step(self, fn, x_start, states, inputs, aux, lin, state, extra=None) -> tuple[jax.Array, Linearization, Any]:
        """One iteration on a window: returns (new_states, linearisation at them, new solver state).

        extra: None, or (q, x): the state before step q will be x whatever this step computes (the driver
        pins it), so row q of the returned linearisation is taken at x (`linearize_with`).
        """

    def linearize_with(self, fn, x_prev, inputs, aux, extra=None) -> Linearization:
        """`linearize` at the predecessors x_prev (W, D), row q's replaced by x when extra = (q, x).

        The driver's pin needs f and A_t at one pinned state: one batched evaluation compiles them once.
        """
        if extra is not None:
            q, x = extra
            row = jnp.arange(x_prev.shape[0]) == q  # a select, not an in-place row update (no copy of x_prev)
            x_prev = jnp.where(row.reshape((-1,) + (1,) * (x_prev.ndim - 1)), x.astype(x_prev.dtype), x_prev)
        return self.linearize(fn, x_prev, inputs, aux)


class AbstractLDSSolver(AbstractIterativeSolver):
    """Solvers whose iteration is 'solve the linearised system exactly': Jacobi to DEER."""

    def identity_linearization(self, states: jax.Array) -> Linearization | None:
        """A linearisation whose `solve_lds` returns `states` exactly (for finite states), or None.

        fx = states with A = 0 (or none): the driver starts its loop with it, so that the first step linearises the
        guess and no linearisation is compiled before the loop. None keeps the linearisation before the loop.
        """
        return None

    @abc.abstractmethod
    def solve_lds(self, lin: Linearization, x_prev: jax.Array, x_start: jax.Array) -> jax.Array:
        """The states of the linear system of `lin` around the guess whose predecessors are x_prev."""

    def step(self, fn, x_start, states, inputs, aux, lin, state, extra=None):
        """One iteration: the new states of the window, their linearisation and the next state."""
        new = self.solve_lds(lin, shift(states, x_start), x_start)
        return new, self.linearize_with(fn, shift(new, x_start), inputs, aux, extra), state


def _evaluate(fn: StepFn, x_prev: jax.Array, inputs: Any) -> jax.Array:
    return jax.vmap(fn)(x_prev, inputs)


def _jacobian_with_value(fn: StepFn, x: jax.Array, u: Any):
    """f(x, u) and its dense Jacobian df/dx from one linearisation (forward mode)."""
    # One forward pass per column, the value computed alongside (unbatched under the vmap): one compiled copy of fn.
    # (jax.linearize compiled two when fn holds a while loop, which it cannot split into value and tangent parts.)
    # The value comes out unbatched (it does not depend on the tangents), so [0] costs nothing.
    fxs, cols = jax.vmap(lambda v: jax.jvp(lambda y: fn(y, u), (x,), (v,)))(jnp.eye(x.shape[0], dtype=x.dtype))
    return fxs[0], cols.T  # row i of cols = J e_i


def _check_damping(name: str, damping: float, clip: float | None) -> None:
    if not 0.0 < damping <= 1.0:
        raise ValueError(f"{name}(damping={damping!r}): damping scales A_t and must lie in (0, 1].")
    if clip is not None and not clip > 0.0:
        raise ValueError(f"{name}(clip={clip!r}): clip bounds |A_t| entries and must be > 0, or None.")


def _damp(A: jax.Array, damping: float, clip: float | None) -> jax.Array:
    if clip is not None:
        A = jnp.clip(A, -clip, clip)
    return A * damping if damping != 1.0 else A


@dataclasses.dataclass(frozen=True)
class Sequential(AbstractSolver):
    """The reference: `lax.scan` of the step map, one state after the other. Always exact."""

    parallel: ClassVar[bool] = False

    def scan(self, fn: StepFn, x0: jax.Array, inputs: Any) -> jax.Array:
        """The sequential recurrence, one step at a time (``lax.scan``)."""

        def body(x, u):
            x = fn(x, u)
            return x, x

        return jax.lax.scan(body, x0, inputs)[1]


@dataclasses.dataclass(frozen=True)
class Jacobi(AbstractLDSSolver):
    """A_t = 0: every state becomes f of the previous guess.

    The first k states are exact after k iterations, so at most T iterations are needed; cheap but slow to converge.
    """

    def linearize(self, fn, x_prev, inputs, aux):
        """f at every state of the window; no Jacobian (A = 0)."""
        return Linearization(_evaluate(fn, x_prev, inputs), None)

    def solve_lds(self, lin, x_prev, x_start):
        """The next iterate: f at the previous one, shifted by one step."""
        return lin.fx

    def identity_linearization(self, states):
        """fx = states (no Jacobian): the next iterate is `states` itself."""
        return Linearization(states, None)


@dataclasses.dataclass(frozen=True)
class Picard(AbstractLDSSolver):
    """A_t = I: the update is a cumulative sum of f(x_{t-1}) - x_{t-1}.

    Exact after at most T iterations; suited to steps close to the identity (small step sizes).
    """

    def linearize(self, fn, x_prev, inputs, aux):
        """f at every state of the window; the Jacobian is taken as the identity."""
        return Linearization(_evaluate(fn, x_prev, inputs), None)

    def solve_lds(self, lin, x_prev, x_start):
        """The next iterate: a cumulative sum of the increments."""
        return picard_scan(lin.fx - x_prev, x_start)


@dataclasses.dataclass(frozen=True)
class QuasiDEER(AbstractLDSSolver):
    """A_t = diag(df/dx): O(T D) memory and work per iteration.

    diagonal: "exact" takes the diagonal of the Jacobian (D forward passes per step: for small D);
        "hutchinson" estimates it as the mean over `num_probes` Rademacher probes z of z * (J z), one
        forward pass per probe. Probes are fixed per time index across iterations (seeded by `seed`).
    damping: scales A_t by a factor in (0, 1]; clip: bounds each entry of A_t to [-clip, clip].
    """

    diagonal: str = "exact"
    num_probes: int = 1
    seed: int = 0
    damping: float = 1.0
    clip: float | None = None

    def __post_init__(self):
        if self.diagonal not in ("exact", "hutchinson"):
            raise ValueError(f"QuasiDEER(diagonal={self.diagonal!r}): use 'exact' or 'hutchinson'.")
        check_int("num_probes", self.num_probes, call="QuasiDEER")
        check_int("seed", self.seed, minimum=-(2**63), call="QuasiDEER")  # jax.random.key(seed) takes any integer
        _check_damping("QuasiDEER", self.damping, self.clip)

    def init(self, x0, num_steps):
        """The Hutchinson probes per time index (fixed across iterations), or None for the exact diagonal."""
        # The time index of each step: probes are derived from it, so they stay fixed per step.
        return jnp.arange(num_steps) if self.diagonal == "hutchinson" else None

    def linearize(self, fn, x_prev, inputs, aux):
        """f and the diagonal of its Jacobian (exact, or the Hutchinson estimate) at every state."""
        if self.diagonal == "exact":
            fx, J = jax.vmap(lambda x, u: _jacobian_with_value(fn, x, u))(x_prev, inputs)
            A = jnp.diagonal(J, axis1=1, axis2=2)
        else:
            fx, A = jax.vmap(self._hutchinson, in_axes=(None, 0, 0, 0))(fn, x_prev, inputs, aux)
        return Linearization(fx, _damp(A, self.damping, self.clip))

    def _hutchinson(self, fn, x, u, t):
        key = jax.random.fold_in(jax.random.key(self.seed), t)
        z = jax.random.rademacher(key, (self.num_probes, x.shape[0]), dtype=x.dtype)
        fx, f_jvp = jax.linearize(lambda y: fn(y, u), x)
        return fx, jnp.mean(z * jax.vmap(f_jvp)(z), axis=0)

    def solve_lds(self, lin, x_prev, x_start):
        """The next iterate: the diagonal linear system solved by the affine scan."""
        assert lin.A is not None  # linearize always returns the diagonal
        return affine_scan(lin.A, lin.fx - lin.A * x_prev, x_start)

    def identity_linearization(self, states):
        """fx = states, A = 0: the affine scan returns `states` exactly."""
        return Linearization(states, jnp.zeros_like(states))


@dataclasses.dataclass(frozen=True)
class DEER(AbstractLDSSolver):
    """A_t = df/dx, dense: Newton's method over the whole chain.

    Quadratic convergence near the solution; O(T D^2) memory and O(T D^3) work per iteration. May diverge far from
    the solution (use ELK, or damping/clip as published for HMC).
    """

    damping: float = 1.0
    clip: float | None = None

    def __post_init__(self):
        _check_damping("DEER", self.damping, self.clip)

    def linearize(self, fn, x_prev, inputs, aux):
        """f and its dense Jacobian at every state of the window."""
        fx, J = jax.vmap(lambda x, u: _jacobian_with_value(fn, x, u))(x_prev, inputs)
        return Linearization(fx, _damp(J, self.damping, self.clip))

    def solve_lds(self, lin, x_prev, x_start):
        """The next iterate: the dense linear system solved by the affine scan."""
        assert lin.A is not None  # linearize always returns the Jacobian
        b = lin.fx - jnp.einsum("tij,tj->ti", lin.A, x_prev)
        return affine_scan(lin.A, b, x_start)

    def identity_linearization(self, states):
        """fx = states, A = 0: the affine scan returns `states` exactly."""
        return Linearization(states, jnp.zeros(states.shape + states.shape[-1:], states.dtype))
