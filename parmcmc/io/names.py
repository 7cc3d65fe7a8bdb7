"""The names a DataTree can hold: model sites and dimensions, checked before the run and mapped where needed.

- ``chain`` and ``draw`` are ArviZ's sample dimensions: a site or a dimension of that name would be merged with
  them (the variable vanished, or its axes were read as chains), so it is refused before the warmup.
- ``/`` separates groups in an ``xarray.DataTree``, which refuses a variable named ``a/mu``; NumPyro's
  ``handlers.scope`` names sites that way by default. Such a site is stored as ``a.mu`` (``datatree_name``),
  unless that name is taken by another site (refused before the warmup).
- dims and coords fit the model's shapes: ``dims`` names variables of the model with one name per axis, and
  ``coords`` gives one label per entry of every dimension it labels, whether ``dims`` or a plate named it.
"""

import numpy as np

__all__ = ["SAMPLE_DIMS", "check_dims_and_coords", "datatree_name"]

SAMPLE_DIMS = ("chain", "draw")


def datatree_name(name: str) -> str:
    """The name a model's site has in the DataTree: ``/`` (a DataTree's group separator) becomes ``.``."""
    return name.replace("/", ".")


def check_dims_and_coords(dims, coords, var_shapes: dict, observed: dict, model_dims=None, caller="sample") -> None:
    """Site names, dims and coords that the DataTree can hold, checked against the model before the warmup.

    var_shapes: {site: shape of one draw}; observed: {site: data}; model_dims: {site: [dim, ...]} the model's
    plates named.
    """
    shapes = {**{k: tuple(np.shape(v)) for k, v in (observed or {}).items()}, **dict(var_shapes)}
    for name, names in (model_dims or {}).items():
        if reserved := _reserved(names):
            raise ValueError(
                f"{caller}: the model names an axis of {name!r} {reserved!r} (a numpyro.plate of that name), one "
                f"of ArviZ's sample dimensions {SAMPLE_DIMS}: its entries would be read as chains or draws. Rename "
                f"the plate (e.g. {reserved + 's'!r})."
            )
    for name in shapes:
        if name in SAMPLE_DIMS:
            raise ValueError(
                f"{caller}: the model has a site named {name!r}, which is one of ArviZ's sample dimensions "
                f"{SAMPLE_DIMS}: its draws would be merged with that axis. Rename the site (e.g. {name + '_'!r})."
            )
    stored = {}
    for name in shapes:
        other = stored.setdefault(datatree_name(name), name)
        if other != name:
            raise ValueError(
                f"{caller}: the sites {other!r} and {name!r} would both be stored as {datatree_name(name)!r} (a "
                "DataTree cannot hold '/' in a name, so it becomes '.'). Rename one of them, or give "
                "numpyro.handlers.scope another divider."
            )
    # dims and coords may name a site or a dimension as the model does (a/mu) or as the DataTree stores it (a.mu).
    shapes.update({datatree_name(k): v for k, v in shapes.items()})
    sizes = {}
    for name, names in (model_dims or {}).items():
        if name in shapes and len(names) == len(shapes[name]):
            sizes.update({datatree_name(d): shapes[name][i] for i, d in enumerate(names)})
    for name, names in (dims or {}).items():
        if name not in shapes:
            raise ValueError(
                f"{caller}: dims names {name!r}, which is not a variable of the model; its variables are "
                f"{sorted(k for k in shapes if k == datatree_name(k))}."
            )
        if isinstance(names, str) or len(names) != len(shapes[name]):
            example = [f"{name}_dim_{i}" for i in range(len(shapes[name]))]
            raise ValueError(
                f"{caller}: dims[{name!r}] = {names!r} must list {len(shapes[name])} dimension name(s), one per axis "
                f"of one draw of {name!r} (shape {shapes[name]}), e.g. {example}."
            )
        if reserved := _reserved(names):
            raise ValueError(
                f"{caller}: dims[{name!r}] = {list(names)!r} names {reserved!r}, one of ArviZ's sample dimensions "
                f"{SAMPLE_DIMS}; the draws' own axes carry those names. Name the axis otherwise (e.g. "
                f"{reserved + '_index'!r})."
            )
        sizes.update({datatree_name(d): shapes[name][i] for i, d in enumerate(names)})
    for dim, labels in (coords or {}).items():
        size = sizes.get(datatree_name(dim))
        if size is not None and np.size(labels) != size:
            raise ValueError(
                f"{caller}: coords[{dim!r}] has {np.size(labels)} label(s), but dimension {dim!r} has size "
                f"{size}; give one label per entry."
            )


def _reserved(names) -> str | None:
    """The first of `names` that is one of ArviZ's sample dimensions, or None."""
    return next((d for d in names if d in SAMPLE_DIMS), None)
