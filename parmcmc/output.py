"""A sampling run -> ArviZ DataTree: the output end of sample()."""

import jax
import numpy as np

import parmcmc
from parmcmc.io.arviz import solver_stats, to_datatree


def _step_stats(stats, lp_name="lp") -> dict:
    """The sampler's Info fields under ArviZ's sample_stats names."""
    fields = stats._asdict()
    out = {"acceptance_rate": fields["acceptance_rate"], lp_name: fields["logdensity"]}
    if "is_divergent" in fields:
        out["diverging"] = fields["is_divergent"]
    if "energy" in fields:  # the Hamiltonian of the draw (what az.bfmi and plot_energy expect)
        out["energy"] = fields["energy"]
    if "num_integration_steps" in fields:
        out["n_steps"] = fields["num_integration_steps"]
    return out


def datatree_from_run(prepared, run, settings):
    """The DataTree of a sampling run (see sample() for its groups)."""
    target, chains, solver = prepared.target, run.chains, run.solver
    per_chain = solver_stats(chains)
    per_chain["solver_fell_back"] = np.asarray(chains.fell_back, dtype=bool)
    kwargs = {}
    if settings.keep_warmup and prepared.warmup is not None and prepared.warmup.draws is not None:
        kwargs["warmup_posterior"] = target.postprocess(prepared.warmup.draws)
        kwargs["warmup_sample_stats"] = prepared.warmup.stats
    attrs = {
        "inference_library": "parmcmc",
        "inference_library_version": parmcmc.__version__,
        "sampler": type(prepared.template).__name__,
        "solver": repr(solver),
        "parallel": not isinstance(solver, parmcmc.Sequential),
        "sampling_seconds": run.seconds,
        "compile_seconds": run.compile_seconds,
        "warmup_seconds": prepared.warmup_seconds,
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0]),
    }
    return to_datatree(
        target.postprocess(chains.positions),
        sample_stats={**_step_stats(chains.stats), "step_size": np.asarray(prepared.step_size)},
        solver=per_chain,
        observed_data=target.observed_data or None,
        dims={**target.dims, **(settings.dims or {})},
        coords=settings.coords,
        attrs=attrs,
        **kwargs,
    )
