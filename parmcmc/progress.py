"""A plain-text progress display for the parallel solve: iterations and the current residual."""

import sys

import numpy as np


class Progress:
    """Called by the engine after every iteration (through jax.debug.callback) with the iteration and
    the residual; under vmap over chains the values may arrive per chain or batched: the worst counts."""

    def __init__(self, solver_name: str, num_steps: int, stream=None):
        self.solver_name, self.num_steps, self.stream = solver_name, num_steps, stream or sys.stderr
        self._last = -1

    def __call__(self, iteration, residual, window_start):
        if not getattr(self.stream, "isatty", lambda: False)():
            return  # a log file gets the closing line only
        it = int(np.max(iteration))
        if it <= self._last:
            return
        self._last = it
        res = float(np.max(residual))
        self.stream.write(f"\r{self.solver_name}: iteration {it:4d}, residual {res:9.2e} over {self.num_steps} steps")
        self.stream.flush()

    @staticmethod
    def finish(solver_name, chains, seconds, compile_seconds, stream=None):
        stream = stream or sys.stderr
        iters = np.asarray(chains.num_iters)
        stream.write(
            f"\r{solver_name}: done, {int(iters.max())} iterations (max over chains), "
            f"{seconds:.2f} s sampling + {compile_seconds:.2f} s compiling{' ' * 20}\n"
        )
        stream.flush()
