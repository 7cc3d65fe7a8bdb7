"""Compile time and run time of the scans: jax.lax.associative_scan against the blocked (two-level) scan.

    .venv/bin/python benchmarks/scan_compile.py scans | kalman | solve

Prints one line per case: compile seconds (lower + compile of a fresh jit) and milliseconds per call
(median of 5 after a warm call), float64 on the CPU. docs/performance_scan.md records the figures.
"""

import statistics
import sys
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from parmcmc.engine import DEER, QuasiDEER, kalman, scan, solve, solvers  # noqa: E402


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
                for name, fn in (("associative", scan.affine_scan_associative), ("blocked", scan.affine_scan_blocked),
                                 ("sequential", scan.affine_scan_sequential)):
                    c, r = timed(fn, A, b, x0)
                    print(f"affine {'dense' if dense else 'diag '} D={D:3d} T={T:7d} {name:12s} "
                          f"compile {c:6.2f} s  run {r:9.2f} ms", flush=True)


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
                print(f"smoother {'dense' if dense else 'diag '} D={D} T={T:7d} {name:12s} "
                      f"compile {c:6.2f} s  run {r:9.2f} ms", flush=True)


def step(x, u):
    """A contracting nonlinear recurrence (an RNN cell) with D = x.size."""
    return jnp.tanh(0.5 * x + 0.3 * jnp.roll(x, 1) + u)


def solves():
    D = 4
    for T in (1_000, 10_000, 100_000):
        u = jax.random.normal(jax.random.key(1), (T, D))
        x0 = jnp.zeros(D)
        for solver in (QuasiDEER(), DEER()):
            # one batched evaluation of f and its Jacobian approximation at all T states
            _, lin_ms = timed(lambda X, u, s=solver: s.linearize(step, X, u, None), jnp.zeros((T, D)), u)
            for name, impl in (("associative", scan.affine_scan_associative), ("blocked", scan.affine_scan)):
                solvers.affine_scan = impl  # the solvers' scan, swapped for the measurement only
                jax.clear_caches()
                fn = lambda x0, u, s=solver: solve(step, x0, u, s, max_iters=4, atol=0.0, rtol=1e-300).states
                c, r = timed(fn, x0, u)
                per_iter = (r - lin_ms) / 4  # 4 iterations after the initial linearisation
                print(f"solve {type(solver).__name__:9s} D={D} T={T:7d} {name:12s} compile {c:6.2f} s  "
                      f"run {r:9.2f} ms  ~{per_iter:8.2f} ms/iter  iter/eval {per_iter / lin_ms:5.2f}", flush=True)
        solvers.affine_scan = scan.affine_scan


if __name__ == "__main__":
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, float64", flush=True)
    {"scans": scans, "kalman": kalman_scans, "solve": solves}[sys.argv[1]]()
