"""parmcmc.diagnose: whether a parallel solve of a sampler's chain pays.

The sampler meets the diagnostics here, as it meets the engine in chain.py: the sampler supplies its
step map and noise, `parmcmc.predictability.verdict.diagnose_recurrence` (which knows nothing of MCMC) measures
the largest Lyapunov exponent along a sequential pilot chain, runs a short parallel pilot solve, and
gives the verdict. See docs/predictability.md for the model and the definition of "parallel pays".
"""

import jax
import jax.numpy as jnp

from parmcmc.arguments import check_int
from parmcmc.engine import QuasiDEER, Shooting, solve
from parmcmc.engine.solvers import AbstractSolver
from parmcmc.keys import chain_keys
from parmcmc.predictability.block_verdict import block_pilot
from parmcmc.predictability.lyapunov import lyapunov_exponent
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
    num_chains: int | None = None,
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
    num_chains
        Diagnose C chains at once (a block solver only, `Shooting`): initial_position's leaves carry a leading chain
        axis C, and so may the sampler's settings (a per-chain sampler, `sampler.per_chain(step_size=...)`, as
        sample() runs its chains after warmup). Chain c's pilot noise comes from `keys.chain_keys(rng_key, C)[c]`.
        The block pilot runs on every chain (vmapped: C times one pilot's work) and the worst chain decides
        (`Diagnosis.chain_iters` holds every chain's prediction); the LLE is chain 0's. None: one chain.
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
    check_int("pilot_steps", pilot_steps, call="diagnose")
    check_int("num_probes", num_probes, call="diagnose")
    unknown = set(solve_kwargs) - {"atol", "rtol"}
    if unknown:
        raise TypeError(f"diagnose: unexpected keyword argument(s) {sorted(unknown)}; the pilot takes atol, rtol.")
    solver = QuasiDEER() if solver is None else solver
    if num_chains is not None:
        check_int("num_chains", num_chains, minimum=1, call="diagnose")
        if not isinstance(solver, Shooting):
            raise ValueError(
                f"diagnose: num_chains={num_chains} needs a block solver such as Shooting(DEER(), 32) (sample()'s "
                f"parallel default); for solver={solver!r}, diagnose one chain at a time."
            )
        return _diagnose_chains(
            sampler,
            initial_position,
            rng_key,
            num_steps,
            num_chains,
            solver,
            pilot_steps,
            lle_steps,
            num_probes,
            solve_kwargs,
        )
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


def _diagnose_chains(sampler, positions, rng_key, T, C, solver, pilot_steps, lle_steps, num_probes, tols) -> Diagnosis:
    """diagnose(..., num_chains=C) for a block solver: chain 0's LLE, every chain's block pilot (vmapped)."""
    leaves = jax.tree_util.tree_leaves(positions)
    if not leaves or any(jnp.ndim(a) < 1 or jnp.shape(a)[0] != C for a in leaves):
        raise ValueError(f"diagnose: num_chains={C}: every leaf of initial_position needs a leading chain axis of {C}.")
    first = jax.tree_util.tree_map(lambda a: a[0], positions)
    if jnp.ndim(sampler.step_size) == 0:  # one sampler for every chain
        sampler, _ = sampler.bound_at(first)
        samplers = sampler.per_chain(step_size=jnp.full((C,), sampler.step_size))
    elif jnp.shape(sampler.step_size) == (C,) and sampler.is_bound:
        samplers = sampler
    else:
        raise ValueError(
            f"diagnose: num_chains={C}: the sampler's per-chain settings must have a leading axis of {C}, and a "
            "per-chain sampler must be bound (sampler.bind(position) before sampler.per_chain(...))."
        )
    one = jax.tree_util.tree_map(lambda a: a[0], samplers)
    one.check_position(one.ravel(first))
    x0s = jax.vmap(one.ravel)(positions)
    keys = chain_keys(rng_key, C)
    inputs = jax.vmap(lambda s, k: s.noise(k, min(lle_steps, T)))(samplers, keys)
    est = lyapunov_exponent(one.step, x0s[0], jax.tree_util.tree_map(lambda a: a[0], inputs), num_probes=num_probes)

    def pilot(n, **kw):
        u = jax.tree_util.tree_map(lambda a: a[:, :n], inputs)
        return jax.vmap(lambda s, x, v: solve(s.step, x, v, solver, **kw))(samplers, x0s, u)

    fields = block_pilot(None, None, inputs, solver, T, pilot_steps, est, tols.get("atol"), tols.get("rtol"), pilot)
    name = f"Shooting({type(solver.solver).__name__}, {fields['block']})"
    return Diagnosis(lle=est.lle, spread=est.uncertainty, T=T, solver=name, lyapunov=est, **fields)


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
