"""Where a solve's compile time goes: trace + lower vs XLA compile, and the size of the program.

    ./dev.sh bench compile_profile [T ...] (default T = 1000)
    ./dev.sh bench compile_profile cases [banana logistic gaussian] [--T T]
    ./dev.sh bench compile_profile eight_schools [repeats]

The second form compiles the bench's parallel program of each case (parmcmc/bench/cases.py:
``jax.jit(vmap(run_chain))``, noise + solve + statistics and exactness) and each of its three parts alone,
and prints CPU seconds of trace, lower and XLA compile, and the kernels of the optimised program.

The third compiles the program that ``sample(parallel=True)`` runs for eight schools (non-centred, float64, 4 chains x
2000 draws after 1000 warmup, the default HMC; the warmup runs first) and prints its CPU seconds and kernels.

For QuasiDEER, DEER, ELK and QuasiELK on the RNN cell of parmcmc/bench/scan_compile.py (D = 4, float64):
seconds to trace and lower a jitted solve, seconds for XLA to compile it (wall-clock, and the
process's CPU seconds, which a loaded machine inflates less), the number of HLO
instructions before optimisation (StableHLO ops counted in the lowered text) and after (the optimised
HLO module), and the number of while loops. docs/performance.md records the figures.
"""

import re
import sys
import time

import jax
import jax.numpy as jnp

if sys.argv[1:2] != ["cases"]:  # the bench cases run in float32
    jax.config.update("jax_enable_x64", True)

from parmcmc.engine import DEER, ELK, QuasiDEER, QuasiELK, solve


def step(x, u):
    """A contracting nonlinear recurrence (an RNN cell) with D = x.size."""
    return jnp.tanh(0.5 * x + 0.3 * jnp.roll(x, 1) + u)


def profile(solver, T, D=4):
    u, x0 = jax.random.normal(jax.random.key(1), (T, D)), jnp.zeros(D)
    fn = lambda x0, u: solve(step, x0, u, solver).states
    jax.clear_caches()
    c0, t0 = time.process_time(), time.perf_counter()
    lowered = jax.jit(fn).lower(x0, u)
    c1, t1 = time.process_time(), time.perf_counter()
    compiled = lowered.compile()
    c2, t2 = time.process_time(), time.perf_counter()
    text = lowered.as_text()
    ops = len(re.findall(r"^\s*(?:%\S+ = )?\"?[a-z_]+\.[a-z_]+", text, flags=re.M))
    hlo = compiled.as_text() or ""
    hlo_ops = len(re.findall(r"^\s*(?:ROOT )?%?\S+ = ", hlo, flags=re.M))
    whiles = len(re.findall(r" while\(", hlo))
    return (t1 - t0, c1 - c0), (t2 - t1, c2 - c1), ops, hlo_ops, whiles


def _timed_compile(fn, *args):
    """(trace, lower, compile) CPU seconds and the optimised HLO's kernel count for jax.jit(fn)(*args).

    Compiled with the options sample() compiles a parallel program with (parmcmc.jitcache.compiler_options).
    """
    from parmcmc.jitcache import compiler_options

    jax.clear_caches()
    c0 = time.process_time()
    traced = jax.jit(fn).trace(*args)
    c1 = time.process_time()
    lowered = traced.lower()
    c2 = time.process_time()
    compiled = lowered.compile(compiler_options(args, light=True))
    c3 = time.process_time()
    hlo = compiled.as_text() or ""
    kernels = len(re.findall(r"= \S+ (?:fusion|custom-call|copy|dot|sort|reduce|scatter|gather)\(", hlo))
    return (c1 - c0, c2 - c1, c3 - c2), kernels


def profile_case(name, T=None):
    """The bench program of one case and its parts: {part: ((trace, lower, compile) CPU s, kernels)}."""
    from parmcmc.bench import cases
    from parmcmc.chain import _stats_and_exactness_body
    from parmcmc.engine import default_tolerance

    case = getattr(cases, {"banana": "banana", "logistic": "logistic", "gaussian": "gaussian_100d"}[name])
    case = case() if T is None else case(T)
    key_init, key_run = jax.random.split(jax.random.key(0))
    x0 = case.init(key_init).astype(case.dtype)
    keys = jax.random.split(key_run, case.num_chains)
    sampler = cases._sampler(case).bind(x0[0])
    kw = {} if case.max_iters is None else {"max_iters": case.max_iters}
    from parmcmc.chain import run_chain

    whole = lambda keys, x0: jax.vmap(lambda k, x: run_chain(sampler, x, k, case.num_steps, solver=case.solver, **kw))(
        keys, x0
    )
    noise = lambda keys: jax.vmap(lambda k: sampler.noise(k, case.num_steps))(keys)
    U = jax.jit(noise)(keys)
    the_solve = lambda U, x0: jax.vmap(lambda u, x: solve(sampler.step, x, u, case.solver, **kw))(U, x0)
    X = jnp.broadcast_to(x0[:, None], (case.num_chains, case.num_steps, x0.shape[1]))
    tol = default_tolerance(x0.dtype)
    stats = lambda x0, X, U: jax.vmap(lambda x, s, u: _stats_and_exactness_body(sampler, True, x, s, u, tol, tol))(
        x0, X, U
    )
    import warnings

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["whole"] = _timed_compile(whole, keys, x0)
        out["noise"] = _timed_compile(noise, keys)
        out["solve"] = _timed_compile(the_solve, U, x0)
        out["stats"] = _timed_compile(stats, x0, X, U)
        out["whole again"] = _timed_compile(whole, keys, x0)  # the first one also paid the process's first traces
    return case, out


def main_cases(argv):
    T = None
    if "--T" in argv:
        i = argv.index("--T")
        T, argv = int(argv[i + 1]), argv[:i] + argv[i + 2 :]
    names = argv or ["banana", "logistic", "gaussian"]
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; CPU s: trace / lower / compile = total", flush=True)
    for name in names:
        case, out = profile_case(name, T)
        parts = "; ".join(
            f"{part} {t[0]:.2f}/{t[1]:.2f}/{t[2]:.2f}={sum(t):.2f} ({k} kernels)" for part, (t, k) in out.items()
        )
        print(f"{name} T={case.num_steps} {type(case.solver).__name__}: {parts}", flush=True)


def sample_program(repeats: int = 2):
    """Compile eight schools' sample(parallel=True) program `repeats` times: ((trace, lower, compile), kernels) each."""
    import parmcmc
    from parmcmc import api
    from parmcmc.models.builtin import eight_schools

    class Captured(Exception):
        pass

    captured = {}

    def capture(fn, **options):  # stands in for api.program_jit: keeps the program and its arguments, runs nothing
        def call(*args):
            captured["program"] = (fn, args)
            raise Captured

        return call

    ex, program_jit = eight_schools(), api.program_jit
    api.program_jit = capture
    try:
        parmcmc.sample(
            ex.model,
            model_args=ex.model_args,
            model_kwargs=ex.model_kwargs,
            rng_key=jax.random.key(0),
            num_samples=2000,
            num_warmup=1000,
            num_chains=4,
            parallel=True,
            progress_bar=False,
        )
    except Captured:
        pass
    finally:
        api.program_jit = program_jit
    fn, args = captured["program"]
    from parmcmc.engine.solve import unconverged_reported_by_caller

    with unconverged_reported_by_caller():  # as sample() traces it: it reports unconverged chains itself
        return [_timed_compile(fn, *args) for _ in range(repeats)]


if __name__ == "__main__" and sys.argv[1:2] == ["cases"]:
    main_cases(sys.argv[2:])
elif __name__ == "__main__" and sys.argv[1:2] == ["eight_schools"]:
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; CPU s: trace / lower / compile = total", flush=True)
    for t, k in sample_program(int(sys.argv[2]) if len(sys.argv) > 2 else 2):
        print(f"eight schools sample(parallel=True): {t[0]:.2f}/{t[1]:.2f}/{t[2]:.2f}={sum(t):.2f} ({k} kernels)")
elif __name__ == "__main__":
    Ts = [int(a) for a in sys.argv[1:]] or [1000]
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, float64, D = 4", flush=True)
    for T in Ts:
        for solver in (QuasiDEER(), DEER(), ELK(), QuasiELK()):
            lower_s, compile_s, ops, hlo_ops, whiles = profile(solver, T)
            print(
                f"{type(solver).__name__:9s} T={T:7d}  trace+lower {lower_s[0]:5.2f} s (CPU {lower_s[1]:5.2f} s)  "
                f"compile {compile_s[0]:5.2f} s (CPU {compile_s[1]:5.2f} s)  "
                f"lowered ops {ops:6d}  optimised HLO instructions {hlo_ops:6d}  while loops {whiles:3d}",
                flush=True,
            )
