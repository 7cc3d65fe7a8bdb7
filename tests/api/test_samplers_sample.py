"""sample()'s sampler options: energy that ArviZ's BFMI reads right, dense adaptation, step-size jitter."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import parmcmc
import parmcmc.api
import parmcmc.prepare

SCALES = jnp.array([1.0, 3.0, 0.5])


def gaussian(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


def run(**options):
    return parmcmc.sample(
        gaussian,
        rng_key=jax.random.key(0),
        initial_position=jnp.zeros(3),
        num_samples=1000,
        num_warmup=300,
        num_chains=4,
        parallel=False,
        progress_bar=False,
        **options,
    )


def test_bfmi_of_hmc_on_a_gaussian_is_near_one():
    """energy is the Hamiltonian of the draw: on a Gaussian, H changes between draws only by the momentum
    refresh, so BFMI = E[(E_t - E_{t-1})^2] / Var(E) is 1 in expectation (sd of one chain's estimate at
    D = 20, 1000 draws: about 0.05-0.1). Finite everywhere, and n_steps is recorded."""
    scales = jnp.linspace(0.5, 2.0, 20)
    tree = parmcmc.sample(
        lambda x: -0.5 * jnp.sum((x / scales) ** 2),
        rng_key=jax.random.key(0),
        initial_position=jnp.zeros(20),
        num_samples=1000,
        num_warmup=300,
        num_chains=4,
        parallel=False,
        progress_bar=False,
        sampler="hmc",
        adaptation="window",  # 10 leapfrog steps per draw
        step_size_jitter=0.5,
    )
    energy = np.asarray(tree["sample_stats"]["energy"])
    assert np.all(np.isfinite(energy))
    bfmi = np.asarray(az.bfmi(energy))  # (chain, draw) energies -> one BFMI per chain
    assert bfmi.shape == (4,) and np.all((bfmi > 0.7) & (bfmi < 1.3)) and abs(bfmi.mean() - 1) < 0.15, bfmi
    assert np.all(np.asarray(tree["sample_stats"]["n_steps"]) == 10)


@pytest.mark.parametrize("sampler", ["hmc", "mala"])
def test_dense_adaptation_samples_the_target(sampler):
    """dense_mass=True: HMC's warmup adapts a dense inverse mass matrix, MALA's a preconditioner z = L^-1 (x - m);
    the draws have the target's scales (sd within 15%; the sd estimate of ~1000 effective draws is within ~5%)."""
    tree = run(sampler=sampler, dense_mass=True)
    x = np.asarray(tree["posterior"]["x"]).reshape(-1, 3)
    np.testing.assert_allclose(x.std(axis=0), SCALES, rtol=0.15)


def test_low_rank_adaptation_samples_the_target():
    """dense_mass="low_rank": BlackJAX's low-rank window adaptation, its metric used as the dense M^-1 it
    stands for; the draws have the target's scales (as above)."""
    tree = run(dense_mass="low_rank")
    x = np.asarray(tree["posterior"]["x"]).reshape(-1, 3)
    np.testing.assert_allclose(x.std(axis=0), SCALES, rtol=0.15)


def test_default_hmc_adapts_each_chains_trajectory_length():
    """The default (adaptation="window_trajectory"): window adaptation, then per chain T = pi x the longest sd of
    its last slow window's draws whitened by its mass matrix (here about 1: T about pi), and each draw takes
    ceil(v T / eps) leapfrog steps, v uniform: every count from 1 to that maximum, no step-size jitter."""
    tree = run()
    x = np.asarray(tree["posterior"]["x"]).reshape(-1, 3)
    np.testing.assert_allclose(x.std(axis=0), SCALES, rtol=0.15)
    stats = tree["sample_stats"]
    steps, eps = np.asarray(stats["n_steps"]), np.asarray(stats["step_size"])
    assert np.all(eps == eps[:, :1])  # one step size per chain: no jitter
    top = steps.max(axis=1)
    assert np.all(steps.min(axis=1) == 1) and all(len(np.unique(s)) == t for s, t in zip(steps, top, strict=True))
    length = top * eps[:, 0]  # the trajectory time T, within one step
    assert np.all((length > 0.8 * np.pi) & (length < 1.6 * np.pi)), length
    bfmi = np.asarray(az.bfmi(np.asarray(stats["energy"])))  # energy: the Hamiltonian of the draw, as NUTS's
    assert np.all((bfmi > 0.7) & (bfmi < 1.3)), bfmi  # measured 0.95-1.15


def test_sampler_options_are_checked():
    with pytest.raises(ValueError, match="step_size_jitter= is a setting of sampler='hmc'"):
        run(sampler="mala", step_size_jitter=0.5)
    with pytest.raises(ValueError, match=r"step_size_jitter must lie in \[0, 1\)"):
        run(sampler="hmc", step_size_jitter=1.5)
    with pytest.raises(TypeError, match="dense_mass must be True, False"):
        run(sampler="hmc", dense_mass="yes")


def test_chees_adaptation_samples_the_target():
    """adaptation="chees": one step size and trajectory length for all chains, a diagonal mass matrix from
    the pooled draws; every draw takes ceil(v L) leapfrog steps. The draws have the target's scales (sd
    within 15%, as above) and use every count from 1 to L."""
    tree = run(adaptation="chees")
    x = np.asarray(tree["posterior"]["x"]).reshape(-1, 3)
    np.testing.assert_allclose(x.std(axis=0), SCALES, rtol=0.15)
    steps = np.asarray(tree["sample_stats"]["n_steps"])
    assert steps.min() == 1 and steps.max() >= 3
    assert len(np.unique(steps)) == steps.max()


def test_trajectory_options_are_checked(monkeypatch):
    def reached(*args, **kwargs):
        raise AssertionError("the bad input was not caught before warmup")

    monkeypatch.setattr(parmcmc.prepare, "chees_warmup", reached)
    monkeypatch.setattr(parmcmc.prepare, "hmc_warmup", reached)
    with pytest.raises(ValueError, match="adaptation must be one of"):
        run(adaptation="nuts")
    with pytest.raises(ValueError, match="needs num_chains >= 2"):
        parmcmc.sample(
            gaussian,
            rng_key=jax.random.key(0),
            initial_position=jnp.zeros(3),
            num_samples=10,
            num_chains=1,
            adaptation="chees",
            progress_bar=False,
        )
    with pytest.raises(ValueError, match=r"integration_steps_jitter must lie in \(0, 1\]"):
        run(integration_steps_jitter=0.0)
    with pytest.raises(ValueError, match="settings of sampler='hmc'"):
        run(sampler="mala", adaptation="chees")
    with pytest.raises(ValueError, match="dense_mass='low_rank' is a setting of sampler='hmc'"):
        run(sampler="mala", dense_mass="low_rank")
    with pytest.raises(ValueError, match="adaptation='chees' adapts a diagonal mass matrix"):
        run(adaptation="chees", dense_mass=True)
