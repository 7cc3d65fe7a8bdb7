"""The noise schedule: every random number of a chain, drawn up front.

BlackJAX's ``run_inference_algorithm`` splits its key once into one key per
step, ``keys = jax.random.split(rng_key, num_steps)``, and each MALA or HMC
kernel call splits its step key once more, ``k_first, k_second =
jax.random.split(keys[t])``: the first key drives the proposal (MALA's
Gaussian increment, HMC's momentum), the second the accept decision.
Reproducing that order here is what makes one ``rng_key`` give the same chain
in BlackJAX and in parmcmc.

All draws are vmapped over the step axis; JAX's counter-based generators give
the same numbers under ``vmap`` as one call at a time.
"""

import jax
from jax import Array

from parmcmc.arguments import check_int, check_rng_key
from parmcmc.samplers import threefry

__all__ = [
    "JITTER_STREAM",
    "TRAJECTORY_STREAM",
    "check_num_steps",
    "side_keys",
    "standard_normal",
    "step_keys",
    "uniform",
]

# Noise BlackJAX's kernels do not draw (HMC's step-size jitter) comes from streams of its own,
# ``fold_in(rng_key, stream)``, so that BlackJAX's keys and draws stay exactly as they are.
JITTER_STREAM = 0x6A177E2
TRAJECTORY_STREAM = 0x7A1EC7  # HMC's jittered number of leapfrog steps


def check_num_steps(num_steps) -> int:
    """Return ``num_steps`` as an int, or raise a clear error (:func:`parmcmc.arguments.check_int`)."""
    return check_int("num_steps", num_steps)


def step_keys(rng_key: Array, num_steps: int) -> tuple[Array, Array]:
    """Per-step key pairs in BlackJAX 1.7's order.

    Returns
    -------
    (proposal_keys, accept_keys), each with leading axis ``num_steps``:
    ``split(split(rng_key, num_steps)[t])`` = ``(proposal_keys[t], accept_keys[t])``.
    Works for typed keys (``jax.random.key``) and raw ``uint32`` keys alike; anything else (an int, a batch of
    keys) is refused with a message that says how to make a key.
    """
    check_rng_key(rng_key)
    if threefry.applies(rng_key):  # the same keys, compiled in a fraction of the time (samplers/threefry.py)
        pairs = threefry.split(threefry.split(rng_key, num_steps), 2)
    else:
        keys = jax.random.split(rng_key, num_steps)
        pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 0], pairs[:, 1]


def side_keys(rng_key: Array, num_steps: int, stream: int) -> Array:
    """One key per step from the stream ``split(fold_in(rng_key, stream), num_steps)``.

    The stream is apart from BlackJAX's ``split(rng_key, num_steps)``.
    """
    if threefry.applies(rng_key):  # the same keys without two more hash loops in the program
        return threefry.split(threefry.fold_in(rng_key, stream), num_steps)
    return jax.random.split(jax.random.fold_in(rng_key, stream), num_steps)


def standard_normal(keys: Array, size: int, dtype) -> Array:
    """One ``normal(key, (size,), dtype)`` draw per key: shape ``(T, size)``.

    BlackJAX draws its Gaussian noise on the *flattened* position (it ravels
    the pytree first), so the flat size and dtype fully determine the draw.
    """
    if threefry.applies(keys, dtype):
        return threefry.normal(keys, size, dtype)
    return jax.vmap(lambda k: jax.random.normal(k, (size,), dtype))(keys)


def uniform(keys: Array, dtype) -> Array:
    """One scalar ``uniform(key, (), dtype)`` per key: shape ``(T,)``.

    BlackJAX decides acceptance with ``jax.random.bernoulli(key, p)``, which
    is ``uniform(key, p.shape, p.dtype) < p``: a scalar uniform in the dtype of
    the acceptance probability, compared with the probability itself (not
    its log).
    """
    if threefry.applies(keys, dtype):
        return threefry.uniform(keys, 1, dtype)[..., 0]
    return jax.vmap(lambda k: jax.random.uniform(k, (), dtype))(keys)
