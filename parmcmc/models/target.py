"""The one interface a sampler run needs from a model: `Target`.

Both a NumPyro model (see `parmcmc.models.numpyro.from_numpyro`) and a plain log-density function
(`from_logdensity` below) become a `Target`, so the API layer treats them alike:

    target.logdensity_fn        what the samplers and the engine see (unconstrained space)
    target.initial_positions    one start per chain, leading axis = chain
    target.postprocess          unconstrained draws -> named constrained values, for the output only
    target.observed_data, ...   what the ArviZ output needs besides the draws
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from parmcmc.arguments import PyTree, check_int
from parmcmc.jitcache import program_jit

__all__ = ["ChainStarts", "Target", "check_initial_positions", "from_logdensity", "num_chains_of"]


class Target(NamedTuple):
    """A log density on an unconstrained space, its starts, and the way back to named values.

    logdensity_fn
        `position -> scalar`: log density (up to a constant) of ONE position pytree on the
        unconstrained space. For NumPyro models this is minus NumPyro's potential energy, so the
        log-Jacobians of the constraining transforms are included.
    initial_positions
        Pytree of the same structure as a position, every leaf with a leading axis of length
        num_chains: the start of each chain. Finite log density and gradient at every start.
    postprocess
        `positions -> dict[str, Array]`: maps unconstrained positions whose leaves carry two
        leading axes (chain, draw) to constrained values, one entry per variable of the
        posterior (NumPyro: latent sites and deterministic sites), each of shape
        (chain, draw, *var_shapes[name]).
    var_shapes
        `dict[str, tuple[int, ...]]`: the shape of one draw of each variable `postprocess` returns.
    observed_data
        `dict[str, np.ndarray]`: observed values (NumPyro: the observed sample sites); empty for a
        plain log density.
    dims
        `dict[str, list[str]]`: ArviZ dimension names for variables and observed data, as far as
        they are known (NumPyro: plate names). Dimensions not named here get ArviZ's defaults.
    name
        Name of the model, used in error messages.
    """

    logdensity_fn: Callable[[PyTree], jax.Array]
    initial_positions: PyTree
    postprocess: Callable[[PyTree], dict]
    var_shapes: dict
    observed_data: dict
    dims: dict
    name: str


class ChainStarts(NamedTuple):
    """One start per chain for a log density: `positions`' leaves carry a leading chain axis.

    What parmcmc.infer.MCMC passes as sample()'s initial_position when NumPyro's init_params hold one start per
    chain (NumPyro's rule for num_chains > 1); a plain initial_position is one start shared by every chain.
    """

    positions: PyTree


def num_chains_of(positions: PyTree, caller: str) -> int:
    """The common leading-axis length of the leaves of `positions` (the number of chains)."""
    leaves = jax.tree_util.tree_leaves(positions)
    if not leaves:
        raise ValueError(f"{caller}: the initial positions are an empty pytree; give at least one array.")
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) > 0 else None for leaf in leaves}
    if None in sizes or len(sizes) != 1:
        shapes = [jnp.shape(leaf) for leaf in leaves]
        raise ValueError(
            f"{caller}: every leaf of the initial positions needs the same leading (chain) axis; "
            f"got leaf shapes {shapes}. Stack one position per chain along axis 0."
        )
    (size,) = sizes
    assert size is not None  # checked above
    return size


def check_initial_positions(logdensity_fn: Callable, positions: PyTree, caller: str, model_name: str) -> None:
    """Raise a ValueError naming the chains whose log density or gradient is not finite.

    `positions` carries a leading chain axis. The log density must return a scalar for one position.
    """
    for leaf in jax.tree_util.tree_leaves(positions):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(
                f"{caller}: initial positions of model {model_name!r} must be floating point (the samplers "
                f"differentiate the log density); got a leaf of dtype {jnp.result_type(leaf)}. "
                "Convert it with jnp.asarray(x, dtype=float)."
            )
    one = jax.tree_util.tree_map(  # chain 0's shapes: the check traces, it runs nothing
        lambda leaf: jax.ShapeDtypeStruct(jnp.shape(leaf)[1:], jnp.result_type(leaf)) if jnp.ndim(leaf) else leaf[0],
        positions,
    )
    try:
        out = jax.eval_shape(logdensity_fn, one)
    except Exception as err:
        hint = (  # a NumPyro model given with initial_position= fails inside NumPyro, often with no message
            " If the model is a NumPyro model (not a log density of the position), leave initial_position out and "
            "choose its starts with init_strategy=numpyro.infer.init_to_value(values={...})."
            if caller == "from_logdensity"
            else ""
        )
        raise ValueError(
            f"{caller}: the log density of model {model_name!r} raised {type(err).__name__} on the initial "
            f"position: {err or '(no message)'}.{hint}"
        ) from err
    if getattr(out, "shape", None) != ():
        raise ValueError(
            f"{caller}: the log density of model {model_name!r} must return a scalar for one position; "
            f"it returned shape {getattr(out, 'shape', type(out))}. Sum the terms (jnp.sum) before returning."
        )
    dtype = getattr(out, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{caller}: the log density of model {model_name!r} must return a real floating-point scalar; it "
            f"returned dtype {dtype}. "
            + (
                "Return the real log density (a complex value has no order for the accept test), e.g. jnp.real(...) "
                "if the imaginary part is zero by construction."
                if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating)
                else "An integer or boolean result has no gradient: compute it in floating point, e.g. "
                "jnp.asarray(value, dtype=float), and check that it is a log density, not a count or a flag."
            )
        )
    try:
        value, grad = program_jit(jax.vmap(jax.value_and_grad(logdensity_fn)))(positions)
    except Exception as err:
        if "vmap" in str(err):
            raise ValueError(
                f"{caller}: the log density of model {model_name!r} cannot be vmapped ({type(err).__name__}: "
                f"{str(err).splitlines()[0]}). The chains, and a parallel solve's steps, are evaluated under "
                "jax.vmap: pass vmap_method='sequential' (or 'expand_dims' / 'broadcast_all' if the callback "
                "handles a leading batch axis) to jax.pure_callback."
            ) from err
        raise ValueError(
            f"{caller}: the gradient of the log density of model {model_name!r} cannot be computed "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). MALA and HMC need "
            "jax.grad of the log density: a jax.pure_callback (or other host call) needs a JVP rule "
            "(wrap it in jax.custom_jvp with the gradient), or write the density in JAX."
        ) from err
    bad_value = ~np.isfinite(np.asarray(value))
    grad_flat = jax.vmap(lambda g: ravel_pytree(g)[0])(grad)
    bad_grad = ~np.all(np.isfinite(np.asarray(grad_flat)), axis=-1)
    if bad_value.any() or bad_grad.any():
        chains = np.flatnonzero(bad_value | bad_grad).tolist()
        what = " and ".join(w for w, bad in (("log density", bad_value.any()), ("gradient", bad_grad.any())) if bad)
        raise ValueError(
            f"{caller}: the {what} of model {model_name!r} is not finite at the initial position of "
            f"chain(s) {chains} (log density there: {np.asarray(value)[chains].tolist()}). MALA and HMC need "
            "both finite at the start: choose starts inside the support of the density, or check the model "
            "for log(0), division by zero or overflow there."
        )


def _in_dtype_of(logdensity_fn: Callable, positions: PyTree) -> Callable:
    """The log density returning the positions' floating dtype (float32 weights under x64, or the reverse).

    The samplers carry the log density beside the position in one loop state, whose types must not change.
    """
    one = jax.tree_util.tree_map(lambda a: a[0], positions)
    dtype = ravel_pytree(one)[0].dtype
    if jax.eval_shape(logdensity_fn, one).dtype == dtype:
        return logdensity_fn
    return functools.wraps(logdensity_fn)(lambda x: jnp.asarray(logdensity_fn(x)).astype(dtype))


def _variable_name(path) -> str:
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        else:
            parts.append(str(key))
    name = ".".join(parts)
    return "x" if not name else (f"x_{name}" if name[0].isdigit() else name)


def from_logdensity(
    logdensity_fn: Callable,
    *,
    initial_position: PyTree = None,
    initial_positions: PyTree = None,
    num_chains: int = 1,
    name: str | None = None,
) -> Target:
    """Wrap a plain log-density function as a `Target` (no constraints, no observed data).

    Give exactly one of
      * `initial_position`: one position pytree, used as the start of all `num_chains` chains, or
      * `initial_positions`: a pytree whose leaves carry a leading chain axis (one start per chain).

    Variables are named after the position: the keys of a dict, `x` for a single array, and
    paths such as `x_0` or `a.b` for other pytrees.
    """
    caller = "from_logdensity"
    if not callable(logdensity_fn):
        raise TypeError(f"{caller}: logdensity_fn must be callable (position -> scalar); got {type(logdensity_fn)}.")
    name = str(name or getattr(logdensity_fn, "__name__", None) or repr(logdensity_fn))
    if (initial_position is None) == (initial_positions is None):
        raise ValueError(
            f"{caller}: give exactly one of initial_position= (one start shared by num_chains chains) or "
            "initial_positions= (leaves with a leading chain axis)."
        )
    if initial_position is not None:
        num_chains = check_int("num_chains", num_chains, call=caller)
        positions = jax.tree_util.tree_map(
            lambda leaf: jnp.broadcast_to(jnp.asarray(leaf), (num_chains, *jnp.shape(leaf))), initial_position
        )
    else:
        positions = jax.tree_util.tree_map(jnp.asarray, initial_positions)
        num_chains_of(positions, caller)
    check_initial_positions(logdensity_fn, positions, caller, name)
    logdensity_fn = _in_dtype_of(logdensity_fn, positions)

    paths_leaves, _ = jax.tree_util.tree_flatten_with_path(positions)
    names = [_variable_name(path) for path, _ in paths_leaves]
    if len(set(names)) != len(names):
        raise ValueError(f"{caller}: the position's leaves give clashing variable names {names}; use a dict position.")
    var_shapes = {n: tuple(leaf.shape[1:]) for n, (_, leaf) in zip(names, paths_leaves, strict=True)}

    def postprocess(draws: PyTree) -> dict:
        return dict(zip(names, jax.tree_util.tree_leaves(draws), strict=True))

    return Target(logdensity_fn, positions, postprocess, var_shapes, {}, {}, name)
