"""ChEES warmup (Hoffman, Radul & Sountsov 2021, `blackjax.chees_adaptation`).

HMC's step size and trajectory length adapted from all chains together, for HMC whose draws take a jittered
number of leapfrog steps.

    chees_warmup  step size, trajectory length and (from its second half's pooled draws) a diagonal
                  inverse mass matrix

(Window adaptation followed by ChEES on the whitened target was tried and dropped: docs/samplers.md.)

Like parmcmc.warmup, it runs BlackJAX's kernels; the tuned parameters carry over to parmcmc's HMC, whose
chain equals `blackjax.dynamic_hmc`'s for the same integration_steps_fn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import blackjax
import jax
import jax.numpy as jnp

from parmcmc.jitcache import program_jit
from parmcmc.warmup import WarmupResult, _check_common

__all__ = ["CHEES_TARGET_ACCEPTANCE", "chees_warmup"]

PyTree = Any
CHEES_TARGET_ACCEPTANCE = 0.651  # blackjax.chees_adaptation's (the harmonic mean of the chains' acceptances)
CHEES_LEARNING_RATE = 0.025  # Adam on the log trajectory length (TFP's and BlackJAX's examples)


def chees_warmup(
    logdensity_fn: Callable,
    initial_positions: PyTree,
    rng_key: jax.Array,
    num_steps: int,
    *,
    initial_step_size: float = 1.0,
    target_acceptance: float = CHEES_TARGET_ACCEPTANCE,
    keep_draws: bool = True,
    learning_rate: float = CHEES_LEARNING_RATE,
) -> WarmupResult:
    """Tune jittered HMC's step size, trajectory length and diagonal inverse mass matrix with ChEES.

    `blackjax.chees_adaptation`, its diagonal mass-matrix estimate on, all chains together.

    Each warmup step moves every chain by `blackjax.dynamic_hmc` with ceil(h_t L) leapfrog steps (h_t a
    Halton number, L the current trajectory length over the step size); the step size follows dual
    averaging of the chains' harmonic-mean acceptance, the trajectory length Adam on the ChEES criterion
    (the change in the chains' squared distance from their mean). The result is shared by the chains
    (`step_size` and `inverse_mass_matrix` repeated per chain) and `num_integration_steps` is L.

    ChEES is a many-chain method: every chain's warmup depends on all of them (on num_chains too), unlike
    hmc_warmup's chain-by-chain adaptation; with few chains its estimates are noisy.
    """
    import optax  # a dependency of blackjax, imported here to keep `import parmcmc` light

    caller = "chees_warmup"
    num_chains = _check_common(caller, initial_positions, num_steps, initial_step_size, target_acceptance)
    if num_chains < 2:
        raise ValueError(f"{caller}: ChEES adapts from cross-chain statistics and needs num_chains >= 2.")
    adaptation = blackjax.chees_adaptation(
        logdensity_fn,
        num_chains,
        target_acceptance_rate=target_acceptance,
        mass_matrix_estimation="diagonal",
    )

    def run(key, positions):
        # blackjax annotates AdaptationAlgorithm.run as (key, position); chees's takes more.
        run_adaptation: Callable = adaptation.run
        (states, parameters), info = run_adaptation(
            key, positions, initial_step_size, optax.adam(learning_rate), num_steps
        )
        step = info.info  # HMCInfo with leaves (num_steps, chain)
        stats = {
            "acceptance_rate": step.acceptance_rate.T,
            "lp": info.state.logdensity.T,
            "step_size": jnp.broadcast_to(info.adaptation_state.step_size[:, None], step.acceptance_rate.shape).T,
            "diverging": step.is_divergent.T,
            "energy": step.energy.T,
            "n_steps": step.num_integration_steps.T,
        }
        draws = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), info.state.position) if keep_draws else None
        # the parameters without chees's functions (they cannot leave a jitted call)
        numeric = {k: parameters[k] for k in ("step_size", "inverse_mass_matrix", "integration_steps_params")}
        return states.position, numeric, draws, stats

    positions, parameters, draws, stats = program_jit(run)(rng_key, initial_positions)
    imm = jnp.broadcast_to(parameters["inverse_mass_matrix"], (num_chains, *parameters["inverse_mass_matrix"].shape))
    step_size = jnp.full((num_chains,), parameters["step_size"])
    return WarmupResult(
        positions, step_size, imm, draws, stats, num_integration_steps=parameters["integration_steps_params"][0]
    )
