"""Progress in NumPyro's manner (tqdm, one stream: stderr): warmup, compilation, sampling.

The engine reports every Newton iteration through ``jax.debug.callback`` as
``progress(iteration, residual, window_start)`` (batched over chains under vmap). The API passes it
`engine_callback`, one module-level function whose identity never changes (so compiled code can be
reused across runs), which forwards to the display that is active at the time: a `Progress`.

What a terminal shows:
    warmup  |  1000 steps x 4 chains (hmc, adapting)  [00:07]
    DEER |█████▌    | 11/16 decades, it 9, residual 3.2e-07, converged 63% of the chain, chains 2/4 under
    tolerance  (one line on a terminal)
    DEER: done, 14 iterations (max over chains), 0.41 s sampling + 12.1 s compiling

The bar of a parallel solve fills as the residual falls, one step per decade, from the first residual
to the tolerance; it moves back when the residual grows. "converged x% of the chain" is the share of
states before the solve's window (the prefix known exact); it shows in a windowed solve (window=), or
when the engine passes the converged prefix as a fourth value, progress(iteration, residual,
window_start, converged_upto), which this display accepts.
Quiet when stderr is not a terminal, unless asked with progress_bar="always".
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading

import numpy as np
from tqdm.auto import tqdm

__all__ = ["Progress", "enabled", "end_phase", "engine_callback", "phases", "start_phase"]

_active: Progress | None = None
_phase = None


def enabled(progress_bar, stream=None) -> bool:
    """Whether to show progress: True shows it on a terminal, "always" everywhere, False never."""
    stream = stream or sys.stderr
    if progress_bar == "always":
        return True
    return bool(progress_bar) and bool(getattr(stream, "isatty", lambda: False)())


def engine_callback(iteration, residual, window_start, *rest):
    """The engine's progress hook: forwards to the active Progress (does nothing when none is active)."""
    display = _active
    if display is not None:
        display(iteration, residual, window_start, *rest)


class _Phase:
    """A bar for a step that reports nothing while it runs (warmup, compilation, a sequential scan).

    It shows what runs and the elapsed time, refreshed twice a second by a small thread.
    """

    def __init__(self, description: str, stream=None):
        self.bar = tqdm(
            total=None,
            desc=description,
            file=stream or sys.stderr,
            leave=True,
            bar_format="{desc}  [{elapsed}]",
            dynamic_ncols=True,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    def _tick(self):
        while not self._stop.wait(0.5):
            self.bar.refresh()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.bar.close()


def start_phase(description: str, progress_bar=True, stream=None) -> None:
    """Show `description` with a running clock until end_phase() (nothing when progress is off)."""
    global _phase
    end_phase()
    if enabled(progress_bar, stream):
        _phase = _Phase(description, stream)


@contextlib.contextmanager
def phases():
    """Close whatever phase is open when the block ends, by an error or Ctrl-C included."""
    try:
        yield
    finally:
        end_phase()


def end_phase() -> None:
    """End the current phase of the progress display."""
    global _phase
    if _phase is not None:
        _phase.close()
        _phase = None


class Progress:
    """The display of one parallel solve of `num_steps` steps per chain.

    Parameters
    ----------
    solver_name
        Shown at the left of the bar.
    num_steps
        Chain length T (for the converged share of the chain).
    stream
        Where to write (default: stderr).
    progress_bar
        True (terminal only), "always" or False.
    tolerance
        A chain counts as converged when its residual is at most this (default 1e-11, float64's).
    num_chains
        Chains solved together (vmapped). Under vmap JAX calls the hook once per chain, in chain order;
        every `num_chains` values make one iteration of the display. None: every call is one iteration.
    """

    def __init__(
        self,
        solver_name: str,
        num_steps: int,
        stream=None,
        *,
        progress_bar=True,
        tolerance: float | None = None,
        num_chains: int | None = None,
    ):
        self.solver_name, self.num_steps, self.stream = solver_name, num_steps, stream or sys.stderr
        self.show = enabled(progress_bar, self.stream)
        self.tolerance = 1e-11 if tolerance is None else tolerance
        self.num_chains = num_chains
        self._bar, self._top, self._round, self._share_known = None, None, [], False

    def __enter__(self):
        global _active
        _active = self
        return self

    def __exit__(self, *exc):
        global _active
        _active = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __call__(self, iteration, residual, window_start, converged_upto=None):
        """Take one iteration's report from the engine and update the bar."""
        if not self.show:
            return
        prefix = window_start if converged_upto is None else converged_upto
        # window_start > 0 only in a windowed solve: only then (or given converged_upto) is the share known
        self._share_known = self._share_known or converged_upto is not None or bool(np.any(np.asarray(prefix)))
        values = np.broadcast_arrays(
            *(np.atleast_1d(np.asarray(v, dtype=float)).ravel() for v in (iteration, residual, prefix))
        )
        self._round.extend(zip(*values, strict=True))
        if self.num_chains is not None and len(self._round) < self.num_chains:
            return  # the other chains' values of this iteration are still to come
        its, residual, prefix = (np.array(v) for v in zip(*self._round, strict=True))
        self._round = []
        self._show(int(its.max()), residual, prefix)

    def _show(self, it: int, residual: np.ndarray, prefix: np.ndarray) -> None:
        worst = float(np.max(residual)) if np.all(np.isfinite(residual)) else math.inf
        share = float(np.mean(prefix)) / max(self.num_steps, 1)
        decades = self._decades(worst)
        if self._bar is None:
            end_phase()  # the compile clock stops at the first iteration
            self._bar = tqdm(
                total=self._top,
                desc=self.solver_name,
                file=self.stream,
                leave=False,
                bar_format="{desc} |{bar:20}| {n}/{total} decades{postfix}",
                dynamic_ncols=True,
            )
        self._bar.n = decades
        converged = f", converged {share:.0%} of the chain" if self._share_known else ""
        self._bar.set_postfix_str(
            f"it {it}, residual {worst:.1e}{converged}, chains {int(np.sum(residual <= self.tolerance))}/"
            f"{residual.size} under tolerance",
            refresh=True,
        )

    def _decades(self, residual: float) -> int:
        """Decades of residual gained since the first iteration, on the bar's scale [0, top]."""
        if residual == 0:
            return self._top or 0
        if not math.isfinite(residual) or residual < 0:
            return 0
        if self._top is None:
            self._start = math.log10(max(residual, self.tolerance * 10))
            self._top = max(1, math.ceil(self._start - math.log10(self.tolerance)))
        return int(min(self._top, max(0, math.floor(self._start - math.log10(residual)))))

    def finish(self, chains, seconds, compile_seconds):
        """The closing line (written whenever progress is on, terminal or not)."""
        self.__exit__()
        if self.show:
            Progress.report(self.solver_name, chains, seconds, compile_seconds, self.stream)

    @staticmethod
    def report(solver_name, chains, seconds, compile_seconds, stream=None):
        """Print the run's summary line: solver, chains, iterations, seconds."""
        stream = stream or sys.stderr
        iters = np.asarray(chains.num_iters)
        what = "sequential" if int(iters.max()) == 0 else f"{int(iters.max())} Newton iterations (max over chains)"
        stream.write(f"{solver_name}: done, {what}, {seconds:.2f} s sampling + {compile_seconds:.2f} s compiling\n")
        stream.flush()
