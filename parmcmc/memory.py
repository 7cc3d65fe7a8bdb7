"""How much memory a sampling run will hold at its peak, and the refusal of one that cannot fit.

The estimate counts the engine's arrays by solver and window, the per-step statistics, the warmup, and
the scratch memory of one log-density gradient from XLA's memory analysis; `check_memory` refuses the run
before the warmup with the figure and what to do.
"""

import os

import jax
import numpy as np

_BYTES_PER_ITEM = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


def estimate_run_bytes(
    num_chains: int, num_samples: int, dim: int, dtype, solver, window=None, eval_bytes: int = 0
) -> dict:
    """Bytes a sampling run holds at its peak, by part (Python ints: no overflow).

    The engine keeps, per
    chain: the noise (T x (D + 1)), the iterate, f at it and the next iterate (3 T x D), the per-step
    statistics (~6 T), and the Jacobians of a window of W = window or T steps (DEER/ELK: W x D x D,
    quasi methods: W x D, Jacobi/Picard: none) with the associative scan's workspace (about 2x them).
    `eval_bytes`, the scratch memory of one log-density gradient (large for a density over large data), is
    held for all W states of a window at once, times D + 1 tangents for a dense Jacobian.
    """
    item = _BYTES_PER_ITEM.get(np.dtype(dtype).name, 8)
    T, D, C = int(num_samples), int(dim), int(num_chains)
    W = T if window is None else min(int(window), T)
    name = type(solver).__name__
    per_step = {"DEER": D * D, "ELK": 3 * D * D, "QuasiDEER": D, "QuasiELK": 3 * D}.get(name, 0)
    parts = {
        "noise": C * T * (D + 1) * item,
        "states": (C * T * D * item) * (1 if name == "Sequential" else 3),
        "statistics": C * T * 6 * item,
        "jacobians": 0 if name == "Sequential" else 3 * C * W * per_step * item,
    }
    parts["output"] = C * T * D * 8  # the draws as float64 NumPy arrays in the DataTree
    tangents = 1 if name == "Sequential" else (D + 1 if name in ("DEER", "ELK") else 2)
    parts["log density scratch"] = C * (1 if name == "Sequential" else W) * tangents * int(eval_bytes)
    return parts


def log_density_scratch_bytes(logdensity, x) -> int:
    """Scratch memory of one jitted log-density gradient at flat x, from XLA's memory analysis.

    0 unless the density closes over more than 1 MB of data (below that it cannot matter, and the compile is saved).
    """
    try:
        consts = jax.make_jaxpr(logdensity)(x).consts
        if sum(int(np.asarray(c).nbytes) for c in consts if hasattr(c, "shape")) < 2**20:
            return 0
        stats = jax.jit(jax.value_and_grad(logdensity)).lower(x).compile().memory_analysis()
        return int(getattr(stats, "temp_size_in_bytes", 0) or 0)
    except Exception:
        return 0


def available_bytes() -> tuple[int, str]:
    """(bytes, where) of the memory the run can use: the accelerator's limit, or the host's RAM."""
    device = jax.devices()[0]
    try:
        stats = device.memory_stats() or {}
    except Exception:
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{device.platform.upper()} memory"

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "host memory"


def check_memory(
    num_chains,
    num_samples,
    dim,
    dtype,
    solver,
    window=None,
    eval_bytes=0,
    caller="sample",
    num_warmup=0,
    keep_warmup=False,
) -> None:
    """Refuse, before warmup, a run whose estimated peak memory exceeds what the device has.

    The warmup's per-step statistics, and its draws with keep_warmup=True, are included.
    """
    parts = estimate_run_bytes(num_chains, num_samples, dim, dtype, solver, window, eval_bytes)
    item = _BYTES_PER_ITEM.get(np.dtype(dtype).name, 8)
    parts["warmup"] = int(num_chains) * int(num_warmup) * (6 + (int(dim) if keep_warmup else 0)) * item
    total, (limit, where) = sum(parts.values()), available_bytes()
    if total <= 0.8 * limit:
        return
    gb = lambda b: f"{b / 1e9:.3g} GB"
    detail = ", ".join(f"{k} {gb(v)}" for k, v in parts.items() if v)
    fit = max(1, int(num_samples * 0.8 * limit / total))
    hint = ""
    by_window = parts["jacobians"] + parts["log density scratch"]
    if by_window > parts["states"] and window is None:
        w = max(1, int(0.8 * limit - (total - by_window)) * num_samples // max(by_window, 1))
        if w >= 16:
            hint = (
                f" window={min(w, num_samples) // 2} (Jacobians and log-density evaluations for a window of "
                "steps at a time, the same answer),"
            )
    raise MemoryError(
        f"{caller}: this run would need about {gb(total)} ({num_chains} chains x {num_samples} draws x {dim} "
        f"parameters, {type(solver).__name__}: {detail}), more than the {gb(limit)} of {where}. Use{hint} fewer "
        f"draws per call (about {fit} fit; run several calls with new keys and concatenate), fewer chains per "
        "call, a shorter num_warmup (or keep_warmup=False) if the warmup is the large part, or parallel=False "
        "(no Jacobians). Thinning shortens the output only: every step is still solved."
    )
