"""Sharded = unsharded, on 8 CPU devices: run by tests/engine/test_sharding.py in ONE subprocess (one JAX start).

XLA_FLAGS=--xla_force_host_platform_device_count=8 and JAX_PLATFORMS=cpu must be set before JAX starts,
which is why this is a script and not a test module. It prints one JSON object: {check name: value}.
"""

import json
import os
import sys
import warnings

assert "--xla_force_host_platform_device_count=8" in os.environ.get("XLA_FLAGS", ""), "run via test_sharding.py"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

jax.config.update("jax_enable_x64", True)

from parmcmc.engine import DEER, ELK, Jacobi, Picard, QuasiDEER, QuasiELK, kalman, scan, sharding, solve  # noqa: E402

MESHES = {"1x8": (1, 8), "8x1": (8, 1), "2x4": (2, 4)}
SOLVERS = {
    "Jacobi": Jacobi(),
    "Picard": Picard(),
    "QuasiDEER": QuasiDEER(),
    "DEER": DEER(),
    "ELK": ELK(),
    "QuasiELK": QuasiELK(),
}
T, D = 26, 3  # neither 8 nor 4 divides 26 (shards of 4 states, 6 of padding over 8 devices)


def step(x, u):
    """A contracting nonlinear recurrence with coupled coordinates (dense Jacobians)."""
    return jnp.tanh(0.6 * x + 0.3 * jnp.roll(x, 1) + u)


def expanding(x, u):
    """Chaotic: DEER with a small budget does not converge, so the fallback runs."""
    return jnp.sin(3.0 * x + u)


def diff(a, b):
    return float(jnp.max(jnp.abs(a - b)))


def same(a, b):
    """max |sharded - unsharded| over the states, and whether the reports (iterations, flags) agree."""
    flags = all(
        bool(jnp.all(getattr(a, f) == getattr(b, f)))
        for f in ("converged", "num_iters", "result", "sequential_from", "fell_back")
    )
    return {
        "err": diff(a.states, b.states),
        "flags": flags,
        "converged": bool(a.converged),
        "fell_back": bool(a.fell_back),
    }


def mesh_of(shape):
    return jax.make_mesh(shape, ("chain", "time"))


def solver_checks(out):
    u = jax.random.normal(jax.random.key(1), (T, D))
    u64 = jax.random.normal(jax.random.key(2), (64, D))
    x0 = jnp.linspace(-1.0, 1.0, D)
    cases = {name: (step, u, s, {}, MESHES) for name, s in SOLVERS.items()}
    # Fewer meshes for the special cases: each (solve, mesh) pair is one compilation.
    cases["DEER T=64"] = (step, u64, DEER(), {}, {"1x8": (1, 8)})
    cases["DEER window=16"] = (step, u, DEER(), {"window": 16}, {"2x4": (2, 4)})
    cases["QuasiELK window=16"] = (step, u, QuasiELK(), {"window": 16}, {"1x8": (1, 8)})
    cases["DEER fallback"] = (expanding, u, DEER(), {"max_iters": 3, "fallback": "sequential"}, {"2x4": (2, 4)})
    for name, (fn, inputs, solver, kw, meshes) in cases.items():
        ref = solve(fn, x0, inputs, solver, **kw)
        for mname, shape in meshes.items():
            out[f"{name} @ {mname}"] = same(solve(fn, x0, inputs, solver, mesh=mesh_of(shape), **kw), ref)
    # Negative control: the same comparison on a solve whose input differs by 1e-9 in one entry.
    nudged = u.at[T // 2, 0].add(1e-9)
    out["negative control"] = same(solve(step, x0, nudged, DEER(), mesh=mesh_of((1, 8))), solve(step, x0, u, DEER()))


def scan_checks(out):
    """The sharded scans against the sequential loop, T = 1000 (not a multiple of 8 * 128)."""
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    mesh = mesh_of((1, 8))
    for dense in (False, True):
        n = 1000
        A = jax.random.uniform(k1, (n, D, D) if dense else (n, D), minval=-1, maxval=1) / (D if dense else 1)
        b, x0 = jax.random.normal(k2, (n, D)), jax.random.normal(k3, (D,))
        ref = scan.affine_scan_sequential(A, b, x0)
        got = jax.jit(lambda A, b, x0: sharding.sharded_affine_scan(A, b, x0, mesh))(A, b, x0)
        out[f"affine {'dense' if dense else 'diag'}"] = diff(got, ref)
        y = ref + 0.1
        with sharding.use_mesh(mesh):
            sm = jax.jit(lambda A, b, x0, y: kalman.parallel_smoother(A, b, x0, y, 0.5))(A, b, x0, y)
        # The reference runs the scans one element after the other (a single block): the definition of the
        # scan, and one compiled loop body (jax.lax.associative_scan's unrolled tree took ~10x longer to compile).
        one_block = lambda op, elems, reverse=False: scan.blocked_associative_scan(op, elems, reverse=reverse, block=n)
        ref_sm = jax.jit(lambda A, b, x0, y: kalman.parallel_smoother(A, b, x0, y, 0.5, scan=one_block))(A, b, x0, y)
        out[f"smoother {'dense' if dense else 'diag'}"] = max(diff(sm.mean, ref_sm.mean), diff(sm.cov, ref_sm.cov))


def memory_checks(out):
    """Per-device bytes (XLA's memory analysis) of a compiled solve, unsharded and over 8 "time" devices."""
    n, d = 4096, 8
    x0 = jnp.zeros(d)
    for name, solver in (("DEER", DEER()), ("QuasiDEER", QuasiDEER())):
        sizes = {}
        for label, mesh in (("1", None), ("8", sharding.auto(mesh_of((1, 8))))):
            sh = None if mesh is None else NamedSharding(mesh, P("time"))
            u = jax.ShapeDtypeStruct((n, d), jnp.float64, sharding=sh)
            lowered = jax.jit(lambda x0, u: solve(step, x0, u, solver, mesh=mesh).states).lower(x0, u)
            m = lowered.compile().memory_analysis()
            assert m is not None, "this backend gives no memory analysis"
            sizes[label] = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        out[f"memory {name}"] = sizes


def sample_checks(out):
    from parmcmc import sample

    def logdensity(x):
        return -0.5 * jnp.sum((x - jnp.array([1.0, -2.0])) ** 2 / jnp.array([1.0, 4.0]))

    kw = dict(
        rng_key=jax.random.key(7),
        num_samples=64,
        num_warmup=100,  # enough for both chains to move: a frozen chain would make the comparison vacuous
        num_chains=2,
        initial_position=jnp.zeros(2),
        parallel=True,
        progress_bar=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = sample(logdensity, **kw)
    out["sample warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    out["sample accept"] = float(ref["sample_stats"]["acceptance_rate"].mean(dim="draw").min())
    for mname, shape in (("2x4", (2, 4)),):
        tree = sample(logdensity, mesh=mesh_of(shape), **kw)
        errs = [
            diff(tree[g][v].values, ref[g][v].values)
            for g in ("posterior", "sample_stats")
            for v in ref[g].data_vars
            if jnp.issubdtype(ref[g][v].dtype, jnp.number)
        ]
        same_vars = all(set(tree[g].data_vars) == set(ref[g].data_vars) for g in ("posterior", "sample_stats"))
        out[f"sample @ {mname}"] = {"err": max(errs), "same_vars": same_vars}
    try:
        sample(logdensity, mesh=mesh_of((2, 4)), **{**kw, "num_chains": 3})
        out["bad num_chains"] = "no error"
    except ValueError as err:
        out["bad num_chains"] = str(err)


if __name__ == "__main__":
    out = {"devices": jax.device_count()}
    for check in sys.argv[1:] or ("scan", "solver", "memory", "sample"):
        {"scan": scan_checks, "solver": solver_checks, "memory": memory_checks, "sample": sample_checks}[check](out)
    print("RESULT " + json.dumps(out))
