"""parallel="auto"'s weighing (parmcmc.weigh.choose): the decision from the probes' timings, each stage
tested with the timings stubbed (the timings themselves are the device's; the logic is ours)."""

import math
from types import SimpleNamespace

import jax.numpy as jnp
import pytest

import parmcmc.weigh as weigh
from parmcmc.engine import DEER, Sequential

FN, X0, INPUTS = (lambda x, u: 0.5 * x + u), jnp.zeros(2), jnp.zeros((8, 2))


def _stub(monkeypatch, seq, sweep, iteration):
    monkeypatch.setattr(weigh, "sequential_seconds", lambda *a: seq)
    monkeypatch.setattr(weigh, "sweep_seconds", lambda *a: sweep)
    monkeypatch.setattr(weigh, "iteration_seconds", lambda *a: iteration)


def _never():
    pytest.fail("the diagnosis ran although the probes had decided")


def test_two_batched_sweeps_dearer_than_the_chain_decide_without_a_pilot(monkeypatch):
    _stub(monkeypatch, seq=1.0, sweep=0.6, iteration=0.0)
    choice = weigh.choose(FN, X0, INPUTS, DEER(), 1000, _never)
    assert isinstance(choice.solver, Sequential) and choice.diagnosis is None
    assert choice.parallel_seconds == pytest.approx(1.2) and math.isnan(choice.predicted_iters)


def test_two_iterations_dearer_than_the_chain_decide_without_a_pilot(monkeypatch):
    _stub(monkeypatch, seq=1.0, sweep=0.1, iteration=0.6)
    choice = weigh.choose(FN, X0, INPUTS, DEER(), 1000, _never)
    assert isinstance(choice.solver, Sequential) and choice.parallel_seconds == pytest.approx(1.2)


@pytest.mark.parametrize("iters, pays, parallel_expected", [(10, True, True), (100, True, False), (10, False, False)])
def test_the_predicted_iterations_decide_when_the_probes_leave_parallel_in_the_running(
    monkeypatch, iters, pays, parallel_expected
):
    _stub(monkeypatch, seq=1.0, sweep=0.01, iteration=0.02)
    diagnosis = SimpleNamespace(predicted_iters=float(iters), parallel_pays=pays, reason="the pilot said so")
    choice = weigh.choose(FN, X0, INPUTS, DEER(), 1000, lambda: diagnosis)
    assert isinstance(choice.solver, DEER) == parallel_expected
    assert choice.parallel_seconds == pytest.approx((iters + 1) * 0.02) and choice.predicted_iters == iters
    assert choice.diagnosis is diagnosis


def test_the_real_probes_run_and_predict_positive_seconds():
    """The probes on this device, through the compile cache (their values are the device's)."""
    assert weigh.sequential_seconds(FN, X0, INPUTS, 1000) > 0
    assert weigh.sweep_seconds(FN, X0, INPUTS, 1000) > 0
    assert weigh.iteration_seconds(FN, X0, INPUTS, DEER(), 1000) > 0
