"""Formula builders: pure functions from cell references to formula strings.

Only functions that Excel 2010+, LibreOffice and Google Sheets all share are used:
SUMPRODUCT, SUM, MAX, MIN, AVERAGE, INT, INDEX, IF, ABS, ROUND, ROW, COLUMN, and for the dense head EXP, LN, MATCH
and SUMXMY2, and arithmetic; an exercise's self-checks add ISNUMBER (shared by all three too) to tell typed text from
numbers.
"""

from __future__ import annotations

from typing import Sequence

ALLOWED_FUNCTIONS = frozenset(
    ["SUMPRODUCT", "SUM", "MAX", "MIN", "AVERAGE", "INT", "INDEX", "IF", "ABS", "ROUND", "ROW", "COLUMN", "EXP", "LN",
     "MATCH", "SUMXMY2"])
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
    if ceil_mode is not None:
        return pool_out_size(h_in, kernel_size, stride, padding, dilation, ceil_mode)
    span = f"{h_in}+2*{padding}-{dilation}*({kernel_size}-1)-1"
    return f"=INT(({span})/{stride})+1"


def conv_transpose_out_size(h_in: str, kernel_size: str, stride: str, padding: str, output_padding: str,
                            dilation: str) -> str:
    """A transposed convolution's output length: (H_in - 1)s - 2p + d(k - 1) + output_padding + 1."""
    return f"=({h_in}-1)*{stride}-2*{padding}+{dilation}*({kernel_size}-1)+{output_padding}+1"


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


def feeds(top_row: int, left_col: int, out_row: str, out_col: str, kernel: tuple[int, int], stride: tuple[int, int],
          border: tuple[int, int], dilation: tuple[int, int]) -> str:
    """Conditional-format rule on a transposed convolution's input: does this cell's copy in the spread grid (stride
    cells apart, after border zeros; a negative border crops) fall under a tap of the picked output cell's window?

    top_row and left_col are the 1-based row and column numbers of the input block's first cell."""
    terms = []
    for axis, pos, start, here in ((0, out_row, top_row, "ROW()"), (1, out_col, left_col, "COLUMN()")):
        off = f"(({here}-{start})*{stride[axis]}+({border[axis]})-({pos}-1))"
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


# -- The AlexNet workbook's formulas (and pieces of formulas for its streamed rows) ---------------------------


def hole(n: int) -> str:
    """Placeholder argument n of a formula to be cut into pieces (see pieces); no reference contains it."""
    return f"\x00{n}\x00"


def pieces(formula: str, holes: int) -> tuple[str, ...]:
    """The fixed text around hole(0), ..., hole(holes - 1) of a formula built with them as arguments.

    The leading "=" is dropped (streamed rows write formulas without it), so a hot loop that writes
    hundreds of thousands of cells builds each formula as pieces[0] + arg0 + pieces[1] + ... + pieces[holes]
    and still takes every function, operator and constant from the builder.
    """
    rest = formula[1:] if formula.startswith("=") else formula
    out = []
    for n in range(holes):
        head, found, rest = rest.partition(hole(n))
        if not found:
            raise ValueError(f"hole {n} is missing from or out of order in {formula!r}")
        out.append(head)
    if "\x00" in rest:
        raise ValueError(f"{formula!r} has more than {holes} holes")
    out.append(rest)
    return tuple(out)


def normalize(raw: str, mean: str, std: str) -> str:
    """ToTensor() then Normalize(): a 0-255 pixel divided by 255, minus the mean, over the std."""
    return f"=({raw}/255-{mean})/{std}"


def plus(terms: Sequence[str]) -> str:
    """The sum of a few cells or expressions, written out with "+"."""
    return "=" + "+".join(terms)


def times(terms: Sequence[str]) -> str:
    """The product of a few cells or expressions, written out with "*"."""
    return "=" + "*".join(terms)


def conv_params(c_out: str, c_in: str, kernel_h: str, kernel_w: str) -> str:
    """A Conv2d's parameter count: C_out x C_in x kernel_h x kernel_w weights plus C_out biases."""
    return f"={c_out}*{c_in}*{kernel_h}*{kernel_w}+{c_out}"


def linear_params(n_in: str, n_out: str) -> str:
    """A Linear layer's parameter count: in x out weights plus out biases."""
    return f"={n_in}*{n_out}+{n_out}"


def same_check(pairs: Sequence[tuple[str, str]], same: str = "= equal", differs: str = "differs") -> str:
    """A text cell saying whether every pair of cells is exactly equal (whole numbers: shapes)."""
    test = "*".join(f"({a}={b})" for a, b in pairs)
    return f'=IF({test},"{same}","{differs}")'


def stacked_tap(block: str, item: str, band_rows: int, i: int, j: int) -> str:
    """Cell (i, j) of the item-th (0-based, live) of equal bands stacked band_rows apart in block."""
    return index(block, f"{item}*{band_rows}+{i + 1}", str(j + 1))


def position_in(cells: str, first: str, value: str) -> str:
    """1-based position of value in a one-row range of distinct numbers (0 if absent), without MATCH."""
    return f"=SUMPRODUCT(({cells}={value})*(COLUMN({cells})-COLUMN({first})+1))"


def banded_cell(maps: str, position: str, per_band: int, band_rows: int, map_cols: int, row: str, col: str,
                missing: str = "not built") -> str:
    """Cell (row, col) (1-based) of map number position (1-based) of maps laid out per_band a band, each band
    band_rows below the last and each map map_cols right of the last; a text if position is 0."""
    band = f"INT(({position}-1)/{per_band})"
    slot = f"({position}-1-{per_band}*{band})"
    return (f'=IF({position}=0,"{missing}",INDEX({maps},{band}*{band_rows}+{row},'
            f"{slot}*{map_cols}+{col}))")


def torch_index_label(tensor: str, channel: str, row: str, col: str) -> str:
    """The text tensor[0, channel, row - 1, col - 1]: how torch indexes the cell of 1-based (row, col)."""
    return f'="{tensor}[0, "&{channel}&", "&({row}-1)&", "&({col}-1)&"]"'


# -- The output-size table's formulas ---------------------------------------------------------------------------


def unrounded_out_size(h_in: str, kernel_size: str, stride: str, padding: str, dilation: str) -> str:
    """(H_in + 2p - d(k-1) - 1)/s + 1 before rounding; with d = 1 the lecture's (H_in + 2p - k)/s + 1."""
    return f"=({h_in}+2*{padding}-{dilation}*({kernel_size}-1)-1)/{stride}+1"


def pool_out_size(h_in: str, kernel_size: str, stride: str, padding: str, dilation: str, ceil_mode: str) -> str:
    """A pooling layer's output length, torch's rule: rounded down, or with ceil_mode rounded up but capped so
    that the last window starts inside the input or its left padding ((H_out - 1)*s <= H_in + p - 1).

    The cap is torch's "drop a last window that starts in the right padding" whenever the padding is at most
    half the kernel, which torch requires of pooling.
    """
    span = f"{h_in}+2*{padding}-{dilation}*({kernel_size}-1)-1"
    return (f"=IF({ceil_mode},MIN(INT(({span}+{stride}-1)/{stride}),INT(({h_in}+{padding}-1)/{stride}))+1,"
            f"INT(({span})/{stride})+1)")


# -- The convolution sheet's step-by-step panels ----------------------------------------------------------------


def all_of(criteria: Sequence[str]) -> str:
    """A conditional-format rule true where every one of the given rules is true (each with or without "=")."""
    return "=" + "*".join(f"({c[1:] if c.startswith('=') else c})" for c in criteria)


def picked(selector: str, n: int) -> str:
    """Conditional-format rule: is option n (1-based) the one typed in the selector cell?"""
    return f"=({selector}={n})"


def pool_tap(block: str, out_row: str, out_col: str, i: int, j: int, stride: tuple[int, int],
             padding: tuple[int, int], dilation: tuple[int, int], size: tuple[int, int] | None = None) -> str:
    """The map cell under pooling-window tap (i, j) for the picked pooled cell; with size = (H, W) of the map, a
    blank text "" where the tap falls on the padding or past the edge (MAX, SUM and AVERAGE skip text, as torch's
    max pooling never picks its -inf padding)."""
    r = f"({out_row}-1)*{stride[0]}+{1 + i * dilation[0] - padding[0]}"
    c = f"({out_col}-1)*{stride[1]}+{1 + j * dilation[1] - padding[1]}"
    tap = index(block, r, c)
    if size is None:
        return tap
    inside = f"({r}>=1)*({r}<={size[0]})*({c}>=1)*({c}<={size[1]})"
    return f'=IF({inside},{tap[1:]},"")'


def pool_divisor(out_pos: str, kernel_size: int, stride: int, padded_length: int) -> str:
    """avg_pool2d's count along one axis for the picked window (count_include_pad): the taps inside the padded
    input, MIN(k, H + 2p - (pos - 1)*s); ceil_mode's last window may hang past the padding."""
    return f"MIN({kernel_size},{padded_length}-({out_pos}-1)*{stride})"


def mean_over(cells: Sequence[str], divisor: str) -> str:
    """SUM of cells divided by a count that is itself an expression (avg pooling that counts the padding)."""
    return f"=SUM({','.join(cells)})/({divisor})"


# -- The AlexNet trace: which max-pool cells one conv1 cell feeds -----------------------------------------------


def pool_first(pos: str, kernel_size: int, stride: int) -> str:
    """The first (1-based) output of a max pooling without padding whose window covers input position pos
    (1-based): the windows start at (q - 1)*stride + 1 and span kernel_size cells.

    The ceiling of (pos - kernel_size)/stride is taken as INT of a shifted quotient, never as -INT(-x): INT of a
    negative number floors in Excel and LibreOffice but truncates toward zero in HyperFormula, and where the
    quotient here is negative MAX(1, ...) gives 1 either way."""
    return f"=MAX(1,INT(({pos}-{kernel_size}+{stride - 1})/{stride})+1)"


def pool_last(pos: str, stride: int, count: int) -> str:
    """The last (1-based) of those outputs, at most count (a last position that no window reaches gives a last
    output before the first)."""
    return f"=MIN({count},INT(({pos}-1)/{stride})+1)"


def in_span(top_row: int, left_col: int, first_row: str, last_row: str, first_col: str, last_col: str,
            extra: str | None = None) -> str:
    """Conditional-format rule: is this cell's (1-based, within the block whose first cell is at top_row,
    left_col) row from first_row to last_row and column from first_col to last_col?"""
    here_r, here_c = f"ROW()-{top_row}+1", f"COLUMN()-{left_col}+1"
    terms = [f"({here_r}>={first_row})", f"({here_r}<={last_row})", f"({here_c}>={first_col})",
             f"({here_c}<={last_col})"]
    if extra:
        terms.append(f"({extra})")
    return "=" + "*".join(terms)


def torch_span_label(tensor: str, channel: str, first_row: str, last_row: str, first_col: str, last_col: str) -> str:
    """The text tensor[0, channel, r0:r1, c0:c1]: torch's slice of the 1-based rows first_row..last_row and
    columns first_col..last_col."""
    return (f'="{tensor}[0, "&{channel}&", "&({first_row}-1)&":"&{last_row}&", "&({first_col}-1)&":"&{last_col}'
            f'&"]"')


# -- The dense head (flatten, linear, softmax, losses), its backward pass and one SGD step ----------------------


def dot(a: str, b: str, bias: str | None = None) -> str:
    """SUMPRODUCT of two ranges of the same shape (a row of weights and the input row), plus a bias."""
    return f"=SUMPRODUCT({a},{b})" + (f"+{bias}" if bias else "")


def _exp_sum(block: str, cells: Sequence[str]) -> str:
    # EXP written out per cell: Gnumeric does not evaluate EXP of a range inside SUMPRODUCT as an array.
    return "+".join(f"EXP({c}-MAX({block}))" for c in cells)


def softmax(cell: str, block: str, cells: Sequence[str]) -> str:
    """One softmax cell: EXP(x - max) over the sum of EXP(each - max) of the block's cells; subtracting the max
    keeps EXP finite."""
    return f"=EXP({cell}-MAX({block}))/({_exp_sum(block, cells)})"


def cross_entropy(block: str, cells: Sequence[str], target_at: str) -> str:
    """F.cross_entropy of logits: log-sum-exp (max subtracted, then added back) minus the target's logit;
    target_at is the expression of INDEX's position arguments ("t+1,1" or "1,t+1")."""
    return f"=LN({_exp_sum(block, cells)})+MAX({block})-INDEX({block},{target_at})"


def mse(pairs: Sequence[tuple[str, str]], divisor: int) -> str:
    """F.mse_loss: the squared differences of each (output, target) range pair summed (SUMXMY2), over divisor
    (1: reduction "sum")."""
    total_ = "+".join(f"SUMXMY2({y},{t})" for y, t in pairs)
    return f"=({total_})/{divisor}" if divisor != 1 else f"={total_}"


def squared_error(pairs: Sequence[tuple[str, str]], divisor: int) -> str:
    """F.mse_loss cell by cell: the squared difference of each (output, target) cell pair, summed, over divisor (for
    an output and target of different shapes, such as a row of probabilities and a column of targets)."""
    total_ = "+".join(f"({y}-{t})^2" for y, t in pairs)
    return f"=({total_})/{divisor}" if divisor != 1 else f"={total_}"


def predicted_class(cells: str) -> str:
    """The 0-based position of the largest value (the first when several tie), as torch's argmax."""
    return f"=MATCH(MAX({cells}),{cells},0)-1"


def one_hot(index: str, target: str) -> str:
    """1 where the class index equals the target, else 0."""
    return f"=IF({index}={target},1,0)"


def minus(a: str, b: str) -> str:
    """a minus b."""
    return f"={a}-{b}"


def mse_grad(y: str, t: str, divisor: int) -> str:
    """dL/dy of F.mse_loss: 2 (y - t) / n (n = 1 for reduction "sum")."""
    return f"=2*({y}-{t})/{divisor}"


def softmax_grad(p: str, g: str, ps: str, gs: str) -> str:
    """dL/dx through softmax: p (g - SUMPRODUCT(g, p))."""
    return f"={p}*({g}-SUMPRODUCT({gs},{ps}))"


def relu_grad(out: str, grad: str) -> str:
    """dL/dx through ReLU: the gradient where the ReLU's output is positive, else 0 (torch's mask)."""
    return f"=({out}>0)*{grad}"


def max_route(x: str, pooled: str, earlier: Sequence[str], grad: str) -> str:
    """One window's share of dL/dx for one input cell of max pooling (no "="): the window's gradient if the cell is
    its maximum and no cell before it in row-major window order equals it (torch gives ties to the first)."""
    return "*".join([f"({x}={pooled})", *(f"({e}<{pooled})" for e in earlier), grad])


def sum_of(terms: Sequence[str]) -> str:
    """Terms added up (0 when there are none)."""
    return "=" + ("+".join(terms) if terms else "0")


def sgd_step(w: str, lr: str, grad: str) -> str:
    """One step of SGD: w - lr x dL/dw."""
    return f"={w}-{lr}*{grad}"
