"""The benchmark presets and studies: ``./dev.sh bench`` runs ``python -m parmcmc.bench``.

python -m parmcmc.bench [cpu | gpu | engine | samplers] [--out DIR] [--only CASES] [--small] [--budget SECONDS]
   (or: suite [options], see parmcmc/bench/suite.py; ess [options], see parmcmc/bench/ess.py; or NAME [args]
   for one of the studies in SCRIPTS below, each described in its own module's docstring: banana_damping,
   compile_profile, device_wheels, elk, hmc_solvers, large_data, sampler_iterations, scan_compile, sharded_memory,
   time_to_result)

Prints a table, and writes it as JSON and Markdown to DIR (default bench-results/). Presets:
  cpu     small sizes that finish in minutes on a 2-core machine (CPU figures: iterations, memory,
          compile time; a CPU gains no wall-clock for cheap densities)
  gpu     the published sizes (banana T=100k HMC, logistic regression 4x16,384 MALA, 100-D Gaussian
          T=10k and 100k, eight schools, iterations against T up to 128k)
  engine  the tanh RNN with every solver, and QuasiDEER against DEER memory at D=64
  samplers  ESS, r-hat, ESS/s against NumPyro's NUTS; HMC jitter LLE; MALA preconditioning's Newton
          iterations (parmcmc/bench/samplers.py; --only jitter newton table)
"""

import argparse
import json
import os
import time
from typing import Any

import jax

from parmcmc.bench import cases
from parmcmc.bench.timing import versions

# Studies with a command line of their own (each module's docstring gives it): `./dev.sh bench NAME [args]`.
SCRIPTS = (
    "banana_damping",
    "compile_profile",
    "device_wheels",
    "elk",
    "hmc_solvers",
    "large_data",
    "sampler_iterations",
    "scan_compile",
    "sharded_memory",
    "time_to_result",
)
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(banana=10_000, logistic=2_048, gaussian=(2_000,), schools=1_000, sweep=(1_000, 2_000, 4_000, 8_000)),
    "gpu": dict(
        banana=100_000,
        logistic=16_384,
        gaussian=(10_000, 100_000),
        schools=10_000,
        sweep=tuple(1_000 * 2**k for k in range(8)),
    ),
}
COLUMNS = [
    "case",
    "sampler",
    "solver",
    "D",
    "T",
    "chains",
    "dtype",
    "newton_iterations",
    "converged",
    "fell_back",
    "parallel_s",
    "sequential_s",
    "speedup_vs_sequential_same_device",
    "sequential_cpu_s",
    "speedup_vs_sequential_cpu",
    "max_abs_diff",
    "accept_decisions_differing",
    "parallel_temp_MiB",
    "parallel_compile_s",
    "parallel_compile_cpu_s",
    "sequential_compile_s",
    "iteration_s",
    "floor_s",
    "marginal_iteration_s",
    "loop_floor_s",
    "cost_ratio",
    "cost_ratio_median",
    "solve_compile_cpu_s",
]


def markdown(rows, columns=COLUMNS) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def schools_row(num_samples):
    from parmcmc.compare import compare
    from parmcmc.models.builtin import eight_schools

    ex = eight_schools()
    cmp = compare(
        ex.model,
        rng_key=jax.random.key(0),
        sampler="hmc",
        num_samples=num_samples,
        num_warmup=1000,
        num_chains=4,
        model_args=ex.model_args,
        model_kwargs=ex.model_kwargs,
        progress_bar=False,
    )
    par, seq = cmp.runs.loc["parallel"], cmp.runs.loc["sequential"]
    return dict(
        case="eight schools (sample())",
        sampler="HMC",
        solver=par["solver"],
        D=10,
        T=num_samples,
        chains=4,
        dtype="float64" if jax.config.jax_enable_x64 else "float32",
        newton_iterations=int(par["newton_iterations"]),
        converged=bool(par["converged"]),
        fell_back=bool(par["fell_back"]),
        parallel_s=float(par["wall_clock_s"]),
        sequential_s=float(seq["wall_clock_s"]),
        speedup_vs_sequential_same_device=float(seq["wall_clock_s"]) / float(par["wall_clock_s"]),
        max_abs_diff=cmp.max_abs_diff,
        parallel_compile_s=float(par["compile_s"]),
    )


def sweep(Ts, out_dir):
    """Newton iterations against T for a predictable target (MALA, 100-D Gaussian), with a plot."""
    rows = [cases.run_case(cases.gaussian_100d(T), repeats=1, cpu_sequential=False, cost=False) for T in Ts]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r["T"] for r in rows], [r["newton_iterations"] for r in rows], "o-")
        ax.set(
            xscale="log",
            xlabel="chain length T",
            ylabel="Newton iterations",
            title="MALA, 100-D ill-conditioned Gaussian, QuasiDEER",
        )
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "iterations_vs_T.png"), dpi=120)
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
    return rows


def main(argv=None):
    if argv is None:
        import sys

        argv = sys.argv[1:]
    if argv[:1] == ["ess"]:  # ESS and ESS/s per suite model and sampler against NUTS (parmcmc/bench/ess.py)
        from parmcmc.bench import ess

        return ess.main(argv[1:])
    if argv[:1] == ["suite"]:  # the model suite has its own options (parmcmc/bench/suite.py)
        from parmcmc.bench import suite

        return suite.main(argv[1:])
    if argv[:1] and argv[0] in SCRIPTS:  # a study with its own command line, run as `python -m parmcmc.bench.NAME`
        import runpy
        import sys

        sys.argv = [f"parmcmc.bench.{argv[0]}", *argv[1:]]
        runpy.run_module(f"parmcmc.bench.{argv[0]}", run_name="__main__", alter_sys=True)
        return None
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", nargs="?", default="cpu", choices=["cpu", "gpu", "engine", "samplers"])
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--only", nargs="*", help="case names: banana logistic gaussian schools sweep")
    parser.add_argument("--small", action="store_true", help="every size / 16: check a preset runs (e.g. gpu on a CPU)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds after which no further case starts (default: 420 for gpu, to fit 8 minutes)",
    )
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 420.0 if args.preset == "gpu" else float("inf")
    os.makedirs(args.out, exist_ok=True)
    info = versions()
    print(f"parmcmc bench '{args.preset}' on {info['device']} ({info['cpu_count']} CPUs), jax {info['jax']}")
    if args.preset == "samplers":
        from parmcmc.bench import samplers

        out = samplers.main(tuple(args.only or ("jitter", "newton", "table")))
        _write(args.out, "samplers", info, out, "\n\n".join(samplers.markdown(r) for r in out.values()))
        return
    if args.preset == "engine":
        from parmcmc.bench import engine

        rows, mem = engine.run()
        text = engine.markdown(rows, mem)
        _write(args.out, "engine", info, rows + mem, text)
        return
    p: dict[str, Any]
    p, only = PRESETS[args.preset], set(args.only or ["banana", "logistic", "gaussian", "schools", "sweep"])
    if args.small:  # the same cases at 1/16 of their sizes: checks a preset runs, on any device
        p = {
            k: tuple(max(256, T // 16) for T in v) if isinstance(v, tuple) else max(256, v // 16) for k, v in p.items()
        }
    rows, started, skipped = [], time.time(), []

    def timed(name, make):
        """Run one case unless the time budget is spent (so one call fits a lent device's window)."""
        if time.time() - started > args.budget:
            skipped.append(name)
            return []
        out = make()
        for r in out:
            print(
                f"{r['case']} T={r['T']}: the parallel program (noise + solve + statistics and exactness) compiles "
                f"in {r.get('parallel_compile_s', float('nan')):.2f} s "
                f"(CPU {r.get('parallel_compile_cpu_s', float('nan')):.2f} s; the solve alone, CPU "
                f"{r.get('solve_compile_cpu_s', float('nan')):.2f} s), "
                f"{r.get('newton_iterations')} iterations, cost ratio {r.get('cost_ratio', float('nan')):.2f} "
                f"(medians {r.get('cost_ratio_median', float('nan')):.2f}; rounds' quartiles "
                f"{', '.join(f'{q:.2f}' for q in r.get('cost_ratio_rounds', ()))}), "
                f"parallel {r.get('parallel_s', float('nan')):.3g} s, "
                f"sequential {r.get('sequential_s', float('nan')):.3g} s "
                f"(CPU {r.get('sequential_cpu_s', float('nan')):.3g} s)",
                flush=True,
            )
        return out

    if "banana" in only:
        rows += timed("banana", lambda: [cases.run_case(cases.banana(p["banana"]))])
    if "logistic" in only:
        rows += timed("logistic", lambda: [cases.run_case(cases.logistic(p["logistic"]))])
    if "gaussian" in only:
        for T in p["gaussian"]:
            rows += timed(f"gaussian T={T}", lambda T=T: [cases.run_case(cases.gaussian_100d(T))])
    if "schools" in only:
        rows += timed("schools", lambda: [schools_row(p["schools"])])
    text = markdown(rows)
    if "sweep" in only and time.time() - started > args.budget:
        skipped.append("sweep")
    elif "sweep" in only:
        text += "\n\nNewton iterations against T (plot: iterations_vs_T.png)\n\n" + markdown(
            sweep(p["sweep"], args.out), ["case", "T", "newton_iterations", "converged", "parallel_s"]
        )
    if skipped:
        text += f"\n\nSkipped (time budget of {args.budget:.0f} s spent): {', '.join(skipped)}"
    text += f"\n\n{info}; total {time.time() - started:.0f} s"
    _write(args.out, args.preset, info, rows, text)


def _write(out, name, info, rows, text):
    print(text)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump({"versions": info, "rows": rows}, f, indent=1, default=str)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
