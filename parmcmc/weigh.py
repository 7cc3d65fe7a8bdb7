"""Weigh the device: whether a parallel solve of x_t = fn(x_{t-1}, input_t) beats the sequential scan here.

Predictability (parmcmc.diagnostics) says how many Newton iterations a parallel solve needs; whether
that is faster than the sequential chain depends on the device. A sequential step of a cheap density
costs well under a microsecond on a CPU and tens of microseconds of launch latency on a GPU; one
batched sweep over T states costs about T times a step on a CPU and about one launch on a GPU. So
`choose` times short probes on the device at hand and predicts the wall-clock of both:

    sequential  = T * (seconds per step: of the warmup's own run, or of a timed lax.scan of fn)
    parallel    = k(T) * (seconds of one iteration: a batched evaluation of fn and its Jacobian
                  approximation at T states, and the solver's scan)

Stage 0 needs no probe at all: on a CPU a batched evaluation at T states saves at most
`DeviceModel.batch_gain` (2) per state over a sequential step (measured on this project's models: at
most 1.33, docs/performance.md), and any parallel solve linearises the chain at least MIN_ITERS times
(f and its Jacobian approximation: one tangent per column of a dense or exact-diagonal Jacobian, one
per Hutchinson probe, each costing at least TANGENT_WEIGHT of an evaluation). When that lower bound
already costs more than the sequential chain, the sequential chain wins whatever the iteration count,
and no program is compiled. On a CPU it always does (two linearisations at a gain of at most 2 already
cost the chain), so the probes and the pilot below run on accelerators only. The sequential chain's
price comes from the warmup's own run (api.prepare times its execution: `sequential_step_seconds`); a
timed scan is the fallback when there was no warmup. The warmup's step (adaptation included) bounds a
sampling step from above: it may rule the parallel solve out, but before the parallel solve is chosen
(stage 3) a timed scan prices the chain itself.
Stage 1: if even two batched sweeps of fn (a lower bound on any plain solve) cost more than the chain, the
chain wins whatever k(T) is (one small compilation). A block solve skips it (weigh_blocks.py).
Stage 2 times one full iteration (the Jacobian approximation and the scan) and stops if two of them
already lose. Stage 3 only then asks the predictability diagnosis (an LLE pilot and a pilot solve)
for k(T). Probes run at fewer states than T and are scaled linearly to T: on a CPU a small probe
(batched cost is linear there), on an accelerator up to PROBE_STATES states (pessimistic for
parallel when even that does not saturate the device). Compilation is not part of the predictions.
A probe's timing is kept for the process (keyed on its traced program and shapes): a second call of
the same model and sizes times nothing again.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from parmcmc.engine.blocks import Shooting, block_of
from parmcmc.engine.solvers import DEER, AbstractIterativeSolver, AbstractSolver, QuasiDEER, Sequential, shift
from parmcmc.jitcache import Program, compiled_call
from parmcmc.validate import IgnoredArgumentWarning
from parmcmc.weigh_blocks import decide_blocks, one_block_iteration

__all__ = ["Choice", "DeviceModel", "auto", "choose", "cost_model_choice", "device_model", "warn_if_declined", "weigh"]

MIN_ITERS = 2  # any parallel solve evaluates fn at T states at least this many times
PROBE_STATES = 16384  # batched probes on an accelerator run at min(T, this) states (fewer for large Jacobians)
CPU_PROBE_STATES = 512  # on a CPU a batched sweep costs in proportion to its states: a small probe suffices
PROBE_STEPS = 256  # the sequential probe's length
_REPEATS = 3  # each probe is timed this many times after compiling; the fastest counts
MIN_TIMED = 0.02  # seconds: a timed batch of probe runs lasts at least this long
# The most a batched evaluation of the step map at T states saves per state over one sequential step on
# a CPU. Measured (docs/performance.md, "parallel=auto, the default"): 0.14-1.33 on seven of this
# project's models; the bound keeps a margin of 1.5 above the largest.
CPU_BATCH_GAIN = 2.0
# The least one tangent (a column of the Jacobian, or a Hutchinson probe) costs, in evaluations of the
# step map, when batched at every state (measured: 0.03-3.1). With MIN_ITERS / CPU_BATCH_GAIN = 1 a CPU
# needs no tangent to decide; they only widen the margin.
TANGENT_WEIGHT = 0.02


class DeviceModel(NamedTuple):
    """What parallel="auto" assumes about the device before it times anything.

    platform:    "cpu", "gpu", "tpu", ... (for the reason it prints).
    batch_gain:  the most a batched evaluation at T states saves per state over one sequential step;
                 None where it is unknown (an accelerator: thousands of states cost about one launch),
                 and the probes decide.
    """

    platform: str
    batch_gain: float | None


def device_model() -> DeviceModel:
    """The default device of this process: a CPU's batched sweep saves at most CPU_BATCH_GAIN per state."""
    platform = jax.devices()[0].platform
    return DeviceModel(platform, CPU_BATCH_GAIN if platform == "cpu" else None)


def num_tangents(solver: AbstractSolver, dim: int) -> int:
    """Tangents (forward passes) per state of one linearisation by `solver`.

    D for a dense or exact-diagonal Jacobian, one per Hutchinson probe, none for Jacobi/Picard (whose A_t needs no
    derivative).
    """
    solver = getattr(solver, "solver", solver)  # a block solve (Shooting) linearises with its inner solver
    linearizer = getattr(solver, "linearizer", solver)  # ELK and QuasiELK linearise with DEER / QuasiDEER
    if isinstance(linearizer, QuasiDEER):
        return linearizer.num_probes if linearizer.diagonal == "hutchinson" else dim
    return dim if isinstance(linearizer, DEER) else 0


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
            f"{self.parallel_seconds:.3g} s; choosing took {self.seconds:.2g} s)"
        )


def _fastest(fn: Callable, *args) -> float:
    """Seconds of one run of fn's compiled program.

    Runs are dispatched in batches lasting at least MIN_TIMED seconds (so a short probe is not swamped by one
    wake-up of a busy scheduler), and the fastest of _REPEATS batches counts. Kept for the process per traced
    program and shapes (_TIMED).
    """
    closed = jax.make_jaxpr(lambda *a: fn(*a))(*args)
    key = (Program(closed.jaxpr), tuple(jax.typeof(x) for x in (*closed.consts, *jax.tree_util.tree_leaves(args))))
    if key in _TIMED:
        return _TIMED[key]
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
    _TIMED[key] = best
    return best


_TIMED: dict = {}  # (program, shapes) -> seconds of one run: the device's figure, measured once per process


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


def block_iteration_seconds(fn, x0, inputs, solver: Shooting, T: int) -> float:
    """Predicted seconds of one iteration of the block solve `solver` at T states (weigh_blocks.py)."""
    B = block_of(solver, T) or T
    n = max(1, _probe_states(T) // B)  # whole blocks, at least one
    return _fastest(one_block_iteration(fn, solver, B, n, lambda: _inputs(inputs, n * B)), x0) * max(1.0, T / (n * B))


def weigh(iteration_s: float, predicted_iters: float) -> float:
    """Predicted parallel seconds: k(T) iterations plus the first linearisation."""
    return (predicted_iters + 1) * iteration_s if math.isfinite(predicted_iters) else math.inf


def cost_model_choice(
    solver: AbstractSolver,
    dim: int,
    T: int,
    step_seconds: float,
    device: DeviceModel | None = None,
    t_start: float | None = None,
    source: str = "the warmup's steps",
) -> Choice | None:
    """Stage 0: the sequential chain when the device's cost model alone proves that `solver` cannot win.

    No program is compiled and nothing runs on the device.

    Parameters
    ----------
    solver
        The parallel candidate; its tangents per linearisation come from `num_tangents`.
    dim, T
        The flat state's size and the chain's length.
    step_seconds
        Seconds of one sequential step (sample() passes its warmup's).
    device
        The `DeviceModel` to assume (default: `device_model()`).
    t_start, source
        When choosing began (for `Choice.seconds`) and where `step_seconds` came from (for the reason).

    Returns
    -------
    A `Choice` of `Sequential()`, or None when the cost model does not decide (the probes must).
    """
    t_start = time.perf_counter() if t_start is None else t_start
    device = device_model() if device is None else device
    if device.batch_gain is None or not (step_seconds and math.isfinite(step_seconds)):
        return None
    seq, tangents = T * step_seconds, num_tangents(solver, dim)
    lower = MIN_ITERS * (1 + TANGENT_WEIGHT * tangents) * seq / device.batch_gain
    if lower < seq:
        return None
    reason = (
        f"cost model: on {device.platform.upper()} a batched evaluation saves at most {device.batch_gain:g}x per "
        f"state, so even {MIN_ITERS} linearisations by {type(solver).__name__} ({tangents} tangents per state) "
        f"over {T} states cost more than the sequential chain (priced from {source})"
    )
    return Choice(Sequential(), seq, lower, math.nan, reason, time.perf_counter() - t_start, None)


def choose(
    fn: Callable,
    x0: Any,
    inputs: Any,
    solver: AbstractSolver,
    T: int,
    diagnose: Callable,
    *,
    sequential_step_seconds: float | None = None,
    device: DeviceModel | None = None,
) -> Choice:
    """The faster of Sequential() and `solver` for a T-step solve of fn on this device.

    fn, x0:    the step map and start (x0 a flat float vector, or a pytree: it is flattened).
    inputs:    `n -> inputs` of n steps (drawn inside the probes' programs), or a sample of the inputs
               (leading axis >= 1; cycled when shorter than a probe).
    solver:    the parallel candidate.
    diagnose:  () -> Diagnosis with `predicted_iters` and `parallel_pays`; called only in stage 3.
    sequential_step_seconds: the measured seconds of one sequential step (sample() passes its warmup's);
               None or nan: a timed scan of fn measures it.
    device:    what to assume about the device (default `device_model()`); tests pass a model device.
    """
    if not isinstance(solver, AbstractIterativeSolver | Shooting):  # Sequential has no iteration to time
        raise TypeError(f"choose: solver must be a parallel solver such as QuasiDEER() or DEER(); got {solver!r}.")
    t_start = time.perf_counter()
    device = device_model() if device is None else device
    x_flat, unravel = ravel_pytree(x0)
    flat_fn = lambda x, u: ravel_pytree(fn(unravel(x), u))[0].astype(x.dtype)
    measured = sequential_step_seconds is not None and math.isfinite(sequential_step_seconds)
    seq = T * sequential_step_seconds if sequential_step_seconds and measured else None
    seq = sequential_seconds(flat_fn, x_flat, inputs, T) if seq is None else seq
    platform, name = device.platform.upper(), type(solver).__name__
    source = "the warmup's steps" if measured else "a timed scan"
    decided = cost_model_choice(solver, x_flat.size, T, seq / T, device, t_start, source)
    if decided is not None:
        return decided
    if isinstance(solver, Shooting):  # a block solve's iteration and iterations are its own (weigh_blocks.py)
        iteration, timed_seq = block_iteration_seconds(flat_fn, x_flat, inputs, solver, T), sequential_seconds
        out = decide_blocks(
            solver, T, platform, iteration, seq, measured, diagnose, lambda: timed_seq(flat_fn, x_flat, inputs, T)
        )
        return Choice(solver if out[0] else Sequential(), *out[1:5], time.perf_counter() - t_start, out[5])
    lower = MIN_ITERS * sweep_seconds(flat_fn, x_flat, inputs, T)
    if lower >= seq:
        reason = (
            f"on {platform} even {MIN_ITERS} batched sweeps of the step map over {T} states cost more than "
            f"the sequential chain (priced from {source})"
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
    if par < seq and measured:
        # The warmup's steps (with their adaptation) bound a sampling step from above (measured: 2-9x a plain
        # step on a CPU): enough to rule the parallel solve out, not to choose it. Time the chain itself.
        seq, source = min(seq, sequential_seconds(flat_fn, x_flat, inputs, T)), "a timed scan"
    if par < seq:
        reason = f"{name}'s predicted {k:.0f} iterations beat the sequential chain on {platform} (priced from {source})"
        return Choice(solver, seq, par, k, reason, time.perf_counter() - t_start, diagnosis)
    reason = f"{name}'s predicted {k:.0f} iterations cost more than the sequential chain on {platform}"
    reason += f" (priced from {source})"
    return Choice(Sequential(), seq, par, k, reason, time.perf_counter() - t_start, diagnosis)


def auto(
    candidate: AbstractSolver, T: int, step_seconds: float, dim: int, fits: bool, probe: Callable[[], Choice]
) -> Choice:
    """sample(parallel="auto")'s choice between the sequential chain and `candidate`.

    Parameters
    ----------
    candidate
        The solver parallel=True would run.
    T, step_seconds, dim
        The chain's length, the warmup's seconds per sequential step, the flat state's size.
    fits
        Whether the candidate's solve fits in memory (the sequential chain is chosen when it does not).
    probe
        `() -> Choice` with the probes and the pilot (`choose`), called only when the cost model does
        not decide.

    Returns
    -------
    The `Choice`: the candidate itself when it is sequential, else the cost model's or the probes' verdict.
    """
    seq = T * step_seconds
    if not fits:
        return Choice(Sequential(), seq, math.inf, math.nan, f"{candidate!r} would not fit in memory", 0.0, None)
    if not candidate.parallel:
        return Choice(candidate, seq, math.nan, math.nan, f"solver={candidate!r} was given", 0.0, None)
    return cost_model_choice(candidate, dim, T, step_seconds) or probe()


def warn_if_declined(choice: Choice, solver: AbstractSolver | None, solve_kwargs: dict, stacklevel: int) -> None:
    """Warn (IgnoredArgumentWarning) when "auto" did not run the parallel solve that was set.

    Parameters
    ----------
    choice
        What "auto" chose.
    solver, solve_kwargs
        sample()'s `solver=` and engine options (max_iters=, atol=, rtol=, window=, patience=): weighed,
        not used, when the choice is sequential.
    stacklevel
        Passed to `warnings.warn` (the user's call of sample()).
    """
    given = [f"{k}=" for k in ("max_iters", "atol", "rtol", "window", "patience") if solve_kwargs.get(k) is not None]
    given = [f"solver={solver!r}"] * bool(solver is not None and solver.parallel) + given
    if given and not choice.solver.parallel:
        warnings.warn(
            f"sample: {', '.join(given)} set the parallel solve, which parallel='auto' (the default) weighed and did "
            f"not run: {choice.reason}. Pass parallel=True to run it anyway.",
            IgnoredArgumentWarning,
            stacklevel=stacklevel,
        )
