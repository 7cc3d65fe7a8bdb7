"""Iterations to convergence of DEER, QuasiDEER, ELK and QuasiELK.

ELK and QuasiELK with fixed and adaptive λ, smoother and filter; on a contractive tanh RNN and on
expanding initial guesses where DEER overflows.

    ./dev.sh bench elk 1000 10000 > table.md

float64, default tolerance (1e-11), max_iters = 200, the default initial guess (x0 repeated).
"""

import jax
import jax.numpy as jnp

from parmcmc.bench.systems import tanh_rnn
from parmcmc.engine import DEER, ELK, RESULTS, QuasiDEER, QuasiELK, Sequential, solve

MAX_ITERS = 200


def expanding_guess(D, T, gain, seed=3, coupling=0.5):
    """x_t = 3 + tanh(gain M x_{t-1}) + u_t/2 from x_0 = 0.

    Contractive at the solution (saturated tanh), but the guess x_t = 0 has Jacobian gain * M, so DEER's first step
    grows like gain^T.
    """
    kw, ku = jax.random.split(jax.random.key(seed))
    M = jnp.eye(D) + coupling * jax.random.normal(kw, (D, D)) / jnp.sqrt(D)
    return (lambda x, u: 3.0 + jnp.tanh(gain * (M @ x)) + 0.5 * u), jnp.zeros(D), jax.random.normal(ku, (T, D))


def solvers():
    out = [("DEER", DEER()), ("QuasiDEER", QuasiDEER())]
    for name, cls in (("ELK", ELK), ("QuasiELK", QuasiELK)):
        for smoother in (True, False):
            kind = "smoother" if smoother else "filter"
            out += [
                (f"{name} fixed λ=1e-6 {kind}", cls(lam=1e-6, adaptive=False, smoother=smoother)),
                (f"{name} fixed λ=1 {kind}", cls(lam=1.0, adaptive=False, smoother=smoother)),
                (f"{name} adaptive λ0=1e-6 {kind}", cls(lam=1e-6, adaptive=True, smoother=smoother)),
                (f"{name} adaptive λ0=1 {kind}", cls(lam=1.0, adaptive=True, smoother=smoother)),
            ]
    return out


def cases(T, D=8):
    return [
        ("tanh RNN (contractive)", tanh_rnn(D, T)),
        ("expanding guess, gain 2.5", expanding_guess(D, T, 2.5)),
        ("expanding guess, gain 20", expanding_guess(D, T, 20.0)),
    ]


def cell(sol, ref) -> str:
    if not bool(sol.converged):
        return "NaN" if int(sol.result) == RESULTS.nonfinite else f">{MAX_ITERS}"
    err = float(jnp.max(jnp.abs(sol.states - ref)))
    return f"{int(sol.num_iters)}" + ("" if err <= 1e-8 else f" (err {err:.0e})")


def run(Ts, echo=print):
    names = [name for name, _ in solvers()]
    columns = [(T, case) for T in Ts for case, _ in cases(T)]
    table = {name: [] for name in names}
    for T in Ts:
        for case, (fn, x0, u) in cases(T):
            ref = solve(fn, x0, u, Sequential()).states
            for name, solver in solvers():
                table[name].append(cell(solve(fn, x0, u, solver, max_iters=MAX_ITERS), ref))
                echo(f"T={T} {case} {name}: {table[name][-1]}")
    return columns, table


def markdown(columns, table) -> str:
    head = "| solver | " + " | ".join(f"{case}, T={T}" for T, case in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    return "\n".join([head, rule] + [f"| {name} | " + " | ".join(row) + " |" for name, row in table.items()])


if __name__ == "__main__":
    import sys

    jax.config.update("jax_enable_x64", True)
    columns, table = run(
        tuple(int(a) for a in sys.argv[1:]) or (1_000, 10_000), echo=lambda s: print(s, file=sys.stderr, flush=True)
    )
    print(markdown(columns, table))
