"""Engine benchmark.

A contractive tanh RNN x_t = tanh(W x_{t-1} + u_t), every solver against the sequential scan, at several T; and the
working memory of QuasiDEER against DEER at D = 64.
"""

import jax.numpy as jnp

from parmcmc.bench.systems import tanh_rnn
from parmcmc.bench.timing import memory_only, time_jitted
from parmcmc.engine import DEER, Jacobi, Picard, QuasiDEER, Sequential, solve


def run(Ts=(1_000, 10_000, 100_000), D=8, memory_D=64, max_iters=200, repeats=3, dtype=jnp.float32):
    rows = []
    for T in Ts:
        fn, x0, u = tanh_rnn(D, T, dtype=dtype)
        ref, t_seq = time_jitted(lambda x0, u: solve(fn, x0, u, Sequential()).states, x0, u, repeats=repeats)
        rows.append(
            dict(
                case="tanh_rnn",
                D=D,
                T=T,
                solver="Sequential",
                iters=0,
                converged=True,
                seconds=t_seq.median_s,
                compile_s=t_seq.compile_s,
                max_abs_diff=0.0,
                speedup=1.0,
            )
        )
        for solver in (Jacobi(), Picard(), QuasiDEER(), DEER()):
            sol, t = time_jitted(lambda x0, u: solve(fn, x0, u, solver, max_iters=max_iters), x0, u, repeats=repeats)
            rows.append(
                dict(
                    case="tanh_rnn",
                    D=D,
                    T=T,
                    solver=type(solver).__name__,
                    iters=int(sol.num_iters),
                    converged=bool(sol.converged),
                    seconds=t.median_s,
                    compile_s=t.compile_s,
                    max_abs_diff=float(jnp.max(jnp.abs(sol.states - ref))),
                    speedup=t_seq.median_s / t.median_s,
                )
            )
    mem = []
    for T in Ts:
        fn, x0, u = tanh_rnn(memory_D, T, dtype=dtype)
        for solver in (QuasiDEER(), DEER()):
            b = memory_only(lambda x0, u: solve(fn, x0, u, solver, max_iters=max_iters).states, x0, u)
            mem.append(dict(D=memory_D, T=T, solver=type(solver).__name__, temp_MiB=b / 2**20))
    return rows, mem


def markdown(rows, mem) -> str:
    out = [
        "| D | T | solver | iterations | converged | wall-clock (s) | vs Sequential | compile (s) | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['D']} | {r['T']} | {r['solver']} | {r['iters']} | {r['converged']} | {r['seconds']:.4f} | "
            f"{r['speedup']:.2f}x | {r['compile_s']:.2f} | {r['max_abs_diff']:.1e} |"
        )
    out += ["", "| D | T | solver | XLA working memory (MiB) |", "|---|---|---|---|"]
    out += [f"| {m['D']} | {m['T']} | {m['solver']} | {m['temp_MiB']:.1f} |" for m in mem]
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    rows, mem = run(Ts=tuple(int(a) for a in sys.argv[1:]) or (1_000, 10_000, 100_000))
    print(markdown(rows, mem))
