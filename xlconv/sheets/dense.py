"""The dense head of a convolution worksheet: flatten, linear, softmax and the loss, each a band of live formulas
(vectors are rows; a linear's output is a column, each logit beside its row of weights), and with [examples] the
pick cell, the predicted class and the picked digit's true class."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xlconv import formulas as fx
from xlconv.cells import Grid
from xlconv.model import Flatten, Linear, Loss, Op, Softmax
from xlconv.sheets import digits, style

if TYPE_CHECKING:
    from xlconv.sheets.conv import ConvSheet


def band(sheet: ConvSheet, op: Op) -> None:
    """Write one dense op's band."""
    if isinstance(op, Flatten):
        _flatten(sheet, op)
    elif isinstance(op, Linear):
        _linear(sheet, op)
    elif isinstance(op, Softmax):
        _softmax(sheet, op)
    elif isinstance(op, Loss):
        _loss(sheet, op)


def vector_at(grid: Grid, n: int) -> tuple[int, int]:
    """(row, column) inside a one-row or one-column grid of its n-th entry."""
    return (0, n) if grid.height == 1 else (n, 0)


def index_args(grid: Grid, position: str) -> str:
    """INDEX's position arguments for the entry at 1-based position (an expression) of a row or a column."""
    return f"1,{position}" if grid.height == 1 else f"{position},1"


def cells_of(grid: Grid) -> list[str]:
    """The absolute address of every cell of a grid, row by row."""
    return [grid.cell(i, j, absolute=True) for i in range(grid.height) for j in range(grid.width)]


def _flatten(sheet: ConvSheet, op: Flatten) -> None:
    src = sheet.placed[op.input]
    vals = sheet.values[op.name]
    c, h, w = sheet.values[op.input].shape
    sheet.op_title(op, f"torch.flatten({op.input}): channel by channel, row by row, {c} x {h} x {w} = {c * h * w}")
    (g,), = sheet.band([(f"{op.label} 1x{c * h * w}", [""], (1, c * h * w))])

    def formula(i: int, j: int) -> str:
        k, rest = divmod(j, h * w)
        return fx.copy(src.grids[k].cell(*divmod(rest, w)))

    sheet.write_grid(g, "output", vals[0], formula, num_format=style.num_format(vals))
    sheet.heatmap(g, vals)
    sheet.note(g.top, g.left, f"Flatten: the {c} maps of {op.input} read channel by channel, each row by row "
                              f"(torch.flatten's order), so cell n is channel n // {h * w}, row (n mod {h * w}) // "
                              f"{w}, column n mod {w}. Every cell is =cell of the map it copies.")
    sheet.place(op.name, [g], vals)
    sheet.book.record(op.name, sheet.output_role, sheet.spec.sheet, [g], op="flatten", input=op.input,
                      label=op.label)


def _linear(sheet: ConvSheet, op: Linear) -> None:
    src = sheet.placed[op.input]
    wvals = sheet.spec.grid(op.weight).values
    _, out, n_in = wvals.shape
    vals = sheet.values[op.name]
    bias = f"{op.name}_bias" if op.bias is not None else None
    sheet.op_title(op, f"F.linear({op.input}, weight={op.weight}" + (f", bias={bias})" if bias else ")") +
                   f": {out} outputs, each SUMPRODUCT(its row of weights, the input row)")
    wlabel = sheet.spec.grid(op.weight).label
    blocks = [(wlabel if "x" in wlabel else f"{wlabel} ({out} x {n_in})", [""], (out, n_in))]
    if bias:
        blocks.append(("bias", [""], (out, 1)))
    blocks.append((op.label, [""], (out, 1)))
    placed = sheet.band(blocks)
    wg = placed[0][0]
    sheet.write_grid(wg, "kernel", wvals[0], num_format="0.00")
    sheet.heatmap(wg, wvals[0])
    sheet.place(op.weight, [wg], wvals)
    sheet.book.record(op.weight, "kernel", sheet.spec.sheet, [wg], label=wlabel,
                      source=sheet.spec.grid(op.weight).source, exercise=None)
    bg = placed[1][0] if bias else None
    if bg is not None and op.bias is not None:
        sheet.write_grid(bg, "bias", np.asarray(op.bias).reshape(out, 1), num_format="0.00")
        sheet.book.record(f"{op.name}_bias", "bias", sheet.spec.sheet, [bg])
        sheet.place(f"{op.name}_bias", [bg], np.asarray(op.bias).reshape(1, -1, 1))
    g = placed[-1][0]
    x = src.grids[0]
    single_row = len(src.grids) == 1 and x.height == 1

    def formula(i: int, j: int) -> str:
        b = bg.cell(i, 0) if bg is not None else None
        if single_row:
            return fx.dot(wg.window(i, 0, 1, n_in).ref(), x.ref(absolute=True), b)
        c, h, w = sheet.values[op.input].shape
        terms = [f"{wg.cell(i, k * h * w + r * w + q)}*{src.grids[k].cell(r, q, absolute=True)}"
                 for k in range(c) for r in range(h) for q in range(w)]
        return fx.sum_of(terms + ([b] if b else []))

    sheet.write_grid(g, "output", vals[0], formula, num_format="0.00")
    sheet.heatmap(g, vals)
    sheet.note(g.top, g.left, f"A dense (fully connected) layer, F.linear: output o = SUMPRODUCT(row o of the weights, "
                              f"the {n_in} inputs)" + (" + bias o" if bias else "") + ". Row o of the weights lines up "
                              f"with the input row above it, so each logit sits beside the weights that make it.")
    sheet.place(op.name, [g], vals)
    sheet.book.record(op.name, sheet.output_role, sheet.spec.sheet, [g], op="linear", input=op.input,
                      weight=op.weight, bias=bias, label=op.label)


def _softmax(sheet: ConvSheet, op: Softmax) -> None:
    src = sheet.placed[op.input]
    vals = sheet.values[op.name]
    x = src.grids[0]
    n = vals.size
    sheet.op_title(op, f"F.softmax({op.input}): EXP(x - max) / SUM(EXP(all - max)), {n} probabilities adding to 1")
    blocks = [("class", [""], (x.height, x.width)), (op.label, [""], (x.height, x.width))]
    ex = sheet.spec.examples
    blocks.append(("predicted class", [""], (1, 1)))
    if ex is not None:
        blocks.append(("true class", [""], (1, 1)))
    placed = sheet.band(blocks)
    cg, g, pg = placed[0][0], placed[1][0], placed[2][0]
    classes = np.arange(n, dtype=np.float64).reshape(x.height, x.width)
    sheet.write_grid(cg, "param", classes, num_format="0")
    rng = x.ref(absolute=True)
    every = cells_of(x)
    sheet.write_grid(g, "output", vals[0], lambda i, j: fx.softmax(x.cell(i, j), rng, every), num_format="0.000")
    sheet.heatmap(g, vals)
    sheet.note(g.top, g.left, "Softmax turns the scores into probabilities: EXP of each score over the SUM of EXP of "
                              "all of them. Subtracting the largest score first changes nothing in the result but "
                              "keeps EXP from overflowing, as torch does.")
    predicted = int(np.argmax(vals))
    sheet.write_grid(pg, "output", np.array([[predicted]]), lambda i, j: fx.predicted_class(g.ref(absolute=True)),
                     fmt=style.cell(sheet.book, "output", "0", bold=True, font_size=14))
    sheet.note(pg.top, pg.left, "The predicted class: where the largest probability is (MATCH(MAX(p), p, 0) - 1, "
                                "counting from 0 like torch's argmax).")
    if ex is not None:
        tg = placed[3][0]
        sheet.ws.write_formula(tg.top, tg.left, fx.copy(sheet.label_cell), style.cell(sheet.book, "input", "0",
                                                                                      bold=True, font_size=14),
                               ex.labels[ex.pick])
        sheet.grid_rows.add(tg.top)
    sheet.place(op.name, [g], vals)
    sheet.book.record(op.name, sheet.output_role, sheet.spec.sheet, [g], op="softmax", input=op.input,
                      label=op.label)


def _loss(sheet: ConvSheet, op: Loss) -> None:
    src = sheet.placed[op.input]
    vals = sheet.values[op.name]
    x = src.grids[0]
    if op.loss == "cross_entropy":
        sheet.op_title(op, f"F.cross_entropy({op.input}, target): LN(SUM(EXP(x - max))) + max - x[target]")
        (tg,), (g,) = sheet.band([("target class", [""], (1, 1)), (f"{op.label} (cross-entropy)", [""], (1, 1))])
        ex = sheet.spec.examples
        target_info: dict[str, object] = {}
        if ex is not None and sheet.label_cell:
            sheet.write_grid(tg, "input", np.array([[float(op.target)]]), lambda i, j: fx.copy(sheet.label_cell))
            target_info = dict(examples=digits.LABELS, pick=digits.PICK)
            sheet.note(tg.top, tg.left, "The target is the picked digit's true class (from the Digits sheet).")
        else:
            sheet.write_grid(tg, "input", np.array([[float(op.target)]]))
        sheet.book.record(f"{op.name}_target", "input", sheet.spec.sheet, [tg], label="target class", **target_info)
        sheet.place(f"{op.name}_target", [tg], np.array([[[op.target]]]))
        rng = x.ref(absolute=True)
        sheet.write_grid(g, "output", vals[0], lambda i, j: fx.cross_entropy(rng, cells_of(x), index_args(x, f"{tg.cell(0, 0)}+1")),
                         num_format="0.0000", fmt=style.cell(sheet.book, "output", "0.0000", bold=True))
        sheet.note(g.top, g.left, "Cross-entropy = -LN(probability of the target class) = LN(SUM(EXP(scores))) - "
                                  "score of the target; the max is taken out of the EXPs and added back, as torch "
                                  "does, so nothing overflows. It is small when the network is sure and right.")
        sheet.place(op.name, [g], vals)
        sheet.book.record(op.name, sheet.output_role, sheet.spec.sheet, [g], op="cross_entropy", input=op.input,
                          target=f"{op.name}_target", reduction="mean", label=op.label)
        return
    target = str(op.target)
    tsrc = sheet.placed[target]
    n = sheet.values[op.input].size
    divisor = n if op.reduction == "mean" else 1
    sheet.op_title(op, f"F.mse_loss({op.input}, {target}, reduction=\"{op.reduction}\"): SUM((y - t)^2)"
                       + (f" / {n}" if divisor != 1 else ""))
    (g,), = sheet.band([(f"{op.label} (MSE)", [""], (1, 1))])
    pairs = [(yg.ref(absolute=True), tg_.ref(absolute=True)) for yg, tg_ in zip(src.grids, tsrc.grids)]
    sheet.write_grid(g, "output", vals[0], lambda i, j: fx.mse(pairs, divisor), num_format="0.0000",
                     fmt=style.cell(sheet.book, "output", "0.0000", bold=True))
    sheet.note(g.top, g.left, "Mean squared error: the squared differences of output and target, added up"
                              + (f" and divided by the {n} cells (reduction mean)" if divisor != 1 else "") + ".")
    sheet.place(op.name, [g], vals)
    sheet.book.record(op.name, sheet.output_role, sheet.spec.sheet, [g], op="mse", input=op.input, target=target,
                      reduction=op.reduction, label=op.label)


__all__ = ["band", "vector_at", "index_args", "cells_of"]
