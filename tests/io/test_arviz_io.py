"""Draws + stats -> ArviZ DataTree: groups, variables, dims, stats names; ArviZ's diagnostics run on it."""

from typing import NamedTuple

import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from parmcmc.io.arviz import SOLVER_STATS, solver_stats, to_datatree
from parmcmc.models import builtin, from_numpyro

C, D, W = 4, 200, 30  # chains, draws, warmup draws
RNG = np.random.default_rng(0)


class FakeSolution(NamedTuple):
    """Only the fields of the engine's Solution that the output reads."""

    num_iters: np.ndarray
    residual: np.ndarray
    converged: np.ndarray


def stats(num_draws):
    return {
        "acceptance_rate": RNG.uniform(size=(C, num_draws)),
        "diverging": np.zeros((C, num_draws), bool),
        "lp": RNG.normal(size=(C, num_draws)),
        "energy": RNG.normal(size=(C, num_draws)),
        "step_size": np.full(C, 0.3),
    }


@pytest.fixture(scope="module")
def tree():
    solution = FakeSolution(np.array([5, 6, 5, 7]), RNG.uniform(0, 1e-9, size=(C, D)), np.ones(C, bool))
    return to_datatree(
        {"mu": RNG.normal(size=(C, D)), "theta": RNG.normal(size=(C, D, 8))},
        sample_stats=stats(D),
        solver=solver_stats(solution),
        observed_data={"y": np.arange(8.0)},
        warmup_posterior={"mu": RNG.normal(size=(C, W)), "theta": RNG.normal(size=(C, W, 8))},
        warmup_sample_stats=stats(W),
        attrs={"sampler": "HMC"},
    )


def test_groups_and_variables(tree):
    assert set(tree.children) == {
        "posterior",
        "sample_stats",
        "solver_stats",
        "observed_data",
        "warmup_posterior",
        "warmup_sample_stats",
    }
    assert set(tree["posterior"].data_vars) == {"mu", "theta"}
    assert set(tree["warmup_posterior"].data_vars) == {"mu", "theta"}
    assert set(tree["sample_stats"].data_vars) == {"acceptance_rate", "diverging", "lp", "energy", "step_size"}
    assert set(tree["solver_stats"].data_vars) == set(SOLVER_STATS)
    assert tree.attrs["sampler"] == "HMC"


def test_dims(tree):
    assert tree["posterior"]["theta"].dims == ("chain", "draw", "theta_dim_0")
    assert tree["posterior"]["mu"].dims == ("chain", "draw")
    assert tree["warmup_posterior"].sizes["draw"] == W
    assert tree["observed_data"]["y"].dims == ("y_dim_0",)
    for name in SOLVER_STATS:
        assert tree["solver_stats"][name].dims == ("chain",)
    for name in ("acceptance_rate", "lp", "step_size"):
        assert tree["sample_stats"][name].dims == ("chain", "draw")
    np.testing.assert_array_equal(tree["sample_stats"]["step_size"], 0.3)
    assert tree["solver_stats"]["solver_converged"].dtype == bool


def test_solver_stats_reduce_residual_per_chain_and_keep_nan():
    residual = np.zeros((2, 10))
    residual[0, 3] = -2e-7
    residual[1, 5] = np.nan
    out = solver_stats(FakeSolution(np.array([3, 50]), residual, np.array([True, False])))
    np.testing.assert_array_equal(out["solver_residual"][0], 2e-7)
    assert np.isnan(out["solver_residual"][1])
    assert out["solver_converged"].tolist() == [True, False]
    with pytest.raises(TypeError, match="no field"):
        solver_stats(object())


def test_summary_ess_rhat_run(tree):
    # arviz_stats exports these from inside a try block, which the checker reads as private.
    summary = arviz_stats.summary(tree)  # pyright: ignore[reportPrivateImportUsage]
    assert {"mean", "sd", "ess_bulk", "r_hat"} <= set(summary.columns)
    assert len(summary) == 1 + 8
    ess = arviz_stats.ess(tree)  # pyright: ignore[reportPrivateImportUsage]
    rhat = arviz_stats.rhat(tree)  # pyright: ignore[reportPrivateImportUsage]
    # independent normal draws: ESS near C * D, R-hat near 1
    assert float(ess["mu"]) > 0.5 * C * D
    assert abs(float(rhat["mu"]) - 1.0) < 0.05


def test_from_a_numpyro_target_with_plate_dims_and_coords():
    ex = builtin.eight_schools()
    target = from_numpyro(
        ex.model, jax.random.key(0), model_args=ex.model_args, model_kwargs=ex.model_kwargs, num_chains=2
    )
    draws = jax.tree_util.tree_map(
        lambda x: x[:, None] + 0.01 * jnp.arange(5.0).reshape(1, 5, *([1] * (x.ndim - 1))), target.initial_positions
    )
    tree = to_datatree(
        target.postprocess(draws), observed_data=target.observed_data, dims=target.dims, coords=ex.coords
    )
    assert set(tree["posterior"].data_vars) == {"mu", "tau", "theta_z", "theta"}
    assert tree["posterior"]["theta"].dims == ("chain", "draw", "school")
    assert tree["observed_data"]["y"].dims == ("school",)
    assert list(tree["posterior"]["school"].values) == builtin.EIGHT_SCHOOLS_NAMES
    assert "sample_stats" not in tree.children


def test_shared_solve_stats_and_warmup_stats_without_warmup_draws():
    tree = to_datatree(
        {"a": np.zeros((2, 5))},
        solver={"solver_iterations": np.array(12), "solver_converged": np.array(True)},
        warmup_sample_stats={"step_size": np.array([0.1, 0.2]), "acceptance_rate": np.zeros((2, 7))},
    )
    assert tree["solver_stats"]["solver_iterations"].values.tolist() == [12, 12]  # pyright: ignore[reportAttributeAccessIssue] (a DataArray)
    assert tree["warmup_sample_stats"]["step_size"].shape == (2, 7)
    assert "warmup_posterior" not in tree.children


def test_single_chain_and_user_dims():
    tree = to_datatree({"beta": np.zeros((1, 10, 3))}, dims={"beta": ["feature"]}, coords={"feature": ["a", "b", "c"]})
    assert tree["posterior"]["beta"].dims == ("chain", "draw", "feature")
    assert isinstance(tree, xr.DataTree)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"posterior": {}}, "posterior is empty"),
        ({"posterior": {"a": np.zeros(5)}}, "needs leading \\(chain, draw\\) axes"),
        ({"posterior": {"a": np.zeros((2, 5)), "b": np.zeros((2, 6))}}, "other variables have"),
        ({"sample_stats": {"lp": np.zeros((2, 4))}}, "other variables have"),
        ({"solver": {"solver_iterations": np.zeros((2, 5))}}, "per-chain solve stats need shape"),
        ({"warmup_posterior": {"a": np.zeros((3, 5))}}, "warmup and sampling must run the same chains"),
        ({"dims": {"a": ["x", "y"]}}, "names 2 dimension"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = {"posterior": {"a": np.zeros((2, 5))}, **kwargs}
    with pytest.raises(ValueError, match=message) as err:
        to_datatree(**args)
    assert "to_datatree" in str(err.value)


def test_an_arviz_older_than_1_gets_a_clear_import_error(monkeypatch):
    import importlib.metadata

    from parmcmc.io import arviz as io_arviz

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.20.0" if name == "arviz" else "1.0")
    with pytest.raises(ImportError, match=r"needs arviz>=1.0 .* arviz 0.20.0"):
        io_arviz._require_arviz_1()
