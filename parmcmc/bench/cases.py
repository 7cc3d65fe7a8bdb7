"""Benchmark cases: a parallel run_chain against BlackJAX's sequential run_inference_algorithm.

Each case is measured in one process, on one device: the parallel solve (jitted, warmed up, median of
`repeats`), BlackJAX's sequential chain for the same keys (jitted, warmed up, median), the same
sequential chain on the CPU (the alternative a user has for a cheap model), the largest difference
between the chains, the accept decisions that differ, XLA's working memory and the compile times.
"""

import functools
import statistics
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

import blackjax
import blackjax.util
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from parmcmc.bench.timing import time_jitted
from parmcmc.chain import run_chain
from parmcmc.engine import DEER, AbstractSolver, QuasiDEER, solve
from parmcmc.engine.solvers import shift
from parmcmc.samplers import HMC, MALA


class Case(NamedTuple):
    name: str
    logdensity_fn: Callable
    dim: int
    num_steps: int
    num_chains: int
    sampler: str  # "mala" | "hmc"
    step_size: float
    solver: AbstractSolver
    init: Callable  # key -> (num_chains, dim) starting positions
    num_integration_steps: int = 8
    dtype: DTypeLike = jnp.float32
    max_iters: int | None = None


def banana_logdensity(x):
    """TFP inference gym's banana: x1 ~ N(0, 10^2), x2 | x1 ~ N(0.03 (x1^2 - 100), 1)."""
    return -0.5 * (x[0] / 10.0) ** 2 - 0.5 * (x[1] - 0.03 * (x[0] ** 2 - 100.0)) ** 2


def german_credit_like(seed=0, num_data=1000, num_features=24, dtype=jnp.float32):
    """Synthetic data shaped like the German credit set: standardised features plus an intercept."""
    kx, kw, ky = jax.random.split(jax.random.key(seed), 3)
    X = jax.random.normal(kx, (num_data, num_features))
    X = jnp.concatenate([jnp.ones((num_data, 1)), X], axis=1).astype(dtype)
    w = 0.5 * jax.random.normal(kw, (num_features + 1,))
    y = (jax.random.uniform(ky, (num_data,)) < jax.nn.sigmoid(X @ w.astype(dtype))).astype(dtype)

    def logdensity(beta):
        z = X @ beta
        return jnp.sum(y * z - jax.nn.softplus(z)) - 0.5 * jnp.sum(beta**2)

    return logdensity


def ill_conditioned_gaussian(dim=100, cond=1e3):
    scales = jnp.logspace(0.0, 0.5 * np.log10(cond), dim)
    return lambda x: -0.5 * jnp.sum((x / scales) ** 2), scales


def _sampler(case: Case):
    if case.sampler == "mala":
        return MALA(case.logdensity_fn, case.step_size)
    return HMC(case.logdensity_fn, case.step_size, case.num_integration_steps)


def _blackjax_algorithm(case: Case):
    if case.sampler == "mala":
        return blackjax.mala(case.logdensity_fn, case.step_size)
    return blackjax.hmc(case.logdensity_fn, case.step_size, jnp.ones(case.dim, case.dtype), case.num_integration_steps)


def run_case(
    case: Case, solver=None, repeats: int = 3, seed: int = 0, cpu_sequential: bool = True, cost: bool = True
) -> dict:
    """Measure one case (module docstring); `cost=False` leaves out the iteration cost and the solve's compile time.

    Those take four more compilations.
    """
    solver = case.solver if solver is None else solver
    key_init, key_run = jax.random.split(jax.random.key(seed))
    x0 = case.init(key_init).astype(case.dtype)
    keys = jax.random.split(key_run, case.num_chains)
    sampler = _sampler(case).bind(x0[0])
    kwargs = {} if case.max_iters is None else {"max_iters": case.max_iters}

    def parallel(keys, x0):
        return jax.vmap(lambda k, x: run_chain(sampler, x, k, case.num_steps, solver=solver, **kwargs))(keys, x0)

    algo = _blackjax_algorithm(case)

    def sequential(keys, x0):
        def one(k, x):
            _, (states, info) = blackjax.util.run_inference_algorithm(
                k,
                algo,
                case.num_steps,
                initial_state=algo.init(x),  # pyright: ignore[reportCallIssue] (MALA/HMC's init takes no key)
            )
            return states.position, info.is_accepted

        return jax.vmap(one)(keys, x0)

    par, t_par = time_jitted(parallel, keys, x0, repeats=repeats, light=True)  # as sample() compiles it
    solve_cpu = solve_compile_cpu_s(sampler, solver, keys, x0, case.num_steps, **kwargs) if cost else float("nan")
    (seq_pos, seq_acc), t_seq = time_jitted(sequential, keys, x0, repeats=repeats)
    row = dict(
        case=case.name,
        sampler=case.sampler.upper(),
        solver=repr(solver),
        D=case.dim,
        T=case.num_steps,
        chains=case.num_chains,
        dtype=jnp.dtype(case.dtype).name,
        device=str(jax.devices()[0]),
        newton_iterations=int(np.max(par.num_iters)),
        converged=bool(np.all(par.converged)),
        fell_back=bool(np.any(par.fell_back)),
        residual=float(np.max(par.residual)),
        parallel_s=t_par.median_s,
        parallel_compile_s=t_par.compile_s,
        parallel_compile_cpu_s=t_par.compile_cpu_s,
        solve_compile_cpu_s=solve_cpu,
        parallel_temp_MiB=t_par.temp_bytes / 2**20,
        sequential_s=t_seq.median_s,
        sequential_compile_s=t_seq.compile_s,
        speedup_vs_sequential_same_device=t_seq.median_s / t_par.median_s,
        max_abs_diff=float(jnp.max(jnp.abs(par.positions - seq_pos))),
        accept_decisions_differing=int(jnp.sum(par.stats.is_accepted != seq_acc)),
    )
    floor = iteration_floor(sampler, solver, keys, x0, case.num_steps, repeats) if cost else None
    if floor is not None:
        row["iteration_s"] = t_par.median_s / max(1, row["newton_iterations"])
        row["floor_s"] = floor
        row.update(iteration_cost(sampler, solver, keys, x0, case.num_steps))
    if cpu_sequential:
        cpu = jax.devices("cpu")[0]
        with jax.default_device(cpu):
            args = jax.device_put((keys, x0), cpu)
            _, t_cpu = time_jitted(sequential, *args, repeats=repeats)
        row["sequential_cpu_s"] = t_cpu.median_s
        row["speedup_vs_sequential_cpu"] = t_cpu.median_s / t_par.median_s
    return row


def solve_compile_cpu_s(sampler, solver, keys, x0, num_steps: int, **solve_kwargs) -> float:
    """CPU seconds to trace, lower and compile the solve alone, as the parallel program runs it (vmapped over chains).

    The parallel program's compile (`parallel_compile_cpu_s`) adds the noise schedule before the solve and the
    statistics and exactness pass after it.
    """
    from parmcmc.jitcache import compiler_options

    U = jax.jit(jax.vmap(lambda k: sampler.noise(k, num_steps)))(keys)

    def solve_all(U, x0):
        return jax.vmap(lambda u, x: solve(sampler.step, x, u, solver, **solve_kwargs))(U, x0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unconverged solve's warning is not what is measured
        c0 = time.process_time()
        jax.jit(solve_all).lower(U, x0).compile(compiler_options((U, x0), light=True))  # as sample() compiles it
        return time.process_time() - c0


def iteration_floor(sampler, solver, keys, x0, num_steps: int, repeats: int = 3) -> float | None:
    """The floor of one Newton iteration over all chains.

    Seconds of one batched evaluation of f and its Jacobian approximation at all T states plus one scan of the
    linear system (each jitted alone, median of `repeats`). None for solvers that do not solve an LDS exactly (ELK's
    Kalman smoother).

    `iteration_s / floor_s` (parallel seconds / Newton iterations over this floor) was the bench's first cost
    ratio; it counts the run's fixed costs and, under load, a slow multi-threaded scan: see iteration_cost.
    """
    if not hasattr(solver, "solve_lds"):
        return None

    def states_and_noise(k, x):
        return jnp.broadcast_to(x, (num_steps, *x.shape)), sampler.noise(k, num_steps)

    X, U = jax.jit(jax.vmap(states_and_noise))(keys, x0)

    def linearize(X, U, x0):
        one = lambda X, U, x: solver.linearize(sampler.step, shift(X, x), U, solver.init(x, num_steps))
        return jax.vmap(one)(X, U, x0)

    lin, t_lin = time_jitted(linearize, X, U, x0, repeats=repeats)

    def scan(lin, X, x0):
        return jax.vmap(lambda lin, X, x: solver.solve_lds(lin, shift(X, x), x))(lin, X, x0)

    _, t_scan = time_jitted(scan, lin, X, x0, repeats=repeats)
    return t_lin.median_s + t_scan.median_s


def iteration_cost(sampler, solver, keys, x0, num_steps: int, iters=(4, 24), repeats: int = 9) -> dict:
    """One Newton iteration of `solve` against its floor, both measured as marginal costs inside a loop.

    marginal_iteration_s: (seconds of a solve run for iters[1] iterations - for iters[0]) / the difference
        in iterations taken (an unreachable tolerance keeps it iterating), all chains vmapped: the guards,
        checks and bookkeeping of the driver included, its fixed costs (first evaluation, setup) not.
    loop_floor_s: the same for a bare Newton loop, `x <- solve_lds(linearize(x))`, nothing else.
    cost_ratio: their ratio (the goal is <= 1.5). The four programs run in turn, `repeats` times, in one
        process, so that a loaded machine slows all alike; each program's time is its fastest run (load only ever
        adds time, so the minimum is the estimate a shared machine disturbs least; medians moved the ratio by
        +-0.5 between runs at load 20). Jitted alone, an associative scan runs multi-threaded and under load can be
        10x slower than inside a loop (docs/performance.md), so `floor_s` is not used here.
    cost_ratio_median: the same ratio from medians, and cost_ratio_rounds the ratios of each round (quartiles):
        how far the figure can be trusted on that machine.
    """
    U = jax.jit(jax.vmap(lambda k: sampler.noise(k, num_steps)))(keys)

    def solve_k(k):
        one = lambda u, x: solve(sampler.step, x, u, solver, max_iters=k, atol=0.0, rtol=1e-300)
        return lambda U, x0: jax.vmap(lambda u, x: one(u, x).num_iters)(U, x0)

    def floor(U, x0, k):  # k traced: one program, a while loop like the solve's
        def newton(u, x):
            def body(_, X):
                x_prev = shift(X, x)
                return solver.solve_lds(solver.linearize(sampler.step, x_prev, u, solver.init(x, num_steps)), x_prev, x)

            return jax.lax.fori_loop(0, k, body, jnp.broadcast_to(x, (num_steps, *x.shape)))

        return jax.vmap(newton)(U, x0)

    progs, taken = {}, {}
    floor_prog = jax.jit(floor).lower(U, x0, 0).compile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the capped solves report that they did not converge
        for k in iters:
            solve_prog = jax.jit(solve_k(k)).lower(U, x0).compile()
            progs["solve", k] = functools.partial(solve_prog, U, x0)
            progs["floor", k] = functools.partial(floor_prog, U, x0, k)
            taken["solve", k] = int(np.max(progs["solve", k]()))
            taken["floor", k] = k
            jax.block_until_ready(progs["floor", k]())
        runs = {key: [] for key in progs}
        for _ in range(repeats):
            for key, prog in progs.items():
                t0 = time.perf_counter()
                jax.block_until_ready(prog())
                runs[key].append(time.perf_counter() - t0)
    steps = {name: max(1, taken[name, iters[1]] - taken[name, iters[0]]) for name in ("solve", "floor")}

    def ratio(t):  # t: (name, k) -> seconds
        marginal = {name: (t[name, iters[1]] - t[name, iters[0]]) / steps[name] for name in steps}
        return marginal, marginal["solve"] / marginal["floor"]

    marginal, cost_ratio = ratio({key: min(v) for key, v in runs.items()})
    _, median_ratio = ratio({key: statistics.median(v) for key, v in runs.items()})
    rounds = sorted(ratio({key: v[r] for key, v in runs.items()})[1] for r in range(repeats))
    return dict(
        marginal_iteration_s=marginal["solve"],
        loop_floor_s=marginal["floor"],
        cost_ratio=cost_ratio,
        cost_ratio_median=median_ratio,
        cost_ratio_rounds=tuple(float(np.quantile(rounds, q)) for q in (0.25, 0.5, 0.75)),
        marginal_iterations=taken["solve", iters[1]] - taken["solve", iters[0]],  # 0: the cap was not reached
    )


def banana(num_steps=100_000, solver=None) -> Case:
    return Case(
        "banana (TFP gym)",
        banana_logdensity,
        2,
        num_steps,
        1,
        "hmc",
        0.5,
        DEER(damping=0.55, clip=1.0) if solver is None else solver,
        lambda k: 10.0 * jax.random.normal(k, (1, 2)),
        num_integration_steps=8,
    )


def logistic(num_steps=16_384, solver=None) -> Case:
    return Case(
        "logistic regression (German-credit shape)",
        german_credit_like(),
        25,
        num_steps,
        4,
        "mala",
        0.0015,
        QuasiDEER() if solver is None else solver,
        lambda k: jnp.zeros((4, 25)),
    )


def gaussian_100d(num_steps=10_000, solver=None) -> Case:
    logdensity, scales = ill_conditioned_gaussian()
    return Case(
        "ill-conditioned Gaussian",
        logdensity,
        100,
        num_steps,
        1,
        "mala",
        0.5,
        QuasiDEER() if solver is None else solver,
        lambda k: scales * jax.random.normal(k, (1, 100)),
    )
