"""Effective samples per second over the model suite, against NumPyro's NUTS.

    ./dev.sh bench ess [--models a,b] [--samplers default,mala,barker] [--draws 1000] [--warmup 500]
                       [--chains 4] [--no-parallel] [--out FILE.jsonl] [--markdown FILE.jsonl]
                       [--nuts-cache DIR]

Per model of parmcmc.models.suite (all of them by default, in the suite's order) and per sampler, in
float64: NumPyro's NUTS (vectorized chains) first, then each parmcmc sampler with one warmup shared by
its sequential chain (parallel=False) and its parallel solve (the solver sample(parallel=True) picks,
with sample()'s defaults: fail fast, continue sequentially). Each row holds

- ess_bulk, ess_tail (ArviZ; minimum over every scalar of the posterior, deterministic sites
  included; tail at 5%/95%), rhat (maximum), divergences, ess_bulk per draw;
- max_z: the largest |mean - NUTS's mean| / sqrt(mcse^2 + mcse_NUTS^2) over the scalars, the mean's
  difference in units of its Monte-Carlo standard error (ArviZ's mcse of the mean, both runs' errors);
- warmup_s (wall clock, compilation included, both for NUTS and parmcmc), draws_s (the post-warmup
  draws: NUTS's `run` from its warmup state, its compilation included, about 1 s; parmcmc's
  Run.seconds, which excludes compilation, reported apart as compile_s), ess_per_s = ess_bulk / draws_s;
- for the parallel solve: par_s (compiled), par_compile_s, par_iters (max over chains), par_fell_back
  (chains that continued sequentially), par_ess_per_s (ess_bulk of the same chain / par_s), par_max_diff
  (max |parallel - sequential| over the draws).

Samplers are given as NAME[:option=value;...] with sample()'s option names, e.g. `default`, `mala`,
`barker`, `hmc:step_size_jitter=0.0`, `hmc:dense_mass=True`: "default" is sample()'s default sampler,
whatever it is at the time of the run, so the table can be rerun after the samplers change. Rows are
appended to --out as JSON lines as they finish (a long run killed half way keeps what finished);
--markdown FILE renders such a file as the table of docs/samplers.md.
"""

import argparse
import ast
import json
import time

import jax
import numpy as np

__all__ = ["main", "markdown", "nuts_row", "parmcmc_rows", "parse_sampler"]

COLUMNS = [
    "model",
    "D",
    "sampler",
    "ess_bulk",
    "ess_tail",
    "rhat",
    "divergences",
    "max_z",
    "ess_per_draw",
    "steps_per_draw",
    "ess_per_kgrad",
    "warmup_s",
    "draws_s",
    "ess_per_s",
    "par_solver",
    "par_iters",
    "par_fell_back",
    "par_s",
    "par_ess_per_s",
]


def parse_sampler(spec: str) -> tuple[str, dict]:
    """`NAME[:option=value;...]` -> (label, sample() options). Values are Python literals."""
    name, _, rest = spec.partition(":")
    options = {} if name == "default" else {"sampler": name}
    for item in filter(None, rest.split(";")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"bench ess: sampler option {item!r} of {spec!r} is not key=value.")
        options[key.strip()] = ast.literal_eval(value.strip())
    return spec, options


def _scalars(groups: dict, names) -> np.ndarray:
    """(chain, draw, K): every scalar of the named variables, in the order of `names`."""
    arrays = [np.asarray(groups[n], dtype=np.float64) for n in names]
    return np.concatenate([a.reshape(a.shape[0], a.shape[1], -1) for a in arrays], axis=-1)


def _quality(x: np.ndarray, reference: dict | None) -> dict:
    import arviz as az

    bulk, tail = az.ess(x, method="bulk"), az.ess(x, method="tail", prob=(0.05, 0.95))
    mean, mcse = x.mean(axis=(0, 1)), np.asarray(az.mcse(x, method="mean"))
    out = {
        "ess_bulk": float(np.min(bulk)),
        "ess_tail": float(np.min(tail)),
        "rhat": float(np.max(az.rhat(x))),
        "ess_per_draw": float(np.min(bulk)) / (x.shape[0] * x.shape[1]),
        "mean": mean,
        "mcse": mcse,
    }
    if reference is not None:
        z = np.abs(mean - reference["mean"]) / np.sqrt(mcse**2 + reference["mcse"] ** 2)
        out["max_z"] = float(np.nanmax(z))
    return out


def nuts_row(ex, draws: int, warmup: int, chains: int) -> tuple[dict, dict]:
    """Run NumPyro's NUTS, vectorized chains; returns (row, reference).

    Warmup (compilation included), then the draws from the warmup's state, timed (their own compilation
    included: about 1 s of 7 s measured on the banana, so the draws are not run twice on a loaded machine).
    """
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(
        NUTS(ex.model), num_warmup=warmup, num_samples=draws, num_chains=chains, chain_method="vectorized",
        progress_bar=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    mcmc.warmup(jax.random.key(1), *ex.model_args, extra_fields=("diverging", "num_steps"), **ex.model_kwargs)
    jax.block_until_ready(mcmc.post_warmup_state)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(3), *ex.model_args, extra_fields=("diverging", "num_steps"), **ex.model_kwargs)
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    draws_s = time.perf_counter() - t0
    names = sorted(samples)
    q = _quality(_scalars(samples, names), None)
    row = {
        "sampler": "NUTS (NumPyro)",
        "divergences": int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"]))),
        "steps_per_draw": float(np.mean(np.asarray(mcmc.get_extra_fields()["num_steps"]))),
        "warmup_s": warmup_s,
        "draws_s": draws_s,
        "ess_per_s": q["ess_bulk"] / draws_s,
        **{k: v for k, v in q.items() if k not in ("mean", "mcse")},
    }
    sizes = {n: int(np.prod(np.shape(samples[n])[2:])) for n in names}
    return row, {"mean": q["mean"], "mcse": q["mcse"], "names": names, "sizes": sizes}


def parmcmc_rows(
    ex, label: str, options: dict, reference: dict | None, draws: int, warmup: int, chains: int, parallel=True,
    parallel_max_dim: int | None = None,
):  # fmt: skip
    """One warmup, then the sequential chain and (with `parallel`) the parallel solve of the same noise."""
    from parmcmc import api
    from parmcmc.engine import Sequential
    from parmcmc.io.output import datatree_from_run

    settings = api.check_settings(
        model=ex.model, rng_key=jax.random.key(1), num_samples=draws, num_warmup=warmup, num_chains=chains,
        model_args=ex.model_args, model_kwargs=ex.model_kwargs, progress_bar=False, parallel=bool(parallel),
        solve_kwargs={}, **options,
    )  # fmt: skip
    prepared = api.prepare(settings)
    seq = api.run_chains(settings, prepared, Sequential())
    tree = datatree_from_run(prepared, seq, settings)
    post = tree["posterior"]
    names = (
        sorted(str(n) for n in post.data_vars)
        if reference is None
        else [n for n in reference["names"] if n in post.data_vars]
    )
    x = _scalars({n: np.asarray(post[n]) for n in names}, names)
    ref = None if reference is None else {f: _scalars_like(reference, names, f) for f in ("mean", "mcse")}
    q = _quality(x, ref)
    stats = tree["sample_stats"]
    row = {
        "sampler": label,
        "D": int(prepared.template.dim),
        "divergences": int(np.sum(np.asarray(stats["diverging"]))) if "diverging" in stats else 0,
        "warmup_s": prepared.warmup_seconds,
        "draws_s": seq.seconds,
        "ess_per_s": q["ess_bulk"] / seq.seconds,
        "compile_s": seq.compile_seconds,
        "step_size": float(np.mean(np.asarray(prepared.step_size))),
        "accept": float(np.mean(np.asarray(stats["acceptance_rate"]))),
        "steps_per_draw": float(np.mean(np.asarray(stats["n_steps"]))) if "n_steps" in stats else 1.0,
        **{k: v for k, v in q.items() if k not in ("mean", "mcse")},
    }
    if parallel and parallel_max_dim is not None and row["D"] > parallel_max_dim:
        row["par_solver"] = f"skipped (D > {parallel_max_dim})"
    elif parallel:
        solver = api.pick_solver(settings, prepared)
        par = api.run_chains(settings, prepared, solver)
        diff = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), par.chains.positions,
                            seq.chains.positions)  # fmt: skip
        row.update(
            par_solver=type(solver).__name__,
            par_s=par.seconds,
            par_compile_s=par.compile_seconds,
            par_iters=int(np.max(np.asarray(par.chains.num_iters))),
            par_fell_back=int(np.sum(np.asarray(par.chains.fell_back))),
            par_ess_per_s=q["ess_bulk"] / par.seconds,
            par_max_diff=max(jax.tree.leaves(diff)),
        )
    return row


def _scalars_like(reference: dict, names, field: str) -> np.ndarray:
    """The reference's per-scalar `field` (over its own names) restricted to `names`."""
    offsets, start = {}, 0
    for n in reference["names"]:
        offsets[n] = (start, start + reference["sizes"][n])
        start += reference["sizes"][n]
    return np.concatenate([reference[field][offsets[n][0] : offsets[n][1]] for n in names])


def markdown(rows: list[dict], columns=COLUMNS) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _cached_nuts(cache: str | None, name: str, compute):
    """NUTS's (row, reference) of a model, read from / written to `cache`/NAME.pkl when a cache is given."""
    import os
    import pickle

    if cache is None:
        return compute()
    path = os.path.join(cache, f"{name}.pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    os.makedirs(cache, exist_ok=True)
    result = compute()
    with open(path, "wb") as f:
        pickle.dump(result, f)
    return result


def run(
    models, samplers, draws, warmup, chains, parallel, out, parallel_max_dim=None, parallel_samplers=None,
    nuts_cache=None,
):  # fmt: skip
    from parmcmc.bench.timing import versions
    from parmcmc.models import suite

    header = {"versions": versions(), "draws": draws, "warmup": warmup, "chains": chains, "date": time.ctime()}
    print(json.dumps(header), flush=True)
    rows = []
    for name in models:
        ex = suite.build(name)
        try:
            nuts, reference = _cached_nuts(nuts_cache, name, lambda ex=ex: nuts_row(ex, draws, warmup, chains))
        except Exception as err:  # a model NUTS cannot run still gets parmcmc's rows, without max_z
            print(f"{name}: NUTS failed: {err!r}", flush=True)
            nuts, reference = {"sampler": "NUTS (NumPyro)", "error": repr(err)[:200]}, None
        todo: list[tuple[str, dict] | None] = [None, *(parse_sampler(s) for s in samplers)]
        for item in todo:
            if item is None:
                row = nuts
            else:
                label, options = item
                try:
                    solve = parallel and (parallel_samplers is None or label in parallel_samplers)
                    row = parmcmc_rows(ex, label, options, reference, draws, warmup, chains, solve, parallel_max_dim)
                except Exception as err:
                    row = {"sampler": item[0], "error": repr(err)[:300]}
            row = {"model": name, **row}
            if "steps_per_draw" in row and "ess_bulk" in row:  # gradient evaluations: leapfrog steps
                row["ess_per_kgrad"] = 1000.0 * row["ess_bulk"] / (draws * chains * max(row["steps_per_draw"], 1.0))
            rows.append(row)
            if out:
                with open(out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return header, rows


def main(argv=None):
    from parmcmc.models import suite

    parser = argparse.ArgumentParser(prog="python -m parmcmc.bench ess", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", default=",".join(suite.names()), help="comma-separated suite names")
    parser.add_argument("--samplers", default="default,mala,barker", help="comma-separated NAME[:opt=val;...]")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--no-parallel", action="store_true", help="skip the parallel solves")
    parser.add_argument(
        "--parallel-max-dim", type=int, default=None,
        help="skip the parallel solve of models with more unconstrained dimensions (on a CPU, DEER and QuasiDEER "
        "cost D forward passes per step and iteration)",
    )  # fmt: skip
    parser.add_argument(
        "--parallel-samplers", default=None, help="comma-separated labels whose parallel solve runs (default: all)"
    )
    parser.add_argument("--out", default="bench-results/ess.jsonl", help="JSON lines, appended as rows finish")
    parser.add_argument("--markdown", metavar="JSONL", help="render a finished --out file and exit")
    parser.add_argument(
        "--nuts-cache", default=None, metavar="DIR",
        help="reuse NUTS's rows from DIR (written on first use): for development; the table runs NUTS in the same run",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        latest = {(r["model"], r["sampler"]): r for r in rows}  # a rerun row replaces the earlier one
        dims = {r["model"]: r["D"] for r in rows if "D" in r}
        rows = [{**r, "D": dims.get(r["model"], "")} for r in latest.values()]
        print(markdown(rows))
        return rows
    jax.config.update("jax_enable_x64", True)  # float64, as the table
    import os

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in suite.SUITE:
            parser.error(f"unknown model {m!r}; choose from {', '.join(suite.names())}")
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    _, rows = run(
        models, samplers, args.draws, args.warmup, args.chains, not args.no_parallel, args.out, args.parallel_max_dim,
        None if args.parallel_samplers is None else args.parallel_samplers.split(","), args.nuts_cache,
    )  # fmt: skip
    print("\n" + markdown(rows))
    return rows
