"""The package's shape: imports point down the data path (spec -> model -> sheets -> writer; verify, exercise and
grade on top), never up, and never in a circle. Lazy imports inside functions count too: they are arrows all the
same. Imports under ``if TYPE_CHECKING:`` are annotations only and do not count."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xlconv"

# Lower numbers are lower layers; a module may import its own layer or a lower one.
LAYERS = {
    0: ["xlconv._version", "xlconv.errors", "xlconv.cells", "xlconv.atomic", "xlconv.formulas", "xlconv.xlsxread",
        "xlconv.guards", "xlconv.progress",
        "xlconv.parallel"],
    1: ["xlconv.reference", "xlconv.torch_reference", "xlconv.record", "xlconv.builtins"],
    2: ["xlconv.model"],
    3: ["xlconv.spec"],
    4: ["xlconv.torchnet", "xlconv.book", "xlconv.rowstream", "xlconv.engine", "xlconv.hyperformula"],
    5: ["xlconv.sheets"],  # and every module below it
    6: ["xlconv.build", "xlconv.verify", "xlconv.safety", "xlconv.render"],
    7: ["xlconv.exercise", "xlconv.grade", "xlconv.flags", "xlconv.feedback", "xlconv.lms", "xlconv.loop"],
    8: ["xlconv.cli", "xlconv", "xlconv.__main__"],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> int:
    for n, names in LAYERS.items():
        if name in names or any(name.startswith(m + ".") for m in names if m != "xlconv"):
            return n
    raise AssertionError(f"{name} is in no layer of tests/test_structure.py: place it")


def imports(path: Path, known: set[str]) -> set[str]:
    """The xlconv modules a file imports, anywhere but under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("xlconv"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xlconv"):
            for a in node.names:  # `from xlconv import spec` imports the module xlconv.spec
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {m for m in imports(path, known) if m != name} for name, path in mods.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_point_down(name):
    up = sorted(m for m in graph()[name] if layer(m) > layer(name))
    assert not up, f"{name} (layer {layer(name)}) imports higher layers: {[(m, layer(m)) for m in up]}"


def test_no_import_circles():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)


def test_the_record_sheet_is_written_by_one_module():
    # The record's layout (its sheet name, rows and canary) is record.py's alone.
    for name, path in modules().items():
        if name == "xlconv.record":
            continue
        text = path.read_text(encoding="utf-8")
        assert '"_xlconv"' not in text and '"=21*2"' not in text, f"{name} restates the record sheet's layout"


def test_cheap_imports():
    # `import xlconv`, the record and the sandboxed reader's modules load neither XlsxWriter, NumPy nor torch.
    code = ("import sys, xlconv, xlconv.record, xlconv.safety, xlconv.cli; "
            "print(sorted(m for m in ('xlsxwriter', 'numpy', 'torch', 'openpyxl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_public_api_mirrors_the_cli_and_survives_submodule_imports():
    # build and verify are both submodules and the functions `xlconv.build(...)`, `xlconv.verify(...)` mean.
    code = ("import xlconv.build, xlconv.verify, xlconv; "
            "print([getattr(xlconv, n).__module__ for n in ('build', 'verify', 'load_spec')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['xlconv.build', 'xlconv.verify', 'xlconv.spec']"
