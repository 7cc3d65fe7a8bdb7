"""Where a solve's compile time goes: trace + lower vs XLA compile, and the size of the program.

    ./dev.sh bench compile_profile [T ...] (default T = 1000)

For QuasiDEER, DEER, ELK and QuasiELK on the RNN cell of parmcmc/bench/scan_compile.py (D = 4, float64):
seconds to trace and lower a jitted solve, seconds for XLA to compile it (wall-clock, and the
process's CPU seconds, which a loaded machine inflates less), the number of HLO
instructions before optimisation (StableHLO ops counted in the lowered text) and after (the optimised
HLO module), and the number of while loops. docs/performance.md records the figures.
"""

import re
import sys
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from parmcmc.engine import DEER, ELK, QuasiDEER, QuasiELK, solve  # noqa: E402


def step(x, u):
    """A contracting nonlinear recurrence (an RNN cell) with D = x.size."""
    return jnp.tanh(0.5 * x + 0.3 * jnp.roll(x, 1) + u)


def profile(solver, T, D=4):
    u, x0 = jax.random.normal(jax.random.key(1), (T, D)), jnp.zeros(D)
    fn = lambda x0, u: solve(step, x0, u, solver).states
    jax.clear_caches()
    c0, t0 = time.process_time(), time.perf_counter()
    lowered = jax.jit(fn).lower(x0, u)
    c1, t1 = time.process_time(), time.perf_counter()
    compiled = lowered.compile()
    c2, t2 = time.process_time(), time.perf_counter()
    text = lowered.as_text()
    ops = len(re.findall(r"^\s*(?:%\S+ = )?\"?[a-z_]+\.[a-z_]+", text, flags=re.M))
    hlo = compiled.as_text() or ""
    hlo_ops = len(re.findall(r"^\s*(?:ROOT )?%?\S+ = ", hlo, flags=re.M))
    whiles = len(re.findall(r" while\(", hlo))
    return (t1 - t0, c1 - c0), (t2 - t1, c2 - c1), ops, hlo_ops, whiles


if __name__ == "__main__":
    Ts = [int(a) for a in sys.argv[1:]] or [1000]
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, float64, D = 4", flush=True)
    for T in Ts:
        for solver in (QuasiDEER(), DEER(), ELK(), QuasiELK()):
            lower_s, compile_s, ops, hlo_ops, whiles = profile(solver, T)
            print(
                f"{type(solver).__name__:9s} T={T:7d}  trace+lower {lower_s[0]:5.2f} s (CPU {lower_s[1]:5.2f} s)  "
                f"compile {compile_s[0]:5.2f} s (CPU {compile_s[1]:5.2f} s)  "
                f"lowered ops {ops:6d}  optimised HLO instructions {hlo_ops:6d}  while loops {whiles:3d}",
                flush=True,
            )
