"""One of two processes of a multi-host run on one machine: run by tests/engine/test_sharding.py.

    python tests/helpers/multihost_check.py PROCESS_ID PORT

Each process has 4 CPU devices; jax.distributed.initialize joins them into 8 global devices (gloo
collectives), as on two hosts. A DEER solve with mesh (1, 8) splits its time axis ACROSS the two
processes, and (2, 4) puts one "chain" row on each; the gathered states must equal a local solve.
"""

import os
import sys

pid, port = int(sys.argv[1]), sys.argv[2]
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)

from parmcmc.engine import DEER, solve  # noqa: E402


def step(x, u):
    return jnp.tanh(0.6 * x + 0.3 * jnp.roll(x, 1) + u)


T, D = 64, 3
u = jax.random.normal(jax.random.key(2), (T, D))
x0 = jnp.linspace(-1.0, 1.0, D)
ref = solve(step, x0, u, DEER()).states  # this process alone, unsharded
errs = []
for shape in ((1, 8), (2, 4)):
    mesh = jax.make_mesh(shape, ("chain", "time"))
    states = jax.jit(lambda x0, u: solve(step, x0, u, DEER(), mesh=mesh).states)(x0, u)
    errs.append(float(jnp.max(jnp.abs(multihost_utils.process_allgather(states, tiled=True) - ref))))
print(f"RESULT {jax.process_count()} {jax.device_count()} {max(errs)!r}", flush=True)
