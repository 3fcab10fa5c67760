"""The shipped examples ([examples]): a sheet of held-out digits with their true classes, and the pick cell on the
main sheet that chooses which one the image shows (its cells INDEX into that table, so everything downstream
follows the pick; a student may still type over any pixel)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from xlconv import formulas as fx
from xlconv.book import Book
from xlconv.cells import Grid, on_sheet
from xlconv.model import Examples
from xlconv.sheets import style

if TYPE_CHECKING:
    from xlconv.sheets.conv import ConvSheet

SHEET = "Digits"
PER_ROW = 5  # digits side by side
FIRST_ROW = 4  # the first digit's heading row (title, note, legend above)
TABLE = "examples"  # the recorded blocks: every example's pixels, and their classes
LABELS = "example_labels"
DIGIT_COLUMN = 3.4  # characters: a pixel's 0.00 in 8-point type, the cells about square with DIGIT_ROW_POINTS
DIGIT_ROW_POINTS = 19.0
PICK = "pick"


@dataclass(frozen=True)
class Layout:
    """Where each example and its class sit on the Digits sheet, and the block INDEX reads them from."""

    pixels: tuple[Grid, ...]
    labels: tuple[Grid, ...]
    table: Grid
    band_rows: int
    map_cols: int


def layout(ex: Examples) -> Layout:
    """The Digits sheet's places: PER_ROW digits a band, each under its heading and over its class."""
    n, h, w = ex.values.shape
    band_rows, map_cols = h + 3, w + 1  # heading, pixels, class, a blank row; a blank column
    pixels, labels = [], []
    for k in range(n):
        top = FIRST_ROW + 1 + (k // PER_ROW) * band_rows
        left = 1 + (k % PER_ROW) * map_cols
        pixels.append(Grid(top, left, h, w))
        labels.append(Grid(top + h, left, 1, 1))
    bands = (n + PER_ROW - 1) // PER_ROW
    table = Grid(FIRST_ROW + 1, 1, bands * band_rows, min(n, PER_ROW) * map_cols)
    return Layout(tuple(pixels), tuple(labels), table, band_rows, map_cols)


def sheet_name(main: str) -> str:
    """The Digits sheet's name, unless the main sheet already has it."""
    return SHEET if main.lower() != SHEET.lower() else f"{SHEET} (examples)"


def record(sheet: ConvSheet, ex: Examples) -> Layout:
    """Record the examples' blocks (before the image, whose check reads them)."""
    lay = layout(ex)
    name = sheet_name(sheet.spec.sheet)
    sheet.book.record(TABLE, "input", name, lay.pixels, label="shipped test digits")
    sheet.book.record(LABELS, "input", name, lay.labels, label="their true classes")
    return lay


def picked(lay: Layout, digits_sheet: str, pick: str, i: int, j: int) -> str:
    """Pixel (i, j) of the example whose number (1-based) is in the pick cell."""
    return fx.banded_cell(on_sheet(digits_sheet, lay.table.ref(absolute=True)), pick, PER_ROW, lay.band_rows,
                          lay.map_cols, str(i + 1), str(j + 1), missing="pick 1 to N")


def label_of(lay: Layout, digits_sheet: str, pick: str, h: int) -> str:
    """The true class of the picked example."""
    return fx.banded_cell(on_sheet(digits_sheet, lay.table.ref(absolute=True)), pick, PER_ROW, lay.band_rows,
                          lay.map_cols, str(h + 1), "1", missing="pick 1 to N")


def write(book: Book, main: str, ex: Examples, accuracy_note: str) -> None:
    """The Digits sheet: every shipped example drawn as a digit, its number and its true class."""
    lay = layout(ex)
    ws = book.wb.add_worksheet(sheet_name(main))
    n, h, w = ex.values.shape
    ws.write_string(0, 1, f"Shipped test digits ({n}): type a number 1 to {n} in the pick cell of '{main}'",
                    book.fmt(bold=True, font_size=16))
    note = (f"Each digit is {h} x {w} pixels from 0 (paper) to 1 (ink), held out of training, with its true class "
            f"under it. The image on '{main}' INDEXes this table by the pick cell, so picking another digit changes "
            f"every map, the probabilities and the gradients. {accuracy_note}").strip()
    ws.merge_range(1, 1, 1, PER_ROW * lay.map_cols - 1, note, book.fmt(text_wrap=True, valign="top", font_size=10))
    ws.set_row(1, 42)
    nf = "0.00"
    fmt = style.cell(book, "input", nf, font_size=8)
    for k in range(n):
        g = lay.pixels[k]
        ws.write_string(g.top - 1, g.left, f"Digit {k + 1}", book.fmt(bold=True, font_size=10))
        for i in range(h):
            for j in range(w):
                ws.write_number(g.top + i, g.left + j, float(ex.values[k, i, j]), fmt)
        style.ink(book, ws, g)
        lg = lay.labels[k]
        ws.write_number(lg.top, lg.left, ex.labels[k], style.cell(book, "input", "0", bold=True))
        ws.write_string(lg.top, lg.left + 1, "true class", book.fmt(font_size=9, italic=True))
    ws.set_column(0, 0, 2)
    ws.set_column(1, PER_ROW * lay.map_cols, DIGIT_COLUMN)
    points = [style.HEADER_ROW_POINTS] * (lay.table.bottom + 2)
    points[0], points[1] = style.TITLE_ROW_POINTS, 42
    pixel_rows = {g.top + i for g in lay.pixels for i in range(g.height)}
    for r in range(lay.table.top - 1, lay.table.bottom + 1):
        points[r] = DIGIT_ROW_POINTS if r in pixel_rows else 14.0  # headings, classes, gaps: a little tighter
        ws.set_row(r, points[r])
    # One page (the examples are one recorded block, never split), landscape, as large as width and height allow.
    width_pt = (style.column_px(2) + PER_ROW * lay.map_cols * style.column_px(DIGIT_COLUMN)) * 0.75
    page_w, page_h = style.A4_PRINTABLE[True]
    scale = min(1.0, page_w / width_pt, page_h / sum(points) * style.LIBREOFFICE_COLUMN_STRETCH)
    style.page_setup(ws, landscape=True, scale=scale)
    ws.set_zoom(style.fit_zoom((width_pt * 4 / 3, sum(points) * 4 / 3)))
    ws.freeze_panes(1, 0)


__all__ = ["SHEET", "Layout", "layout", "sheet_name", "record", "picked", "label_of", "write"]
