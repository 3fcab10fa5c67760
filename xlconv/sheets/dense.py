"""The dense head of a convolution worksheet: flatten, linear, softmax and the loss, each a band of live formulas
(vectors are rows; a linear's output is a column, each logit beside its row of weights), and with [examples] the
pick cell, the predicted class and the picked digit's true class."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

from xlconv import formulas as fx
from xlconv.cells import Grid
from xlconv.model import Flatten, Linear, Loss, Op, Softmax
from xlconv.sheets import digits, style

if TYPE_CHECKING:
    from xlconv.sheets.conv import ConvSheet


DENSE_ROW_POINTS = 16.0  # the tall weight columns print as table rows, not square cells
MAX_PREDICTION = 16  # classes the prediction band shows in a row


def band(sheet: ConvSheet, op: Op) -> None:
    """Write one dense op's band (a flatten read by a linear layer and that layer share one)."""
    if op.name in sheet.placed:
        return  # written with the op before it (a linear with its flatten)
    lin = next((o for o in sheet.spec.ops if isinstance(o, Linear) and o.input == op.name), None)
    if isinstance(op, Flatten) and lin is not None:
        _flatten_linear(sheet, op, lin)
    elif isinstance(op, Flatten):
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


def short_rows(sheet: ConvSheet, top: int, bottom: int) -> None:
    """Rows top..bottom print as table rows (DENSE_ROW_POINTS), not as square grid cells."""
    for r in range(top, bottom + 1):
        sheet.grid_rows.discard(r)
        sheet.row_points[r] = DENSE_ROW_POINTS


def _flatten_linear(sheet: ConvSheet, op: Flatten, lin: Linear) -> None:
    """Flatten as a column, and the linear layer's weights as one column per output beside it (row n of every
    weight column multiplies flatten cell n), its bias and its outputs (the logits) as rows under the columns."""
    src = sheet.placed[op.input]
    fvals = sheet.values[op.name]
    c, h, w = sheet.values[op.input].shape
    n_in = c * h * w
    wvals = sheet.spec.grid(lin.weight).values
    _, out, _ = wvals.shape
    lvals = sheet.values[lin.name]
    bias = f"{lin.name}_bias" if lin.bias is not None else None
    sheet.op_title(op, f"torch.flatten({op.input}) as a column of {n_in}; then {lin.label}: output k = "
                       f"SUMPRODUCT(weight column k, that column)" + (" + bias k" if bias else ""))
    top = sheet.row
    ws, b = sheet.ws, sheet.book
    wlabel = sheet.spec.grid(lin.weight).label
    sheet.label(top, 1, f"{op.label}")
    sheet.label(top, 3, f"{wlabel if 'x' in wlabel else f'{wlabel} ({out} x {n_in})'}: column k holds the weights "
                        f"of output k ({lin.weight}[k, :], torch's row k)")
    head = top + 1
    ws.write_string(head, 1, "n", b.fmt(bold=True, font_size=9, align="center"))
    ws.write_string(head, 2, "from", b.fmt(bold=True, font_size=9, italic=True))
    fg = Grid(head + 1, 1, n_in, 1)
    cg = Grid(head, 3, 1, out)
    wgrids = [Grid(head + 1, 3 + k, n_in, 1) for k in range(out)]
    bg = Grid(fg.bottom + 1, 3, 1, out) if bias else None
    lg = Grid(fg.bottom + (2 if bias else 1), 3, 1, out)
    for g in [fg, cg, lg, *wgrids] + ([bg] if bg else []):
        sheet.check_fits(g, op.label)
    sheet.write_grid(cg, "param", np.arange(out, dtype=np.float64).reshape(1, out), num_format="0")
    names = sheet.channel_names(op.input)
    small = b.fmt(font_size=8, italic=True, font_color="#595959", valign="vcenter")

    def formula(i: int, j: int) -> str:
        k, rest = divmod(i, h * w)
        return fx.copy(src.grids[k].cell(*divmod(rest, w)))

    if sheet.is_answer(op.name):
        from xlconv.sheets import answers

        answers.answer(sheet, op, 0, fg, fvals.reshape(n_in, 1), formula, None)
    else:
        sheet.write_grid(fg, "output", fvals.reshape(n_in, 1), formula, num_format=style.num_format(fvals))
        sheet.heatmap(fg, fvals)
    for n in range(n_in):
        k, rest = divmod(n, h * w)
        r, q = divmod(rest, w)
        ws.write_number(fg.top + n, 0, n, b.fmt(font_size=8, align="center", font_color="#595959"))
        ws.write_string(fg.top + n, 2, f"{names[k].replace('Filter', 'F').replace('channel', 'ch')} "
                                       f"({r + 1},{q + 1})", small)
    sheet.note(fg.top, fg.left, f"Flatten: the {c} maps of {op.input} read channel by channel, each row by row "
                                f"(torch.flatten's order), written as a column: cell n is channel n // {h * w}, row "
                                f"(n mod {h * w}) // {w}, column n mod {w} (the grey text beside it). Every cell is "
                                f"=cell of the map it copies.")
    sheet.place(op.name, [fg], fvals)
    sheet.book.record(op.name, sheet.output_role_of(op.name), sheet.spec.sheet, [fg], op="flatten", input=op.input,
                      label=op.label)
    for k, g in enumerate(wgrids):
        sheet.write_grid(g, "kernel", wvals[0, k].reshape(n_in, 1), num_format="0.00")
    whole = Grid(head + 1, 3, n_in, out)
    sheet.heatmap(whole, wvals[0])
    sheet.place(lin.weight, wgrids, wvals[0].reshape(out, n_in, 1))
    sheet.book.record(lin.weight, "kernel", sheet.spec.sheet, wgrids, label=wlabel,
                      source=sheet.spec.grid(lin.weight).source, exercise=None)
    sheet.note(wgrids[0].top, wgrids[0].left, f"The dense layer's weights, one column per output (class): column k "
                                              f"is row k of torch's weight ({out} x {n_in}), turned on its side so "
                                              f"that weight n of every class sits on the row of input n.")
    if bg is not None and lin.bias is not None:
        ws.write_string(bg.top, 2, "bias", b.fmt(bold=True, font_size=10, align="right"))
        sheet.write_grid(bg, "bias", np.asarray(lin.bias).reshape(1, out), num_format="0.00")
        sheet.book.record(f"{lin.name}_bias", "bias", sheet.spec.sheet, [bg])
        sheet.place(f"{lin.name}_bias", [bg], np.asarray(lin.bias).reshape(1, 1, out))
    ws.write_string(lg.top, 2, "output", b.fmt(bold=True, font_size=10, align="right"))
    x = fg.ref(absolute=True)

    def logit(i: int, j: int) -> str:
        return fx.dot(wgrids[j].ref(), x, bg.cell(0, j) if bg is not None else None)

    if sheet.is_answer(lin.name):
        from xlconv.sheets import answers

        answers.answer(sheet, lin, 0, lg, lvals.reshape(1, out), logit, None)
    else:
        sheet.write_grid(lg, "output", lvals.reshape(1, out), logit, num_format="0.00")
        sheet.heatmap(lg, lvals)
    ws.write_string(lg.top, lg.right + 1, lin.label, b.fmt(bold=True, font_size=10))
    sheet.note(lg.top, lg.left, f"A dense (fully connected) layer, F.linear: output k = SUMPRODUCT(weight column k, "
                                f"the {n_in} inputs in the flatten column)" + (" + bias k" if bias else "") +
                                ": each output sits under the column of weights that makes it.")
    sheet.place(lin.name, [lg], lvals)
    sheet.book.record(lin.name, sheet.output_role_of(lin.name), sheet.spec.sheet, [lg], op="linear", input=op.name,
                      weight=lin.weight, bias=bias, label=lin.label)
    short_rows(sheet, head, lg.bottom)
    sheet.max_col = max(sheet.max_col, lg.right + 1 + len(lin.label) // 7)
    sheet.row = lg.bottom + 2


def mse_formula(ys: list[Grid], ts: list[Grid], divisor: int, sheet_of: Callable[[str], str] = str) -> str:
    """MSE of an output and a target: SUMXMY2 per channel when their grids have the same shape, else cell by cell
    in C order (a row of probabilities against a column of targets); sheet_of qualifies a range or cell."""
    if [(g.height, g.width) for g in ys] == [(g.height, g.width) for g in ts]:
        return fx.mse([(sheet_of(y.ref(absolute=True)), sheet_of(t.ref(absolute=True))) for y, t in zip(ys, ts)],
                      divisor)
    return fx.squared_error(list(zip([sheet_of(c) for c in every_cell(ys)], [sheet_of(c) for c in every_cell(ts)])),
                            divisor)


def every_cell(grids: list[Grid]) -> list[str]:
    """The absolute address of every cell of a block, channel by channel, row by row (C order)."""
    return [c for g in grids for c in cells_of(g)]


def reserve(sheet: ConvSheet) -> dict[str, Grid]:
    """The prediction band under the inputs, so that a student sees it on the opening screen: the pick cell (with
    [examples]), the classes over their probabilities (the softmax block, heat-coloured), the predicted class, the
    true class (the loss's target) and the loss. Empty when the sheet has no softmax of at most MAX_PREDICTION
    classes; the softmax and loss then get bands of their own."""
    spec = sheet.spec
    soft = next((op for op in spec.ops if isinstance(op, Softmax)), None)
    if soft is None or sheet.values[soft.name].size > MAX_PREDICTION:
        return {}
    n = sheet.values[soft.name].size
    loss = next((op for op in spec.ops if isinstance(op, Loss) and op.loss == "cross_entropy"
                 and op.input == soft.input), None)
    ex = spec.examples
    sheet.start_band()
    sheet.label(sheet.row, 1, "The prediction: pick another digit (or type pixels) and watch it change" if ex is not None
                else "The prediction: the probability of each class, the predicted class, the target and the loss",
                bold=True)
    sheet.row_points[sheet.row] = style.OP_TITLE_ROW_POINTS
    sheet.row += 1
    blocks: list[tuple[str, list[str], tuple[int, int]]] = []
    keys = []
    if ex is not None:
        blocks.append((f"pick a digit (1-{len(ex.labels)})", [""], (1, 1)))
        keys.append("pick")
    checked = sheet.checking and sheet.is_answer(soft.name)
    blocks.append((f"{soft.label}: class, then its probability" + (", then its check" if checked else ""), [""],
                   (3 if checked else 2, n)))
    keys.append("classes")
    blocks.append(("predicted class", [""], (1, 1)))
    keys.append("predicted")
    if loss is not None or ex is not None:
        blocks.append(("true class" if ex is not None else "target class", [""], (1, 1)))
        keys.append("label")
    if loss is not None:
        blocks.append(("loss", [""], (1, 1)))
        keys.append("loss")
    placed = dict(zip(keys, (g[0] for g in sheet.band(blocks, label_rows=1))))
    last = list(placed.values())[-1]
    sheet.max_col = max(sheet.max_col, last.left + math.ceil(len(blocks[-1][0]) / 6))  # its label prints too
    both = placed.pop("classes")
    placed["class"] = Grid(both.top, both.left, 1, n)
    placed["probs"] = Grid(both.top + 1, both.left, 1, n)
    if checked:
        placed["probs_check"] = Grid(both.top + 2, both.left, 1, n)
    for k in ("pick", "predicted", "label", "loss"):  # under the class row, beside the probabilities
        if k in placed:
            g = placed[k]
            placed[k] = Grid(g.top + 1, g.left, 1, 1)
    sheet.grid_rows.update((both.top, both.top + 1))
    return placed


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
    if "probs" in sheet.reserved:
        _prediction(sheet, op, x, vals)
        return
    sheet.op_title(op, f"F.softmax({op.input}): EXP(x - max) / SUM(EXP(all - max)), {n} probabilities adding to 1")
    blocks = [("class", [""], (x.height, x.width)), (op.label, [""], (x.height, x.width))]
    ex = sheet.spec.examples
    blocks.append(("predicted class", [""], (1, 1)))
    if ex is not None:
        blocks.append(("true class" if ex is not None else "target class", [""], (1, 1)))
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


def _prediction(sheet: ConvSheet, op: Softmax, x: Grid, vals: np.ndarray) -> None:
    """The softmax in the prediction band: a row of probabilities under the classes, and the predicted class."""
    res = sheet.reserved
    cg, g, pg = res["class"], res["probs"], res["predicted"]
    n = vals.size
    sheet.write_grid(cg, "param", np.arange(n, dtype=np.float64).reshape(1, n), num_format="0")
    rng = x.ref(absolute=True)
    every = cells_of(x)

    def formula(i: int, j: int) -> str:
        return fx.softmax(x.cell(*vector_at(x, j)), rng, every)

    row = vals.reshape(1, n)
    if sheet.is_answer(op.name):
        from xlconv.sheets import answers

        checks = [res["probs_check"]] if "probs_check" in res else None
        answers.answer(sheet, op, 0, g, row, formula, checks, lambda i, j: formula(i, j)[1:])
        answers.record_checks(sheet, op, checks)
    else:
        sheet.write_grid(g, "output", row, formula, num_format="0.000")
        sheet.heatmap(g, vals)
    sheet.note(g.top, g.left, "Softmax turns the scores (logits, further down) into probabilities: EXP of each score "
                              "over the SUM of EXP of all of them. Subtracting the largest score first changes "
                              "nothing in the result but keeps EXP from overflowing, as torch does. The redder, the "
                              "surer.")
    probs = g.ref(absolute=True)
    sheet.write_grid(pg, "output", np.array([[int(np.argmax(vals))]]), lambda i, j: fx.predicted_class(probs),
                     fmt=style.cell(sheet.book, "output", "0", bold=True, font_size=14))
    sheet.note(pg.top, pg.left, "The predicted class: where the largest probability is (MATCH(MAX(p), p, 0) - 1, "
                                "counting from 0 like torch's argmax).")
    sheet.place(op.name, [g], vals)
    sheet.book.record(op.name, sheet.output_role_of(op.name), sheet.spec.sheet, [g], op="softmax", input=op.input,
                      label=op.label)


def _loss(sheet: ConvSheet, op: Loss) -> None:
    src = sheet.placed[op.input]
    vals = sheet.values[op.name]
    x = src.grids[0]
    if op.loss == "cross_entropy" and "loss" in sheet.reserved:
        tg, g = sheet.reserved["label"], sheet.reserved["loss"]
        ex = sheet.spec.examples
        picked: dict[str, object] = {}
        if ex is not None and sheet.label_cell:
            picked = dict(examples=digits.LABELS, pick=digits.PICK)  # written with the pick, INDEX by it
        else:
            sheet.write_grid(tg, "input", np.array([[float(op.target)]]),
                             fmt=style.cell(sheet.book, "input", "0", bold=True, font_size=14))
            sheet.note(tg.top, tg.left, "The true class: the target of the cross-entropy loss.")
        sheet.book.record(f"{op.name}_target", "input", sheet.spec.sheet, [tg], label="target class", **picked)
        sheet.place(f"{op.name}_target", [tg], np.array([[[op.target]]]))
        rng = x.ref(absolute=True)

        def ce(i: int, j: int) -> str:
            return fx.cross_entropy(rng, cells_of(x), index_args(x, f"{tg.cell(0, 0)}+1"))

        if sheet.is_answer(op.name):
            from xlconv.sheets import answers

            answers.answer(sheet, op, 0, g, vals[0], ce, None)
        else:
            sheet.write_grid(g, "output", vals[0], ce, num_format="0.000",
                             fmt=style.cell(sheet.book, "output", "0.000", bold=True))
        sheet.note(g.top, g.left, "Cross-entropy = -LN(probability of the true class) = LN(SUM(EXP(scores))) - "
                                  "score of the true class; the max is taken out of the EXPs and added back, as torch "
                                  "does, so nothing overflows. It is small when the network is sure and right.")
        sheet.place(op.name, [g], vals)
        sheet.book.record(op.name, sheet.output_role_of(op.name), sheet.spec.sheet, [g], op="cross_entropy",
                          input=op.input, target=f"{op.name}_target", reduction="mean", label=op.label)
        return
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
    formula = mse_formula(src.grids, tsrc.grids, divisor)
    sheet.write_grid(g, "output", vals[0], lambda i, j: formula, num_format="0.0000",
                     fmt=style.cell(sheet.book, "output", "0.0000", bold=True))
    sheet.note(g.top, g.left, "Mean squared error: the squared differences of output and target, added up"
                              + (f" and divided by the {n} cells (reduction mean)" if divisor != 1 else "") + ".")
    sheet.place(op.name, [g], vals)
    sheet.book.record(op.name, sheet.output_role, sheet.spec.sheet, [g], op="mse", input=op.input, target=target,
                      reduction=op.reduction, label=op.label)


__all__ = ["band", "vector_at", "index_args", "cells_of"]
