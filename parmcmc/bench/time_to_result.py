"""Where the time of one sample() call goes: warmup, solve compile, run; compile counts.

    ./dev.sh bench time_to_result [eight_schools|readme] [parallel] [sampler] [repeat]

Counts XLA compilations with jax's monitoring events (one '/jax/compilation_cache/...' or backend
compile event per compiled program) and prints the per-phase wall-clock that sample() itself records.
"""

import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.monitoring  # noqa: E402 (x64 is switched on before anything else is imported)

import parmcmc  # noqa: E402
from parmcmc.models.builtin import eight_schools, logistic_regression  # noqa: E402

COMPILES = []


def _listener(event: str, duration_secs: float, **kw) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES.append(duration_secs)


jax.monitoring.register_event_duration_secs_listener(_listener)


def nuts(case, key):
    """NumPyro NUTS, chains vectorized, the same draws: the time to result a user has without parmcmc."""
    from numpyro.infer import MCMC, NUTS

    ex = eight_schools() if case == "eight_schools" else logistic_regression()
    n0, t0 = len(COMPILES), time.perf_counter()
    mcmc = MCMC(
        NUTS(ex.model), num_warmup=1000, num_samples=2000, num_chains=4, chain_method="vectorized", progress_bar=False
    )
    mcmc.run(jax.random.key(key), *ex.model_args, **ex.model_kwargs)
    jax.block_until_ready(mcmc.get_samples())
    wall = time.perf_counter() - t0
    c = COMPILES[n0:]
    print(
        f"{case} numpyro NUTS vectorized: {wall:.2f} s to samples; "
        f"{len(c)} compilations, {sum(c):.2f} s backend compile",
        flush=True,
    )


def run(case, parallel, sampler, key):
    if sampler == "nuts":
        return nuts(case, key)
    ex = eight_schools() if case == "eight_schools" else logistic_regression()
    n0, t0 = len(COMPILES), time.perf_counter()
    tree = parmcmc.sample(
        ex.model,
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        rng_key=jax.random.key(key),
        num_samples=2000,
        num_warmup=1000,
        num_chains=4,
        sampler=sampler,
        parallel=parallel,
        progress_bar=False,
    )
    wall = time.perf_counter() - t0
    c = COMPILES[n0:]
    print(
        f"{case} {sampler} parallel={parallel}: {wall:.2f} s to DataTree; {len(c)} compilations, "
        f"{sum(c):.2f} s backend compile (largest {max(c, default=0):.2f} s)",
        flush=True,
    )
    return tree


if __name__ == "__main__":
    case = sys.argv[1] if len(sys.argv) > 1 else "eight_schools"
    par = {"True": True, "False": False, "auto": "auto"}[sys.argv[2] if len(sys.argv) > 2 else "True"]
    # sampler "nuts": NumPyro NUTS instead of parmcmc (parallel is ignored)
    sampler = sys.argv[3] if len(sys.argv) > 3 else "mala"
    repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    if "--prewarm" in sys.argv:  # compile JAX's eager primitives first (a tiny run), so they do not count
        ex = eight_schools()
        parmcmc.sample(
            ex.model,
            model_args=ex.model_args,
            model_kwargs=ex.model_kwargs,
            rng_key=jax.random.key(99),
            num_samples=8,
            num_warmup=8,
            num_chains=4,
            sampler=sampler,
            parallel=False,
            progress_bar=False,
        )
        print("prewarmed", flush=True)
    for r in range(repeat):
        run(case, par, sampler, r)
