"""Exercise sheets: the answer cells (the key's formulas, or the student's blank cells) and their live
self-checks, which recompute each answer from the typed inputs only, never from the student's cells."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import check_formula
from xlconv.cells import Grid, a1
from xlconv.model import Conv, ConvTranspose, Op, Pool
from xlconv.sheets import style

if TYPE_CHECKING:
    from xlconv.sheets.conv import ConvSheet

CHECK_SLACK = 1e-9  # so that an answer exactly at the tolerance counts, whatever the binary rounding


def exercise_note(sheet: ConvSheet) -> str:
    """The note at the top of an exercise sheet: what to type, how it is checked."""
    s, tol = sheet.spec, f"{sheet.tolerance:g}"
    text = (s.exercise_note or s.note).strip()
    if "cross-correlation" not in text:
        text += " torch's Conv2d is a cross-correlation: the kernel slides without being flipped."
    text += " "
    if sheet.mode == "key":
        text += ("ANSWER KEY: the yellow answer cells hold the live formulas where the student's workbook has "
                 "blank answer cells; the layout is the same cell for cell.")
    else:
        text += (f"Type the value of every cell of each yellow answer grid (a number such as 3, -1 or 0.25; "
                 f"answers within {tol} of the right value count). The inputs and kernels are protected "
                 f"(no password) so they cannot be changed by accident; changed inputs are flagged when graded.")
    every = {op.name for op in s.ops}
    if sheet.answer_names and sheet.answer_names != every:
        text += (" Fill in the yellow blocks: " + ", ".join(sorted(sheet.answer_names)) + "; every other block is a "
                 "live formula, computed from your answers where it reads them (so a wrong answer shows downstream).")
    if sheet.checking:
        text += (f" The grid beside each answer grid shows {fx.CHECK_RIGHT} or {fx.CHECK_WRONG} as you type "
                 f"(? for text), and the score at the top counts the ticks. Those checks recompute the answer "
                 f"from the inputs, so their formulas show how: that is what a self-check is.")
    return text


def answer(sheet: ConvSheet, op: Op | str, k: int, g: Grid, values: np.ndarray, formula: Callable[[int, int], str],
           checks: list[Grid] | None, check_expr: Callable[[int, int], str] | None = None) -> None:
    """One channel of an answer grid: the key's formulas, or the student's blank unlocked cells; and its checks.

    op: the op (or the name of a gradient block); check_expr(i, j): the check's expression of the right answer,
    by default the cell recomputed from the typed inputs (expr)."""
    name = op if isinstance(op, str) else op.name
    b, ws = sheet.book, sheet.ws
    if sheet.mode == "key":
        sheet.write_grid(g, "answer", values, formula, style.cell(b, "answer", style.num_format(values), bold=True))
    else:
        fmt = style.cell(b, "answer", "General", bold=True, locked=False)
        for i in range(g.height):
            sheet.grid_rows.add(g.top + i)
            for j in range(g.width):
                ws.write_blank(g.top + i, g.left + j, None, fmt)
        sheet.max_col = max(sheet.max_col, g.right)
    if checks is None:
        return
    cg = checks[k]
    check_fmt = style.cell(b, "check", "@", bold=True, font_size=12)
    cached = fx.CHECK_RIGHT if sheet.mode == "key" else ""
    for i in range(g.height):
        sheet.grid_rows.add(cg.top + i)
        for j in range(g.width):
            r, c = cg.top + i, cg.left + j
            right = check_expr(i, j) if check_expr is not None else expr(sheet, name, k, i, j)
            f = fx.answer_check(g.cell(i, j), right, sheet.tolerance + CHECK_SLACK)
            ws.write_formula(r, c, check_formula(f, lambda: f"{sheet.spec.path}: {sheet.spec.sheet}!{a1(r, c)} "
                                                 f"(the self-check of {name}; make the exercise with "
                                                 f"--no-self-check)"), check_fmt, cached)
    sheet.max_col = max(sheet.max_col, cg.right)
    sheet.checks.append(cg)
    style.check_marks(b, ws, cg, g)


def record_checks(sheet: ConvSheet, op: Op | str, checks: list[Grid] | None) -> None:
    """Record an op's (or a gradient block's) self-check grids, so that grading can find them."""
    name = op if isinstance(op, str) else op.name
    if checks:
        sheet.book.record(f"{name}_check", "check", sheet.spec.sheet, checks, output=name)


def expr(sheet: ConvSheet, name: str, k: int, i: int, j: int) -> str:
    """Cell (k, i, j) of a grid or op as an expression of the typed input cells only (for self-checks)."""
    key = (name, k, i, j)
    if key not in sheet.exprs:
        op = sheet.ops_by_name.get(name)
        if op is None:
            e = sheet.placed[name].grids[k].cell(i, j, absolute=True)
        elif isinstance(op, Conv):
            e = conv_expr(sheet, op, k, i, j)
        elif isinstance(op, ConvTranspose):
            e = transpose_expr(sheet, op, k, i, j)
        elif isinstance(op, Pool):
            e = sheet.pool_formula(op, i, j, lambda rows, cols: [expr(sheet, op.input, k, r, c)
                                                                 for r in rows for c in cols])
        else:
            e = fx.relu(expr(sheet, op.input, k, i, j))[1:]
        sheet.exprs[key] = e
    return sheet.exprs[key]


def conv_expr(sheet: ConvSheet, op: Conv, oc: int, i: int, j: int) -> str:
    """A conv output cell as an expression of typed cells only (expanded tap by tap when its input is an answer)."""
    window_src, kernels, bias_cells, eh, ew = sheet.conv_ctx[op.name]
    bias = bias_cells[oc].cell(0, 0, absolute=True) if bias_cells else None
    if op.input not in sheet.ops_by_name:  # the window lies on typed (or padded copies of typed) cells
        r0, c0 = i * op.stride[0], j * op.stride[1]
        wins = [wg.window(r0, c0, eh, ew).ref(absolute=True) for wg in window_src.grids]
        return fx.conv(wins, [kg.ref(absolute=True) for kg in kernels[op.weight[oc]]], bias)[1:]
    # The input is another answer: expand it tap by tap, so the check never trusts the student's cells.
    return _tap_sum(sheet, op, oc, ref.conv_taps, bias, i, j)


def transpose_expr(sheet: ConvSheet, op: ConvTranspose, oc: int, i: int, j: int) -> str:
    """A transposed conv's output cell as an expression of typed cells only: SUMPRODUCT of the spread input's window
    and the flipped filter when its input is typed; else, by torch's scatter definition, tap by tap, so the check
    never trusts the student's cells."""
    spread, flipped, bias_cells, eh, ew = sheet.conv_ctx[op.name]
    bias = bias_cells[oc].cell(0, 0, absolute=True) if bias_cells else None
    if op.input not in sheet.ops_by_name:
        wins = [sg.window(i, j, eh, ew).ref(absolute=True) for sg in spread.grids]
        return fx.conv(wins, [kg.ref(absolute=True) for kg in flipped[op.weight[oc]]], bias)[1:]
    return _tap_sum(sheet, op, oc, ref.conv_transpose_taps, bias, i, j)


def _tap_sum(sheet: ConvSheet, op: Conv | ConvTranspose, oc: int, taps: Callable[..., list[ref.Tap]],
             bias: str | None, i: int, j: int) -> str:
    """Output cell (i, j) of filter oc as the sum of its products, each input cell an expression of typed cells
    (expr), so that a check never trusts the student's cells; taps (reference.conv_taps or conv_transpose_taps)
    says which products."""
    c_in, h, w = sheet.values[op.input].shape
    raw = sheet.placed[op.weight[oc]].grids
    size = (raw[0].height, raw[0].width)
    terms = [f"{raw[c].cell(u, v, absolute=True)}*({expr(sheet, op.input, c, a, b)})" for c in range(c_in)
             for a, b, u, v in taps(i, j, size, op.stride, op.padding, op.dilation, (h, w))]
    if bias:
        terms.append(bias)
    return "+".join(terms) or "0"


def score(sheet: ConvSheet, col: int, row: int) -> None:
    """The live score at the top of an exercise sheet: how many self-checks show a tick."""
    b, ws = sheet.book, sheet.ws
    total = sum(g.height * g.width for g in sheet.checks)
    ws.merge_range(row, col, row, col + 2, "score (live)", b.fmt(bold=True, align="right", valign="vcenter"))
    ws.write_formula(row, col + 3, fx.count_right([g.ref() for g in sheet.checks]),
                     style.cell(b, "output", "0", bold=True), total if sheet.mode == "key" else 0)
    ws.write_string(row, col + 4, f"of {total}", b.fmt(bold=True, valign="vcenter"))
    sheet.book.record("_score", "score", sheet.spec.sheet, [Grid(row, col + 3, 1, 1)], total=total)
