"""run_chain in float32: the solve meets its tolerance, and the accept decisions
that differ from the float32 sequential chain are counted and reported (run
with ``-s`` to see them; they are also pytest properties)."""

import jax
import jax.numpy as jnp
import pytest
from helpers.sampler_targets import correlated_gaussian

from parmcmc.chain import run_chain
from parmcmc.engine import DEER, QuasiDEER, Sequential, default_tolerance
from parmcmc.samplers import HMC, MALA

NUM_STEPS = 300


# Two of the four pairs (the other two ran too, and passed, until the suite's time budget needed it).
@pytest.mark.parametrize(
    "kind, solver",
    [("MALA", QuasiDEER()), ("HMC", DEER())],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_float32_meets_tolerance_and_counts_differing_decisions(kind, solver, record_property):
    target = correlated_gaussian(dtype=jnp.float32)
    if kind == "MALA":
        sampler = MALA(target.logdensity_fn, target.mala_step)
    else:
        sampler = HMC(target.logdensity_fn, target.hmc_step, 5, target.inverse_mass_matrix)
    x0 = target.initial_position
    sampler = sampler.bind(x0)
    key = jax.random.key(2024)
    reference = run_chain(sampler, x0, key, NUM_STEPS, solver=Sequential())
    result = run_chain(sampler, x0, key, NUM_STEPS, solver=solver)
    assert reference.positions.dtype == result.positions.dtype == jnp.float32

    tol = default_tolerance(jnp.float32)  # the engine's default atol = rtol
    assert bool(result.converged)
    # |x_t - f(x_{t-1})| <= atol + rtol |x_t| entrywise, hence this bound on the max
    assert float(result.residual) <= tol + tol * float(jnp.max(jnp.abs(result.positions)))
    differing = int(jnp.sum(result.stats.is_accepted != reference.stats.is_accepted))
    record_property("differing_decisions", differing)
    record_property("residual", float(result.residual))
    print(
        f"\nfloat32 {kind} {type(solver).__name__}: residual {float(result.residual):.2e}, "
        f"{differing} of {NUM_STEPS} accept decisions differ from the sequential chain, "
        f"max |x - x_seq| = {float(jnp.max(jnp.abs(result.positions - reference.positions))):.2e}"
    )
