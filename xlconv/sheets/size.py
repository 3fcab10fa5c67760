"""The output-size worksheet: the lecture's H_out rule as a live table chained through the layers.

Every row shows the unrounded (H_in + 2p - d(k-1) - 1)/s + 1 (the lecture's (H_in + 2p - k)/s + 1 when d = 1)
and H_out, that value rounded down as torch rounds it. Only pooling rows have a ceil_mode; a convolution row
shows a grey dash there and its H_out is the plain floor.
"""

from __future__ import annotations

import math
from typing import Sequence

from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import Book, check_formula
from xlconv.cells import Grid, a1
from xlconv.model import SizeRow, SizeSheetSpec
from xlconv.sheets import style

UNROUNDED = "unrounded\n(H_in + 2p − d(k−1) − 1)/s + 1"
COLUMNS = [  # (key, heading, width in characters)
    ("name", "layer", 12),
    ("label", "what it is", 30),
    ("in", "H_in", 7),
    ("p", "padding", 9),
    ("k", "kernel_size", 11),
    ("s", "stride", 7),
    ("d", "dilation", 9),
    ("ceil", "ceil_mode (pooling only)", 11),
    ("lecture", UNROUNDED, 29),
    ("out", "H_out", 8),
    ("remark", "the lecture's numbers", 36),
]
TABLE_TOP = 5
FIRST_COL_WIDTH = 2
TITLE_HEIGHT = 24.0
HEADING_HEIGHT = 48.0
ROW_HEIGHT = 30.0
NOT_POOLING = "—"


def is_pool(row: SizeRow) -> bool:
    """Whether a row is a pooling layer (only pooling has ceil_mode)."""
    return row.op == "pool"


def _notes(worked: bool) -> dict[str, str]:
    """The cell notes, in the lecture's words; worked=False (a student's exercise) leaves out the worked numbers."""
    conv1 = " conv1: (224 + 2 × 2 − 11)/4 + 1 = 55.25, and torch.Size([1, 64, 55, 55])." if worked else ""
    return {
        "in": "H_in: the height (or width) of the feature map entering the layer: 224 for the lecture's picture "
              "after Resize(224) and CenterCrop(224). Blue cells are chained: they show the H_out of the row "
              "above, so change 224 and every size below follows.",
        "p": "padding: rings of zeros added around the input, on both sides, hence 2 × padding in "
             "H_out = (H_in + 2 × padding − kernel size)/Stride + 1. conv1 has padding=2.",
        "k": "kernel_size: the filter's height and width. Each filter detects a small pattern (3 × 3); "
             "conv1's 64 filters are 11 × 11, and max pooling looks at 3 × 3 windows.",
        "s": "stride: how far the filter shifts at each step (\"Stride determines how filter shifts\"). "
             "stride=1 visits every position; stride=2 every other one, so the map is about half as big.",
        "d": "dilation: the gap between kernel taps (dilation=1 in every AlexNet layer, as print(model) shows). "
             "With dilation d a kernel of size k spans d × (k − 1) + 1 cells, and that span replaces "
             "kernel size in the rule.",
        "ceil": "ceil_mode: pooling only (MaxPool2d(..., ceil_mode=False)); Conv2d has none, hence the grey "
                "dash. FALSE (torch's default) rounds H_out down; TRUE rounds up, but torch drops a last "
                "window that would start in the right-hand padding.",
        "lecture": "The unrounded value (H_in + 2 × padding − dilation × (kernel_size − 1) − 1)/stride + 1. "
                   "With dilation 1 it is the lecture's (H_in + 2 × padding − kernel size)/Stride + 1." + conv1,
        "out": "H_out = INT(...) + 1: the unrounded value rounded down, as torch rounds: a window that would "
               "stick out past the padding is not used." + (" 55.25 gives 55." if worked else ""),
        "pool_out": "A pooling layer's H_out: with ceil_mode FALSE, the unrounded value rounded down, as for a "
                    "convolution" + (" ((55 − 3)/2 + 1 = 27)" if worked else "") + ". With ceil_mode TRUE it "
                    "rounds up, but MIN keeps the last window starting inside the input or its left padding.",
        "chain": "=H_out above: a layer's input is the previous layer's output (features[0] → features[2] → ...).",
        "answer_lecture": "Type the unrounded (H_in + 2 × padding − dilation × (kernel_size − 1) − 1)/stride + 1 "
                          "(with dilation 1, the lecture's (H_in + 2 × padding − kernel size)/Stride + 1).",
        "answer_out": "Type H_out: the unrounded value rounded down (pooling with ceil_mode TRUE: rounded up, "
                      "unless the last window would start in the right-hand padding).",
        "check": "✓ when your answer agrees with the value recomputed from this row's parameters, ✗ when it does "
                 "not, ? when it is not a number.",
    }


def _table(book: Book, spec: SizeSheetSpec, columns: Sequence[tuple[str, str, int]], title: str,
           note: str, worked: bool) -> tuple[Worksheet, dict[str, int]]:
    """A new sheet with the title, the note and the table's column headings (with their notes); returns it and
    the column map."""
    ws = book.wb.add_worksheet(spec.sheet)
    col = {key: i + 1 for i, (key, _, _) in enumerate(columns)}
    ws.set_column(0, 0, FIRST_COL_WIDTH)
    for key, _, width in columns:
        ws.set_column(col[key], col[key], width)
    ws.set_row(0, TITLE_HEIGHT)
    ws.write_string(0, 1, title, book.fmt(bold=True, font_size=16, valign="vcenter"))
    ws.merge_range(1, 1, 1, col["remark"], note, book.fmt(text_wrap=True, valign="top", font_size=10))
    ws.set_row(1, _note_height(note, columns))
    ws.set_row(TABLE_TOP - 1, HEADING_HEIGHT)
    head = book.fmt(bold=True, bottom=2, align="center", valign="vcenter", text_wrap=True)
    notes = _notes(worked)
    for key, heading, _ in columns:
        ws.write_string(TABLE_TOP - 1, col[key], heading, head)
        if key in ("in", "p", "k", "s", "d", "ceil"):
            style.note(ws, TABLE_TOP - 1, col[key], notes[key])
    return ws, col


def _note_height(note: str, columns: Sequence[tuple[str, str, int]]) -> float:
    """The note row's height (points): about 1.1 characters of 10-point text per character of column width,
    14 points a line, one spare line."""
    per_line = 1.1 * sum(width for _, _, width in columns)
    return 14.0 * (math.ceil(len(note) / per_line) + 1)


def _finish(ws: Worksheet, spec: SizeSheetSpec, columns: Sequence[tuple[str, str, int]], note: str,
            gap_pt: float) -> None:
    """Frozen headings, a zoom that shows the whole table on a laptop, and the page set-up (gap_pt: the height
    of the rows between the note and the headings)."""
    ws.freeze_panes(TABLE_TOP, 0)
    width = style.column_px(FIRST_COL_WIDTH) + sum(style.column_px(w) for _, _, w in columns)
    height_pt = (TITLE_HEIGHT + _note_height(note, columns) + gap_pt + HEADING_HEIGHT
                 + ROW_HEIGHT * len(spec.rows))
    ws.set_zoom(style.fit_zoom((width, height_pt * 4 / 3)))
    style.page_setup(ws, landscape=True, repeat_rows=(TABLE_TOP - 1, TABLE_TOP - 1))


def _formats(book: Book) -> tuple[Format, Format, Format, Format, Format]:
    """Formats of the table's text, remark, parameter, ceil_mode and not-applicable cells."""
    return (book.fmt(font_size=10, valign="vcenter", text_wrap=True),
            book.fmt(font_size=9, valign="vcenter", text_wrap=True, italic=True),
            style.cell(book, "param", "0"),
            style.cell(book, "param", style.BOOLEAN_FORMAT),
            style.not_applicable(book))


def _write_row(ws: Worksheet, col: dict[str, int], r: int, row: SizeRow,
               fmts: tuple[Format, Format, Format, Format, Format]) -> None:
    """A row's name, label, parameters and ceil_mode (a grey dash on a convolution row)."""
    text, _, param, boolean, na = fmts
    ws.set_row(r, ROW_HEIGHT)
    ws.write_string(r, col["name"], row.name, text)
    ws.write_string(r, col["label"], row.label, text)
    for key, value in (("p", row.padding), ("k", row.kernel_size), ("s", row.stride), ("d", row.dilation)):
        ws.write_number(r, col[key], value, param)
    if is_pool(row):
        ws.write_boolean(r, col["ceil"], row.ceil_mode, boolean)
    else:
        ws.write_string(r, col["ceil"], NOT_POOLING, na)


def _out_formula(row: SizeRow, h: str, cells: dict[str, str]) -> str:
    """H_out: the plain floor on a convolution row, torch's pooling rule (with ceil_mode) on a pooling row."""
    if is_pool(row):
        return fx.pool_out_size(h, cells["k"], cells["s"], cells["p"], cells["d"], cells["ceil"])
    return fx.out_size(h, cells["k"], cells["s"], cells["p"], cells["d"])


def build_sheet(book: Book, spec: SizeSheetSpec, mode: str = "worksheet", self_check: bool = True,
                tolerance: float = 0.005, info: str = "") -> None:
    """Write the output-size worksheet for spec into book (mode "key" or "student": an exercise sheet)."""
    if mode != "worksheet":
        return _exercise_sheet(book, spec, mode, self_check, tolerance, info)
    note = spec.note + " Yellow cells are parameters: change them and the sizes below follow."
    ws, col = _table(book, spec, COLUMNS, spec.title, note, worked=True)
    for r in range(2, TABLE_TOP - 1):  # no exercise line here: close the gap between the note and the table
        ws.set_row(r, 6)
    fmts = _formats(book)
    wrap = fmts[1]
    notes = _notes(True)
    noted: set[str] = set()

    def first(key: str, r: int, c: int) -> None:
        if key not in noted:
            noted.add(key)
            style.note(ws, r, c, notes[key])

    h: int | None = None
    for n, row in enumerate(spec.rows):
        r = TABLE_TOP + n
        _write_row(ws, col, r, row, fmts)
        if row.h_in is not None or n == 0:
            h = row.h_in
            ws.write_number(r, col["in"], h, fmts[2])
        else:
            # Chained: this layer's input is the previous layer's output.
            ws.write_formula(r, col["in"], fx.copy(a1(r - 1, col["out"])), style.cell(book, "input", "0"), h)
            first("chain", r, col["in"])
        assert h is not None, "spec.py requires layer[0].h_in, so every row has an input height"
        cells = {key: a1(r, col[key]) for key in ("in", "p", "k", "s", "d", "ceil")}
        raw = ref.lecture_out_size(h, row.kernel_size, row.stride, row.padding, row.dilation)
        ws.write_formula(r, col["lecture"], fx.unrounded_out_size(cells["in"], cells["k"], cells["s"], cells["p"],
                                                                  cells["d"]), style.cell(book, "product", "0.00"), raw)
        first("lecture", r, col["lecture"])
        out = ref.out_size(h, row.kernel_size, row.stride, row.padding, row.dilation, row.ceil_mode)
        ws.write_formula(r, col["out"], _out_formula(row, cells["in"], cells), style.cell(book, "output", "0", bold=True),
                         out)
        first("pool_out" if is_pool(row) else "out", r, col["out"])
        ws.write_string(r, col["remark"], row.lecture, wrap)
        keys = ["in", "k", "s", "p", "d"] + (["ceil"] if is_pool(row) else []) + ["lecture", "out"]
        book.record(f"size_{n}", "size", spec.sheet, [Grid(r, col[key], 1, 1) for key in keys], rows=keys,
                    layer=row.name)
        h = out
    _finish(ws, spec, COLUMNS, note, 6 * (TABLE_TOP - 3))


# --- exercise sheets: H_out and the unrounded value are the answers ----------------------------------------------

EXERCISE_INFO_ROW = 2
PARAMS = ("p", "k", "s", "d", "ceil")  # contiguous columns, in COLUMNS order; a convolution row has no ceil


def _params(row: SizeRow) -> tuple[str, ...]:
    """The typed parameter cells of a row: a convolution row has no ceil_mode."""
    return PARAMS if is_pool(row) else PARAMS[:-1]


def layer_inputs(spec: SizeSheetSpec) -> dict[str, list[list[list[int]]]]:
    """The typed cells of an exercise's size sheet as blocks: each layer's parameters, and its typed H_in."""
    out: dict[str, list[list[list[int]]]] = {}
    for n, row in enumerate(spec.rows):
        values = [row.padding, row.kernel_size, row.stride, row.dilation, int(row.ceil_mode)]
        out[f"layer{n}"] = [[values[:len(_params(row))]]]
        if row.h_in is not None:
            out[f"layer{n}_h_in"] = [[[row.h_in]]]
    return out


def _exercise_sheet(book: Book, spec: SizeSheetSpec, mode: str, self_check: bool, tolerance: float,
                    info: str) -> None:
    checking = self_check
    key_mode = mode == "key"
    columns = list(COLUMNS)
    if checking:
        at = [k for k, _, _ in columns].index("remark")
        columns[at:at] = [("check_lecture", "check", 7), ("check_out", "check", 7)]
    if not key_mode:  # the lecture's numbers are answers: the student's column stays empty, so keep it narrow
        columns[-1] = ("remark", "the lecture's numbers: in the answer key", 16)
    title = spec.title + (" (answer key)" if key_mode else " (exercise)")
    note = spec.exercise_note or spec.note
    if key_mode:
        note += (" ANSWER KEY: the yellow answer cells hold the live formulas where the student's workbook has "
                 "blank answer cells; the layout is the same cell for cell.")
    else:
        note += (f" Type each layer's unrounded (H_in + 2*padding - dilation*(kernel_size-1) - 1)/stride + 1 and "
                 f"its H_out into the yellow cells (answers within {tolerance:g} count). A chained H_in shows your "
                 f"H_out above. Parameters are protected (no password) so they cannot be changed by accident.")
    if checking:
        note += (f" The check columns show {fx.CHECK_RIGHT} or {fx.CHECK_WRONG} as you type; their formulas "
                 f"recompute the answer from the parameters, so they show how: that is what a self-check is.")
    ws, col = _table(book, spec, columns, title, note, worked=key_mode)
    if info:
        ws.write_string(EXERCISE_INFO_ROW, 1, info, book.fmt(bold=True, font_size=10, valign="vcenter"))
    fmts = _formats(book)
    wrap = fmts[1]
    notes = _notes(key_mode)
    answer_fmt = {key: (style.cell(book, "answer", "0.00" if key == "lecture" else "0", bold=True) if key_mode
                        else style.cell(book, "answer", "General", bold=True, locked=False)) for key in ("lecture", "out")}
    check_fmt = style.cell(book, "check", "@", bold=True, font_size=12)
    noted: set[str] = set()

    def first(key: str, r: int, c: int) -> None:
        if key not in noted:
            noted.add(key)
            style.note(ws, r, c, notes[key])

    h: int | None = None
    h_expr = ""
    checks: list[Grid] = []
    n_rows = len(spec.rows)
    for n, row in enumerate(spec.rows):
        r = TABLE_TOP + n
        _write_row(ws, col, r, row, fmts)
        if row.h_in is not None or n == 0:
            h = row.h_in
            ws.write_number(r, col["in"], h, fmts[2])
            h_expr = a1(r, col["in"], absolute=True)
            book.record(f"layer{n}_h_in", "input", spec.sheet, [Grid(r, col["in"], 1, 1)], layer=row.name)
        else:
            # Chained: the previous layer's output, as typed by the student (a formula of the answer above); on
            # the student's sheet a 0 (the answer above still blank) shows as a blank, not as a size of 0.
            ws.write_formula(r, col["in"], fx.copy(a1(r - 1, col["out"])),
                             style.cell(book, "input", "0" if key_mode else "0;-0;;@"), h if key_mode else 0)
            first("chain", r, col["in"])
        assert h is not None, "spec.py requires layer[0].h_in, so every row has an input height"
        params = _params(row)
        book.record(f"layer{n}", "input", spec.sheet, [Grid(r, col["p"], 1, len(params))], layer=row.name,
                    cells=list(params))
        cells = {key: a1(r, col[key]) for key in ("in", "p", "k", "s", "d", "ceil")}
        fixed = {key: a1(r, col[key], absolute=True) for key in ("p", "k", "s", "d", "ceil")}
        raw = ref.lecture_out_size(h, row.kernel_size, row.stride, row.padding, row.dilation)
        out = ref.out_size(h, row.kernel_size, row.stride, row.padding, row.dilation, row.ceil_mode)
        lecture_f = fx.unrounded_out_size(cells["in"], cells["k"], cells["s"], cells["p"], cells["d"])
        out_f = _out_formula(row, cells["in"], cells)
        for key, f, cached in (("lecture", lecture_f, raw), ("out", out_f, out)):
            if key_mode:
                ws.write_formula(r, col[key], f, answer_fmt[key], cached)
                first("pool_out" if key == "out" and is_pool(row) else key, r, col[key])
            else:
                ws.write_blank(r, col[key], None, answer_fmt[key])
                first(f"answer_{key}", r, col[key])
        # The right values from the typed parameters only: the chain is followed through expressions, never
        # through the student's answers. ceil_mode is protected, so a row without it keeps the plain floor (and
        # the chained expressions stay short).
        lecture_e = fx.unrounded_out_size(f"({h_expr})", fixed["k"], fixed["s"], fixed["p"], fixed["d"])[1:]
        out_e = (fx.pool_out_size(f"({h_expr})", fixed["k"], fixed["s"], fixed["p"], fixed["d"], fixed["ceil"])
                 if row.ceil_mode else fx.out_size(f"({h_expr})", fixed["k"], fixed["s"], fixed["p"], fixed["d"]))[1:]
        if checking:
            for key, e in (("lecture", lecture_e), ("out", out_e)):
                c = col[f"check_{key}"]
                f = fx.answer_check(a1(r, col[key]), e, tolerance + 1e-9)
                where = (f"{spec.path}: {spec.sheet}!{a1(r, c)} (the self-check of layer {row.name}; make the "
                         f"exercise with --no-self-check)")
                ws.write_formula(r, c, check_formula(f, where), check_fmt, fx.CHECK_RIGHT if key_mode else "")
                first("check", r, c)
        if key_mode:  # the lecture's numbers are answers: only the key quotes them
            ws.write_string(r, col["remark"], row.lecture, wrap)
        h, h_expr = out, out_e
    layers = [f"layer{n}" for n in range(n_rows)]
    h_ins = [f"layer{n}_h_in" if (row.h_in is not None or n == 0) else None for n, row in enumerate(spec.rows)]
    role = "output" if key_mode else "answer"
    for key, op in (("lecture", "lecture_size"), ("out", "out_size")):
        book.record(f"{'unrounded' if key == 'lecture' else 'H_out'}", role, spec.sheet,
                    [Grid(TABLE_TOP, col[key], n_rows, 1)], op=op, layers=layers, h_in=h_ins,
                    label="(H_in + 2p - d(k-1) - 1)/s + 1, unrounded" if key == "lecture" else "H_out")
    if checking:
        for key in ("lecture", "out"):
            g = Grid(TABLE_TOP, col[f"check_{key}"], n_rows, 1)
            checks.append(g)
            book.record(f"{'unrounded' if key == 'lecture' else 'H_out'}_check", "check", spec.sheet, [g],
                        output="unrounded" if key == "lecture" else "H_out")
            answers = Grid(TABLE_TOP, col[key], n_rows, 1)
            style.check_marks(book, ws, g, answers)
        total = 2 * n_rows
        c = col["remark"]
        ws.write_string(EXERCISE_INFO_ROW, c - 2, "score (live)", book.fmt(bold=True, align="right"))
        ws.write_formula(EXERCISE_INFO_ROW, c - 1, fx.count_right([g.ref() for g in checks]),
                         style.cell(book, "output", "0", bold=True), total if key_mode else 0)
        ws.write_string(EXERCISE_INFO_ROW, c, f"of {total}", book.fmt(bold=True))
        book.record("_score", "score", spec.sheet, [Grid(EXERCISE_INFO_ROW, c - 1, 1, 1)], total=total)
    ws.set_row(EXERCISE_INFO_ROW, 24)
    if mode == "student":
        style.protect_inputs(ws)
    _finish(ws, spec, columns, note, 24 + 15)
