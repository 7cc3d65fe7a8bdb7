"""Small recurrences the engine tests share (each a fn(x, u) -> x with its inputs)."""

import jax
import jax.numpy as jnp

from parmcmc.bench.systems import tanh_rnn as tanh_rnn  # one definition, shared with the benchmarks


def linear_system(D=4, T=500, seed=1):
    """x_t = M x_{t-1} + u_t with spectral radius < 1."""
    km, ku = jax.random.split(jax.random.key(seed))
    M = 0.8 * jnp.linalg.qr(jax.random.normal(km, (D, D)))[0]
    return (lambda x, u: M @ x + u), jnp.zeros(D), jax.random.normal(ku, (T, D))


def switching_map(D=3, T=1000, seed=2):
    """A Metropolis-like chain: a proposal accepted when a uniform is below a ratio (a hard switch)."""
    kz, ku = jax.random.split(jax.random.key(seed))
    inputs = (jax.random.normal(kz, (T, D)), jax.random.uniform(ku, (T,)))

    def fn(x, u):
        z, v = u
        prop = 0.8 * x + 0.6 * z
        log_ratio = 0.5 * (x @ x - prop @ prop)
        return jnp.where(jnp.log(v) < log_ratio, prop, x)

    return fn, jnp.full(D, 2.0), inputs


def logistic_map(T=200, r=3.9):
    """The chaotic logistic map: Lyapunov exponent > 0, parallel Newton struggles."""
    return (lambda x, u: r * x * (1 - x)), jnp.array([0.3]), jnp.zeros((T, 1))


def expanding_guess(D=4, T=256, gain=20.0, coupling=0.5, seed=3):
    """x_t = 3 + tanh(gain M x_{t-1}) + u_t/2 from x_0 = 0: contractive at the solution (the tanh is
    saturated there, states near 2 or 4), but the default guess x_t = 0 sits where the Jacobian is
    gain * M, so DEER's first affine recurrence grows like gain^T and overflows (gain^T > 1e308)."""
    kw, ku = jax.random.split(jax.random.key(seed))
    M = jnp.eye(D) + coupling * jax.random.normal(kw, (D, D)) / jnp.sqrt(D)
    return (lambda x, u: 3.0 + jnp.tanh(gain * (M @ x)) + 0.5 * u), jnp.zeros(D), jax.random.normal(ku, (T, D))


def metropolis_walk(a, D=2, T=640, seed=4):
    """A Metropolis chain x' = a x + z, accepted when log v < (|x|^2 - |x'|^2) / 2 (hard gate, common noise).

    a = 1: random-walk Metropolis, neutral (every Jacobian is the identity, LLE = 0), so two chains never couple
    and a block solve gains only the pinned block per iteration; a = 0.8: contracting, coupled within a block.
    """
    kz, kv = jax.random.split(jax.random.key(seed))
    u = (jax.random.normal(kz, (T, D)), jnp.log(jax.random.uniform(kv, (T,))))

    def fn(x, u):
        z, log_v = u
        prop = a * x + z
        return jnp.where(log_v < 0.5 * (x @ x - prop @ prop), prop, x)

    return fn, jnp.full((D,), 1.5), u
