"""The package's import graph: data flow one way, no circle, the engine and the samplers apart.

Read from the source with `ast` (every import, those inside functions too), so the test needs no import of
the package and fails on the line that breaks a rule.
"""

import ast
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "parmcmc"
MAX_LINES = 400

# The layers that sit below the user-facing modules, and what each may import of parmcmc besides itself.
GROUND = {"parmcmc.arguments", "parmcmc.jitcache", "parmcmc.jitlift", "parmcmc.keys", "parmcmc.progress"}
LOWER = {
    "parmcmc.engine": GROUND,
    "parmcmc.samplers": GROUND,
    "parmcmc.models": GROUND,
}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


@functools.cache
def _imports(path: pathlib.Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import of parmcmc in the file; `from pkg import sub` names pkg.sub."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("parmcmc")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("parmcmc") and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.append((sub if sub in MODULES else node.module, node.lineno))
    return out


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("layer", sorted(LOWER))
def test_lower_layers_import_only_themselves_and_the_ground_floor(layer):
    bad = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name in MODULES
        if _in(name, layer)
        for target, line in _imports(MODULES[name])
        if not _in(target, layer) and target not in LOWER[layer] and target != "parmcmc"
    ]
    assert not bad, "data must flow one way (docs/design.md):\n" + "\n".join(bad)


def test_the_ground_floor_imports_nothing_above_it():
    bad = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name in GROUND
        for target, line in _imports(MODULES[name])
        if target not in GROUND
    ]
    assert not bad, "\n".join(bad)


def test_the_library_never_imports_its_benchmarks():
    bad = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name in MODULES
        if not _in(name, "parmcmc.bench")
        for target, line in _imports(MODULES[name])
        if _in(target, "parmcmc.bench")
    ]
    assert not bad, "\n".join(bad)


def test_no_circle_between_modules():
    """Package faces (__init__.py that only hand names on) are left out: an import through one is an import
    of the package, which stands above its own modules."""
    graph = {
        name: {t for t, _ in _imports(path) if t in MODULES and MODULES[t].name != "__init__.py" and t != name}
        for name, path in MODULES.items()
        if path.name != "__init__.py"
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules (keep their import paths): {long}"


def test_a_negative_control_finds_a_circle_and_a_wrong_arrow(tmp_path):
    """The checks above can fail: the same reading of a file that imports upward reports it."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from parmcmc.samplers import MALA\n    from parmcmc.engine import solve\n")
    assert ("parmcmc.samplers", 2) in _imports(bad) and ("parmcmc.engine.solve", 3) in _imports(bad)
