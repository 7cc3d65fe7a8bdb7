"""MkDocs hook: fail the build when a public name of parmcmc has no entry in the API reference.

The public names are those of ``parmcmc.__all__`` (documented in docs/api/parmcmc.md) and of
``parmcmc.engine.__all__`` (docs/api/engine.md). After the build, every name must have an anchor in
its page; one that has none (a new export without a docstring, or a function shadowed by a submodule
of the same name that nobody listed explicitly) stops the build with the names to add.
"""

import importlib
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

PAGES = {"parmcmc": "api/parmcmc/index.html", "parmcmc.engine": "api/engine/index.html"}


def on_post_build(config, **kwargs):
    missing = []
    for module_name, page in PAGES.items():
        html = (Path(config["site_dir"]) / page).read_text(encoding="utf-8")
        anchors = set(re.findall(r'id="([A-Za-z0-9_.]+)"', html))
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            candidates = {f"{module_name}.{name}"}
            where = getattr(obj, "__module__", None)
            if where:
                candidates.add(f"{where}.{name}")
            if not candidates & anchors:
                missing.append(f"{module_name}.{name} ({page})")
    if missing:
        raise PluginError(
            "API reference: no entry for " + ", ".join(missing) + ". Give the object a docstring, or add "
            "a `::: module.name` block to its page (needed when a submodule has the same name)."
        )
