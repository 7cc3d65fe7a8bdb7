import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.systems import logistic_map, tanh_rnn

from parmcmc.diagnostics import (
    FallbackWarning,
    diagnose_recurrence,
    fallback_warning,
    iteration_budget,
    lyapunov_exponent,
    predict_iterations,
    warn_if_fell_back,
)
from parmcmc.engine import DEER, MAX_ITERS, NONFINITE, QuasiDEER, Sequential, solve
from parmcmc.engine.solution import solution

LLE_TOL_LINEAR = 0.02  # stated tolerance for diagonal linear systems (the estimate is exact up to burn-in)
LLE_TOL_LOGISTIC = 0.03  # stated tolerance for the logistic map at r = 4 over a 4,000-step pilot


def scaled_rotation(rho, D=4, seed=1):
    """x_t = rho Q x_{t-1} + 0.1 u_t with Q orthogonal and dense: LLE = log(rho) exactly, and a diagonal
    Jacobian approximation (QuasiDEER) is poor because Q's off-diagonal entries are large."""
    Q = jnp.linalg.qr(jax.random.normal(jax.random.key(seed), (D, D)))[0]
    M = rho * Q
    return (lambda x, u: M @ x + 0.1 * u), jnp.zeros(D)


@pytest.mark.parametrize("a", [[0.9, 0.5, -0.7, 0.3], [1.05, -0.2, 0.95], [-0.5]], ids=str)
def test_lle_of_a_diagonal_linear_system_is_its_log_spectral_radius(a):
    a = jnp.array(a)
    inputs = jax.random.normal(jax.random.key(3), (1000, a.shape[0]))
    est = lyapunov_exponent(lambda x, u: a * x + u, jnp.zeros_like(a), inputs)
    assert abs(est.lle - math.log(float(jnp.max(jnp.abs(a))))) <= LLE_TOL_LINEAR
    assert est.per_probe.shape == (8,) and est.num_steps == 900  # default burn-in: the first tenth


def test_lle_of_the_logistic_map_at_r4_is_ln2():
    fn, x0, inputs = logistic_map(T=4000, r=4.0)
    est = lyapunov_exponent(fn, x0, inputs, num_probes=2)
    assert abs(est.lle - math.log(2.0)) <= LLE_TOL_LOGISTIC
    assert 0 < est.stderr < 0.01 and abs(est.lle - math.log(2.0)) <= 4 * est.stderr + 1e-3


def test_lle_of_a_pytree_state_equals_the_flat_one():
    a = jnp.array([0.8, -0.3, 0.6])
    inputs = jax.random.normal(jax.random.key(4), (500, 3))
    flat = lyapunov_exponent(lambda x, u: a * x + u, jnp.ones(3), inputs)

    def tree_fn(s, u):
        return {"p": a[:1] * s["p"] + u[:1], "q": a[1:] * s["q"] + u[1:]}

    tree = lyapunov_exponent(tree_fn, {"p": jnp.ones(1), "q": jnp.ones(2)}, inputs)
    assert abs(tree.lle - flat.lle) <= 1e-6 and abs(flat.lle - math.log(0.8)) <= LLE_TOL_LINEAR
    assert tree.spread <= 1e-6  # after burn-in every probe points along the most expanding direction


def test_predict_iterations_log_and_linear_models():
    assert predict_iterations(10, 256, 4096, growth="log") == pytest.approx(15.0)  # 10 * 12 / 8
    assert predict_iterations(10, 256, 4096, growth="linear") == pytest.approx(160.0)
    assert predict_iterations(100, 256, 1024, growth="linear") == 400.0
    assert predict_iterations(200, 256, 1024, growth="linear") == 800.0
    assert predict_iterations(250, 256, 1024, growth="linear") == 1000.0
    assert predict_iterations(250, 256, 300, growth="linear") == 292.96875
    assert predict_iterations(300, 256, 300, growth="linear") == 300.0  # capped at T
    assert iteration_budget(1024) == 80.0
    with pytest.raises(ValueError, match="growth"):
        predict_iterations(3, 256, 1024, growth="quadratic")


# (name, system, solver, true LLE, expected verdict): spanning LLE < 0 to LLE > 0. The verdict is checked
# against a measured solve at T = 2048 given the budget of the definition, 8 log2(T) = 88 iterations.
T_CHECK, T_PILOT = 2048, 256
CASES = {
    "contractive_rnn/DEER": (lambda: tanh_rnn(D=8, T=T_CHECK, scale=0.9)[:2], DEER(), None, True),
    "strongly_contractive_linear/QuasiDEER": (lambda: scaled_rotation(0.5), QuasiDEER(), math.log(0.5), True),
    "near_neutral_linear/DEER": (lambda: scaled_rotation(0.99), DEER(), math.log(0.99), True),
    "near_neutral_linear/QuasiDEER": (lambda: scaled_rotation(0.99), QuasiDEER(), math.log(0.99), False),
    "expanding_linear/QuasiDEER": (lambda: scaled_rotation(1.02), QuasiDEER(), math.log(1.02), False),
    "logistic_map_r4/DEER": (lambda: logistic_map(T=2, r=4.0)[:2], DEER(), math.log(2.0), False),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.filterwarnings("ignore::parmcmc.engine.NotConvergedWarning")  # the solve is measured: converged or not
def test_verdict_agrees_with_measured_iteration_counts(case):
    make, solver, true_lle, expected = CASES[case]
    fn, x0 = make()
    inputs = jax.random.normal(jax.random.key(2), (T_CHECK, x0.shape[0]))
    d = diagnose_recurrence(fn, x0, inputs[:1024], solver=solver, T=T_CHECK, pilot_steps=T_PILOT)
    if true_lle is not None:
        assert abs(d.lle - true_lle) <= LLE_TOL_LINEAR
    budget = math.floor(iteration_budget(T_CHECK))
    measured = solve(fn, x0, inputs, solver, max_iters=budget)
    assert d.parallel_pays == expected, d.reason
    assert d.parallel_pays == bool(measured.converged), (d.reason, int(measured.num_iters))
    assert d.reason.startswith("Parallel pays" if expected else "Sequential")
    if d.parallel_pays:
        # The log-T model is calibrated on the pilot and errs on the high side, by at most a factor 2.
        assert int(measured.num_iters) <= d.predicted_iters + 1
        assert d.predicted_iters <= 2 * int(measured.num_iters) + 1
        assert d.growth == "log" and d.pilot_result == "converged"
    else:
        assert d.predicted_iters > budget


def test_diagnose_rejects_a_sequential_solver_and_bad_lengths():
    fn, x0, inputs = tanh_rnn(D=2, T=50)
    with pytest.raises(TypeError, match="parallel solver"):
        diagnose_recurrence(fn, x0, inputs, solver=Sequential())
    with pytest.raises(ValueError, match="pilot_steps"):
        diagnose_recurrence(fn, x0, inputs, solver=DEER(), pilot_steps=1)
    with pytest.raises(ValueError, match="burn_in"):
        lyapunov_exponent(fn, x0, inputs, burn_in=50)


def test_forced_nonconvergence_falls_back_warns_once_and_returns_the_sequential_chain():
    fn, x0, inputs = tanh_rnn(D=4, T=400)
    ref = solve(fn, x0, inputs, Sequential()).states
    sol = solve(fn, x0, inputs, QuasiDEER(), max_iters=2, fallback="sequential")
    assert bool(sol.fell_back) and bool(sol.converged) and int(sol.result) == MAX_ITERS
    assert float(jnp.max(jnp.abs(sol.states - ref))) <= 1e-8 and sol.residual <= 1e-10
    calls = []

    def lle():
        calls.append(1)
        return lyapunov_exponent(fn, x0, inputs)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_if_fell_back(sol, lle, call="sample", solver=QuasiDEER())
    assert len(caught) == 1 and caught[0].category is FallbackWarning and len(calls) == 1
    text = str(caught[0].message)
    assert text.startswith("sample: the parallel solve (QuasiDEER) did not converge within its budget of 2")
    assert f"from state index {int(sol.sequential_from)} (0-based) of 400" in text
    assert "Lyapunov exponent" in text and "negative: raise max_iters, or use" in text

    fine = solve(fn, x0, inputs, DEER(), fallback="sequential")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_fell_back(fine, lle) and len(calls) == 1  # no warning, no LLE pilot
    assert fallback_warning(fine) == ""


def test_a_failed_solve_falls_back_and_the_warning_names_it_and_the_positive_lle():
    # Non-finite Newton updates are rejected, not fatal (docs/convergence.md): on this chaotic map the
    # solve now fails by its budget.
    fn, x0, inputs = logistic_map(T=300, r=4.0)
    ref = solve(fn, x0, inputs, Sequential()).states
    sol = solve(fn, x0, inputs, DEER(), fallback="sequential", max_iters=20)
    assert bool(sol.fell_back) and bool(sol.converged) and int(sol.result) == MAX_ITERS
    # The prefix agrees with the sequential replay to rounding and every later step satisfies the
    # recurrence, but on chaotic dynamics rounding differences of 1e-16 grow like exp(0.69 t): the
    # continuation is a valid chain, not the bit-exact replay (it is for LLE < 0, see the test above).
    s = int(sol.sequential_from)
    assert sol.residual <= 1e-11 and float(jnp.max(jnp.abs(sol.states[:s] - ref[:s]))) <= 1e-12
    text = fallback_warning(sol, lyapunov_exponent(fn, x0, inputs), call="solve")
    assert "did not converge within its budget of 20 iterations" in text
    assert "0.69" in text and "not negative: the dynamics are unpredictable" in text


def test_fallback_warning_summarises_a_batch_of_chains():
    T = 100
    sol = solution(
        np.zeros((3, T, 2)),
        np.array([True, True, True]),
        np.array([1, MAX_ITERS, NONFINITE]),
        num_iters=np.array([7, 50, 50]),
        residual=np.zeros(3),
        sequential_from=np.array([T, 12, 30]),
        fell_back=np.array([False, True, True]),
    )
    text = fallback_warning(sol, -0.25)
    assert "did not converge within its budget of 50 iterations and met a non-finite iterate" in text
    assert "in 2 of 3 chains" in text and "from state indices 12..30 (0-based) of 100" in text
    assert "-0.25 per step" in text
