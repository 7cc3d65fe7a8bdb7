"""Measuring helpers shared by the benchmarks: compile time, median wall-clock, compiled memory."""

import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import jax


class Timing(NamedTuple):
    compile_s: float  # lowering + compilation, measured once
    median_s: float  # median over `repeats` runs of the compiled function, results blocked on
    runs_s: tuple  # every run
    temp_bytes: int  # XLA's buffer for intermediates (the working memory of the computation)
    output_bytes: int
    compile_cpu_s: float = 0.0  # the process's CPU seconds for lowering + compilation: on a shared machine
    # less inflated by load than compile_s (XLA's CPU compilation is mostly single-threaded)


def time_jitted(fn: Callable, *args, repeats: int = 3, light: bool = False) -> tuple:
    """Compile `fn` for `args`, run it `repeats` times after one warm-up, return (result, Timing).

    light: compile as sample() compiles a parallel program (parmcmc.jitcache.compiler_options: on a CPU, LLVM at
    level 1).
    """
    from parmcmc.jitcache import compiler_options

    c0, t0 = time.process_time(), time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile(compiler_options(args, light=light))
    compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    mem = compiled.memory_analysis()
    out = jax.block_until_ready(compiled(*args))  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t0)
    temp = int(getattr(mem, "temp_size_in_bytes", 0) or 0)
    outb = int(getattr(mem, "output_size_in_bytes", 0) or 0)
    return out, Timing(compile_s, statistics.median(runs), tuple(runs), temp, outb, compile_cpu_s)


def memory_only(fn: Callable, *args) -> int:
    """XLA's intermediate-buffer size for fn(*args), from compilation alone (nothing is run)."""
    mem = jax.jit(fn).lower(*args).compile().memory_analysis()
    return int(getattr(mem, "temp_size_in_bytes", 0) or 0)


def versions() -> dict:
    import platform

    import numpyro

    import parmcmc

    dev = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "parmcmc": getattr(parmcmc, "__version__", "dev"),
        "python": platform.python_version(),
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "cpu_count": __import__("os").cpu_count(),
    }
