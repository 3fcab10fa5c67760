"""Feedback workbooks: the student's own sheet, rebuilt by us, each answer cell marked right or wrong with why.

A feedback workbook is never the submission (which stays byte for byte as it was handed in) and holds nothing
taken from it but the answer *values* the sandboxed reader returned: the layout comes from the key, the inputs
from the variant as generated, and every cell is written with XlsxWriter as a number or as plain text, never as
a formula, link or embedded object. The same gradebook gives the same bytes (fixed document dates).

By default a wrong cell's note gives the right value and how it is computed ("window rows 2-4, columns 3-5 of
6 x 6 image x Filter 1, summed -> 7"), from the op parameters the record holds; ``marks_only`` says right or
wrong and why (blank, not a number, typed as a formula) without revealing a value, for courses that allow
resubmission.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from xlconv import record
from xlconv import reference as ref
from xlconv.book import Book
from xlconv.cells import Grid
from xlconv.errors import WorkbookError
from xlconv.exercise import safe_id
from xlconv.flags import CellMark
from xlconv.sheets import size, style
from xlconv.verify import expected_block

if TYPE_CHECKING:
    from xlconv.grade import Gradebook, Key, Row

FEEDBACK_KEY = "feedback"  # the record sheet's row saying what this workbook is (it is not an exercise)
SHOWN_ROLES = ("input", "kernel", "bias", "padded", "dilated", "output")
HEADER_ROWS = 5  # rows above the key's layout we may use (an exercise sheet's first block starts lower)
TABLE_HEADING_POINTS = 26.0  # an output-size table's heading row: up to two lines of small type
SHORT_HEADINGS = {"ceil": "ceil_mode", "lecture": "unrounded"}  # the sheet's longer headings, in a narrow column

DASH = "\u2013"
TIMES = "\u00d7"
ARROW = "\u2192"
MAX_TERMS = 9  # products a transposed convolution's note spells out (a 3x3 kernel at stride 1 has 9)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: Any, limit: int = 120) -> str:
    """A student's text as something an .xlsx can hold and a note can show: no control characters, bounded."""
    s = _CONTROL.sub("?", str(text)).replace("\r", " ").replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _num(x: float) -> str:
    return f"{x:.6g}"


# --- how a right value is computed ---------------------------------------------------------------------------


def _span(start: int, step: int, count: int) -> str:
    """Grid rows (or columns) 1-based: "2-4" when adjacent, "1, 3, 5" when a dilation spaces them."""
    items = [start + t * step + 1 for t in range(count)]
    if step == 1 or count == 1:
        return f"{items[0]}{DASH}{items[-1]}" if count > 1 else str(items[0])
    return ", ".join(map(str, items))


def _channel_label(block: record.Block, c: int, by_name: Mapping[str, record.Block]) -> str:
    """What the sheet calls one channel of a block: a conv output's filter label, else "channel c"."""
    op = block.info.get("op")
    if op in ("conv", "conv_transpose"):
        weights = block.info.get("weight") or []
        if c < len(weights) and weights[c] in by_name:
            return str(by_name[weights[c]].info.get("label") or weights[c])
    if op in ("max_pool", "avg_pool", "relu"):
        src = by_name.get(str(block.info.get("input")))
        if src is not None and len(src.grids) > 1:
            return _channel_label(src, c, by_name)
    return f"channel {c + 1}" if len(block.grids) > 1 else ""


def _label(block: record.Block) -> str:
    return str(block.info.get("label") or block.name)


def _window(grid: Grid, r0: int, c0: int, kh: int, kw: int, dh: int, dw: int) -> str:
    """The sheet cells a window covers, as A1 (the grid's own cells only: padding outside has none)."""
    rows = [r0 + t * dh for t in range(kh) if 0 <= r0 + t * dh < grid.height]
    cols = [c0 + t * dw for t in range(kw) if 0 <= c0 + t * dw < grid.width]
    if not rows or not cols:
        return "padding only"
    return f"{grid.cell(rows[0], cols[0])}:{grid.cell(rows[-1], cols[-1])}"


def explain(block: record.Block, c: int, i: int, j: int, right: float, by_name: Mapping[str, record.Block],
            values: Mapping[str, np.ndarray]) -> str:
    """How the right value of one answer cell is computed, in the sheet's words and cells."""
    try:
        p = record.op_params(block)
    except WorkbookError:  # an output-size table or another recorded formula: its label says how
        return f"{_label(block)} {ARROW} {_num(right)}"
    if isinstance(p, (record.ConvParams, record.PoolParams)):
        source = by_name.get(p.input)
        if source is None:
            return f"right value {_num(right)}"
        stride, pad, dil = p.stride, p.padding, p.dilation
        if isinstance(p, record.ConvParams):
            weight = by_name.get(p.weight[c]) if c < len(p.weight) else None
            if weight is None:
                return f"right value {_num(right)}"
            kh, kw = weight.grids[0].height, weight.grids[0].width
        else:
            kh, kw = p.kernel_size
        # A padded copy on the sheet: the window is read there, with the padding as cells.
        padded = next((b for b in by_name.values() if b.role == "padded" and b.info.get("input") == p.input
                       and list(b.info.get("padding") or []) == list(pad)), None) if any(pad) else None
        grid_block, r0, c0 = (padded, i * stride[0], j * stride[1]) if padded else (
            source, i * stride[0] - pad[0], j * stride[1] - pad[1])
        rows, cols = _span(r0, dil[0], kh), _span(c0, dil[1], kw)
        where = f"rows {rows}, columns {cols}"
        src_c = 0 if isinstance(p, record.ConvParams) else c
        g = grid_block.grids[min(src_c, len(grid_block.grids) - 1)]
        cells = _window(g, r0, c0, kh, kw, dil[0], dil[1])
        of = _label(grid_block if padded is None else source) + (" (padded)" if padded else "")
        channel = _channel_label(source, src_c, by_name)
        if isinstance(p, record.ConvParams):
            many = f" in each of its {len(source.grids)} channels" if len(source.grids) > 1 else ""
            assert weight is not None  # a conv has a weight block per output channel (checked above)
            text = (f"window {where} of {of}{many} (cells {cells}) {TIMES} {_label(weight)}, "
                    f"products summed")
            if p.bias is not None and p.bias in values:
                text += f" + bias {_num(float(np.asarray(values[p.bias]).reshape(-1)[c]))}"
            if not padded and any(pad):
                text += f" (padding {pad[0]}: rows and columns outside the grid count as 0)"
        else:
            what = "largest value" if p.mode == "max" else "average"
            text = f"{what} of window {where} of {of}" + (f", {channel}" if channel else "") + f" (cells {cells})"
        return f"{text} {ARROW} {_num(right)}"
    if isinstance(p, record.ReluParams):
        src = by_name.get(p.input)
        cell = src.grids[c].cell(i, j) if src is not None and c < len(src.grids) else "the input cell"
        return f"ReLU: max(0, {cell}) {ARROW} {_num(right)}"
    if isinstance(p, record.ConvTransposeParams):
        source = by_name.get(p.input)
        weight = by_name.get(p.weight[c]) if c < len(p.weight) else None
        if source is not None and weight is not None:
            kh, kw = weight.grids[0].height, weight.grids[0].width
            taps = transpose_taps(p, [(g.height, g.width) for g in source.grids], kh, kw, i, j)
            terms = [f"{source.grids[ch].cell(a, b)} {TIMES} {weight.grids[min(ch, len(weight.grids) - 1)].cell(u, v)}"
                     for ch, a, b, u, v in taps]
            if terms:
                shown = " + ".join(terms[:MAX_TERMS]) + (f" + ... ({len(terms)} products)" if len(terms) > MAX_TERMS
                                                         else "")
                text = (f"every input cell whose spread reaches this cell, times the kernel tap it lands on: "
                        f"{shown}")
            else:
                text = "no input cell's spread reaches this cell (it is padding of the output): 0"
            if p.bias is not None and p.bias in values:
                text += f" + bias {_num(float(np.asarray(values[p.bias]).reshape(-1)[c]))}"
            return f"{text} {ARROW} {_num(right)}"
    return (f"every input cell spreads its value times the kernel into the output (see the spread grid); "
            f"their sum here {ARROW} {_num(right)}")


def transpose_taps(p: record.ConvTransposeParams, inputs: Sequence[tuple[int, int]], kh: int, kw: int, i: int,
                   j: int) -> list[tuple[int, int, int, int, int]]:
    """The (channel, input row, input column, kernel row, kernel column) whose products F.conv_transpose2d adds
    into output cell (i, j); inputs gives each input channel's (height, width)."""
    return [(ch, *tap) for ch, size in enumerate(inputs)
            for tap in ref.conv_transpose_taps(i, j, (kh, kw), p.stride, p.padding, p.dilation, size)]


# --- why an answer is right or wrong -----------------------------------------------------------------------


def verdict(cell: CellMark, expected: np.ndarray, tol: float, formulas: str, marks_only: bool,
            fits: str = "", other: np.ndarray | None = None) -> tuple[str, str]:
    """The cell's mark ("right", "wrong" or "not-a-number") and the reason, in a student's words."""
    e = float(expected[cell.channel, cell.i, cell.j])
    formula = f" typed as the formula {clean(cell.formula, 80)}" if cell.formula else ""
    if cell.right and formula and formulas == "zero":
        return "wrong", f"Right value, but{formula}: this course scores answers typed as formulas 0."
    if cell.right:
        text = "Right." if marks_only else f"Right: {_num(e)}."
        if cell.kind == "text":
            text += f" Typed as text {clean(cell.value, 40)!r}, read as {_num(cell.number or 0)}."
        if formula:
            text += f" It was{formula}; graded by its value. Type numbers, not formulas."
        return "right", text
    if cell.kind == "blank":
        return "wrong", "Blank: no answer."
    if cell.kind == "bad":
        return "not-a-number", f"Not a number: {clean(cell.value, 40)!r} is not an answer."
    x = float(cell.number if cell.number is not None else math.nan)
    lead = (f"Wrong:{formula}, whose value is {_num(x)}" if formula else f"Wrong: {_num(x)}")
    if marks_only:
        return "wrong", f"{lead} is not within {tol:g} of the right value."
    why = ""
    if fits and other is not None and abs(x - float(other[cell.channel, cell.i, cell.j])) <= tol + 1e-9:
        why = f"it is the right value for {fits}'s inputs, not yours"
    elif e != 0 and abs(x + e) <= tol:
        why = "the sign is flipped"
    elif (expected.shape[1] == expected.shape[2] and cell.i != cell.j
          and abs(x - float(expected[cell.channel, cell.j, cell.i])) <= tol):
        why = f"transposed: that is the right value of row {cell.j + 1}, column {cell.i + 1}"
    elif any(abs(x - float(expected[k, cell.i, cell.j])) <= tol for k in range(expected.shape[0]) if k != cell.channel):
        why = "that is another channel's value at this place"
    else:
        why = f"off by {_num(x - e)} (answers within {tol:g} count)"
    return "wrong", f"{lead}: {why}."


# --- the workbook ------------------------------------------------------------------------------------------


def all_values(key: Key, student_id: str) -> dict[str, np.ndarray]:
    """Every block's values for a student's variant: inputs as generated, padded and dilated copies, outputs."""
    variant = key.variants[student_id]
    cur = {k: np.asarray(v, dtype=np.float64) for k, v in variant["inputs"].items()}
    expected = key.expected(student_id)
    for rec in key.records:
        if rec.role in ("padded", "dilated"):
            cur[rec.name] = expected_block(rec, cur, None)[0]
        elif rec.role == "output":
            cur[rec.name] = expected[rec.name]
    return cur


def write_feedback(row: Row, book: Gradebook, key: Key, path: Path, marks_only: bool = False,
                   formulas: str = "flag") -> Path:
    """One student's feedback workbook at path (see the module docstring)."""
    values = all_values(key, row.student_id)
    expected = key.expected(row.student_id)
    other = key.expected(next(iter(row.fits.values()))) if row.fits else {}
    by_name = {b.name: b for b in key.records}
    total, final = row.total or 0, row.final
    with Book(path, f"Feedback: {key.title or key.exercise_id}") as wb:
        wb.meta[FEEDBACK_KEY] = json.dumps({"exercise_id": key.exercise_id, "student_id": row.student_id,
                                            "marks_only": marks_only}, sort_keys=True)
        ws = wb.wb.add_worksheet(key.sheet[:31])
        right_col = max([g.right for b in key.records if b.role in SHOWN_ROLES for g in b.grids] + [12])
        ws.set_column(0, 0, 2)
        ws.set_column(1, right_col + 1, style.COL_WIDTH)
        width_chars = int(right_col * style.column_px(style.COL_WIDTH) / 7)
        starts: list[int] = []  # the first rows of bands a page break must not cut
        heights: dict[int, float] = {}
        ws.write_string(0, 1, clean(f"Feedback: {key.title or key.exercise_id}", 200), wb.fmt(**style.TITLE))
        who = " ".join(x for x in (row.student_id, row.name) if x)
        ws.write_string(1, 1, clean(f"Student: {who or '-'}   |   variant {key.variants[row.student_id]['variant_id']}   "
                                    f"|   graded file: {Path(row.file).name}", 200), wb.fmt(bold=True))
        marks = f"Marks: {total} of {book.max}"
        if row.penalty:
            marks += f"   |   late penalty {row.penalty:g}%   |   final {final:g} of {book.max}"
        ws.write_string(2, 1, marks, wb.fmt(bold=True, font_size=12, font_color=style.HEADING_BLUE))
        legend = [("right", "right"), ("wrong", "wrong or blank"), ("not-a-number", "not a number")]
        looks = {kind: wb.fmt(bg_color=fill, font_color=font, border=1, border_color="#808080", align="center",
                              valign="vcenter", bold=True)
                 for kind, (_, fill, font) in zip(("right", "wrong", "not-a-number"), style.MARKS)}
        for n, (kind, text) in enumerate(legend):
            ws.merge_range(3, 1 + 3 * n, 3, 2 + 3 * n, text, looks[kind])
        hint = "Each answer cell has a note (point at it); the list under the grids repeats every reason."
        if row.flags:
            hint = "Flags: " + "; ".join(row.flags) + ".   " + hint
        hint_look = wb.fmt(text_wrap=True, valign="top", bold=bool(row.flags),
                           font_color=style.DARK_RED if row.flags else "#404040")
        # An output-size table has its column headings right above its first row, where the hint would go: the
        # hint then goes under the table.
        heads = table_headings(key.records)
        if not heads:
            heights[4] = _text_row(ws, 4, right_col, clean(hint, 600), hint_look, width_chars)
        head_look = wb.fmt(bold=True, bottom=2, align="center", valign="vcenter", text_wrap=True, font_size=9)
        head_row = min(heads)[0] if heads else -1
        wider = 0.0  # pixels the widened heading columns add to the sheet
        for (r, c), text in heads.items():
            text = clean(text, 40)
            if r == head_row:  # a column heading, its column wide enough for its longest word in small type
                ws.write_string(r, c, text, head_look)
                chars = max(style.COL_WIDTH, 0.9 * max(map(len, text.split()), default=0) + 1)
                ws.set_column(c, c, chars)
                wider += style.column_px(chars) - style.column_px(style.COL_WIDTH)
            else:  # a layer's name, left of its row
                ws.write_string(r, c, text, wb.fmt(bold=True, valign="vcenter"))
        if heads:
            heights[head_row] = TABLE_HEADING_POINTS
            ws.set_row(head_row, TABLE_HEADING_POINTS)
        input_look = {role: style.cell(wb, "padding" if role == "padded" else role, "General")
                      for role in ("input", "kernel", "bias", "padded", "dilated")}
        grid_rows: set[int] = set()
        lines: list[tuple[str, list[str]]] = []
        bottom = HEADER_ROWS
        cells_of = {(c.question, c.channel, c.i, c.j): c for c in row.cells}
        for b in key.records:
            if b.role not in SHOWN_ROLES:
                continue
            top = min(g.top for g in b.grids)
            bottom = max(bottom, max(g.bottom for g in b.grids))
            heading = _label(b)
            if b.role == "output":
                got, count = row.marks.get(b.name, 0), sum(g.height * g.width for g in b.grids)
                heading += f"   {ARROW}   {got} of {count} marks"
            elif b.role in ("padded", "dilated"):
                heading = f"{_label(by_name[str(b.info.get('input'))]) if b.info.get('input') in by_name else b.name}" \
                          f" ({'padded' if b.role == 'padded' else 'dilated'})"
            label_row = max(HEADER_ROWS, top - (2 if len(b.grids) > 1 else 1))
            starts.append(label_row)
            table = (b.role != "output" and all(g.height == g.width == 1 for g in b.grids)) or (
                bool(heads) and _in_size_table(b))
            if not table:  # a size table's cells sit row under row: a label above would cover the row before
                ws.write_string(label_row, b.grids[0].left, clean(heading, 200),
                                wb.fmt(bold=True, font_color=style.HEADING_BLUE))
            why: list[str] = []
            for c, g in enumerate(b.grids):
                label = _channel_label(b, c, by_name)
                if label and len(b.grids) > 1:
                    ws.write_string(g.top - 1, g.left, clean(label, 60), wb.fmt(italic=True))
                for i in range(g.height):
                    grid_rows.add(g.top + i)
                    for j in range(g.width):
                        r, col = g.top + i, g.left + j
                        if b.role != "output":
                            v = values.get(b.name)
                            if v is not None:
                                ws.write_number(r, col, style.cached(v[c, i, j]), input_look[b.role])
                            continue
                        cm = cells_of.get((b.name, c, i, j))
                        if cm is None:
                            continue
                        kind, reason = verdict(cm, expected[b.name], book.tolerance, formulas, marks_only,
                                               row.fits.get(b.name, ""), other.get(b.name))
                        _write_answer(ws, r, col, cm.value, looks[kind])
                        note = reason
                        if kind != "right" and not marks_only:
                            note += " Right value: " + explain(b, c, i, j, float(expected[b.name][c, i, j]), by_name,
                                                               values) + "."
                        style.note(ws, r, col, note)
                        if kind != "right" or cm.formula or cm.kind == "text":
                            where = g.cell(i, j) + (f" ({label})" if label else "")
                            why.append(f"{where}: {note}")
            if b.role == "output":
                lines.append((heading, why))
        r = bottom + 3
        if heads:
            starts.append(bottom + 2)
            heights[bottom + 2] = _text_row(ws, bottom + 2, right_col, clean(hint, 600), hint_look, width_chars)
            r += 1
        starts.append(r)
        ws.write_string(r, 1, "Why: every answer that lost marks, and answers typed in a way to avoid", wb.fmt(**style.TITLE))
        r += 1
        wrap = wb.fmt(text_wrap=True, valign="top", font_size=10)
        for heading, why in lines:
            ws.write_string(r, 1, clean(heading, 200), wb.fmt(bold=True, font_color=style.HEADING_BLUE))
            r += 1
            for text in why or ["All right."]:
                starts.append(r)
                heights[r] = _text_row(ws, r, right_col, clean(text, 600), wrap, width_chars)
                r += 1
            r += 1
        for gr in grid_rows:
            ws.set_row(gr, style.GRID_ROW_HEIGHT)
            heights[gr] = style.GRID_ROW_HEIGHT
        ws.print_area(0, 0, r, right_col + 1)
        points = [heights.get(n, style.HEADER_ROW_POINTS) for n in range(r + 1)]
        width = (2 * 7 + 5 + right_col * style.column_px(style.COL_WIDTH) + wider) * 0.75 \
            * style.LIBREOFFICE_COLUMN_STRETCH
        landscape, breaks, scale, _ = style.plan_pages(points, sorted(set(starts)), width)
        style.page_setup(ws, landscape=landscape, breaks=breaks, scale=scale if breaks else None)
        ws.set_zoom(style.fit_zoom((right_col * style.column_px(style.COL_WIDTH), 900)))
        ws.activate()
    return path


def _in_size_table(block: record.Block) -> bool:
    """Whether a block is a cell or column of an output-size table: a layer's typed cells or an answer column."""
    return "layer" in block.info or block.info.get("op") in ("lecture_size", "out_size")


def table_headings(blocks: Sequence[record.Block]) -> dict[tuple[int, int], str]:
    """An output-size table's headings as the student's sheet shows them: (row, column) -> text, the column
    headings in the row above the table's first row and each layer's name left of its row; empty for any other
    sheet."""
    table = [b for b in blocks if _in_size_table(b) and b.grids]
    if not any("layer" in b.info for b in table):
        return {}
    headings = {key: SHORT_HEADINGS.get(key, text) for key, text, _ in size.COLUMNS}
    top = min(g.top for b in table for g in b.grids)
    used = {(g.top + i, g.left + j) for b in blocks for g in b.grids for i in range(g.height) for j in range(g.width)}
    out: dict[tuple[int, int], str] = {}
    for b in table:
        g = b.grids[0]
        if b.info.get("op") in ("lecture_size", "out_size"):
            out[(top - 1, g.left)] = headings["out" if b.info["op"] == "out_size" else "lecture"]
            continue
        cells = b.info.get("cells")
        keys: list[Any] = cells if isinstance(cells, list) else ["in"]
        for k, key in enumerate(keys[:g.width]):
            out[(top - 1, g.left + k)] = headings.get(str(key), str(key))
        if (g.top, 1) not in used and g.left > 1:
            out[(g.top, 1)] = str(b.info["layer"])
    return {rc: text for rc, text in out.items() if rc[0] >= 0 and rc not in used}


def _text_row(ws: Any, r: int, right_col: int, text: str, look: Any, width_chars: int) -> float:
    """A line of text merged across the sheet's width and wrapped; returns the row height set (points)."""
    ws.merge_range(r, 1, r, right_col + 1, text, look)
    points = 14.0 * max(1, math.ceil(len(text) * 1.1 / max(40, width_chars)))
    ws.set_row(r, points)
    return points


def _write_answer(ws: Any, r: int, c: int, value: Any, look: Any) -> None:
    """A student's answer value as a number or as plain text, never as a formula (the file is untrusted)."""
    if isinstance(value, bool):
        ws.write_string(r, c, str(value).upper(), look)
    elif isinstance(value, (int, float)) and math.isfinite(float(value)):
        ws.write_number(r, c, float(value), look)
    elif value is None:
        ws.write_blank(r, c, None, look)
    else:
        ws.write_string(r, c, clean(value, 60), look)


def feedback_name(row: Row, taken: set[str]) -> str:
    """The feedback file's name: the student id (made safe for a file name), once per file."""
    stem = f"{safe_id(row.student_id)}-feedback" if row.student_id else "feedback"  # an exercise without a roster
    name, n = f"{stem}.xlsx", 2
    while name in taken:
        name, n = f"{stem}-{n}.xlsx", n + 1
    taken.add(name)
    return name


def write_all(book: Gradebook, key: Key, folder: Path, graded: Sequence[str], marks_only: bool = False,
              formulas: str = "flag") -> list[Path]:
    """A feedback workbook per graded row in folder; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    out = []
    for row in book.rows:
        if row.status in graded and row.student_id in key.variants:
            out.append(write_feedback(row, book, key, folder / feedback_name(row, taken), marks_only, formulas))
    return out


__all__ = ["write_feedback", "write_all", "verdict", "explain", "all_values", "feedback_name", "clean"]
