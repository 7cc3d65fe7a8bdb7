"""fn on flat vectors, with the arrays it closes over hoisted into arguments of the jitted solve.

As compile-time constants XLA may spend many seconds folding closed-over data into every batched
evaluation; as arguments they cost nothing to compile. The compiled solve is keyed on the traced program,
never on the function object: a changed Python value that fn reads is a new program, new data is not.
"""

import jax
import jax.numpy as jnp

from parmcmc.jitcache import Program

__all__ = ["HoistedFn", "HoistedObserver", "flatten_fn", "flatten_observer"]


def flatten_fn(fn, x0, x0_flat, unravel, inputs):
    """fn on flat vectors, after checking that it maps a state to a state of the same structure.

    fn is traced once: the check reads the shapes of that trace's output, and its program is what the solve
    evaluates (HoistedFn ravels the output leaves).
    """
    if not callable(fn):
        raise TypeError(f"solve: fn must be a function (state, input_t) -> state; got {type(fn).__name__} {fn!r:.60}.")
    if x0_flat.size == 0:
        raise ValueError(f"solve: x0 has no entries (flattened shape {x0_flat.shape}); give a state with at least one.")
    one_input = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype), inputs)
    # Hoist the arrays fn closes over (data, parameters) into arguments of the jitted solve: as
    # compile-time constants XLA may spend many seconds folding them into every batched evaluation.
    # The compiled solve is keyed on the traced program (Python values fn reads are literals in it),
    # never on the function object: a changed Python value is a new program, new data is not.
    closed, out = jax.make_jaxpr(lambda x, u: fn(unravel(x), u), return_shape=True)(x0_flat, one_input)
    expected = jax.eval_shape(lambda x: x, x0)
    if jax.tree_util.tree_structure(out) != jax.tree_util.tree_structure(expected) or any(
        a.shape != b.shape
        for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(expected), strict=True)
    ):
        raise ValueError(f"solve: fn(x0, inputs[0]) must return a state shaped like x0; got {out} for x0 {expected}.")
    return HoistedFn(Program(closed.jaxpr)), closed.consts


class HoistedFn:
    """fn as a function of (consts, x, u), equal to another when their traced programs are equal.

    So that jit reuses a compilation exactly when it computes the same thing; the closed-over arrays travel as
    arguments.
    """

    def __init__(self, program: Program):
        self.program = program

    def __call__(self, consts, x, u):
        """fn(x, u) on flat states (its output leaves raveled in order, in x's dtype), with the closed-over `consts`."""
        leaves = [jnp.ravel(leaf).astype(x.dtype) for leaf in self.program(consts, x, *jax.tree_util.tree_leaves(u))]
        return leaves[0] if len(leaves) == 1 else jnp.concatenate(leaves)

    def __hash__(self):
        return hash(self.program)

    def __eq__(self, other):
        return isinstance(other, HoistedFn) and self.program == other.program


def flatten_observer(observe, x0, x0_flat, unravel, inputs):
    """solve()'s `observe=(g, c0)` on flat states, hoisted like fn: (HoistedObserver, its constants, c0).

    g(x, c, u) -> (x_next, c_next, out) is traced once; x_next must be shaped like x0 and c_next like c0.
    """
    if not (isinstance(observe, tuple) and len(observe) == 2 and callable(observe[0])):
        raise TypeError(
            "solve: observe must be a pair (g, c0) with g(x, c, u) -> (x_next, c_next, out) a function; "
            f"got {observe!r:.80}."
        )
    g, c0 = observe
    one_input = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype), inputs)
    closed, out = jax.make_jaxpr(lambda x, c, u: g(unravel(x), c, u), return_shape=True)(x0_flat, c0, one_input)
    wanted = (jax.eval_shape(lambda x: x, x0), jax.eval_shape(lambda c: c, c0))
    shapes = lambda tree: [(a.shape, a.dtype) for a in jax.tree_util.tree_leaves(tree)]
    if not (isinstance(out, tuple) and len(out) == 3) or any(
        jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b) or shapes(a) != shapes(b)
        for a, b in zip(out[:2], wanted, strict=True)
    ):
        raise ValueError(
            "solve: observe's g(x, c, u) must return (x_next, c_next, out) with x_next shaped like x0 and c_next like "
            f"c0; got {out} for x0, c0 = {wanted}."
        )
    return HoistedObserver(Program(closed.jaxpr), jax.tree_util.tree_structure(out)), closed.consts, c0


class HoistedObserver:
    """observe's g as a function of (consts, x, c, u) on flat states; equal to another when their programs are."""

    def __init__(self, program: Program, out_tree):
        self.program, self.out_tree = program, out_tree

    def __call__(self, consts, x, c, u):
        """(x_next raveled in x's dtype, c_next, out)."""
        leaves = self.program(consts, x, *jax.tree_util.tree_leaves(c), *jax.tree_util.tree_leaves(u))
        y, c_next, out = jax.tree_util.tree_unflatten(self.out_tree, leaves)
        y = [jnp.ravel(leaf).astype(x.dtype) for leaf in jax.tree_util.tree_leaves(y)]
        return (y[0] if len(y) == 1 else jnp.concatenate(y)), c_next, out

    def __hash__(self):
        return hash((self.program, self.out_tree))

    def __eq__(self, other):
        return isinstance(other, HoistedObserver) and (self.program, self.out_tree) == (other.program, other.out_tree)
