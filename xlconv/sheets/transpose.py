"""A transposed convolution's band on the convolution worksheet, laid out the way it is taught.

F.conv_transpose2d scatters: every input cell times the whole kernel, added into the output stride cells apart,
then padding cells cut off each side. The sheet draws the equivalent that a student can follow with a pencil:

1. the input *spread*: stride - 1 zeros between neighbouring cells, d(k - 1) - p rings of zeros around (output_padding
   more at the bottom and right); when d(k - 1) - p is negative, that many outer cells are cropped instead;
2. each filter *flipped*, rotated 180 degrees (and spread by the dilation): formulas pointing at the original
   kernel cells in reverse order;
3. an ordinary stride-1 convolution of the spread input with the flipped filter: SUMPRODUCT cells (formulas.conv).

Then a live output-size line, (H_in - 1)s - 2p + d(k - 1) + output_padding + 1, and a step-by-step panel (pick an
output cell: its window lights up on the spread input, the input cells it reads light up in the input, and the
window times the flipped filter adds up to the cell)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import check_formula
from xlconv.cells import Grid, a1
from xlconv.model import ConvTranspose
from xlconv.record import ConvTransposeParams, conv_transpose_info
from xlconv.sheets import answers, panels, style

if TYPE_CHECKING:
    from xlconv.sheets.conv import BandBlock, ConvSheet, Placed

Pick = tuple[int, int, int]

SIZE_KEYS = ("in", "k", "s", "p", "outpad", "d", "out")
SIZE_HEADINGS = {"in": "input size", "k": "kernel size", "s": "stride", "p": "padding", "outpad": "output padding",
                 "d": "dilation", "out": "output size"}
SIZE_NOTES = {
    "in": "H_in and W_in: counted live from the first and last cells of the grid the transposed convolution reads.",
    "k": "kernel_size: the filter's height and width, counted live from the filter grid.",
    "s": "stride: in the spread input, stride - 1 zeros sit between neighbouring input cells (torch adds each input "
         "cell's copy of the filter stride cells from the last). A transposed convolution with stride 2 undoes the "
         "shrinking of a convolution with stride 2: it makes the map larger.",
    "p": "padding: in a transposed convolution it takes cells away. The spread input gets dilation x (kernel_size - 1) "
         "- padding rings of zeros (cropped where that is negative), so padding p undoes the padding p of the "
         "convolution it transposes.",
    "outpad": "output_padding: one more row (and column) of zeros at the bottom and right of the spread input. A "
              "strided convolution maps several input sizes to one output size (it never reads the last rows of "
              "some); output_padding picks the larger. torch requires it smaller than stride or dilation.",
    "d": "dilation: the flipped filter's taps are spread d cells apart with zeros between, as in a dilated "
         "convolution; it spans d x (k - 1) + 1 cells.",
    "out": "Output size, live: (H_in - 1) x stride - 2 x padding + dilation x (kernel_size - 1) + output_padding + 1, "
           "torch's ConvTranspose2d rule: the convolution's rule solved for H_in (plus output_padding).",
}


def torch_arg(p: tuple[int, int]) -> str:
    """A pair as torch prints an argument: 2, or (2, 3)."""
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def _spread_label(name: str, op: ConvTranspose, border: tuple[int, int]) -> str:
    """What the spread block's label says it did: zeros between, around (or cropped), output_padding."""
    between = (op.stride[0] - 1, op.stride[1] - 1)
    parts = []
    if between != (0, 0):
        parts.append(f"{torch_arg(between)} zero{'s' if max(between) > 1 else ''} between")
    if min(border) >= 0:
        if border != (0, 0):
            parts.append(f"{torch_arg(border)} zero{'s' if max(border) > 1 else ''} around")
    elif max(border) <= 0:
        parts.append(f"cropped by {torch_arg((-border[0], -border[1]))}")
    else:
        parts.append(f"border {torch_arg(border)} (negative: cropped)")
    if op.output_padding != (0, 0):
        parts.append(f"+{torch_arg(op.output_padding)} at bottom/right")
    return f"{name} spread: " + (", ".join(parts) if parts else "no zeros to add")


def _source(i: int, border: int, stride: int, n: int) -> int | None:
    """The input index whose copy sits at index i of the spread grid along one axis, or None for a zero."""
    u = i - border
    if u < 0 or u % stride or u // stride >= n:
        return None
    return u // stride


def band(sheet: ConvSheet, op: ConvTranspose) -> None:
    """The transposed convolution's band: spread input, flipped filters, bias, output (and checks), its size line
    and, on a worksheet, its step-by-step panel."""
    spec, b = sheet.spec, sheet.book
    src = sheet.placed[op.input]
    c_in, h, w = src.values.shape
    kh, kw = spec.grid(op.weight[0]).values.shape[1:]
    border = (ref.spread_border(kh, op.padding[0], op.dilation[0]), ref.spread_border(kw, op.padding[1], op.dilation[1]))
    weights = ", ".join(op.weight)
    args = [op.input, f"weight=[{weights}]"] + ([f"bias={op.name}_bias"] if op.bias is not None else [])
    args.append(f"stride={torch_arg(op.stride)}")
    args += [f"{key}={torch_arg(v)}" for key, v, default in (("padding", op.padding, (0, 0)),
                                                             ("output_padding", op.output_padding, (0, 0)),
                                                             ("dilation", op.dilation, (1, 1))) if v != default]
    sheet.op_title(op, f"F.conv_transpose2d({', '.join(args)})")

    spread_vals = ref.spread(src.values, (kh, kw), op.stride, op.padding, op.output_padding, op.dilation)
    flipped_vals = {wname: ref.flip_kernel(sheet.values[wname], op.dilation) for wname in op.weight}
    out_vals = sheet.values[op.name]
    n_out, oh, ow = out_vals.shape
    dilated = op.dilation != (1, 1)
    blocks: list[BandBlock] = [(_spread_label(sheet.block_label(op.input), op, border), sheet.band_labels(op.input),
                                spread_vals.shape[1:])]
    kinds = ["spread"]
    for wname in op.weight:
        blocks.append((f"{sheet.block_label(wname)} flipped 180\u00b0" + (f", dilated {torch_arg(op.dilation)}"
                                                                          if dilated else ""),
                       sheet.band_labels(op.input), flipped_vals[wname].shape[1:]))
        kinds.append(f"flip:{wname}")
    if op.bias is not None:
        blocks.append(("bias", [""] * n_out, (1, 1)))
        kinds.append("bias")
    blocks.append((f"output {n_out}x{oh}x{ow}" if n_out > 1 else f"output {oh}x{ow}", sheet.band_labels(op.name),
                   (oh, ow)))
    kinds.append("output")
    if sheet.checking:
        blocks.append((f"check {fx.CHECK_RIGHT} / {fx.CHECK_WRONG}", sheet.band_labels(op.name), (oh, ow)))
        kinds.append("check")
    placed = dict(zip(kinds, sheet.band(blocks)))

    # 1. The spread input: copies of the input cells among typed zeros.
    spread_grids = placed["spread"]
    for ch, g in enumerate(spread_grids):
        _write_spread(sheet, g, spread_vals[ch], src.grids[ch], op, border, (h, w))
    _spread_notes(sheet, op, spread_grids[0], border, (h, w), (kh, kw))
    spread_name = f"{op.name}_spread"
    b.record(spread_name, "spread", spec.sheet, spread_grids, input=op.input, kernel_size=[kh, kw],
             stride=list(op.stride), padding=list(op.padding), output_padding=list(op.output_padding),
             dilation=list(op.dilation))
    spread = replace(src, name=spread_name, grids=spread_grids, values=spread_vals, picture=False)

    # 2. The flipped filters: formulas pointing at the original cells in reverse order.
    flipped: dict[str, list[Grid]] = {}
    dh, dw = op.dilation
    for wname in op.weight:
        grids = placed[f"flip:{wname}"]
        raw = sheet.placed[wname].grids
        for ch, g in enumerate(grids):
            def tap(i: int, j: int, ch: int = ch) -> str:
                if i % dh or j % dw:
                    return "=0"
                return fx.copy(raw[ch].cell(kh - 1 - i // dh, kw - 1 - j // dw))

            sheet.write_grid(g, "kernel", flipped_vals[wname][ch], tap)
        sheet.note(grids[0].top, grids[0].left,
                   f"{sheet.block_label(wname)} rotated 180\u00b0 (flipped upside down and left to right): this cell "
                   f"is ={raw[0].cell(kh - 1, kw - 1)}, the original's last cell, and so on in reverse order"
                   + (f"; its taps are spread {torch_arg(op.dilation)} apart with zeros between (dilation)"
                      if dilated else "") + ". A transposed convolution slides the flipped filter over the spread "
                   "input; torch's conv2d (a cross-correlation) never flips.")
        b.record(f"{op.name}_{wname}_flipped", "flipped", spec.sheet, grids, input=wname, dilation=list(op.dilation))
        flipped[wname] = grids

    # 3. The bias, then the output: an ordinary stride-1 convolution of the spread input with the flipped filter.
    bias_cells = placed.get("bias")
    if bias_cells:
        assert op.bias is not None, "the bias block is placed only for a transposed conv with a bias"
        bias_nf = style.num_format(np.array(op.bias))
        for value, g in zip(op.bias, bias_cells):
            sheet.write_grid(g, "bias", np.array([[value]]), num_format=bias_nf)
        b.record(f"{op.name}_bias", "bias", spec.sheet, bias_cells)
    eh, ew = flipped[op.weight[0]][0].height, flipped[op.weight[0]][0].width
    out_grids = placed["output"]
    out_nf = style.num_format(out_vals)
    sheet.conv_ctx[op.name] = (spread, flipped, bias_cells, eh, ew)
    for oc, g in enumerate(out_grids):
        kgrids = flipped[op.weight[oc]]
        bias_ref = bias_cells[oc].cell(0, 0, absolute=True) if bias_cells else None

        def formula(i: int, j: int, kgrids: list[Grid] = kgrids, bias_ref: str | None = bias_ref) -> str:
            wins = [sg.window(i, j, eh, ew).ref() for sg in spread_grids]
            return fx.conv(wins, [kg.ref(absolute=True) for kg in kgrids], bias_ref)

        if sheet.exercise:
            answers.answer(sheet, op, oc, g, out_vals[oc], formula, placed.get("check"))
            continue
        sheet.write_grid(g, "output", out_vals[oc], formula, num_format=out_nf, name=op.name)
        sheet.heatmap(g, out_vals)
    sheet.note(out_grids[0].top, out_grids[0].left, output_note(op, (kh, kw), sheet.exercise))
    params = ConvTransposeParams(op.input, op.weight, f"{op.name}_bias" if op.bias else None, op.stride, op.padding,
                                 op.output_padding, op.dilation)
    b.record(op.name, sheet.output_role, spec.sheet, out_grids, **conv_transpose_info(params, label=op.label))
    answers.record_checks(sheet, op, placed.get("check"))
    sheet.placed[op.name] = replace(src, name=op.name, grids=out_grids, values=out_vals, picture=False)
    right = (placed.get("check") or out_grids)[-1].right
    size_line(sheet, op, src, out_grids, (kh, kw), top=out_grids[0].top, left=right + 2,
              kernel_grid=sheet.placed[op.weight[0]].grids[0])
    if not sheet.exercise:  # the step-by-step panel computes answers: not on exercise sheets
        sheet.row += 1
        trace(sheet, op, src, spread, flipped, bias_cells, out_grids, border)


def _write_spread(sheet: ConvSheet, g: Grid, vals: np.ndarray, inner: Grid, op: ConvTranspose,
                  border: tuple[int, int], hw: tuple[int, int]) -> None:
    """One channel of the spread input: =cell copies of the input among zeros typed and coloured as padding."""
    nf = style.num_format(vals)
    sheet.measure(vals, nf)
    sheet.roles.update(("padding", "input"))
    look_in, look_zero = style.cell(sheet.book, "input", nf), style.cell(sheet.book, "padding", nf)
    for i in range(g.height):
        sheet.grid_rows.add(g.top + i)
        si = _source(i, border[0], op.stride[0], hw[0])
        for j in range(g.width):
            sj = _source(j, border[1], op.stride[1], hw[1])
            r, c = g.top + i, g.left + j
            if si is None or sj is None:
                sheet.ws.write_number(r, c, 0, look_zero)
            else:
                f = check_formula(fx.copy(inner.cell(si, sj)), f"{sheet.spec.path}: {sheet.spec.sheet}!{a1(r, c)}")
                sheet.ws.write_formula(r, c, f, look_in, style.cached(vals[i, j]))
    sheet.max_col = max(sheet.max_col, g.right)


def _spread_notes(sheet: ConvSheet, op: ConvTranspose, g: Grid, border: tuple[int, int], hw: tuple[int, int],
                  k: tuple[int, int]) -> None:
    """Notes on the spread grid: on its first copied cell, on an inserted zero, on a border zero."""
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    first = [max(0, -(-(-border[a]) // op.stride[a])) for a in (0, 1)]  # the first input index not cropped away
    at = [border[a] + first[a] * op.stride[a] for a in (0, 1)]
    how = []
    same = (sh, ph, dh, k[0], op.output_padding[0]) == (sw, pw, dw, k[1], op.output_padding[1])
    for axis in ((0,) if same else (0, 1)):
        s, p, d, kk, q, opad = (op.stride[axis], op.padding[axis], op.dilation[axis], k[axis], border[axis],
                                op.output_padding[axis])
        what = "rows and columns" if same else ("rows", "columns")[axis]
        where = "bottom and right" if same else ("bottom", "right")[axis]
        around = (f"{d} x ({kk} - 1) - {p} = {q} ring(s) of zeros around" if q >= 0 else
                  f"{d} x ({kk} - 1) - {p} = {q}, so {-q} outer cell(s) of the spread grid are cropped away "
                  f"(the padding is larger than the kernel's reach)")
        how.append(f"{what}: stride - 1 = {s - 1} zero(s) between neighbours, dilation x (kernel_size - 1) - padding "
                   f"= {around}" + (f", and output_padding {opad} more at the {where}" if opad else ""))
    sheet.note(g.top + at[0], g.left + at[1],
               "The spread input: each input cell copied (=cell) into a grid of zeros; " + "; ".join(how) +
               ". An ordinary convolution (stride 1) of this grid with the flipped filter is the transposed "
               "convolution.")
    zero_between = next(((i, j) for i in range(g.height) for j in range(g.width)
                         if (_source(i, border[0], sh, hw[0]) is None or _source(j, border[1], sw, hw[1]) is None)
                         and 0 <= i - border[0] <= (hw[0] - 1) * sh and 0 <= j - border[1] <= (hw[1] - 1) * sw), None)
    if zero_between is not None:
        sheet.note(g.top + zero_between[0], g.left + zero_between[1],
                   f"A zero inserted between input cells: with stride {torch_arg(op.stride)} the input cells sit "
                   f"{torch_arg(op.stride)} cells apart here, as each one's copy of the filter lands stride cells "
                   f"from the last in torch's definition. Typed, not a formula.")
    if max(border) > 0 or op.output_padding != (0, 0):
        ring = next(((i, j) for i in range(g.height) for j in range(g.width)
                     if not (0 <= i - border[0] <= (hw[0] - 1) * sh and 0 <= j - border[1] <= (hw[1] - 1) * sw)), None)
        if ring is not None:
            sheet.note(g.top + ring[0], g.left + ring[1],
                       "Padding zeros: dilation x (kernel_size - 1) - padding rings" +
                       (", plus output_padding at the bottom and right" if op.output_padding != (0, 0) else "") +
                       ". With padding 0 the flipped filter then meets every input cell with each of its taps, as "
                       "each input cell's scattered copy of the whole filter does in torch's definition; torch's "
                       "padding cuts that many rows and columns off each side of that full result.")


def output_note(op: ConvTranspose, k: tuple[int, int], exercise: bool) -> str:
    """The note on a transposed conv's first output cell."""
    text = (f"Transposed convolution, {k[0]}x{k[1]} filter, stride {torch_arg(op.stride)}: this cell is "
            f"SUMPRODUCT(window of the spread input, flipped filter), an ordinary stride-1 convolution. It equals "
            f"torch's definition of ConvTranspose2d: every input cell times the whole filter, scattered into the "
            f"output stride cells apart and added where the copies overlap, with padding cells cut off each side. "
            f"With the filter, stride, padding and dilation of a convolution it maps that convolution's output size "
            f"back to its input size (the shape, not the values): it multiplies by the transpose of the "
            f"convolution's matrix.")
    if exercise:
        return text + " Work it out by hand and type it; the check grid (if any) tells you when it is right."
    return text + " Use Excel to verify!"


def size_line(sheet: ConvSheet, op: ConvTranspose, src: Placed, out_grids: list[Grid], kernel: tuple[int, int],
              top: int, left: int, kernel_grid: Grid) -> None:
    """Output height and width as live formulas of the input size, kernel, stride, padding, output_padding and
    dilation: one column per argument of torch's signature, a row for H and a row for W."""
    values = {"s": op.stride, "p": op.padding, "outpad": op.output_padding, "d": op.dilation}

    def param(key: str, axis: int, r: int, c: int) -> None:
        sheet.ws.write_number(r, c, values[key][axis], style.cell(sheet.book, "param", "0"))

    def out(cells: dict[str, tuple[str, str]], axis: int) -> str:
        i, k, s, p, o, d = (cells[x][axis] for x in ("in", "k", "s", "p", "outpad", "d"))
        return fx.conv_transpose_out_size(i, k, s, p, o, d)

    panels.size_columns(sheet, op.name, src, out_grids, kernel, kernel_grid, SIZE_KEYS, top, left, SIZE_HEADINGS,
                        SIZE_NOTES.__getitem__, param, out)


def trace(sheet: ConvSheet, op: ConvTranspose, src: Placed, spread: Placed, flipped: dict[str, list[Grid]],
          bias_cells: list[Grid] | None, out_grids: list[Grid], border: tuple[int, int]) -> None:
    """The step-by-step panel: pick an output cell; its window lights up on the spread input and the input cells
    it reads in the input; below, the window times the flipped filter, cell by cell, adds up to the cell."""
    b = sheet.book
    k = sheet.panels
    sheet.panels += 1
    _fill, _line, colour = style.panel_colour(k)
    c_in, n_out = len(spread.grids), len(op.weight)
    kh, kw = sheet.spec.grid(op.weight[0]).values.shape[1:]
    eh, ew = flipped[op.weight[0]][0].height, flipped[op.weight[0]][0].width
    oh, ow = out_grids[0].height, out_grids[0].width
    dh, dw = op.dilation
    _, h, w = src.values.shape
    in_names = sheet.channel_names(op.input)
    filter_grids = {wn: sheet.placed[wn].grids + flipped[wn] for wn in op.weight}
    rows_in = [_source(i, border[0], op.stride[0], h) for i in range(spread.grids[0].height)]
    cols_in = [_source(j, border[1], op.stride[1], w) for j in range(spread.grids[0].width)]

    def taps(r: int, c: int) -> list[tuple[int, int]]:
        return [(r + a * dh, c + e * dw) for a in range(kh) for e in range(kw)]

    def reads(pick: Pick) -> int:
        return sum(rows_in[i] is not None and cols_in[j] is not None for i, j in taps(pick[1], pick[2]))

    def lights(pick: Pick) -> set[tuple[int, int]]:
        o, r, c = pick
        cells = {(g.top + i, g.left + j) for g in spread.grids for i, j in taps(r, c)}
        if n_out > 1:
            cells |= {(g.top + i, g.left + j) for g in filter_grids[op.weight[o]]
                      for i in range(g.height) for j in range(g.width)}
        cells.add((out_grids[o].top + r, out_grids[o].left + c))
        return cells

    # Start on a cell whose window reads the most input cells (a corner of the output reads mostly zeros).
    candidates = sorted(((o, r, c) for o in range(n_out) for r in range(oh) for c in range(ow)),
                        key=lambda p: (-reads(p), p))
    o0, r0, c0 = panels.default_pick(candidates, lights, sheet.lit)
    sheet.lit |= lights((o0, r0, c0))
    what = "a filter, an output row and column" if n_out > 1 else "an output row and column"
    panels._heading(sheet, k, f"Step by step for {op.name} ({colour}): type {what} in the yellow cells (counted "
                              f"from 1). The window lights up {colour} on the spread input, and the input cells it "
                              f"reads in the input; below, the window times the flipped filter, cell by cell, adds "
                              f"up to that output cell.")
    entries = []
    if n_out > 1:
        entries.append(("filter", "Filter", n_out, o0 + 1,
                        f"Which filter (1 to {n_out}): its flipped copy is the one the window is multiplied by; "
                        f"its output map is the one whose cell is picked."))
    entries += [("row", "row", oh, r0 + 1, f"Output row, 1 (top) to {oh}; torch counts from 0. On the spread input "
                                          f"the window moves one row down for each row (stride 1 there: the stride "
                                          f"is in the spreading)."),
                ("column", "column", ow, c0 + 1, f"Output column, 1 (left) to {ow}: the window moves one column "
                                                f"right on the spread input for each column.")]
    picks, pick_grids = panels._picks(sheet, k, entries)
    if n_out == 1:
        pick_grids["filter"] = panels._only_filter(sheet, f"{sheet.spec.grid(op.weight[0]).label}: the only filter")
        picks["filter"] = ""
    o_ref, r_ref, c_ref = picks["filter"], picks["row"], picks["column"]
    blocks: list[BandBlock] = []
    kernel_label = "the picked filter, flipped" if n_out > 1 else f"{sheet.spec.grid(op.weight[0]).label} flipped"
    for ch in range(c_in):
        suffix = f", {in_names[ch]}" if c_in > 1 else ""
        blocks += [(f"window{suffix}", [""], (eh, ew)), (kernel_label + suffix, [""], (eh, ew)),
                   (f"window x flipped{suffix}", [""], (eh, ew))]
    placed = sheet.band(blocks, label_rows=1)
    kvals = ref.flip_kernel(sheet.values[op.weight[o0]], op.dilation)
    win0 = spread.values[:, r0:r0 + eh, c0:c0 + ew]
    products: list[Grid] = []
    for ch in range(c_in):
        wg, kg, pg = placed[3 * ch][0], placed[3 * ch + 1][0], placed[3 * ch + 2][0]
        src_abs = spread.grids[ch].ref(absolute=True)
        options = [flipped[wn][ch] for wn in op.weight]
        sheet.write_grid(wg, "input", win0[ch],
                         lambda i, j: fx.window_tap(src_abs, r_ref, c_ref, i, j, (1, 1), (1, 1)),
                         style.panel_cell(b, k, "input", style.num_format(win0[ch])))
        sheet.write_grid(kg, "kernel", kvals[ch],
                         lambda i, j: (fx.choose(o_ref, [g.cell(i, j, absolute=True) for g in options]) if n_out > 1
                                       else fx.copy(options[0].cell(i, j, absolute=True))),
                         style.panel_cell(b, k, "kernel", style.num_format(kvals[ch])))
        prod = win0[ch] * kvals[ch]
        sheet.write_grid(pg, "product", prod, lambda i, j: fx.product(wg.cell(i, j), kg.cell(i, j)),
                         style.panel_cell(b, k, "product", style.num_format(prod)))
        products.append(pg)
        sg = spread.grids[ch]
        sheet.highlight(sg, k, fx.in_window(sg.top + 1, sg.left + 1, r_ref, c_ref, (kh, kw), (1, 1), op.dilation))
        ig = src.grids[ch]
        sheet.highlight(ig, k, fx.feeds(ig.top + 1, ig.left + 1, r_ref, c_ref, (kh, kw), op.stride, border,
                                        op.dilation))
    sheet.note(placed[0][0].top, placed[0][0].left,
               "The window: INDEX picks the spread input's cells under the flipped filter for the output cell you "
               "typed, starting (row - 1) cells down and (column - 1) cells right (stride 1 on the spread grid). "
               "Its non-zero cells are the input cells lit in the input: the ones whose scattered copy of the "
               "filter reaches this output cell.")
    if n_out > 1:
        for o, wn in enumerate(op.weight):
            for g in filter_grids[wn]:
                sheet.highlight(g, k, fx.picked(o_ref, o + 1))
    for o, g in enumerate(out_grids):
        sheet.highlight(g, k, fx.is_cell(g.top + 1, g.left + 1, r_ref, c_ref, f"{o_ref}={o + 1}" if n_out > 1 else None))
    panels.sum_up(sheet, k, op, products, win0, kvals, in_names, bias_cells, out_grids, picks, pick_grids,
                  (o0, r0, c0), placed[-1][0].right + 2, placed[0][0].top,
                  "The sum of the products (plus the bias) equals the output cell: the transposed convolution is an "
                  "ordinary convolution of the spread input with the flipped filter. Use Excel to verify!")
