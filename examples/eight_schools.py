"""Eight schools (non-centred) from NumPyro model to ArviZ summary.

    python examples/eight_schools.py

The model lives in parmcmc/models/builtin.py (`eight_schools_model`):

    mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_z[j] ~ N(0, 1), theta[j] = mu + tau * theta_z[j],
    y[j] ~ N(theta[j], sigma[j])

The pipeline is the one `parmcmc.sample` wires together:
model -> Target -> warmup -> chain -> postprocess -> DataTree. The chain step below is BlackJAX's
sequential HMC, the reference that parmcmc's parallel-in-time solve reproduces draw for draw.
"""

import arviz_stats
import blackjax
import jax
import numpy as np

from parmcmc.io import to_datatree
from parmcmc.models import builtin, from_numpyro
from parmcmc.warmup import hmc_warmup

jax.config.update("jax_enable_x64", True)

NUM_CHAINS, NUM_WARMUP, NUM_DRAWS, NUM_LEAPFROG = 4, 1000, 2000, 16


def sequential_hmc(logdensity_fn, warmup, rng_key, num_steps):
    """One BlackJAX HMC chain per chain of `warmup`, with that chain's tuned parameters."""

    def one_chain(key, position, step_size, inverse_mass_matrix):
        kernel = blackjax.hmc(logdensity_fn, step_size, inverse_mass_matrix, NUM_LEAPFROG)

        def step(state, key_t):
            state, info = kernel.step(key_t, state)
            stats = {"acceptance_rate": info.acceptance_rate, "diverging": info.is_divergent,
                     "energy": info.energy, "lp": state.logdensity}
            return state, (state.position, stats)

        return jax.lax.scan(step, kernel.init(position), jax.random.split(key, num_steps))[1]

    keys = jax.random.split(rng_key, warmup.step_size.shape[0])
    return jax.jit(jax.vmap(one_chain))(keys, warmup.positions, warmup.step_size, warmup.inverse_mass_matrix)


def main():
    example = builtin.eight_schools()
    key_init, key_warmup, key_chain = jax.random.split(jax.random.key(0), 3)
    target = from_numpyro(example.model, key_init, model_args=example.model_args,
                          model_kwargs=example.model_kwargs, num_chains=NUM_CHAINS)
    warmup = hmc_warmup(target.logdensity_fn, target.initial_positions, key_warmup, NUM_WARMUP, NUM_LEAPFROG)
    draws, stats = sequential_hmc(target.logdensity_fn, warmup, key_chain, NUM_DRAWS)
    tree = to_datatree(
        target.postprocess(draws),
        sample_stats={**stats, "step_size": warmup.step_size},
        observed_data=target.observed_data,
        warmup_posterior=target.postprocess(warmup.draws),
        warmup_sample_stats=warmup.stats,
        dims=target.dims,
        coords=example.coords,
        attrs={"sampler": "HMC (BlackJAX, sequential)", "num_integration_steps": NUM_LEAPFROG},
    )
    print(arviz_stats.summary(tree, var_names=["mu", "tau", "theta"]))
    print(f"step sizes {np.round(np.asarray(warmup.step_size), 3)}, "
          f"acceptance {float(tree['sample_stats']['acceptance_rate'].mean()):.2f}, "
          f"divergences {int(tree['sample_stats']['diverging'].sum())}")


if __name__ == "__main__":
    main()
