"""The output-size worksheet: the lecture's H_out rule as a live table chained through the layers."""

from __future__ import annotations

import math

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import Book
from xlconv.cells import Grid, a1
from xlconv.spec import SizeSheetSpec

COLUMNS = [  # (key, heading, width)
    ("name", "layer", 12),
    ("label", "what it is", 44),
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


def build_sheet(book: Book, spec: SizeSheetSpec) -> None:
    """Write the output-size worksheet for spec into book."""
    ws = book.wb.add_worksheet(spec.sheet)
    col = {key: i + 1 for i, (key, _, _) in enumerate(COLUMNS)}
    ws.set_column(0, 0, 2)
    for key, _, width in COLUMNS:
        ws.set_column(col[key], col[key], width)
    ws.write_string(0, 1, spec.title, book.fmt(bold=True, font_size=16))
    note = spec.note + " Yellow cells are parameters: change them and the sizes below follow."
    ws.merge_range(1, 1, 1, col["remark"], note, book.fmt(text_wrap=True, valign="top", font_size=10))
    ws.set_row(1, 14 * max(2, math.ceil(len(note) / 190) + 1))
    head = book.fmt(bold=True, bottom=2, align="center", valign="vcenter", text_wrap=True)
    for key, heading, _ in COLUMNS:
        ws.write_string(TABLE_TOP - 1, col[key], heading, head)
    text = book.fmt(font_size=10, valign="vcenter")
    wrap = book.fmt(font_size=9, valign="vcenter", text_wrap=True, italic=True)
    param = book.cell_fmt("param", "0")
    h = None
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
            ws.write_formula(r, col["in"], fx.copy(a1(r - 1, col["out"])), book.cell_fmt("input", "0"), h)
        for key, value in (("p", row.padding), ("k", row.kernel_size), ("s", row.stride), ("d", row.dilation)):
            ws.write_number(r, col[key], value, param)
        ws.write_boolean(r, col["ceil"], row.ceil_mode, param)
        cells = {key: a1(r, col[key]) for key in ("in", "p", "k", "s", "d", "ceil")}
        raw = ref.lecture_out_size(h, row.kernel_size, row.stride, row.padding)
        ws.write_formula(r, col["lecture"], fx.lecture_out_size(cells["in"], cells["k"], cells["s"], cells["p"]),
                         book.cell_fmt("product", "0.00"), raw)
        out = ref.out_size(h, row.kernel_size, row.stride, row.padding, row.dilation, row.ceil_mode)
        ws.write_formula(r, col["out"], fx.out_size(cells["in"], cells["k"], cells["s"], cells["p"], cells["d"],
                                                    cells["ceil"]), book.cell_fmt("output", "0", bold=True), out)
        ws.write_string(r, col["remark"], row.lecture, wrap)
        book.record(f"size_{n}", "size", spec.sheet,
                    [Grid(r, col[key], 1, 1) for key in ("in", "k", "s", "p", "d", "ceil", "out")],
                    rows=["in", "k", "s", "p", "d", "ceil", "out"], layer=row.name, lecture_cell=h_cell and
                    a1(r, col["lecture"]))
        h = out
    ws.hide_gridlines(2)
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
