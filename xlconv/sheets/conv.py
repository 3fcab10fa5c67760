"""The convolution worksheet: input and kernel grids, then one band per op, each with live formulas."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import (
    COL_WIDTH,
    COLOURS,
    GRID_ROW_HEIGHT,
    Book,
    check_formula,
    num_format,
)
from xlconv.cells import MAX_COLS, MAX_ROWS, Grid, a1
from xlconv.errors import SpecError
from xlconv.spec import Conv, ConvSheetSpec, Pool, Relu

NOTE_COLUMNS = 24
LABEL_ROWS = 2  # block label, then channel label
# Diverging around 0 (blue negative, red positive); the ends sit at percentiles so that a few
# extreme cells (a padding ring, a bright spot) do not wash out the rest of the map.
DIVERGING = dict(type="3_color_scale", min_type="percentile", min_value=2, min_color="#5A8AC6",
                 mid_type="num", mid_value=0, mid_color="#FFFFFF",
                 max_type="percentile", max_value=98, max_color="#F8696B")
POSITIVE = dict(type="2_color_scale", min_type="num", min_value=0, min_color="#FFFFFF",
                max_type="percentile", max_value=98, max_color="#F8696B")
NEGATIVE = dict(type="2_color_scale", min_type="percentile", min_value=2, min_color="#5A8AC6",
                max_type="num", max_value=0, max_color="#FFFFFF")
# Booleans as words in every program (LibreOffice would print a boolean under "0" as 0).
BOOLEAN_FORMAT = '"TRUE";"TRUE";"FALSE"'
GRAYSCALE = dict(type="2_color_scale", min_color="#000000", max_color="#FFFFFF")
# "worksheet": the live sheet `xlconv build` makes. "key" and "student": an exercise's answer key and the
# student's workbook, laid out cell for cell alike; the student's has blank answer cells where the key has formulas.
MODES = ("worksheet", "key", "student")
EXERCISE_INFO_ROW = 3  # student id and variant (left), live score (right)
DEFAULT_TOLERANCE = 0.005  # largest accepted |typed answer - right answer|: right to 2 decimal places


@dataclass
class Placed:
    """A block laid out on the sheet: its grids (one per channel) and its values at build time."""

    name: str
    grids: list[Grid]
    values: np.ndarray  # (C, H, W)
    picture: bool = False  # 0-255 pixels, drawn in grayscale


def compute(spec: ConvSheetSpec) -> dict[str, np.ndarray]:
    """Values of every grid and op output, by the NumPy reference."""
    values = {g.name: g.values for g in spec.grids}
    for op in spec.ops:
        values[op.name] = apply(op, values, spec)
    return values


def apply(op, values: dict[str, np.ndarray], spec: ConvSheetSpec) -> np.ndarray:
    """NumPy output of one op given the values of its inputs."""
    x = values[op.input]
    if isinstance(op, Conv):
        w = np.stack([values[n] for n in op.weight])
        return ref.conv2d(x, w, op.bias, op.stride, op.padding, op.dilation)
    if isinstance(op, Pool):
        if op.mode == "max":
            return ref.max_pool2d(x, op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode)
        return ref.avg_pool2d(x, op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad)
    return ref.relu(x)


class ConvSheet:
    """Lays out and writes one convolution worksheet into a Book."""

    def __init__(self, book: Book, spec: ConvSheetSpec, values: dict[str, np.ndarray] | None = None,
                 mode: str = "worksheet", self_check: bool = True, tolerance: float = DEFAULT_TOLERANCE,
                 info: str = ""):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.book, self.spec = book, spec
        self.values = values if values is not None else compute(spec)
        self.ws = book.wb.add_worksheet(spec.sheet)
        self.placed: dict[str, Placed] = {}
        self.row = 0
        self.max_col = NOTE_COLUMNS
        self.grid_rows: set[int] = set()
        self.mode, self.tolerance, self.info = mode, tolerance, info
        self.exercise = mode != "worksheet"
        self.checking = self.exercise and self_check  # a live check grid beside each answer grid, and a score
        self.checks: list[Grid] = []
        self._ops = {op.name: op for op in spec.ops}
        self._conv_ctx: dict[str, tuple] = {}
        self._exprs: dict[tuple, str] = {}

    # -- layout helpers -------------------------------------------------------------------------

    def _slot(self, label: str, width: int) -> int:
        """Columns a block takes, wide enough that its label is not cut by the next one."""
        return max(width, math.ceil(len(label) / 6.0)) + 1

    def _check_fits(self, grid: Grid, where: str):
        if not grid.fits():
            raise SpecError(f"{self.spec.path}: {where} does not fit a worksheet: it would reach cell "
                            f"{a1(min(grid.bottom, MAX_ROWS - 1), min(grid.right, MAX_COLS - 1))} past Excel's "
                            f"{MAX_ROWS:,} rows x {MAX_COLS:,} columns")

    def _label(self, row: int, col: int, text: str, bold: bool = True):
        self.ws.write_string(row, col, text, self.book.fmt(bold=bold, font_size=10))

    def _write_grid(self, grid: Grid, role: str, values: np.ndarray, formula=None, fmt=None):
        """Write a grid of constants, or of formulas formula(i, j) with their NumPy values cached."""
        fmt = fmt or self.book.cell_fmt(role, num_format(values))
        for i in range(grid.height):
            self.grid_rows.add(grid.top + i)
            for j in range(grid.width):
                r, c = grid.top + i, grid.left + j
                v = float(values[i, j])
                if formula is None:
                    self.ws.write_number(r, c, v, fmt)
                else:
                    self.ws.write_formula(r, c, check_formula(formula(i, j), f"{self.spec.path}: {self.spec.sheet}!"
                                                              f"{a1(r, c)}"), fmt, _cached(v))
        self.max_col = max(self.max_col, grid.right)

    def _band(self, blocks: list[tuple[str, list[str], tuple[int, int]]], start_col: int = 1) -> list[list[Grid]]:
        """Place blocks (label, channel labels, (h, w)) side by side below the cursor."""
        top = self.row + LABEL_ROWS
        col = start_col
        out = []
        for label, channel_labels, (h, w) in blocks:
            self._label(self.row, col, label)
            grids = []
            for k, cl in enumerate(channel_labels):
                g = Grid(top, col, h, w)
                self._check_fits(g, f"{label}")
                if cl:
                    self._label(self.row + 1, col, cl, bold=False)
                grids.append(g)
                col += self._slot(cl, w)
            col = max(col, grids[0].left + self._slot(label, 0)) + 1
            out.append(grids)
        height = max(h for _, _, (h, _w) in blocks)
        self.row = top + height + 1
        return out

    # -- sheet parts ----------------------------------------------------------------------------

    def build(self):
        """Write the whole sheet."""
        self._header()
        self._inputs()
        for op in self.spec.ops:
            if isinstance(op, Conv):
                self._conv(op)
            elif isinstance(op, Pool):
                self._pool(op)
            else:
                self._relu(op)
        self._finish()

    def _header(self):
        s, b = self.spec, self.book
        title = s.title + {"worksheet": "", "key": " (answer key)", "student": " (exercise)"}[self.mode]
        self.ws.write_string(0, 1, title, b.fmt(bold=True, font_size=16))
        note = (s.note + " torch's Conv2d computes a cross-correlation: the kernel slides without being flipped. "
                "Every output cell is a live formula (click one to read it); change any typed cell and everything "
                "downstream follows. The size tables are live too, but the maps keep their layout: rebuild with "
                "xlconv to change stride, padding or dilation.")
        if self.exercise:
            note = self._exercise_note()
        lines = max(2, math.ceil(len(note) / (NOTE_COLUMNS * 7.5)) + 1)
        self.ws.merge_range(1, 1, 1, NOTE_COLUMNS, note, b.fmt(text_wrap=True, valign="top", font_size=10))
        self.ws.set_row(1, 14 * lines)
        legend = [("input", "input (typed)"), ("kernel", "kernel (typed)"), ("bias", "bias (typed)"),
                  ("padding", "padding (zeros)"), ("output", "output (formula)"), ("param", "parameter"),
                  ("pick", "you type here")]
        if self.exercise:
            legend[4] = ("answer", "answer (formula)" if self.mode == "key" else "answer: type it here")
            legend.pop()
        col = 1
        for role, text in legend:
            self.ws.merge_range(2, col, 2, col + 2, text, b.cell_fmt(role, "@", font_size=9))
            col += 3
        if self.exercise:
            self.ws.set_row(EXERCISE_INFO_ROW, 24)
            if self.info:
                self.ws.write_string(EXERCISE_INFO_ROW, 1, self.info, b.fmt(bold=True, font_size=10, valign="vcenter"))
        self.row = 4

    def _exercise_note(self) -> str:
        s, tol = self.spec, f"{self.tolerance:g}"
        text = (s.exercise_note or s.note) + " torch's Conv2d is a cross-correlation: the kernel slides without " \
            "being flipped. "
        if self.mode == "key":
            text += ("ANSWER KEY: the yellow answer cells hold the live formulas where the student's workbook has "
                     "blank answer cells; the layout is the same cell for cell.")
        else:
            text += (f"Type the value of every cell of each yellow answer grid (a number such as 3, -1 or 0.25; "
                     f"answers within {tol} of the right value count). The inputs and kernels are protected "
                     f"(no password) so they cannot be changed by accident; changed inputs are flagged when graded.")
        if self.checking:
            text += (f" The grid beside each answer grid shows {fx.CHECK_RIGHT} or {fx.CHECK_WRONG} as you type "
                     f"(? for text), and the score at the top counts the ticks. Those checks recompute the answer "
                     f"from the inputs, so their formulas show how: that is what a self-check is.")
        return text

    def _inputs(self):
        self._label(self.row, 1, "Inputs and kernels: typed numbers, change any of them", bold=True)
        self.row += 1
        used_as_kernel = {w for op in self.spec.ops if isinstance(op, Conv) for w in op.weight}
        blocks, grids = [], []
        for g in self.spec.grids:
            c, h, w = g.values.shape
            label = f"{g.label} ({'x'.join(map(str, g.values.shape if c > 1 else (h, w)))})"
            blocks.append((label, _channel_labels(c), (h, w)))
            grids.append(g)
        for g, placed in zip(grids, self._band(blocks)):
            role = "kernel" if g.name in used_as_kernel else "input"
            for k, grid in enumerate(placed):
                self._write_grid(grid, role, g.values[k])
                if g.colour_scale == "gray":
                    self._picture(grid)
            self.placed[g.name] = Placed(g.name, placed, g.values, g.colour_scale == "gray")
            self.book.record(g.name, role, self.spec.sheet, placed, label=g.label, source=g.source,
                             exercise=list(g.exercise) if g.exercise else None)

    def _heatmap(self, grid: Grid, values: np.ndarray):
        """Colour a feature map so that 0 is white, positive red and negative blue."""
        # A 3-colour scale pins 0 to white only when the map has both signs; a one-signed map
        # (after ReLU, or a 0/1 image) would paint its zeros blue, so it gets white-to-red instead.
        if values.min() >= 0:
            rule = POSITIVE
        elif values.max() <= 0:
            rule = NEGATIVE
        else:
            rule = DIVERGING
        self.ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right, rule)

    def _picture(self, grid: Grid):
        """Draw a grid of 0-255 pixels as the grayscale picture it is."""
        ws = self.ws
        ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right,
                              dict(GRAYSCALE, min_type="num", min_value=0, max_type="num", max_value=255))
        # White digits where the picture is dark, so the numbers stay readable.
        ws.conditional_format(grid.top, grid.left, grid.bottom, grid.right,
                              dict(type="cell", criteria="<", value=110, format=self.book.fmt(font_color="#FFFFFF")))

    def _op_title(self, op, text: str):
        self.ws.write_string(self.row, 1, f"{op.label}   =   {text}", self.book.fmt(bold=True, font_size=12,
                                                                                   font_color="#1F4E79"))
        self.row += 1

    def _conv(self, op: Conv):
        spec, book = self.spec, self.book
        src = self.placed[op.input]
        c_in = len(src.grids)
        kh, kw = spec.grid(op.weight[0]).values.shape[1:]
        weights = ", ".join(op.weight)
        bias_txt = "None" if op.bias is None else f"{op.name}_bias"
        self._op_title(op, f"F.conv2d({op.input}, weight=[{weights}], bias={bias_txt}, stride={_t(op.stride)}, "
                           f"padding={_t(op.padding)}, dilation={_t(op.dilation)})")
        blocks, kinds = [], []
        padded_vals = ref.pad(src.values, op.padding)
        if op.padding != (0, 0):
            blocks.append((f"{op.input} padded by {_t(op.padding)}", _channel_labels(c_in), padded_vals.shape[1:]))
            kinds.append("padded")
        dil_vals = {}
        if op.dilation != (1, 1):
            for wname in op.weight:
                dil_vals[wname] = ref.dilate_kernel(self.values[wname], op.dilation)
                blocks.append((f"{wname} dilated by {_t(op.dilation)}", _channel_labels(c_in),
                               dil_vals[wname].shape[1:]))
                kinds.append(("dilated", wname))
        if op.bias is not None:
            blocks.append(("bias", [""] * len(op.weight), (1, 1)))
            kinds.append("bias")
        out_vals = self.values[op.name]
        o, oh, ow = out_vals.shape
        blocks.append((f"output {o}x{oh}x{ow}" if o > 1 else f"output {oh}x{ow}",
                       [spec.grid(w).label for w in op.weight] if o > 1 else [""], (oh, ow)))
        kinds.append("output")
        if self.checking:
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}",
                           [spec.grid(w).label for w in op.weight] if o > 1 else [""], (oh, ow)))
            kinds.append("check")
        placed = dict(zip([k if isinstance(k, str) else f"dil:{k[1]}" for k in kinds], self._band(blocks)))

        window_src = src
        if "padded" in placed:
            grids = placed["padded"]
            ph, pw = op.padding
            for k, g in enumerate(grids):
                inner = src.grids[k]
                vals = padded_vals[k]
                pad_fmt = book.cell_fmt("padding", num_format(vals))
                in_fmt = book.cell_fmt("input", num_format(vals))
                for i in range(g.height):
                    self.grid_rows.add(g.top + i)
                    for j in range(g.width):
                        ii, jj = i - ph, j - pw
                        if 0 <= ii < inner.height and 0 <= jj < inner.width:
                            self.ws.write_formula(g.top + i, g.left + j, fx.copy(inner.cell(ii, jj)), in_fmt,
                                                  _cached(vals[i, j]))
                        else:
                            self.ws.write_number(g.top + i, g.left + j, 0, pad_fmt)
                self.max_col = max(self.max_col, g.right)
                if src.picture:
                    self._picture(g.window(ph, pw, inner.height, inner.width))
            window_src = Placed(f"{op.name}_padded", grids, padded_vals)
            self.book.record(window_src.name, "padded", spec.sheet, grids, input=op.input, padding=list(op.padding))
        kernels: dict[str, list[Grid]] = {}
        for wname in op.weight:
            if f"dil:{wname}" in placed:
                grids = placed[f"dil:{wname}"]
                raw = self.placed[wname].grids
                dh, dw = op.dilation
                for k, g in enumerate(grids):
                    vals = dil_vals[wname][k]
                    self._write_grid(g, "kernel", vals,
                                     lambda i, j, k=k: fx.copy(raw[k].cell(i // dh, j // dw))
                                     if i % dh == 0 and j % dw == 0 else "=0")
                name = f"{op.name}_{wname}_dilated"
                self.book.record(name, "dilated", spec.sheet, grids, input=wname, dilation=list(op.dilation))
                kernels[wname] = grids
            else:
                kernels[wname] = self.placed[wname].grids
        bias_cells = placed.get("bias")
        if bias_cells:
            bias_fmt = book.cell_fmt("bias", num_format(np.array(op.bias)))
            for value, g in zip(op.bias, bias_cells):
                self._write_grid(g, "bias", np.array([[value]]), fmt=bias_fmt)
            self.book.record(f"{op.name}_bias", "bias", spec.sheet, bias_cells)
        eh, ew = kernels[op.weight[0]][0].height, kernels[op.weight[0]][0].width
        out_grids = placed["output"]
        out_fmt = book.cell_fmt("output", num_format(out_vals))
        self._conv_ctx[op.name] = (window_src, kernels, bias_cells, eh, ew)
        for oc, g in enumerate(out_grids):
            kgrids = kernels[op.weight[oc]]
            bias_ref = bias_cells[oc].cell(0, 0, absolute=True) if bias_cells else None

            def formula(i, j, kgrids=kgrids, bias_ref=bias_ref):
                r0, c0 = i * op.stride[0], j * op.stride[1]
                wins = [wg.window(r0, c0, eh, ew).ref() for wg in window_src.grids]
                return fx.conv(wins, [kg.ref(absolute=True) for kg in kgrids], bias_ref)

            if self.exercise:
                self._answer(op, oc, g, out_vals[oc], formula, placed.get("check"))
                continue
            self._write_grid(g, "output", out_vals[oc], formula, out_fmt)
            self._heatmap(g, out_vals)
        info = dict(op="conv", input=op.input, weight=list(op.weight), bias=f"{op.name}_bias" if op.bias else None,
                    stride=list(op.stride), padding=list(op.padding), dilation=list(op.dilation), label=op.label)
        self.book.record(op.name, self._output_role, spec.sheet, out_grids, **info)
        self._record_checks(op, placed.get("check"))
        self.placed[op.name] = Placed(op.name, out_grids, out_vals)
        right = (placed.get("check") or out_grids)[-1].right
        self._size_table(op, src, out_grids, kernel=(kh, kw), top=out_grids[0].top,
                         left=right + 2, kernel_grid=self.placed[op.weight[0]].grids[0])
        if not self.exercise:  # the trace panel computes answers: not on exercise sheets
            self._trace(op, window_src, kernels, bias_cells, out_grids)

    def _pool(self, op: Pool):
        src = self.placed[op.input]
        out_vals = self.values[op.name]
        c, oh, ow = out_vals.shape
        self._op_title(op, f"F.{op.mode}_pool2d({op.input}, kernel_size={_t(op.kernel_size)}, stride={_t(op.stride)}, "
                           f"padding={_t(op.padding)}" + (f", dilation={_t(op.dilation)}" if op.mode == "max" else "")
                       + f", ceil_mode={op.ceil_mode})")
        label = f"{op.mode} pooled {c}x{oh}x{ow}" if c > 1 else f"{op.mode} pooled {oh}x{ow}"
        blocks = [(label, _channel_labels(c), (oh, ow))]
        if self.checking:
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", _channel_labels(c), (oh, ow)))
        grids, *checks = self._band(blocks)
        fmt = self.book.cell_fmt("output", num_format(out_vals) if op.mode == "max" else "0.00")
        for k, g in enumerate(grids):
            sg = src.grids[k]

            def formula(i, j, sg=sg):
                return "=" + self._pool_formula(op, i, j, lambda rows, cols: (
                    [sg.window(rows[0], cols[0], len(rows), len(cols)).ref()] if op.dilation == (1, 1)
                    else [sg.cell(r, cc) for r in rows for cc in cols]))

            if self.exercise:
                self._answer(op, k, g, out_vals[k], formula, checks[0] if checks else None)
                continue
            self._write_grid(g, "output", out_vals[k], formula, fmt)
            self._heatmap(g, out_vals)
        self.placed[op.name] = Placed(op.name, grids, out_vals)
        self.book.record(op.name, self._output_role, self.spec.sheet, grids, op=f"{op.mode}_pool", input=op.input,
                         kernel_size=list(op.kernel_size), stride=list(op.stride), padding=list(op.padding),
                         dilation=list(op.dilation), ceil_mode=op.ceil_mode, count_include_pad=op.count_include_pad,
                         label=op.label)
        self._record_checks(op, checks[0] if checks else None)
        right = (checks[0] if checks else grids)[-1].right
        self._size_table(op, src, grids, kernel=op.kernel_size, top=grids[0].top, left=right + 2)

    def _pool_formula(self, op: Pool, i: int, j: int, cells_of) -> str:
        """One pooling cell without its "=": cells_of(rows, cols) names the input cells of the window."""
        _, h, w = self.values[op.input].shape
        rows, nh = ref.pool_bounds(i, h, op.kernel_size[0], op.stride[0], op.padding[0], op.dilation[0])
        cols, nw = ref.pool_bounds(j, w, op.kernel_size[1], op.stride[1], op.padding[1], op.dilation[1])
        cells = cells_of(rows, cols)
        divisor = None
        if op.mode == "avg":
            n = nh * nw if op.count_include_pad else len(rows) * len(cols)
            divisor = None if n == len(rows) * len(cols) else n
        return fx.pool(op.mode, cells, divisor)[1:]

    def _relu(self, op: Relu):
        src = self.placed[op.input]
        out_vals = self.values[op.name]
        c, h, w = out_vals.shape
        self._op_title(op, f"F.relu({op.input}) = MAX(0, x) per cell")
        blocks = [(f"ReLU {c}x{h}x{w}" if c > 1 else f"ReLU {h}x{w}", _channel_labels(c), (h, w))]
        if self.checking:
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", _channel_labels(c), (h, w)))
        grids, *checks = self._band(blocks)
        fmt = self.book.cell_fmt("output", num_format(out_vals))
        for k, g in enumerate(grids):
            if self.exercise:
                self._answer(op, k, g, out_vals[k], lambda i, j, sg=src.grids[k]: fx.relu(sg.cell(i, j)),
                             checks[0] if checks else None)
                continue
            self._write_grid(g, "output", out_vals[k], lambda i, j, sg=src.grids[k]: fx.relu(sg.cell(i, j)), fmt)
            self._heatmap(g, out_vals)
        self.placed[op.name] = Placed(op.name, grids, out_vals)
        self.book.record(op.name, self._output_role, self.spec.sheet, grids, op="relu", input=op.input,
                         label=op.label)
        self._record_checks(op, checks[0] if checks else None)

    # -- exercise sheets ------------------------------------------------------------------------

    @property
    def _output_role(self) -> str:
        return "answer" if self.mode == "student" else "output"

    def _answer(self, op, k: int, g: Grid, values: np.ndarray, formula, checks: list[Grid] | None):
        """One channel of an answer grid: the key's formulas, or the student's blank unlocked cells; and its checks."""
        b, ws = self.book, self.ws
        if self.mode == "key":
            self._write_grid(g, "answer", values, formula, b.cell_fmt("answer", num_format(values), bold=True))
        else:
            fmt = b.cell_fmt("answer", "General", bold=True, locked=False)
            for i in range(g.height):
                self.grid_rows.add(g.top + i)
                for j in range(g.width):
                    ws.write_blank(g.top + i, g.left + j, None, fmt)
            self.max_col = max(self.max_col, g.right)
        if checks is None:
            return
        cg = checks[k]
        check_fmt = b.cell_fmt("check", "@", bold=True, font_size=12)
        cached = fx.CHECK_RIGHT if self.mode == "key" else ""
        for i in range(g.height):
            self.grid_rows.add(cg.top + i)
            for j in range(g.width):
                r, c = cg.top + i, cg.left + j
                where = (f"{self.spec.path}: {self.spec.sheet}!{a1(r, c)} (the self-check of {op.name}; "
                         f"make the exercise with --no-self-check)")
                f = fx.answer_check(g.cell(i, j), self._expr(op.name, k, i, j), self.tolerance + CHECK_SLACK)
                ws.write_formula(r, c, check_formula(f, where), check_fmt, cached)
        self.max_col = max(self.max_col, cg.right)
        self.checks.append(cg)
        fills = ((fx.CHECK_RIGHT, "#C6EFCE", "#006100"), (fx.CHECK_WRONG, "#FFC7CE", "#9C0006"),
                 (fx.CHECK_NOT_A_NUMBER, "#FFEB9C", "#9C5700"))
        for mark, fill, font in fills:
            look = b.fmt(bg_color=fill, font_color=font)
            ws.conditional_format(cg.top, cg.left, cg.bottom, cg.right,
                                  dict(type="cell", criteria="==", value=f'"{mark}"', format=look))
            ws.conditional_format(g.top, g.left, g.bottom, g.right,
                                  dict(type="formula", criteria=f'={cg.cell(0, 0)}="{mark}"', format=look))

    def _record_checks(self, op, checks: list[Grid] | None):
        if checks:
            self.book.record(f"{op.name}_check", "check", self.spec.sheet, checks, output=op.name)

    def _expr(self, name: str, k: int, i: int, j: int) -> str:
        """Cell (k, i, j) of a grid or op as an expression of the typed input cells only (for self-checks)."""
        key = (name, k, i, j)
        if key not in self._exprs:
            op = self._ops.get(name)
            if op is None:
                e = self.placed[name].grids[k].cell(i, j, absolute=True)
            elif isinstance(op, Conv):
                e = self._conv_expr(op, k, i, j)
            elif isinstance(op, Pool):
                e = self._pool_formula(op, i, j, lambda rows, cols: [self._expr(op.input, k, r, c)
                                                                     for r in rows for c in cols])
            else:
                e = f"MAX(0,{self._expr(op.input, k, i, j)})"
            self._exprs[key] = e
        return self._exprs[key]

    def _conv_expr(self, op: Conv, oc: int, i: int, j: int) -> str:
        window_src, kernels, bias_cells, eh, ew = self._conv_ctx[op.name]
        bias = bias_cells[oc].cell(0, 0, absolute=True) if bias_cells else None
        if op.input not in self._ops:  # the window lies on typed (or padded copies of typed) cells
            r0, c0 = i * op.stride[0], j * op.stride[1]
            wins = [wg.window(r0, c0, eh, ew).ref(absolute=True) for wg in window_src.grids]
            return fx.conv(wins, [kg.ref(absolute=True) for kg in kernels[op.weight[oc]]], bias)[1:]
        # The input is another answer: expand it tap by tap, so the check never trusts the student's cells.
        c_in, h, w = self.values[op.input].shape
        raw = self.placed[op.weight[oc]].grids
        kh, kw = raw[0].height, raw[0].width
        terms = []
        for c in range(c_in):
            for a in range(kh):
                for bb in range(kw):
                    ii = i * op.stride[0] + a * op.dilation[0] - op.padding[0]
                    jj = j * op.stride[1] + bb * op.dilation[1] - op.padding[1]
                    if 0 <= ii < h and 0 <= jj < w:
                        terms.append(f"{raw[c].cell(a, bb, absolute=True)}*({self._expr(op.input, c, ii, jj)})")
        if bias:
            terms.append(bias)
        return "+".join(terms) or "0"

    def _size_table(self, op, src: Placed, out_grids: list[Grid], kernel, top: int, left: int,
                    kernel_grid: Grid | None = None):
        """Output height and width as live formulas of the input size, kernel, stride, padding, dilation."""
        b, ws = self.book, self.ws
        first, last = src.grids[0].cell(0, 0), src.grids[0].cell(src.grids[0].height - 1, src.grids[0].width - 1)
        label_fmt = b.fmt(font_size=9, align="right", valign="vcenter")
        head_fmt = b.fmt(bold=True, font_size=9, align="center")
        param = b.cell_fmt("param", "0")
        ws.write_string(top - 1, left, "output size (live)", b.fmt(bold=True, font_size=9))
        ws.write_string(top, left + 3, "H", head_fmt)
        ws.write_string(top, left + 4, "W", head_fmt)
        cells: dict[str, tuple[str, str]] = {}
        pool = isinstance(op, Pool)
        entries = [("input size", "in"), ("kernel_size", "k"), ("stride", "s"), ("padding", "p"), ("dilation", "d")]
        if pool:
            entries.append(("ceil_mode", "ceil"))
        entries.append(("output size", "out"))
        _, h_in, w_in = src.values.shape
        for n, (text, key) in enumerate(entries, start=1):
            r = top + n
            ws.merge_range(r, left, r, left + 2, text, label_fmt)
            hw = []
            for axis in (0, 1):
                c = left + 3 + axis
                hw.append(a1(r, c))
                if key == "in":
                    f = fx.rows_of(first, last) if axis == 0 else fx.columns_of(first, last)
                    ws.write_formula(r, c, f, b.cell_fmt("input", "0"), (h_in, w_in)[axis])
                elif key == "k" and kernel_grid is not None:
                    kf, kl = kernel_grid.cell(0, 0), kernel_grid.cell(kernel_grid.height - 1, kernel_grid.width - 1)
                    f = fx.rows_of(kf, kl) if axis == 0 else fx.columns_of(kf, kl)
                    ws.write_formula(r, c, f, b.cell_fmt("kernel", "0"), kernel[axis])
                elif key == "ceil":
                    ws.write_boolean(r, c, op.ceil_mode, b.cell_fmt("param", BOOLEAN_FORMAT))
                elif key == "out":
                    i, k, s, p, d = (cells[x][axis] for x in ("in", "k", "s", "p", "d"))
                    f = fx.out_size(i, k, s, p, d, cells["ceil"][axis] if pool else None)
                    ws.write_formula(r, c, f, b.cell_fmt("output", "0", bold=True),
                                     (out_grids[0].height, out_grids[0].width)[axis])
                else:
                    value = {"k": kernel, "s": op.stride, "p": op.padding, "d": op.dilation}[key][axis]
                    ws.write_number(r, c, value, param)
            cells[key] = (hw[0], hw[1])
        for axis, suffix in ((0, "h"), (1, "w")):
            self.book.record(f"{op.name}_size_{suffix}", "size", self.spec.sheet,
                             [Grid(top + n, left + 3 + axis, 1, 1) for n in range(1, len(entries) + 1)],
                             rows=[key for _, key in entries], output=op.name, axis=axis)
        self.grid_rows.update(range(top, top + len(entries) + 1))
        self.max_col = max(self.max_col, left + 4)
        self.row = max(self.row, top + len(entries) + 2)

    def _trace(self, op: Conv, window_src: Placed, kernels: dict[str, list[Grid]], bias_cells, out_grids):
        """Step-by-step panel: pick an output cell; see its window, the products, and their sum."""
        b, ws = self.book, self.ws
        c_in = len(window_src.grids)
        n_out = len(op.weight)
        eh, ew = kernels[op.weight[0]][0].height, kernels[op.weight[0]][0].width
        oh, ow = out_grids[0].height, out_grids[0].width
        ws.write_string(self.row, 1, f"Step by step for {op.name}: type an output cell's filter, row and column "
                                     f"(1-based); its window lights up in the input and the products below add up "
                                     f"to that output cell.", b.fmt(italic=True, font_size=10))
        self.row += 1
        pick_row = self.row
        pick_fmt = b.cell_fmt("pick", "0", bold=True, border=2, locked=False)
        picks, pick_grids = {}, []
        col = 1
        for key, limit in (("filter", n_out), ("row", oh), ("column", ow)):
            ws.merge_range(pick_row, col, pick_row, col + 1, key, b.fmt(align="right", font_size=10))
            ws.write_number(pick_row, col + 2, 1, pick_fmt)
            ws.data_validation(pick_row, col + 2, pick_row, col + 2,
                               dict(validate="integer", criteria="between", minimum=1, maximum=limit,
                                    input_title=f"{key}", input_message=f"1 to {limit}"))
            picks[key] = a1(pick_row, col + 2, absolute=True)
            pick_grids.append(Grid(pick_row, col + 2, 1, 1))
            col += 4
        self.grid_rows.add(pick_row)
        self.row += 2
        o_ref, r_ref, c_ref = picks["filter"], picks["row"], picks["column"]
        blocks = []
        for k in range(c_in):
            ch = f" ch {k}" if c_in > 1 else ""
            blocks += [(f"window{ch}", [""], (eh, ew)), (f"kernel{ch}", [""], (eh, ew)),
                       (f"products{ch}", [""], (eh, ew))]
        placed = self._band(blocks)
        sums = []
        win_vals = self.values[op.input]
        padded = ref.pad(win_vals, op.padding)
        kvals = ref.dilate_kernel(self.values[op.weight[0]], op.dilation)
        win0 = padded[:, 0:eh, 0:ew]
        for k in range(c_in):
            wg, kg, pg = placed[3 * k][0], placed[3 * k + 1][0], placed[3 * k + 2][0]
            src_abs = window_src.grids[k].ref(absolute=True)
            self._write_grid(wg, "input", win0[k],
                             lambda i, j: fx.window_tap(src_abs, r_ref, c_ref, i, j, op.stride, (1, 1)))
            self._write_grid(kg, "kernel", kvals[k],
                             lambda i, j: fx.choose(o_ref, [kernels[w][k].cell(i, j, absolute=True)
                                                            for w in op.weight]))
            self._write_grid(pg, "product", win0[k] * kvals[k],
                             lambda i, j: fx.product(wg.cell(i, j), kg.cell(i, j)))
            sums.append(pg)
            # Light up the window in the (padded) input the student reads it from.
            sgrid = window_src.grids[k]
            ws.conditional_format(sgrid.top, sgrid.left, sgrid.bottom, sgrid.right, dict(
                type="formula", criteria=fx.in_window(sgrid.top + 1, sgrid.left + 1, r_ref, c_ref, (eh, ew),
                                                      op.stride, (1, 1)),
                format=b.fmt(bg_color=COLOURS["pick"], bold=True, font_color="#9C0006")))
        for oc, g in enumerate(out_grids):
            ws.conditional_format(g.top, g.left, g.bottom, g.right, dict(
                type="formula", criteria=fx.is_cell(g.top + 1, g.left + 1, r_ref, c_ref, f"{o_ref}={oc + 1}"),
                format=b.fmt(bold=True, font_color="#9C0006", bg_color=COLOURS["pick"])))
        # The totals column, right of the last products grid.
        left = placed[-1][0].right + 2
        top = placed[0][0].top
        label_fmt = b.fmt(font_size=9, align="right", valign="vcenter")
        per_channel = [float((win0[k] * kvals[k]).sum()) for k in range(c_in)]
        bias_val = op.bias[0] if op.bias else 0.0
        total = sum(per_channel) + bias_val
        r = top
        sum_cells = []
        for k, pg in enumerate(sums):
            ws.merge_range(r, left, r, left + 2, f"sum of products ch {k}" if c_in > 1 else "sum of products",
                           label_fmt)
            ws.write_formula(r, left + 3, fx.total([pg.ref()]), b.cell_fmt("product", num_format(np.array(per_channel))),
                             _cached(per_channel[k]))
            sum_cells.append(a1(r, left + 3))
            r += 1
        if bias_cells:
            ws.merge_range(r, left, r, left + 2, "+ bias", label_fmt)
            ws.write_formula(r, left + 3, fx.choose(o_ref, [g.cell(0, 0, absolute=True) for g in bias_cells]),
                             b.cell_fmt("bias", num_format(np.array(op.bias))), _cached(bias_val))
            sum_cells.append(a1(r, left + 3))
            r += 1
        ws.merge_range(r, left, r, left + 2, "= total", label_fmt)
        total_ref = a1(r, left + 3)
        ws.write_formula(r, left + 3, fx.total(sum_cells), b.cell_fmt("output", num_format(np.array([total])),
                                                                      bold=True), _cached(total))
        r += 1
        ws.merge_range(r, left, r, left + 2, "output cell", label_fmt)
        chosen_ref = a1(r, left + 3)
        ws.write_formula(r, left + 3, fx.choose(o_ref, [fx.index(g.ref(absolute=True), r_ref, c_ref)[1:]
                                                        for g in out_grids]),
                         b.cell_fmt("output", num_format(np.array([total]))), _cached(self.values[op.name][0, 0, 0]))
        r += 1
        ws.merge_range(r, left, r, left + 2, "check", label_fmt)
        ws.write_formula(r, left + 3, fx.equal_check(total_ref, chosen_ref), b.fmt(bold=True, align="center"),
                         "= equal")
        for rr in range(top, r + 1):
            self.grid_rows.add(rr)
        self.book.record(f"{op.name}_trace", "trace", self.spec.sheet,
                         pick_grids + [Grid(r - 2, left + 3, 1, 1), Grid(r - 1, left + 3, 1, 1)],
                         output=op.name, cells=["filter", "row", "column", "total", "output"])
        self.max_col = max(self.max_col, left + 3)
        self.row = max(self.row, r + 2)

    def _finish(self):
        ws = self.ws
        if self.checking and self.checks:
            b, col = self.book, NOTE_COLUMNS - 5
            total = sum(g.height * g.width for g in self.checks)
            ws.merge_range(EXERCISE_INFO_ROW, col, EXERCISE_INFO_ROW, col + 2, "score (live)",
                           b.fmt(bold=True, align="right", valign="vcenter"))
            ws.write_formula(EXERCISE_INFO_ROW, col + 3, fx.count_right([g.ref() for g in self.checks]),
                             b.cell_fmt("output", "0", bold=True), total if self.mode == "key" else 0)
            ws.write_string(EXERCISE_INFO_ROW, col + 4, f"of {total}", b.fmt(bold=True, valign="vcenter"))
            self.book.record("_score", "score", self.spec.sheet, [Grid(EXERCISE_INFO_ROW, col + 3, 1, 1)], total=total)
        if self.mode == "student":
            # No password: this only keeps the inputs from being changed by accident.
            ws.protect("", {"select_locked_cells": True, "select_unlocked_cells": True, "format_columns": True,
                            "format_rows": True})
        ws.set_column(0, 0, 2)
        ws.set_column(1, self.max_col + 1, COL_WIDTH)
        for r in sorted(self.grid_rows):
            ws.set_row(r, GRID_ROW_HEIGHT)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)
        ws.hide_gridlines(2)


CHECK_SLACK = 1e-9  # so that an answer exactly at the tolerance counts, whatever the binary rounding


def _cached(v):
    """A cached value as XlsxWriter wants it (whole numbers without a trailing .0)."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _channel_labels(c: int) -> list[str]:
    return [f"channel {k}" for k in range(c)] if c > 1 else [""]


def _t(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def build_sheet(book: Book, spec: ConvSheetSpec, **exercise) -> ConvSheet:
    """Write the convolution worksheet for spec into book (exercise: mode, self_check, tolerance, info)."""
    sheet = ConvSheet(book, spec, **exercise)
    sheet.build()
    return sheet
