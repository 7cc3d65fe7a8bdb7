"""parmcmc.diagnose: whether a parallel solve of a sampler's chain pays.

The sampler meets the diagnostics here, as it meets the engine in chain.py: the sampler supplies its
step map and noise, `parmcmc.predictability.verdict.diagnose_recurrence` (which knows nothing of MCMC) measures
the largest Lyapunov exponent along a sequential pilot chain, runs a short parallel pilot solve, and
gives the verdict. See docs/predictability.md for the model and the definition of "parallel pays".
"""

import jax

from parmcmc.arguments import check_int
from parmcmc.engine import QuasiDEER
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.predictability.verdict import DEFAULT_ITERS_PER_LOG2T, Diagnosis, diagnose_recurrence
from parmcmc.samplers.base import AbstractSampler
from parmcmc.weigh import Choice, DeviceModel, choose

__all__ = ["choose_solver", "diagnose"]


def diagnose(
    sampler: AbstractSampler,
    initial_position,
    rng_key: jax.Array,
    num_steps: int,
    *,
    solver: AbstractSolver | None = None,
    pilot_steps: int = 1024,
    lle_steps: int = 4096,
    num_probes: int = 8,
    iters_per_log2T: float = DEFAULT_ITERS_PER_LOG2T,
    **solve_kwargs,
) -> Diagnosis:
    """Whether a parallel solve of a `num_steps` chain of `sampler` pays, and why.

    Parameters
    ----------
    sampler
        MALA or HMC, bound or not (an unbound one is bound to `initial_position`).
    initial_position
        Pytree position the chain starts from (after warmup, ideally: the LLE is measured along the pilot chain, and
        a chain far from its typical set has transient Jacobians).
    rng_key
        The pilot's noise is `sampler.noise(rng_key, min(lle_steps, num_steps))`: the same distribution as the
        chain's, not its first draws.
    num_steps
        The chain length T to predict for.
    solver
        The parallel solver to predict for (default QuasiDEER(), as run_chain).
    pilot_steps
        Length of the parallel pilot solve.
    lle_steps
        Length of the sequential LLE pilot.
    iters_per_log2T
        Parallel pays only if the predicted iterations are <= this * log2(T).
    **solve_kwargs
        ``atol``, ``rtol`` of the pilot solve.

    Notes
    -----
    The LLE is that of the step map the solver linearises: with gate="hard" the accept gate's
    derivative is zero, so an accepted step contributes the proposal's Jacobian and a rejected one the
    identity; with gate="smooth" it is the smoothed surrogate's.
    """
    if not isinstance(sampler, AbstractSampler):
        raise TypeError(
            f"diagnose: sampler must be a parmcmc sampler such as MALA(...) or HMC(...), got {type(sampler).__name__}."
        )
    check_int("num_steps", num_steps, minimum=2, call="diagnose")
    check_int("lle_steps", lle_steps, minimum=2, call="diagnose")
    unknown = set(solve_kwargs) - {"atol", "rtol"}
    if unknown:
        raise TypeError(f"diagnose: unexpected keyword argument(s) {sorted(unknown)}; the pilot takes atol, rtol.")
    solver = QuasiDEER() if solver is None else solver
    sampler, x0 = sampler.bound_at(initial_position)
    inputs = sampler.noise(rng_key, min(lle_steps, num_steps))
    return diagnose_recurrence(
        sampler.step,
        x0,
        inputs,
        solver=solver,
        T=num_steps,
        pilot_steps=pilot_steps,
        num_probes=num_probes,
        iters_per_log2T=iters_per_log2T,
        **solve_kwargs,
    )


def choose_solver(
    sampler: AbstractSampler,
    initial_position,
    rng_key: jax.Array,
    num_steps: int,
    *,
    solver: AbstractSolver | None = None,
    sequential_step_seconds: float | None = None,
    device: DeviceModel | None = None,
    **diagnose_kwargs,
) -> Choice:
    """The faster of the sequential chain and `solver` for a `num_steps` chain on this device.

    parmcmc.weigh: timed probes first, the predictability diagnosis only when they leave parallel in the
    running. This is sample(parallel="auto")'s choice; `Choice.seconds` is what it cost.
    sequential_step_seconds: a measured sequential step (sample() passes its warmup's), else a probe times one;
    device: the parmcmc.weigh.DeviceModel to assume (default: this process's device).
    """
    solver = QuasiDEER() if solver is None else solver
    sampler, x0 = sampler.bound_at(initial_position)
    return choose(
        sampler.step,
        x0,
        lambda n: sampler.noise(rng_key, n),
        solver,
        num_steps,
        lambda: diagnose(sampler, x0, rng_key, num_steps, solver=solver, **diagnose_kwargs),
        sequential_step_seconds=sequential_step_seconds,
        device=device,
    )
