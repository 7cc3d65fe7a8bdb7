"""Compile time and run time of the scans: jax.lax.associative_scan against the blocked (two-level) scan.

    ./dev.sh bench scan_compile scans | kalman | solve

Prints one line per case: compile seconds (lower + compile of a fresh jit) and milliseconds per call
(median of 5 after a warm call), float64 on the CPU. docs/performance_scan.md records the figures.
"""

import statistics
import sys
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from parmcmc.engine import DEER, ELK, QuasiDEER, kalman, scan, sharding, solve, solvers  # noqa: E402

OLD_SCANS = {
    "affine": scan.affine_scan_associative,
    "kalman": lambda op, elems, reverse=False: jax.lax.associative_scan(op, elems, reverse=reverse),
}
NEW_SCANS = {"affine": scan.affine_scan_blocked, "kalman": kalman.blocked_associative_scan}


def use_scans(scans):
    """The solvers' and ELK's scans, swapped for the measurement only."""
    solvers.affine_scan = kalman.affine_scan = scans["affine"]
    kalman.associative_scan = scans["kalman"]


def timed(fn, *args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, 1e3 * statistics.median(runs)


def scans():
    for dense in (False, True):
        for D in (2, 8, 32):
            for T in (1_000, 10_000, 100_000):
                if dense and D * D * T > 8 * 10**6:  # keep the shared machine's memory in bounds
                    continue
                k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
                A = jax.random.uniform(k1, (T, D, D) if dense else (T, D), minval=-1, maxval=1) / (D if dense else 1)
                b, x0 = jax.random.normal(k2, (T, D)), jax.random.normal(k3, (D,))
                for name, fn in (
                    ("associative", scan.affine_scan_associative),
                    ("blocked", scan.affine_scan_blocked),
                    ("sequential", scan.affine_scan_sequential),
                ):
                    c, r = timed(fn, A, b, x0)
                    print(
                        f"affine {'dense' if dense else 'diag '} D={D:3d} T={T:7d} {name:12s} "
                        f"compile {c:6.2f} s  run {r:9.2f} ms",
                        flush=True,
                    )


def kalman_scans():
    for dense in (False, True):
        D = 4
        for T in (1_000, 10_000, 100_000):
            k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
            A = jax.random.uniform(k1, (T, D, D) if dense else (T, D), minval=-1, maxval=1) / (D if dense else 1)
            b, x0 = jax.random.normal(k2, (T, D)), jax.random.normal(k3, (D,))
            y = b
            for name, impl in (("associative", jax.lax.associative_scan), ("blocked", None)):
                fn = lambda A, b, x0, y: kalman.parallel_smoother(A, b, x0, y, 0.5, scan=impl).mean
                c, r = timed(fn, A, b, x0, y)
                print(
                    f"smoother {'dense' if dense else 'diag '} D={D} T={T:7d} {name:12s} "
                    f"compile {c:6.2f} s  run {r:9.2f} ms",
                    flush=True,
                )


def step(x, u):
    """A contracting nonlinear recurrence (an RNN cell) with D = x.size."""
    return jnp.tanh(0.5 * x + 0.3 * jnp.roll(x, 1) + u)


def solves():
    """Compile time of a whole solve, and the cost of one iteration.

    (time of 6 iterations - time of 2) / (the iteration counts actually taken), the compiled programs run in turn so
    that load hits all alike.
    """
    D = 4
    for T in (1_000, 10_000, 100_000):
        u, x0 = jax.random.normal(jax.random.key(1), (T, D)), jnp.zeros(D)
        for solver in (QuasiDEER(), DEER(), ELK()) if T <= 10_000 else (QuasiDEER(), DEER()):
            lin = jax.jit(lambda X, u, s=solver: s.linearize(step, X, u, None)).lower(jnp.zeros((T, D)), u).compile()
            progs = {}
            for name, scans in (("associative", OLD_SCANS), ("blocked", NEW_SCANS)):
                use_scans(scans)
                jax.clear_caches()
                for iters in (2, 6):

                    def fn(x0, u, s=solver, k=iters):
                        return solve(step, x0, u, s, max_iters=k, atol=0.0, rtol=1e-300).num_iters

                    t0 = time.perf_counter()
                    c = jax.jit(fn).lower(x0, u).compile()
                    progs[name, iters] = (c, time.perf_counter() - t0, int(c(x0, u)))
            times = {k: [] for k in progs} | {"eval": []}
            for _ in range(7):
                t0 = time.perf_counter()
                jax.block_until_ready(lin(jnp.zeros((T, D)), u))
                times["eval"].append(time.perf_counter() - t0)
                for k, (c, _, _) in progs.items():
                    t0 = time.perf_counter()
                    jax.block_until_ready(c(x0, u))
                    times[k].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) for k, v in times.items()}
            for name in ("associative", "blocked"):
                (_, c6, n6), (_, _, n2) = progs[name, 6], progs[name, 2]
                it = (med[name, 6] - med[name, 2]) / max(n6 - n2, 1)
                print(
                    f"solve {type(solver).__name__:9s} D={D} T={T:7d} {name:12s} compile {c6:6.2f} s  "
                    f"iterations {n2}->{n6}  per iteration {1e3 * it:8.2f} ms  "
                    f"batched eval {1e3 * med['eval']:8.2f} ms  ratio {it / med['eval']:5.2f}",
                    flush=True,
                )
        use_scans({"affine": sharding.affine_scan, "kalman": kalman.blocked_associative_scan})


if __name__ == "__main__":
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, float64", flush=True)
    {"scans": scans, "kalman": kalman_scans, "solve": solves}[sys.argv[1]]()
