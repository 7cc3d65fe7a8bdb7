"""Newton iterations of DEER (a grid of damping and clipping settings) and ELK on the banana at T = 100k.

Case 1 of the benchmarks: HMC on the banana, float32, one chain. Results: docs/benchmarks.md.

    ./dev.sh bench banana_damping [T]

Each row compares the parallel chain with the sequential one (largest difference, accept decisions
that differ). Budget 400 iterations per solve; about two minutes on a 2-core CPU.
"""

import sys
import time

import jax
import jax.numpy as jnp

import parmcmc
from parmcmc.bench import cases
from parmcmc.chain import run_chain

SETTINGS = [(0.4, 1.0), (0.55, 1.0), (0.7, 1.0), (0.8, 1.0), (0.9, 1.0), (1.0, 1.0), (0.7, 0.5), (1.0, 0.5), (0.7, 2.0)]


def main(T: int) -> None:
    case = cases.banana(T)
    key_init, key_run = jax.random.split(jax.random.key(0))
    x0 = case.init(key_init).astype(jnp.float32)[0]
    sampler = parmcmc.HMC(case.logdensity_fn, case.step_size, case.num_integration_steps).bind(x0)
    key = jax.random.split(key_run, 1)[0]
    seq = jax.jit(lambda k, x: run_chain(sampler, x, k, T, solver=parmcmc.Sequential()))(key, x0)
    solvers = [parmcmc.DEER(damping=d, clip=c) for d, c in SETTINGS] + [parmcmc.ELK(), parmcmc.ELK(lam=1e-3)]
    for solver in solvers:
        run = jax.jit(lambda k, x: run_chain(sampler, x, k, T, solver=solver, max_iters=400))
        t0 = time.perf_counter()
        r = jax.block_until_ready(run(key, x0))
        diff = float(jnp.max(jnp.abs(r.positions - seq.positions)))
        flips = int(jnp.sum(r.stats.is_accepted != seq.stats.is_accepted))
        print(
            f"T={T} {solver!r:50s} iterations {int(r.num_iters):4d} converged {bool(r.converged)} "
            f"result {int(r.result)} max diff {diff:.2e} differing decisions {flips} "
            f"({time.perf_counter() - t0:.0f} s with compilation)",
            flush=True,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
