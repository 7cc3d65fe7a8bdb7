"""The driver's program: where the guess is linearised, and that doing it inside the loop changes no answer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.hlo import while_body_kernels

from parmcmc.engine import (
    DEER,
    ELK,
    NONFINITE,
    SUCCESSFUL,
    Jacobi,
    NotConvergedWarning,
    Picard,
    QuasiDEER,
    Sequential,
    solve,
)


def step(x, u):
    return jnp.sinh(0.3 * x) + u  # sinh: a primitive that only the step map uses


X0, INPUTS = jnp.zeros(3), 0.1 * jnp.ones((50, 3))


@pytest.mark.parametrize(
    ("solver", "copies"), [(Jacobi(), 1), (QuasiDEER(), 1), (DEER(), 1), (ELK(), 2), (Picard(), 2)], ids=repr
)
def test_the_solves_that_start_from_the_guess_in_their_loop_hold_one_copy_of_the_step_map(solver, copies):
    # Jacobi, QuasiDEER and DEER linearise the guess in the loop's own step (iteration -1); ELK's trust region and
    # Picard's cumulative sum keep a linearisation before the loop: a second compiled copy of the step map.
    program = str(jax.make_jaxpr(lambda x0, u: solve(step, x0, u, solver).states)(X0, INPUTS))
    assert program.count("sinh") == copies


@pytest.mark.parametrize("solver", [Jacobi(), QuasiDEER(), DEER()], ids=repr)
def test_iteration_minus_one_only_linearises_and_checks_the_guess(solver):
    exact = solve(step, X0, INPUTS, Sequential()).states
    calls = []
    sol = solve(step, X0, INPUTS, solver, initial_guess=exact, progress=lambda it, r, s: calls.append(int(it)))
    assert bool(sol.converged) and int(sol.num_iters) == 0 and int(sol.result) == SUCCESSFUL
    assert np.array_equal(np.asarray(sol.states), np.asarray(exact))  # the guess itself, not a step from it
    assert calls == [0]  # the check of iteration 0 reports as the check before the loop did

    sol = solve(step, X0, INPUTS, solver)
    assert bool(sol.converged) and float(jnp.max(jnp.abs(sol.states - exact))) <= 1e-10

    bad_guess = exact.at[7].set(jnp.nan)
    with pytest.raises(ValueError, match="initial_guess holds NaN or inf"):  # refused by name when it can be seen
        solve(step, X0, INPUTS, solver, initial_guess=bad_guess)
    # Under jit the guess is a tracer and reaches the loop: iteration -1 finds it non-finite and stops there.
    with pytest.warns(NotConvergedWarning, match="after 0 iterations"):
        sol = jax.jit(lambda g: solve(step, X0, INPUTS, solver, initial_guess=g))(bad_guess)
        sol = jax.block_until_ready(sol)
    assert int(sol.result) == NONFINITE and int(sol.num_iters) == 0 and not bool(sol.converged)


def _loop_body(fn, *args):
    """The kernels of the largest while-loop body of fn's optimised program."""
    return max(while_body_kernels(jax.jit(fn).lower(*args).compile().as_text()), key=len)


@pytest.mark.parametrize("solver", [QuasiDEER(), DEER()], ids=repr)
def test_the_guard_and_the_check_make_one_pass_over_the_step_and_copy_no_carried_states(solver):
    # One iteration's kernels on a CPU: the guard's finiteness test and the check (tolerance, residual, first
    # unconverged row) are one reduction over the T x D arrays; the carried states and f are never copied; the rest
    # of the driver (pin, selects, bookkeeping) is a bounded number of small kernels beside the bare Newton step.
    T, D = 256, 8
    x0, u = jnp.zeros((1, D)), 0.1 * jnp.ones((1, T, D))
    body = _loop_body(jax.vmap(lambda x, v: solve(step, x, v, solver, max_iters=3).num_iters), x0, u)

    def newton(x, v):
        def one(_, X):
            x_prev = jnp.concatenate([x[None], X[:-1]])
            return solver.solve_lds(solver.linearize(step, x_prev, v, None), x_prev, x)

        return jax.lax.fori_loop(0, 3, one, jnp.broadcast_to(x, (T, D)))

    floor = _loop_body(jax.vmap(newton), x0, u)
    assert sum(r >= T * D for k in body for r in k.reduces) == 1  # main's driver had 4 (the guard's 2, the check's 2)
    assert not [k for k in body if k.opcode == "copy" and k.elements >= T * D]
    assert len(body) - len(floor) <= 20  # 23 on main
