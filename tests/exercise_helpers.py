"""Helpers for the exercise and grading tests: filling a student's workbook and saving it as a student would."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
from openpyxl import load_workbook

from xlconv.engine import recalculate
from xlconv.grade import Key

ROSTER = "student_id,name\ns01,Ada Lovelace\ns02,Bob Babbage\ns03,Cy Shannon\ns04,Dee Hopper\ns05,Eve Noether\n"


def write_roster(folder: Path, text: str = ROSTER) -> Path:
    path = folder / "roster.csv"
    path.write_text(text, encoding="utf-8")
    return path


def fill(src: Path, dst: Path, key: Key, student_id: str,
         answer: Callable[[str, int, int, int, float], Any] | None = None,
         inputs: dict[tuple[str, int, int, int], float] | None = None) -> Path:
    """Type answers into a copy of a student's workbook with openpyxl, as a student would in a spreadsheet.

    answer(block, channel, i, j, right_value) gives what to type (None leaves the cell blank); inputs maps
    (grid, channel, i, j) to a new value typed over an input cell.
    """
    wb = load_workbook(src)
    ws = wb[key.sheet]
    expected = key.expected(student_id)
    for rec in key.answers:
        for c, g in enumerate(rec.grids):
            for i in range(g.height):
                for j in range(g.width):
                    right = float(expected[rec.name][c, i, j])
                    value = answer(rec.name, c, i, j, right) if answer else right
                    ws.cell(g.top + i + 1, g.left + j + 1).value = value
    for (name, c, i, j), value in (inputs or {}).items():
        g = next(r for r in key.inputs if r.name == name).grids[c]
        ws.cell(g.top + i + 1, g.left + j + 1).value = value
    dst.parent.mkdir(parents=True, exist_ok=True)
    wb.save(dst)
    return dst


def save_through_libreoffice(paths: list[Path], out_dir: Path) -> list[Path]:
    """Open and save each workbook in LibreOffice (recalculating it), as a student's spreadsheet would."""
    outs = recalculate(paths, out_dir / "lo")
    final = []
    for src, out in zip(paths, outs):
        dest = out_dir / src.name
        shutil.move(out, dest)
        final.append(dest)
    return final


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def right_cells(key: Key, student_id: str) -> dict[str, np.ndarray]:
    return key.expected(student_id)
