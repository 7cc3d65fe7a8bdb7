"""The engine's guards (docs/convergence.md): guaranteed progress, rejection of non-finite
updates, fail fast. Small T, small D, float64; every answer checked against the sequential solve."""

import jax
import jax.numpy as jnp
import pytest
from helpers.systems import expanding_guess, linear_system, logistic_map, switching_map

from parmcmc.engine import DEER, ELK, MAX_ITERS, QuasiDEER, QuasiELK, Sequential, Shooting, solve


def bistable(T=128, D=4):
    """x_t = tanh(2.5 x_{t-1} + 0.5 u_t): two stable states near +-1, and the default guess 0 sits on the
    unstable one. Without the pin, ELK's least-squares steps settled 2.0 from the answer (a wrong local
    minimum of the merit) and never converged."""
    u = jax.random.normal(jax.random.key(0), (T, D))
    return (lambda x, u: jnp.tanh(2.5 * x + 0.5 * u)), jnp.zeros(D), u


def _max_diff(fn, x0, u, sol):
    return float(jnp.max(jnp.abs(sol.states - solve(fn, x0, u, Sequential()).states)))


NEWTON_SOLVERS = {
    "DEER": DEER(),
    "DEER-damped": DEER(damping=0.5),
    "QuasiDEER": QuasiDEER(),
    "QuasiDEER-hutchinson": QuasiDEER(diagonal="hutchinson"),
    "ELK": ELK(),
    "ELK-adaptive": ELK(adaptive=True),
    "QuasiELK": QuasiELK(),
    "QuasiELK-adaptive": QuasiELK(adaptive=True),
    "Shooting-DEER": Shooting(DEER(), 16),  # the recurrence between block ends, with the same guards
    "Shooting-ELK": Shooting(ELK(), 16),
}


@pytest.mark.parametrize("solver", list(NEWTON_SOLVERS.values()), ids=list(NEWTON_SOLVERS))
def test_every_newton_solver_converges_on_the_bistable_recurrence_within_T(solver):
    # Before the pin, ELK and QuasiELK (fixed and adaptive lambda) ended at max_iters = T = 128, 1.97 away.
    fn, x0, u = bistable()
    sol = solve(fn, x0, u, solver)
    assert bool(sol.converged) and not bool(sol.fell_back) and int(sol.num_iters) <= 128  # T (blocks: T / 16)
    assert _max_diff(fn, x0, u, sol) <= 1e-8


@pytest.mark.filterwarnings("ignore::parmcmc.NotConvergedWarning")  # budgets of 1, 5, 20 iterations: unconverged
def test_the_pinned_state_makes_one_more_state_exact_per_iteration():
    # Jacobi-like progress is the floor: after k iterations at least k states are exact, whatever the solver.
    fn, x0, u = bistable()
    for k in (1, 5, 20):
        sol = solve(fn, x0, u, QuasiELK(lam=1e3), max_iters=k)
        exact = jnp.all(jnp.abs(sol.states - solve(fn, x0, u, Sequential()).states) <= 1e-12, axis=1)
        assert int(jnp.argmin(exact)) >= k or bool(jnp.all(exact))


@pytest.mark.parametrize("solver", [DEER(), QuasiDEER()], ids=lambda s: type(s).__name__)
def test_a_nonfinite_update_no_longer_ends_the_solve(solver):
    # DEER's first affine recurrence overflows here (gain^T > 1e308; tests/engine/test_elk.py): it used to stop
    # with NONFINITE after one iteration. The overflowing tail is now rejected and the solve converges.
    fn, x0, u = expanding_guess()
    sol = solve(fn, x0, u, solver)
    assert bool(sol.converged) and int(sol.num_iters) < 256
    assert _max_diff(fn, x0, u, sol) <= 1e-8


def test_a_nan_region_mid_solve_is_rejected_and_the_answer_is_exact():
    # fn is NaN beyond |x| > 50, where DEER's extrapolation from the guess lands; the true chain stays in [2, 4].
    base, x0, u = expanding_guess(T=128)
    fn = lambda x, u: jnp.where(jnp.max(jnp.abs(x)) > 50.0, jnp.nan, base(x, u))
    sol = solve(fn, x0, u, DEER())
    assert bool(sol.converged) and _max_diff(fn, x0, u, sol) <= 1e-8


def test_fail_fast_stops_a_non_converging_chain_early_and_the_fallback_is_exact():
    fn, x0, u = logistic_map(T=200)  # chaotic: Newton needs about T iterations
    sol = solve(fn, x0, u, DEER(), max_iters=20, patience=5, fallback="sequential")
    assert int(sol.num_iters) <= 10 and int(sol.result) == MAX_ITERS and bool(sol.fell_back)
    assert bool(sol.converged) and _max_diff(fn, x0, u, sol) == 0.0


def test_fail_fast_leaves_a_converging_solve_alone():
    # DEER makes this switching map's tail exact all at once, at iteration 13, after a flat residual and
    # 40 exact states by iteration 8 (a prefix rate that projects to 60): the factor 2 lets it finish.
    fn, x0, u = switching_map(T=300)
    sol = solve(fn, x0, u, DEER(), max_iters=30, patience=8, fallback="sequential")
    assert bool(sol.converged) and not bool(sol.fell_back) and int(sol.num_iters) == 13
    assert _max_diff(fn, x0, u, sol) <= 1e-8


def test_fail_fast_under_vmap_stops_each_chain_on_its_own():
    # Two chaotic chains and their budget: both stop at the first checkpoint instead of running to T.
    fn, _x0, u = logistic_map(T=200)
    starts = jnp.array([[0.3], [0.31]])
    sols = jax.vmap(lambda x: solve(fn, x, u, DEER(), max_iters=20, patience=5, fallback="sequential"))(starts)
    assert jnp.all(sols.num_iters <= 10) and bool(jnp.all(sols.converged))


def test_patience_is_checked():
    fn, x0, u = linear_system(T=10)
    with pytest.raises(ValueError, match="patience must be a positive integer; got 0"):
        solve(fn, x0, u, DEER(), patience=0)
