"""Opening .xlsx files to read them: the one openpyxl opener verify, the engine's canary check and the
grading sandbox share (read-only, never following external links, quiet about other programs' styles)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def open_workbook(path: str | Path, data_only: bool = True) -> Any:
    """An openpyxl workbook in read-only mode: cached values (data_only) or formulas, no external links."""
    from openpyxl import load_workbook

    with warnings.catch_warnings():
        # Gnumeric's files have no default style; openpyxl's warning about it is noise here.
        warnings.simplefilter("ignore")
        return load_workbook(path, read_only=True, data_only=data_only, keep_links=False)
