"""The HyperFormula engine's parts: where node and its npm packages are, the one-line install hint, the runner command.

HyperFormula (GPL-3.0) and exceljs are npm packages that xlconv never ships: they are installed with npm from the
pinned engines/hyperformula/package-lock.json into engines/hyperformula/node_modules (or any folder named by
XLCONV_NODE_MODULES). xlconv/engine.py runs the command built here the way it runs LibreOffice.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

NODE_MODULES_ENV = "XLCONV_NODE_MODULES"
# Kept equal to engines/hyperformula/package.json by tests/test_hyperformula.py.
PINS = {"hyperformula": "3.5.0", "exceljs": "4.4.0"}
SCRIPT = Path(__file__).resolve().parent / "js" / "recalc.cjs"
# A checkout's pinned install folder; absent from an installed wheel, where XLCONV_NODE_MODULES says where.
LOCK_DIR = Path(__file__).resolve().parent.parent / "engines" / "hyperformula"
# V8's heap cap for one run: ample for the 64-channel AlexNet workbook, finite for a hostile one.
HEAP_MB = 8192


def node_modules() -> Path:
    """The folder holding the hyperformula and exceljs packages: $XLCONV_NODE_MODULES or the checkout's own."""
    chosen = os.environ.get(NODE_MODULES_ENV)
    return Path(chosen) if chosen else LOCK_DIR / "node_modules"


def find() -> str | None:
    """The node binary when node and both npm packages (at the pinned versions) are installed, else None."""
    node = shutil.which("node")
    if node is None or not SCRIPT.is_file():
        return None
    folder = node_modules()
    for package, version in PINS.items():
        try:
            meta = json.loads((folder / package / "package.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("version") != version:
            return None
    return node


def install_command() -> str:
    """The one npm command that installs the pinned packages where find() looks."""
    folder = node_modules()
    if folder == LOCK_DIR / "node_modules" and (LOCK_DIR / "package-lock.json").is_file():
        return f"npm ci --prefix {LOCK_DIR} --ignore-scripts --no-audit --no-fund"
    pins = " ".join(f"{name}@{version}" for name, version in PINS.items())
    return f"npm install --prefix {folder.parent} --ignore-scripts --no-audit --no-fund {pins}"


def install_hint() -> str:
    """One line saying what is missing and the command that installs it."""
    if shutil.which("node") is None:
        return ("HyperFormula needs node, not found; install it with: apt-get install -y nodejs npm, "
                f"then: {install_command()}")
    return (f"HyperFormula ({', '.join(f'{n} {v}' for n, v in PINS.items())} in {node_modules()}) not found; "
            f"install it with: {install_command()}")


def command(node: str, pairs: list[tuple[Path, Path]], *, use_cached: bool = False) -> list[str]:
    """The node command that recalculates each (input, output) pair; use_cached (tests only) skips recalculation."""
    args = [str(p) for pair in pairs for p in pair]
    # A larger young generation: building the dependency graph allocates millions of short-lived objects, and
    # V8's default scavenges so often that garbage collection takes a third of the run.
    return [node, f"--max-old-space-size={HEAP_MB}", "--max-semi-space-size=64", str(SCRIPT),
            *(["--cached"] if use_cached else []), str(node_modules()), *args]


def reports(output: str) -> list[dict]:
    """The runner's one JSON line per workbook (formulas, error cells, names HyperFormula refused, seconds)."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found
