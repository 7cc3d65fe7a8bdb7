"""Reading XLA's optimised HLO text: the kernels of a compiled while loop's body, for tests of program structure."""

import math
import re
from typing import NamedTuple

# Instructions of a computation that launch no kernel of their own.
_NO_KERNEL = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast", "after-all", "opt-barrier"}


class Kernel(NamedTuple):
    opcode: str  # fusion, copy, call, custom-call, ...
    elements: int  # of its (first) output
    reduces: list[int]  # for each reduce or reduce-window inside it (a fusion's body), the elements it reads


def _computations(text: str) -> dict[str, list[str]]:
    comps, name, body = {}, None, []
    for line in text.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head and not line.startswith(" "):
            name, body = head.group(1), []
        elif line.startswith("}"):
            if name is not None:
                comps[name] = body
            name = None
        elif name is not None and " = " in line:
            body.append(line.strip())
    return comps


def _split(instr: str) -> tuple[str, str]:
    """(the output type, the rest from the opcode on) of one instruction."""
    rhs = instr.split(" = ", 1)[1]
    depth = 0
    for i, ch in enumerate(rhs):
        depth += ch == "("
        depth -= ch == ")"
        if ch == " " and depth == 0:
            return rhs[:i], rhs[i + 1 :]
    return rhs, ""


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, (pattern, text[:200])
    return found.group(1)


def _elements(shape: str) -> int:
    dims = re.search(r"\[([\d,]*)\]", shape)
    return math.prod(int(d) for d in dims.group(1).split(",") if d) if dims else 1


def _reduces(comps, name) -> list[int]:
    out = []
    for instr in comps.get(name, []):
        _, rest = _split(instr)
        if rest.startswith(("reduce(", "reduce-window(")):
            operand = _find(r"^reduce(?:-window)?\(%([\w.\-]+)", rest)
            shapes = [_split(i)[0] for i in comps[name] if i.startswith(f"%{operand} = ")]
            out.append(_elements(shapes[0]) if shapes else 0)
    return out


def while_body_kernels(text: str) -> list[list[Kernel]]:
    """The kernels of every while loop's body in a compiled program's HLO text (`compiled.as_text()`)."""
    comps = _computations(text)
    bodies = [_find(r"body=%?([\w.\-]+)", i) for c in comps.values() for i in c if " while(" in i]
    loops = []
    for body in bodies:
        kernels = []
        for instr in comps[body]:
            shape, rest = _split(instr)
            opcode = _find(r"^([\w\-]+)", rest)
            if opcode in _NO_KERNEL:
                continue
            called = re.search(r"calls=%?([\w.\-]+)", rest)
            kernels.append(Kernel(opcode, _elements(shape), _reduces(comps, called.group(1)) if called else []))
        loops.append(kernels)
    return loops
