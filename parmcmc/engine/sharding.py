"""Solves split over devices: chains over a mesh axis "chain", the T states of a solve over "time".

Built on JAX's own machinery only: a `jax.sharding.Mesh`, `jax.shard_map` for the scans, and sharding
constraints (`jax.lax.with_sharding_constraint`) for everything else, which XLA's partitioner then
splits. Nothing here moves data by hand: all_gather inside shard_map is the only collective we write.

The time-sharded scans are the two-level scans of scan.py with the devices as the outer level. With n
devices on "time", device i holds steps [i T/n, (i+1) T/n):

1. each device computes the composed map of its steps (a blocked sequential scan, scan.block_map);
2. the n composed maps are all-gathered (n small matrices) and device i folds those before it onto x0,
   which gives the state entering its shard;
3. each device runs its steps from that state (scan.block_states), vmapped over its blocks.

The same pattern serves any associative operator (the Kalman filter and smoother of kalman.py): local
prefixes, an all-gather of the n shard totals, and each shard's prefixes combined with the total of the
shards before it. A T that n does not divide is padded (zero steps, or copies of the last element) and
the padding is dropped from the result.

A solve traced inside `use_mesh(mesh)` routes its scans here (`affine_scan`, kalman's scans); the
driver (solve.py) enters that context when called with `solve(..., mesh=mesh)`.
"""

import contextlib
import contextvars
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from parmcmc.engine import scan

CHAIN, TIME = "chain", "time"
_MESH: contextvars.ContextVar = contextvars.ContextVar("parmcmc_mesh", default=None)

__all__ = [
    "CHAIN",
    "TIME",
    "affine_scan",
    "chain_axis",
    "chain_size",
    "check_mesh",
    "check_mesh_for_chains",
    "constrain_time",
    "current_mesh",
    "put_chains",
    "sharded_affine_scan",
    "sharded_associative_scan",
    "time_size",
    "use_mesh",
]


def check_mesh(mesh, call: str = "solve"):
    """Validates `mesh=`: None, or a jax.sharding.Mesh whose axes are named "chain" and/or "time".

    Returns the mesh with Auto axis types: `jax.make_mesh` makes Explicit axes by default, under which
    every array's type carries its sharding; the engine leaves the layout of everything but the scans
    to XLA's partitioner, which is what Auto axes mean. The devices and axes are the user's.
    """
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{call}: mesh must be a jax.sharding.Mesh such as jax.make_mesh((2, 4), ('chain', 'time')); "
            f"got {type(mesh).__name__}."
        )
    names = set(mesh.axis_names)
    if not names or not names <= {CHAIN, TIME}:
        raise ValueError(
            f"{call}: mesh axes must be named 'chain' and/or 'time' (chains are split over 'chain', the states "
            f"of each solve over 'time'); got axes {mesh.axis_names}."
        )
    return auto(mesh)


def auto(mesh: Mesh) -> Mesh:
    """The same devices and axis names with Auto axis types (see check_mesh)."""
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def check_mesh_for_chains(mesh, num_chains: int):
    """check_mesh for sample(): num_chains must be a multiple of the "chain" axis' size."""
    mesh = check_mesh(mesh, "sample")
    if mesh is not None and num_chains % chain_size(mesh):
        raise ValueError(
            f"sample: num_chains={num_chains} must be a multiple of the mesh's 'chain' axis ({chain_size(mesh)} "
            f"devices); change num_chains or the mesh, e.g. jax.make_mesh((1, n), ('chain', 'time'))."
        )
    return mesh


def chain_axis(mesh: Mesh | None) -> str | None:
    """The vmap `spmd_axis_name` that splits a batch of chains over "chain" (None without that axis)."""
    return CHAIN if mesh is not None and CHAIN in mesh.axis_names else None


def put_chains(tree, mesh: Mesh):
    """Places every leaf's leading (chain) axis over "chain" (replicated over "time"); None stays None."""
    if chain_axis(mesh) is None:
        return tree
    return jax.device_put(tree, NamedSharding(auto(mesh), P(CHAIN)))


@contextlib.contextmanager
def use_mesh(mesh: Mesh | None):
    """Within this context, traced scans split the time axis over mesh's "time" devices."""
    token = _MESH.set(mesh)
    try:
        yield mesh
    finally:
        _MESH.reset(token)


def current_mesh() -> Mesh | None:
    """The mesh of the solve being traced (set by `use_mesh`), or None."""
    return _MESH.get()


def time_size(mesh: Mesh | None) -> int:
    """The number of devices on the mesh's "time" axis (1 without one)."""
    return 1 if mesh is None else dict(mesh.shape).get(TIME, 1)


def chain_size(mesh: Mesh | None) -> int:
    """The number of devices on the mesh's "chain" axis (1 without one)."""
    return 1 if mesh is None else dict(mesh.shape).get(CHAIN, 1)


def constrain_time(tree, mesh: Mesh | None):
    """Ask XLA to split the leading (time) axis of every leaf over "time".

    Where n divides it, XLA's partitioner then shards the batched evaluations of f and its Jacobians alike.
    A no-op without a time axis. Under `jax.vmap(..., spmd_axis_name="chain")` the chain axis is added by
    vmap.
    """
    n = time_size(mesh)
    if mesh is None or n == 1:
        return tree

    def one(a):
        if jnp.ndim(a) == 0 or a.shape[0] % n:
            return a
        return jax.lax.with_sharding_constraint(a, NamedSharding(auto(mesh), P(TIME)))

    return jax.tree_util.tree_map(one, tree)


def affine_scan(A: jax.Array, b: jax.Array, x0: jax.Array) -> jax.Array:
    """All states of ``x_t = A_t x_{t-1} + b_t`` for t = 1..T from a fixed ``x0``: the solvers' scan.

    Runs ``scan.affine_scan_blocked``, or its time-sharded twin (`sharded_affine_scan`) inside
    ``use_mesh(mesh)`` when the mesh has a "time" axis.

    Parameters
    ----------
    A
        (T, D) for diagonal maps or (T, D, D) for dense ones.
    b
        (T, D).
    x0
        (D,), the state before the first step.

    Returns
    -------
    jax.Array
        (T, D), the state after each step (``x0`` itself is not included).
    """
    scan._check("affine_scan", A, b, x0)
    mesh = current_mesh()
    if mesh is not None and time_size(mesh) > 1:
        return sharded_affine_scan(A, b, x0, mesh)
    return scan.affine_scan_blocked(A, b, x0)


def _fold_before(totals, i, op1):
    """Folds the totals of shards j < i (leading axis n) in order; returns (fold, any_folded)."""
    first = jax.tree_util.tree_map(lambda a: a[0], totals)

    def step(carry, jt):
        acc, has = carry
        j, t = jt
        new = jax.tree_util.tree_map(lambda x, y: jnp.where(has, x, y), op1(acc, t), t)
        take = j < i
        acc = jax.tree_util.tree_map(lambda x, y: jnp.where(take, x, y), new, acc)
        return (acc, has | take), None

    n = jax.tree_util.tree_leaves(totals)[0].shape[0]
    return jax.lax.scan(step, (first, jnp.zeros((), bool)), (jnp.arange(n), totals))[0]


def sharded_affine_scan(
    A: jax.Array, b: jax.Array, x0: jax.Array, mesh: Mesh, block: int = scan.DEFAULT_BLOCK
) -> jax.Array:
    """`affine_scan` with the T steps split over the devices of mesh's "time" axis (module docstring).

    A: (T, D) diagonal or (T, D, D) dense; b: (T, D); x0: (D,). Equal to the unsharded scan up to
    rounding; each device holds ~T/n of A, b and the states.
    """
    scan._check("sharded_affine_scan", A, b, x0)
    T, D = b.shape
    mesh, n = auto(mesh), time_size(mesh)
    per = -(-T // n)  # steps per shard; only a T that n does not divide is padded, after its last step
    A, b = scan._pad_steps(A, b, n * per)
    B = min(block, per)
    nb = -(-per // B)

    def local(A, b, x0):
        # Identity steps complete this shard's last block in place (no data moves between devices).
        A, b = scan._pad_steps(A, b, nb * B, identity=True)
        A, b = A.reshape((nb, B, *A.shape[1:])), b.reshape(nb, B, D)
        maps = jax.vmap(scan.block_map)(A, b)
        total = scan.block_map(maps.A, maps.b)  # this shard's composed map
        totals = jax.lax.all_gather(total, TIME)  # (n, ...): every shard's map
        i = jax.lax.axis_index(TIME)
        x_in = scan.entry_states(totals, x0)[i]  # the state entering shard i (n small: a short scan)
        x_in = scan.entry_states(maps, x_in)
        return jax.vmap(scan.block_states)(A, b, x_in).reshape(nb * B, D)[:per]

    # check_vma=False: the scans' carries start replicated and become per-shard; the specs say it all.
    split = jax.shard_map(local, mesh=mesh, in_specs=(P(TIME), P(TIME), P()), out_specs=P(TIME), check_vma=False)
    return split(A, b, x0)[:T]


def sharded_associative_scan(
    op: Callable, elems, mesh: Mesh, *, reverse: bool = False, block: int = scan.DEFAULT_BLOCK
):
    """`jax.lax.associative_scan(op, elems, reverse=reverse)`, the leading axis split over "time".

    op(earlier, later) acts on stacks of elements, as for associative_scan. Each shard scans its own
    elements (scan.blocked_associative_scan), the n shard totals are all-gathered, and shard i combines
    its prefixes with the fold of the totals before it (after it, for reverse=True). Reversal happens
    within each shard, so no element moves between devices.
    """
    T = jax.tree_util.tree_leaves(elems)[0].shape[0]
    mesh, n = auto(mesh), time_size(mesh)
    per = -(-T // n)
    pad = n * per - T
    elems = scan.pad_with_edge(elems, n * per, front=reverse)
    op1 = scan._one(op)
    flip = lambda tree: jax.tree_util.tree_map(lambda a: jnp.flip(a, 0), tree)

    def local(elems):
        out = scan.blocked_associative_scan(op, flip(elems) if reverse else elems, block=block)
        totals = jax.lax.all_gather(jax.tree_util.tree_map(lambda a: a[-1], out), TIME)
        i = jax.lax.axis_index(TIME)
        if reverse:  # the shards after this one come first
            totals, i = flip(totals), n - 1 - i
        prefix, _ = _fold_before(totals, i, op1)
        fixed = op(jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (per, *a.shape)), prefix), out)
        out = jax.tree_util.tree_map(lambda f, o: jnp.where(i > 0, f, o), fixed, out)
        return flip(out) if reverse else out

    spec = jax.tree_util.tree_map(lambda _: P(TIME), elems)
    out = jax.shard_map(local, mesh=mesh, in_specs=(spec,), out_specs=spec, check_vma=False)(elems)
    return jax.tree_util.tree_map(lambda a: a[pad:] if reverse else a[:T], out)
