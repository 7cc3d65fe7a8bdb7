"""./dev.sh bench samplers: which sampler gives effective samples fastest, and which step maps contract.

Two studies, printed as Markdown tables (docs/samplers.md holds a run of them):

jitter   the LLE of HMC's step map (parmcmc.lyapunov_exponent, shared noise) and the ESS of 4 chains,
         with and without a step size jittered per draw, after one window adaptation, on eight schools
         (non-centred) and a correlated 10-D Gaussian.
table    ESS bulk and tail (min over parameters), max r-hat, divergences and ESS per second of the
         sequential chain for parmcmc's samplers and NumPyro's NUTS, in one run, on small models of
         our own: eight schools (non-centred), a radon-like hierarchical model, a logistic regression.
newton   Newton iterations (QuasiDEER and DEER) of MALA with and without the warmup's linear
         preconditioner, on a rotated ill-conditioned Gaussian and a correlated (random-walk) posterior.
"""

import time

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from parmcmc.models.builtin import eight_schools, logistic_regression

CHAINS, WARMUP, DRAWS = 4, 500, 1000


# ------------------------------------------------------------------------------------------ models
def radon_model(county, log_uranium, floor, num_counties, y=None):
    """Radon-like varying intercepts with a group-level predictor (non-centred): D = num_counties + 5."""
    g0 = numpyro.sample("g0", dist.Normal(0.0, 5.0))
    g1 = numpyro.sample("g1", dist.Normal(0.0, 5.0))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(2.0))
    with numpyro.plate("county", num_counties):
        a_z = numpyro.sample("a_z", dist.Normal(0.0, 1.0))
    a = g0 + g1 * log_uranium + sigma_a * a_z
    beta = numpyro.sample("beta", dist.Normal(0.0, 5.0))
    sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(2.0))
    with numpyro.plate("obs", county.shape[0]):
        numpyro.sample("y", dist.Normal(a[county] + beta * floor, sigma_y), obs=y)


def radon(num_counties=9, num_obs=300, seed=0):
    rng = np.random.default_rng(seed)
    county = rng.integers(0, num_counties, num_obs)
    log_uranium = rng.normal(size=num_counties)
    floor = (rng.uniform(size=num_obs) < 0.2).astype(float)
    a = 1.5 + 0.7 * log_uranium + 0.3 * rng.normal(size=num_counties)
    y = a[county] - 0.6 * floor + 0.8 * rng.normal(size=num_obs)
    return radon_model, (county, log_uranium, floor, num_counties), {"y": y}


def models():
    es, lr = eight_schools(), logistic_regression(num_data=500, num_features=10)
    return {
        "eight schools NC (10)": (es.model, es.model_args, es.model_kwargs),
        "radon-like (14)": radon(),
        "logistic (10)": (lr.model, lr.model_args, lr.model_kwargs),
    }


def correlated_gaussian(dim=10, condition=100.0, seed=0):
    """A rotated Gaussian with variances from 1 to `condition`."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    cov = q @ np.diag(np.geomspace(1.0, condition, dim)) @ q.T
    prec = jnp.asarray(np.linalg.inv(cov))
    return lambda x: -0.5 * x @ prec @ x, jnp.asarray(rng.normal(size=dim))


def random_walk_posterior(dim=30, seed=1):
    """A Gaussian random walk observed at every third step with noise 0.5: a banded, correlated posterior."""
    rng = np.random.default_rng(seed)
    truth = np.cumsum(rng.normal(size=dim))
    seen = np.arange(0, dim, 3)
    y = jnp.asarray(truth[seen] + 0.5 * rng.normal(size=seen.size))

    def logdensity(x):
        walk = -0.5 * jnp.sum(jnp.diff(x) ** 2) - 0.5 * x[0] ** 2 / 100.0
        return walk - 0.5 * jnp.sum((x[seen] - y) ** 2) / 0.25

    return logdensity, jnp.zeros(dim)


# -------------------------------------------------------------------------------------- measuring
def _summary(tree, seconds):
    import arviz as az

    post = tree["posterior"] if "posterior" in tree else tree.posterior  # noqa: SIM401 (.get would read both)
    arrays = [np.asarray(post[v]).reshape(post[v].shape[0], post[v].shape[1], -1) for v in post.data_vars]
    x = np.concatenate(arrays, axis=-1)
    bulk, tail = az.ess(x, method="bulk"), az.ess(x, method="tail", prob=(0.05, 0.95))
    stats = tree["sample_stats"] if "sample_stats" in tree else tree.sample_stats  # noqa: SIM401
    div = int(np.sum(np.asarray(stats["diverging"]))) if "diverging" in stats else 0
    return dict(
        ess_bulk=float(np.min(bulk)),
        ess_tail=float(np.min(tail)),
        rhat=float(np.max(az.rhat(x))),
        divergences=div,
        seconds=seconds,
        ess_per_s=float(np.min(bulk)) / seconds,
    )


def run_parmcmc(model, args, kwargs, **options):
    import parmcmc

    t0 = time.perf_counter()
    tree = parmcmc.sample(
        model,
        rng_key=jax.random.key(1),
        num_samples=DRAWS,
        num_warmup=WARMUP,
        num_chains=CHAINS,
        parallel=False,
        model_args=args,
        model_kwargs=kwargs,
        progress_bar=False,
        **options,
    )
    total = time.perf_counter() - t0
    seconds = float(tree.attrs.get("sampling_seconds", 0)) + float(tree.attrs.get("warmup_seconds", 0))
    out = _summary(tree, seconds)
    out["total_s"] = total
    return out


def run_nuts(model, args, kwargs):
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(
        NUTS(model),
        num_warmup=WARMUP,
        num_samples=DRAWS,
        num_chains=CHAINS,
        chain_method="vectorized",
        progress_bar=False,
    )
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(1), *args, **kwargs)
    jax.block_until_ready(mcmc.get_samples())
    total = time.perf_counter() - t0
    mcmc.run(jax.random.key(2), *args, **kwargs)  # compiled: time the second run
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(1), *args, **kwargs)
    jax.block_until_ready(mcmc.get_samples())
    seconds = time.perf_counter() - t0
    import arviz as az

    samples = mcmc.get_samples(group_by_chain=True)
    x = np.concatenate(
        [np.asarray(v).reshape(CHAINS, DRAWS, -1) for k, v in samples.items() if not k.endswith("theta")], axis=-1
    )
    bulk, tail = az.ess(x, method="bulk"), az.ess(x, method="tail", prob=(0.05, 0.95))
    div = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    return dict(
        ess_bulk=float(np.min(bulk)),
        ess_tail=float(np.min(tail)),
        rhat=float(np.max(az.rhat(x))),
        divergences=div,
        seconds=seconds,
        ess_per_s=float(np.min(bulk)) / seconds,
        total_s=total,
    )


SAMPLERS = {
    "NUTS (NumPyro)": None,
    "HMC L=10": dict(sampler="hmc", step_size_jitter=0.0, dense_mass=False),
    "HMC L=10 jitter 0.5": dict(sampler="hmc", step_size_jitter=0.5, dense_mass=False),
    "HMC L=10 jitter 0.5 dense": dict(sampler="hmc", step_size_jitter=0.5, dense_mass=True),
    "MALA": dict(sampler="mala", dense_mass=False),
    "MALA preconditioned": dict(sampler="mala", dense_mass=True),
}


def table(only=None):
    rows = []
    for name, (model, args, kwargs) in models().items():
        for sampler, options in SAMPLERS.items():
            if only and sampler not in only:
                continue
            r = run_nuts(model, args, kwargs) if options is None else run_parmcmc(model, args, kwargs, **options)
            rows.append(dict(model=name, sampler=sampler, **r))
            print(rows[-1], flush=True)
    return rows


def jitter_study(T=2000):
    """LLE and ESS of HMC with and without a jittered step size (after window adaptation)."""
    import arviz as az

    import parmcmc
    from parmcmc.models import from_numpyro
    from parmcmc.samplers import HMC
    from parmcmc.warmup import hmc_warmup

    es = eight_schools()
    target = from_numpyro(
        es.model, jax.random.key(0), model_args=es.model_args, model_kwargs=es.model_kwargs, num_chains=CHAINS
    )
    gauss, g0 = correlated_gaussian()
    cases = {
        "eight schools NC": (target.logdensity_fn, target.initial_positions),
        "rotated Gaussian (10, cond 100)": (gauss, jnp.tile(g0, (CHAINS, 1))),
    }
    rows = []
    for name, (logdensity, starts) in cases.items():
        warm = hmc_warmup(logdensity, starts, jax.random.key(3), WARMUP, 10, keep_draws=False)
        for jitter in (None, 0.5):

            def chain(c):
                x0 = jax.tree.map(lambda a: a[c], warm.positions)
                imm = warm.inverse_mass_matrix
                if imm is None:
                    raise RuntimeError("hmc_warmup returned no inverse mass matrix")
                s = HMC(logdensity, warm.step_size[c], 10, imm[c], step_size_jitter=jitter)
                return s.bind(x0), x0

            lles, draws = [], []
            for c in range(CHAINS):
                s, x0 = chain(c)
                noise = s.noise(jax.random.key(10 + c), T)
                lles.append(parmcmc.lyapunov_exponent(s.step, s.ravel(x0), noise).lle)
                res = parmcmc.run_chain(s, x0, jax.random.key(10 + c), T, solver=parmcmc.Sequential())
                draws.append(jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(res.positions))
            x = np.stack(draws)
            rows.append(
                dict(
                    target=name,
                    jitter=jitter or 0.0,
                    lle_mean=float(np.mean(lles)),
                    lle_max=float(np.max(lles)),
                    ess_bulk_min=float(np.min(az.ess(x, method="bulk"))),
                    ess_tail_min=float(np.min(az.ess(x, method="tail", prob=(0.05, 0.95)))),
                    rhat_max=float(np.max(az.rhat(x))),
                )
            )
            print(rows[-1], flush=True)
    return rows


def newton_study(T=1000):
    """Newton iterations of MALA (QuasiDEER, DEER) with and without the warmup's preconditioner."""
    import parmcmc
    from parmcmc.samplers import MALA
    from parmcmc.warmup import mala_warmup

    g, g0 = correlated_gaussian(dim=10, condition=100.0)
    rw, r0 = random_walk_posterior()
    rows = []
    for name, (logdensity, x0) in {"rotated Gaussian (10, cond 100)": (g, g0), "random walk (30)": (rw, r0)}.items():
        starts = jnp.tile(x0, (2, 1))
        for pre in (False, True):
            warm = mala_warmup(logdensity, starts, jax.random.key(5), WARMUP, precondition=pre, keep_draws=False)
            s = MALA(
                logdensity,
                warm.step_size[0],
                loc=None if not pre or warm.loc is None else warm.loc[0],
                scale=None if not pre or warm.scale is None else warm.scale[0],
            )
            start = warm.positions[0]
            bound, z0 = s.bound_at(start)
            lle = parmcmc.lyapunov_exponent(bound.step, z0, bound.noise(jax.random.key(6), T)).lle
            for solver in (parmcmc.QuasiDEER(), parmcmc.DEER()):
                res = parmcmc.run_chain(bound, start, jax.random.key(6), T, solver=solver, fallback="sequential")
                rows.append(
                    dict(
                        target=name,
                        preconditioned=pre,
                        solver=type(solver).__name__,
                        T=T,
                        step_size=float(warm.step_size[0]),
                        lle=lle,
                        iterations=int(res.num_iters),
                        converged=bool(res.converged),
                        fell_back=bool(res.fell_back),
                    )
                )
                print(rows[-1], flush=True)
    return rows


def markdown(rows):
    cols = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    return "\n".join(
        ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        + ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    )


def main(studies=("jitter", "newton", "table")):
    from parmcmc.bench.timing import versions

    jax.config.update("jax_enable_x64", True)  # float64, as the issues' tables
    print(versions())
    out = {}
    for study in studies:
        out[study] = {"jitter": jitter_study, "newton": newton_study, "table": table}[study]()
        print(f"\n## {study}\n\n" + markdown(out[study]) + "\n", flush=True)
    return out


if __name__ == "__main__":
    import sys

    jax.config.update("jax_enable_x64", True)
    main(tuple(sys.argv[1:]) or ("jitter", "newton", "table"))
