"""Compiled code keyed on what a function computes, never on which Python object it is.

`jax.jit(fn)` caches its compilation on the function object: a log density that reads a Python value
which later changes is served the old program, and a fresh closure (a new NumPyro potential, a new
lambda per call) compiles again although nothing changed. `program_jit(fn)` instead traces `fn` on
every call (cheap next to compiling) and keys the compiled code on the traced program:

- the jaxpr's text: every primitive, shape, dtype and the Python scalars `fn` read, baked in as
  literals, so a changed Python value is a different program;
- the identity of every host callback the program calls (JAX prints their addresses masked);
- the arrays `fn` closes over (data, parameters) are *not* part of the key: closure conversion
  hoists them into arguments of the compiled program, so new data of the same shapes compiles
  nothing, and large data never becomes a compile-time constant for XLA to fold.

`Program` is also the static key of `parmcmc.engine.solve`'s jit. `stats()` counts compilations
(tests assert on it); `compile_seconds()` is the wall-clock spent compiling so far.

Limit: the custom JVP/VJP rules of `jax.custom_jvp`/`custom_vjp` functions are part of the program
only through their names and traced primal; a rule that reads a changed Python global is not seen.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.core
import jax.extend
import numpy as np

from parmcmc import jitlift

__all__ = [
    "CPU_COMPILER_OPTIONS",
    "CacheStats",
    "Program",
    "RunClock",
    "compiler_options",
    "program_jit",
    "stats",
    "timed_runs",
]

_MAX_ENTRIES = 64  # compiled executables kept (least recently used dropped): bounds memory in long sessions


class CacheStats(NamedTuple):
    """Counters since import: `compiles` (cache misses that compiled), `hits`, `compile_seconds`."""

    compiles: int
    hits: int
    compile_seconds: float


_lock = threading.Lock()
_counts = {"compiles": 0, "hits": 0, "seconds": 0.0}
_compiled: collections.OrderedDict = collections.OrderedDict()


def stats() -> CacheStats:
    """The compile cache's counters (compare two readings to count what a call compiled)."""
    return CacheStats(_counts["compiles"], _counts["hits"], _counts["seconds"])


class Program:
    """A traced program as a hashable key.

    Equal iff the jaxprs print the same, call the same host callbacks and hold the same constants inside nested
    closed jaxprs.
    """

    __slots__ = ("_hash", "_objects", "_text", "jaxpr")

    def __init__(self, jaxpr):
        self.jaxpr = jaxpr
        self._text = str(jaxpr)
        objects, inner = [], []
        _walk(jaxpr, objects, inner)
        self._objects = tuple(objects)  # compared by identity (kept alive by this key)
        digest = hashlib.sha1(self._text.encode())
        for c in inner:  # constants of nested closed jaxprs are not printed: key on their values
            a = np.asarray(c)
            digest.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())
        self._text += digest.hexdigest()
        self._hash = hash((self._text, tuple(id(o) for o in self._objects)))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (
            isinstance(other, Program)
            and self._hash == other._hash
            and self._text == other._text
            and len(self._objects) == len(other._objects)
            and all(a is b for a, b in zip(self._objects, other._objects, strict=True))
        )

    def __call__(self, consts, *args):
        """Evaluate the program with the given constants and arguments."""
        return jax.core.eval_jaxpr(self.jaxpr, consts, *args)


def _walk(jaxpr, objects: list, inner: list) -> None:
    for eqn in jaxpr.eqns:
        for name, value in eqn.params.items():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):  # pyright: ignore[reportPrivateImportUsage] (re-exported `as`)
                    inner.extend(sub.consts)
                    _walk(sub.jaxpr, objects, inner)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    _walk(sub, objects, inner)
                elif "callback" in eqn.primitive.name and callable(sub) and name == "callback":
                    objects.extend(_user_callables(sub))


def _user_callables(fn, depth: int = 0) -> list:
    """The callables outside JAX that a callback wrapper reaches (through closures and partials).

    The wrapper itself when none is found, so that an unknown callback is never shared.
    """
    found = []

    def visit(obj, d):
        if d > 6:
            return
        if isinstance(obj, functools.partial):
            visit(obj.func, d + 1)
            for a in (*obj.args, *obj.keywords.values()):
                visit(a, d + 1)
            return
        if not callable(obj):
            return
        module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "") or ""
        if not module.startswith("jax"):
            found.append(getattr(obj, "__self__", None) if hasattr(obj, "__func__") else obj)
            if hasattr(obj, "__func__"):
                found.append(obj.__func__)
            return
        for cell in getattr(obj, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                visit(cell.cell_contents, d + 1)

    visit(fn, depth)
    return found or [fn]


@functools.partial(jax.jit, static_argnums=0)
def _run(program, consts, args):
    return program(consts, *args)


def _signature(x):
    aval = jax.typeof(x)
    return aval, getattr(x, "sharding", None) if isinstance(x, jax.Array) else None


def program_jit(fn: Callable, *, light: bool = False) -> Callable:
    """`fn` compiled once per distinct program (see the module docstring); call it like `fn`.

    Parameters
    ----------
    fn
        A function of pytrees of arrays returning a pytree of arrays. Arrays it closes over become
        arguments of the compiled program; Python values it reads are part of the program.
    light
        Compile with `compiler_options(light=True)` (on a CPU, LLVM at level 1): for a program whose compile, not
        its run, is the cost. It rounds differently from the default build in the last bits.

    Returns
    -------
    A function with `fn`'s signature. Under an outer trace (inside jit, vmap, grad) it stays a
    nested jit of the same program, so it composes like `jax.jit(fn)`.
    """

    @functools.wraps(fn)
    def call(*args):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(args)):
            # Under an outer trace the outer program is what compiles: no key is needed, and tracing fn once
            # (not once for the key and again to evaluate the keyed program) is what keeps that compile short.
            # A fresh wrapper, so that jit's trace cache never serves old closed-over values.
            return jax.jit(lambda *a: fn(*a))(*args)
        # A fresh wrapper per call: make_jaxpr caches traces on the function object, which would
        # serve the program traced with old closed-over values.
        closed, out_shape = jax.make_jaxpr(lambda *a: fn(*a), return_shape=True)(*args)
        closed, consts, flat = _lifted(closed, jax.tree_util.tree_leaves(args))
        program = Program(closed.jaxpr)
        if any(isinstance(x, jax.core.Tracer) for x in (*consts, *flat)):
            out = _run(program, consts, flat)
        elif _clocks:
            out = _timed(_compiled_for(program, consts, flat, light), consts, flat)
        else:
            out = _compiled_for(program, consts, flat, light)(consts, flat)
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), out)

    return call


def _lifted(closed, flat: list):
    """(program, constants, arguments), with the constants of nested jits lifted to arguments where possible.

    parmcmc/jitlift.py: without it, such constants are keyed by value (correct, but new data compiles again).
    """
    consts = list(closed.consts)
    if jitlift.has_nested_consts(closed) and not any(isinstance(x, jax.core.Tracer) for x in (*consts, *flat)):
        lifted = jitlift.lift(closed, flat)
        if lifted is not None:
            closed, flat = lifted
            consts = list(closed.consts)
    return closed, consts, flat


# XLA's CPU backend spends most of a compile in LLVM. At LLVM's optimisation level 1 instead of XLA's default, a
# parallel solve's program (the step map held three times, and its tangents) compiles 12-17 % faster (CPU seconds)
# and runs as fast or faster (docs/performance.md, "LLVM at level 1"). program_jit(fn, light=True) asks for it.
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def compiler_options(*trees, light: bool = True) -> dict[str, Any]:
    """The XLA options of a program_jit(..., light=light) compile with arguments `trees`.

    CPU_COMPILER_OPTIONS when `light` and every array given is on a CPU (uncommitted values follow the default
    backend); else none. Never under ``jax_disable_most_optimizations``, whose level 0 stands (the test suite's).
    """
    if not light or jax.config.read("jax_disable_most_optimizations"):
        return {}
    platforms = {
        d.platform
        for x in jax.tree_util.tree_leaves(trees)
        if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
        for d in x.devices()
    }
    platforms = platforms or {jax.default_backend()}
    return dict(CPU_COMPILER_OPTIONS) if platforms == {"cpu"} else {}


def _compiled_for(program: Program, consts, flat, light: bool = False):
    options = compiler_options(consts, flat, light=light)
    # The build is part of the key: the options, and JAX's own switch (no options means level 0 under it).
    build = (tuple(sorted(options.items())), jax.config.read("jax_disable_most_optimizations"))
    key = (program, tuple(map(_signature, consts)), tuple(map(_signature, flat)), build)
    with _lock:
        compiled = _compiled.get(key)
        if compiled is not None:
            _compiled.move_to_end(key)
            _counts["hits"] += 1
            return compiled
    t0 = time.perf_counter()
    compiled = _run.lower(program, consts, flat).compile(options)
    seconds = time.perf_counter() - t0
    with _lock:
        _compiled[key] = compiled
        _counts["compiles"] += 1
        _counts["seconds"] += seconds
        while len(_compiled) > _MAX_ENTRIES:
            _compiled.popitem(last=False)
    return compiled


class RunClock:
    """Execution seconds of the compiled programs run through `program_jit` inside `timed_runs()`."""

    __slots__ = ("runs", "seconds")

    def __init__(self):
        self.seconds, self.runs = 0.0, 0


_clocks: list[RunClock] = []  # the active timed_runs() blocks


@contextlib.contextmanager
def timed_runs():
    """Clock the execution of the compiled programs that `program_jit` runs inside this block.

    Each run is waited for, and its wall-clock (execution alone: no tracing, no compilation) is added
    to the yielded `RunClock`. parallel="auto" prices a sequential step from the warmup's run this
    way, without a probe of its own.

    Yields
    ------
    RunClock
        `seconds` and `runs` so far, updated as programs run.
    """
    clock = RunClock()
    with _lock:
        _clocks.append(clock)
    try:
        yield clock
    finally:
        with _lock:
            _clocks.remove(clock)


def _timed(compiled, consts, flat):
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(consts, flat))
    seconds = time.perf_counter() - t0
    with _lock:
        for clock in _clocks:
            clock.seconds += seconds
            clock.runs += 1
    return out


def compiled_call(fn: Callable, *args) -> Callable[[], Any]:
    """A zero-argument function that runs `fn(*args)`'s compiled program, for timing it.

    The program is traced and compiled (or fetched from the cache) once, here, not on every run.
    """
    closed, _out_shape = jax.make_jaxpr(lambda *a: fn(*a), return_shape=True)(*args)
    closed, consts, flat = _lifted(closed, jax.tree_util.tree_leaves(args))
    compiled = _compiled_for(Program(closed.jaxpr), consts, flat)
    return lambda: compiled(consts, flat)


def compile_seconds() -> float:
    """Wall-clock seconds spent compiling through program_jit since import."""
    return _counts["seconds"]
