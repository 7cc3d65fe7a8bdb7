"""A solve's program: how many copies of the step map it compiles, and that the block fallback's figures hold."""

import jax
import jax.numpy as jnp
import pytest
from helpers.systems import switching_map

from parmcmc.engine import DEER, MAX_ITERS, Jacobi, NotConvergedWarning, QuasiDEER, Sequential, solve


def step(x, u):
    return jnp.sinh(0.3 * x) + u  # sinh: a primitive that only the step map uses


X0, INPUTS = jnp.zeros(3), 0.1 * jnp.ones((50, 3))


@pytest.mark.parametrize("solver", [Jacobi(), QuasiDEER(), DEER()], ids=repr)
def test_the_block_fallback_adds_one_copy_of_the_step_map_not_two(solver):
    # The loop's linearisation and the final pass hold one copy each; the fallback's sequential continuation one
    # more: it stores the chain's states, and the final pass's own steps, taken from them, are their check.
    count = lambda fallback: str(
        jax.make_jaxpr(lambda x0, u: solve(step, x0, u, solver, block=8, fallback=fallback).states)(X0, INPUTS)
    ).count("sinh")
    assert count(None) == 2
    assert count("sequential") == 3


def test_after_a_block_fallback_the_figures_are_those_of_the_continued_chain():
    fn, x0, u = switching_map(T=300)
    ref = solve(fn, x0, u, Sequential()).states
    sol = solve(fn, x0, u, Jacobi(), block=16, max_iters=1, fallback="sequential")
    assert bool(sol.fell_back) and bool(sol.converged) and int(sol.result) == MAX_ITERS
    assert float(jnp.max(jnp.abs(sol.states - ref))) <= 1e-10
    # The residual is the continued block ends' (within tolerance), not the failed solve's.
    assert 0.0 <= float(sol.residual) <= 1e-10
    with pytest.warns(NotConvergedWarning, match="after 1 iterations"):
        unfinished = solve(fn, x0, u, Jacobi(), block=16, max_iters=1)
    assert not bool(unfinished.converged) and float(unfinished.residual) > 1e-10


def looping_step(x, u):  # a while loop with a traced count, as HMC's trajectory has
    count = jnp.ceil(3 * u[0] ** 2 + 1).astype(jnp.int32)
    return jax.lax.while_loop(lambda c: c[0] < count, lambda c: (c[0] + 1, jnp.sinh(0.3 * c[1]) + u), (0, x))[1]


@pytest.mark.parametrize("solver", [QuasiDEER(), DEER()], ids=repr)
def test_a_jacobian_of_a_step_with_a_while_loop_holds_one_copy_of_it(solver):
    # jax.linearize cannot split a while loop into value and tangent parts: it compiled the loop twice (the value,
    # then value and tangents together). One vmapped jvp per column computes the value alongside, unbatched.
    program = str(jax.make_jaxpr(lambda x0, u: solve(looping_step, x0, u, solver).states)(X0, INPUTS))
    assert program.count("sinh") == 1
    sol = solve(looping_step, X0, INPUTS, solver)
    assert bool(sol.converged)
    assert float(jnp.max(jnp.abs(sol.states - solve(looping_step, X0, INPUTS, Sequential()).states))) <= 1e-12


def observing(x, c, u):
    """A step observed: the step itself, a count of the block's steps so far, and a figure of each step."""
    return step(x, u), c + 1, {"sum": jnp.sum(x) + c, "first": x[0]}


@pytest.mark.parametrize("solver", [Jacobi(), DEER()], ids=repr)
def test_the_final_pass_of_a_block_solve_runs_the_observer_in_place_of_the_step(solver):
    block, c0 = 8, jnp.zeros(())
    ref = solve(step, X0, INPUTS, Sequential()).states
    sol = solve(step, X0, INPUTS, solver, block=block, observe=(observing, c0))
    assert float(jnp.max(jnp.abs(sol.states - ref))) <= 1e-12
    previous = jnp.concatenate([X0[None], ref[:-1]])
    count = jnp.arange(INPUTS.shape[0]) % block  # the carry starts at c0 in every block
    observed = sol.stats["observed"]
    assert observed["sum"].shape == (INPUTS.shape[0],)  # the padded steps of the last block are cut off
    assert float(jnp.max(jnp.abs(observed["sum"] - (jnp.sum(previous, axis=1) + count)))) <= 1e-12
    assert float(jnp.max(jnp.abs(observed["first"] - previous[:, 0]))) <= 1e-12
    # The observer takes the final pass's place: no copy of the step more than without it.
    program = lambda **kw: str(
        jax.make_jaxpr(lambda x0, u: solve(step, x0, u, solver, block=block, **kw).states)(X0, INPUTS)
    )
    assert program(observe=(observing, c0)).count("sinh") == program().count("sinh") == 2


def test_observe_is_refused_where_there_is_no_final_pass_or_it_does_not_take_a_step():
    with pytest.raises(ValueError, match="observe= is run by the final pass of a block solve"):
        solve(step, X0, INPUTS, DEER(), observe=(observing, jnp.zeros(())))
    with pytest.raises(ValueError, match="x_next shaped like x0 and c_next like c0"):
        solve(step, X0, INPUTS, DEER(), block=8, observe=(lambda x, c, u: (x[:2], c, x), jnp.zeros(())))
    with pytest.raises(TypeError, match=r"observe must be a pair \(g, c0\)"):
        solve(step, X0, INPUTS, DEER(), block=8, observe=observing)


def test_an_observed_block_solve_that_falls_back_returns_the_continued_chain_and_its_figures():
    # T = 300 is not a multiple of 16: the last block is padded, and the check of the continued block ends reads the
    # observed pass's states at them.
    fn, x0, u = switching_map(T=300)
    ref = solve(fn, x0, u, Sequential()).states
    g = lambda x, c, u: (fn(x, u), c + 1, jnp.sum(x) + c)
    sol = solve(fn, x0, u, Jacobi(), block=16, max_iters=1, fallback="sequential", observe=(g, jnp.zeros(())))
    assert bool(sol.fell_back) and bool(sol.converged) and 0.0 <= float(sol.residual) <= 1e-10
    assert float(jnp.max(jnp.abs(sol.states - ref))) <= 1e-10
    previous = jnp.concatenate([x0[None], ref[:-1]])
    want = jnp.sum(previous, axis=tuple(range(1, previous.ndim))) + jnp.arange(300) % 16
    assert sol.stats["observed"].shape == (300,)
    assert float(jnp.max(jnp.abs(sol.stats["observed"] - want))) <= 1e-9


def chaotic(x, u):
    return 3.9 * x * (1.0 - x) + 0.0 * u  # the logistic map: an error grows ~1.7x per step (LLE ~ +0.5)


@pytest.mark.parametrize("solver", [Jacobi(), DEER()], ids=repr)
def test_a_chaotic_block_fallback_returns_one_chain_every_step_checked(solver):
    # The observer's next state differs from fn's by one rounding, as two compiled programs' may: over a 32-step
    # block the logistic map grows it ~1e7-fold. Rerun from its start, a block ended far from the end it was
    # given (a jump in the chain, reported as not converged); taken from the stored states, every step is one
    # step of the map, checked, and the observer sees the very states returned.
    x0, u = jnp.array([0.3, 0.7]), jnp.zeros((300, 2))
    rounded = lambda x, c, u: (chaotic(x, u) * (1.0 + 2.0**-52), c, x[0])
    sol = solve(chaotic, x0, u, solver, block=32, max_iters=2, fallback="sequential", observe=(rounded, jnp.zeros(())))
    assert bool(sol.fell_back) and bool(sol.converged) and int(sol.sequential_from) == 0
    assert float(sol.residual) <= 1e-14  # one step's rounding, not a block's growth of it
    states = sol.states
    previous = jnp.concatenate([x0[None], states[:-1]])
    assert float(jnp.max(jnp.abs(states - jax.vmap(chaotic)(previous, u)))) <= 1e-14
    assert float(jnp.max(jnp.abs(sol.stats["observed"] - previous[:, 0]))) == 0.0
    ref = solve(chaotic, x0, u, Sequential()).states
    assert float(jnp.max(jnp.abs(ref[:20] - states[:20]))) <= 1e-12  # the sequential chain (as long as it is
    # not yet chaotic, i.e. until its first rounding grew; the rest is a valid chain of the same map)
