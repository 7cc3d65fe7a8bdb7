"""Newton iterations of QuasiDEER and DEER on the sampler step maps, hard vs smooth gate.

Runs the tuned targets of parmcmc.bench.targets (a correlated Gaussian D=10, a logistic
regression D=10 N=600, a dict-valued Gaussian D=7) with MALA and HMC (L=5) through run_chain in
float64 at the engine's default tolerance, and compares each chain with the Sequential one.
Appends one JSON line per run to --out, so groups of runs can be made separately; --render turns
the lines into the markdown table of docs/sampler_iterations.md.

    ./dev.sh bench sampler_iterations --T 1000 10000 --out runs.jsonl
    ./dev.sh bench sampler_iterations --render runs.jsonl
"""

import argparse
import json
import time
from typing import Any

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from parmcmc.bench.targets import correlated_gaussian, logistic_regression, pytree_gaussian  # noqa: E402
from parmcmc.chain import run_chain  # noqa: E402
from parmcmc.engine import DEER, QuasiDEER, Sequential  # noqa: E402
from parmcmc.samplers import HMC, MALA  # noqa: E402

TARGETS = {"gaussian": correlated_gaussian, "logistic": logistic_regression, "pytree": pytree_gaussian}
SOLVERS = {"QuasiDEER": QuasiDEER, "DEER": DEER}
NUM_LEAPFROG = 5
KEY = jax.random.key(1)


def make_sampler(kind, target, gate, temperature=1.0):
    options: dict[str, Any] = dict(gate=gate, gate_temperature=temperature)
    if kind == "MALA":
        return MALA(target.logdensity_fn, target.mala_step, **options)
    return HMC(target.logdensity_fn, target.hmc_step, NUM_LEAPFROG, target.inverse_mass_matrix, **options)


def flat(tree):
    return jnp.concatenate([leaf.reshape(leaf.shape[0], -1) for leaf in jax.tree.leaves(tree)], axis=1)


def measure(target_name, kind, T, solvers, gates, max_iters, out, temperature=1.0):
    target = TARGETS[target_name]()
    reference = run_chain(make_sampler(kind, target, "hard"), target.initial_position, KEY, T, solver=Sequential())
    ref_states = flat(reference.positions)
    dim = ref_states.shape[1]
    for solver_name in solvers:
        for gate in gates:
            sampler = make_sampler(kind, target, gate, temperature)
            t0 = time.perf_counter()
            result = run_chain(
                sampler, target.initial_position, KEY, T, solver=SOLVERS[solver_name](), max_iters=min(max_iters, T)
            )
            jax.block_until_ready(result)
            seconds = time.perf_counter() - t0
            err = jnp.max(jnp.abs(flat(result.positions) - ref_states), axis=1)
            bad = jnp.flatnonzero(~(err <= 1e-8))  # NaN counts as wrong
            row = dict(
                target=target_name,
                D=int(dim),
                sampler=kind,
                T=T,
                solver=solver_name,
                gate=gate if gate == "hard" else f"smooth (temperature {temperature:g})",
                iters=int(result.num_iters),
                converged=bool(result.converged),
                max_iters=min(max_iters, T),
                residual=float(result.residual),
                max_abs_diff=float(jnp.max(err)),
                exact_prefix=int(bad[0]) if bad.size else T,
                differing=int(jnp.sum(result.stats.is_accepted != reference.stats.is_accepted)),
                acceptance=float(jnp.mean(reference.stats.is_accepted.astype(float))),
                seconds=seconds,
            )
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")


def render(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    lines = [
        "| target | D | sampler | accept rate | T | solver | gate | iterations | converged | "
        "max abs diff vs Sequential | differing decisions | wall s (incl. compile) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["converged"]:
            iters = str(r["iters"])
        elif r["residual"] < float("inf"):
            iters = f"not converged in {r['iters']} (cap); exact prefix {r['exact_prefix']}"
        else:
            iters = f"non-finite iterate at iteration {r['iters']}; exact prefix {r['exact_prefix']}"
        lines.append(
            f"| {r['target']} | {r['D']} | {r['sampler']} | {r['acceptance']:.2f} | {r['T']} | {r['solver']} | "
            f"{r['gate']} | {iters} | {r['converged']} | {r['max_abs_diff']:.1e} | {r['differing']} | "
            f"{r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, nargs="+", default=[1000])
    p.add_argument("--targets", nargs="+", default=list(TARGETS))
    p.add_argument("--samplers", nargs="+", default=["MALA", "HMC"])
    p.add_argument("--solvers", nargs="+", default=list(SOLVERS))
    p.add_argument("--gates", nargs="+", default=["hard", "smooth"])
    p.add_argument("--gate-temperature", type=float, default=1.0, help="of the smooth gate")
    p.add_argument("--max-iters", type=int, default=1000, help="iteration cap (min with T)")
    p.add_argument("--out", default="sampler_iterations.jsonl")
    p.add_argument("--render", metavar="JSONL", help="print the markdown table of a results file and exit")
    args = p.parse_args()
    if args.render:
        print(render(args.render))
        return
    for T in args.T:
        for target_name in args.targets:
            for kind in args.samplers:
                measure(target_name, kind, T, args.solvers, args.gates, args.max_iters, args.out, args.gate_temperature)


if __name__ == "__main__":
    main()
