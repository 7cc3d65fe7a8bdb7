"""The progress display: tqdm bars on one stream, the engine's callback interface, quiet off a terminal."""

import io

import jax.numpy as jnp
import numpy as np

from parmcmc import progress
from parmcmc.engine import DEER, solve
from parmcmc.progress import Progress


def test_a_parallel_solve_shows_iterations_residual_decades_and_converged_share():
    out = io.StringIO()
    display = Progress("DEER", 100, stream=out, progress_bar="always", tolerance=1e-10, num_chains=2)
    with display:
        progress.engine_callback(np.array([1, 1]), np.array([1e-1, 3e-2]), np.array([0, 0]))
        progress.engine_callback(np.array([2, 2]), np.array([1e139, 1e-3]), np.array([0, 50]))  # a jump up
        assert display._bar is not None and display._bar.n == 0
        progress.engine_callback(np.array(3), np.array(1e-6), np.array(50))  # under vmap: one call per chain
        progress.engine_callback(np.array(3), np.array(1e-12), np.array(100))
        assert display._bar.n == 5  # 1e-1 -> 1e-6: five decades of the nine to 1e-10
    text = out.getvalue()
    assert "it 3, residual 1.0e-06, converged 75% of the chain, chains 1/2 under tolerance" in text
    assert "/9 decades" in text and "residual 1.0e+139" in text
    progress.engine_callback(np.array([4]), np.array([0.0]), np.array([0]))  # no display active: ignored
    assert "it 4" not in out.getvalue()


def test_quiet_off_a_terminal_unless_asked():
    out = io.StringIO()  # not a terminal
    assert not progress.enabled(True, out) and progress.enabled("always", out) and not progress.enabled(False, out)
    with Progress("DEER", 10, stream=out, progress_bar=True):
        progress.engine_callback(np.array(1), np.array(0.5), np.array(0))
    progress.start_phase("warmup  |  10 steps", True, stream=out)
    progress.end_phase()
    assert out.getvalue() == ""


def test_phase_shows_what_runs():
    out = io.StringIO()
    progress.start_phase("warmup  |  10 steps x 2 chains (mala, adapting)", "always", stream=out)
    progress.end_phase()
    assert "warmup  |  10 steps x 2 chains (mala, adapting)" in out.getvalue()


def test_the_engine_drives_the_display_through_its_callback():
    out = io.StringIO()
    fn = lambda x, u: 0.5 * jnp.tanh(x) + u
    with Progress("DEER", 50, stream=out, progress_bar="always"):
        sol = solve(fn, jnp.zeros(2), jnp.ones((50, 2)), DEER(), progress=progress.engine_callback)
    assert bool(sol.converged)
    assert f"it {int(sol.num_iters)}," in out.getvalue()


def test_an_error_stops_the_phase_clock():
    out = io.StringIO()
    try:
        with progress.phases():
            progress.start_phase("warmup  |  10 steps", "always", stream=out)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert progress._phase is None
