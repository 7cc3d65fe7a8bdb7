import contextlib

import jax
import jax.monitoring
import pytest

# Tests check exactness in float64; float32 tests ask for float32 explicitly.
jax.config.update("jax_enable_x64", True)

_COMPILES: list = []


def _on_event(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES.append(duration)


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
