"""ELK and quasi-ELK: DEER and quasi-DEER with a Levenberg–Marquardt damping λ.

Each iteration linearises the recurrence exactly as DEER (dense A_t = ∂f/∂x) or quasi-DEER (diagonal
A_t) does, and then, instead of solving the linear dynamical system x_t = A_t x_{t−1} + b_t outright,
takes the damped step

    argmin_x  Σ_t ‖x_t − A_t x_{t−1} − b_t‖²  +  λ Σ_t ‖x_t − x_t^(i)‖²

computed by a parallel Kalman smoother (or filter) in `kalman.py`. λ → 0 is DEER. Any λ > 0 bounds the
Kalman covariances by 1/λ, so the step stays finite where DEER's affine recurrence overflows: states
beyond the horizon where the linearised dynamics have grown by ~1/√λ are held near the current
iterate instead of being extrapolated. Measured here (docs/elk_iterations.md), that bound is most of
ELK's benefit: a tiny fixed λ (the default 1e-6) converges in a handful of iterations from guesses
where DEER returns NaN, while a large λ (≥ 2 there) turns the steps into slow gradient-like steps.

Trust region (adaptive=True). The merit is φ(x) = ½ Σ_t ‖x_t − f(x_{t−1})‖², and the linear model's
merit at a candidate x' is m(x') = ½ Σ_t ‖x'_t − A_t x'_{t−1} − b_t‖², the residual of x' in the
linearised system (m equals φ at the current iterate). With ρ = (φ(x) − φ(x')) / (φ(x) − m(x')):

    ρ > 0 (and φ(x') finite)  accept x'; otherwise keep x (the iteration still counts)
    ρ > 0.75                  λ ← λ / 3
    ρ < 0.25 or rejected      λ ← 2 λ

These are Marquardt's constants (Marquardt 1963), as used in the Levenberg–Marquardt algorithm of
K. Madsen, H. B. Nielsen, O. Tingleff, "Methods for non-linear least squares problems" (IMM, DTU,
2004); the 0.25 / 0.75 thresholds are also those of the basic trust-region method (Nocedal & Wright,
"Numerical Optimization", 2006, Algorithm 4.1). λ is kept within [LAM_MIN, LAM_MAX] so that it never
reaches 0 (where doubling could not bring it back) nor grows without bound.

The merit never increases across accepted steps. That safety has a price, measured in
docs/elk_iterations.md: from a guess in an expanding region, the good small-λ steps often raise the
merit once before it collapses, the trust region rejects them, λ grows, and the iteration crawls.
For the smoother the predicted decrease is ≥ ½ λ ‖x' − x‖² > 0. The filtered step is not the
minimiser: on expanding linearisations its model merit can exceed the current merit by orders of
magnitude, every step is rejected, and adaptive=True with smoother=False stalls there; use the
filter with a fixed λ.

With adaptive=False (the default) λ stays fixed and every step is taken, as in published ELK.
"""

import dataclasses

import jax
import jax.numpy as jnp

from parmcmc.engine.kalman import damped_step
from parmcmc.engine.solvers import DEER, AbstractIterativeSolver, QuasiDEER, shift

__all__ = ["ELK", "LAM_MAX", "LAM_MIN", "AbstractELK", "QuasiELK", "merit", "model_merit"]

# Marquardt's rule (Madsen, Nielsen & Tingleff 2004, §3.2).
RHO_GOOD, RHO_BAD = 0.75, 0.25
LAM_SHRINK, LAM_GROW = 3.0, 2.0
LAM_MIN, LAM_MAX = 1e-12, 1e12


def _apply(A, x):
    return A * x if A.ndim == x.ndim else jnp.einsum("tij,tj->ti", A, x)


def merit(states, fx):
    """φ = ½ Σ_t ‖x_t − f(x_{t−1})‖² of a window, from its states and linearisation values fx."""
    return 0.5 * jnp.sum((states - fx) ** 2)


def model_merit(candidate, x_start, lin, x_prev):
    """½ Σ_t ‖x'_t − A_t x'_{t−1} − b_t‖².

    The candidate's residual in the system linearised around the iterate whose predecessors are x_prev (b_t =
    f(x_prev_t) − A_t x_prev_t).
    """
    r = candidate - lin.fx - _apply(lin.A, shift(candidate, x_start) - x_prev)
    return 0.5 * jnp.sum(r**2)


def _check_lam(solver: "AbstractELK") -> None:
    name = type(solver).__name__
    if not (isinstance(solver.lam, (int, float)) and LAM_MIN <= solver.lam <= LAM_MAX):
        raise ValueError(
            f"{name}(lam={solver.lam!r}): lam must be a number in [{LAM_MIN:g}, {LAM_MAX:g}]; for the "
            f"undamped step use {'DEER' if name == 'ELK' else 'QuasiDEER'}()."
        )
    for flag in ("adaptive", "smoother"):  # "yes" or 1 would pass as true
        if not isinstance(getattr(solver, flag), bool):
            raise TypeError(f"{name}({flag}={getattr(solver, flag)!r}): {flag} must be True or False.")


class AbstractELK(AbstractIterativeSolver):
    """Shared by ELK and QuasiELK: the damped step and the trust region; subclasses choose A_t.

    Abstract and field-free: the final classes declare every field (dataclass fields), among them

    lam: λ in [LAM_MIN, LAM_MAX], the damping (fixed when adaptive=False, the start otherwise).
    adaptive: Levenberg–Marquardt trust region on the merit ½Σ‖x_t − f(x_{t−1})‖² (module docstring).
      Off by default: in docs/elk_iterations.md it never beat the fixed λ = 1e-6 and stalled from
      expanding initial guesses that the fixed λ solved in 5–7 iterations.
    smoother: True for the exact minimiser (Kalman smoother); False for the filtered mean. In
      float32 prefer λ ≥ 1e-3 with the dense filter (λ = 1e-6 produced NaN on an expanding guess).
    linearizer: the undamped solver whose linearisation (f and A_t at the guess) this one reuses,
      built once from the other fields (not an argument).
    The solver state carried between iterations is the current λ.
    """

    # Declared here for readers and the type checker only: this class is not a dataclass, so these
    # are not fields; each final class declares them.
    lam: float
    adaptive: bool
    smoother: bool
    linearizer: AbstractIterativeSolver

    def init(self, x0, num_steps):
        """The auxiliary per-step values of the linearizer (e.g. Hutchinson probes)."""
        return self.linearizer.init(x0, num_steps)

    def init_state(self, x0):
        """The damping λ the iteration starts with."""
        return jnp.asarray(self.lam, x0.dtype)

    def linearize(self, fn, x_prev, inputs, aux):
        """f and its Jacobian approximation at every state of the window."""
        return self.linearizer.linearize(fn, x_prev, inputs, aux)

    def step(self, fn, x_start, states, inputs, aux, lin, lam, extra=None):
        """One Levenberg–Marquardt step (the Kalman smoother's mean) and the next λ."""
        x_prev = shift(states, x_start)
        b = lin.fx - _apply(lin.A, x_prev)
        candidate = damped_step(lin.A, b, x_start, states, lam, smoother=self.smoother)  # λ >= LAM_MIN > 0
        if not self.adaptive:
            return candidate, self.linearize_with(fn, shift(candidate, x_start), inputs, aux, extra), lam
        # The trust region judges the candidate itself, so its rows are all taken at the candidate; the row
        # after the driver's pinned state (extra) is evaluated on its own and stands whatever is decided.
        new_lin = self.linearize(fn, shift(candidate, x_start), inputs, aux)
        accept, lam = self.trust_region(states, lin, candidate, new_lin, x_start, x_prev, lam)
        keep = lambda new, old: jnp.where(accept, new, old)
        new_lin = jax.tree_util.tree_map(keep, new_lin, lin)
        if extra is not None:
            q, x = extra
            row = lambda tree: jax.tree_util.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, q, 1), tree)
            one = self.linearize(fn, x[None], row(inputs), row(aux))
            new_lin = jax.tree_util.tree_map(lambda a, b: jax.lax.dynamic_update_slice_in_dim(a, b, q, 0), new_lin, one)
        return keep(candidate, states), new_lin, lam

    def trust_region(self, states, lin, candidate, new_lin, x_start, x_prev, lam):
        """(accept the candidate?, next λ) from the ratio of actual to predicted merit decrease."""
        current = merit(states, lin.fx)
        actual = current - merit(candidate, new_lin.fx)
        predicted = current - model_merit(candidate, x_start, lin, x_prev)
        accept = jnp.isfinite(actual) & (actual > 0) & (predicted > 0)  # ρ > 0
        rho = actual / jnp.where(accept, predicted, 1.0)
        lam = jnp.where(
            accept & (rho > RHO_GOOD), lam / LAM_SHRINK, jnp.where(~accept | (rho < RHO_BAD), lam * LAM_GROW, lam)
        )
        return accept, jnp.clip(lam, LAM_MIN, LAM_MAX)


@dataclasses.dataclass(frozen=True)
class ELK(AbstractELK):
    """DEER (dense A_t = ∂f/∂x) with Levenberg–Marquardt damping: O(T D²) memory, O(T D³) work.

    lam, adaptive, smoother: see AbstractELK. With the default small λ it takes DEER's steps where
    those are finite and stays finite where DEER's affine recurrence overflows.
    """

    lam: float = 1e-6
    adaptive: bool = False
    smoother: bool = True
    linearizer: DEER = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_lam(self)
        object.__setattr__(self, "linearizer", DEER())


@dataclasses.dataclass(frozen=True)
class QuasiELK(AbstractELK):
    """Quasi-DEER (diagonal A_t) with Levenberg–Marquardt damping: O(T D) memory and work.

    lam, adaptive, smoother: see AbstractELK. diagonal, num_probes, seed: how A_t is obtained, as for
    QuasiDEER ("exact" diagonal of the Jacobian, or a Hutchinson estimate with fixed probes).
    """

    lam: float = 1e-6
    adaptive: bool = False
    smoother: bool = True
    diagonal: str = "exact"
    num_probes: int = 1
    seed: int = 0
    linearizer: QuasiDEER = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_lam(self)
        # QuasiDEER validates the diagonal options.
        object.__setattr__(
            self, "linearizer", QuasiDEER(diagonal=self.diagonal, num_probes=self.num_probes, seed=self.seed)
        )
