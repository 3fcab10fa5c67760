"""Every look of every sheet: role colours, cell sizes, number formats, heat maps, check marks, page set-up.

Sheets ask for a style by what the cell *is* (an input, a kernel, an answer, ...); the colours, borders and
rules live here only, so that all workbooks speak the same visual language.
"""

from __future__ import annotations

from typing import Any, Sequence

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
# Step-by-step panels: one colour per panel, used for its window, its kernel and its output cell and by
# nothing else (not "you type here", not a heat map), so that two panels on one image never merge.
PANEL_COLOURS = ("#F4B183", "#9DC3E6", "#C5E0B4", "#D5A6BD")  # orange, blue, green, mauve
PANEL_BORDER = ("#C55A11", "#2E75B6", "#548235", "#7B3F61")
# Cells that no window of an op reads (a stride that steps over the last rows): hatched, with a note.
UNREAD = dict(pattern=8, fg_color="#BFBFBF")
# The self-check marks and their colours: right, wrong, not a number.
MARKS = ((fx.CHECK_RIGHT, "#C6EFCE", "#006100"), (fx.CHECK_WRONG, "#FFC7CE", DARK_RED),
         (fx.CHECK_NOT_A_NUMBER, "#FFEB9C", "#9C5700"))


def cell(book: Book, role: str, num_format: str = "0", **extra: Any) -> Format:
    """The format of a grid cell of the given role (fill colour, border, centred number)."""
    key = ("cell", role, num_format, *extra.items())
    made = book.named_formats.get(key)
    if made is None:
        made = book.named_formats[key] = _cell(book, role, num_format, extra)
    return made


def _cell(book: Book, role: str, num_format: str, extra: dict[str, Any]) -> Format:
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


def ink(book: Book, ws: Worksheet, grid: Grid) -> None:
    """Draw a grid of 0-1 pixels as a digit on paper: 0 white, 1 black ink (white numbers on dark cells)."""
    ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right,
                          dict(type="2_color_scale", min_type="num", min_value=0, min_color="#FFFFFF",
                               max_type="num", max_value=1, max_color="#000000"))
    ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right,
                          dict(type="cell", criteria=">", value=0.55, format=book.fmt(font_color="#FFFFFF")))


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


def page_setup(ws: Worksheet, landscape: bool = True, breaks: Sequence[int] = (),
               repeat_rows: tuple[int, int] | None = None, fit_width: bool = True,
               scale: float | None = None) -> None:
    """No gridlines; A4 in the orientation given, fitted to the page width, with page breaks before the
    given zero-based rows (so that no grid or panel is cut) and heading rows repeated on every page.

    With manual breaks, give the fit-to-width scale (plan_pages computes it): Excel ignores manual page breaks
    on a sheet set to "fit to pages", so such a sheet gets that scale as a fixed print scale instead."""
    ws.hide_gridlines(2)
    ws.set_paper(9)  # A4; Letter users get it scaled by their printer dialog, which keeps fit-to-width
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    if scale is not None:
        # LibreOffice draws columns ~6% wider than Excel: leave it that room so that both fit the width.
        ws.set_print_scale(max(10, min(100, int(scale * 100 / LIBREOFFICE_COLUMN_STRETCH))))
    elif fit_width:
        ws.fit_to_pages(1, 0)
    if breaks:
        ws.set_h_pagebreaks(sorted({b for b in breaks if b > 0}))
    if repeat_rows is not None:
        ws.repeat_rows(*repeat_rows)
    ws.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.5)


# A laptop window (1366 x 768) minus the spreadsheet's own toolbars, rows and column headings.
SCREEN_PX = (1300, 560)


def column_px(width_chars: float) -> int:
    """How many pixels Excel draws a column of this width (in characters of Calibri 11)."""
    return int(width_chars * 7 + 5)


def fit_zoom(content_px: tuple[float, float], screen_px: tuple[int, int] = SCREEN_PX, least: int = 25,
             most: int = 100) -> int:
    """The zoom (percent) at which content of this size (pixels at 100%) fits the screen, within [least, most]."""
    w, h = content_px
    zoom = min(screen_px[0] / max(w, 1), screen_px[1] / max(h, 1)) * 100
    return int(max(least, min(most, zoom // 5 * 5)))


def note(ws: Worksheet, row: int, col: int, text: str) -> None:
    """A cell note (comment) in the lecture's words, sized to its text so that it opens readable."""
    lines = max(2, len(text) // 40 + 1)
    ws.write_comment(row, col, text, {"author": "xlconv", "x_scale": 2.2, "y_scale": min(6.0, 0.5 + 0.35 * lines),
                                      "font_size": 9})


def row_points(col_width: float) -> float:
    """The row height (points) that makes cells of a column this wide (characters) square.

    Excel draws a column of w characters w*7+5 pixels wide (Calibri 11), and a point is 4/3 pixel.
    """
    return round((col_width * 7 + 5) * 0.75, 2)


NOT_APPLICABLE = "#F2F2F2"


def not_applicable(book: Book) -> Format:
    """A cell for a parameter the row's layer does not have (a convolution's ceil_mode): light grey, grey dash."""
    return book.fmt(border=1, border_color="#BFBFBF", align="center", valign="vcenter", bg_color=NOT_APPLICABLE,
                    font_color="#808080")


# -- The convolution sheet: step-by-step panels, unread cells, pages ---------------------------------------------

PANEL_NAMES = ("orange", "blue", "green", "mauve")  # what the sheet calls PANEL_COLOURS in its text
HEADER_ROW_POINTS = 15.0  # a plain row (XlsxWriter's and LibreOffice's default height)
TITLE_ROW_POINTS = 22.0  # the sheet title (16 pt)
OP_TITLE_ROW_POINTS = 18.0  # an op's heading line (12 pt)


def panel_colour(k: int) -> tuple[str, str, str]:
    """Panel k's fill, border colour and name (the colours repeat after the fourth panel)."""
    n = k % len(PANEL_COLOURS)
    return PANEL_COLOURS[n], PANEL_BORDER[n], PANEL_NAMES[n]


def panel_highlight(book: Book, k: int, also: int | None = None, on_scale: bool = False) -> Format:
    """The conditional format that lights panel k's window, picked filter and output cell: its fill (which wins
    over a heat map in Excel, placed first with stop_if_true), a medium frame and a bold underlined dark font (which
    show over a heat map in LibreOffice, where the colour scale's fill wins; Excel may draw the frame thin). also: a
    second panel that lights the same cell (its border colour then frames it). on_scale: the cell is on a heat map
    or picture, so its number is underlined too."""
    fill, line, _ = panel_colour(k)
    edge = panel_colour(also)[1] if also is not None else line
    return book.fmt(bg_color=fill, border=2, border_color=edge, bold=True, underline=1 if on_scale else 0,
                    font_color=edge)


def panel_cell(book: Book, k: int, role: str, num_format: str = "0", **extra: Any) -> Format:
    """A cell of panel k's own grids: its role's colour, framed in the panel's border colour."""
    return cell(book, role, num_format, border_color=panel_colour(k)[1], **extra)


def panel_heading(book: Book, k: int) -> Format:
    """Panel k's heading bar, in the panel's colour."""
    fill, line, _ = panel_colour(k)
    return book.fmt(bold=True, font_size=10, bg_color=fill, border=1, border_color=line, valign="vcenter",
                    text_wrap=True)


def unread_cell(book: Book, role: str, num_format: str = "0", **extra: Any) -> Format:
    """A cell no window of some op reads: its role's colour, hatched (UNREAD), its number in grey italics (a
    program that draws no hatching, such as LibreOffice, still tells it apart from padding)."""
    return cell(book, role, num_format, **{**UNREAD, "italic": True, "font_color": "#595959", **extra})


def picture_cell(book: Book, num_format: str = "0") -> Format:
    """A pixel of a photo drawn as a picture: no border and small digits, so that the grayscale reads as the photo."""
    return cell(book, "input", num_format, border=0, font_size=8)


# A4 minus page_setup's margins (0.4 in left and right, 0.5 in top and bottom), in points.
A4_PRINTABLE = {True: ((11.69 - 0.8) * 72, (8.27 - 1.0) * 72), False: ((8.27 - 0.8) * 72, (11.69 - 1.0) * 72)}


def plan_pages(row_points: Sequence[float], starts: Sequence[int], width_points: float,
               repeat_points: float = 0.0, landscape: bool | None = None,
               min_scale: float = 0.0) -> tuple[bool, list[int], float, int]:
    """Where to break the pages of a sheet printed fitted to the page width.

    row_points: every row's height; starts: the first rows of the bands that must not be split (a grid band,
    a panel), in order; width_points: the printed columns' width; repeat_points: the height of the rows repeated
    on every page after the first. At the fit-to-width scale (printable width / content width, at most 1) each
    page holds printable height / scale points of rows; a break goes before a band that would not fit on the
    current page. landscape None tries both orientations and keeps the one with fewer pages (then the larger
    scale); an orientation that prints below min_scale (of the printed size, after LibreOffice's wider columns)
    comes last. Returns (landscape, the rows that start a new page, the scale, the number of pages).
    """
    best: tuple[bool, list[int], float, int] | None = None
    for orientation in ((True, False) if landscape is None else (landscape,)):
        page_w, page_h = A4_PRINTABLE[orientation]
        scale = min(1.0, page_w / max(width_points, 1.0))
        room = page_h / scale
        bounds = list(starts) + [len(row_points)]
        breaks: list[int] = []
        used = sum(row_points[:bounds[0]]) if bounds else 0.0
        for a, b in zip(bounds, bounds[1:]):
            h = sum(row_points[a:b])
            if used > 0 and used + h > room:
                breaks.append(a)
                used = repeat_points + h
            else:
                used += h
        plan = (orientation, breaks, scale, len(breaks) + 1)
        small = plan[2] / LIBREOFFICE_COLUMN_STRETCH < min_scale
        if best is None or (small, plan[3], -plan[2]) < (best[2] / LIBREOFFICE_COLUMN_STRETCH < min_scale, best[3],
                                                          -best[2]):
            best = plan
    assert best is not None
    return best


# LibreOffice draws a column of Excel's width about 6% wider than Excel does (with Calibri or its metric twin
# Carlito; measured on its PDF export), while row heights in points agree.
LIBREOFFICE_COLUMN_STRETCH = 1.06


def square_row_points(col_width: float) -> float:
    """The grid row height (points) that keeps cells of this column width square within 4% in both Excel and
    LibreOffice: row_points(col_width) split between the two programs' column widths."""
    return round(row_points(col_width) * LIBREOFFICE_COLUMN_STRETCH ** 0.5, 2)
