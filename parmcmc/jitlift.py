"""Closed-over arrays that a nested ``jax.jit`` keeps inside its own jaxpr, lifted to the program's top level.

``jax.make_jaxpr`` turns the arrays a function closes over into constants of the top-level program, and
``scan``, ``while_loop`` and ``cond`` pass the arrays their bodies close over as operands, so those reach the
top level too. A ``jax.jit`` called inside keeps its closed-over arrays as constants of its own jaxpr (BlackJAX's
window adaptation does this with the log density: its data end up inside a jit inside a scan). The program
cache (parmcmc/jitcache.py) must key such nested constants by value, so new data of the same shapes compiled
again.

``lift`` re-traces the program with every jit that holds constants (at any depth) inlined, and the ``scan``,
``while`` and ``cond`` around it rebuilt with ``jax.lax``: the constants then travel as operands up to the top
level, where the cache passes them as arguments. Inlining a jit changes nothing that is computed (XLA inlines
nested computations anyway). Anything else that holds such a jit (a custom derivative rule, a remat, an
unknown primitive) makes ``lift`` give up and return None: the cache then keys those constants by value, as
before, which is never stale.
"""

from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp

__all__ = ["has_nested_consts", "lift"]

_REBUILT = ("jit", "pjit", "scan", "while", "cond")


class _CannotLift(Exception):
    pass


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(sub, jcore.Jaxpr):
                yield sub


def _holds_consts(jaxpr, top: bool = False) -> bool:
    """Whether a jaxpr nested in ``jaxpr`` (or, unless top, ``jaxpr`` itself) has constants attached."""
    if not top and getattr(jaxpr, "consts", ()):
        return True
    return any(_holds_consts(sub) for eqn in jaxpr.eqns for sub in _subjaxprs(eqn))


def has_nested_consts(closed) -> bool:
    """Whether any jaxpr nested in the program ``closed`` (a traced ClosedJaxpr) holds constants of its own."""
    return _holds_consts(closed.jaxpr, top=True)


def lift(closed, flat_args) -> tuple[Any, list] | None:
    """The program re-traced with its nested constants as top-level constants, or None (module docstring).

    Returns (new ClosedJaxpr, its arguments): the new program takes ``[*closed.consts, *flat_args]`` as its
    arguments and holds every lifted array as a top-level constant.
    """
    consts = list(closed.consts)
    try:
        new = jax.make_jaxpr(lambda *a: _evaluate(closed.jaxpr, a[: len(consts)], a[len(consts) :]))(
            *consts, *flat_args
        )
    except _CannotLift:
        return None
    if has_nested_consts(new) or [v.aval for v in new.jaxpr.outvars] != [v.aval for v in closed.jaxpr.outvars]:
        return None
    return new, [*consts, *flat_args]


def _evaluate(jaxpr, consts, args) -> list:
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(jaxpr.invars, args, strict=True):
        env[v] = x
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        if any(_holds_consts(sub) for sub in _subjaxprs(eqn)):
            outs = _rebuild(eqn, ins)
        else:
            params = eqn.primitive.get_bind_params(eqn.params)
            subfuns, params = params if isinstance(params, tuple) else ((), params)  # JAX < 0.12: (subfuns, params)
            outs = eqn.primitive.bind(*subfuns, *ins, **params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        for v, x in zip(eqn.outvars, outs, strict=True):
            if not isinstance(v, jcore.DropVar):
                env[v] = x
    return [read(v) for v in jaxpr.outvars]


def _run(jaxpr, args) -> list:
    """A nested jaxpr on ``args``, its own constants closed over (so that the enclosing trace lifts them)."""
    return _evaluate(jaxpr, list(getattr(jaxpr, "consts", ())), list(args))


def _batched_while(p, cc, bc, init) -> list:
    """A while whose predicate is batched (vmap of a while_loop), rebuilt as XLA lowers the primitive.

    The loop runs while any lane's predicate holds, and a lane whose predicate is false keeps its carry.
    """

    def pred(c):
        return _run(p["cond_jaxpr"], [*cc, *c])[0]

    def body(c):
        keep = pred(c)
        new = _run(p["body_jaxpr"], [*bc, *c])
        return tuple(
            jax.lax.select(jnp.broadcast_to(keep.reshape(keep.shape + (1,) * (o.ndim - keep.ndim)), o.shape), n, o)
            for n, o in zip(new, c, strict=True)
        )

    return list(jax.lax.while_loop(lambda c: jnp.any(pred(c)), body, tuple(init)))


def _rebuild(eqn, ins) -> list:
    name, p = eqn.primitive.name, eqn.params
    if name not in _REBUILT:
        raise _CannotLift(name)
    if name in ("jit", "pjit"):
        return _run(p["jaxpr"], ins)
    if name == "while":
        nc, nb = p["cond_nconsts"], p["body_nconsts"]
        cc, bc, init = ins[:nc], ins[nc : nc + nb], ins[nc + nb :]
        if not p["cond_jaxpr"].out_avals[0].shape:
            cond = lambda c: _run(p["cond_jaxpr"], [*cc, *c])[0]
            return list(jax.lax.while_loop(cond, lambda c: tuple(_run(p["body_jaxpr"], [*bc, *c])), tuple(init)))
        return _batched_while(p, cc, bc, init)
    if name == "cond":
        index, ops = ins[0], ins[1:]
        branches = [lambda *o, b=b: tuple(_run(b, o)) for b in p["branches"]]
        return list(jax.lax.switch(index, branches, *ops))
    # scan
    if "ft_in" in p:
        consts, init, xs = (list(group) for group in p["ft_in"].update(ins).unpack())
    elif "num_consts" in p:
        nc, nk = p["num_consts"], p["num_carry"]
        consts, init, xs = ins[:nc], ins[nc : nc + nk], ins[nc + nk :]
    else:
        raise _CannotLift("scan")
    nk = len(init)

    def body(carry, x):
        outs = _run(p["jaxpr"], [*consts, *carry, *x])
        return tuple(outs[:nk]), tuple(outs[nk:])

    unroll = p.get("unroll", 1)
    carry, ys = jax.lax.scan(body, tuple(init), tuple(xs), length=p["length"], reverse=p["reverse"], unroll=unroll)
    return [*carry, *ys]
