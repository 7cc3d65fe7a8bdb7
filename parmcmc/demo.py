"""The demo: `./dev.sh demo` (python -m parmcmc.demo)."""

import time

import jax
import jax.numpy as jnp

from parmcmc.engine import DEER, QuasiDEER, Sequential, solve


def main():
    jax.config.update("jax_enable_x64", True)
    D, T = 8, 10_000
    W = 0.9 * jax.random.normal(jax.random.key(0), (D, D)) / jnp.sqrt(D)
    fn = lambda x, u: jnp.tanh(W @ x + u)
    x0, inputs = jnp.ones(D), jax.random.normal(jax.random.key(1), (T, D))
    print(f"tanh RNN, D={D}, T={T}, float64, device {jax.devices()[0].platform}")
    ref = None
    for solver in (Sequential(), QuasiDEER(), DEER()):
        sol = jax.block_until_ready(solve(fn, x0, inputs, solver))
        t0 = time.perf_counter()
        sol = jax.block_until_ready(solve(fn, x0, inputs, solver))
        dt = time.perf_counter() - t0
        ref = sol.states if ref is None else ref
        print(f"  {type(solver).__name__:10s} iterations {int(sol.num_iters):3d}  converged {bool(sol.converged)}"
              f"  residual {float(sol.residual):.1e}  max|diff| {float(jnp.max(jnp.abs(sol.states - ref))):.1e}"
              f"  {dt * 1e3:.1f} ms  last state {sol.states[-1, :3]}")


if __name__ == "__main__":
    main()
