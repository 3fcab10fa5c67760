"""Formula builders: pure functions from cell references to formula strings.

Only functions that Excel 2010+, LibreOffice and Google Sheets all share are used:
SUMPRODUCT, SUM, MAX, MIN, AVERAGE, INT, INDEX, IF, ABS, ROUND, ROW, COLUMN and arithmetic;
an exercise's self-checks add ISNUMBER (shared by all three too) to tell typed text from numbers.
"""

from __future__ import annotations

from typing import Sequence

ALLOWED_FUNCTIONS = frozenset(
    ["SUMPRODUCT", "SUM", "MAX", "MIN", "AVERAGE", "INT", "INDEX", "IF", "ABS", "ROUND", "ROW", "COLUMN"])
SELF_CHECK_FUNCTIONS = ALLOWED_FUNCTIONS | {"ISNUMBER"}
CHECK_RIGHT, CHECK_WRONG, CHECK_NOT_A_NUMBER = "\u2713", "\u2717", "?"


def conv(windows: Sequence[str], kernels: Sequence[str], bias: str | None = None) -> str:
    """One conv output cell: a SUMPRODUCT of window and kernel per input channel, plus the bias."""
    terms = [f"SUMPRODUCT({w},{k})" for w, k in zip(windows, kernels, strict=True)]
    if bias is not None:
        terms.append(bias)
    return "=" + "+".join(terms)


def pool(mode: str, cells: Sequence[str], divisor: int | None = None) -> str:
    """One pooling cell: MAX over the window, or its average (SUM/divisor where torch counts padding)."""
    args = ",".join(cells)
    if mode == "max":
        return f"=MAX({args})"
    if divisor is None:
        return f"=AVERAGE({args})"
    return f"=SUM({args})/{divisor}"


def relu(cell: str) -> str:
    """ReLU of one cell."""
    return f"=MAX(0,{cell})"


def copy(cell: str) -> str:
    """A cell that shows another (the inside of a padded grid)."""
    return f"={cell}"


def rows_of(first: str, last: str) -> str:
    """Number of rows from first to last cell, live."""
    return f"=ROW({last})-ROW({first})+1"


def columns_of(first: str, last: str) -> str:
    """Number of columns from first to last cell, live."""
    return f"=COLUMN({last})-COLUMN({first})+1"


def out_size(h_in: str, kernel_size: str, stride: str, padding: str, dilation: str,
             ceil_mode: str | None = None) -> str:
    """torch's output length: INT((H_in + 2p - d(k-1) - 1)/s) + 1, with pooling's ceil_mode rule if given."""
    span = f"{h_in}+2*{padding}-{dilation}*({kernel_size}-1)-1"
    floor = f"INT(({span})/{stride})+1"
    if ceil_mode is None:
        return f"={floor}"
    ceil = f"INT(({span}+{stride}-1)/{stride})+1"
    # torch drops a last window that would start past the input and its left padding.
    ceil_fixed = f"{ceil}-IF(INT(({span}+{stride}-1)/{stride})*{stride}>={h_in}+{padding},1,0)"
    return f"=IF({ceil_mode},{ceil_fixed},{floor})"


def lecture_out_size(h_in: str, kernel_size: str, stride: str, padding: str) -> str:
    """The lecture's unrounded (H_in + 2*padding - kernel_size)/stride + 1."""
    return f"=({h_in}+2*{padding}-{kernel_size})/{stride}+1"


def index(block: str, row: str, col: str) -> str:
    """INDEX of a block at computed 1-based row and column expressions."""
    return f"=INDEX({block},{row},{col})"


def window_tap(block: str, out_row: str, out_col: str, i: int, j: int, stride: tuple[int, int],
               dilation: tuple[int, int]) -> str:
    """The input cell under kernel tap (i, j) for the output cell the student picked."""
    r = f"({out_row}-1)*{stride[0]}+{1 + i * dilation[0]}"
    c = f"({out_col}-1)*{stride[1]}+{1 + j * dilation[1]}"
    return index(block, r, c)


def choose(selector: str, options: Sequence[str]) -> str:
    """Option number selector (1-based) by nested IF, since CHOOSE is not in the shared set."""
    expr = options[-1]
    for n in range(len(options) - 1, 0, -1):
        expr = f"IF({selector}={n},{options[n - 1]},{expr})"
    return "=" + expr


def product(a: str, b: str) -> str:
    """a times b."""
    return f"={a}*{b}"


def total(cells: Sequence[str]) -> str:
    """SUM of cells or ranges."""
    return f"=SUM({','.join(cells)})"


def equal_check(a: str, b: str) -> str:
    """A text cell saying whether two numbers agree."""
    return f'=IF(ABS({a}-{b})<0.000001,"= equal","differs")'


def in_window(top_row: int, left_col: int, out_row: str, out_col: str, kernel: tuple[int, int],
              stride: tuple[int, int], dilation: tuple[int, int]) -> str:
    """Conditional-format rule: is this cell (ROW(), COLUMN()) one of the taps of the picked window?

    top_row and left_col are the 1-based row and column numbers of the block's first cell.
    """
    terms = []
    for axis, pos, start, here in ((0, out_row, top_row, "ROW()"), (1, out_col, left_col, "COLUMN()")):
        off = f"({here}-{start}-({pos}-1)*{stride[axis]})"
        span = dilation[axis] * (kernel[axis] - 1)
        terms += [f"({off}>=0)", f"({off}<={span})"]
        if dilation[axis] > 1:
            terms.append(f"(INT({off}/{dilation[axis]})*{dilation[axis]}={off})")
    return "=" + "*".join(terms)


def is_cell(top_row: int, left_col: int, out_row: str, out_col: str, extra: str | None = None) -> str:
    """Conditional-format rule: is this cell the picked (row, column) of a block?"""
    terms = [f"(ROW()-{top_row}+1={out_row})", f"(COLUMN()-{left_col}+1={out_col})"]
    if extra:
        terms.append(f"({extra})")
    return "=" + "*".join(terms)


def answer_check(answer: str, expected: str, tolerance: float) -> str:
    """An exercise's self-check: blank, a tick, a cross, or "?" when the answer is not a number.

    expected is an expression (no leading "=") that recomputes the right value from the input cells.
    """
    return (f'=IF({answer}="","",IF(ISNUMBER({answer}),IF(ABS({answer}-({expected}))<={tolerance:.12g},'
            f'"{CHECK_RIGHT}","{CHECK_WRONG}"),"{CHECK_NOT_A_NUMBER}"))')


def count_right(ranges: Sequence[str]) -> str:
    """How many cells of the check ranges show a tick (SUMPRODUCT, since COUNTIF is not in the shared set)."""
    return "=" + "+".join(f'SUMPRODUCT(({r}="{CHECK_RIGHT}")*1)' for r in ranges)
