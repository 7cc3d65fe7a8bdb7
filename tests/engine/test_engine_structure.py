"""The engine's result codes and solver interface: one RESULTS enumeration that carries its
messages and works with the int32 codes of a Solution, dispatch on `solver.parallel`, and ELK's
linearizer built once."""

import jax.numpy as jnp
import numpy as np
import pytest

from parmcmc.engine import (
    DEER,
    ELK,
    MAX_ITERS,
    NONFINITE,
    RESULTS,
    SUCCESSFUL,
    AbstractELK,
    AbstractIterativeSolver,
    Jacobi,
    NotConvergedWarning,
    Picard,
    QuasiDEER,
    QuasiELK,
    Sequential,
    solve,
)
from parmcmc.engine.results import failure_message


def test_results_are_the_int32_codes_and_carry_their_messages():
    assert [int(r) for r in RESULTS] == [0, 1, 2, 3]
    assert (RESULTS.successful, RESULTS.max_iters, RESULTS.nonfinite) == (SUCCESSFUL, MAX_ITERS, NONFINITE)
    codes = jnp.where(jnp.array([True, False]), RESULTS.successful, RESULTS.nonfinite).astype(jnp.int32)
    assert (
        codes.dtype == jnp.int32
        and int(codes[0]) == RESULTS.successful
        and RESULTS(int(codes[1])).label == ("non-finite")
    )
    assert RESULTS.successful.message == "converged" and "max_iters" in RESULTS.max_iters.message


def test_solution_message_and_failure_message_use_results():
    fn = lambda x, u: 0.5 * x + u
    inputs = jnp.ones((16, 2))
    with pytest.warns(NotConvergedWarning, match="Jacobi failed after 2 iterations"):
        sol = solve(fn, jnp.zeros(2), inputs, Jacobi(), max_iters=2)
    assert int(sol.result) == RESULTS.max_iters and sol.message == RESULTS.max_iters.message
    msg = failure_message(Jacobi(), sol.converged, sol.result, sol.num_iters, sol.residual)
    assert RESULTS.max_iters.message in msg and "Jacobi" in msg
    batch = sol._replace(result=np.array([RESULTS.max_iters, RESULTS.successful, RESULTS.max_iters], np.int32))
    assert batch.message == f"{RESULTS.successful.message}; {RESULTS.max_iters.message}"


@pytest.mark.parametrize("solver", [Jacobi(), Picard(), QuasiDEER(), DEER(), ELK(), QuasiELK()])
def test_every_parallel_solver_is_iterative(solver):
    assert solver.parallel and isinstance(solver, AbstractIterativeSolver)


def test_sequential_is_not_iterative():
    assert not Sequential.parallel
    assert not isinstance(Sequential(), AbstractIterativeSolver) and not hasattr(Sequential(), "step")


def test_elk_builds_its_linearizer_once_and_the_abstract_class_has_no_fields():
    assert not hasattr(AbstractELK, "__dataclass_fields__")
    elk, quasi = ELK(), QuasiELK(diagonal="hutchinson", num_probes=2, seed=3)
    assert elk.linearizer is elk.linearizer and elk.linearizer == DEER()
    assert quasi.linearizer == QuasiDEER(diagonal="hutchinson", num_probes=2, seed=3)
    assert ELK() == elk and hash(ELK()) == hash(elk) and "linearizer" not in repr(quasi)


def test_solution_carries_its_statistics_in_one_mapping_and_chain_result_holds_the_solution():
    """As optimistix's Solution: value, result code and a `stats` mapping; the old field names read from it.
    A ChainResult holds the Solution (its states only once, as the positions) with the exactness figures."""
    import jax

    from parmcmc.chain import run_chain
    from parmcmc.samplers import MALA

    fn = lambda x, u: 0.5 * x + u
    sol = solve(fn, jnp.zeros(2), jnp.ones((16, 2)), DEER())
    assert set(sol.stats) == {"num_iters", "residual", "sequential_from", "fell_back"}
    assert sol.num_iters is sol.stats["num_iters"] and sol.residual is sol.stats["residual"]
    assert int(sol.sequential_from) == 16 and not bool(sol.fell_back) and bool(sol.converged)
    chain = run_chain(MALA(lambda x: -0.5 * jnp.sum(x**2), 0.5), jnp.zeros(2), jax.random.key(0), 20)
    assert chain.solution.states is None and chain.positions.shape == (20, 2)
    assert set(chain.solution.stats) >= {"num_iters", "residual", "near_threshold", "lle"}
    assert chain.num_iters is chain.solution.stats["num_iters"] and chain.converged is chain.solution.converged
    assert int(chain.near_threshold) == 0 and bool(np.isfinite(chain.lle))
