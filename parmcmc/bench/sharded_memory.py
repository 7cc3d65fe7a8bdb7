"""Per-device memory of a compiled DEER solve, unsharded and with the time axis over 8 devices.

    ./dev.sh bench sharded_memory [T] [D] [run]   (default: the goal case, T = 1e6, D = 64)

Compiles only on 8 forced CPU devices, and prints XLA's memory analysis per device: arguments, outputs
and temporaries. With "run" (for a small T) it also runs each solve and prints max |sharded - unsharded|.
docs/scaling.md records the figures.
"""

import os
import sys
import time

FORCE_8 = "--xla_force_host_platform_device_count=8"
if FORCE_8 not in os.environ.get("XLA_FLAGS", ""):
    # JAX reads the flag when its backend starts, and importing parmcmc (BlackJAX) starts it: run again
    # in a fresh process with the flag set.
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " " + FORCE_8
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.execv(sys.executable, [sys.executable, "-m", "parmcmc.bench.sharded_memory", *sys.argv[1:]])

import jax  # noqa: E402 (after the device flags above)
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

jax.config.update("jax_enable_x64", True)

from parmcmc.engine import DEER, sharding, solve  # noqa: E402


def step(x, u):
    return jnp.tanh(0.6 * x + 0.3 * jnp.roll(x, 1) + u)


def main(T=1_000_000, D=64, run=False):
    print(f"jax {jax.__version__}, {jax.device_count()} forced CPU devices, DEER, T={T}, D={D}, float64")
    x0 = jnp.zeros(D)
    u_value = jax.random.normal(jax.random.key(0), (T, D)) if run else None
    reference = None
    for label, shape in (("unsharded", None), ("time over 8", (1, 8)), ("2 chains x 4 time", (2, 4))):
        mesh = None if shape is None else sharding.auto(jax.make_mesh(shape, ("chain", "time")))
        sh = None if mesh is None else NamedSharding(mesh, P("time"))
        u = jax.ShapeDtypeStruct((T, D), jnp.float64, sharding=sh)
        t0 = time.perf_counter()
        compiled = jax.jit(lambda x0, u: solve(step, x0, u, DEER(), mesh=mesh).states).lower(x0, u).compile()
        m = compiled.memory_analysis()
        if m is None:
            raise RuntimeError(f"{jax.default_backend()} gives no memory analysis of a compiled program")
        total = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        print(
            f"{label:18s} per device: temp {m.temp_size_in_bytes / 1e9:7.2f} GB  args "
            f"{m.argument_size_in_bytes / 1e9:6.2f} GB  out {m.output_size_in_bytes / 1e9:6.2f} GB  "
            f"total {total / 1e9:7.2f} GB   (compiled in {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
        if run:
            states = compiled(x0, u_value if sh is None else jax.device_put(u_value, sh))
            reference = states if reference is None else reference
            print(
                f"{label:18s} max |states - unsharded| = {float(jnp.max(jnp.abs(states - reference))):.2e}", flush=True
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*map(int, [a for a in args if a != "run"]), run="run" in args)
