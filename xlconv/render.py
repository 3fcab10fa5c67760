"""Pictures of workbooks for slides and review: LibreOffice prints each workbook to PDF (recalculating every
formula on load, so the picture shows live values), and poppler's pdftoppm turns each page into a PNG.

    render(["build/lee-6x6.xlsx"], "slides")  ->  slides/lee-6x6.pdf, slides/lee-6x6-1.png, slides/lee-6x6-2.png, ...

Page numbers start at 1 and are zero-padded to the width of the page count (as pdftoppm pads), so the files sort
in page order. Each sheet prints with its own page set-up (orientation, fit to width, print titles, page breaks);
hidden sheets (such as the record sheet) do not print.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from xlconv import engine
from xlconv.errors import EngineError, XlconvError

DEFAULT_DPI = 60
MAX_DPI = 1200
PDFTOPPM = "pdftoppm"
POPPLER_HINT = "apt-get install -y --no-install-recommends poppler-utils"


def _check_dpi(dpi: object) -> int:
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 1 <= dpi <= MAX_DPI:
        raise XlconvError(f"--dpi must be a whole number from 1 to {MAX_DPI}, got {dpi!r}")
    return dpi


def page_pngs(pdf: Path, out_dir: Path, stem: str, dpi: int = DEFAULT_DPI, timeout: float = 300) -> list[Path]:
    """One PNG per page of pdf, written as out_dir/<stem>-<page>.png; returns them in page order."""
    binary = shutil.which(PDFTOPPM)
    if binary is None:
        raise EngineError(f"poppler's {PDFTOPPM} not found; install it with: {POPPLER_HINT}")
    with tempfile.TemporaryDirectory(prefix="xlconv-render-") as tmp:
        prefix = Path(tmp) / "page"
        engine.run_tool(PDFTOPPM, [binary, "-r", str(dpi), "-png", str(pdf.resolve()), str(prefix)], timeout)
        pages: list[tuple[int, Path]] = []
        for made in Path(tmp).iterdir():
            m = re.fullmatch(r"page-(\d+)\.png", made.name)
            if m:
                pages.append((int(m.group(1)), made))
        if not pages:
            raise EngineError(f"{PDFTOPPM} made no picture of {pdf}")
        pages.sort()
        width = len(str(len(pages)))
        out = []
        for n, (_, made) in enumerate(pages, start=1):
            dest = out_dir / f"{stem}-{n:0{width}d}.png"
            shutil.move(made, dest)
            out.append(dest)
    return out


def render(paths: Sequence[str | Path], out_dir: str | Path = "render", dpi: int = DEFAULT_DPI,
           timeout: float = 300) -> list[Path]:
    """Print each workbook to out_dir/<stem>.pdf and each page to out_dir/<stem>-<page>.png; return the PNGs.

    A missing file, a file that is not an .xlsx workbook, or two files with one name stop everything with a
    one-line error naming the file, and nothing is written. Pictures of an earlier render of the same stem that
    this one does not remake (a page that is gone) are removed.
    """
    dpi = _check_dpi(dpi)
    sources = [Path(p) for p in paths]
    if not sources:
        raise XlconvError("render: no workbooks given")
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="xlconv-render-") as tmp:
        work = Path(tmp)
        pdfs = engine.convert(sources, work, "pdf", timeout)  # checks every input before starting LibreOffice
        made: list[tuple[Path, list[Path]]] = [(pdf, page_pngs(pdf, work, pdf.stem, dpi, timeout)) for pdf in pdfs]
        # Everything exists: only now touch out_dir.
        created = not out.exists()
        moved: list[Path] = []
        try:
            out.mkdir(parents=True, exist_ok=True)
            pngs: list[Path] = []
            for pdf, pages in made:
                for old in out.glob(f"{glob_escape(pdf.stem)}-*.png"):
                    if re.fullmatch(re.escape(pdf.stem) + r"-\d+\.png", old.name):
                        old.unlink()
                for f in (pdf, *pages):
                    dest = out / f.name
                    shutil.move(f, dest)
                    moved.append(dest)
                pngs += [out / p.name for p in pages]
        except BaseException:
            for f in moved:
                f.unlink(missing_ok=True)
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise
    return pngs


def glob_escape(text: str) -> str:
    """text with glob's special characters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


__all__ = ["render", "page_pngs", "DEFAULT_DPI"]
