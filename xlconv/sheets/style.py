"""Every look of every sheet: role colours, cell sizes, number formats, heat maps, check marks, page set-up.

Sheets ask for a style by what the cell *is* (an input, a kernel, an answer, ...); the colours, borders and
rules live here only, so that all workbooks speak the same visual language.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from xlconv import formulas as fx
from xlconv.book import Book
from xlconv.cells import Grid

# One colour per role, so inputs, kernels, padding and outputs never look alike.
COLOURS = {
    "input": "#DDEBF7",
    "kernel": "#FCE4D6",
    "padding": "#BFBFBF",
    "output": "#E2EFDA",
    "param": "#FFF2CC",
    "pick": "#FFD966",
    "product": "#E4DFEC",
    "bias": "#F8CBAD",
    "answer": "#FFEB9C",
}
COL_WIDTH = 6.0  # characters; about 47 px, square with GRID_ROW_HEIGHT
GRID_ROW_HEIGHT = 35.0  # points; about 47 px
# Booleans as words in every program (LibreOffice would print a boolean under "0" as 0).
BOOLEAN_FORMAT = '"TRUE";"TRUE";"FALSE"'
HEADING_BLUE = "#1F4E79"
DARK_RED = "#9C0006"
TITLE = dict(bold=True, font_size=14)
NOTE = dict(text_wrap=True, valign="top", font_size=10)
WARN = dict(bold=True, font_size=12, font_color="#C00000")

# Heat maps. Diverging around 0 (blue negative, red positive); on the toy sheets the ends sit at
# percentiles so that a few extreme cells (a padding ring, a bright spot) do not wash out the rest.
_BLUE, _WHITE, _RED = "#5A8AC6", "#FFFFFF", "#F8696B"
DIVERGING = dict(type="3_color_scale", min_type="percentile", min_value=2, min_color=_BLUE,
                 mid_type="num", mid_value=0, mid_color=_WHITE,
                 max_type="percentile", max_value=98, max_color=_RED)
POSITIVE = dict(type="2_color_scale", min_type="num", min_value=0, min_color=_WHITE,
                max_type="percentile", max_value=98, max_color=_RED)
NEGATIVE = dict(type="2_color_scale", min_type="percentile", min_value=2, min_color=_BLUE,
                max_type="num", max_value=0, max_color=_WHITE)
# The AlexNet maps (hundreds of 55 x 55 maps): plain minimum and maximum ends.
DIVERGING_MINMAX = dict(type="3_color_scale", min_color=_BLUE, mid_type="num", mid_value=0, mid_color=_WHITE,
                        max_color=_RED)
POSITIVE_MINMAX = dict(type="2_color_scale", min_type="num", min_value=0, min_color=_WHITE, max_color=_RED)
GRAYSCALE = dict(type="2_color_scale", min_color="#000000", max_color="#FFFFFF")
# The self-check marks and their colours: right, wrong, not a number.
MARKS = ((fx.CHECK_RIGHT, "#C6EFCE", "#006100"), (fx.CHECK_WRONG, "#FFC7CE", DARK_RED),
         (fx.CHECK_NOT_A_NUMBER, "#FFEB9C", "#9C5700"))


def cell(book: Book, role: str, num_format: str = "0", **extra: Any) -> Format:
    """The format of a grid cell of the given role (fill colour, border, centred number)."""
    props: dict[str, Any] = dict(border=1, border_color="#808080", align="center", valign="vcenter",
                                 num_format=num_format)
    if role in COLOURS:
        props["bg_color"] = COLOURS[role]
    if role == "padding":
        props["font_color"] = "#404040"
    props.update(extra)
    return book.fmt(**props)


def num_format(values: np.ndarray, decimals: int = 2) -> str:
    """"0" for whole numbers, else a fixed number of decimals."""
    from xlconv.reference import is_integral

    return "0" if is_integral(values) else "0." + "0" * decimals


def cached(v: Any) -> int | float:
    """A cached value as XlsxWriter wants it (whole numbers without a trailing .0)."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def heatmap(ws: Worksheet, grid: Grid, values: np.ndarray) -> None:
    """Colour a feature map so that 0 is white, positive red and negative blue."""
    # A 3-colour scale pins 0 to white only when the map has both signs; a one-signed map
    # (after ReLU, or a 0/1 image) would paint its zeros blue, so it gets white-to-red instead.
    if values.min() >= 0:
        rule = POSITIVE
    elif values.max() <= 0:
        rule = NEGATIVE
    else:
        rule = DIVERGING
    ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right, rule)


def picture(book: Book, ws: Worksheet, grid: Grid) -> None:
    """Draw a grid of 0-255 pixels as the grayscale picture it is."""
    ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right,
                          dict(GRAYSCALE, min_type="num", min_value=0, max_type="num", max_value=255))
    # White digits where the picture is dark, so the numbers stay readable.
    ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right,
                          dict(type="cell", criteria="<", value=110, format=book.fmt(font_color="#FFFFFF")))


def check_marks(book: Book, ws: Worksheet, checks: Grid, answers: Grid) -> None:
    """Colour a self-check grid by its mark, and its answer grid with it (the first check cell leads)."""
    for mark, fill, font in MARKS:
        look = book.fmt(bg_color=fill, font_color=font)
        ws.conditional_format(checks.top, checks.left, checks.bottom, checks.right,
                              dict(type="cell", criteria="==", value=f'"{mark}"', format=look))
        ws.conditional_format(answers.top, answers.left, answers.bottom, answers.right,
                              dict(type="formula", criteria=f'={checks.cell(0, 0)}="{mark}"', format=look))


def protect_inputs(ws: Worksheet) -> None:
    """Lock a student's sheet without a password: it only keeps inputs from being changed by accident."""
    ws.protect("", {"select_locked_cells": True, "select_unlocked_cells": True, "format_columns": True,
                    "format_rows": True})


def page_setup(ws: Worksheet, landscape: bool = True) -> None:
    """No gridlines on screen or paper; landscape, fitted to the page width."""
    ws.hide_gridlines(2)
    if landscape:
        ws.set_landscape()
        ws.fit_to_pages(1, 0)


def row_points(col_width: float) -> float:
    """The row height (points) that makes cells of a column this wide (characters) square.

    Excel draws a column of w characters w*7+5 pixels wide (Calibri 11), and a point is 4/3 pixel.
    """
    return round((col_width * 7 + 5) * 0.75, 2)
