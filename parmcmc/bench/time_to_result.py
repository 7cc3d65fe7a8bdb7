"""Where the time of one sample() call goes: warmup, solve compile, run; compile counts.

    ./dev.sh bench time_to_result [eight_schools|readme] [parallel] [sampler] [repeat]
    ./dev.sh bench time_to_result table [rounds]

`table` runs every mode in a fresh process (first call, then a second call in the same process), the
modes interleaved round by round (the order rotated each round) so that a loaded machine's drift hits
all of them alike: eight schools
(HMC, sample()'s default sampler) with parallel=False, True and "auto", NumPyro's NUTS, and the README's
first example (logistic regression, MALA, the default parallel) against NUTS on the same model; then
the median of each and the ratios.

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
    choice = ""
    if "auto_seconds" in tree.attrs:
        choice = (
            f"; auto chose {tree.attrs['solver']} in {tree.attrs['auto_seconds']:.4f} s ({tree.attrs['auto_reason']})"
        )
    print(
        f"{case} {sampler} parallel={parallel}: {wall:.2f} s to DataTree; {len(c)} compilations, "
        f"{sum(c):.2f} s backend compile (largest {max(c, default=0):.2f} s){choice}",
        flush=True,
    )
    return tree


def table(rounds: int) -> None:
    """Every mode in its own fresh process, interleaved round by round; medians and ratios."""
    import re
    import statistics
    import subprocess

    modes = [
        ("eight_schools", "False", "hmc"),
        ("eight_schools", "True", "hmc"),
        ("eight_schools", "auto", "hmc"),
        ("eight_schools", "True", "nuts"),
        ("readme", "auto", "mala"),
        ("readme", "True", "nuts"),
    ]
    times: dict = {}
    for r in range(rounds):
        for case, par, sampler in modes[r % len(modes) :] + modes[: r % len(modes)]:  # each mode leads a round
            out = subprocess.run(
                [sys.executable, __file__, case, par, sampler, "1" if sampler == "nuts" else "2"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            walls = [float(w) for w in re.findall(r": ([\d.]+) s to", out)]
            times.setdefault((case, par, sampler), []).append(walls)
            print(f"round {r}: {case} {sampler} parallel={par}: {walls}", flush=True)
            if "auto chose" in out:
                print("   ", out.strip().splitlines()[0].split("; auto chose ")[1][:160], flush=True)
    med = {k: statistics.median(w[0] for w in v) for k, v in times.items()}
    second = {k: statistics.median(w[1] for w in v) for k, v in times.items() if len(v[0]) > 1}
    print("\n| run | first call (median) s | second call s |\n|---|---|---|")
    for k in times:
        print(f"| {' '.join(k)} | {med[k]:.2f} | {second.get(k, float('nan')):.2f} |")
    es = lambda p, s="hmc": med[("eight_schools", p, s)]
    print(f"\nauto / faster of False, True: {es('auto') / min(es('False'), es('True')):.2f}")
    print(f"auto / NUTS (eight schools): {es('auto') / es('True', 'nuts'):.2f}")
    print(f"README example / NUTS: {med[('readme', 'auto', 'mala')] / med[('readme', 'True', 'nuts')]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "table":
        table(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
        sys.exit()
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
