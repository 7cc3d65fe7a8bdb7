"""Weigh the device: whether a parallel solve of x_t = fn(x_{t-1}, input_t) beats the sequential scan here.

Predictability (parmcmc.diagnostics) says how many Newton iterations a parallel solve needs; whether
that is faster than the sequential chain depends on the device. A sequential step of a cheap density
costs well under a microsecond on a CPU and tens of microseconds of launch latency on a GPU; one
batched sweep over T states costs about T times a step on a CPU and about one launch on a GPU. So
`choose` times short probes on the device at hand and predicts the wall-clock of both:

    sequential  = T * (seconds per step of a timed lax.scan of fn)
    parallel    = k(T) * (seconds of one iteration: a batched evaluation of fn and its Jacobian
                  approximation at T states, and the solver's scan)

Stage 1 needs no pilot solve: if even two batched sweeps of fn alone (a lower bound on any parallel
solve: the first linearisation and one iteration) cost more than the sequential chain, the sequential
chain wins whatever k(T) is. This is the usual verdict on a CPU, and it costs two small compilations.
Stage 2 times one full iteration (the Jacobian approximation and the scan) and stops if two of them
already lose. Stage 3 only then asks the predictability diagnosis (an LLE pilot and a pilot solve)
for k(T). Probes run at fewer states than T and are scaled linearly to T: on a CPU a small probe
(batched cost is linear there), on an accelerator up to PROBE_STATES states (pessimistic for
parallel when even that does not saturate the device). Compilation is not part of the predictions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from parmcmc.engine.solvers import AbstractIterativeSolver, AbstractSolver, Sequential, shift
from parmcmc.jitcache import compiled_call

__all__ = ["Choice", "choose", "weigh"]

MIN_ITERS = 2  # any parallel solve evaluates fn at T states at least this many times
PROBE_STATES = 16384  # batched probes on an accelerator run at min(T, this) states (fewer for large Jacobians)
CPU_PROBE_STATES = 512  # on a CPU a batched sweep costs in proportion to its states: a small probe suffices
PROBE_STEPS = 256  # the sequential probe's length
_REPEATS = 3  # each probe is timed this many times after compiling; the fastest counts
MIN_TIMED = 0.02  # seconds: a timed batch of probe runs lasts at least this long


def _probe_states(T: int) -> int:
    cap = CPU_PROBE_STATES if jax.devices()[0].platform == "cpu" else PROBE_STATES
    return min(T, cap)


class Choice(NamedTuple):
    """What parallel="auto" chose and why.

    Attributes
    ----------
    solver
        The solver to run (Sequential() or the candidate).
    sequential_seconds
        Predicted wall-clock of the sequential chain (one chain, compile excluded).
    parallel_seconds
        Predicted wall-clock of the parallel solve; a lower bound when stage 1 decided.
    predicted_iters
        k(T) from the diagnosis (nan when stage 1 decided without it).
    reason
        One sentence.
    seconds
        What choosing cost (probes and pilots, their compilation included).
    diagnosis
        The predictability Diagnosis, or None when stage 1 decided.
    """

    solver: AbstractSolver
    sequential_seconds: float
    parallel_seconds: float
    predicted_iters: float
    reason: str
    seconds: float
    diagnosis: Any

    def __str__(self) -> str:
        name = type(self.solver).__name__
        return (
            f"auto chose {name}: {self.reason} (predicted sequential {self.sequential_seconds:.3g} s, parallel "
            f"{self.parallel_seconds:.3g} s; choosing took {self.seconds:.2f} s)"
        )


def _fastest(fn: Callable, *args) -> float:
    """Seconds of one run of fn's compiled program.

    Runs are dispatched in batches lasting at least MIN_TIMED seconds (so a short probe is not swamped by one
    wake-up of a busy scheduler), and the fastest of _REPEATS batches counts.
    """
    run = compiled_call(fn, *args)  # compiled once per program (cached across calls)
    t0 = time.perf_counter()
    jax.block_until_ready(run())  # warm up
    batch = int(min(1000, max(1, math.ceil(MIN_TIMED / max(time.perf_counter() - t0, 1e-7)))))
    best = math.inf
    for _ in range(_REPEATS):
        t0 = time.perf_counter()
        for _ in range(batch):
            out = run()
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / batch)
    return best


def _inputs(inputs, n):
    """n steps of inputs.

    Drawn by `inputs(n)` when it is a function (inside the probe's program, so no eager op compiles), else the given
    ones, repeated when there are fewer.
    """
    if callable(inputs):
        return inputs(n)
    m = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    idx = jnp.arange(n) % m
    return jax.tree_util.tree_map(lambda a: a[idx], inputs)


def sequential_seconds(fn, x0, inputs, T: int) -> float:
    """Predicted seconds of T sequential steps, from a timed lax.scan of min(T, PROBE_STEPS) steps."""
    n = min(T, PROBE_STEPS)
    return _fastest(lambda x: Sequential().scan(fn, x, _inputs(inputs, n)), x0) * T / n


def sweep_seconds(fn, x0, inputs, T: int) -> float:
    """Predicted seconds of one batched evaluation of fn at T states, from a probe at fewer states."""
    n = _probe_states(T)
    return _fastest(lambda x: jax.vmap(fn)(jnp.broadcast_to(x, (n, *x.shape)), _inputs(inputs, n)), x0) * T / n


def iteration_seconds(fn, x0, inputs, solver: AbstractIterativeSolver, T: int) -> float:
    """Predicted seconds of one iteration of `solver` at T states.

    Its linearisation (fn and the Jacobian approximation at every state) and its step (the scan and the next
    linearisation), from a probe at fewer states (fewer still when dense Jacobians would be large).
    """
    d = x0.shape[0]
    n = max(2, min(_probe_states(T), (1 << 26) // max(1, d * d)))

    def one_iteration(x0):
        X, U = jnp.broadcast_to(x0, (n, *x0.shape)), _inputs(inputs, n)
        aux = solver.init(x0, n)
        lin = solver.linearize(fn, shift(X, x0), U, aux)
        return solver.step(fn, x0, X, U, aux, lin, solver.init_state(x0))[0]

    return _fastest(one_iteration, x0) * T / n


def weigh(iteration_s: float, predicted_iters: float) -> float:
    """Predicted parallel seconds: k(T) iterations plus the first linearisation."""
    return (predicted_iters + 1) * iteration_s if math.isfinite(predicted_iters) else math.inf


def choose(fn: Callable, x0: Any, inputs: Any, solver: AbstractSolver, T: int, diagnose: Callable) -> Choice:
    """The faster of Sequential() and `solver` for a T-step solve of fn on this device.

    Parameters
    ----------
    fn, x0
        The step map and start (x0 a flat float vector, or a pytree: it is flattened).
    inputs
        `n -> inputs` of n steps (drawn inside the probes' programs), or a sample of the inputs (leading axis >= 1;
        cycled when shorter than a probe).
    solver
        The parallel candidate.
    diagnose
        () -> Diagnosis with `predicted_iters` and `parallel_pays`; called only in stage 2.
    T
        The number of steps of the chain to weigh.

    Returns
    -------
    Choice
        The solver to run, the predicted seconds of both and why.
    """
    if not isinstance(solver, AbstractIterativeSolver):  # Sequential has no iteration to time
        raise TypeError(f"choose: solver must be a parallel solver such as QuasiDEER() or DEER(); got {solver!r}.")
    t_start = time.perf_counter()
    x_flat, unravel = ravel_pytree(x0)
    flat_fn = lambda x, u: ravel_pytree(fn(unravel(x), u))[0].astype(x.dtype)
    seq = sequential_seconds(flat_fn, x_flat, inputs, T)
    platform = jax.devices()[0].platform.upper()
    lower = MIN_ITERS * sweep_seconds(flat_fn, x_flat, inputs, T)
    name = type(solver).__name__
    if lower >= seq:
        reason = (
            f"on {platform} even {MIN_ITERS} batched sweeps of the step map over {T} states cost more than "
            "the sequential chain"
        )
        return Choice(Sequential(), seq, lower, math.nan, reason, time.perf_counter() - t_start, None)
    iteration = iteration_seconds(flat_fn, x_flat, inputs, solver, T)
    if weigh(iteration, MIN_ITERS - 1) >= seq:
        reason = (
            f"on {platform} even {MIN_ITERS} iterations of {name} over {T} states cost more than the sequential chain"
        )
        return Choice(
            Sequential(), seq, weigh(iteration, MIN_ITERS - 1), math.nan, reason, time.perf_counter() - t_start, None
        )
    diagnosis = diagnose()
    k = float(diagnosis.predicted_iters)
    par = weigh(iteration, k)
    if not diagnosis.parallel_pays:
        return Choice(Sequential(), seq, par, k, diagnosis.reason, time.perf_counter() - t_start, diagnosis)
    if par < seq:
        reason = f"{name}'s predicted {k:.0f} iterations beat the sequential chain on {platform}"
        return Choice(solver, seq, par, k, reason, time.perf_counter() - t_start, diagnosis)
    reason = f"{name}'s predicted {k:.0f} iterations cost more than the sequential chain on {platform}"
    return Choice(Sequential(), seq, par, k, reason, time.perf_counter() - t_start, diagnosis)
