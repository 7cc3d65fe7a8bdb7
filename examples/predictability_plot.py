"""Measured Newton iterations against T for a predictable and an unpredictable recurrence.

    PYTHONPATH=. python examples/predictability_plot.py [max_T]

writes docs/img/predictability.png and docs/img/predictability.json (the measurements), and prints a
markdown table of every measured count, the prediction of `diagnose_recurrence` from a 1,024-step
pilot, and the versions. float64 throughout.

- LLE < 0: a contractive tanh RNN, x_t = tanh(W x_{t-1} + u_t), D = 8, W ~ 0.9 N(0, 1/D).
- LLE > 0: the sine map x_t = sin(pi x_{t-1}) (chaotic on [0, 1], LLE about 0.69; bounded on all of R,
  so Newton iterates stay finite longer than on the logistic map, which overflows within 2 iterations).
Every solve runs with max_iters = T, the bound of the exact-prefix argument.
"""

import json
import math
import sys
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from parmcmc.bench import systems  # noqa: E402
from parmcmc.bench.timing import versions  # noqa: E402
from parmcmc.diagnostics import diagnose_recurrence, iteration_budget  # noqa: E402
from parmcmc.engine import DEER, Jacobi, QuasiDEER, solve  # noqa: E402

PILOT = 1024


def tanh_rnn(T):
    return systems.tanh_rnn(D=8, T=T)


def sine_map(T):
    return (lambda x, u: jnp.sin(jnp.pi * x)), jnp.array([0.3]), jnp.zeros((T, 1))


CASES = [
    ("tanh RNN (LLE<0)", tanh_rnn, DEER(), "tab:blue", "o"),
    ("tanh RNN (LLE<0)", tanh_rnn, QuasiDEER(), "tab:cyan", "s"),
    ("sine map (LLE>0)", sine_map, DEER(), "tab:red", "o"),
    ("sine map (LLE>0)", sine_map, DEER(clip=1.0), "tab:orange", "D"),
    ("sine map (LLE>0)", sine_map, Jacobi(), "tab:brown", "^"),
]


def label(name, solver):
    extra = "(clip=1)" if getattr(solver, "clip", None) else ""
    return f"{name}, {type(solver).__name__}{extra}"


def measure(Ts):
    rows = []
    for name, make, solver, _, _ in CASES:
        fn, x0, inputs = make(max(Ts))
        diag = None
        if not isinstance(solver, Jacobi):  # Jacobi is not an LDS solver worth predicting here
            diag = diagnose_recurrence(fn, x0, inputs[: 4 * PILOT], solver=solver, T=PILOT, pilot_steps=PILOT)
            print(f"# {label(name, solver)}: {diag.reason}", flush=True)
        for T in Ts:
            t0 = time.perf_counter()
            sol = solve(fn, x0, inputs[:T], solver, max_iters=T)
            result = {1: "converged", 2: "max_iters", 3: "non-finite"}[int(sol.result)]
            predicted = None if diag is None else diag.predicted_at(T)
            rows.append(
                dict(
                    case=name,
                    solver=label(name, solver),
                    T=T,
                    iters=int(sol.num_iters),
                    result=result,
                    prefix=int(sol.sequential_from),
                    lle=None if diag is None else diag.lle,
                    predicted=predicted,
                    pays=None if diag is None else diag.parallel_pays,
                    seconds=time.perf_counter() - t0,
                )
            )
            r = rows[-1]
            print(f"{r['solver']:40s} T={T:6d} iters={r['iters']:6d} {result:10s} ({r['seconds']:.1f} s)", flush=True)
    return rows


def plot(rows, Ts, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, _, solver, color, marker in CASES:
        lab = label(name, solver)
        mine = [r for r in rows if r["solver"] == lab]
        ok = [r for r in mine if r["result"] == "converged"]
        bad = [r for r in mine if r["result"] != "converged"]
        ax.plot([r["T"] for r in ok], [r["iters"] for r in ok], marker=marker, color=color, label=lab)
        if bad:
            ax.scatter(
                [r["T"] for r in bad],
                [max(r["iters"], 1) for r in bad],
                marker="x",
                s=70,
                color=color,
                label=f"{lab}: failed (non-finite) at this iteration",
            )
        pred = [r for r in mine if r["predicted"] is not None and math.isfinite(r["predicted"])]
        if pred:
            ax.plot([r["T"] for r in pred], [r["predicted"] for r in pred], ls="--", lw=1, color=color, alpha=0.7)
    ax.plot(Ts, [iteration_budget(T) for T in Ts], color="grey", lw=2, alpha=0.5, label="budget 8 log2 T")
    ax.plot(Ts, Ts, color="black", ls=":", lw=1, label="T (one exact state per iteration)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="T (steps)",
        ylabel="Newton iterations to converge (x: to failure)",
        title="Iterations against T (dashed: prediction from a 1,024-step pilot)",
    )
    ax.set_xticks(Ts, [f"{T // 1024}k" for T in Ts])
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def markdown(rows) -> str:
    out = [
        "| recurrence, solver | T | iterations | outcome | predicted from pilot | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        pred = "" if r["predicted"] is None else f"{r['predicted']:.0f}"
        out.append(f"| {r['solver']} | {r['T']} | {r['iters']} | {r['result']} | {pred} | {r['seconds']:.1f} |")
    return "\n".join(out)


if __name__ == "__main__":
    max_T = int(sys.argv[1]) if len(sys.argv) > 1 else 32768
    Ts = [1024 * 2**k for k in range(int(math.log2(max_T // 1024)) + 1)]
    rows = measure(Ts)
    with open("docs/img/predictability.json", "w") as f:
        json.dump({"rows": rows, "versions": versions()}, f, indent=1)
    plot(rows, Ts, "docs/img/predictability.png")
    print(markdown(rows))
    print(versions())
