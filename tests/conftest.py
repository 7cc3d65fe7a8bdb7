import collections
import contextlib
import json
import os
import resource
import shutil
import tempfile
import time
import traceback

# XLA's backend optimisations off (LLVM -O0, no expensive passes): the suite's time is mostly compiling small
# programs that then run for milliseconds, and JAX's flag says just that ("useful if the cost of optimization is
# greater than that of running a less-optimized program"). Set in the environment before JAX is imported so that
# the subprocesses of the sharding tests inherit it. HLO-level rewrites are unchanged; results can differ from an
# optimised build in the last bits (a DEER solve by 7e-16), so a chain after adaptation is another draw of the same
# seed: no tolerance changes. PARMCMC_TEST_OPTIMIZE=1 runs the suite with XLA's default optimisations, as users run;
# tests/api/test_optimized_build.py always runs the demo that way (parallel = sequential in the users' build).
# The few tests whose time is running rather than compiling (long chains: SBC, the statistical checks) carry
# `@pytest.mark.optimized` and run in the users' build (fixture `_build` below).
if os.environ.get("PARMCMC_TEST_OPTIMIZE") != "1":
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"

# One persistent compilation cache for the whole run, shared by the xdist workers and the subprocesses the tests
# start (set before JAX is imported; the workers inherit the controller's environment): a program compiled once is
# read back wherever the same program is compiled again (another worker, another test's closure of the same code,
# the sharding subprocess). The cache key is the program, its compile options (the optimisation level included)
# and JAX's version, so nothing stale is served. Fresh for every run and removed at its end by the process that made
# it; a JAX_COMPILATION_CACHE_DIR already set is used as it is. PARMCMC_TEST_CACHE=0 turns it off. An entry read
# while another process writes it is a miss (pyproject.toml's filterwarnings says why its warning is harmless).
if os.environ.get("PARMCMC_TEST_CACHE") != "0" and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="parmcmc-test-xla-")
    os.environ["PARMCMC_TEST_CACHE_OWNER"] = str(os.getpid())
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax
import jax.monitoring
import pytest

import parmcmc.jitcache

# The no_heavy_work fixture of the input-check tests (tests/helpers/sample_checks.py).
pytest_plugins = ["helpers.sample_checks"]

OPTIMIZE = os.environ.get("PARMCMC_TEST_OPTIMIZE") == "1"

# Tests check exactness in float64; float32 tests ask for float32 explicitly.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_disable_most_optimizations", not OPTIMIZE)

_COMPILES: list = []
_PER_FILE = collections.defaultdict(lambda: [0, 0.0, 0])  # test file -> [XLA compilations, their s, cache hits]
_CURRENT = ["(collection)"]
_PROGRAMS = collections.defaultdict(lambda: [0, 0.0])  # program name -> [XLA compilations, compile seconds]
_SITES = collections.defaultdict(lambda: [0, 0.0])  # caller line and program -> the same (profiling only)
_PROFILING = bool(os.environ.get("PARMCMC_TEST_PROFILE"))
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _on_event(event, duration, fun_name="?", **kwargs):
    """Every backend compile, a program read back from the persistent cache included (JAX times both alike): the
    compile-count tests then mean what they meant without the cache, whichever worker compiled a program first."""
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES.append(duration)
        entry = _PER_FILE[_CURRENT[0]]
        entry[0] += 1
        entry[1] += duration
        program = _PROGRAMS[fun_name]
        program[0] += 1
        program[1] += duration
        if _PROFILING:  # the innermost caller in this repository: which line of ours asked for this program
            frame = next(
                (
                    f
                    for f in reversed(traceback.extract_stack()[:-1])
                    if f.filename.startswith(_REPO) and "site-packages" not in f.filename
                ),
                None,
            )
            site = _SITES[f"{os.path.relpath(frame.filename)}:{frame.lineno} {fun_name}" if frame else fun_name]
            site[0] += 1
            site[1] += duration


def _on_cache_hit(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
        _PER_FILE[_CURRENT[0]][2] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)
jax.monitoring.register_event_listener(_on_cache_hit)


@contextlib.contextmanager
def _counting():
    """Counts the XLA compilations (every backend compile, any origin) inside the block."""
    box = [len(_COMPILES)]
    yield lambda: len(_COMPILES) - box[0]


@pytest.fixture
def count_compiles():
    """`with count_compiles() as n: ...; assert n() == 0`: XLA compilations inside the block."""
    return _counting


def _switch_build(optimized: bool) -> None:
    """XLA's backend optimisations on or off for what compiles next. The flag is read when XLA compiles and is
    not part of any cache key, so both caches of compiled code (JAX's and parmcmc's) are emptied: a test's
    programs are then all compiled in its own build, whichever tests ran before it in this process."""
    if jax.config.read("jax_disable_most_optimizations") != (not optimized):
        jax.clear_caches()
        parmcmc.jitcache._compiled.clear()
        jax.config.update("jax_disable_most_optimizations", not optimized)


def pytest_unconfigure(config):
    if os.environ.get("PARMCMC_TEST_CACHE_OWNER") == str(os.getpid()):  # the process that made the cache
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "optimized: the module compiles with XLA's optimisations on (its time is running)"
    )


@pytest.fixture(autouse=True, scope="module")
def _build(request):
    """A module whose tests run long chains (`pytestmark = pytest.mark.optimized`) compiles with XLA's
    optimisations: for it the running, not the compiling, is the time, and -O0 code runs ~2-3x slower. Set per
    module so that a module-scoped fixture is built in the same build as the tests that use it."""
    optimized = OPTIMIZE or request.node.get_closest_marker("optimized") is not None
    _switch_build(optimized)
    yield
    _switch_build(OPTIMIZE)


# The longest test files, started first: with `--dist loadfile --no-loadscope-reorder` (./dev.sh test) xdist
# hands out files in collection order, so these two begin at once on the two workers instead of one of them
# starting last (xdist's default order puts files with the most tests first: the 2-test workflow file last).
SLOW_FIRST = ("test_sharding.py", "test_examples_workflow.py")


def pytest_collection_modifyitems(items):
    """Moves the files of SLOW_FIRST to the front, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))


# PARMCMC_TEST_PROFILE=DIR: each process (xdist worker or not) writes DIR/<worker>.json with, per test file, its
# wall seconds, this process's CPU seconds (user + sys, all threads), its subprocesses' CPU seconds, its XLA
# compilations and their seconds, and the order and start time of its files; and per compiled program (by name:
# jit(_run) is parmcmc's, jit(add) an eager operation) and per calling line its compilations and seconds: where the
# suite's time goes.
_PROFILE = collections.defaultdict(lambda: {"wall": 0.0, "cpu": 0.0, "child_cpu": 0.0, "start": None})
_TESTS = {}  # test id -> (wall s, CPU s with subprocesses, XLA compilations, their wall s)
_T0 = time.perf_counter()


def _cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _CURRENT[0] = name = os.path.basename(str(item.fspath))
    wall, (cpu, child), n = time.perf_counter(), _cpu(), len(_COMPILES)
    yield
    entry, (cpu2, child2) = _PROFILE[name], _cpu()
    if entry["start"] is None:
        entry["start"] = round(wall - _T0, 1)
    entry["wall"] += time.perf_counter() - wall
    entry["cpu"] += cpu2 - cpu
    entry["child_cpu"] += child2 - child
    _TESTS[item.nodeid] = (
        round(time.perf_counter() - wall, 2),
        round(cpu2 - cpu + child2 - child, 2),
        len(_COMPILES) - n,
        round(sum(_COMPILES[n:]), 2),
    )


def pytest_sessionfinish(session):
    out = os.environ.get("PARMCMC_TEST_PROFILE")
    if not out or not _PROFILE:
        return
    os.makedirs(out, exist_ok=True)
    rows = {
        name: {
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in entry.items()},
            "compiles": _PER_FILE[name][0],
            "compile_s": round(_PER_FILE[name][1], 2),
            "cache_hits": _PER_FILE[name][2],
        }
        for name, entry in _PROFILE.items()
    }
    with open(os.path.join(out, os.environ.get("PYTEST_XDIST_WORKER", "main") + ".json"), "w") as f:
        programs = {k: [n, round(t, 2)] for k, (n, t) in sorted(_PROGRAMS.items(), key=lambda kv: -kv[1][1])}
        sites = {k: [n, round(t, 2)] for k, (n, t) in sorted(_SITES.items(), key=lambda kv: -kv[1][1])}
        json.dump({"files": rows, "tests": _TESTS, "programs": programs, "sites": sites}, f, indent=1)


def pytest_terminal_summary(terminalreporter):
    """Compile counts per test file (this process; with xdist each worker counts its own files)."""
    if not _PER_FILE or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    terminalreporter.write_sep("-", "XLA compilations per test file (count, backend compile seconds)")
    for name, (count, seconds, _) in sorted(_PER_FILE.items(), key=lambda kv: -kv[1][1]):
        terminalreporter.write_line(f"{count:6d} {seconds:8.1f} s  {name}")
