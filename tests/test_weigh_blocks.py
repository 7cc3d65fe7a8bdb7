"""parallel="auto" weighing a block solve (parmcmc.weigh_blocks): block iterations from the block diagnosis,
each one timed as a block iteration; the timings stubbed where the logic is tested."""

import math
from types import SimpleNamespace

import jax.numpy as jnp
import pytest

import parmcmc.weigh as weigh
import parmcmc.weigh_blocks as weigh_blocks
from parmcmc.engine import DEER, QuasiDEER, Sequential, Shooting

FN, X0, INPUTS = (lambda x, u: 0.5 * x + u), jnp.zeros(2), jnp.zeros((8, 2))
CANDIDATE = Shooting(DEER(), 32)


def _stub(monkeypatch, seq, iteration):
    monkeypatch.setattr(weigh, "device_model", lambda: weigh.DeviceModel("gpu", None))
    monkeypatch.setattr(weigh, "sequential_seconds", lambda *a: seq)
    monkeypatch.setattr(weigh, "block_iteration_seconds", lambda *a: iteration)
    monkeypatch.setattr(weigh, "iteration_seconds", lambda *a: pytest.fail("a plain iteration was timed"))


@pytest.mark.parametrize("iters, pays, parallel_expected", [(6, True, True), (40, True, False), (6, False, False)])
def test_block_iterations_and_their_depth_decide(monkeypatch, iters, pays, parallel_expected):
    # one block iteration costs 0.02 s: 6 iterations and the two passes (0.16 s) beat a chain of 1 s; 40 and the
    # two passes (0.84 s) do not beat a chain of 0.5 s; a diagnosis that says "sequential" is followed.
    seq = 0.5 if iters == 40 else 1.0
    _stub(monkeypatch, seq=seq, iteration=0.02)
    diagnosis = SimpleNamespace(predicted_iters=float(iters), parallel_pays=pays, reason="the block pilot said so")
    choice = weigh.choose(FN, X0, INPUTS, CANDIDATE, 2000, lambda: diagnosis)
    assert (choice.solver == CANDIDATE) == parallel_expected and isinstance(choice.solver, Shooting | Sequential)
    assert choice.parallel_seconds == pytest.approx((iters + 2) * 0.02) and choice.predicted_iters == iters
    assert choice.diagnosis is diagnosis


def test_three_block_iterations_dearer_than_the_chain_decide_without_a_pilot(monkeypatch):
    _stub(monkeypatch, seq=1.0, iteration=0.4)
    choice = weigh.choose(FN, X0, INPUTS, CANDIDATE, 2000, lambda: pytest.fail("the diagnosis ran"))
    assert isinstance(choice.solver, Sequential) and choice.parallel_seconds == pytest.approx(1.2)
    assert math.isnan(choice.predicted_iters) and "block iterations" in choice.reason


def test_on_a_cpu_the_cost_model_counts_the_inner_solvers_tangents():
    assert weigh.num_tangents(Shooting(DEER(), 32), 10) == weigh.num_tangents(Shooting(QuasiDEER(), 8), 10) == 10
    cpu = weigh.DeviceModel("cpu", weigh.CPU_BATCH_GAIN)
    choice = weigh.choose(
        FN, X0, INPUTS, CANDIDATE, 2000, lambda: pytest.fail("no"), sequential_step_seconds=1e-5, device=cpu
    )
    assert isinstance(choice.solver, Sequential) and "cost model" in choice.reason


def test_the_real_block_probe_runs():
    assert weigh.block_iteration_seconds(FN, X0, INPUTS, Shooting(DEER(), 4), 64) > 0
    assert weigh_blocks.weigh_blocks(0.5, 4.0) == 3.0 and weigh_blocks.weigh_blocks(0.5, math.inf) == math.inf
