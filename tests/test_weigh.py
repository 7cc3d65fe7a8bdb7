"""parallel="auto"'s weighing (parmcmc.weigh.choose): the decision from the probes' timings, each stage
tested with the timings stubbed (the timings themselves are the device's; the logic is ours)."""

import math
from types import SimpleNamespace

import jax.numpy as jnp
import pytest

import parmcmc.weigh as weigh
from parmcmc.engine import DEER, ELK, Jacobi, QuasiDEER, QuasiELK, Sequential

FN, X0, INPUTS = (lambda x, u: 0.5 * x + u), jnp.zeros(2), jnp.zeros((8, 2))
CPU = weigh.DeviceModel("cpu", weigh.CPU_BATCH_GAIN)
ACCELERATOR = weigh.DeviceModel("gpu", None)  # batched sweeps cost about one launch: only probes can tell


def _stub(monkeypatch, seq, sweep, iteration):
    """The probes' timings, on a model accelerator (a CPU's cost model would decide before any probe)."""
    monkeypatch.setattr(weigh, "device_model", lambda: ACCELERATOR)
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


# ---------------------------------------------------------------- stage 0: the cost model, no probe


def _no_probes(monkeypatch):
    for name in ("sequential_seconds", "sweep_seconds", "iteration_seconds"):
        monkeypatch.setattr(weigh, name, lambda *a, _n=name: pytest.fail(f"{_n} ran although the cost model decided"))


def test_on_a_cpu_the_cost_model_decides_from_the_warmups_step_without_a_probe(monkeypatch):
    _no_probes(monkeypatch)
    choice = weigh.choose(FN, X0, INPUTS, DEER(), 2000, _never, sequential_step_seconds=1e-5, device=CPU)
    assert isinstance(choice.solver, Sequential) and choice.diagnosis is None
    assert choice.sequential_seconds == pytest.approx(0.02) and choice.parallel_seconds >= choice.sequential_seconds
    assert "cost model" in choice.reason and "warmup" in choice.reason


@pytest.mark.parametrize(
    "solver, dim, tangents",
    [
        (DEER(), 10, 10),
        (QuasiDEER(), 10, 10),
        (QuasiDEER(diagonal="hutchinson", num_probes=3), 10, 3),
        (ELK(), 4, 4),
        (QuasiELK(diagonal="hutchinson"), 4, 1),
        (Jacobi(), 10, 0),
    ],
)
def test_the_cost_model_counts_the_tangents_of_each_linearisation(solver, dim, tangents):
    assert weigh.num_tangents(solver, dim) == tangents


def test_the_choice_flips_to_the_parallel_solve_where_batched_sweeps_are_cheap(monkeypatch):
    """The same figures on a model accelerator (no CPU bound on the batched gain): the probes find one
    iteration 100x cheaper than the chain and the diagnosis predicts few iterations, so the parallel
    solve is chosen; on the CPU model the cost model had refused it without a probe."""
    monkeypatch.setattr(weigh, "sweep_seconds", lambda *a: 0.001)
    monkeypatch.setattr(weigh, "iteration_seconds", lambda *a: 0.01)
    monkeypatch.setattr(weigh, "sequential_seconds", lambda *a: 0.5)  # the chain itself, timed before choosing it
    diagnosis = SimpleNamespace(predicted_iters=12.0, parallel_pays=True, reason="the pilot converged")
    step = dict(sequential_step_seconds=1e-3)
    on_accelerator = weigh.choose(FN, X0, INPUTS, DEER(), 1000, lambda: diagnosis, device=ACCELERATOR, **step)
    assert isinstance(on_accelerator.solver, DEER) and on_accelerator.parallel_seconds == pytest.approx(0.13)
    assert on_accelerator.sequential_seconds == 0.5 and "timed scan" in on_accelerator.reason
    on_cpu = weigh.choose(FN, X0, INPUTS, DEER(), 1000, _never, device=CPU, **step)
    assert isinstance(on_cpu.solver, Sequential) and "cost model" in on_cpu.reason


def test_a_probe_is_timed_once_per_process(monkeypatch):
    """The second weighing of the same program and shapes reuses the timing: it runs nothing."""
    fn = lambda x, u: 0.25 * x + u  # a program no other test times
    first = weigh.sweep_seconds(fn, X0, INPUTS, 1000)
    monkeypatch.setattr(weigh, "compiled_call", lambda *a: pytest.fail("timed again"))
    assert weigh.sweep_seconds(fn, X0, INPUTS, 1000) == first


def test_the_warmups_price_rules_parallel_out_but_a_timed_scan_must_confirm_it_wins(monkeypatch):
    """The warmup's step (adaptation included) only bounds a sampling step from above: when the timed chain
    is cheaper than the predicted solve after all, the sequential chain is kept."""
    _stub(monkeypatch, seq=0.1, sweep=0.001, iteration=0.01)
    diagnosis = SimpleNamespace(predicted_iters=12.0, parallel_pays=True, reason="the pilot converged")
    choice = weigh.choose(FN, X0, INPUTS, DEER(), 1000, lambda: diagnosis, sequential_step_seconds=1e-3)
    assert isinstance(choice.solver, Sequential) and choice.sequential_seconds == 0.1
