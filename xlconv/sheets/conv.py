"""The convolution worksheet: input and kernel grids, then one band per op (conv, ReLU, pooling), each with
live formulas; its panels (size tables, step by step) and exercise answer cells come from panels.py and
answers.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeAlias

import numpy as np
from xlsxwriter.format import Format

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import Book, check_formula
from xlconv.cells import MAX_COLS, MAX_ROWS, Grid, a1
from xlconv.errors import SpecError
from xlconv.model import Conv, ConvSheetSpec, GridSpec, Op, Pool, Relu, compute
from xlconv.sheets import answers, panels, style

NOTE_COLUMNS = 24
LABEL_ROWS = 2  # block label, then channel label
# "worksheet": the live sheet `xlconv build` makes. "key" and "student": an exercise's answer key and the
# student's workbook, laid out cell for cell alike; the student's has blank answer cells where the key has formulas.
MODES = ("worksheet", "key", "student")
EXERCISE_INFO_ROW = 3  # student id and variant (left), live score (right)
DEFAULT_TOLERANCE = 0.005  # largest accepted |typed answer - right answer|: right to 2 decimal places
Formula: TypeAlias = Callable[[int, int], str]
BandBlock: TypeAlias = tuple[str, Sequence[str], tuple[int, int]]  # label, channel labels, (height, width)


@dataclass
class Placed:
    """A block laid out on the sheet: its grids (one per channel) and its values at build time."""

    name: str
    grids: list[Grid]
    values: np.ndarray  # (C, H, W)
    picture: bool = False  # 0-255 pixels, drawn in grayscale


# What a conv's self-checks need of its band: the grids its windows slide over, its kernel grids by weight name,
# its bias cells (None: no bias) and the (dilated) kernel's height and width.
ConvContext: TypeAlias = tuple[Placed, dict[str, list[Grid]], list[Grid] | None, int, int]


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
        self.ops_by_name = {op.name: op for op in spec.ops}
        self.conv_ctx: dict[str, ConvContext] = {}
        self.exprs: dict[tuple[str, int, int, int], str] = {}  # (grid or op, channel, row, column) -> expression

    # -- layout helpers -------------------------------------------------------------------------

    def slot(self, label: str, width: int) -> int:
        """Columns a block takes, wide enough that its label is not cut by the next one."""
        return max(width, math.ceil(len(label) / 6.0)) + 1

    def check_fits(self, grid: Grid, where: str) -> None:
        """SpecError naming where when grid would reach past Excel's last row or column."""
        if not grid.fits():
            raise SpecError(f"{self.spec.path}: {where} does not fit a worksheet: it would reach cell "
                            f"{a1(min(grid.bottom, MAX_ROWS - 1), min(grid.right, MAX_COLS - 1))} past Excel's "
                            f"{MAX_ROWS:,} rows x {MAX_COLS:,} columns")

    def label(self, row: int, col: int, text: str, bold: bool = True) -> None:
        """A block's label in small type at (row, col)."""
        self.ws.write_string(row, col, text, self.book.fmt(bold=bold, font_size=10))

    def write_grid(self, grid: Grid, role: str, values: np.ndarray, formula: Formula | None = None,
                   fmt: Format | None = None) -> None:
        """Write a grid of constants, or of formulas formula(i, j) with their NumPy values cached."""
        fmt = fmt or style.cell(self.book, role, style.num_format(values))
        for i in range(grid.height):
            self.grid_rows.add(grid.top + i)
            for j in range(grid.width):
                r, c = grid.top + i, grid.left + j
                v = float(values[i, j])
                if formula is None:
                    self.ws.write_number(r, c, v, fmt)
                else:
                    self.ws.write_formula(r, c, check_formula(formula(i, j), f"{self.spec.path}: {self.spec.sheet}!"
                                                              f"{a1(r, c)}"), fmt, style.cached(v))
        self.max_col = max(self.max_col, grid.right)

    def band(self, blocks: Sequence[BandBlock], start_col: int = 1) -> list[list[Grid]]:
        """Place blocks (label, channel labels, (h, w)) side by side below the cursor."""
        top = self.row + LABEL_ROWS
        col = start_col
        out = []
        for label, channel_labels, (h, w) in blocks:
            self.label(self.row, col, label)
            grids = []
            for k, cl in enumerate(channel_labels):
                g = Grid(top, col, h, w)
                self.check_fits(g, f"{label}")
                if cl:
                    self.label(self.row + 1, col, cl, bold=False)
                grids.append(g)
                col += self.slot(cl, w)
            col = max(col, grids[0].left + self.slot(label, 0)) + 1
            out.append(grids)
        height = max(h for _, _, (h, _w) in blocks)
        self.row = top + height + 1
        return out

    # -- sheet parts ----------------------------------------------------------------------------

    def build(self) -> None:
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

    def _header(self) -> None:
        s, b = self.spec, self.book
        title = s.title + {"worksheet": "", "key": " (answer key)", "student": " (exercise)"}[self.mode]
        self.ws.write_string(0, 1, title, b.fmt(bold=True, font_size=16))
        note = (s.note + " torch's Conv2d computes a cross-correlation: the kernel slides without being flipped. "
                "Every output cell is a live formula (click one to read it); change any typed cell and everything "
                "downstream follows. The size tables are live too, but the maps keep their layout: rebuild with "
                "xlconv to change stride, padding or dilation.")
        if self.exercise:
            note = answers.exercise_note(self)
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
            self.ws.merge_range(2, col, 2, col + 2, text, style.cell(b, role, "@", font_size=9))
            col += 3
        if self.exercise:
            self.ws.set_row(EXERCISE_INFO_ROW, 24)
            if self.info:
                self.ws.write_string(EXERCISE_INFO_ROW, 1, self.info, b.fmt(bold=True, font_size=10, valign="vcenter"))
        self.row = 4

    def _inputs(self) -> None:
        self.label(self.row, 1, "Inputs and kernels: typed numbers, change any of them", bold=True)
        self.row += 1
        used_as_kernel = {w for op in self.spec.ops if isinstance(op, Conv) for w in op.weight}
        blocks: list[BandBlock] = []
        grids: list[GridSpec] = []
        for g in self.spec.grids:
            c, h, w = g.values.shape
            label = f"{g.label} ({'x'.join(map(str, g.values.shape if c > 1 else (h, w)))})"
            blocks.append((label, channel_labels(c), (h, w)))
            grids.append(g)
        for g, placed in zip(grids, self.band(blocks)):
            role = "kernel" if g.name in used_as_kernel else "input"
            for k, grid in enumerate(placed):
                self.write_grid(grid, role, g.values[k])
                if g.colour_scale == "gray":
                    style.picture(self.book, self.ws, grid)
            self.placed[g.name] = Placed(g.name, placed, g.values, g.colour_scale == "gray")
            self.book.record(g.name, role, self.spec.sheet, placed, label=g.label, source=g.source,
                             exercise=list(g.exercise) if g.exercise else None)

    def op_title(self, op: Op, text: str) -> None:
        """The op's heading line (its label = the torch call it mirrors); moves the cursor down a row."""
        self.ws.write_string(self.row, 1, f"{op.label}   =   {text}", self.book.fmt(bold=True, font_size=12,
                                                                                   font_color="#1F4E79"))
        self.row += 1

    def _conv(self, op: Conv) -> None:
        spec, book = self.spec, self.book
        src = self.placed[op.input]
        c_in = len(src.grids)
        kh, kw = spec.grid(op.weight[0]).values.shape[1:]
        weights = ", ".join(op.weight)
        bias_txt = "None" if op.bias is None else f"{op.name}_bias"
        self.op_title(op, f"F.conv2d({op.input}, weight=[{weights}], bias={bias_txt}, stride={torch_arg(op.stride)}, "
                           f"padding={torch_arg(op.padding)}, dilation={torch_arg(op.dilation)})")
        blocks: list[BandBlock] = []
        kinds: list[str | tuple[str, str]] = []  # "padded", ("dilated", weight), "bias", "output", "check"
        padded_vals = ref.pad(src.values, op.padding)
        if op.padding != (0, 0):
            blocks.append((f"{op.input} padded by {torch_arg(op.padding)}", channel_labels(c_in), _hw(padded_vals)))
            kinds.append("padded")
        dil_vals: dict[str, np.ndarray] = {}
        if op.dilation != (1, 1):
            for wname in op.weight:
                dil_vals[wname] = ref.dilate_kernel(self.values[wname], op.dilation)
                blocks.append((f"{wname} dilated by {torch_arg(op.dilation)}", channel_labels(c_in),
                               _hw(dil_vals[wname])))
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
        placed = dict(zip([k if isinstance(k, str) else f"dil:{k[1]}" for k in kinds], self.band(blocks)))

        window_src = src
        if "padded" in placed:
            grids = placed["padded"]
            ph, pw = op.padding
            for k, g in enumerate(grids):
                inner = src.grids[k]
                vals = padded_vals[k]
                pad_fmt = style.cell(book, "padding", style.num_format(vals))
                in_fmt = style.cell(book, "input", style.num_format(vals))
                for i in range(g.height):
                    self.grid_rows.add(g.top + i)
                    for j in range(g.width):
                        ii, jj = i - ph, j - pw
                        if 0 <= ii < inner.height and 0 <= jj < inner.width:
                            self.ws.write_formula(g.top + i, g.left + j, fx.copy(inner.cell(ii, jj)), in_fmt,
                                                  style.cached(vals[i, j]))
                        else:
                            self.ws.write_number(g.top + i, g.left + j, 0, pad_fmt)
                self.max_col = max(self.max_col, g.right)
                if src.picture:
                    style.picture(self.book, self.ws, g.window(ph, pw, inner.height, inner.width))
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

                    def tap(i: int, j: int, k: int = k) -> str:
                        return fx.copy(raw[k].cell(i // dh, j // dw)) if i % dh == 0 and j % dw == 0 else "=0"

                    self.write_grid(g, "kernel", vals, tap)
                name = f"{op.name}_{wname}_dilated"
                self.book.record(name, "dilated", spec.sheet, grids, input=wname, dilation=list(op.dilation))
                kernels[wname] = grids
            else:
                kernels[wname] = self.placed[wname].grids
        bias_cells = placed.get("bias")
        if bias_cells:
            assert op.bias is not None, "the bias block is placed only for a conv with a bias"
            bias_fmt = style.cell(book, "bias", style.num_format(np.array(op.bias)))
            for value, g in zip(op.bias, bias_cells):
                self.write_grid(g, "bias", np.array([[value]]), fmt=bias_fmt)
            self.book.record(f"{op.name}_bias", "bias", spec.sheet, bias_cells)
        eh, ew = kernels[op.weight[0]][0].height, kernels[op.weight[0]][0].width
        out_grids = placed["output"]
        out_fmt = style.cell(book, "output", style.num_format(out_vals))
        self.conv_ctx[op.name] = (window_src, kernels, bias_cells, eh, ew)
        for oc, g in enumerate(out_grids):
            kgrids = kernels[op.weight[oc]]
            bias_ref = bias_cells[oc].cell(0, 0, absolute=True) if bias_cells else None

            def formula(i: int, j: int, kgrids: list[Grid] = kgrids, bias_ref: str | None = bias_ref) -> str:
                r0, c0 = i * op.stride[0], j * op.stride[1]
                wins = [wg.window(r0, c0, eh, ew).ref() for wg in window_src.grids]
                return fx.conv(wins, [kg.ref(absolute=True) for kg in kgrids], bias_ref)

            if self.exercise:
                answers.answer(self, op, oc, g, out_vals[oc], formula, placed.get("check"))
                continue
            self.write_grid(g, "output", out_vals[oc], formula, out_fmt)
            style.heatmap(self.ws, g, out_vals)
        info = dict(op="conv", input=op.input, weight=list(op.weight), bias=f"{op.name}_bias" if op.bias else None,
                    stride=list(op.stride), padding=list(op.padding), dilation=list(op.dilation), label=op.label)
        self.book.record(op.name, self.output_role, spec.sheet, out_grids, **info)
        answers.record_checks(self, op, placed.get("check"))
        self.placed[op.name] = Placed(op.name, out_grids, out_vals)
        right = (placed.get("check") or out_grids)[-1].right
        panels.size_table(self, op, src, out_grids, kernel=(kh, kw), top=out_grids[0].top,
                         left=right + 2, kernel_grid=self.placed[op.weight[0]].grids[0])
        if not self.exercise:  # the trace panel computes answers: not on exercise sheets
            panels.trace(self, op, window_src, kernels, bias_cells, out_grids)

    def _pool(self, op: Pool) -> None:
        src = self.placed[op.input]
        out_vals = self.values[op.name]
        c, oh, ow = out_vals.shape
        self.op_title(op, f"F.{op.mode}_pool2d({op.input}, kernel_size={torch_arg(op.kernel_size)}, stride={torch_arg(op.stride)}, "
                           f"padding={torch_arg(op.padding)}" + (f", dilation={torch_arg(op.dilation)}" if op.mode == "max" else "")
                       + f", ceil_mode={op.ceil_mode})")
        label = f"{op.mode} pooled {c}x{oh}x{ow}" if c > 1 else f"{op.mode} pooled {oh}x{ow}"
        blocks = [(label, channel_labels(c), (oh, ow))]
        if self.checking:
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", channel_labels(c), (oh, ow)))
        grids, *checks = self.band(blocks)
        fmt = style.cell(self.book, "output", style.num_format(out_vals) if op.mode == "max" else "0.00")
        for k, g in enumerate(grids):
            sg = src.grids[k]

            def formula(i: int, j: int, sg: Grid = sg) -> str:
                return "=" + self.pool_formula(op, i, j, lambda rows, cols: (
                    [sg.window(rows[0], cols[0], len(rows), len(cols)).ref()] if op.dilation == (1, 1)
                    else [sg.cell(r, cc) for r in rows for cc in cols]))

            if self.exercise:
                answers.answer(self, op, k, g, out_vals[k], formula, checks[0] if checks else None)
                continue
            self.write_grid(g, "output", out_vals[k], formula, fmt)
            style.heatmap(self.ws, g, out_vals)
        self.placed[op.name] = Placed(op.name, grids, out_vals)
        self.book.record(op.name, self.output_role, self.spec.sheet, grids, op=f"{op.mode}_pool", input=op.input,
                         kernel_size=list(op.kernel_size), stride=list(op.stride), padding=list(op.padding),
                         dilation=list(op.dilation), ceil_mode=op.ceil_mode, count_include_pad=op.count_include_pad,
                         label=op.label)
        answers.record_checks(self, op, checks[0] if checks else None)
        right = (checks[0] if checks else grids)[-1].right
        panels.size_table(self, op, src, grids, kernel=op.kernel_size, top=grids[0].top, left=right + 2)

    def pool_formula(self, op: Pool, i: int, j: int, cells_of: Callable[[list[int], list[int]], list[str]]) -> str:
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

    def _relu(self, op: Relu) -> None:
        src = self.placed[op.input]
        out_vals = self.values[op.name]
        c, h, w = out_vals.shape
        self.op_title(op, f"F.relu({op.input}) = MAX(0, x) per cell")
        blocks = [(f"ReLU {c}x{h}x{w}" if c > 1 else f"ReLU {h}x{w}", channel_labels(c), (h, w))]
        if self.checking:
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", channel_labels(c), (h, w)))
        grids, *checks = self.band(blocks)
        fmt = style.cell(self.book, "output", style.num_format(out_vals))
        for k, g in enumerate(grids):
            sg = src.grids[k]

            def formula(i: int, j: int, sg: Grid = sg) -> str:
                return fx.relu(sg.cell(i, j))

            if self.exercise:
                answers.answer(self, op, k, g, out_vals[k], formula, checks[0] if checks else None)
                continue
            self.write_grid(g, "output", out_vals[k], formula, fmt)
            style.heatmap(self.ws, g, out_vals)
        self.placed[op.name] = Placed(op.name, grids, out_vals)
        self.book.record(op.name, self.output_role, self.spec.sheet, grids, op="relu", input=op.input,
                         label=op.label)
        answers.record_checks(self, op, checks[0] if checks else None)

    # -- exercise sheets ------------------------------------------------------------------------

    @property
    def output_role(self) -> str:
        """The role an op's output block is recorded under: "answer" on a student's sheet, else "output"."""
        return "answer" if self.mode == "student" else "output"

    def _finish(self) -> None:
        ws = self.ws
        if self.checking and self.checks:
            answers.score(self, NOTE_COLUMNS - 5, EXERCISE_INFO_ROW)
        if self.mode == "student":
            style.protect_inputs(ws)
        ws.set_column(0, 0, 2)
        ws.set_column(1, self.max_col + 1, style.COL_WIDTH)
        for r in sorted(self.grid_rows):
            ws.set_row(r, style.GRID_ROW_HEIGHT)
        style.page_setup(ws)


def _hw(values: np.ndarray) -> tuple[int, int]:
    """(H, W) of a (C, H, W) array."""
    _, h, w = values.shape
    return (h, w)


def channel_labels(c: int) -> list[str]:
    """Labels of a block's channels ("channel 0", ...), none for a single channel."""
    return [f"channel {k}" for k in range(c)] if c > 1 else [""]


def torch_arg(p: tuple[int, int]) -> str:
    """A pair as torch prints an argument: 2, or (2, 3)."""
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def build_sheet(book: Book, spec: ConvSheetSpec, mode: str = "worksheet", self_check: bool = True,
                tolerance: float = DEFAULT_TOLERANCE, info: str = "") -> ConvSheet:
    """Write the convolution worksheet for spec into book (an exercise's mode, self_check, tolerance, info)."""
    sheet = ConvSheet(book, spec, mode=mode, self_check=self_check, tolerance=tolerance, info=info)
    sheet.build()
    return sheet
