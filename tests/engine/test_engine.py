import jax
import jax.numpy as jnp
import pytest
from helpers.systems import linear_system, logistic_map, switching_map, tanh_rnn

from parmcmc.engine import (
    DEER,
    MAX_ITERS,
    NONFINITE,
    SUCCESSFUL,
    Jacobi,
    NotConvergedWarning,
    Picard,
    QuasiDEER,
    Sequential,
    SolveError,
    solve,
)

SOLVERS = [Jacobi(), Picard(), QuasiDEER(), QuasiDEER(diagonal="hutchinson", num_probes=2), DEER()]
SYSTEMS = {"tanh_rnn": tanh_rnn, "linear": linear_system, "switching": switching_map}


def sequential(fn, x0, inputs):
    return solve(fn, x0, inputs, Sequential()).states


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: repr(s))
def test_every_solver_returns_the_sequential_states(system, solver):
    fn, x0, inputs = SYSTEMS[system]()
    sol = solve(fn, x0, inputs, solver)
    assert bool(sol.converged) and int(sol.result) == SUCCESSFUL, sol.message
    assert jnp.max(jnp.abs(sol.states - sequential(fn, x0, inputs))) <= 1e-8
    assert sol.residual <= 1e-10


def test_switching_map_really_switches():
    fn, x0, inputs = switching_map()
    states = sequential(fn, x0, inputs)
    moved = jnp.any(states != jnp.concatenate([x0[None], states[:-1]]), axis=1)
    assert 0.2 < jnp.mean(moved) < 0.95  # both branches are taken many times


def test_deer_solves_a_linear_system_in_one_iteration():
    fn, x0, inputs = linear_system()
    sol = solve(fn, x0, inputs, DEER())
    assert int(sol.num_iters) == 1 and bool(sol.converged)


def test_jacobi_exact_prefix_and_at_most_T_iterations():
    # x_t = x_{t-1} + u_t: information travels one step per Jacobi sweep, the worst case.
    T = 64
    fn, x0, inputs = (lambda x, u: x + u), jnp.zeros(2), jnp.ones((T, 2))
    ref = sequential(fn, x0, inputs)
    with pytest.warns(NotConvergedWarning, match="Jacobi failed after 10 iterations"):
        partial = solve(fn, x0, inputs, Jacobi(), max_iters=10)
    assert not bool(partial.converged) and int(partial.result) == MAX_ITERS
    assert jnp.max(jnp.abs(partial.states[:10] - ref[:10])) == 0.0  # the first k states exact after k
    assert jnp.max(jnp.abs(partial.states[10:] - ref[10:])) > 0.5
    full = solve(fn, x0, inputs, Jacobi())
    assert bool(full.converged) and int(full.num_iters) <= T
    assert jnp.max(jnp.abs(full.states - ref)) == 0.0


def test_chaotic_map_with_small_budget_is_not_converged_and_throw_raises():
    fn, x0, inputs = logistic_map()
    with pytest.warns(NotConvergedWarning, match="DEER failed after 5 iterations"):
        sol = solve(fn, x0, inputs, DEER(), max_iters=5)
    assert not bool(sol.converged)
    assert int(sol.result) in (MAX_ITERS, NONFINITE)
    assert "max_iters" in sol.message or "non-finite" in sol.message
    with pytest.raises(SolveError, match="DEER failed after"):
        solve(fn, x0, inputs, DEER(), max_iters=5, throw=True)


@pytest.mark.parametrize("solver", [Sequential(), Jacobi(), QuasiDEER(), DEER()], ids=repr)
def test_nan_mid_sequence_is_a_failure_not_convergence(solver):
    fn0, x0, inputs = tanh_rnn(T=300)
    flags = jnp.zeros(300).at[150].set(1.0)

    def fn(x, u):
        v, flag = u
        return jnp.where(flag > 0, jnp.nan, fn0(x, v))

    with pytest.warns(NotConvergedWarning, match="non-finite"):
        sol = solve(fn, x0, (inputs, flags), solver)
    assert not bool(sol.converged)
    assert int(sol.result) == NONFINITE
    with pytest.raises(SolveError, match="non-finite"):
        solve(fn, x0, (inputs, flags), solver, throw=True)


# 64 does not divide T (the last window is clipped to the end), 250 does; 1000 = T is the full solve.
@pytest.mark.parametrize(
    "solver, window",
    [(Jacobi(), 64), (QuasiDEER(), 250), (DEER(), 64), (DEER(), 250)],
    ids=lambda v: repr(v) if not isinstance(v, int) else str(v),
)
def test_windowed_solve_equals_full_solve(solver, window):
    fn, x0, inputs = tanh_rnn(T=1000)
    full = solve(fn, x0, inputs, solver)
    win = solve(fn, x0, inputs, solver, window=window)
    assert bool(win.converged), win.message
    assert jnp.max(jnp.abs(win.states - full.states)) <= 1e-9
    assert jnp.max(jnp.abs(win.states - sequential(fn, x0, inputs))) <= 1e-8


def test_vmap_over_a_batch_equals_each_sequence_alone():
    fn, x0, inputs = tanh_rnn(T=400)
    x0s = jnp.stack([x0, -x0, 0.5 * x0])
    us = jnp.stack([inputs, 0.5 * inputs, -inputs])
    batched = jax.vmap(lambda a, u: solve(fn, a, u, QuasiDEER()))(x0s, us)
    assert batched.states.shape == (3, 400, 8) and bool(jnp.all(batched.converged))
    for i in range(3):
        alone = solve(fn, x0s[i], us[i], QuasiDEER())
        assert jnp.max(jnp.abs(batched.states[i] - alone.states)) <= 1e-10


def test_pytree_state():
    fn0, x0, inputs = tanh_rnn(D=4, T=200)

    def fn(state, u):
        x = fn0(jnp.concatenate([state["a"], state["b"].ravel()]), u)
        return {"a": x[:2], "b": x[2:].reshape(1, 2)}

    s0 = {"a": x0[:2], "b": x0[2:].reshape(1, 2)}
    sol = solve(fn, s0, inputs, DEER())
    ref = solve(fn, s0, inputs, Sequential()).states
    assert sol.states["b"].shape == (200, 1, 2)
    assert jnp.max(jnp.abs(sol.states["a"] - ref["a"])) <= 1e-8


def test_float32_meets_its_tolerance():
    fn, x0, inputs = tanh_rnn(T=1000)
    x0, inputs = x0.astype(jnp.float32), inputs.astype(jnp.float32)
    sol = solve(fn, x0, inputs, QuasiDEER())
    assert sol.states.dtype == jnp.float32 and bool(sol.converged)
    ref = sequential(fn, x0, inputs)
    assert jnp.max(jnp.abs(sol.states - ref)) < 1e-4


def test_initial_guess_at_the_solution_needs_no_iteration():
    fn, x0, inputs = tanh_rnn(T=100)
    ref = sequential(fn, x0, inputs)
    sol = solve(fn, x0, inputs, QuasiDEER(), initial_guess=ref)
    assert int(sol.num_iters) == 0 and bool(sol.converged)


def test_damping_and_clip_still_reach_the_sequential_states():
    fn, x0, inputs = tanh_rnn(T=500)
    sol = solve(fn, x0, inputs, DEER(damping=0.6, clip=0.5))
    assert bool(sol.converged) and jnp.max(jnp.abs(sol.states - sequential(fn, x0, inputs))) <= 1e-8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"solver": "deer"}, "solver must be a solver instance"),
        ({"inputs": (jnp.ones((10, 8)), jnp.ones(9))}, "same leading axis"),
        ({"fn": lambda x, u: x[:2]}, "shaped like x0"),
        ({"window": 0}, "window"),
        ({"max_iters": 0}, "max_iters"),
        ({"atol": -1.0}, "tolerances"),
        ({"x0": jnp.ones(8, dtype=jnp.int32)}, "floating-point"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    fn, x0, inputs = tanh_rnn(T=10)
    args = {"fn": fn, "x0": x0, "inputs": inputs, "solver": DEER(), **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        solve(args.pop("fn"), args.pop("x0"), args.pop("inputs"), args.pop("solver"), **args)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: QuasiDEER(diagonal="full"), "exact"),
        (lambda: DEER(damping=1.5), "damping"),
        (lambda: DEER(clip=0.0), "clip"),
        (lambda: QuasiDEER(num_probes=0), "num_probes"),
    ],
)
def test_bad_solver_options_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("window", [None, 100])
def test_fallback_continues_sequentially_from_the_exact_prefix(window):
    fn, x0, inputs = tanh_rnn(T=600)
    ref = sequential(fn, x0, inputs)
    sol = solve(fn, x0, inputs, Jacobi(), max_iters=3, window=window, fallback="sequential")
    assert bool(sol.converged) and bool(sol.fell_back)
    assert int(sol.result) == MAX_ITERS  # the parallel part's outcome stays on record
    assert 3 <= int(sol.sequential_from) < 600
    assert jnp.max(jnp.abs(sol.states - ref)) <= 1e-8 and sol.residual <= 1e-10
    fine = solve(fn, x0, inputs, DEER(), fallback="sequential")
    assert not bool(fine.fell_back) and int(fine.sequential_from) == 600


def test_fallback_does_not_hide_a_nan_of_fn_itself():
    fn0, x0, inputs = tanh_rnn(T=200)
    flags = jnp.zeros(200).at[120].set(1.0)
    fn = lambda x, u: jnp.where(u[1] > 0, jnp.nan, fn0(x, u[0]))
    with pytest.warns(NotConvergedWarning, match="non-finite"):
        sol = solve(fn, x0, (inputs, flags), DEER(), fallback="sequential")
    assert not bool(sol.converged) and int(sol.result) == NONFINITE
    assert int(sol.sequential_from) <= 120


def test_progress_reports_every_iteration_with_its_residual():
    fn, x0, inputs = tanh_rnn(T=300)
    seen = []
    sol = solve(fn, x0, inputs, DEER(), progress=lambda it, res, s: seen.append((int(it), float(res))))
    jax.effects_barrier()
    assert [it for it, _ in seen] == list(range(int(sol.num_iters) + 1))
    assert seen[-1][1] <= 1e-10 < seen[0][1]
