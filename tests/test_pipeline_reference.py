"""Model side + output side together, with BlackJAX's sequential MALA as the chain:
NumPyro conjugate regression -> Target -> warmup -> chain -> postprocess -> DataTree -> the exact posterior.

The parallel solve reproduces the sequential chain draw for draw (tested with the engine), so this
checks that everything around it (log density with Jacobian, starts, warmup, postprocess, ArviZ
output) gives the right posterior. Criterion (DESIGN.md): each posterior mean within 2.33
Monte-Carlo standard errors (sd / sqrt(ESS)) of the analytic mean; fixed seeds.
"""

import arviz_stats
import blackjax
import jax
import numpy as np

from parmcmc.io import to_datatree
from parmcmc.models import builtin, from_numpyro
from parmcmc.warmup import mala_warmup


def sequential_mala(logdensity_fn, positions, step_size, rng_key, num_steps):
    def one_chain(key, position, eps):
        kernel = blackjax.mala(logdensity_fn, eps)

        def step(state, key_t):
            state, info = kernel.step(key_t, state)
            return state, (state.position, {"acceptance_rate": info.acceptance_rate, "lp": state.logdensity})

        return jax.lax.scan(step, kernel.init(position), jax.random.split(key, num_steps))[1]

    keys = jax.random.split(rng_key, step_size.shape[0])
    return jax.jit(jax.vmap(one_chain))(keys, positions, step_size)


def test_conjugate_regression_posterior_through_the_pipeline():
    ex = builtin.linear_regression(seed=1, num_data=50, num_features=3)
    exact = builtin.analytic_posterior(ex.model_args[0], ex.model_kwargs["y"], 1.0, 1.0)
    k_init, k_warm, k_chain = jax.random.split(jax.random.key(42), 3)

    target = from_numpyro(ex.model, k_init, model_args=ex.model_args, model_kwargs=ex.model_kwargs, num_chains=4)
    warmup = mala_warmup(target.logdensity_fn, target.initial_positions, k_warm, 500)
    draws, stats = sequential_mala(target.logdensity_fn, warmup.positions, warmup.step_size, k_chain, 3000)
    tree = to_datatree(
        target.postprocess(draws),
        sample_stats={**stats, "step_size": warmup.step_size},
        observed_data=target.observed_data,
        warmup_posterior=target.postprocess(warmup.draws),
        warmup_sample_stats=warmup.stats,
        dims=target.dims,
        coords=ex.coords,
    )

    beta = tree["posterior"]["beta"]
    assert beta.dims == ("chain", "draw", "feature")
    mean = beta.mean(("chain", "draw")).values
    sd = beta.std(("chain", "draw")).values
    ess = arviz_stats.ess(tree, var_names=["beta"])["beta"].values
    assert np.all(ess > 200), ess
    z = (mean - exact.mean) / (sd / np.sqrt(ess))
    assert np.all(np.abs(z) < 2.33), z
    # the spread too: sd within 15% of the exact one (ESS > 200 gives a relative error well under 10%)
    np.testing.assert_allclose(sd, np.sqrt(np.diag(exact.cov)), rtol=0.15)
    assert float(arviz_stats.rhat(tree, var_names=["beta"])["beta"].max()) < 1.01
