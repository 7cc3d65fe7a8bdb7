"""HMC configurations against NumPyro's NUTS on the model suite: which HMC a user should run.

    python -m parmcmc.bench.trajectory [--models a,b] [--configs x,y] [--out file.json]

Per model of parmcmc.models.suite and per sampler, 4 chains x 1000 draws after 500 warmup, float64, one
run on this machine: ESS bulk and tail (minimum over the unconstrained and deterministic parameters,
ArviZ), r-hat (maximum), divergences, leapfrog steps (gradient evaluations) of the sampling draws, ESS
per 1000 gradients, the sequential chain's sampling seconds (parallel=False, compiled) and ESS per
second, and the largest |mean - NUTS's mean| / sqrt(mcse^2 + mcse_NUTS^2) over parameters ("z vs NUTS").
NUTS's seconds are its second, compiled run. Wall-clock figures depend on the machine's load; the ESS,
step and divergence counts do not.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

DRAWS, WARMUP, CHAINS = 1000, 500, 4
MODELS = (
    "eight_schools_noncentered",
    "eight_schools_centered",
    "radon",
    "german_credit",
    "horseshoe_logistic",
    "funnel",
    "rotated_gaussian",
)
CONFIGS = {  # name: sample() options; every one: sampler="hmc", step size jittered +-50% unless said
    "window L=10": dict(dense_mass=False),
    "window L<=20 jittered": dict(dense_mass=False, num_integration_steps=20, integration_steps_jitter=1.0),
    "chees": dict(adaptation="chees", step_size_jitter=0.0),
    "chees step-jitter": dict(adaptation="chees"),
    "window L=10 dense": dict(dense_mass=True),
    "window L=10 low-rank": dict(dense_mass="low_rank"),
    "window L<=20 jittered dense": dict(dense_mass=True, num_integration_steps=20, integration_steps_jitter=1.0),
    "window L<=20 jittered low-rank": dict(
        dense_mass="low_rank", num_integration_steps=20, integration_steps_jitter=1.0
    ),
}


def _flat(post) -> tuple[list[str], np.ndarray]:
    names, arrays = [], []
    for v in post.data_vars:
        a = np.asarray(post[v])
        a = a.reshape(a.shape[0], a.shape[1], -1)
        names += [f"{v}[{i}]" for i in range(a.shape[-1])]
        arrays.append(a)
    return names, np.concatenate(arrays, axis=-1)


def _summary(x: np.ndarray, steps: float, divergences: int, seconds: float) -> dict:
    import arviz as az

    bulk, tail = az.ess(x, method="bulk"), az.ess(x, method="tail", prob=(0.05, 0.95))
    return dict(
        ess_bulk=float(np.min(bulk)),
        ess_tail=float(np.min(tail)),
        rhat=float(np.max(az.rhat(x))),
        divergences=divergences,
        grads=float(steps),
        ess_per_kgrad=1000 * float(np.min(bulk)) / float(steps),
        seconds=seconds,
        ess_per_s=float(np.min(bulk)) / seconds,
        _mean=np.mean(x, axis=(0, 1)),
        _mcse=np.asarray(az.mcse(x, method="mean")),
    )


def run_nuts(ex) -> tuple[list[str], dict]:
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(
        NUTS(ex.model),
        num_warmup=WARMUP,
        num_samples=DRAWS,
        num_chains=CHAINS,
        chain_method="vectorized",
        progress_bar=False,
    )
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(2), *ex.model_args, extra_fields=("num_steps", "diverging"), **ex.model_kwargs)
    jax.block_until_ready(mcmc.get_samples())
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(1), *ex.model_args, extra_fields=("num_steps", "diverging"), **ex.model_kwargs)
    jax.block_until_ready(mcmc.get_samples())
    seconds = time.perf_counter() - t0
    import arviz as az

    tree = az.from_numpyro(mcmc)
    names, x = _flat(tree["posterior"])
    extra = mcmc.get_extra_fields()
    out = _summary(x, np.sum(extra["num_steps"]), int(np.sum(extra["diverging"])), seconds)
    out["total_s"] = total
    out["mean_steps"] = float(np.mean(extra["num_steps"]))
    return names, out


def run_parmcmc(ex, **options) -> tuple[list[str], dict]:
    import parmcmc

    t0 = time.perf_counter()
    tree = parmcmc.sample(
        ex.model,
        rng_key=jax.random.key(1),
        num_samples=DRAWS,
        num_warmup=WARMUP,
        num_chains=CHAINS,
        parallel=False,
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        progress_bar=False,
        **options,
    )
    total = time.perf_counter() - t0
    names, x = _flat(tree["posterior"])
    stats = tree["sample_stats"]
    out = _summary(x, np.sum(stats["n_steps"]), int(np.sum(stats["diverging"])), float(tree.attrs["sampling_seconds"]))
    out["total_s"] = total
    out["warmup_s"] = float(tree.attrs["warmup_seconds"])
    out["mean_steps"] = float(np.mean(stats["n_steps"]))
    out["step_size"] = float(np.mean(stats["step_size"]))
    return names, out


def compare(names_a, a, names_b, b) -> float:
    """Largest |mean_a - mean_b| / sqrt(mcse_a^2 + mcse_b^2) over the parameters both report."""
    idx_b = {n: i for i, n in enumerate(names_b)}
    z = [
        abs(a["_mean"][i] - b["_mean"][idx_b[n]]) / np.hypot(a["_mcse"][i], b["_mcse"][idx_b[n]])
        for i, n in enumerate(names_a)
        if n in idx_b
    ]
    return float(np.max(z)) if z else float("nan")


def _cached_nuts(ex, model: str, cache: str | None):
    """Run run_nuts, its result kept in `cache`/model.pkl.

    NUTS's draws do not change between runs; its seconds are those of the run that filled the cache.
    """
    import os
    import pickle

    path = None if cache is None else os.path.join(cache, f"{model}.pkl")
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    result = run_nuts(ex)
    if path:
        os.makedirs(cache, exist_ok=True)  # pyright: ignore[reportArgumentType] (path set only with a cache)
        with open(path, "wb") as f:
            pickle.dump(result, f)
    return result


def table(models=MODELS, configs=tuple(CONFIGS), out=None, nuts_cache=None) -> list[dict]:
    from parmcmc.models.suite import build

    jax.config.update("jax_enable_x64", True)
    rows = []
    for model in models:
        ex = build(model)
        nuts_names, nuts = _cached_nuts(ex, model, nuts_cache)
        runs = [("NUTS (NumPyro)", nuts_names, nuts)]
        for name in configs:
            try:
                runs.append((name, *run_parmcmc(ex, **CONFIGS[name])))
            except Exception as err:
                print(f"{model} {name}: {type(err).__name__}: {err}", flush=True)
        for name, names, r in runs:
            row = {k: v for k, v in r.items() if not k.startswith("_")}
            row.update(model=model, sampler=name, z_vs_nuts=compare(names, r, nuts_names, nuts))
            row["ess_per_draw_vs_nuts"] = r["ess_bulk"] / nuts["ess_bulk"]
            rows.append(row)
            print(json.dumps(row), flush=True)
        if out:
            with open(out, "w") as f:
                json.dump(rows, f, indent=1)
    return rows


def markdown(rows) -> str:
    cols = [
        "model",
        "sampler",
        "ess_bulk",
        "ess_tail",
        "rhat",
        "divergences",
        "mean_steps",
        "ess_per_kgrad",
        "seconds",
        "ess_per_s",
        "z_vs_nuts",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="HMC configurations against NumPyro's NUTS on the model suite")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", default=None)
    parser.add_argument("--nuts-cache", default=None, help="a folder keeping NUTS's results between runs")
    args = parser.parse_args()
    rows = table(args.models.split(","), args.configs.split(","), args.out, args.nuts_cache)
    print(markdown(rows))


if __name__ == "__main__":
    main()
