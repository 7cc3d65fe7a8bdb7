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
