"""The convolution worksheet: input and kernel grids, then one band per op (conv, ReLU, pooling), each with
live formulas; its panels (size tables, step by step) and exercise answer cells come from panels.py and
answers.py.

The sheet is laid out top to bottom in bands (the inputs, each op's maps with its size table, each step-by-step
panel); _finish then sizes the cells so that every number fits, prints the bands whole (a page break before a
band that would not fit), and opens at a zoom that shows the inputs and the first maps on a laptop screen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence, TypeAlias

import numpy as np
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import Book, check_formula
from xlconv.cells import MAX_COLS, MAX_ROWS, Grid, a1
from xlconv.errors import SpecError
from xlconv.model import (DENSE, Conv, ConvSheetSpec, ConvTranspose, GridSpec, Linear, Loss, Op, Pool, Relu, Softmax,
                          compute)
from xlconv.sheets import answers, dense, digits, panels, style, transpose

MIN_COLUMNS = 18  # the note and legend span at least this many columns (B to S)
NOTE_MAX_COLUMNS = 30  # and the note at most this many
BIG_GRID = 16  # a sheet with a grid larger than this (a photo) freezes its title row
LABEL_ROWS = 2  # block label, then channel label
WIDE_COLUMNS = 30  # a conv band of several maps wider than this puts its size table under the maps
SIZE_TABLE_COLUMNS = 8
# "worksheet": the live sheet `xlconv build` makes. "key" and "student": an exercise's answer key and the
# student's workbook, laid out cell for cell alike; the student's has blank answer cells where the key has formulas.
MODES = ("worksheet", "key", "student")
EXERCISE_INFO_ROW = 3  # student id and variant (left), live score (right)
FIRST_BAND_ROW = 4  # the inputs' heading
DEFAULT_TOLERANCE = 0.005  # largest accepted |typed answer - right answer|: right to 2 decimal places
CROSS_CORRELATION = ("torch's Conv2d computes a cross-correlation: the kernel slides without being flipped.")
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
                 info: str = "", ws: Worksheet | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.book, self.spec = book, spec
        self.values = values if values is not None else compute(spec)
        self.ws = ws if ws is not None else book.wb.add_worksheet(spec.sheet)
        self.placed: dict[str, Placed] = {}
        self.row = 0
        self.max_col = MIN_COLUMNS
        self.grid_rows: set[int] = set()
        self.mode, self.tolerance, self.info = mode, tolerance, info
        self.exercise = mode != "worksheet"
        self.checking = self.exercise and self_check  # a live check grid beside each answer grid, and a score
        self.checks: list[Grid] = []
        self.ops_by_name = {op.name: op for op in spec.ops}
        self.conv_ctx: dict[str, ConvContext] = {}
        self.exprs: dict[tuple[str, int, int, int], str] = {}  # (grid or op, channel, row, column) -> expression
        # Looks and layout gathered while writing, applied by _finish.
        self.band_starts: list[int] = []  # the first row of each band that prints on one page
        self.row_points: dict[int, float] = {}  # rows that are neither grid rows nor plain rows
        self.notes: dict[tuple[int, int], list[str]] = {}  # cell -> note texts (style.note)
        self.highlights: dict[Grid, list[tuple[int, str]]] = {}  # range -> [(panel, rule)], in panel order
        self.colour_scales: list[Callable[[], None]] = []  # heat maps and pictures, after the highlights
        self.scaled: list[Grid] = []  # the grids under a colour scale
        self.lit: set[tuple[int, int]] = set()  # cells the panels' default picks light up
        self.panels = 0
        self.panel_headings: list[tuple[int, int, str]] = []  # (row, panel, text) of each panel's heading bar
        self.last_pick_col = 1  # the column after a panel's pick cells
        self.widest: float = 1  # characters (of Calibri 11) of the widest number written in a grid cell
        self.roles: set[str] = set()  # the roles on the sheet, for the legend
        self.unread = unread_cells(spec, self.values)  # block -> {(i, j): why no window reads it}
        self.inputs_end = FIRST_BAND_ROW  # the row after the inputs' band
        self.label_cell = ""  # with [examples]: the cell showing the picked digit's true class
        self.reserved: dict[str, Grid] = {}  # the prediction band's cells (dense.reserve)
        self.bias_slots: dict[str, list[Grid]] = {}  # conv -> its bias cells, under its filters in the inputs band
        self.answer_names = answer_names(spec) if self.exercise else set()
        if self.exercise:
            self.roles.add("answer")

    # -- layout helpers -------------------------------------------------------------------------

    def is_answer(self, name: str) -> bool:
        """Whether the block name is an answer block of this exercise sheet (never on a plain worksheet)."""
        return name in self.answer_names

    def output_role_of(self, name: str) -> str:
        """The role a block is recorded under: "answer" for the student's answer blocks, else "output"."""
        return "answer" if self.mode == "student" and self.is_answer(name) else "output"

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

    def note(self, row: int, col: int, text: str) -> None:
        """A cell note in the lecture's words (several on one cell are joined)."""
        texts = self.notes.setdefault((row, col), [])
        if text not in texts:
            texts.append(text)

    def start_band(self) -> None:
        """The cursor's row starts a band that prints whole on one page."""
        if not self.band_starts or self.band_starts[-1] != self.row:
            self.band_starts.append(self.row)

    def measure(self, values: np.ndarray, num_format: str, font_size: float = 11) -> None:
        """Widen the cells (in _finish) so that the widest of these numbers fits, never "###" (a smaller font
        needs fewer characters of the sheet's Calibri 11)."""
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0 or not np.all(np.isfinite(v)):
            return
        if num_format == "0":
            texts = [f"{x:.0f}" for x in (v.min(), v.max())]
        elif "E+" in num_format:  # scientific: -1.2E-4 (the exponent as few digits as the format has zeros)
            mantissa, exp = num_format.split(";")[0].split("E+")
            places = len(mantissa) - 2 if "." in mantissa else 0
            texts = []
            for x in (v.min(), v.max(), -abs(v[v != 0]).min() if np.any(v != 0) else 0.0):
                m, e = f"{x:.{places}E}".split("E")
                texts.append(f"{m}E{e[0] if e[0] == '-' else ''}{abs(int(e)):0{len(exp)}d}")
        elif num_format.startswith("0."):
            places = len(num_format) - 2
            texts = [f"{x:.{places}f}" for x in (v.min(), v.max())]
        else:
            texts = [f"{x:g}" for x in (v.min(), v.max())]
        self.widest = max(self.widest, *(len(t) * font_size / 11 for t in texts))

    def write_grid(self, grid: Grid, role: str, values: np.ndarray, formula: Formula | None = None,
                   fmt: Format | None = None, name: str | None = None, num_format: str | None = None,
                   font_size: float = 11) -> None:
        """Write a grid of constants, or of formulas formula(i, j) with their NumPy values cached.

        name: the block (or padded copy) the grid shows, whose cells no window reads are hatched (style.UNREAD).
        """
        nf = num_format or style.num_format(values)
        fmt = fmt or (style.cell(self.book, role, nf) if font_size == 11 else
                      style.cell(self.book, role, nf, font_size=font_size))
        self.measure(values, nf, font_size)
        self.roles.add(role)
        unread = self.unread.get(name or "", {})
        for i in range(grid.height):
            self.grid_rows.add(grid.top + i)
            for j in range(grid.width):
                r, c = grid.top + i, grid.left + j
                v = float(values[i, j])
                look = fmt
                if (i, j) in unread:
                    look = style.unread_cell(self.book, role, nf)
                    self.roles.add("unread")
                    for why in unread[(i, j)]:
                        self.note(r, c, why)
                if formula is None:
                    self.ws.write_number(r, c, v, look)
                else:
                    self.ws.write_formula(r, c, check_formula(formula(i, j), lambda: f"{self.spec.path}: "
                                                              f"{self.spec.sheet}!{a1(r, c)}"), look, style.cached(v))
        self.max_col = max(self.max_col, grid.right)

    def band(self, blocks: Sequence[BandBlock], start_col: int = 1, label_rows: int = LABEL_ROWS) -> list[list[Grid]]:
        """Place blocks (label, channel labels, (h, w)) side by side below the cursor."""
        top = self.row + label_rows
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

    def highlight(self, grid: Grid, panel: int, rule: str) -> None:
        """Light the cells of grid where rule is true in panel's colour (written by _finish, before heat maps)."""
        self.highlights.setdefault(grid, []).append((panel, rule))

    def heatmap(self, grid: Grid, values: np.ndarray) -> None:
        """A heat map on grid, written after every highlight so that a panel's pick shows over it."""
        self.scaled.append(grid)
        self.colour_scales.append(lambda: style.heatmap(self.ws, grid, values))

    def ink(self, grid: Grid) -> None:
        """A 0-1 digit drawn as ink on paper, written after every highlight."""
        self.scaled.append(grid)
        self.colour_scales.append(lambda: style.ink(self.book, self.ws, grid))

    def place(self, name: str, grids: list[Grid], values: np.ndarray) -> Placed:
        """Remember a block laid out on the sheet under name (its grids and values)."""
        self.placed[name] = Placed(name, grids, np.asarray(values, dtype=np.float64))
        return self.placed[name]

    def picture(self, grid: Grid) -> None:
        """A grayscale picture on grid, written after every highlight."""
        self.scaled.append(grid)
        self.colour_scales.append(lambda: style.picture(self.book, self.ws, grid))

    def channel_names(self, name: str) -> list[str]:
        """What the sheet calls each channel of a grid or op: the lecture's "Filter 1", "Filter 2", ... for a conv's
        output channels and everything computed from them (ReLU, pooling); "channel 0", ... for an image's."""
        op = self.ops_by_name.get(name)
        if isinstance(op, (Conv, ConvTranspose)):
            return [filter_name(k, self.spec.grid(w).label) for k, w in enumerate(op.weight)]
        if op is not None:
            return self.channel_names(op.input)
        c = self.values[name].shape[0]
        return [f"channel {k}" for k in range(c)]

    def block_label(self, name: str) -> str:
        """What the sheet calls a grid (its label) or an op's output (its name)."""
        return name if name in self.ops_by_name else self.spec.grid(name).label

    def band_labels(self, name: str) -> list[str]:
        """The channel labels a band shows for a block: none for a single channel."""
        names = self.channel_names(name)
        return names if len(names) > 1 else [""]

    # -- sheet parts ----------------------------------------------------------------------------

    def build(self, finish: bool = True) -> None:
        """Write the whole sheet (finish False: the caller adds bands, then calls finish())."""
        self._header()
        self._inputs()
        for op in self.spec.ops:
            if isinstance(op, Conv):
                self._conv(op)
            elif isinstance(op, ConvTranspose):
                transpose.band(self, op)
            elif isinstance(op, Pool):
                self._pool(op)
            elif isinstance(op, DENSE):
                dense.band(self, op)
            else:
                self._relu(op)
        if finish:
            self._finish()

    def finish(self) -> None:
        """Size the cells, write the note, legend, looks, print and screen set-up (after build(finish=False))."""
        self._finish()

    def extra_sheets(self) -> None:
        """With [examples], the Digits sheet (after the gradients sheet, which backprop writes)."""
        if self.spec.examples is not None:
            digits.write(self.book, self.spec.sheet, self.spec.examples, accuracy(self.spec.note))

    def _header(self) -> None:
        """The title; the note and legend are written by _finish, when the sheet's width is known."""
        s, b = self.spec, self.book
        title = s.title + {"worksheet": "", "key": " (answer key)", "student": " (exercise)"}[self.mode]
        self.ws.write_string(0, 1, title, b.fmt(bold=True, font_size=16))
        self.row_points[0] = style.TITLE_ROW_POINTS
        if self.exercise:
            self.row_points[EXERCISE_INFO_ROW] = 24
            if self.info:
                self.ws.write_string(EXERCISE_INFO_ROW, 1, self.info, b.fmt(bold=True, font_size=10, valign="vcenter"))
        else:
            self.row_points[EXERCISE_INFO_ROW] = 6
        self.row = FIRST_BAND_ROW

    def sheet_note(self) -> str:
        """The note under the title: the spec's, plus what every sheet says (once)."""
        if self.exercise:
            return answers.exercise_note(self)
        text = self.spec.note.strip()
        if "cross-correlation" not in text:
            text += " " + CROSS_CORRELATION
        text += (" Every output cell is a live formula: click one to read it, point at a red corner for a note, "
                 "change any typed cell and watch everything follow.")
        return text

    def _inputs(self) -> None:
        self.start_band()
        self.label(self.row, 1, "Inputs and kernels: typed numbers, change any of them", bold=True)
        self.row += 1
        used_as_kernel = {w for op in self.spec.ops if isinstance(op, (Conv, ConvTranspose)) for w in op.weight}
        dense_weights = {op.weight for op in self.spec.ops if isinstance(op, Linear)}  # drawn in the linear's band
        blocks: list[BandBlock] = []
        grids: list[GridSpec] = []
        for g in self.spec.grids:
            if g.name in dense_weights:
                continue
            blocks.append((grid_label(g.label, g.values.shape), self.band_labels(g.name), _hw(g.values)))
            grids.append(g)
        ex = self.spec.examples
        lay = digits.record(self, ex) if ex is not None else None
        predicting = any(isinstance(op, Softmax) for op in self.spec.ops)
        if ex is not None and not predicting:
            blocks += [(f"pick a digit (1-{len(ex.labels)})", [""], (1, 1)), ("its true class", [""], (1, 1))]
        placed_all = self.band(blocks)
        self._bias_under_filters(grids, placed_all)
        if predicting:
            self.inputs_end = self.row
            self.reserved = dense.reserve(self)
        if ex is not None and lay is not None:
            if "pick" in self.reserved:
                pick_grid, label_grid = self.reserved["pick"], self.reserved["label"]
            else:
                (pick_grid,), (label_grid,) = placed_all[-2:]
                placed_all = placed_all[:-2]
            self.ws.write_number(pick_grid.top, pick_grid.left, ex.pick + 1,
                                 style.cell(self.book, "pick", "0", bold=True, locked=False, font_size=14))
            self.grid_rows.add(pick_grid.top)
            self.roles.add("pick")
            self.book.record(digits.PICK, "input", self.spec.sheet, [pick_grid], label="picked digit (1-based)")
            pick = pick_grid.cell(0, 0, absolute=True)
            dsheet = digits.sheet_name(self.spec.sheet)
            h = ex.values.shape[1]
            self.write_grid(label_grid, "input", np.array([[ex.labels[ex.pick]]]),
                            lambda i, j: digits.label_of(lay, dsheet, pick, h), num_format="0",
                            fmt=style.cell(self.book, "input", "0", bold=True, font_size=14))
            self.label_cell = label_grid.cell(0, 0, absolute=True)
            self.note(pick_grid.top, pick_grid.left, f"Type a digit's number (1 to {len(ex.labels)}) from the "
                                                     f"'{dsheet}' sheet: the image, every map, the probabilities and "
                                                     f"the gradients follow. You can also type over any pixel.")
        for g, placed in zip(grids, placed_all):
            if ex is not None and lay is not None and g.name == ex.grid:
                dsheet = digits.sheet_name(self.spec.sheet)
                self.write_grid(placed[0], "input", g.values[0],
                                lambda i, j: digits.picked(lay, dsheet, pick, i, j), num_format="0.00")
                self.ink(placed[0])
                self.placed[g.name] = Placed(g.name, placed, g.values)
                self.book.record(g.name, "input", self.spec.sheet, placed, label=g.label, source=g.source,
                                 exercise=None, examples=digits.TABLE, pick=digits.PICK)
                self.note(placed[0].top, placed[0].left, "The picked digit: each pixel is INDEX into the Digits "
                                                         "sheet by the pick cell; type a number here to draw your own.")
                continue
            role = "kernel" if g.name in used_as_kernel else "input"
            picture = g.colour_scale == "gray"
            nf = style.num_format(g.values)
            for k, grid in enumerate(placed):
                self.write_grid(grid, role, g.values[k], name=g.name,
                                fmt=style.picture_cell(self.book, nf) if picture else None)
                if picture:
                    self.picture(grid)
            self.placed[g.name] = Placed(g.name, placed, g.values, g.colour_scale == "gray")
            self.book.record(g.name, role, self.spec.sheet, placed, label=g.label, source=g.source,
                             exercise=list(g.exercise) if g.exercise else None)
        if not self.reserved:
            self.inputs_end = self.row

    def _bias_under_filters(self, grids: list[GridSpec], placed: list[list[Grid]]) -> None:
        """A conv's bias cells under its filters in the inputs band ("bias" and the cell), when every filter is drawn
        there with a row to spare: the filter and its bias read together, and the conv's band stays narrow."""
        where = {g.name: p for g, p in zip(grids, placed)}
        bottom = max((p[-1].bottom for p in placed), default=0)
        for op in self.spec.ops:
            if not isinstance(op, Conv) or op.bias is None or not all(w in where for w in op.weight):
                continue
            firsts = [where[w][0] for w in op.weight]
            if any(g.bottom + 1 > bottom or g.width < 2 for g in firsts):
                continue
            slots = []
            for g in firsts:
                self.ws.write_string(g.bottom + 1, g.left, "bias", self.book.fmt(italic=True, font_size=9,
                                                                                  align="right", valign="vcenter"))
                slots.append(Grid(g.bottom + 1, g.left + 1, 1, 1))
            self.bias_slots[op.name] = slots

    def op_title(self, op: Op, text: str) -> None:
        """The op's heading line (its label = the torch call it mirrors); moves the cursor down a row."""
        self.start_band()
        heading = f"{op.label}   =   {text}"
        look = self.book.fmt(bold=True, font_size=12, font_color=style.HEADING_BLUE)
        self.ws.write_string(self.row, 1, heading, look)
        # The heading overflows into the cells to its right: keep them inside the printed width.
        self.max_col = max(self.max_col, math.ceil(len(heading) * 6.5 / style.column_px(style.COL_WIDTH)) + 1)
        self.row_points[self.row] = style.OP_TITLE_ROW_POINTS
        self.row += 1

    def _conv(self, op: Conv) -> None:
        spec = self.spec
        src = self.placed[op.input]
        c_in = len(src.grids)
        kh, kw = spec.grid(op.weight[0]).values.shape[1:]
        weights = ", ".join(op.weight)
        args = [f"{op.input}", f"weight=[{weights}]"] + ([f"bias={op.name}_bias"] if op.bias is not None else [])
        args.append(f"stride={torch_arg(op.stride)}")  # and the arguments that are not torch's defaults
        args += [f"{key}={torch_arg(v)}" for key, v, default in (("padding", op.padding, (0, 0)),
                                                                 ("dilation", op.dilation, (1, 1))) if v != default]
        self.op_title(op, f"F.conv2d({', '.join(args)})")
        blocks: list[BandBlock] = []
        kinds: list[str | tuple[str, str]] = []  # "padded", ("dilated", weight), "bias", "output", "check"
        padded_vals = ref.pad(src.values, op.padding)
        if op.padding != (0, 0):
            blocks.append((f"{self.block_label(op.input)} padded by {torch_arg(op.padding)} (zeros)",
                           self.band_labels(op.input),
                           _hw(padded_vals)))
            kinds.append("padded")
        dil_vals: dict[str, np.ndarray] = {}
        if op.dilation != (1, 1):
            for wname in op.weight:
                dil_vals[wname] = ref.dilate_kernel(self.values[wname], op.dilation)
                blocks.append((f"{self.block_label(wname)} dilated by {torch_arg(op.dilation)}",
                               self.band_labels(op.input), _hw(dil_vals[wname])))
                kinds.append(("dilated", wname))
        if op.bias is not None and op.name not in self.bias_slots:
            blocks.append(("bias", [""] * len(op.weight), (1, 1)))
            kinds.append("bias")
        out_vals = self.values[op.name]
        o, oh, ow = out_vals.shape
        blocks.append((f"output {o}x{oh}x{ow}" if o > 1 else f"output {oh}x{ow}", self.band_labels(op.name), (oh, ow)))
        kinds.append("output")
        if self.checking and self.is_answer(op.name):
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", self.band_labels(op.name), (oh, ow)))
            kinds.append("check")
        names = [k if isinstance(k, str) else f"dil:{k[1]}" for k in kinds]
        if kinds[-1] == "check" and o > 2:  # many maps: their checks in a row of their own, under the answers
            placed = dict(zip(names[:-1], self.band(blocks[:-1])))
            placed["check"] = self.band(blocks[-1:])[0]
        else:
            placed = dict(zip(names, self.band(blocks)))

        window_src = src
        if "padded" in placed:
            grids = placed["padded"]
            ph, pw = op.padding
            name = f"{op.name}_padded"
            for k, g in enumerate(grids):
                inner = src.grids[k]
                vals = padded_vals[k]

                def copy(i: int, j: int, inner: Grid = inner) -> str:
                    return fx.copy(inner.cell(i - ph, j - pw))

                self._padded(g, vals, (ph, pw), inner, copy, name, src.picture)
                if src.picture:
                    self.picture(g.window(ph, pw, inner.height, inner.width))
            self.note(grids[0].top + ph, grids[0].left + pw,
                      f"Padding {torch_arg(op.padding)}: the input copied (=cell) inside a ring of zeros "
                      f"{op.padding[0]} cell(s) deep. The filter slides over this padded grid, so border cells get "
                      f"whole windows too: H_out = (H_in + 2 x padding - kernel size)/stride + 1.")
            window_src = Placed(name, grids, padded_vals)
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
                self.note(grids[0].top, grids[0].left,
                          f"Dilation {torch_arg(op.dilation)}: {wname}'s taps copied {op.dilation[0]} cell(s) apart "
                          f"with zeros between, so the {kh}x{kw} filter spans {grids[0].height}x{grids[0].width} "
                          f"cells: dilation x (kernel_size - 1) + 1. The zeros are why the cells between taps "
                          f"never count.")
                name = f"{op.name}_{wname}_dilated"
                self.book.record(name, "dilated", spec.sheet, grids, input=wname, dilation=list(op.dilation))
                kernels[wname] = grids
            else:
                kernels[wname] = self.placed[wname].grids
        bias_cells = placed.get("bias") or self.bias_slots.get(op.name)
        if bias_cells:
            assert op.bias is not None, "the bias block is placed only for a conv with a bias"
            bias_nf = style.num_format(np.array(op.bias))
            for value, g in zip(op.bias, bias_cells):
                self.write_grid(g, "bias", np.array([[value]]), num_format=bias_nf)
            self.book.record(f"{op.name}_bias", "bias", spec.sheet, bias_cells)
        eh, ew = kernels[op.weight[0]][0].height, kernels[op.weight[0]][0].width
        out_grids = placed["output"]
        out_nf = style.num_format(out_vals)
        self.conv_ctx[op.name] = (window_src, kernels, bias_cells, eh, ew)
        for oc, g in enumerate(out_grids):
            kgrids = kernels[op.weight[oc]]
            bias_ref = bias_cells[oc].cell(0, 0, absolute=True) if bias_cells else None

            def formula(i: int, j: int, kgrids: list[Grid] = kgrids, bias_ref: str | None = bias_ref) -> str:
                r0, c0 = i * op.stride[0], j * op.stride[1]
                wins = [wg.window(r0, c0, eh, ew).ref() for wg in window_src.grids]
                return fx.conv(wins, [kg.ref(absolute=True) for kg in kgrids], bias_ref)

            if self.is_answer(op.name):
                answers.answer(self, op, oc, g, out_vals[oc], formula, placed.get("check"))
                continue
            self.write_grid(g, "output", out_vals[oc], formula, num_format=out_nf, name=op.name)
            self.heatmap(g, out_vals)
        self.note(out_grids[0].top, out_grids[0].left, conv_note(op, kh, kw, c_in, self.exercise))
        info = dict(op="conv", input=op.input, weight=list(op.weight), bias=f"{op.name}_bias" if op.bias else None,
                    stride=list(op.stride), padding=list(op.padding), dilation=list(op.dilation), label=op.label)
        self.book.record(op.name, self.output_role_of(op.name), spec.sheet, out_grids, **info)
        answers.record_checks(self, op, placed.get("check"))
        self.placed[op.name] = Placed(op.name, out_grids, out_vals)
        right = (placed.get("check") or out_grids)[-1].right
        top, left = out_grids[0].top, right + 2
        if len(out_grids) > 2 and left + SIZE_TABLE_COLUMNS > WIDE_COLUMNS:
            # Beside many maps the table would widen the whole sheet (and shrink its print): under the first map.
            lowest = max(g.bottom for g in out_grids + list(placed.get("check") or []))
            top, left = lowest + 3, out_grids[0].left - 1
            self.row = max(self.row, top + 4)
        panels.size_table(self, op, src, out_grids, kernel=(kh, kw), top=top,
                          left=left, kernel_grid=self.placed[op.weight[0]].grids[0])
        if not self.exercise:  # the step-by-step panel computes answers: not on exercise sheets
            self.row += 1
            panels.trace(self, op, window_src, kernels, bias_cells, out_grids)

    def _padded(self, g: Grid, vals: np.ndarray, pad: tuple[int, int], inner: Grid, copy: Formula, name: str,
                picture: bool = False) -> None:
        """A padded copy of one channel: the input's cells as =cell formulas inside a ring of zero constants."""
        book = self.book
        nf = style.num_format(vals)
        self.measure(vals, nf)
        self.roles.update(("padding", "input"))
        unread = self.unread.get(name, {})
        for i in range(g.height):
            self.grid_rows.add(g.top + i)
            for j in range(g.width):
                inside = 0 <= i - pad[0] < inner.height and 0 <= j - pad[1] < inner.width
                role = "input" if inside else "padding"
                if (i, j) in unread:
                    look = style.unread_cell(book, role, nf)
                elif inside and picture:
                    look = style.picture_cell(book, nf)
                else:
                    look = style.cell(book, role, nf)
                for why in unread.get((i, j), []):
                    self.note(g.top + i, g.left + j, why)
                if inside:
                    self.ws.write_formula(g.top + i, g.left + j, copy(i, j), look, style.cached(vals[i, j]))
                else:
                    self.ws.write_number(g.top + i, g.left + j, 0, look)
        if unread:
            self.roles.add("unread")
        self.max_col = max(self.max_col, g.right)

    def _pool(self, op: Pool) -> None:
        src = self.placed[op.input]
        out_vals = self.values[op.name]
        c, oh, ow = out_vals.shape
        extra = (f", dilation={torch_arg(op.dilation)}" if op.mode == "max" and op.dilation != (1, 1) else "")
        extra += ", ceil_mode=True" if op.ceil_mode else ""
        extra += ", count_include_pad=False" if op.mode == "avg" and not op.count_include_pad else ""
        extra = (f", padding={torch_arg(op.padding)}" if op.padding != (0, 0) else "") + extra
        self.op_title(op, f"F.{op.mode}_pool2d({op.input}, kernel_size={torch_arg(op.kernel_size)}, "
                          f"stride={torch_arg(op.stride)}{extra})")
        label = f"{op.mode} pooled {c}x{oh}x{ow}" if c > 1 else f"{op.mode} pooled {oh}x{ow}"
        blocks = [(label, self.band_labels(op.name), (oh, ow))]
        if self.checking and self.is_answer(op.name):
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", self.band_labels(op.name), (oh, ow)))
        grids, *checks = self.band(blocks)
        nf = style.num_format(out_vals) if op.mode == "max" else "0.00"
        for k, g in enumerate(grids):
            sg = src.grids[k]

            def formula(i: int, j: int, sg: Grid = sg) -> str:
                return "=" + self.pool_formula(op, i, j, lambda rows, cols: (
                    [sg.window(rows[0], cols[0], len(rows), len(cols)).ref()] if op.dilation == (1, 1)
                    else [sg.cell(r, cc) for r in rows for cc in cols]))

            if self.is_answer(op.name):
                answers.answer(self, op, k, g, out_vals[k], formula, checks[0] if checks else None)
                continue
            self.write_grid(g, "output", out_vals[k], formula, num_format=nf, name=op.name)
            self.heatmap(g, out_vals)
        self.note(grids[0].top, grids[0].left, pool_note(op, self.exercise))
        self.placed[op.name] = Placed(op.name, grids, out_vals)
        self.book.record(op.name, self.output_role_of(op.name), self.spec.sheet, grids, op=f"{op.mode}_pool", input=op.input,
                         kernel_size=list(op.kernel_size), stride=list(op.stride), padding=list(op.padding),
                         dilation=list(op.dilation), ceil_mode=op.ceil_mode, count_include_pad=op.count_include_pad,
                         label=op.label)
        answers.record_checks(self, op, checks[0] if checks else None)
        right = (checks[0] if checks else grids)[-1].right
        panels.size_table(self, op, src, grids, kernel=op.kernel_size, top=grids[0].top, left=right + 2)
        if not self.exercise:  # the pooling panel shows the answer: not on exercise sheets
            self.row += 1
            panels.pool_trace(self, op, src, grids)

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
        blocks = [(f"ReLU {c}x{h}x{w}" if c > 1 else f"ReLU {h}x{w}", self.band_labels(op.name), (h, w))]
        if self.checking and self.is_answer(op.name):
            blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", self.band_labels(op.name), (h, w)))
        grids, *checks = self.band(blocks)
        nf = style.num_format(out_vals)
        for k, g in enumerate(grids):
            sg = src.grids[k]

            def formula(i: int, j: int, sg: Grid = sg) -> str:
                return fx.relu(sg.cell(i, j))

            if self.is_answer(op.name):
                answers.answer(self, op, k, g, out_vals[k], formula, checks[0] if checks else None)
                continue
            self.write_grid(g, "output", out_vals[k], formula, num_format=nf, name=op.name)
            self.heatmap(g, out_vals)
        self.note(grids[0].top, grids[0].left,
                  "ReLU: MAX(0, x) of the cell above it in the map it reads; positive values pass, negative ones "
                  "become 0, which is what F.relu does after a convolution.")
        self.placed[op.name] = Placed(op.name, grids, out_vals)
        self.book.record(op.name, self.output_role_of(op.name), self.spec.sheet, grids, op="relu", input=op.input,
                         label=op.label)
        answers.record_checks(self, op, checks[0] if checks else None)

    # -- exercise sheets ------------------------------------------------------------------------

    @property
    def output_role(self) -> str:
        """The role an op's output block is recorded under on a sheet where every op is an answer (transpose)."""
        return "answer" if self.mode == "student" else "output"

    # -- finishing: sizes, header, looks, print and screen ----------------------------------------

    def _finish(self) -> None:
        ws = self.ws
        last_row = self.row
        right = self.max_col  # the last column in use
        if self.checking and self.checks:
            answers.score(self, right - 4, EXERCISE_INFO_ROW)
        self._note_and_legend(right)
        if self.mode == "student":
            style.protect_inputs(ws)
        panels.write_highlights(self)
        for paint in self.colour_scales:
            paint()
        for (r, c), texts in sorted(self.notes.items()):
            style.note(ws, r, c, "\n\n".join(texts))
        # Cells wide enough for the widest number (never "###"), and square.
        width = max(style.COL_WIDTH, self.widest + 1.5)
        grid_points = style.square_row_points(width)
        ws.set_column(0, 0, 2)
        ws.set_column(1, right + 1, width)
        points = [grid_points if r in self.grid_rows else self.row_points.get(r, style.HEADER_ROW_POINTS)
                  for r in range(last_row + 1)]
        for r, p in enumerate(points):
            if r in self.grid_rows or r in self.row_points:
                ws.set_row(r, p)
        # Print: bands whole, fitted to the width, the title repeated when there is more than one page.
        width_px = style.column_px(2) + (right + 1) * style.column_px(width)
        # A sheet with a dense head is read on paper by students: never printed below a readable scale if the
        # other orientation avoids it.
        readable = 0.55 if any(isinstance(op, DENSE) for op in self.spec.ops) else 0.0
        landscape, breaks, scale, pages = style.plan_pages(points, self.band_starts, width_px * 0.75,
                                                           repeat_points=points[0], min_scale=readable)
        style.page_setup(ws, landscape=landscape, breaks=breaks, repeat_rows=(0, 0) if pages > 1 else None,
                         scale=scale)
        # Screen: the inputs and the first maps on a laptop window; just the inputs if that would be too small.
        first_op_end = self.band_starts[2] if len(self.band_starts) > 2 else last_row
        zoom = style.fit_zoom((width_px, sum(points[:first_op_end]) * 4 / 3))
        if zoom < 50:
            zoom = style.fit_zoom((width_px, sum(points[:self.inputs_end]) * 4 / 3))
        ws.set_zoom(zoom)
        if any(max(g.height, g.width) > BIG_GRID for p in self.placed.values() for g in p.grids):
            ws.freeze_panes(1, 0)  # a big sheet (a photo) keeps its title in view

    def _note_and_legend(self, right: int) -> None:
        """The note under the title, across the sheet's width, and the legend of the colours on the sheet."""
        ws, b = self.ws, self.book
        note = self.sheet_note()
        span = min(right, NOTE_MAX_COLUMNS)  # a wide sheet's note wraps instead of running off the screen
        chars_per_line = max(40, int((span * style.column_px(style.COL_WIDTH)) / 5.8))
        lines = max(2, math.ceil(len(note) / chars_per_line + 0.4))
        ws.merge_range(1, 1, 1, span, note, b.fmt(text_wrap=True, valign="top", font_size=10))
        self.row_points[1] = 13.5 * lines
        legend = [("input", "input (typed)"), ("kernel", "kernel (typed)"), ("bias", "bias (typed)"),
                  ("padding", "padding (zeros)")]
        legend.append(("answer", "answer (formula)" if self.mode == "key" else "answer: type it here")
                      if self.exercise else ("output", "output (formula)"))
        legend += [("product", "products (formula)"), ("param", "parameter"), ("pick", "you type here"),
                   ("unread", "no window reads it")]
        shown = [(role, text) for role, text in legend if role in self.roles]
        span = 3 if 3 * len(shown) <= right else 2
        col = 1
        for role, text in shown:
            look = (style.unread_cell(b, "input", "@", font_size=9) if role == "unread"
                    else style.cell(b, role, "@", font_size=9))
            ws.merge_range(2, col, 2, col + span - 1, text, look)
            col += span


def answer_names(spec: ConvSheetSpec) -> set[str]:
    """The answer blocks of an exercise: the spec's [exercise] answers; by default every op's output, or, with
    [gradients], the first convolution, the softmax (else the last op before the loss) and the gradient of the first
    grid differentiated, so that an exercise covers the forward pass, the prediction and backpropagation."""
    if spec.exercise_answers:
        return set(spec.exercise_answers)
    if not spec.wrt:
        return {op.name for op in spec.ops}
    names = [op.name for op in spec.ops if isinstance(op, Conv)][:1]
    soft = [op.name for op in spec.ops if isinstance(op, Softmax)]
    names += soft[:1] or [op.name for op in spec.ops if not isinstance(op, Loss)][-1:]
    return set(names) | {f"{spec.wrt[0]}_grad"}


def accuracy(note: str) -> str:
    """The sentence of a spec's note that states the test accuracy (empty if none does)."""
    for sentence in note.replace("\n", " ").split(". "):
        if "accuracy" in sentence.lower():
            return sentence.strip().rstrip(".") + "."
    return ""


def grid_label(label: str, shape: tuple[int, ...]) -> str:
    """A grid's label with its shape, unless the label already says it ("6 x 6 image" stays as it is)."""
    c, h, w = shape
    dims = f"{c}x{h}x{w}" if c > 1 else f"{h}x{w}"
    compact = label.replace(" ", "").replace("\u00d7", "x")
    return label if f"{h}x{w}" in compact else f"{label} ({dims})"


def filter_name(k: int, label: str) -> str:
    """The lecture's name of output channel k: "Filter 1", ...; the weight grid's label too when it differs."""
    name = f"Filter {k + 1}"
    return name if label.strip() in (name, "") else f"{name} ({label})"


def conv_note(op: Conv, kh: int, kw: int, c_in: int, exercise: bool) -> str:
    """The note on a conv's first output cell, in the lecture's words."""
    depth = (f" The input has {c_in} channels, so each filter has {c_in} too and the cell adds one SUMPRODUCT per "
             f"channel (\"Filter has depth\").") if c_in > 1 else ""
    bias = " plus the bias" if op.bias is not None else ""
    what = (f"Each output cell is the sum of the element-wise products of the filter and the {kh}x{kw} window of the "
            f"input under it{bias}: \"Filter searches a particular pattern in different regions\".{depth}")
    if exercise:
        return what + " Work it out by hand and type it; the check grid (if any) tells you when it is right."
    return (what + f" Here that is SUMPRODUCT(window, filter); the filter's range has $ signs, so every output cell "
            f"has the same formula with the window moved by the stride ({torch_arg(op.stride)}). Use Excel to verify!")


def pool_note(op: Pool, exercise: bool) -> str:
    """The note on a pooling's first output cell, in the lecture's words."""
    k = "x".join(map(str, op.kernel_size))
    if op.mode == "max":
        what = (f"Max pooling: each cell keeps the largest value of a {k} block of the map it reads (stride "
                f"{torch_arg(op.stride)}), so the map shrinks and the strongest response of each region survives.")
        how = " The formula is MAX(block)."
    else:
        what = (f"Average pooling: each cell is the mean of a {k} block of the map it reads (stride "
                f"{torch_arg(op.stride)}).")
        how = " The formula is AVERAGE(block), or SUM(block)/n where torch counts the padding."
    return what + ("" if exercise else how)


def unread_cells(spec: ConvSheetSpec, values: dict[str, np.ndarray]) -> dict[str, dict[tuple[int, int], list[str]]]:
    """For each block a window slides over (a grid, an op's output, or a conv's padded copy), the cells that no
    window of some op reads, with a note saying why (the stride steps past them, or dilation skips them)."""
    out: dict[str, dict[tuple[int, int], list[str]]] = {}
    for op in spec.ops:
        if isinstance(op, (Relu, ConvTranspose, *DENSE)):  # a transposed conv's stride-1 windows read every spread cell
            continue
        _, h, w = values[op.input].shape
        if isinstance(op, Conv):
            kh, kw = spec.grid(op.weight[0]).values.shape[1:]
            name = f"{op.name}_padded" if op.padding != (0, 0) else op.input
            size = (h + 2 * op.padding[0], w + 2 * op.padding[1])
            kernel, offset, kind = (kh, kw), (0, 0), "Conv2d"
        else:
            name, size, kernel, offset = op.input, (h, w), op.kernel_size, op.padding
            kind = "MaxPool2d" if op.mode == "max" else "AvgPool2d"
        n_out = values[op.name].shape[1:]
        read: list[set[int]] = []
        for axis in (0, 1):
            starts = [i * op.stride[axis] - offset[axis] for i in range(n_out[axis])]
            taps = {s + t * op.dilation[axis] for s in starts for t in range(kernel[axis])}
            read.append({t for t in taps if 0 <= t < size[axis]})
        why = [_unread_reason(axis, sorted(read[axis]), size[axis], op.stride[axis], op.dilation[axis],
                              kernel[axis], n_out[axis], offset[axis]) for axis in (0, 1)]
        cells = out.setdefault(name, {})
        for i in range(size[0]):
            for j in range(size[1]):
                if i in read[0] and j in read[1]:
                    continue
                reasons = [why[axis] for axis, x in ((0, i), (1, j)) if x not in read[axis]]
                text = (f"No window of {op.name} reads this cell: " + "; ".join(reasons) +
                        f". torch's {kind} leaves it out the same way.")
                cells.setdefault((i, j), []).append(text)
        if not cells:
            del out[name]
    return out


def _unread_reason(axis: int, read: list[int], size: int, stride: int, dilation: int, kernel: int,
                   n_out: int, offset: int) -> str:
    """Why some rows (axis 0) or columns (axis 1) of a block are never read, in a sentence."""
    what = ("row", "column")[axis]
    missing = [x + 1 for x in range(size) if x not in read]
    after = [x for x in missing if x > read[-1] + 1] if read else missing
    between = [x for x in missing if x not in after]
    parts = []
    if after:
        starts = [i * stride - offset + 1 for i in range(n_out)]
        span = dilation * (kernel - 1) + 1
        parts.append(f"with stride {stride} the {span}-cell windows start at {what}s "
                     f"{', '.join(map(str, starts))} and the last one ends at {what} {starts[-1] + span - 1}, so "
                     f"{what} {', '.join(map(str, after))} {'is' if len(after) == 1 else 'are'} never reached")
    if between and dilation > 1:
        parts.append(f"dilation {dilation} spreads the filter's taps {dilation} cells apart, so {what} "
                     f"{', '.join(map(str, between))} {'falls' if len(between) == 1 else 'fall'} between the taps "
                     f"of every window (the dilated filter has a 0 there)")
    elif between:
        parts.append(f"stride {stride} moves the {kernel}-cell windows further than they reach, so {what} "
                     f"{', '.join(map(str, between))} {'falls' if len(between) == 1 else 'fall'} between two windows")
    return "; ".join(parts)


def _hw(values: np.ndarray) -> tuple[int, int]:
    """(H, W) of a (C, H, W) array."""
    _, h, w = values.shape
    return (h, w)


def torch_arg(p: tuple[int, int]) -> str:
    """A pair as torch prints an argument: 2, or (2, 3)."""
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def build_sheet(book: Book, spec: ConvSheetSpec, mode: str = "worksheet", self_check: bool = True,
                tolerance: float = DEFAULT_TOLERANCE, info: str = "") -> ConvSheet:
    """Write the convolution worksheet for spec into book (an exercise's mode, self_check, tolerance, info)."""
    sheet = ConvSheet(book, spec, mode=mode, self_check=self_check, tolerance=tolerance, info=info)
    sheet.build()
    return sheet
