"""Helpers of the sampler tests: the tuned targets (parmcmc.bench.targets) and the sequential reference."""

import jax

from parmcmc.bench.targets import TARGETS as TARGETS
from parmcmc.bench.targets import correlated_gaussian as correlated_gaussian
from parmcmc.bench.targets import logistic_regression as logistic_regression
from parmcmc.bench.targets import pytree_gaussian as pytree_gaussian


def sequential_chain(sampler, x0, inputs):
    """The reference: ``lax.scan`` of the step map (jitted)."""

    def run(x0, inputs):
        return jax.lax.scan(lambda x, n: (sampler.step(x, n),) * 2, x0, inputs)[1]

    return jax.jit(run)(x0, inputs)
