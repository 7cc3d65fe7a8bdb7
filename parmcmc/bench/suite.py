"""./dev.sh bench suite: the model suite (parmcmc.models.suite) through sample()'s machinery.

Per model and sampler it runs the warmup, the parallel solve of every chain (the solver sample() picks, with
the exact sequential fallback), the sequential reference with the same keys, and parmcmc.diagnose (a block
solve's pilot on every chain, num_chains; a plain solve's on chain 0), and reports: Newton iterations of each
chain, fallbacks, the largest |parallel - sequential| and the accept decisions that differ, the LLE and
verdict of diagnose (and its predicted iterations), the seconds of one Newton iteration over the seconds of
one batched sweep of the step map (all chains, all T states: the floor of an iteration's cost), and the
compile time of the parallel run.

    ./dev.sh bench suite                                  # every model, MALA and HMC, T = 2000, 4 chains
    ./dev.sh bench suite --models radon banana --samplers mala --T 500 --warmup 300 --tag try

Rows are written after each pair to DIR/suite_TAG.json and DIR/suite_TAG.md (default docs/), so a long
run can be read while it goes on.
"""

import argparse
import json
import os
import time

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from parmcmc.bench.timing import versions

COLUMNS = [
    "model",
    "D",
    "sampler",
    "solver",
    "T",
    "iterations",
    "depth_over_T",
    "fell_back",
    "seq_from",
    "max_abs_diff",
    "decisions_differ",
    "lle",
    "verdict",
    "outcome",
    "predicted",
    "predicted_blocks",
    "predicted_chains",
    "iter_over_sweep",
    "compile_s",
    "parallel_s",
    "sequential_s",
    "accept",
]


def run_pair(
    name, sampler, T, chains, warmup, dtype, max_iters=None, seed=0, diagnose_pilot=True, integration_steps=None, **kw
):
    """One (model, sampler) row of the table; kw (window, patience, ...) go to sample()'s solve.

    integration_steps: HMC's fixed number of leapfrog steps (adaptation "window"); None: sample()'s default HMC.
    """
    solve_kwargs = kw
    from parmcmc.api import _one_chain, check_settings, pick_solver, prepare, run_chains
    from parmcmc.diagnose import diagnose
    from parmcmc.engine import Sequential, Shooting
    from parmcmc.models.suite import build

    ex = build(name)
    kwargs = dict(solve_kwargs) if max_iters is None else {"max_iters": max_iters, **solve_kwargs}
    settings = check_settings(
        model=ex.model,
        rng_key=jax.random.key(seed),
        num_samples=T,
        num_warmup=warmup,
        num_chains=chains,
        sampler=sampler,
        parallel=True,
        solver=None,
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        initial_position=None,
        step_size=None,
        num_integration_steps=integration_steps if sampler == "hmc" else None,
        inverse_mass_matrix=None,
        target_acceptance=None,
        keep_warmup=False,
        progress_bar=False,
        dims=None,
        coords=None,
        solve_kwargs=kwargs,
    )
    prepared = prepare(settings)
    solver = pick_solver(settings, prepared)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        par = run_chains(settings, prepared, solver)
        seq = run_chains(settings, prepared, Sequential())
    flat = lambda run: jax.vmap(jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0]))(run.chains.positions)
    xp, xs = flat(par), flat(seq)
    diff = float(jnp.max(jnp.abs(xp - xs)))
    decisions = int(jnp.sum(par.chains.stats.is_accepted != seq.chains.stats.is_accepted))
    iters = np.asarray(par.chains.num_iters).tolist()
    row = dict(
        model=name,
        D=int(xp.shape[-1]),
        sampler=sampler.upper(),
        solver=_solver_name(solver),
        T=T,
        chains=chains,
        warmup=warmup,
        dtype=str(dtype),
        hmc="" if sampler != "hmc" else "default" if integration_steps is None else f"L={integration_steps}",
        iterations=iters,
        fell_back=int(np.sum(np.asarray(par.chains.fell_back))),
        seq_from=np.asarray(par.chains.sequential_from).tolist(),
        max_abs_diff=diff,
        decisions_differ=decisions,
        compile_s=par.compile_seconds,
        parallel_s=par.seconds,
        sequential_s=seq.seconds,
        accept=float(jnp.mean(seq.chains.stats.is_accepted)),
    )
    row["depth_over_T"] = depth(solver, kwargs.get("block"), T, iters, row["seq_from"]) / T
    row["blocked"] = isinstance(solver, Shooting) or kwargs.get("block") is not None
    row["iter_over_sweep"] = _iteration_over_sweep(prepared, xs, settings, par, iters)
    if diagnose_pilot:
        # the solver that ran: a block solve is diagnosed by its own block pilot (predictability/block_verdict.py),
        # on every chain (the worst chain decides); a plain solve on chain 0
        ran = solver if kwargs.get("block") is None else Shooting(solver, kwargs["block"])
        every = isinstance(ran, Shooting)
        one, x0 = (per_chain(prepared), prepared.positions) if every else _one_chain(prepared, 0)
        t0 = time.perf_counter()
        d = diagnose(
            one,
            x0,
            jax.random.key(seed + 1),
            T,
            solver=ran,
            lle_steps=min(T, 1024),
            pilot_steps=T // 2,
            num_chains=chains if every else None,
        )
        row.update(
            lle=d.lle,
            lle_unc=d.spread,
            verdict="parallel" if d.parallel_pays else "sequential",
            predicted=d.predicted_iters,
            pilot_iters=d.pilot_iters,
            pilot_result=d.pilot_result,
            predicted_blocks=f"B={d.block}: {d.block_iters:.0f} it., depth/T {d.block_depth / T:.2f}",
            predicted_chains="/".join(f"{k:.0f}" for k in d.chain_iters),
            diagnose_s=time.perf_counter() - t0,
        )
    return row


def per_chain(prepared):
    """The sampler with every chain's step size, mass matrix and preconditioner (leading chain axis)."""
    from parmcmc.prepare import chain_settings

    settings = chain_settings(prepared.step_size, prepared.inverse_mass_matrix, prepared.preconditioner)
    return prepared.template.per_chain(**settings)


def depth(solver, block, T, iters, seq_from):
    """The sequential depth of the slowest chain, in steps of the step map.

    A plain solve's iterations (one batched evaluation each, plus its scan), a block solve's (iterations + 2) x B
    (the evaluation at the guess, the iterations, the pass that records every block), plus the steps of a
    sequential fallback; to set against T, the depth of the sequential chain.
    """
    block = block_used(solver, block, T)
    per = (lambda k: k) if block is None else (lambda k: (k + 2) * block)
    return max(per(k) + (T - f) for k, f in zip(iters, seq_from, strict=True))


def block_used(solver, block, T):
    """The block length a solve ran with (None: not a block solve)."""
    from parmcmc.engine import Shooting
    from parmcmc.engine.blocks import block_size

    if isinstance(solver, Shooting):
        block = block_size(None, T) if solver.block is None else solver.block
    return None if block is None else min(block, T)


def _solver_name(solver):
    fields = getattr(solver, "__dataclass_fields__", {})
    args = ", ".join(f"{k}={getattr(solver, k)!r}" for k in fields if getattr(solver, k) != fields[k].default)
    return f"{type(solver).__name__}({args})"


def _iteration_over_sweep(prepared, xs, settings, par, iters):
    """Seconds of one Newton iteration over seconds of one batched evaluation of the step map.

    The parallel run's iteration against one evaluation at every state of every chain.
    """
    from parmcmc.api import _one_chain
    from parmcmc.keys import chain_keys

    k = max(1, max(iters))
    keys = chain_keys(jax.random.split(settings.rng_key, 3)[2], settings.num_chains)
    one, x0 = _one_chain(prepared, 0)
    one = one.bind(x0)
    noise = jax.vmap(lambda key: one.noise(key, settings.num_samples))(keys)
    sweep = jax.jit(jax.vmap(jax.vmap(one.step)))
    jax.block_until_ready(sweep(xs, noise))
    t0 = time.perf_counter()
    for _ in range(3):
        jax.block_until_ready(sweep(xs, noise))
    sweep_s = (time.perf_counter() - t0) / 3
    return (par.seconds / k) / sweep_s


def markdown(rows):
    def fmt(r, c):
        v = r.get(c, "")
        if c == "iterations":
            return "/".join(str(i) for i in v)
        if c == "depth_over_T" and v != "":
            return f"{v:.2f}"
        if c == "seq_from":
            return "" if not r.get("fell_back") else "/".join(str(i) for i in v)
        if c == "lle" and v != "":
            return f"{v:.3f} ± {r.get('lle_unc', 0):.2f}"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r, c) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    from parmcmc.models.suite import names

    parser = argparse.ArgumentParser(
        prog="./dev.sh bench suite", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="*", default=None, help=f"subset of: {' '.join(names())}")
    parser.add_argument("--samplers", nargs="*", default=["mala", "hmc"], choices=["mala", "hmc"])
    parser.add_argument("--T", type=int, default=2000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--max-iters", type=int, default=None, help="solve budget (default T)")
    parser.add_argument("--window", type=int, default=None, help="sliding window of the solve")
    parser.add_argument("--block", type=int, default=None, help="multiple shooting with blocks of this length")
    parser.add_argument("--float32", action="store_true", help="float32 instead of float64")
    parser.add_argument(
        "--integration-steps", type=int, default=None, help="HMC: a fixed L (default: sample()'s default HMC)"
    )
    parser.add_argument("--no-diagnose", action="store_true")
    parser.add_argument(
        "--pair-timeout", type=float, default=0, help="run each pair in a child process killed after this many s"
    )
    parser.add_argument("--out", default="docs")
    parser.add_argument("--tag", default="latest", help="files are DIR/suite_TAG.json and .md")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", not args.float32)
    dtype = "float32" if args.float32 else "float64"
    os.makedirs(args.out, exist_ok=True)
    info = versions()
    header = (
        f"parmcmc bench suite '{args.tag}': T={args.T}, {args.chains} chains, warmup {args.warmup}, {dtype}, "
        f"max_iters {args.max_iters or 'default'}, window {args.window}, block {args.block}, "
        f"HMC {'default' if args.integration_steps is None else f'L={args.integration_steps}'}; "
        f"{info['device']} ({info['cpu_count']} CPUs), jax {info['jax']}"
    )
    print(header, flush=True)
    rows = []
    for name in args.models or names():
        for sampler in args.samplers:
            t0 = time.time()
            try:
                if args.pair_timeout:  # in a child process, so that a pair that takes too long is a row, not a hang
                    rows.append(_child(argv, name, sampler, args))
                    print(json.dumps(rows[-1], default=str), flush=True)
                    _write(args.out, args.tag, info, header, rows)
                    continue
                row = run_pair(
                    name,
                    sampler,
                    args.T,
                    args.chains,
                    args.warmup,
                    dtype,
                    args.max_iters,
                    diagnose_pilot=not args.no_diagnose,
                    integration_steps=args.integration_steps,
                    **({} if args.window is None else {"window": args.window}),
                    **({} if args.block is None else {"block": args.block}),
                )
            except Exception as err:  # a failing pair is a row of the table, not the end of the run
                row = dict(model=name, sampler=sampler.upper(), T=args.T, error=f"{type(err).__name__}: {err}"[:300])
            row["wall_s"] = time.time() - t0
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
            _write(args.out, args.tag, info, header, rows)


def _child(argv, name, sampler, args):
    """One pair in a child process (the same options), killed after args.pair_timeout seconds."""
    import subprocess
    import sys
    import tempfile

    argv = list(sys.argv[1:] if argv is None else argv)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "parmcmc.bench", "suite", *argv, "--models", name, "--samplers", sampler]
        cmd += ["--out", tmp, "--tag", "pair", "--pair-timeout", "0"]
        try:
            subprocess.run(cmd, timeout=args.pair_timeout, check=False, capture_output=True)
            with open(os.path.join(tmp, "suite_pair.json")) as f:
                row = json.load(f)["rows"][0]
        except subprocess.TimeoutExpired:
            row = {"model": name, "sampler": sampler.upper(), "T": args.T}
            row["error"] = f"timed out after {args.pair_timeout} s"
        except (OSError, ValueError, IndexError, KeyError) as err:
            row = {"model": name, "sampler": sampler.upper(), "T": args.T, "error": f"child failed: {err}"[:300]}
    row["wall_s"] = time.time() - t0
    return row


def measured_outcome(row, iters_per_log2T=8.0):
    """The outcome diagnose's verdict predicts: 'parallel' or 'sequential'.

    'parallel' when no chain fell back and every chain converged within diagnose's budget
    (iters_per_log2T * log2 T iterations; for a block solve: a sequential depth of at most T / 2), else
    'sequential'.
    """
    import math

    budget = iters_per_log2T * math.log2(row["T"])
    fast = row["depth_over_T"] <= 0.5 if row.get("blocked") else max(row["iterations"]) <= budget
    return "parallel" if row["fell_back"] == 0 and fast else "sequential"


def agreement(rows):
    """(pairs where diagnose's verdict equals the measured outcome, pairs with a verdict)."""
    judged = [r for r in rows if "verdict" in r and "error" not in r]
    return sum(r["verdict"] == measured_outcome(r) for r in judged), len(judged)


def _write(out, tag, info, header, rows):
    ok = [r for r in rows if "error" not in r]
    for r in ok:
        r["outcome"] = measured_outcome(r)
    text = header + "\n\n" + markdown(ok)
    hits, judged = agreement(rows)
    if judged:
        text += (
            f"\n\ndiagnose's verdict agrees with the measured outcome (no fallback, and a depth of at most T / 2 for "
            f"a block solve, every chain within 8 log2 T iterations for a plain one) on {hits} of {judged} pairs."
        )
    errors = [r for r in rows if "error" in r]
    if errors:
        text += "\n\nErrors:\n" + "\n".join(f"- {r['model']} {r['sampler']}: {r['error']}" for r in errors)
    with open(os.path.join(out, f"suite_{tag}.json"), "w") as f:
        json.dump({"versions": info, "header": header, "rows": rows}, f, indent=1, default=str)
    with open(os.path.join(out, f"suite_{tag}.md"), "w") as f:
        f.write(text + "\n")
