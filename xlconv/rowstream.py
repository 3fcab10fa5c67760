"""Fast row-by-row writing of big sheets into an XlsxWriter constant_memory worksheet.

XlsxWriter's public ``write_formula`` runs some forty regular expressions on every formula (to expand
Excel 365 function names that xlconv never uses); that alone costs about 90 microseconds a cell, i.e.
18 seconds for the 194,000 conv1 formulas of the AlexNet workbook. A :class:`RowStream` instead
serialises whole rows of ``<c>`` elements with plain string operations and appends them to the
worksheet's own temporary row file, which XlsxWriter copies into the sheet XML at close, exactly as
it does for the rows it writes itself. Everything else (styles, column widths, conditional formats,
merges, images) still goes through XlsxWriter.

Rules: rows are streamed in increasing order; a streamed row is written whole (labels included) and
never touched again through XlsxWriter; row heights of streamed rows are given here, not with
``set_row``. Rows before, between and after streamed rows may be written with XlsxWriter as usual.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class RowStream:
    """Appends whole rows of cells to a constant_memory worksheet."""

    # XlsxWriter internals a stream writes through (tested with XlsxWriter 3.3; pyproject pins <4).
    _INTERNALS = ("fh", "previous_row", "table", "row_info", "_write_single_row", "_check_dimensions",
                  "xls_rowmax", "xls_colmax")

    def __init__(self, ws: Any, columns: int = 1024) -> None:
        if not getattr(ws, "constant_memory", False):
            raise ValueError("RowStream needs a worksheet of a Book opened with constant_memory=True")
        for attr in self._INTERNALS:
            if not hasattr(ws, attr):  # pragma: no cover - guards against an XlsxWriter internals change
                raise RuntimeError(f"this XlsxWriter ({xlsxwriter.__version__}) has no Worksheet.{attr}; "
                                   "RowStream supports XlsxWriter 3.x only")
        self.ws = ws
        self.last = -1
        self.col_names: list[str] = [xl_col_to_name(c) for c in range(columns)]

    def col(self, c: int) -> str:
        """Column letters of the zero-based column c."""
        names = self.col_names
        while c >= len(names):
            names.append(xl_col_to_name(len(names)))
        return names[c]

    def row(self, r: int, cells: Iterable[str], first_col: int, last_col: int,
            height: float | None = None) -> None:
        """Write row r (zero-based) made of ready <c> elements spanning first_col..last_col.

        Raises ValueError, before writing anything, if the row or a column is outside the sheet or the
        row comes out of order. The cells themselves are not inspected (that is the caller's fast path).
        """
        ws = self.ws
        if not (0 <= r < ws.xls_rowmax and 0 <= first_col and last_col < ws.xls_colmax):
            c = last_col if last_col >= ws.xls_colmax or first_col >= 0 else first_col
            raise ValueError(f"cell {_a1(r, c)} is outside Excel's {ws.xls_rowmax:,} rows x "
                             f"{ws.xls_colmax:,} columns")
        if r <= self.last or r < ws.previous_row:
            raise ValueError(f"row {r + 1} streamed out of order (after row {max(self.last, ws.previous_row) + 1})")
        if r > ws.previous_row:
            ws._write_single_row(r)  # flush what XlsxWriter holds for an earlier row
        elif ws.table.get(r) or r in ws.row_info:
            raise ValueError(f"row {r + 1} was already written through XlsxWriter")
        # Both are in range and r >= previous_row, so these return 0; anything else means XlsxWriter changed.
        if ws._check_dimensions(r, first_col) or ws._check_dimensions(r, last_col):  # pragma: no cover
            raise RuntimeError(f"XlsxWriter refused row {r + 1} (columns {_a1(r, first_col)}:{_a1(r, last_col)})")
        head = f'<row r="{r + 1}"' + (f' ht="{height:g}" customHeight="1">' if height else ">")
        ws.fh.write(head + "".join(cells) + "</row>")
        self.last = r

    # -- cell elements: r is the A1 reference, s the XF index of a format ----------------------------

    @staticmethod
    def number(ref: str, s: int, value: str) -> str:
        return f'<c r="{ref}" s="{s}"><v>{value}</v></c>'

    @staticmethod
    def formula(ref: str, s: int, formula: str, value: str) -> str:
        """A formula (without its leading "=") with a cached numeric value."""
        if "<" in formula or ">" in formula or "&" in formula:
            formula = formula.translate(_ESCAPES)
        return f'<c r="{ref}" s="{s}"><f>{formula}</f><v>{value}</v></c>'

    @staticmethod
    def text(ref: str, s: int, text: str) -> str:
        return f'<c r="{ref}" s="{s}" t="inlineStr"><is><t>{text.translate(_ESCAPES)}</t></is></c>'

    @staticmethod
    def blank(ref: str, s: int) -> str:
        return f'<c r="{ref}" s="{s}"/>'


def _a1(r: int, c: int) -> str:
    """A1 name of the zero-based cell (r, c), or its one-based numbers if it has no A1 name."""
    if r < 0 or c < 0:
        return f"(row {r + 1}, column {c + 1})"
    return f"{xl_col_to_name(c)}{r + 1}"


def xf(fmt: Any) -> int:
    """The XF index XlsxWriter gives a format (0 for none)."""
    return 0 if fmt is None else int(fmt._get_xf_index())


__all__ = ["RowStream", "xf"]


class Deferred:
    """Collects XlsxWriter calls for a small constant_memory sheet and replays them in row order.

    constant_memory worksheets silently drop cells written to a row above the last one written; building
    a sheet in reading order is then error-prone. Calls made here are sorted by (row, column, call order)
    and replayed by :meth:`flush`. Merges must stay within one row.
    """

    _CALLS = ("write_string", "write_number", "write_formula", "write_boolean", "write_blank", "write")

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.items: list[tuple[int, int, int, str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in self._CALLS:
            raise AttributeError(name)

        def call(row: int, col: int, *args: Any, **kwargs: Any) -> None:
            self.items.append((row, col, len(self.items), name, (row, col, *args), kwargs))
        return call

    def merge_range(self, first_row: int, first_col: int, last_row: int, last_col: int, *args: Any) -> None:
        if first_row != last_row:
            raise ValueError("Deferred.merge_range: a merge must stay within one row")
        self.items.append((first_row, first_col, len(self.items), "merge_range",
                           (first_row, first_col, last_row, last_col, *args), {}))

    def set_row(self, row: int, height: float | None, *args: Any) -> None:
        self.items.append((row, -1, len(self.items), "set_row", (row, height, *args), {}))

    def flush(self) -> None:
        """Replay the collected calls in row order; a call the worksheet refuses is an error, not a loss."""
        for row, col, _, name, args, kwargs in sorted(self.items, key=lambda t: t[:3]):
            status = getattr(self.ws, name)(*args, **kwargs)
            if name != "set_row" and status not in (0, None):
                raise RuntimeError(f"{name} at row {row + 1}, column {col + 1} failed with status {status}")
        self.items.clear()


__all__ += ["Deferred"]
