"""examples/numpyro_workflow.py runs (small sizes), and NumPyro's import line in place of parmcmc's runs it too."""

import ast
import pathlib
import runpy
from typing import Any

import pytest

SCRIPT = pathlib.Path(__file__).parents[2] / "examples" / "numpyro_workflow.py"
OURS = "from parmcmc.infer import HMC, MCMC, Predictive"
NUMPYRO = "from numpyro.infer import HMC, MCMC, Predictive"


@pytest.fixture
def small(monkeypatch, tmp_path):
    monkeypatch.setenv("PARMCMC_EXAMPLE_SMALL", "1")
    monkeypatch.setenv("PARMCMC_EXAMPLE_OUT", str(tmp_path))
    return tmp_path


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::parmcmc.FallbackWarning")  # eight schools falls back on some chains, as documented
@pytest.mark.filterwarnings("ignore::parmcmc.MixingWarning")  # the example at its small sizes: short chains
def test_the_workflow_runs_and_its_draws_are_the_sequential_ones(small):
    gaps = runpy.run_path(str(SCRIPT), run_name="example")["main"]()
    assert set(gaps) == {"eight_schools", "radon"}
    assert all(gap <= 1e-8 for gap in gaps.values()), gaps
    for name in ("eight_schools", "radon"):
        assert (small / f"{name}_trace.png").stat().st_size > 0 and (small / f"{name}_energy.png").exists()


# NumPyro's own HMC warns that with num_steps and its default trajectory_length the step size is not adapted
# (the example's HMC(model, num_steps=10) adapts it in parmcmc, which has no trajectory_length).
@pytest.mark.filterwarnings("ignore:If both `num_steps` and `trajectory_length`:UserWarning")
def test_the_import_line_is_the_only_change(small, monkeypatch, capsys):
    source = SCRIPT.read_text()
    after_docstring = source.splitlines()[ast.parse(source).body[0].end_lineno :]
    code = [line.split("#")[0].strip() for line in after_docstring if "parmcmc" in line.split("#")[0]]
    assert code == [OURS]  # no other line of code names parmcmc
    monkeypatch.setenv("PARMCMC_EXAMPLE_MODELS", "eight_schools")
    namespace: dict[str, Any] = {"__name__": "example_numpyro", "__file__": str(SCRIPT)}
    exec(compile(source.replace(OURS, NUMPYRO), str(SCRIPT), "exec"), namespace)
    assert namespace["MCMC"].__module__.startswith("numpyro")
    assert namespace["main"]() == {}  # NumPyro's MCMC: no comparison with a sequential run
    assert "elpd_loo" in capsys.readouterr().out and (small / "eight_schools_energy.png").exists()
