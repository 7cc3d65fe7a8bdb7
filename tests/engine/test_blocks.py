"""Multiple shooting, solve(..., block=B) (engine/blocks.py, docs/convergence.md): the answer is the
sequential one, and a contracting chain with accept decisions converges in a number of block iterations
that does not grow with T. Small T, small D, float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.systems import metropolis_walk, switching_map, tanh_rnn

import parmcmc
from parmcmc.engine import (
    DEER,
    MAX_ITERS,
    NONFINITE,
    SUCCESSFUL,
    Jacobi,
    NotConvergedWarning,
    QuasiDEER,
    Sequential,
    Shooting,
    solve,
)
from parmcmc.engine.blocks import BLOCK_DEFAULT, BLOCK_MAX, BLOCK_MIN, block_size, fail_fast_budget
from parmcmc.models.builtin import eight_schools
from parmcmc.predictability import predict_block_iterations


def _sequential(fn, x0, u):
    return solve(fn, x0, u, Sequential()).states


@pytest.mark.parametrize("solver", [Jacobi(), QuasiDEER(), DEER()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("block", [16, 120])  # 16 does not divide T = 120; 120: one block
def test_block_solve_returns_the_sequential_states(solver, block):
    fn, x0, u = switching_map(T=120)
    sol = solve(fn, x0, u, solver, block=block, atol=1e-13, rtol=1e-13)
    assert bool(sol.converged) and int(sol.sequential_from) == 120
    assert sol.states.shape == (120, 3)
    assert float(jnp.max(jnp.abs(sol.states - _sequential(fn, x0, u)))) <= 1e-12
    step = jax.vmap(fn)(sol.states[:-1], jax.tree.map(lambda a: a[1:], u))
    assert float(jnp.max(jnp.abs(sol.states[1:] - step))) <= float(sol.residual) + 1e-15


def test_iterations_of_a_contracting_metropolis_chain_do_not_grow_with_T():
    # switching_map forgets its start within a few dozen steps (common noise): with B = 64 every block
    # end is right after a few block-Jacobi sweeps, whatever the number of blocks.
    iters = []
    for T in (256, 1024, 4096):
        fn, x0, u = switching_map(T=T)
        sol = solve(fn, x0, u, Jacobi(), block=64)
        assert bool(sol.converged) and float(jnp.max(jnp.abs(sol.states - _sequential(fn, x0, u)))) <= 1e-10
        iters.append(int(sol.num_iters))
    assert max(iters) <= 6 and iters[-1] <= iters[0] + 1, iters


def test_padded_steps_never_reach_fn_with_garbage():
    # fn is NaN for any input it was not given: the padding of the last block repeats the last real
    # input (and keeps the state), so nothing non-finite appears.
    fn0, x0, u = tanh_rnn(T=100)
    real = jnp.ones(100)
    fn = lambda x, ut: jnp.where(ut[1] == 1.0, fn0(x, ut[0]), jnp.nan)
    sol = solve(fn, x0, (u, real), DEER(), block=32)
    assert bool(sol.converged) and float(jnp.max(jnp.abs(sol.states - _sequential(fn, x0, (u, real))))) <= 1e-10


def test_vmap_over_chains_equals_each_chain_alone():
    fn, _, u = switching_map(T=200)
    starts = jnp.array([[2.0, 2.0, 2.0], [-1.0, 0.5, 3.0]])
    sols = jax.vmap(lambda x: solve(fn, x, u, Jacobi(), block=32))(starts)
    for c in range(2):
        assert float(jnp.max(jnp.abs(sols.states[c] - _sequential(fn, starts[c], u)))) <= 1e-10
    assert bool(jnp.all(sols.converged))


def test_fallback_reruns_the_chain_step_by_step_and_window_composes():
    fn, x0, u = switching_map(T=300)
    ref = _sequential(fn, x0, u)
    sol = solve(fn, x0, u, Jacobi(), block=16, max_iters=1, fallback="sequential")
    assert int(sol.result) == MAX_ITERS and bool(sol.fell_back) and bool(sol.converged)
    assert int(sol.sequential_from) == 0  # from the start, not the exact blocks: test_block_program.py says why
    assert float(jnp.max(jnp.abs(sol.states - ref))) <= 1e-10
    windowed = solve(fn, x0, u, DEER(), block=16, window=64)
    assert bool(windowed.converged) and float(jnp.max(jnp.abs(windowed.states - ref))) <= 1e-10


def test_a_nonfinite_chain_is_reported_not_converged():
    fn0, x0, u = tanh_rnn(T=200)
    flags = jnp.zeros(200).at[120].set(1.0)
    fn = lambda x, ut: jnp.where(ut[1] > 0, jnp.nan, fn0(x, ut[0]))
    with pytest.warns(NotConvergedWarning, match="not finite"):
        sol = solve(fn, x0, (u, flags), DEER(), block=32, fallback="sequential")
    assert not bool(sol.converged) and int(sol.result) == NONFINITE
    assert int(sol.sequential_from) <= 120


def test_progress_counts_block_iterations_and_block_is_checked():
    fn, x0, u = tanh_rnn(T=100)
    seen = []
    sol = solve(fn, x0, u, DEER(), block=25, progress=lambda it, res, s: seen.append(int(it)))
    jax.effects_barrier()
    assert seen == list(range(int(sol.num_iters) + 1))
    with pytest.raises(ValueError, match="block must be a positive integer; got 0"):
        solve(fn, x0, u, DEER(), block=0)


def test_block_size_from_the_lle():
    assert block_size(None, 2000) == BLOCK_DEFAULT
    assert block_size(0.05, 2000) == BLOCK_DEFAULT  # not contracting: no coupling time to aim at
    assert block_size(-0.275, 2000) == 93  # ln(1e11) / 0.275
    assert block_size(-0.01, 2000) == BLOCK_MAX and block_size(-5.0, 2000) == BLOCK_MIN
    assert block_size(-0.01, 100) == 100


def test_shooting_solver_is_the_block_option():
    fn, x0, u = switching_map(T=100)
    a = solve(fn, x0, u, Shooting(Jacobi(), 25))
    b = solve(fn, x0, u, Jacobi(), block=25)
    assert int(a.num_iters) == int(b.num_iters) and bool(jnp.all(a.states == b.states))
    assert Shooting() == Shooting(Jacobi(), None) and hash(Shooting()) == hash(Shooting(Jacobi()))
    with pytest.raises(TypeError, match="iterative solver"):
        Shooting(Sequential())
    with pytest.raises(ValueError, match="Shooting: block must be a positive integer; got 0"):
        Shooting(Jacobi(), 0)
    with pytest.raises(TypeError, match=r"block must be a positive integer; got 1\.5"):
        Shooting(Jacobi(), 1.5)  # type: ignore[arg-type]
    assert Shooting(Jacobi(), np.int64(8)) == Shooting(Jacobi(), 8)  # a NumPy integer is the int it holds


def test_sample_with_the_block_solve_gives_the_sequential_draws():
    # Eight schools (non-centred, NumPyro), the default jittered HMC: every DEER solve of these chains fell
    # back (issue 13); the block solve converges and returns the sequential chain, decision by decision.
    ex = eight_schools()
    kw = dict(
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        rng_key=jax.random.key(0),
        num_samples=300,
        num_warmup=150,
        num_chains=2,
        progress_bar=False,
    )
    # 10 blocks: sample()'s fail-fast budget (depth T / 2: 3 iterations) would hand over; here the solve runs on.
    par = parmcmc.sample(ex.model, parallel=True, solver=parmcmc.Shooting(Jacobi(), 32), max_iters=9, patience=9, **kw)
    seq = parmcmc.sample(ex.model, parallel=False, **kw)
    for name in ("mu", "tau", "theta"):
        assert np.max(np.abs(par.posterior[name].values - seq.posterior[name].values)) <= 1e-8
    stats = par["solver_stats"]
    assert bool(stats["solver_converged"].all()) and not bool(stats["solver_fell_back"].any())
    assert int(stats["solver_iterations"].max()) < 300 // 32


def test_predicted_block_iterations():
    # ln(1e11) / (0.1 x 64) = 3.96: four sweeps; the pin caps it at the number of blocks.
    assert predict_block_iterations(-0.1, 64, 2000) == 4.0
    assert predict_block_iterations(-0.1, 256, 2000) == 1.0
    assert predict_block_iterations(-0.001, 64, 200) == 4.0  # ceil(200 / 64) blocks
    assert predict_block_iterations(float("nan"), 64, 2000) == predict_block_iterations(0.1, 64, 2000) == 32.0


def test_sample_picks_the_block_solve_from_512_draws():
    from types import SimpleNamespace

    from parmcmc.api import pick_solver

    template = SimpleNamespace(dim=10, layout=SimpleNamespace(dtype=jnp.zeros(()).dtype))  # a 10-D sampler
    prepared = SimpleNamespace(positions=jnp.zeros((2, 10)), template=template)  # two chains
    settings = lambda T: SimpleNamespace(parallel=True, solver=None, num_samples=T, num_chains=2, mesh=None)
    assert pick_solver(settings(2000), prepared) == Shooting(DEER(), 32)  # pyright: ignore[reportArgumentType]
    assert pick_solver(settings(300), prepared) == DEER()  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("a", [1.0, 0.8], ids=["neutral", "contracting"])
def test_fail_fast_budget_in_blocks_stops_a_chain_that_does_not_couple(a):
    fn, x0, u = metropolis_walk(a)
    max_iters, patience = fail_fast_budget(640, 16)  # n = 40 blocks: depth T / 2 at most, checked every 9
    assert (max_iters, patience) == (18, 9)
    sol = solve(fn, x0, u, DEER(), block=16, max_iters=max_iters, patience=patience, fallback="sequential")
    assert bool(sol.converged) and float(jnp.max(jnp.abs(sol.states - _sequential(fn, x0, u)))) <= 1e-12
    free = solve(fn, x0, u, DEER(), block=16)  # no budget: all it takes
    if a == 1.0:  # the pin's one block per iteration: stopped at the first checkpoint instead of running 40
        assert int(free.num_iters) >= 30 and bool(free.converged)
        assert int(sol.num_iters) == patience and bool(sol.fell_back) and int(sol.result) == MAX_ITERS
    else:  # a chain that couples is left alone
        assert int(sol.num_iters) == int(free.num_iters) <= 6 and not bool(sol.fell_back)


def test_fail_fast_in_blocks_stops_each_chain_on_its_own_under_vmap():
    max_iters, patience = fail_fast_budget(640, 16)

    def one(a):
        fn, x0, u = metropolis_walk(a)
        return solve(fn, x0, u, DEER(), block=16, max_iters=max_iters, patience=patience, fallback="sequential")

    sols = jax.vmap(one)(jnp.array([1.0, 0.8]))
    assert np.asarray(sols.fell_back).tolist() == [True, False] and bool(jnp.all(sols.converged))
    assert int(sols.num_iters[0]) == patience and int(sols.num_iters[1]) == int(one(0.8).num_iters)
    for c, a in enumerate((1.0, 0.8)):
        fn, x0, u = metropolis_walk(a)
        assert float(jnp.max(jnp.abs(sols.states[c] - _sequential(fn, x0, u)))) <= 1e-12


def test_a_block_solve_still_coupling_at_its_budget_goes_on_and_converges():
    # A weakly contracting Metropolis chain whose blocks couple a few at a time (21 block iterations of 40).
    # The old fixed budget (18 = n // 2 - 2) cut it off and fell back; past its budget its exact prefix
    # still gains more than 1.5 blocks per iteration (its largest jump left out), so now it goes on.
    fn, x0, u = metropolis_walk(0.9, seed=5)
    budget, patience = fail_fast_budget(640, 16)
    free = solve(fn, x0, u, DEER(), block=16)
    assert int(free.num_iters) == 21 > budget and bool(free.converged)
    fixed = solve(fn, x0, u, DEER(), block=16, max_iters=budget, patience=patience, fallback="sequential")
    assert int(fixed.num_iters) == budget and bool(fixed.fell_back)
    sol = solve(fn, x0, u, DEER(), block=16, max_iters=40, budget=budget, patience=patience, fallback="sequential")
    assert int(sol.num_iters) == 21 and not bool(sol.fell_back) and int(sol.result) == SUCCESSFUL
    assert float(jnp.max(jnp.abs(sol.states - _sequential(fn, x0, u)))) <= 1e-12
    # the user's max_iters stays a hard cap
    capped = solve(fn, x0, u, DEER(), block=16, max_iters=19, budget=budget, patience=patience, fallback="sequential")
    assert int(capped.num_iters) == 19 and bool(capped.fell_back)


@pytest.mark.parametrize("a", [1.0, 0.95])
def test_a_block_solve_that_gains_only_the_pinned_block_still_stops_by_its_budget(a):
    fn, x0, u = metropolis_walk(a, D=4, seed=5)  # one block per iteration (a = 0.95: still 40 block iterations)
    budget, patience = fail_fast_budget(640, 16)
    old = solve(fn, x0, u, DEER(), block=16, max_iters=budget, patience=patience, fallback="sequential")
    sol = solve(fn, x0, u, DEER(), block=16, max_iters=40, budget=budget, patience=patience, fallback="sequential")
    assert bool(sol.fell_back) and int(sol.num_iters) <= int(old.num_iters) <= budget
    assert float(jnp.max(jnp.abs(sol.states - _sequential(fn, x0, u)))) <= 1e-12


def test_budget_needs_patience():
    fn, x0, u = metropolis_walk(0.8)
    with pytest.raises(ValueError, match="budget=5 needs patience"):
        solve(fn, x0, u, DEER(), block=16, budget=5)
