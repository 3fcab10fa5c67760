"""The gradients sheet of a convolution worksheet with [gradients]: the backward pass as live formulas, one block
per gradient ("<grid>_grad", laid out like its grid), from dL/dlogits back through the linear layer, the flatten,
the pooling, the ReLU and the convolution; then, with [sgd], the weights after one SGD step and the forward pass
again with them, so that the loss after the step sits beside the loss before it."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.cells import Grid, on_sheet
from xlconv.errors import SpecError
from xlconv.model import Conv, Flatten, Linear, Loss, Op, Pool, Relu, Softmax, apply, gradients, graph_values, nodes
from xlconv.sheets import answers, dense, style
from xlconv.sheets.conv import ConvSheet, Placed

SHEET_SUFFIX = " gradients"
# Gradients are small (most of dL/dfc is below 0.001): scientific notation shows their size, -1.2E-4 = -0.00012,
# in a slightly smaller font so that the columns stay as narrow as the first sheet's.
GRAD_FORMAT = "0.0E+0;-0.0E+0;0"  # an exact zero (no gradient reaches the cell) reads 0
GRAD_FONT = 9


def sheet_name(main: str) -> str:
    """The gradients sheet's name: the main sheet's plus " gradients", within Excel's 31 characters."""
    return main[:31 - len(SHEET_SUFFIX)] + SHEET_SUFFIX


class GradSheet(ConvSheet):
    """Writes the backward pass and the SGD step of a forward ConvSheet onto a sheet of their own."""

    def __init__(self, fwd: ConvSheet, same_sheet: bool = False):
        if same_sheet:  # an exercise: the backward pass under the forward one (grading reads one sheet), no step
            spec = replace(fwd.spec, lr=None)
        else:
            spec = replace(fwd.spec, sheet=sheet_name(fwd.spec.sheet),
                           title=f"{fwd.spec.title}: gradients and one SGD step")
        self.fwd = fwd
        self.same_sheet = same_sheet
        self.loss = next(op for op in fwd.spec.ops if isinstance(op, Loss))
        self.graph = ref.ancestors(nodes(fwd.spec), self.loss.name)
        values = dict(graph_values(fwd.spec, fwd.values))
        self.grads = gradients(fwd.spec, fwd.values)
        values.update({f"{k}_grad": v for k, v in self.grads.items()})
        super().__init__(fwd.book, spec, values=values, mode=fwd.mode, self_check=fwd.checking,
                         tolerance=fwd.tolerance, ws=fwd.ws if same_sheet else None)
        if same_sheet:  # one sheet, one layout: share what _finish reads
            for attr in ("placed", "grid_rows", "row_points", "notes", "highlights", "colour_scales", "scaled", "roles",
                         "band_starts", "checks", "lit"):
                setattr(self, attr, getattr(fwd, attr))
            self.row, self.max_col, self.widest = fwd.row, fwd.max_col, fwd.widest
        wrt = set(spec.wrt)
        self.depends: set[str] = set(wrt)  # the values downstream of a grid we differentiate by
        for op in spec.ops:
            reads = [op.input, *(op.weight if isinstance(op, Conv) else ()), *((op.weight,) if isinstance(op, Linear)
                                                                               else ())]
            if any(r in self.depends for r in reads):
                self.depends.add(op.name)
        self.trained: list[str] = []  # wrt grids and the biases of their ops, in the order the sheet steps them
        self.after: dict[str, str] = {}  # value -> the block holding it after the step
        self.lr_cell = ""
        self.summary: list[Grid] = []

    # -- references to either sheet ------------------------------------------------------------------------------

    def grids_of(self, name: str) -> tuple[str | None, list[Grid]]:
        """(the other sheet's name, or None for this one; the grids) of a value."""
        if name in self.placed:
            return None, self.placed[name].grids
        other = None if self.same_sheet else self.fwd.spec.sheet
        if name in self.fwd.placed:
            return other, self.fwd.placed[name].grids
        op = name[:-len("_bias")] if name.endswith("_bias") else ""
        if op in self.fwd.conv_ctx and self.fwd.conv_ctx[op][2]:
            cells = self.fwd.conv_ctx[op][2]
            assert cells is not None, "checked just above"
            return other, cells
        raise SpecError(f"{self.spec.path}: {name!r} is not on the sheet: the gradients sheet cannot draw it")

    def at(self, name: str, k: int, i: int, j: int, absolute: bool = False) -> str:
        """A cell of a value, with its sheet's name when it is on the forward sheet."""
        sheet, grids = self.grids_of(name)
        c = grids[k].cell(i, j, absolute=absolute or sheet is not None)
        return on_sheet(sheet, c) if sheet else c

    def span(self, name: str, k: int, window: tuple[int, int, int, int] | None = None) -> str:
        """An absolute range of a value's channel k (or a window (i, j, h, w) of it), with its sheet's name."""
        sheet, grids = self.grids_of(name)
        g = grids[k] if window is None else grids[k].window(*window)
        return on_sheet(sheet, g.ref(absolute=True)) if sheet else g.ref(absolute=True)

    def every_cell(self, name: str) -> list[str]:
        """Every cell of a value, channel by channel, row by row (C order), with its sheet's name when elsewhere."""
        grids = self.grids_of(name)[1]
        return [self.at(name, k, i, j) for k, g in enumerate(grids) for i in range(g.height) for j in range(g.width)]

    def every(self, name: str) -> list[str]:
        """Every cell of a one-channel value, row by row, absolute and with its sheet's name."""
        g = self.grids_of(name)[1][0]
        return [self.at(name, 0, i, j, absolute=True) for i in range(g.height) for j in range(g.width)]

    def put(self, name: str, grids: list[Grid], values: np.ndarray, formula: Callable[[int, int, int], str],
            num_format: str = GRAD_FORMAT, role: str = "output", heat: bool = True) -> None:
        """Write a block channel by channel (formula(k, i, j)) and remember it as name."""
        values = np.asarray(values, dtype=np.float64).reshape(len(grids), grids[0].height, grids[0].width)
        for k, g in enumerate(grids):
            def channel(i: int, j: int, k: int = k) -> str:
                return formula(k, i, j)

            self.write_grid(g, role, values[k], channel, num_format=num_format,
                            font_size=GRAD_FONT if num_format in (GRAD_FORMAT, "0.0000") else 11)
            if heat:
                self.heatmap(g, values)
        self.placed[name] = Placed(name, grids, values)
        self.values[name] = values

    def grad_block(self, of: str, grids: list[Grid], formula: Callable[[int, int, int], str], label: str,
                   checks: list[Grid] | None = None) -> None:
        """A recorded gradient block dL/d(of), named "<of>_grad" (on an exercise sheet perhaps an answer block,
        checked by its own formula: the rule applied to the blocks it reads)."""
        name = f"{of}_grad"
        if self.is_answer(name):
            vals = np.asarray(self.grads[of], dtype=np.float64).reshape(len(grids), grids[0].height, grids[0].width)
            for k, g in enumerate(grids):
                def channel(i: int, j: int, k: int = k) -> str:
                    return formula(k, i, j)

                def right(i: int, j: int, k: int = k) -> str:
                    return formula(k, i, j)[1:]

                answers.answer(self, name, k, g, vals[k], channel, checks, right)
            self.placed[name] = Placed(name, grids, vals)
            self.values[name] = vals
            answers.record_checks(self, name, checks)
        else:
            self.put(name, grids, self.grads[of], formula)
        self.book.record(name, self.output_role_of(name), self.spec.sheet, grids, op="grad", of=of,
                         loss=self.loss.name, label=label)

    def shape_blocks(self, name: str, label: str) -> tuple[str, Sequence[str], tuple[int, int]]:
        """A band block laid out like the value name (as drawn, when it is: a vector may be a row or a column)."""
        c, h, w = np.shape(self.values[name])
        try:
            grids = self.grids_of(name)[1]
            c, h, w = len(grids), grids[0].height, grids[0].width
        except SpecError:
            pass
        # The channels as the forward sheet names them: a conv's outputs (and the ReLU and pooling of them) are the
        # lecture's "Filter 1", "Filter 2", ...; an image's are "channel 0", ...
        names = self.band_labels(name)
        if len(names) != c:  # drawn in another shape (a vector as a row or a column)
            names = [f"channel {k}" for k in range(c)] if c > 1 else [""]
        return (label, names, (h, w))

    def heading(self, text: str) -> None:
        """A band's heading line (the rule it applies); moves the cursor down a row."""
        self.start_band()
        self.ws.write_string(self.row, 1, text, self.book.fmt(bold=True, font_size=12, font_color=style.HEADING_BLUE))
        self.row_points[self.row] = style.OP_TITLE_ROW_POINTS
        self.row += 1

    def band(self, blocks: Sequence[tuple[str, Sequence[str], tuple[int, int]]], start_col: int = 1,
             label_rows: int = 2) -> list[list[Grid]]:
        """ConvSheet's band, with each block's label kept inside the printed width (a label wider than its block,
        "dL/dlogits_bias" over one column, would otherwise print on a page of its own)."""
        out = super().band(blocks, start_col, label_rows)
        for (label, _, _), grids in zip(blocks, out):
            self.max_col = max(self.max_col, grids[0].left + math.ceil(len(label) / 5.5))
        return out

    def stack_rows(self, labels: Sequence[str], n: int) -> list[Grid]:
        """Rows of n cells under one another, each labelled on its left (columns B and C), below the cursor."""
        top = self.row
        grids = []
        for r, text in enumerate(labels):
            self.ws.write_string(top + r, 1, text, self.book.fmt(bold=True, font_size=10, valign="vcenter"))
            g = Grid(top + r, 3, 1, n)
            self.check_fits(g, text)
            grids.append(g)
        self.max_col = max(self.max_col, 3 + n)
        self.row = top + len(labels) + 1
        return grids

    # -- the sheet -----------------------------------------------------------------------------------------------

    def build(self, finish: bool = True) -> None:
        """Write the whole sheet (on the same sheet: the bands only, then hand the layout back to the forward one,
        which finishes it)."""
        if self.same_sheet:
            self.start_band()
            self.ws.write_string(self.row, 1, "Backpropagation: dL/d(each block), from the loss back, by the chain "
                                              "rule (loss.backward())",
                                 self.book.fmt(bold=True, font_size=14, font_color=style.HEADING_BLUE))
            self.row_points[self.row] = style.TITLE_ROW_POINTS
            self.row += 1
        else:
            self._header()
            self._summary()
        self._loss_grad()
        for n in reversed(self.graph[:-1]):
            op = self.ops_by_name[n.name]
            if op.name in self.depends and f"{op.name}_grad" in self.placed:
                self._backward(op)
        if self.spec.lr is not None:
            self._after_step()
        if self.same_sheet:
            self.fwd.row, self.fwd.max_col = self.row, max(self.fwd.max_col, self.max_col)
            self.fwd.widest = max(self.fwd.widest, self.widest)
            return
        if finish:
            self._finish()

    def sheet_note(self) -> str:
        """What the sheet shows, in the lecture's terms."""
        steps = ("Backpropagation, cell by cell: each block is dL/d(something), L the loss on the first sheet, "
                 "computed from the block above it by the chain rule, exactly as loss.backward() does in torch. "
                 "Start at the top: dL/dlogits = softmax - one-hot. Each block's first cell has a note with its rule.")
        if self.spec.lr is not None:
            steps += (" Then one step of SGD, W - lr x dL/dW, and the forward pass again with the new weights: the "
                      "loss after the step is at the top, beside the loss before it. Type another lr and watch.")
        return steps + " Every cell is a live formula; change the image or a weight on the first sheet and all follow."

    def _summary(self) -> None:
        self.start_band()
        self.label(self.row, 1, "The loss, and one step of gradient descent", bold=True)
        self.row += 1
        blocks: list[tuple[str, Sequence[str], tuple[int, int]]] = [("loss now", [""], (1, 1))]
        if self.spec.lr is not None:
            blocks += [("learning rate lr", [""], (1, 1)), ("loss after one step", [""], (1, 1)),
                       ("change", [""], (1, 1))]
        placed = self.band(blocks)
        now = placed[0][0]
        loss = float(self.values[self.loss.name].ravel()[0])
        self.write_grid(now, "output", np.array([[loss]]), lambda i, j: fx.copy(self.at(self.loss.name, 0, 0, 0)),
                        num_format="0.0000", font_size=GRAD_FONT)
        self.summary = [g[0] for g in placed]
        if self.spec.lr is not None:
            lr = placed[1][0]
            self.write_grid(lr, "param", np.array([[self.spec.lr]]), num_format="General")
            self.book.record("lr", "input", self.spec.sheet, [lr], label="learning rate")
            self.placed["lr"] = Placed("lr", [lr], np.array([[[self.spec.lr]]]))
            self.lr_cell = lr.cell(0, 0, absolute=True)
            self.note(lr.top, lr.left, "The learning rate of torch.optim.SGD: each trained weight moves by -lr x its "
                                       "gradient. Type another and the step below and the loss after it follow.")

    def _loss_grad(self) -> None:
        loss = self.loss
        x = loss.input
        xg = self.fwd.placed[x].grids[0]
        if loss.loss == "cross_entropy":
            self.heading("dL/dlogits = softmax(logits) - one-hot(target): the first step back")
            shape = (xg.height, xg.width)
            blocks = [("class", [""], shape), ("softmax p", [""], shape), ("one-hot", [""], shape),
                      (f"dL/d{x}", [""], shape)]
            if shape[0] == 1:  # a row of logits: the four rows under one another, class above class
                cg, pg, og, gg = self.stack_rows([label for label, _, _ in blocks], shape[1])
            else:
                cg, pg, og, gg = (g[0] for g in self.band(blocks))
            n = xg.height * xg.width
            classes = np.arange(n, dtype=np.float64).reshape(shape)
            self.write_grid(cg, "param", classes, num_format="0")
            p = ref.softmax(self.values[x]).reshape(shape)
            soft = next((op for op in self.spec.ops if isinstance(op, Softmax) and op.input == x), None)
            rng = self.span(x, 0)

            def p_formula(i: int, j: int) -> str:
                if soft is not None:
                    return fx.copy(self.at(soft.name, 0, i, j))
                return fx.softmax(self.at(x, 0, i, j), rng, self.every(x))

            self.write_grid(pg, "output", p, p_formula, num_format="0.000")
            self.heatmap(pg, p)
            target = self.at(f"{loss.name}_target", 0, 0, 0)
            t = int(self.values[f"{loss.name}_target"].ravel()[0])
            onehot = (classes == t).astype(np.float64)
            self.write_grid(og, "output", onehot, lambda i, j: fx.one_hot(cg.cell(i, j), target), num_format="0")
            self.grad_block(x, [gg], lambda k, i, j: fx.minus(pg.cell(i, j), og.cell(i, j)), f"dL/d{x}")
            self.note(gg.top, gg.left, "dL/dlogit = p - 1 for the target class, p for every other: the gradient of "
                                       "cross-entropy after softmax. Pushing a score against its gradient raises the "
                                       "target's probability and lowers the others.")
        else:
            target = str(loss.target)
            n = int(np.size(self.values[x]))
            divisor = n if loss.reduction == "mean" else 1
            self.heading(f"dL/d{x} = 2 (y - target) / {divisor}: the first step back")
            (grids,) = self.band([self.shape_blocks(x, f"dL/d{x}")])
            ys, ts = self.every_cell(x), self.every_cell(target)  # C order: a row against a column pairs up too
            hw = grids[0].height * grids[0].width
            self.grad_block(x, grids, lambda k, i, j: fx.mse_grad(ys[k * hw + i * grids[0].width + j],
                                                                   ts[k * hw + i * grids[0].width + j], divisor),
                            f"dL/d{x}")
            self.note(grids[0].top, grids[0].left, f"The derivative of the squared error: 2 (y - t), divided by the "
                                                   f"{divisor} cells the mean divides by.")

    def _backward(self, op: Op) -> None:
        g = f"{op.name}_grad"
        gg = self.placed[g].grids
        wants_input = op.input in self.depends
        if isinstance(op, Linear):
            self._linear(op, gg[0], wants_input)
        elif isinstance(op, Conv):
            self._conv_grad(op, wants_input)
        elif not wants_input:
            return
        elif isinstance(op, Flatten):
            c, h, w = np.shape(self.values[op.input])
            self.heading(f"dL/d{op.input}: the gradient row put back into {c} maps of {h} x {w} (unflatten)")
            (grids,) = self.band([self.shape_blocks(op.input, f"dL/d{op.input}")])
            self.grad_block(op.input, grids, lambda k, i, j: fx.copy(gg[0].cell(*dense.vector_at(gg[0], k * h * w + i * w + j))),
                            f"dL/d{op.input}")
            self.note(grids[0].top, grids[0].left, "Flattening only moves numbers, so its gradient moves them back: "
                                                   "each cell copies its place in the gradient row.")
        elif isinstance(op, Pool):
            self._pool_grad(op, gg)
        elif isinstance(op, Relu):
            self.heading(f"dL/d{op.input} = dL/d{op.name} where {op.name} > 0, else 0 (the ReLU mask)")
            (grids,) = self.band([self.shape_blocks(op.input, f"dL/d{op.input}")])
            self.grad_block(op.input, grids, lambda k, i, j: fx.relu_grad(self.at(op.name, k, i, j), gg[k].cell(i, j)),
                            f"dL/d{op.input}")
            self.note(grids[0].top, grids[0].left, "ReLU passes the gradient where it let the value through (output "
                                                   "> 0) and blocks it where it gave 0, torch's rule; a cell that was "
                                                   "negative gets no gradient at all.")
        elif isinstance(op, Softmax):
            self.heading(f"dL/d{op.input} = p (g - SUMPRODUCT(g, p)) through softmax")
            (grids,) = self.band([self.shape_blocks(op.input, f"dL/d{op.input}")])
            self.grad_block(op.input, grids, lambda k, i, j: fx.softmax_grad(
                self.at(op.name, 0, i, j), gg[0].cell(i, j), self.span(op.name, 0), gg[0].ref(absolute=True)),
                f"dL/d{op.input}")

    def _linear(self, op: Linear, gcol: Grid, wants_input: bool) -> None:
        wgrids = self.grids_of(op.weight)[1]
        if len(wgrids) > 1:  # the weights drawn one column per output (dense.py's flatten-and-linear band)
            self._linear_columns(op, gcol, wgrids, wants_input)
            return
        trained = op.weight in self.spec.wrt
        out, n_in = gcol.height, int(np.size(self.values[op.input]))
        if trained:
            bias = f"{op.name}_bias" if op.bias is not None else None
            self.heading(f"dL/d{op.weight} = dL/d{op.name} x {op.input} (outer product)"
                          + (f", dL/d{bias} = dL/d{op.name}" if bias else ""))
            blocks = [(f"dL/d{op.weight} ({out} x {n_in})", [""], (out, n_in))]
            if bias:
                blocks.append((f"dL/d{bias}", [""], (out, 1)))
            placed = self.band(blocks)
            x = op.input
            c, h, w = np.shape(self.values[x])

            def outer(k: int, i: int, j: int) -> str:
                ch, rest = divmod(j, h * w)
                return fx.product(gcol.cell(i, 0, absolute=True), self.at(x, ch, *divmod(rest, w)))

            self.grad_block(op.weight, placed[0], outer, f"dL/d{op.weight}")
            self.note(placed[0][0].top, placed[0][0].left, f"dL/dW[o, n] = dL/dlogit o x input n: the gradient "
                                                           f"column times the input row ({op.input}), an outer "
                                                           f"product, since logit o = SUMPRODUCT(row o, input) + b.")
            self.trained.append(op.weight)
            if bias:
                self.grad_block(bias, placed[1], lambda k, i, j: fx.copy(gcol.cell(i, 0)), f"dL/d{bias}")
                self.note(placed[1][0].top, placed[1][0].left, "The bias adds straight into its logit: its gradient "
                                                               "is the logit's.")
                self.trained.append(bias)
            self._step([op.weight] + ([bias] if bias else []))
        if wants_input:
            self.heading(f"dL/d{op.input} = W^T dL/d{op.name}: each input's SUMPRODUCT(its column of "
                              f"{op.weight}, the gradient column)")
            (grids,) = self.band([self.shape_blocks(op.input, f"dL/d{op.input}")])
            c, h, w = np.shape(self.values[op.input])
            self.grad_block(op.input, grids, lambda k, i, j: fx.dot(
                self.span(op.weight, 0, (0, k * h * w + i * w + j, out, 1)), gcol.ref(absolute=True)),
                f"dL/d{op.input}")
            self.note(grids[0].top, grids[0].left, f"Input n fed every logit through column n of the weights, so its "
                                                   f"gradient adds those paths: SUMPRODUCT(column n, dL/dlogits).")

    def _linear_columns(self, op: Linear, grow: Grid, wgrids: list[Grid], wants_input: bool) -> None:
        """The linear layer's backward pass laid out like its forward band: dL/d(input) as a column, dL/dW as one
        column per output with dL/db under it, and (with [sgd]) the weights after the step beside them."""
        trained = op.weight in self.spec.wrt
        out, n_in = len(wgrids), wgrids[0].height
        bias = f"{op.name}_bias" if op.bias is not None and trained else None
        parts = []
        if trained:
            parts.append(f"dL/d{op.weight}[k, n] = dL/d{op.name}[k] x {op.input}[n]" +
                         (f", dL/d{bias} = dL/d{op.name}" if bias else ""))
        if wants_input:
            parts.append(f"dL/d{op.input}[n] = SUMPRODUCT(row n of {op.weight}, dL/d{op.name})")
        if not parts:
            return
        self.heading("; ".join(parts))
        ws, b = self.ws, self.book
        top = self.row
        head, first = top + 1, top + 2
        col = 1
        lr = self.spec.lr is not None and trained
        if wants_input:
            self.label(top, col, f"dL/d{op.input}")
            fg = Grid(first, col, n_in, 1)
            sheet, _ = self.grids_of(op.weight)

            def dflat(k: int, i: int, j: int) -> str:
                row = Grid(wgrids[0].top + i, wgrids[0].left, 1, out).ref(absolute=True)
                return fx.dot(on_sheet(sheet, row) if sheet else row, grow.ref(absolute=True))

            self.grad_block(op.input, [fg], dflat, f"dL/d{op.input}")
            self.note(fg.top, fg.left, f"Input n fed every output through row n of the weights (weight n of each "
                                       f"column), so its gradient adds those paths: SUMPRODUCT(row n, dL/d{op.name}).")
            col += 2
        blocks: list[tuple[str, str, list[Grid], Grid | None]] = []
        if trained:
            blocks.append((f"dL/d{op.weight}: column k = dL/d{op.name}[k] x {op.input}", f"{op.weight}_grad",
                           [Grid(first, col + k, n_in, 1) for k in range(out)],
                           Grid(first + n_in, col, 1, out) if bias else None))
            if lr:
                c2 = col + out + 1
                blocks.append((f"{op.weight} after one SGD step: W - lr x dL/dW", f"{op.weight}_sgd",
                               [Grid(first, c2 + k, n_in, 1) for k in range(out)],
                               Grid(first + n_in, c2, 1, out) if bias else None))
        for text, _, grids, bg in blocks:
            self.label(top, grids[0].left, text)
            self.write_grid(Grid(head, grids[0].left, 1, out), "param", np.arange(out, dtype=np.float64)[None],
                            num_format="0")
            if bg is not None:
                ws.write_string(bg.top, bg.left - 1, "bias", b.fmt(bold=True, font_size=10, align="right"))
        x = op.input
        if trained:
            _, grids, bg = blocks[0][1:]

            def outer(k: int, i: int, j: int) -> str:
                return fx.product(grow.cell(0, k, absolute=True), self.at(x, 0, i, 0))

            self.grad_block(op.weight, grids, outer, f"dL/d{op.weight}")
            self.note(grids[0].top, grids[0].left, f"dL/dW[k, n] = dL/d{op.name}[k] x {x}[n]: the gradient row times "
                                                   f"the input column, an outer product, since output k = "
                                                   f"SUMPRODUCT(column k, input) + b. Gradients are small numbers: "
                                                   f"they are shown as 1.23E-04 (= 0.000123).")
            self.trained.append(op.weight)
            if bias and bg is not None:
                self.grad_block(bias, [bg], lambda k, i, j: fx.copy(grow.cell(0, j)), f"dL/d{bias}")
                self.note(bg.top, bg.left, "The bias adds straight into its output: its gradient is the output's.")
                self.trained.append(bias)
            if lr:
                _, sgrids, sbg = blocks[1][1:]
                self._sgd_block(op.weight, sgrids)
                if bias and sbg is not None:
                    self._sgd_block(bias, [sbg])
                self.note(sgrids[0].top, sgrids[0].left, "One step of gradient descent: each weight minus lr times "
                                                         "its gradient (torch.optim.SGD without momentum). The "
                                                         "forward pass at the bottom uses these.")
        dense.short_rows(self, head, first + n_in + (1 if bias else 0))
        self.row = first + n_in + (2 if bias else 1)

    def _sgd_block(self, n: str, grids: list[Grid]) -> None:
        """The weights (or biases) n after one SGD step, W - lr x dL/dW, on grids laid out like n."""
        assert self.spec.lr is not None
        new = np.asarray(self.values[n], dtype=np.float64) - float(self.spec.lr) * np.asarray(self.grads[n])
        shaped = new.reshape(len(grids), grids[0].height, grids[0].width)

        def step(k: int, i: int, j: int) -> str:
            return fx.sgd_step(self.at(n, k, i, j), self.lr_cell, self.placed[f"{n}_grad"].grids[k].cell(i, j))

        self.put(f"{n}_sgd", grids, shaped, step, num_format="0.000")
        self.book.record(f"{n}_sgd", "output", self.spec.sheet, grids, op="sgd", input=n, grad=f"{n}_grad",
                         lr="lr", label=f"{n} after one SGD step")
        self.after[n] = f"{n}_sgd"

    def _pool_grad(self, op: Pool, gg: list[Grid]) -> None:
        x = self.values[op.input]
        c, h, w = x.shape
        oh, ow = self.values[op.name].shape[1:]
        if op.mode == "max":
            self.heading(f"dL/d{op.input}: each window's gradient goes to its maximum (the first one when "
                              f"several tie, torch's rule)")
        else:
            self.heading(f"dL/d{op.input}: each window's gradient shared out among its cells")
        routes: dict[tuple[int, int], list[tuple[int, int, list[tuple[int, int]], int]]] = {}
        for i in range(oh):
            rows, nh = ref.pool_bounds(i, h, op.kernel_size[0], op.stride[0], op.padding[0], op.dilation[0])
            for j in range(ow):
                cols, nw = ref.pool_bounds(j, w, op.kernel_size[1], op.stride[1], op.padding[1], op.dilation[1])
                taps = [(r, q) for r in rows for q in cols]
                n = nh * nw if op.count_include_pad else len(taps)
                for t, (r, q) in enumerate(taps):
                    routes.setdefault((r, q), []).append((i, j, taps[:t], n))
        (grids,) = self.band([self.shape_blocks(op.input, f"dL/d{op.input}")])

        def formula(k: int, r: int, q: int) -> str:
            terms = []
            for i, j, earlier, n in routes.get((r, q), []):
                if op.mode == "max":
                    terms.append(fx.max_route(self.at(op.input, k, r, q), self.at(op.name, k, i, j),
                                              [self.at(op.input, k, a, b) for a, b in earlier], gg[k].cell(i, j)))
                else:
                    terms.append(f"{gg[k].cell(i, j)}/{n}")
            return fx.sum_of(terms)

        self.grad_block(op.input, grids, formula, f"dL/d{op.input}")
        if op.mode == "max":
            self.note(grids[0].top, grids[0].left, "Max pooling passed on one value per window, so only that cell "
                                                   "gets the window's gradient: (cell = window max) x (no earlier "
                                                   "cell of the window equals it) x gradient. The rest get 0; where "
                                                   "windows overlap the shares add up.")
        else:
            self.note(grids[0].top, grids[0].left, "Average pooling gave every cell of a window the same weight "
                                                   "1/n, so each gets the window's gradient / n.")

    def _conv_grad(self, op: Conv, wants_input: bool) -> None:
        gg = self.placed[f"{op.name}_grad"].grids
        window_src = self.fwd.conv_ctx[op.name][0]
        o, oh, ow = self.values[op.name].shape
        trained = [w for w in op.weight if w in self.spec.wrt]
        s, d, p = op.stride, op.dilation, op.padding
        if trained:
            bias = f"{op.name}_bias" if op.bias is not None else None
            self.heading(f"dL/dW = correlation of {op.input} with dL/d{op.name}" +
                          (f", dL/d{bias} = SUM(dL/d{op.name})" if bias else ""))
            c_in = np.shape(self.values[op.input])[0]
            kh, kw = np.shape(self.values[op.weight[0]])[1:]
            blocks = [(f"dL/d{w}", [f"channel {k}" for k in range(c_in)] if c_in > 1 else [""], (kh, kw))
                      for w in trained]
            below = bias is not None and len(trained) == o and kw >= 2  # each bias under its filter's block
            asked = [w for w in trained if self.checking and self.is_answer(f"{w}_grad")]
            blocks += [(f"check dL/d{w}", blocks[trained.index(w)][1], (kh, kw)) for w in asked]
            if bias and not below:
                blocks.append((f"dL/d{bias}", [""] * o, (1, 1)))
            placed = self.band(blocks)
            check_of = dict(zip(asked, placed[len(trained):len(trained) + len(asked)]))
            placed = placed[:len(trained)] + placed[len(trained) + len(asked):]
            if bias and below:
                placed.append(self.under(placed[:len(trained)], "dL/db"))
            xs = window_src.grids
            for w, grids in zip(trained, placed):
                oc = op.weight.index(w)

                def dw(k: int, a: int, b: int, oc: int = oc) -> str:
                    if s == (1, 1) and d == (1, 1):
                        win = on_sheet(self.fwd.spec.sheet, xs[k].window(a, b, oh, ow).ref(absolute=True))
                        return fx.dot(gg[oc].ref(absolute=True), win)
                    return fx.sum_of([f"{gg[oc].cell(y, x)}*" + on_sheet(self.fwd.spec.sheet, xs[k].cell(
                        y * s[0] + a * d[0], x * s[1] + b * d[1], absolute=True)) for y in range(oh) for x in range(ow)])

                self.grad_block(w, grids, dw, f"dL/d{w}", check_of.get(w))
                self.trained.append(w)
            first = placed[0][0]
            self.note(first.top, first.left, f"dL/dW[i, j] = SUMPRODUCT(dL/d{op.name}, the input window shifted by "
                                             f"(i, j)): the input correlated with the output's gradient, since every "
                                             f"output cell used W[i, j] once, on the input cell under it. One weight "
                                             f"is shared by all the windows, so its gradient adds them all.")
            if bias:
                self.grad_block(bias, placed[-1], lambda k, i, j: fx.total([gg[k].ref()]), f"dL/d{bias}")
                self.note(placed[-1][0].top, placed[-1][0].left, "Each filter's bias is added to every cell of its "
                                                                 "map, so its gradient is the SUM of that map's "
                                                                 "gradient.")
                self.trained.append(bias)
            self._step(trained + ([bias] if bias else []))
        if wants_input:
            self.heading(f"dL/d{op.input} = full convolution of dL/d{op.name} with the flipped filters")
            (grids,) = self.band([self.shape_blocks(op.input, f"dL/d{op.input}")])
            kh, kw = np.shape(self.values[op.weight[0]])[1:]

            def dx(k: int, r: int, q: int) -> str:
                terms = []
                for oc, w in enumerate(op.weight):
                    for a in range(kh):
                        for b in range(kw):
                            ty, tx = r + p[0] - a * d[0], q + p[1] - b * d[1]
                            if ty % s[0] or tx % s[1]:
                                continue
                            y, x = ty // s[0], tx // s[1]
                            if 0 <= y < oh and 0 <= x < ow:
                                terms.append(f"{gg[oc].cell(y, x)}*{self.at(w, k, a, b)}")
                return fx.sum_of(terms)

            self.grad_block(op.input, grids, dx, f"dL/d{op.input}")
            self.note(grids[0].top, grids[0].left, "Each input cell fed every output window that covers it, times the "
                                                   "filter tap over it: adding those up is a full convolution of the "
                                                   "output's gradient with the filter turned 180 degrees.")

    def under(self, placed: list[list[Grid]], text: str) -> list[Grid]:
        """One cell under each placed block (its bias), labelled text on its left, in the band's spare row."""
        cells = []
        for p in placed:
            g = p[0]
            self.ws.write_string(g.bottom + 1, g.left, text, self.book.fmt(italic=True, font_size=9, align="right",
                                                                            valign="vcenter"))
            cells.append(Grid(g.bottom + 1, g.left + 1, 1, 1))
        self.row = max(self.row, placed[0][0].bottom + 3)
        return cells

    def _step(self, names: list[str]) -> None:
        """The weights after one SGD step, W - lr x dL/dW, beneath their gradients."""
        if self.spec.lr is None:
            return
        blocks: list[tuple[str, Sequence[str], tuple[int, int]]] = []
        weights = [n for n in names if not n.endswith("_bias")]
        biases = [n for n in names if n.endswith("_bias")]
        below = (len(biases) == 1 and len(self.grids_of(biases[0])[1]) == len(weights)
                 and all(self.grids_of(w)[1][0].width >= 2 for w in weights))
        for n in (weights if below else names):  # laid out like the forward sheet's cells
            grids = self.grids_of(n)[1]
            labels = [""] * len(grids) if n.endswith("_bias") or len(grids) == 1 else \
                [f"channel {k}" for k in range(len(grids))]
            blocks.append((f"new {n}", labels, (grids[0].height, grids[0].width)))
        self.label(self.row, 1, "after one SGD step: W - lr x dL/dW (and b - lr x dL/db under each filter)"
                   if below else "after one SGD step: W - lr x dL/dW", bold=True)
        self.row += 1
        placed = self.band(blocks)
        if below:
            placed.append(self.under(placed, "new b"))
            names = weights + biases
        for n, grids in zip(names, placed):
            new = self.values[n] - float(self.spec.lr) * self.grads[n]
            shaped = new.reshape(len(grids), grids[0].height, grids[0].width)
            def step(k: int, i: int, j: int, n: str = n) -> str:
                return fx.sgd_step(self.at(n, k, i, j), self.lr_cell, self.placed[f"{n}_grad"].grids[k].cell(i, j))

            self.put(f"{n}_sgd", grids, shaped, step, num_format="0.000")
            self.book.record(f"{n}_sgd", "output", self.spec.sheet, grids, op="sgd", input=n, grad=f"{n}_grad",
                             lr="lr", label=f"{n} after one SGD step")
            self.after[n] = f"{n}_sgd"
        self.note(placed[0][0].top, placed[0][0].left, "One step of gradient descent: each weight minus lr times its "
                                                       "gradient (torch.optim.SGD without momentum). The forward pass "
                                                       "below uses these.")

    # -- the forward pass again, with the weights after the step --------------------------------------------------

    def _after_step(self) -> None:
        self.start_band()
        self.label(self.row, 1, "The forward pass again, with the weights after the step", bold=True)
        self.row += 1
        names = dict(self.after)
        for n in self.graph:
            op = self.ops_by_name[n.name]
            after = self._after_op(op, names)
            self.values[after.name] = apply(after, self.values)
            names[op.name] = after.name
            self._after_band(op, after)
        last = self.placed[names[self.loss.name]].grids[0].cell(0, 0)
        if len(self.summary) == 4:
            before = float(self.values[self.loss.name].ravel()[0])
            after_v = float(self.values[names[self.loss.name]].ravel()[0])
            self.write_grid(self.summary[2], "output", np.array([[after_v]]), lambda i, j: fx.copy(last),
                            num_format="0.0000", font_size=GRAD_FONT)
            self.write_grid(self.summary[3], "output", np.array([[after_v - before]]),
                            lambda i, j: fx.minus(self.summary[2].cell(0, 0), self.summary[0].cell(0, 0)),
                            num_format="0.0000", font_size=GRAD_FONT)
            self.note(self.summary[2].top, self.summary[2].left, "The loss of the same image after one SGD step (the "
                                                                 "last block of this sheet): lower when lr is small "
                                                                 "enough, which is what training repeats.")

    def _after_op(self, op: Op, names: dict[str, str]) -> Op:
        """op reading the values after the step (the updated weights, the maps computed from them)."""
        name = f"{op.name}_after"
        inp = names.get(op.input, op.input)
        if isinstance(op, Conv):
            bias = None if op.bias is None else tuple(float(v) for v in self.values[names.get(f"{op.name}_bias",
                                                                                              f"{op.name}_bias")].ravel())
            return replace(op, name=name, input=inp, weight=tuple(names.get(w, w) for w in op.weight), bias=bias)
        if isinstance(op, Linear):
            bias = None if op.bias is None else tuple(float(v) for v in self.values[names.get(f"{op.name}_bias",
                                                                                              f"{op.name}_bias")].ravel())
            return replace(op, name=name, input=inp, weight=names.get(op.weight, op.weight), bias=bias)
        return replace(op, name=name, input=inp)

    def _after_band(self, op: Op, after: Op) -> None:
        vals = self.values[after.name]
        c, h, w = vals.shape
        if isinstance(after, Flatten):
            h, w = vals.size, 1  # a column, as on the first sheet
        labels = [f"Filter {k + 1}" for k in range(c)] if c > 1 else [""]
        if self.row != self.band_starts[-1] + 1:  # each op prints whole; the pass's heading stays with the first
            self.start_band()
        self.label(self.row, 1, f"{op.name} after the step ({op.label})", bold=False)
        self.row += 1
        # Several maps need the row under the block's name for their own names ("Filter 1", ...).
        (grids,) = self.band([(after.name, labels, (h, w))], label_rows=2 if c > 1 else 1)
        info: dict[str, object] = {}
        formula: Callable[[int, int, int], str]
        nf = "0.000"
        if isinstance(after, Conv) and isinstance(op, Conv):
            formula, info = self._after_conv(op, after)
        elif isinstance(after, Pool):
            def formula(k: int, i: int, j: int) -> str:
                return "=" + self.pool_formula(after, i, j, lambda rows, cols: [
                    self.at(after.input, k, r, q) for r in rows for q in cols])
            info = dict(op=f"{after.mode}_pool", input=after.input, kernel_size=list(after.kernel_size),
                        stride=list(after.stride), padding=list(after.padding), dilation=list(after.dilation),
                        ceil_mode=after.ceil_mode, count_include_pad=after.count_include_pad)
        elif isinstance(after, Relu):
            def formula(k: int, i: int, j: int) -> str:
                return fx.relu(self.at(after.input, k, i, j))
            info = dict(op="relu", input=after.input)
        elif isinstance(after, Flatten):
            ic, ih, iw = np.shape(self.values[after.input])

            def formula(k: int, i: int, j: int) -> str:
                ch, rest = divmod(i * w + j, ih * iw)
                return fx.copy(self.at(after.input, ch, *divmod(rest, iw)))
            info = dict(op="flatten", input=after.input)
        elif isinstance(after, Linear) and isinstance(op, Linear):
            bias = None
            if op.bias is not None:
                bias = self.after.get(f"{op.name}_bias", f"{op.name}_bias")
            n_in = int(np.size(self.values[after.input]))
            x_one_row = np.shape(self.values[after.input])[:2] == (1, 1)
            ic, ih, iw = np.shape(self.values[after.input])

            by_column = len(self.grids_of(after.weight)[1]) > 1

            def formula(k: int, i: int, j: int) -> str:
                n = i * w + j
                b = self.at(bias, 0, *dense.vector_at(self.grids_of(bias)[1][0], n)) if bias else None
                if by_column:  # weight column n times the input column
                    return fx.dot(self.span(after.weight, n), self.span(after.input, 0), b)
                if x_one_row:
                    return fx.dot(self.span(after.weight, 0, (i, 0, 1, n_in)), self.span(after.input, 0), b)
                terms = [f"{self.at(after.weight, 0, i, ch * ih * iw + r * iw + q)}*{self.at(after.input, ch, r, q)}"
                         for ch in range(ic) for r in range(ih) for q in range(iw)]
                return fx.sum_of(terms + ([b] if b else []))
            info = dict(op="linear", input=after.input, weight=after.weight, bias=bias)
        elif isinstance(after, Softmax):
            def formula(k: int, i: int, j: int) -> str:
                return fx.softmax(self.at(after.input, 0, i, j), self.span(after.input, 0), self.every(after.input))
            info = dict(op="softmax", input=after.input)
        elif isinstance(after, Loss):
            x0 = self.grids_of(after.input)[1][0]
            if after.loss == "cross_entropy":
                target = f"{op.name}_target"
                tcell = self.at(target, 0, 0, 0)
                args = f"1,{tcell}+1" if x0.height == 1 else f"{tcell}+1,1"

                def formula(k: int, i: int, j: int) -> str:
                    return fx.cross_entropy(self.span(after.input, 0), self.every(after.input), args)
                info = dict(op="cross_entropy", input=after.input, target=target, reduction="mean")
            else:
                target = str(after.target)
                n = int(np.size(self.values[after.input]))
                divisor = n if after.reduction == "mean" else 1
                sheet, ys = self.grids_of(after.input)
                tsheet, ts = self.grids_of(target)
                if [(g.height, g.width) for g in ys] == [(g.height, g.width) for g in ts]:
                    pairs = [(self.span(after.input, k), self.span(target, k)) for k in range(len(ts))]
                    mse = fx.mse(pairs, divisor)
                else:
                    mse = fx.squared_error(list(zip(self.every_cell(after.input), self.every_cell(target))), divisor)

                def formula(k: int, i: int, j: int) -> str:
                    return mse
                info = dict(op="mse", input=after.input, target=target, reduction=after.reduction)
            nf = "0.0000"
        else:  # pragma: no cover - check_training keeps conv_transpose off the loss's path
            raise SpecError(f"{self.spec.path}: {op.name} has no forward pass after the step")
        self.put(after.name, grids, vals, formula, num_format=nf)
        if isinstance(after, Flatten):
            dense.short_rows(self, grids[0].top, grids[0].bottom)
        self.book.record(after.name, "output", self.spec.sheet, grids, label=f"{op.label} after the step", **info)

    def _after_conv(self, op: Conv, after: Conv) -> tuple[Callable[[int, int, int], str], dict[str, object]]:
        """A conv output cell after the step: SUMPRODUCT of the (padded) input window and the updated filter when
        the window is a block of cells; else tap by tap."""
        c_in, h, w = np.shape(self.values[after.input])
        kh, kw = np.shape(self.values[op.weight[0]])[1:]
        s, d, p = after.stride, after.dilation, after.padding
        fwd_input = after.input == op.input
        window_src = self.fwd.conv_ctx[op.name][0]
        bias = None if op.bias is None else self.after.get(f"{op.name}_bias", f"{op.name}_bias")

        def formula(k: int, i: int, j: int) -> str:
            b = self.at(bias, k, 0, 0, absolute=True) if bias else None
            wname = after.weight[k]
            if d == (1, 1) and (fwd_input or p == (0, 0)):
                wins = [on_sheet(self.fwd.spec.sheet, g.window(i * s[0], j * s[1], kh, kw).ref())
                        if fwd_input else self.span(after.input, ch, (i * s[0], j * s[1], kh, kw))
                        for ch, g in enumerate(window_src.grids)]
                return fx.conv(wins, [self.span(wname, ch) for ch in range(c_in)], b)
            terms = []
            for ch in range(c_in):
                for a in range(kh):
                    for bb in range(kw):
                        r, q = i * s[0] + a * d[0] - p[0], j * s[1] + bb * d[1] - p[1]
                        if 0 <= r < h and 0 <= q < w:
                            terms.append(f"{self.at(wname, ch, a, bb, absolute=True)}*{self.at(after.input, ch, r, q)}")
            return fx.sum_of(terms + ([b] if b else []))

        info: dict[str, object] = dict(op="conv", input=after.input, weight=list(after.weight), bias=bias,
                                       stride=list(s), padding=list(p), dilation=list(d))
        return formula, info


def append(fwd: ConvSheet) -> GradSheet:
    """Write the backward pass under the forward pass on the same sheet (an exercise: grading reads one sheet);
    the caller then finishes the forward sheet."""
    sheet = GradSheet(fwd, same_sheet=True)
    sheet.build()
    return sheet


def build_sheet(fwd: ConvSheet) -> GradSheet:
    """Write the gradients (and SGD) sheet of a forward sheet into its book."""
    sheet = GradSheet(fwd)
    sheet.build()
    return sheet


__all__ = ["GradSheet", "build_sheet", "append", "sheet_name"]
