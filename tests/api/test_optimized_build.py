"""The suite runs with XLA's backend optimisations off (tests/conftest.py); users run with them on.

One subprocess runs the README's demo, HMC with the block solve, as users run it (optimisations on): the
parallel chain must still be the sequential chain, decision for decision, in the build users get.
"""

import os
import subprocess
import sys


def test_demo_in_the_optimised_build_gives_the_same_draws():
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_DISABLE_MOST_OPTIMIZATIONS", "XLA_FLAGS")}
    args = ["--sampler", "hmc", "--num-samples", "512", "--num-warmup", "100", "--num-chains", "2"]
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "parmcmc.demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "verdict: same draws" in proc.stdout, proc.stdout[-3000:]
    assert " 0 accept decision(s) differ" in proc.stdout, proc.stdout[-3000:]
    assert "Shooting" in proc.stdout, proc.stdout[-3000:]  # the block solve ran (sample()'s choice from 512 draws)
