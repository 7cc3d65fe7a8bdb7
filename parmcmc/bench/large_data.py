"""A log density closing over a large array (by default 1,000,000 x 3 float32, T = 200).

    ./dev.sh bench large_data [rows] [num_samples]

Prints the wall-clock of each phase of sample() (warmup, the solve's compile and run), the compile
count and the peak resident memory, so that a closed-over array that turned into an XLA constant
(compile time and memory growing with its size) shows at once.
"""

import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import parmcmc

try:
    from parmcmc import jitcache
except ImportError:  # the code before the compile cache: no counters
    jitcache = None


def main(rows: int = 1_000_000, T: int = 200) -> None:
    """sample() on a linear-regression log density closing over a (rows x 3) float32 array, both ways."""
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(rows, 3)), jnp.float32)
    y = jnp.asarray(X @ np.array([0.5, -1.0, 2.0]) + rng.normal(size=rows), jnp.float32)

    def logdensity(w):
        return -0.5 * jnp.sum((y - X @ w) ** 2) - 0.5 * jnp.sum(w**2)

    for parallel in (True, False):
        c0, t0 = (jitcache.stats() if jitcache else None), time.perf_counter()
        tree = parmcmc.sample(
            logdensity,
            initial_position=jnp.zeros(3, jnp.float32),
            rng_key=jax.random.key(0),
            num_samples=T,
            num_warmup=100,
            num_chains=2,
            parallel=parallel,
            progress_bar=False,
        )
        wall = time.perf_counter() - t0
        c1 = jitcache.stats() if jitcache else None
        a = tree.attrs if hasattr(tree, "attrs") else {}
        print(
            f"rows={rows} T={T} parallel={parallel}: {wall:.1f} s to DataTree "
            f"(warmup {a.get('warmup_seconds', 0):.1f} s, "
            f"sampling {a.get('sampling_seconds', 0):.1f} s, compile {a.get('compile_seconds', 0):.1f} s); "
            + (
                f"{c1.compiles - c0.compiles} programs compiled in {c1.compile_seconds - c0.compile_seconds:.1f} s; "
                if c0 and c1
                else ""
            )
            + f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB",
            flush=True,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 200)
