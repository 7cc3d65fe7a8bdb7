import collections
import contextlib
import os

# XLA's backend optimisations off (LLVM -O0, no expensive passes): the suite's time is mostly compiling small
# programs that then run for milliseconds, and JAX's flag says just that ("useful if the cost of optimization is
# greater than that of running a less-optimized program"). Set in the environment before JAX is imported so that
# the subprocesses of the sharding tests inherit it. HLO-level rewrites are unchanged; results can differ from an
# optimised build in the last bits (a DEER solve by 7e-16), so a chain after adaptation is another draw of the same
# seed: no tolerance changes. PARMCMC_TEST_OPTIMIZE=1 runs the suite with XLA's default optimisations, as users run;
# tests/api/test_optimized_build.py always runs the demo that way (parallel = sequential in the users' build).
if os.environ.get("PARMCMC_TEST_OPTIMIZE") != "1":
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"

import jax
import jax.monitoring
import pytest

# The no_heavy_work fixture of the input-check tests (tests/helpers/sample_checks.py).
pytest_plugins = ["helpers.sample_checks"]

# Tests check exactness in float64; float32 tests ask for float32 explicitly.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_disable_most_optimizations", os.environ.get("PARMCMC_TEST_OPTIMIZE") != "1")

_COMPILES: list = []
_PER_FILE = collections.defaultdict(lambda: [0, 0.0])  # test file -> [XLA compilations, compile seconds]
_CURRENT = ["(collection)"]


def _on_event(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES.append(duration)
        entry = _PER_FILE[_CURRENT[0]]
        entry[0] += 1
        entry[1] += duration


jax.monitoring.register_event_duration_secs_listener(_on_event)


@contextlib.contextmanager
def _counting():
    """Counts the XLA compilations (every backend compile, any origin) inside the block."""
    box = [len(_COMPILES)]
    yield lambda: len(_COMPILES) - box[0]


@pytest.fixture
def count_compiles():
    """`with count_compiles() as n: ...; assert n() == 0`: XLA compilations inside the block."""
    return _counting


# The longest test files, started first: with `--dist loadfile --no-loadscope-reorder` (./dev.sh test) xdist
# hands out files in collection order, so these two begin at once on the two workers instead of one of them
# starting last (xdist's default order puts files with the most tests first: the 2-test workflow file last).
SLOW_FIRST = ("test_sharding.py", "test_examples_workflow.py")


def pytest_collection_modifyitems(items):
    """Moves the files of SLOW_FIRST to the front, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _CURRENT[0] = os.path.basename(str(item.fspath))
    yield


def pytest_terminal_summary(terminalreporter):
    """Compile counts per test file (this process; with xdist each worker counts its own files)."""
    if not _PER_FILE or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    terminalreporter.write_sep("-", "XLA compilations per test file (count, backend compile seconds)")
    for name, (count, seconds) in sorted(_PER_FILE.items(), key=lambda kv: -kv[1][1]):
        terminalreporter.write_line(f"{count:6d} {seconds:8.1f} s  {name}")
