"""Recurrences the benchmarks, the tests and the examples share: one definition of each."""

import jax
import jax.numpy as jnp


def tanh_rnn(D=8, T=1000, *, scale=0.9, seed=0, dtype=None):
    """A contractive nonlinear RNN, ``x_t = tanh(W x_{t-1} + u_t)``.

    Parameters
    ----------
    D
        State dimension.
    T
        Number of steps (the leading axis of the inputs).
    scale
        ``W = scale * N(0, 1/D)``: about the spectral radius of ``W``; below 1 the map contracts.
    seed
        Seed of ``W`` and of the inputs.
    dtype
        Floating dtype of ``W``, ``x0`` and the inputs; ``None`` for JAX's default.

    Returns
    -------
    fn, x0, inputs
        The step map ``fn(x, u)``, the start ``x0 = 1`` of shape ``(D,)`` and standard normal inputs of
        shape ``(T, D)``.
    """
    kw, ku = jax.random.split(jax.random.key(seed))
    W = scale * jax.random.normal(kw, (D, D)) / jnp.sqrt(D)
    if dtype is not None:
        W = W.astype(dtype)
    return (lambda x, u: jnp.tanh(W @ x + u)), jnp.ones(D, dtype), jax.random.normal(ku, (T, D), dtype)
