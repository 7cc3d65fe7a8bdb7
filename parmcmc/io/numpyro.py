"""NumPyro's own tools on parmcmc's draws: pointwise log likelihood, posterior predictive, prior.

Every function takes the constrained draws as `{site: (chain, draw, ...)}` (what `Target.postprocess`
returns and `parmcmc.infer.MCMC.get_samples(group_by_chain=True)` gives) and calls NumPyro's
`log_likelihood` and `Predictive`, vectorised over both sample axes (`batch_ndims=2`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from numpyro.handlers import trace
from numpyro.infer import Predictive
from numpyro.infer import log_likelihood as numpyro_log_likelihood
from numpyro.primitives import Messenger

from parmcmc.jitcache import program_jit

__all__ = ["pointwise_log_likelihood", "posterior_predictive", "prior_draws", "uncondition"]


class uncondition(Messenger):
    """Drop the observed values of every sample site, so that Predictive draws them anew.

    NumPyro's `Predictive` returns an observed site's data unchanged when the model is called with its
    observation; posterior and prior predictive checks need fresh draws with the same arguments.
    """

    def process_message(self, msg):
        """Turn an observed site into a latent one (its value is drawn, not fixed)."""
        if msg["type"] == "sample" and msg.get("is_observed"):
            msg["value"], msg["is_observed"] = None, False


def observed_sites(model: Callable, model_args: tuple, model_kwargs: dict) -> list[str]:
    """Names of the observed sample sites of the model called with these arguments."""
    from numpyro.handlers import seed

    tr = trace(seed(model, jax.random.PRNGKey(0))).get_trace(*model_args, **model_kwargs)
    return [n for n, s in tr.items() if s["type"] == "sample" and s["is_observed"]]


def pointwise_log_likelihood(model: Callable, samples: dict, model_args: tuple, model_kwargs: dict) -> dict:
    """`{observed site: (chain, draw, *obs_shape)}`: log p(y_i | draw) per observation (for az.loo)."""
    # One compiled program per model structure (the data are arguments of it): run eagerly, NumPyro's
    # vectorised likelihood compiled anew on every call.
    out = program_jit(lambda s: numpyro_log_likelihood(model, s, *model_args, batch_ndims=2, **model_kwargs))(samples)
    return {name: np.asarray(value) for name, value in out.items()}


def posterior_predictive(model: Callable, samples: dict, rng_key, model_args: tuple, model_kwargs: dict) -> dict:
    """`{observed site: (chain, draw, *obs_shape)}`: one fresh draw of every observed site per posterior draw."""
    names = observed_sites(model, model_args, model_kwargs)
    if not names:
        return {}
    predictive = Predictive(uncondition(model), posterior_samples=samples, batch_ndims=2, return_sites=names)
    return {k: np.asarray(v) for k, v in predictive(rng_key, *model_args, **model_kwargs).items()}


def prior_draws(
    model: Callable, num_samples: int, rng_key, model_args: tuple, model_kwargs: dict, latent: list[str]
) -> tuple[dict, dict]:
    """Draws from the prior: (prior, prior_predictive), each `{site: (1, num_samples, ...)}`.

    The latent and deterministic sites named in `latent`, and the observed sites.
    """
    names = observed_sites(model, model_args, model_kwargs)
    predictive = Predictive(uncondition(model), num_samples=num_samples, return_sites=list(latent) + names)
    draws = {k: np.asarray(v)[None] for k, v in predictive(rng_key, *model_args, **model_kwargs).items()}
    return ({k: v for k, v in draws.items() if k not in names}, {k: v for k, v in draws.items() if k in names})
