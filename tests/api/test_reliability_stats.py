"""Statistical validation: posterior means and standard deviations against the exact answer.

The rules below were fixed before the first run, with the seeds, and are not tuned to the outcome:

- One seed, SEED, for every run. No retries. A failure is investigated (a bug, or too few draws?),
  never answered by another seed or a wider tolerance.
- z = (estimate - truth) / MCSE per component, with ArviZ's MCSE (`az.mcse`, method "mean" for the
  mean and "sd" for the standard deviation; checking the sd is checking the variance, to first order).
- An MCSE is only trusted with enough draws: the ESS it rests on (ArviZ's ESS of the draws for the
  mean, of the squared deviations for the sd) must be at least 100, else the test fails saying
  "too few draws" instead of comparing.
- Low-dimensional targets (2-D Gaussian, Beta-Bernoulli): every |z| <= 2.33 (docs/design.md). A correct
  sampler fails one such comparison with probability 2%.
- 100-D target: 100 comparisons per statistic, so about 2 exceed 2.33 by chance. The test allows at most
  6 (a correct sampler has more with probability 0.09%). A bias shared by many components, which no
  single component shows, is caught by two pooled scalars per draw (the mean standardized deviation and
  the mean standardized square, expectations 0 and 1), each within 2.33 of its own MCSE.
- Changed after the first run, and why (the seed and the 2.33 did not change): the first version
  required a bulk ESS (not the sd's ESS), pooled by averaging the 100 per-component z-scores as if the
  components were independent (they share every accept decision and HMC's energy), and ran HMC on the
  100-D target with the default 10 leapfrog steps. HMC's run failed (average sd z -0.32, "pooled"
  -3.2). A 20,000-draw run of the same seed found the cause: static HMC at 10 steps freezes the square
  of a component whose rotation per transition is exactly pi (see SETTINGS_100), a real error that
  MCSEs cannot see, plus six components with an sd-ESS of 5 to 80. The rules above replace the two
  methodological flaws, and HMC on the 100-D target takes 5 leapfrog steps.
- Changed later, for the suite's running time (the seed and the rules did not change): MALA's 100-D
  target has condition number 10 instead of 100, with 16,000 draws instead of 100,000 (see SETTINGS_100).
  It is not a rerun of a failure: the condition-100 run had passed.
- MALA and HMC, parallel and sequential, both from one parmcmc.compare (same warmup, same keys, so the
  same draws up to 1e-8: that is asserted too, and a flipped accept decision would show as an O(1)
  difference).

The conjugate Bayesian linear regression is validated in tests/api/test_api.py
(test_conjugate_regression_posterior_within_monte_carlo_error: MALA and HMC, parallel and sequential,
mean and sd at 2.33 MCSE against `analytic_posterior`); it is not run a second time here.
Run with `-s` to see every z-score; they are also recorded as pytest properties.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr

import parmcmc

SEED = 8
Z = 2.33
MIN_ESS = 100


def z_scores(tree, var, mean, sd):
    """(z of the mean, z of the sd) per component of `var`. Each z needs the ESS its MCSE rests on
    (ArviZ's: of the draws for the mean, of the squared deviations for the sd) to be at least MIN_ESS."""
    out = []
    for method, estimate, truth in (("mean", "mean", mean), ("sd", "std", sd)):
        ess = np.atleast_1d(az.ess(tree, var_names=[var], method=method)[var].values)
        assert ess.min() >= MIN_ESS, f"too few draws: the ESS of {var} for the {method} is {ess.min():.0f} < {MIN_ESS}"
        value = getattr(tree.posterior[var], estimate)(("chain", "draw")).values
        mcse = az.mcse(tree, var_names=[var], method=method)[var].values
        out.append(np.atleast_1d((value - truth) / mcse))
    return tuple(out)


def pooled_z_scores(tree, var, mean, sd):
    """Two scalars per draw that pool the components: u = mean_i (x_i - mean_i) / sd_i (expectation 0)
    and r2 = mean_i ((x_i - mean_i) / sd_i)^2 (expectation 1). Their MCSE comes from their own
    autocorrelation, so the dependence between components (shared accept decisions, HMC's energy)
    is accounted for, which averaging per-component z-scores would not do."""
    standardized = (tree.posterior[var] - mean) / sd
    dim = [d for d in standardized.dims if d not in ("chain", "draw")]
    pooled = xr.Dataset({"u": standardized.mean(dim), "r2": (standardized**2).mean(dim)})
    ess = az.ess(pooled, method="mean")
    mcse = az.mcse(pooled, method="mean")
    for name in ("u", "r2"):
        assert float(ess[name]) >= MIN_ESS, f"too few draws: ESS of the pooled {name} is {float(ess[name]):.0f}"
    return float(pooled["u"].mean() / mcse["u"]), float((pooled["r2"].mean() - 1.0) / mcse["r2"])


def assert_parallel_is_sequential(cmp):
    stats = cmp.parallel["solver_stats"]
    assert bool(stats["solver_converged"].all()) and not bool(stats["solver_fell_back"].any())
    assert cmp.max_abs_diff <= 1e-8, cmp.max_abs_diff
    same = cmp.parallel.sample_stats["acceptance_rate"].values - cmp.sequential.sample_stats["acceptance_rate"].values
    assert np.max(np.abs(same)) <= 1e-8


def report(record_property, name, z_mean, z_sd):
    record_property("z_mean", np.round(z_mean, 3).tolist())
    record_property("z_sd", np.round(z_sd, 3).tolist())
    short = lambda z: np.round(z, 2).tolist() if z.size <= 4 else f"({z.size} components)"
    print(
        f"\n{name}: z(mean) {short(z_mean)} z(sd) {short(z_sd)} "
        f"max |z| {max(np.abs(z_mean).max(), np.abs(z_sd).max()):.2f}",
        end="",
    )


def compare(model, sampler, **kwargs):
    return parmcmc.compare(model, rng_key=jax.random.key(SEED), sampler=sampler, progress_bar=False, **kwargs)


# ---------------------------------------------------------------- correlated 2-D Gaussian

MEAN_2D = np.array([1.0, -2.0])
SD_2D = np.array([1.0, 2.0])
COV_2D = np.array([[1.0, 0.8 * 1.0 * 2.0], [0.8 * 1.0 * 2.0, 4.0]])  # correlation 0.8
PRECISION_2D = jnp.asarray(np.linalg.inv(COV_2D))


def correlated_gaussian(x):
    r = x - jnp.asarray(MEAN_2D)
    return -0.5 * r @ PRECISION_2D @ r


# HMC only: a correlation of 0.8 that its diagonal mass matrix cannot remove. MALA's statistics are
# checked on the 100-D Gaussian below and on the correlated posterior of the conjugate regression
# (test_api.py); its 2-D run was dropped to keep the suite within its time budget.
def test_correlated_2d_gaussian(record_property, sampler="hmc"):
    cmp = compare(
        correlated_gaussian, sampler, initial_position=jnp.zeros(2), num_samples=2000, num_warmup=500, num_chains=2
    )
    assert_parallel_is_sequential(cmp)
    z_mean, z_sd = z_scores(cmp.parallel, "x", MEAN_2D, SD_2D)
    report(record_property, f"2-D Gaussian {sampler}", z_mean, z_sd)
    assert np.all(np.abs(z_mean) <= Z) and np.all(np.abs(z_sd) <= Z), (z_mean, z_sd)


# ---------------------------------------------------------------- 100-D ill-conditioned diagonal Gaussian

DIM = 100
SD_100 = np.geomspace(0.1, 1.0, DIM)  # variances from 0.01 to 1: condition number 100
MEAN_100 = np.linspace(-1.0, 1.0, DIM)


def diagonal_gaussian(sd):
    def logdensity(x):
        return -0.5 * jnp.sum(((x - jnp.asarray(MEAN_100)) / jnp.asarray(sd)) ** 2)

    return logdensity


# MALA has no mass matrix: its step is set by the narrowest sd and the widest decorrelates in about
# (sd_max / sd_min)^2 times as many steps. At condition number 100 an ESS of 100 everywhere took 100,000
# draws (87 s of the 2-core CI machine, a sixth of the whole suite), so MALA runs at condition number 10
# (variances 0.1 to 1): 16,000 draws. HMC's adapted diagonal mass matrix removes the conditioning, so it
# keeps condition number 100. QuasiDEER with one Hutchinson probe: for a diagonal Gaussian the step map's
# Jacobian is diagonal (MALA, and HMC with a diagonal metric), where z * (J z) IS the diagonal, so this
# is Newton's method at the cost of one forward pass per step.
# HMC's trajectory is static. With the default 10 leapfrog steps, the adapted step size (about 0.36-0.44)
# makes each transition rotate a well-scaled component by about 1.15 pi-1.4 pi, and the scatter of the
# adapted mass matrix puts some components at exactly pi: x -> -x, so x^2 never changes. With SEED,
# chain 0's component 84 rotates by 3.142 and its mean (x/sd)^2 over 20,000 draws is 2.71 instead of 1.
# No MCSE can see that (the frozen value has no variance), and BlackJAX's HMC does the same: it is static
# HMC's known failure on Gaussians, not parallel evaluation's. Five steps (about 2-2.7 rad) keep every
# component away from multiples of pi, so the test checks what it is for.
SETTINGS_100 = {
    "mala": dict(num_samples=4000, num_warmup=1000, num_chains=4),
    "hmc": dict(num_samples=1000, num_warmup=1000, num_chains=4, num_integration_steps=5),
}
SD_BY_SAMPLER = {"mala": np.geomspace(np.sqrt(0.1), 1.0, DIM), "hmc": SD_100}  # condition numbers 10 and 100


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_ill_conditioned_100d_gaussian(sampler, record_property):
    sd = SD_BY_SAMPLER[sampler]
    cmp = compare(
        diagonal_gaussian(sd),
        sampler,
        initial_position=jnp.zeros(DIM),
        solver=parmcmc.QuasiDEER(diagonal="hutchinson"),
        **SETTINGS_100[sampler],
    )
    assert_parallel_is_sequential(cmp)
    z_mean, z_sd = z_scores(cmp.parallel, "x", MEAN_100, sd)
    report(record_property, f"100-D Gaussian {sampler}", z_mean, z_sd)
    for name, z in (("mean", z_mean), ("sd", z_sd)):
        exceed = int(np.sum(np.abs(z) > Z))
        print(f"\n  {name}: {exceed} of {z.size} |z| > {Z}, max |z| {np.abs(z).max():.2f}", end="")
        record_property(f"{name}_exceedances", exceed)
        assert exceed <= 6, (name, exceed, np.round(z, 2))
    z_u, z_r2 = pooled_z_scores(cmp.parallel, "x", MEAN_100, sd)
    print(f"\n  pooled: z(u) {z_u:.2f}, z(r2) {z_r2:.2f}", end="")
    record_property("pooled_z", [round(z_u, 3), round(z_r2, 3)])
    assert abs(z_u) <= Z and abs(z_r2) <= Z, (z_u, z_r2)


# ---------------------------------------------------------------- Beta-Bernoulli through NumPyro

BB_PRIOR = (2.0, 2.0)
BB_DATA = np.array([1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0], dtype=np.float64)


def beta_bernoulli(y):
    p = numpyro.sample("p", dist.Beta(*BB_PRIOR))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Bernoulli(probs=p), obs=y)


def beta_posterior():
    a = BB_PRIOR[0] + BB_DATA.sum()
    b = BB_PRIOR[1] + BB_DATA.size - BB_DATA.sum()
    return a / (a + b), np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def test_beta_bernoulli_through_numpyro(record_property):
    """p lives on (0, 1): the sampler moves on logit(p) with the transform's Jacobian; the draws come
    back constrained and are compared with the exact Beta posterior. HMC only: the transform lives in
    the log density, which MALA and HMC share (MALA's statistics are checked on the Gaussians above
    and on the conjugate regression of test_api.py)."""
    # The solver is the published setting for HMC (damping 0.55, |A_t| entries clipped to 1), so that the
    # parallel solve itself is what is validated here. History: undamped DEER (the default for small
    # positions) overflowed on this chain and sample() finished it sequentially; DEER with clipping alone
    # converged until the warmup was jitted as a whole, which changed its rounding, and then overflowed on
    # chain 0. Whether undamped Newton survives an HMC chain depends on such details; the damped one did
    # on both chains (about 14 and 140 iterations for another seed's 1000 draws). sample() now fails fast
    # (max_iters = max(64, T // 8), patience 16: docs/convergence.md), which would hand a slow damped solve to
    # the sequential fallback; the full budget keeps this a test of the parallel solve itself.
    cmp = compare(
        beta_bernoulli,
        "hmc",
        model_args=(BB_DATA,),
        num_samples=2000,
        num_warmup=500,
        num_chains=2,
        solver=parmcmc.DEER(damping=0.55, clip=1.0),
        max_iters=2000,
        patience=None,
    )
    assert_parallel_is_sequential(cmp)
    p = cmp.parallel.posterior["p"].values
    assert p.min() > 0 and p.max() < 1
    z_mean, z_sd = z_scores(cmp.parallel, "p", *beta_posterior())
    report(record_property, "Beta-Bernoulli hmc", z_mean, z_sd)
    assert np.all(np.abs(z_mean) <= Z) and np.all(np.abs(z_sd) <= Z), (z_mean, z_sd)
