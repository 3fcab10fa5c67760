"""The HyperFormula engine: a workbook's formulas evaluated by HyperFormula (Excel's semantics) under node.

openpyxl reads each sheet's typed values and formulas (never the cached results) into a JSON file; node runs
xlconv/js/recalc.cjs, which evaluates them with HyperFormula and writes every formula cell's value to another JSON
file; from the two this module writes a recalculated .xlsx (the formulas with HyperFormula's values cached), which
verify and the canary check read exactly as they read LibreOffice's output. xlconv/engine.py drives it.

HyperFormula (GPL-3.0) is an npm package that xlconv never ships: npm installs it from the pinned
engines/hyperformula/package-lock.json into engines/hyperformula/node_modules, or into any folder named by
XLCONV_NODE_MODULES.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

NODE_MODULES_ENV = "XLCONV_NODE_MODULES"
# Kept equal to engines/hyperformula/package.json by tests/test_hyperformula.py.
PINS = {"hyperformula": "3.5.0"}
SCRIPT = Path(__file__).resolve().parent / "js" / "recalc.cjs"
# A checkout's pinned install folder; absent from an installed wheel, where XLCONV_NODE_MODULES says where.
LOCK_DIR = Path(__file__).resolve().parent.parent / "engines" / "hyperformula"
# V8's heap cap for one run, finite for a hostile workbook: the 2-channel AlexNet peaks near 1.1 GB of RSS
# (the 64-channel one, about 3.5 times the formulas, was not measured).
HEAP_MB = 8192


def node_modules() -> Path:
    """The folder holding the hyperformula package: $XLCONV_NODE_MODULES or the checkout's own."""
    chosen = os.environ.get(NODE_MODULES_ENV)
    return Path(chosen) if chosen else LOCK_DIR / "node_modules"


def find() -> str | None:
    """The node binary when node and the pinned hyperformula package are installed, else None."""
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


def recalculate(node: str, pairs: list[tuple[Path, Path]], work: Path, timeout: float,
                run: Callable[[str, list[str], Path, float], str], *, use_cached: bool = False) -> str:
    """Write each output .xlsx from its input with every formula's value computed by HyperFormula; return node's log.

    ``run`` is engine.py's process runner (own process group, timeout). ``use_cached`` (tests only) hands
    HyperFormula each formula's cached result instead of the formula, the shortcut the canary must catch.
    """
    jobs = []
    for i, (src, _) in enumerate(pairs):
        sent, got = work / f"hf-{i:03d}-in.json", work / f"hf-{i:03d}-out.json"
        _export(src, sent, use_cached)
        jobs.append((sent, got))
    command = [node, f"--max-old-space-size={HEAP_MB}",
               # A larger young generation: building the dependency graph allocates millions of short-lived
               # objects, and with V8's default the scavenger takes a third of the run.
               "--max-semi-space-size=64",
               str(SCRIPT), str(node_modules()), *(str(p) for job in jobs for p in job)]
    log = run("hyperformula", command, work, timeout)
    for (sent, got), (_, dest) in zip(jobs, pairs):
        if got.is_file():
            _write_xlsx(sent, got, dest)
    return log


_PREFIXES = re.compile(r"_xlfn\.|_xlws\.", re.IGNORECASE)


def _content(cell: Any) -> Any:
    """A cell as HyperFormula's raw content: numbers and booleans as such, text quoted so that it stays text."""
    value = cell.value
    if cell.data_type == "f" or hasattr(value, "text"):  # an array formula is an object holding its text
        text = value if isinstance(value, str) else value.text
        return "=" + _PREFIXES.sub("", text.lstrip("="))  # Excel's prefixes of newer functions (_xlfn.STDEV.S)
    if cell.data_type == "e":
        return str(value)  # "#N/A" is HyperFormula's error literal
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta)):
        from openpyxl.utils.datetime import to_excel

        return to_excel(value)
    return "'" + str(value)


def _export(src: Path, dest: Path, use_cached: bool) -> None:
    from xlconv.xlsxread import open_workbook

    wb = open_workbook(src, data_only=use_cached)
    try:
        sheets, names = [], []
        for ws in wb.worksheets:
            cells = [[cell.row - 1, cell.column - 1, _content(cell)] for row in ws.iter_rows() for cell in row
                     if cell.value is not None and cell.value != ""]
            sheets.append({"name": ws.title, "cells": cells})
            names += [{"name": n, "expression": "=" + d.value, "sheet": ws.title}
                      for n, d in ws.defined_names.items() if d.value]
        names += [{"name": n, "expression": "=" + d.value, "sheet": None}
                  for n, d in wb.defined_names.items() if d.value and not n.startswith("_xlnm.")]
    finally:
        wb.close()
    dest.write_text(json.dumps({"sheets": sheets, "names": names}), encoding="utf-8")


def _write_xlsx(sent: Path, got: Path, dest: Path) -> None:
    """The recalculated workbook: every typed value as read, every formula with HyperFormula's value cached."""
    import xlsxwriter

    from xlconv.rowstream import RowStream

    book = json.loads(sent.read_text(encoding="utf-8"))
    computed = {s["name"]: {(r, c): v for r, c, v in s["values"]} for s in json.loads(got.read_text())["sheets"]}
    wb = xlsxwriter.Workbook(str(dest), {"constant_memory": True})
    for sheet in book["sheets"]:
        # XlsxWriter's write_formula runs dozens of regular expressions a cell; rows go in as ready XML instead.
        stream = RowStream(wb.add_worksheet(sheet["name"]))
        values = computed.get(sheet["name"], {})
        cells = sorted(sheet["cells"], key=lambda cell: (cell[0], cell[1]))
        start = 0
        while start < len(cells):
            r = cells[start][0]
            end = start
            while end < len(cells) and cells[end][0] == r:
                end += 1
            row = cells[start:end]
            stream.row(r, (_cell_xml(stream.col(c) + str(r + 1), content, values.get((r, c)))
                           for _, c, content in row), row[0][1], row[-1][1])
            start = end
    wb.close()


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def _cell_xml(ref: str, content: Any, value: Any) -> str:
    """One <c> element: a typed value, or a formula with its computed value cached (typed as Excel types it)."""
    if isinstance(content, str) and content.startswith("="):
        formula = f"<f>{content[1:].translate(_ESCAPES)}</f>"
        if isinstance(value, dict):
            return f'<c r="{ref}" t="e">{formula}<v>{str(value["error"]).translate(_ESCAPES)}</v></c>'
        if isinstance(value, bool):
            return f'<c r="{ref}" t="b">{formula}<v>{int(value)}</v></c>'
        if isinstance(value, str):
            return f'<c r="{ref}" t="str">{formula}<v>{value.translate(_ESCAPES)}</v></c>'
        return f'<c r="{ref}">{formula}<v>{_number(0 if value is None else value)}</v></c>'
    if isinstance(content, bool):
        return f'<c r="{ref}" t="b"><v>{int(content)}</v></c>'
    if isinstance(content, str):
        if content.startswith("'"):
            return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{content[1:].translate(_ESCAPES)}</t></is></c>'
        return f'<c r="{ref}" t="e"><v>{content.translate(_ESCAPES)}</v></c>'
    return f'<c r="{ref}"><v>{_number(content)}</v></c>'


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")  # neither openpyxl nor HyperFormula gives one
    return repr(value) if isinstance(value, float) else str(int(value))
