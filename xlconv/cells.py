"""Cell and range addressing: the only place that turns (row, column) into "B3"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Excel's hard limits (and LibreOffice's since 7.4).
MAX_ROWS = 1_048_576
MAX_COLS = 16_384
MAX_FORMULA_CHARS = 8_192


_A1 = re.compile(r"^([A-Za-z]{1,3})([0-9]{1,7})$")


@lru_cache(maxsize=None)
def col_name(col: int) -> str:
    """Column letters of the zero-based column col ("A", "Z", "AA", ...)."""
    if col < 0:
        raise ValueError(f"column {col} is negative")
    letters = ""
    n = col + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def a1(row: int, col: int, absolute: bool = False) -> str:
    """A1 address of the zero-based (row, col)."""
    if row < 0:
        raise ValueError(f"row {row} is negative")
    dollar = "$" if absolute else ""
    return f"{dollar}{col_name(col)}{dollar}{row + 1}"


def parse_a1(ref: str) -> tuple[int, int]:
    """Zero-based (row, col) of an A1 address such as "B3" or "$B$3"; ValueError for anything else."""
    m = _A1.match(ref.replace("$", ""))
    if m is None:
        raise ValueError(f"{ref!r} is not a cell address such as B3")
    col = 0
    for ch in m[1].upper():
        col = col * 26 + ord(ch) - 64
    return int(m[2]) - 1, col - 1


def quote_sheet(sheet: str) -> str:
    """Sheet name as it must appear in a formula reference."""
    return "'" + sheet.replace("'", "''") + "'"


def on_sheet(sheet: str, ref: str) -> str:
    """A cell or range of another sheet, as a formula names it ('Tiny CNN'!B3:D5)."""
    return f"{quote_sheet(sheet)}!{ref}"


@dataclass(frozen=True)
class Grid:
    """A rectangle of cells on one sheet, addressed by zero-based offsets inside it."""

    top: int
    left: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        """The zero-based row of the last row."""
        return self.top + self.height - 1

    @property
    def right(self) -> int:
        """The zero-based column of the last column."""
        return self.left + self.width - 1

    def cell(self, i: int, j: int, absolute: bool = False) -> str:
        """Address of the cell i rows down and j columns right of the top-left corner."""
        return a1(self.top + i, self.left + j, absolute)

    def window(self, i: int, j: int, height: int, width: int) -> "Grid":
        """The sub-rectangle of the given size whose top-left is (i, j)."""
        return Grid(self.top + i, self.left + j, height, width)

    def ref(self, absolute: bool = False) -> str:
        """A1 range of the whole rectangle ("B3:D5"), or one cell ("B3")."""
        first = a1(self.top, self.left, absolute)
        if self.height == 1 and self.width == 1:
            return first
        return f"{first}:{a1(self.bottom, self.right, absolute)}"

    def sheet_ref(self, sheet: str) -> str:
        """Absolute reference with the sheet name, as used in defined names."""
        return f"{quote_sheet(sheet)}!{self.ref(absolute=True)}"

    def fits(self) -> bool:
        """Whether the rectangle lies inside a worksheet's limits."""
        return self.bottom < MAX_ROWS and self.right < MAX_COLS


def parse_range(ref: str) -> Grid:
    """Grid of an A1 range such as "B3:D5" (sheet name and $ allowed)."""
    ref = ref.split("!")[-1].replace("$", "")
    first, _, last = ref.partition(":")
    r0, c0 = parse_a1(first)
    r1, c1 = parse_a1(last or first)
    return Grid(r0, c0, r1 - r0 + 1, c1 - c0 + 1)
