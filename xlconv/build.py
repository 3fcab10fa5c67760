"""Building workbooks from specs: the library call behind `xlconv build`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from xlconv import spec as specs
from xlconv.book import Book
from xlconv.spec import ConvSheetSpec, SizeSheetSpec, Spec


def write_workbook(spec: Spec, path: str | Path) -> Path:
    """Write the workbook for one parsed spec to path (atomically: no partial file on error)."""
    with Book(path, spec.title) as book:
        if isinstance(spec, SizeSheetSpec):
            from xlconv.sheets import size

            size.build_sheet(book, spec)
        elif isinstance(spec, ConvSheetSpec):
            from xlconv.sheets import conv

            conv.build_sheet(book, spec)
        else:  # pragma: no cover - the spec parser only makes the kinds above
            raise TypeError(f"unknown spec kind {type(spec).__name__}")
    return Path(path)


def build(spec: str | Path | Spec, out_dir: str | Path = "build") -> Path:
    """Build one spec (a parsed spec, a file or a built-in name) into out_dir/<name>.xlsx."""
    parsed = spec if isinstance(spec, (ConvSheetSpec, SizeSheetSpec)) else specs.load(spec)
    return write_workbook(parsed, Path(out_dir) / f"{parsed.name}.xlsx")


def build_all(names: Iterable[str | Path] | None = None, out_dir: str | Path = "build") -> list[Path]:
    """Build several specs (default: every shipped one); all are parsed before any file is written."""
    parsed = [specs.load(n) for n in (names or specs.builtin_names())]
    return [build(p, out_dir) for p in parsed]
