"""Per-chain random keys that do not depend on how many chains are run.

`jax.random.split(key, n)[k]` changes with n; `fold_in(key, k)` does not, so chain k gets the same
start, warmup and draws whether 1 or 4 chains are run.
"""

import jax
import jax.numpy as jnp


def chain_keys(rng_key: jax.Array, num_chains: int) -> jax.Array:
    """One key per chain, chain k's key a function of (rng_key, k) alone."""
    return jax.vmap(lambda k: jax.random.fold_in(rng_key, k))(jnp.arange(num_chains))
