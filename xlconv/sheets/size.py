"""The output-size worksheet: the lecture's H_out rule as a live table chained through the layers."""

from __future__ import annotations

import math
from typing import Sequence

from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import Book, check_formula
from xlconv.cells import Grid, a1
from xlconv.model import SizeSheetSpec
from xlconv.sheets import style

COLUMNS = [  # (key, heading, width)
    ("name", "layer", 12),
    ("label", "what it is", 62),
    ("in", "H_in", 8),
    ("p", "padding", 9),
    ("k", "kernel_size", 11),
    ("s", "stride", 8),
    ("d", "dilation", 9),
    ("ceil", "ceil_mode", 10),
    ("lecture", "(H_in + 2p - k)/s + 1", 20),
    ("out", "H_out", 8),
    ("remark", "the lecture's numbers", 60),
]
TABLE_TOP = 5


def _table(book: Book, spec: SizeSheetSpec, columns: Sequence[tuple[str, str, int]], title: str,
           note: str) -> tuple[Worksheet, dict[str, int]]:
    """A new sheet with the title, the note and the table's column headings; returns it and the column map."""
    ws = book.wb.add_worksheet(spec.sheet)
    col = {key: i + 1 for i, (key, _, _) in enumerate(columns)}
    ws.set_column(0, 0, 2)
    for key, _, width in columns:
        ws.set_column(col[key], col[key], width)
    ws.write_string(0, 1, title, book.fmt(bold=True, font_size=16))
    ws.merge_range(1, 1, 1, col["remark"], note, book.fmt(text_wrap=True, valign="top", font_size=10))
    ws.set_row(1, 14 * max(2, math.ceil(len(note) / 190) + 1))
    head = book.fmt(bold=True, bottom=2, align="center", valign="vcenter", text_wrap=True)
    for key, heading, _ in columns:
        ws.write_string(TABLE_TOP - 1, col[key], heading, head)
    return ws, col


def _formats(book: Book) -> tuple[Format, Format, Format]:
    """Formats of the table's text, remark and parameter cells."""
    return (book.fmt(font_size=10, valign="vcenter"), book.fmt(font_size=9, valign="vcenter", text_wrap=True,
                                                                italic=True), style.cell(book, "param", "0"))


def build_sheet(book: Book, spec: SizeSheetSpec, mode: str = "worksheet", self_check: bool = True,
                tolerance: float = 0.005, info: str = "") -> None:
    """Write the output-size worksheet for spec into book (mode "key" or "student": an exercise sheet)."""
    if mode != "worksheet":
        return _exercise_sheet(book, spec, mode, self_check, tolerance, info)
    note = spec.note + " Yellow cells are parameters: change them and the sizes below follow."
    ws, col = _table(book, spec, COLUMNS, spec.title, note)
    text, wrap, param = _formats(book)
    h: int | None = None
    for n, row in enumerate(spec.rows):
        r = TABLE_TOP + n
        ws.set_row(r, 30)
        ws.write_string(r, col["name"], row.name, text)
        ws.write_string(r, col["label"], row.label, text)
        h_cell = a1(r, col["in"])
        if row.h_in is not None or n == 0:
            h = row.h_in
            ws.write_number(r, col["in"], h, param)
        else:
            # Chained: this layer's input is the previous layer's output.
            ws.write_formula(r, col["in"], fx.copy(a1(r - 1, col["out"])), style.cell(book, "input", "0"), h)
        assert h is not None, "spec.py requires layer[0].h_in, so every row has an input height"
        for key, value in (("p", row.padding), ("k", row.kernel_size), ("s", row.stride), ("d", row.dilation)):
            ws.write_number(r, col[key], value, param)
        ws.write_boolean(r, col["ceil"], row.ceil_mode, style.cell(book, "param", style.BOOLEAN_FORMAT))
        cells = {key: a1(r, col[key]) for key in ("in", "p", "k", "s", "d", "ceil")}
        raw = ref.lecture_out_size(h, row.kernel_size, row.stride, row.padding)
        ws.write_formula(r, col["lecture"], fx.lecture_out_size(cells["in"], cells["k"], cells["s"], cells["p"]),
                         style.cell(book, "product", "0.00"), raw)
        out = ref.out_size(h, row.kernel_size, row.stride, row.padding, row.dilation, row.ceil_mode)
        ws.write_formula(r, col["out"], fx.out_size(cells["in"], cells["k"], cells["s"], cells["p"], cells["d"],
                                                    cells["ceil"]), style.cell(book, "output", "0", bold=True), out)
        ws.write_string(r, col["remark"], row.lecture, wrap)
        book.record(f"size_{n}", "size", spec.sheet,
                    [Grid(r, col[key], 1, 1) for key in ("in", "k", "s", "p", "d", "ceil", "out")],
                    rows=["in", "k", "s", "p", "d", "ceil", "out"], layer=row.name, lecture_cell=h_cell and
                    a1(r, col["lecture"]))
        h = out
    style.page_setup(ws)


# --- exercise sheets: H_out and the lecture's unrounded value are the answers ------------------------------------

EXERCISE_INFO_ROW = 2
PARAMS = ("p", "k", "s", "d", "ceil")  # contiguous columns, in COLUMNS order


def layer_inputs(spec: SizeSheetSpec) -> dict[str, list[list[list[int]]]]:
    """The typed cells of an exercise's size sheet as blocks: each layer's parameters, and its typed H_in."""
    out: dict[str, list[list[list[int]]]] = {}
    for n, row in enumerate(spec.rows):
        out[f"layer{n}"] = [[[row.padding, row.kernel_size, row.stride, row.dilation, int(row.ceil_mode)]]]
        if row.h_in is not None:
            out[f"layer{n}_h_in"] = [[[row.h_in]]]
    return out


def _exercise_sheet(book: Book, spec: SizeSheetSpec, mode: str, self_check: bool, tolerance: float,
                    info: str) -> None:
    checking = self_check
    columns = list(COLUMNS)
    if checking:
        at = [k for k, _, _ in columns].index("remark")
        columns[at:at] = [("check_lecture", "check", 7), ("check_out", "check", 7)]
    title = spec.title + (" (answer key)" if mode == "key" else " (exercise)")
    note = spec.exercise_note or spec.note
    if mode == "key":
        note += (" ANSWER KEY: the yellow answer cells hold the live formulas where the student's workbook has "
                 "blank answer cells; the layout is the same cell for cell.")
    else:
        note += (f" Type each layer's unrounded (H_in + 2*padding - kernel_size)/stride + 1 and its H_out into "
                 f"the yellow cells (answers within {tolerance:g} count). A chained H_in shows your H_out above. "
                 f"Parameters are protected (no password) so they cannot be changed by accident.")
    if checking:
        note += (f" The check columns show {fx.CHECK_RIGHT} or {fx.CHECK_WRONG} as you type; their formulas "
                 f"recompute the answer from the parameters, so they show how: that is what a self-check is.")
    ws, col = _table(book, spec, columns, title, note)
    if info:
        ws.write_string(EXERCISE_INFO_ROW, 1, info, book.fmt(bold=True, font_size=10, valign="vcenter"))
    text, wrap, param = _formats(book)
    key_mode = mode == "key"
    answer_fmt = {key: (style.cell(book, "answer", "0.00" if key == "lecture" else "0", bold=True) if key_mode
                        else style.cell(book, "answer", "General", bold=True, locked=False)) for key in ("lecture", "out")}
    check_fmt = style.cell(book, "check", "@", bold=True, font_size=12)
    h: int | None = None
    h_expr = ""
    checks: list[Grid] = []
    n_rows = len(spec.rows)
    for n, row in enumerate(spec.rows):
        r = TABLE_TOP + n
        ws.set_row(r, 30)
        ws.write_string(r, col["name"], row.name, text)
        ws.write_string(r, col["label"], row.label, text)
        if row.h_in is not None or n == 0:
            h = row.h_in
            ws.write_number(r, col["in"], h, param)
            h_expr = a1(r, col["in"], absolute=True)
            book.record(f"layer{n}_h_in", "input", spec.sheet, [Grid(r, col["in"], 1, 1)], layer=row.name)
        else:
            # Chained: the previous layer's output, as typed by the student (a formula of the answer above).
            ws.write_formula(r, col["in"], fx.copy(a1(r - 1, col["out"])), style.cell(book, "input", "0"),
                             h if key_mode else 0)
        assert h is not None, "spec.py requires layer[0].h_in, so every row has an input height"
        for key, value in (("p", row.padding), ("k", row.kernel_size), ("s", row.stride), ("d", row.dilation)):
            ws.write_number(r, col[key], value, param)
        ws.write_boolean(r, col["ceil"], row.ceil_mode, style.cell(book, "param", style.BOOLEAN_FORMAT))
        book.record(f"layer{n}", "input", spec.sheet, [Grid(r, col["p"], 1, len(PARAMS))], layer=row.name,
                    cells=list(PARAMS))
        cells = {key: a1(r, col[key]) for key in ("in", "p", "k", "s", "d", "ceil")}
        fixed = {key: a1(r, col[key], absolute=True) for key in ("p", "k", "s", "d", "ceil")}
        raw = ref.lecture_out_size(h, row.kernel_size, row.stride, row.padding)
        out = ref.out_size(h, row.kernel_size, row.stride, row.padding, row.dilation, row.ceil_mode)
        lecture_f = fx.lecture_out_size(cells["in"], cells["k"], cells["s"], cells["p"])
        out_f = fx.out_size(cells["in"], cells["k"], cells["s"], cells["p"], cells["d"], cells["ceil"])
        for key, f, cached in (("lecture", lecture_f, raw), ("out", out_f, out)):
            if key_mode:
                ws.write_formula(r, col[key], f, answer_fmt[key], cached)
            else:
                ws.write_blank(r, col[key], None, answer_fmt[key])
        # The right values from the typed parameters only: the chain is followed through expressions, never
        # through the student's answers.
        lecture_e = fx.lecture_out_size(f"({h_expr})", fixed["k"], fixed["s"], fixed["p"])[1:]
        out_e = (fx.out_size(f"({h_expr})", fixed["k"], fixed["s"], fixed["p"], fixed["d"], fixed["ceil"])
                 if row.ceil_mode else fx.out_size(f"({h_expr})", fixed["k"], fixed["s"], fixed["p"], fixed["d"]))[1:]
        if checking:
            for key, e in (("lecture", lecture_e), ("out", out_e)):
                c = col[f"check_{key}"]
                f = fx.answer_check(a1(r, col[key]), e, tolerance + 1e-9)
                where = (f"{spec.path}: {spec.sheet}!{a1(r, c)} (the self-check of layer {row.name}; make the "
                         f"exercise with --no-self-check)")
                ws.write_formula(r, c, check_formula(f, where), check_fmt, fx.CHECK_RIGHT if key_mode else "")
        if key_mode:  # the lecture's numbers are answers: only the key quotes them
            ws.write_string(r, col["remark"], row.lecture, wrap)
        h, h_expr = out, out_e
    layers = [f"layer{n}" for n in range(n_rows)]
    h_ins = [f"layer{n}_h_in" if (row.h_in is not None or n == 0) else None for n, row in enumerate(spec.rows)]
    role = "output" if key_mode else "answer"
    for key, op in (("lecture", "lecture_size"), ("out", "out_size")):
        book.record(f"{'unrounded' if key == 'lecture' else 'H_out'}", role, spec.sheet,
                    [Grid(TABLE_TOP, col[key], n_rows, 1)], op=op, layers=layers, h_in=h_ins,
                    label="(H_in + 2p - k)/s + 1, unrounded" if key == "lecture" else "H_out")
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
    style.page_setup(ws)
