"""The panels beside and below a convolution or pooling: its live output-size table, and the step-by-step panel
that takes one output cell apart (a conv's window, filter, products and their sum = the cell; a pooling's window
and its MAX = the cell).

Each step-by-step panel has a colour of its own (style.PANEL_COLOURS[k] for the k-th panel on the sheet): the
picked window lights up in it in the input, the picked filter in the filter grids, the picked cell in the map, and
the panel's heading and result cells wear it too, so two panels on one image never merge."""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.cells import Grid, a1
from xlconv.model import Conv, ConvTranspose, Pool
from xlconv.sheets import style

if TYPE_CHECKING:
    from xlconv.sheets.conv import BandBlock, ConvSheet, Placed

Pick = tuple[int, int, int]  # (channel or filter, row, column), 0-based

SIZE_HEADINGS = {"in": "input size", "k": "kernel size", "s": "stride", "p": "padding", "d": "dilation",
                 "ceil": "ceil mode", "out": "output size"}
SIZE_NOTES = {
    "in": "H_in and W_in: counted live from the first and last cells of the grid the op reads.",
    "k": "kernel_size: the filter's height and width (\"Each filter detects a small pattern (3 x 3)\"), counted "
         "live from the filter grid.",
    "k_pool": "kernel_size: the height and width of the block each pooled cell summarises.",
    "s": "stride: how many cells the window shifts from one output cell to the next (\"Stride determines how "
         "filter shifts\"). stride=1 visits every position; stride=2 every other one, so the map is smaller. Type "
         "another stride to see the size follow; rebuild with xlconv to lay the map out again.",
    "p": "padding: rings of zeros added around the input before the window slides. With a 3x3 filter, padding=1 "
         "keeps the size (\"same\") and padding=2 gives every overlap of filter and input (\"full\").",
    "p_pool": "padding: cells added around the map before the window slides; they never win the max (torch pads "
              "max pooling with -inf) and count as 0 in an average that counts the padding. At most half the kernel.",
    "d": "dilation: the filter's taps are spread d cells apart with zeros between, so a filter of size k spans "
         "d x (k - 1) + 1 cells. dilation=1 is the ordinary filter.",
    "ceil": "ceil_mode: FALSE (torch's default) rounds the size down and drops a last partial window; TRUE rounds "
            "up so that it counts. Type TRUE or FALSE.",
    "out": "Output size, live: floor((H_in + 2 x padding - dilation x (kernel_size - 1) - 1)/stride) + 1, the "
           "lecture's H_out = (H_in + 2 x padding - kernel size)/Stride + 1 rounded down as torch does (dilation 1).",
}


def size_table(sheet: ConvSheet, op: Conv | Pool, src: Placed, out_grids: list[Grid], kernel: tuple[int, int],
               top: int, left: int, kernel_grid: Grid | None = None) -> None:
    """Output height and width as live formulas of the input size, kernel, stride, padding, dilation: one column
    per argument, as torch's signature reads, a row for H and a row for W."""
    pool = isinstance(op, Pool)
    keys = ["in", "k", "s", "p", "d"] + (["ceil"] if pool else []) + ["out"]
    values = {"k": kernel, "s": op.stride, "p": op.padding, "d": op.dilation}

    def param(key: str, axis: int, r: int, c: int) -> None:
        if key == "ceil":
            assert isinstance(op, Pool), "only pooling has a ceil_mode column"
            sheet.ws.write_boolean(r, c, op.ceil_mode, style.cell(sheet.book, "param", style.BOOLEAN_FORMAT))
        else:
            sheet.ws.write_number(r, c, values[key][axis], style.cell(sheet.book, "param", "0"))

    def out(cells: dict[str, tuple[str, str]], axis: int) -> str:
        i, k, s, p, d = (cells[x][axis] for x in ("in", "k", "s", "p", "d"))
        return fx.out_size(i, k, s, p, d, cells["ceil"][axis] if pool else None)

    size_columns(sheet, op.name, src, out_grids, kernel, kernel_grid, keys, top, left, SIZE_HEADINGS,
                 lambda key: SIZE_NOTES[f"{key}_pool" if key in ("k", "p") and pool else key], param, out)


def size_columns(sheet: ConvSheet, name: str, src: Placed, out_grids: list[Grid], kernel: tuple[int, int],
                 kernel_grid: Grid | None, keys: Sequence[str], top: int, left: int, headings: dict[str, str],
                 note: Callable[[str], str], param: Callable[[str, int, int, int], None],
                 out: Callable[[dict[str, tuple[str, str]], int], str]) -> None:
    """A live output-size table of op name at (top, left): a column per key with its heading and note, a row for H
    and a row for W. The input size is counted from the grid src reads, the kernel size from kernel_grid (when
    given), param(key, axis, row, column) writes the other typed arguments, and out(cells, axis) is the output
    size's formula of the cells by key."""
    b, ws = sheet.book, sheet.ws
    first, last = src.grids[0].cell(0, 0), src.grids[0].cell(src.grids[0].height - 1, src.grids[0].width - 1)
    head_fmt = b.fmt(bold=True, font_size=9, align="center", valign="vcenter", text_wrap=True)
    ws.write_string(top - 1, left, "output size (live)", b.fmt(bold=True, font_size=9))
    for axis, text in ((0, "H"), (1, "W")):
        ws.write_string(top + 1 + axis, left, text, b.fmt(bold=True, font_size=10, align="right", valign="vcenter"))
    _, h_in, w_in = src.values.shape
    cells: dict[str, tuple[str, str]] = {}
    sheet.roles.update(("param", "output", "input"))
    for n, key in enumerate(keys):
        c = left + 1 + n
        ws.write_string(top, c, headings[key], head_fmt)
        hw = []
        for axis in (0, 1):
            r = top + 1 + axis
            hw.append(a1(r, c))
            if key == "in":
                f = fx.rows_of(first, last) if axis == 0 else fx.columns_of(first, last)
                ws.write_formula(r, c, f, style.cell(b, "input", "0"), (h_in, w_in)[axis])
            elif key == "k" and kernel_grid is not None:
                kf, kl = kernel_grid.cell(0, 0), kernel_grid.cell(kernel_grid.height - 1, kernel_grid.width - 1)
                f = fx.rows_of(kf, kl) if axis == 0 else fx.columns_of(kf, kl)
                ws.write_formula(r, c, f, style.cell(b, "kernel", "0"), kernel[axis])
            elif key == "out":
                ws.write_formula(r, c, out(cells, axis), style.cell(b, "output", "0", bold=True),
                                 (out_grids[0].height, out_grids[0].width)[axis])
            else:
                param(key, axis, r, c)
        cells[key] = (hw[0], hw[1])
        sheet.note(top + 1, c, note(key))
    for axis, suffix in ((0, "h"), (1, "w")):
        b.record(f"{name}_size_{suffix}", "size", sheet.spec.sheet,
                 [Grid(top + 1 + axis, left + 1 + n, 1, 1) for n in range(len(keys))],
                 rows=list(keys), output=name, axis=axis)
    sheet.grid_rows.update(range(top, top + 3))
    sheet.max_col = max(sheet.max_col, left + len(keys))
    sheet.row = max(sheet.row, top + 4)


# -- step-by-step panels ----------------------------------------------------------------------------------------


def default_pick(candidates: Iterable[Pick], lights: Callable[[Pick], set[tuple[int, int]]],
                 lit: set[tuple[int, int]]) -> Pick:
    """The first candidate whose lit cells overlap the earlier panels' least (so two panels start apart)."""
    best: Pick | None = None
    best_overlap = -1
    for pick in candidates:
        overlap = len(lights(pick) & lit)
        if best is None or overlap < best_overlap:
            best, best_overlap = pick, overlap
            if overlap == 0:
                break
    assert best is not None, "a map has at least one cell"
    return best


def _heading(sheet: ConvSheet, k: int, text: str) -> int:
    """Panel k's heading bar on the cursor's row (merged later, to the panel's width); returns its row."""
    sheet.start_band()
    row = sheet.row
    sheet.row_points[row] = 30
    sheet.row += 1
    sheet.panel_headings.append((row, k, text))
    return row


def _picks(sheet: ConvSheet, k: int, entries: Sequence[tuple[str, str, int, int, str]]) -> tuple[dict[str, str],
                                                                                               dict[str, Grid]]:
    """The panel's yellow pick cells on the cursor's row: (key, label, largest value, default (1-based), note)."""
    b, ws = sheet.book, sheet.ws
    row = sheet.row
    _fill, line, _ = style.panel_colour(k)
    pick_fmt = style.cell(b, "pick", "0", bold=True, border=2, border_color=line, locked=False)
    refs: dict[str, str] = {}
    grids: dict[str, Grid] = {}
    col = 1
    for key, text, limit, value, why in entries:
        ws.merge_range(row, col, row, col + 1, text, b.fmt(align="right", valign="vcenter", font_size=10, bold=True))
        ws.write_number(row, col + 2, value, pick_fmt)
        ws.data_validation(row, col + 2, row, col + 2,
                           dict(validate="integer", criteria="between", minimum=1, maximum=limit,
                                input_title=text, input_message=f"1 to {limit}"))
        sheet.note(row, col + 2, why)
        refs[key] = a1(row, col + 2, absolute=True)
        grids[key] = Grid(row, col + 2, 1, 1)
        col += 4
    sheet.roles.add("pick")
    sheet.row_points[row] = 24
    sheet.last_pick_col = col
    sheet.row += 1
    return refs, grids


def _only_filter(sheet: ConvSheet, text: str) -> Grid:
    """The filter cell of a panel with one filter to pick from: the number 1, shown as text, not yellow (verify
    reads the panel's filter, row and column)."""
    b, ws = sheet.book, sheet.ws
    row, col = sheet.row - 1, sheet.last_pick_col
    shown = text.replace('"', "'")
    ws.merge_range(row, col, row, col + 4, 1, b.fmt(num_format=f'"{shown}"', font_size=10, italic=True,
                                                   valign="vcenter"))
    return Grid(row, col, 1, 1)


def _result(sheet: ConvSheet, k: int, row: int, left: int, text: str, formula: str, value: float | str,
            role: str, num_format: str, panel: bool = False) -> str:
    """One line of a panel's result column: a label (3 columns) and a formula cell; returns the cell's address."""
    b, ws = sheet.book, sheet.ws
    ws.merge_range(row, left, row, left + 2, text, b.fmt(font_size=9, align="right", valign="vcenter"))
    fill = style.panel_colour(k)[0]
    look = (style.panel_cell(b, k, role, num_format, bold=True, bg_color=fill) if panel
            else style.panel_cell(b, k, role, num_format))
    ws.write_formula(row, left + 3, formula, look, value if isinstance(value, str) else style.cached(value))
    sheet.grid_rows.add(row)
    if isinstance(value, (int, float, np.floating)):
        sheet.measure(np.array([value]), num_format)
    return a1(row, left + 3)


def trace(sheet: ConvSheet, op: Conv, window_src: Placed, kernels: dict[str, list[Grid]], bias_cells: list[Grid] | None,
          out_grids: list[Grid]) -> None:
    """A conv's step-by-step panel: pick an output cell; see its window, the filter, the products and their sum."""
    b = sheet.book
    k = sheet.panels
    sheet.panels += 1
    _fill, _line, colour = style.panel_colour(k)
    c_in, n_out = len(window_src.grids), len(op.weight)
    kh, kw = sheet.spec.grid(op.weight[0]).values.shape[1:]
    eh, ew = kernels[op.weight[0]][0].height, kernels[op.weight[0]][0].width
    oh, ow = out_grids[0].height, out_grids[0].width
    (sh, sw), (dh, dw) = op.stride, op.dilation
    in_names = sheet.channel_names(op.input)
    filter_grids = {w: sheet.placed[w].grids + (kernels[w] if kernels[w] != sheet.placed[w].grids else [])
                    for w in op.weight}

    def lights(pick: Pick) -> set[tuple[int, int]]:
        o, r, c = pick
        cells = {(g.top + r * sh + a * dh, g.left + c * sw + e * dw) for g in window_src.grids
                 for a in range(kh) for e in range(kw)}
        if n_out > 1:
            cells |= {(g.top + i, g.left + j) for g in filter_grids[op.weight[o]]
                      for i in range(g.height) for j in range(g.width)}
        cells.add((out_grids[o].top + r, out_grids[o].left + c))
        return cells

    o0, r0, c0 = default_pick(((o, r, c) for o in range(n_out) for r in range(oh) for c in range(ow)), lights,
                              sheet.lit)
    sheet.lit |= lights((o0, r0, c0))
    what = "a filter, an output row and column" if n_out > 1 else "an output row and column"
    _heading(sheet, k, f"Step by step for {op.name} ({colour}): type {what} in the yellow cells (counted from 1). "
                       f"The window lights up {colour} in the input{' with the filter' if n_out > 1 else ''} and the "
                       f"output cell; below, the window times the filter, cell by cell, adds up to that output cell.")
    entries = []
    if n_out > 1:
        entries.append(("filter", "Filter", n_out, o0 + 1,
                        f"Which filter (1 to {n_out}): \"Do the same process for every filter\". The picked filter "
                        f"lights up {colour}; its feature map is the one whose cell is picked."))
    entries += [("row", "row", oh, r0 + 1, f"Output row, 1 (top) to {oh}; torch counts from 0, so row 1 is index 0. "
                                          f"The window starts {sh} input row(s) lower for each row down (stride)."),
                ("column", "column", ow, c0 + 1, f"Output column, 1 (left) to {ow}; the window starts {sw} input "
                                                f"column(s) further right for each column (stride).")]
    picks, pick_grids = _picks(sheet, k, entries)
    if n_out == 1:
        pick_grids["filter"] = _only_filter(sheet, f"{sheet.spec.grid(op.weight[0]).label}: the only filter")
        picks["filter"] = ""
    o_ref, r_ref, c_ref = picks["filter"], picks["row"], picks["column"]
    blocks: list[BandBlock] = []
    for ch in range(c_in):
        suffix = f", {in_names[ch]}" if c_in > 1 else ""
        kernel_label = "the picked filter" if n_out > 1 else sheet.spec.grid(op.weight[0]).label
        if op.dilation != (1, 1):
            kernel_label += ", dilated"
        blocks += [(f"window{suffix}", [""], (eh, ew)), (kernel_label + suffix, [""], (eh, ew)),
                   (f"window x filter{suffix}", [""], (eh, ew))]
    placed = sheet.band(blocks, label_rows=1)
    padded = ref.pad(sheet.values[op.input], op.padding)
    kvals = ref.dilate_kernel(sheet.values[op.weight[o0]], op.dilation)
    win0 = padded[:, r0 * sh:r0 * sh + eh, c0 * sw:c0 * sw + ew]
    products: list[Grid] = []
    for ch in range(c_in):
        wg, kg, pg = placed[3 * ch][0], placed[3 * ch + 1][0], placed[3 * ch + 2][0]
        src_abs = window_src.grids[ch].ref(absolute=True)
        options = [kernels[w][ch] for w in op.weight]
        sheet.write_grid(wg, "input", win0[ch],
                         lambda i, j: fx.window_tap(src_abs, r_ref, c_ref, i, j, op.stride, (1, 1)),
                         style.panel_cell(b, k, "input", style.num_format(win0[ch])))
        sheet.write_grid(kg, "kernel", kvals[ch],
                         lambda i, j: (fx.choose(o_ref, [g.cell(i, j, absolute=True) for g in options]) if n_out > 1
                                       else fx.copy(options[0].cell(i, j, absolute=True))),
                         style.panel_cell(b, k, "kernel", style.num_format(kvals[ch])))
        prod = win0[ch] * kvals[ch]
        sheet.write_grid(pg, "product", prod, lambda i, j: fx.product(wg.cell(i, j), kg.cell(i, j)),
                         style.panel_cell(b, k, "product", style.num_format(prod)))
        products.append(pg)
        sgrid = window_src.grids[ch]
        sheet.highlight(sgrid, k, fx.in_window(sgrid.top + 1, sgrid.left + 1, r_ref, c_ref, (kh, kw), op.stride,
                                               op.dilation))
    sheet.note(placed[0][0].top, placed[0][0].left,
               "The window: INDEX picks the input cell under each filter tap for the output cell you typed, "
               "starting (row - 1) x stride cells down and (column - 1) x stride cells right.")
    if n_out > 1:
        for o, w in enumerate(op.weight):
            for g in filter_grids[w]:
                sheet.highlight(g, k, fx.picked(o_ref, o + 1))
    for o, g in enumerate(out_grids):
        which = f"{o_ref}={o + 1}" if n_out > 1 else None
        sheet.highlight(g, k, fx.is_cell(g.top + 1, g.left + 1, r_ref, c_ref, which))
    sum_up(sheet, k, op, products, win0, kvals, in_names, bias_cells, out_grids, picks, pick_grids, (o0, r0, c0),
           placed[-1][0].right + 2, placed[0][0].top,
           "The sum of the products (plus the bias) equals the output cell: that is all a convolution computes. Use "
           "Excel to verify!")


def sum_up(sheet: ConvSheet, k: int, op: Conv | ConvTranspose, products: list[Grid], win0: np.ndarray,
           kvals: np.ndarray, in_names: list[str], bias_cells: list[Grid] | None, out_grids: list[Grid],
           picks: dict[str, str], pick_grids: dict[str, Grid], pick: Pick, left: int, row: int, note: str) -> None:
    """The result column of a conv's (or transposed conv's) step panel, at (row, left): each channel's sum of
    products, the bias, their total, the picked output cell read from its map, and a check that they are equal."""
    o0, r0, c0 = pick
    o_ref, r_ref, c_ref = picks["filter"], picks["row"], picks["column"]
    n_out, c_in = len(op.weight), len(products)
    per_channel = [float((win0[ch] * kvals[ch]).sum()) for ch in range(c_in)]
    bias_val = op.bias[o0] if op.bias else 0.0
    total = sum(per_channel) + bias_val
    nf = style.num_format(np.array(per_channel + [total]))
    sums: list[str] = []
    alone = c_in == 1 and not bias_cells  # the sum of the products is the total itself
    for ch, pg in enumerate(products):
        text = f"sum of products, {in_names[ch]}" if c_in > 1 else "sum of products"
        sums.append(_result(sheet, k, row, left, text, fx.total([pg.ref()]), per_channel[ch], "product", nf,
                            panel=alone))
        row += 1
    if bias_cells:
        assert op.bias is not None, "bias cells are drawn only for an op with a bias"
        bias_formula = (fx.choose(o_ref, [g.cell(0, 0, absolute=True) for g in bias_cells]) if n_out > 1
                        else fx.copy(bias_cells[0].cell(0, 0, absolute=True)))
        sums.append(_result(sheet, k, row, left, "+ bias", bias_formula, bias_val, "bias",
                            style.num_format(np.array(op.bias))))
        row += 1
    if alone:
        total_ref = sums[0]
    else:
        total_ref = _result(sheet, k, row, left, "= total", fx.total(sums), total, "output", nf, panel=True)
        row += 1
    chosen = (fx.choose(o_ref, [fx.index(g.ref(absolute=True), r_ref, c_ref)[1:] for g in out_grids]) if n_out > 1
              else fx.index(out_grids[0].ref(absolute=True), r_ref, c_ref))
    chosen_ref = _result(sheet, k, row, left, "the picked output cell", chosen,
                         float(sheet.values[op.name][o0, r0, c0]), "output", nf, panel=True)
    row += 1
    _result(sheet, k, row, left, "check", fx.equal_check(total_ref, chosen_ref), "= equal", "param", "@")
    sheet.note(row, left + 3, note)
    sheet.book.record(f"{op.name}_trace", "trace", sheet.spec.sheet,
                      [pick_grids["filter"], pick_grids["row"], pick_grids["column"], _cell(total_ref),
                       _cell(chosen_ref)], output=op.name, cells=["filter", "row", "column", "total", "output"])
    _close(sheet, k, left + 3, row)


def pool_trace(sheet: ConvSheet, op: Pool, src: Placed, out_grids: list[Grid]) -> None:
    """A pooling's step-by-step panel: pick a pooled cell; its window lights up in the map, the window's MAX (or
    average) is shown, and a check says it equals the cell."""
    b = sheet.book
    k = sheet.panels
    sheet.panels += 1
    _fill, _line, colour = style.panel_colour(k)
    n_ch = len(src.grids)
    c, oh, ow = sheet.values[op.name].shape
    _, h, w = src.values.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op.kernel_size, op.stride, op.padding, op.dilation
    names = sheet.channel_names(op.name)
    chan = "Filter" if names[0].startswith("Filter") else "channel"

    def lights(pick: Pick) -> set[tuple[int, int]]:
        ch, r, cc = pick
        g = src.grids[ch]
        cells = {(g.top + r * sh - ph + a * dh, g.left + cc * sw - pw + e * dw)
                 for a in range(kh) for e in range(kw)
                 if 0 <= r * sh - ph + a * dh < h and 0 <= cc * sw - pw + e * dw < w}
        cells.add((out_grids[ch].top + r, out_grids[ch].left + cc))
        return cells

    ch0, r0, c0 = default_pick(((ch, r, cc) for ch in range(n_ch) for r in range(oh) for cc in range(ow)), lights,
                               sheet.lit)
    sheet.lit |= lights((ch0, r0, c0))
    reduce = "MAX" if op.mode == "max" else "average"
    what = f"a {chan}, a pooled row and column" if n_ch > 1 else "a pooled row and column"
    _heading(sheet, k, f"Step by step for {op.name} ({colour}): type {what} in the yellow cells (counted from 1). "
                       f"The {kh}x{kw} window lights up {colour} in the map it pools, with the pooled cell; below, "
                       f"the window and its {reduce}, which is that pooled cell.")
    entries = []
    if n_ch > 1:
        first = "Filter 1" if chan == "Filter" else "channel 0"
        entries.append(("filter", chan, n_ch, ch0 + 1, f"Which map (1 to {n_ch}; 1 is {first}). Pooling works on "
                                                       f"each map on its own, so the pooled maps keep its names."))
    entries += [("row", "row", oh, r0 + 1, f"Pooled row, 1 (top) to {oh}: its window starts {sh} map row(s) lower "
                                          f"for each row down (stride)."),
                ("column", "column", ow, c0 + 1, f"Pooled column, 1 (left) to {ow}: its window starts {sw} map "
                                                f"column(s) further right for each column (stride).")]
    picks, pick_grids = _picks(sheet, k, entries)
    if n_ch == 1:
        pick_grids["filter"] = _only_filter(sheet, "one map to pool")
        picks["filter"] = ""
    ch_ref, r_ref, c_ref = picks["filter"], picks["row"], picks["column"]
    (wg,), = sheet.band([("window", [""], (kh, kw))], label_rows=1)
    # A tap can fall on the padding (or past the edge with ceil_mode): it shows blank there, and MAX skips it.
    guard = (any(not 0 <= i * sh - ph + a * dh < h for i in range(oh) for a in range(kh))
             or any(not 0 <= j * sw - pw + e * dw < w for j in range(ow) for e in range(kw)))
    size = (h, w) if guard else None
    x = src.values[ch0]
    win0 = np.full((kh, kw), np.nan)
    for a in range(kh):
        for e in range(kw):
            i, j = r0 * sh - ph + a * dh, c0 * sw - pw + e * dw
            if 0 <= i < h and 0 <= j < w:
                win0[a, e] = x[i, j]

    def tap(a: int, e: int) -> str:
        options = [fx.pool_tap(g.ref(absolute=True), r_ref, c_ref, a, e, op.stride, op.padding, op.dilation, size)
                   for g in src.grids]
        return fx.choose(ch_ref, [o[1:] for o in options]) if n_ch > 1 else options[0]

    nf = style.num_format(np.nan_to_num(win0))
    look = style.panel_cell(b, k, "input", nf)
    sheet.measure(np.nan_to_num(win0), nf)
    for a in range(kh):
        sheet.grid_rows.add(wg.top + a)
        for e in range(kw):
            v = win0[a, e]
            sheet.ws.write_formula(wg.top + a, wg.left + e, tap(a, e), look, "" if np.isnan(v) else style.cached(v))
    sheet.max_col = max(sheet.max_col, wg.right)
    sheet.note(wg.top, wg.left, "The window: INDEX picks the map cell under each tap of the pooling window for the "
                                "pooled cell you typed" + (" (blank where it falls on the padding, which torch's "
                                                           "max pooling never picks)" if guard else "") + ".")
    for ch, g in enumerate(src.grids):
        rule = fx.in_window(g.top + 1 - ph, g.left + 1 - pw, r_ref, c_ref, (kh, kw), op.stride, op.dilation)
        sheet.highlight(g, k, fx.all_of([rule, fx.picked(ch_ref, ch + 1)]) if n_ch > 1 else rule)
    for ch, g in enumerate(out_grids):
        sheet.highlight(g, k, fx.is_cell(g.top + 1, g.left + 1, r_ref, c_ref,
                                         f"{ch_ref}={ch + 1}" if n_ch > 1 else None))
    left = wg.right + 2
    row = wg.top
    value = float(sheet.values[op.name][ch0, r0, c0])
    out_nf = style.num_format(sheet.values[op.name]) if op.mode == "max" else "0.00"
    window = [wg.ref()]
    if op.mode == "max":
        formula = fx.pool("max", window)
    elif op.count_include_pad and guard:
        formula = fx.mean_over(window, f"{fx.pool_divisor(r_ref, kh, sh, h + 2 * ph)}*"
                                       f"{fx.pool_divisor(c_ref, kw, sw, w + 2 * pw)}")
    else:
        formula = fx.pool("avg", window)
    total_ref = _result(sheet, k, row, left, f"{reduce} of the window", formula, value, "output", out_nf, panel=True)
    row += 1
    chosen = (fx.choose(ch_ref, [fx.index(g.ref(absolute=True), r_ref, c_ref)[1:] for g in out_grids]) if n_ch > 1
              else fx.index(out_grids[0].ref(absolute=True), r_ref, c_ref))
    chosen_ref = _result(sheet, k, row, left, "the picked pooled cell", chosen, value, "output", out_nf, panel=True)
    row += 1
    _result(sheet, k, row, left, "check", fx.equal_check(total_ref, chosen_ref), "= equal", "param", "@")
    sheet.note(row, left + 3, f"The {reduce} of the window equals the pooled cell: that is all "
                              f"{'max' if op.mode == 'max' else 'average'} pooling computes. Use Excel to verify!")
    sheet.book.record(f"{op.name}_trace", "trace", sheet.spec.sheet,
                      [pick_grids["filter"], pick_grids["row"], pick_grids["column"], _cell(total_ref),
                       _cell(chosen_ref)], output=op.name, cells=["filter", "row", "column", "total", "output"])
    _close(sheet, k, left + 3, row)


def _cell(address: str) -> Grid:
    """The one-cell grid at an A1 address."""
    from xlconv.cells import parse_a1

    r, c = parse_a1(address)
    return Grid(r, c, 1, 1)


def _close(sheet: ConvSheet, k: int, right: int, last_row: int) -> None:
    """Finish a panel: the sheet's width and cursor, and its heading bar across the panel's width."""
    sheet.max_col = max(sheet.max_col, right)
    sheet.row = max(sheet.row, last_row + 2)
    row, panel, text = sheet.panel_headings[-1]
    sheet.ws.merge_range(row, 1, row, max(right, 1 + 17), text, style.panel_heading(sheet.book, panel))


def write_highlights(sheet: ConvSheet) -> None:
    """Every panel's highlights, before any heat map or picture so that they win (stop_if_true): where two panels
    light the same cell, the earlier panel's fill framed in the later one's border colour."""
    b, ws = sheet.book, sheet.ws
    for g, rules in sheet.highlights.items():
        area = (g.top, g.left, g.bottom, g.right)
        on_scale = any(g.top <= s.top and s.bottom <= g.bottom and g.left <= s.left and s.right <= g.right
                       for s in sheet.scaled)
        for (p, rule_p), (q, rule_q) in combinations(rules, 2):
            if p != q:
                look = style.panel_highlight(b, p, also=q, on_scale=on_scale)
                ws.conditional_format(*area, dict(type="formula", criteria=fx.all_of([rule_p, rule_q]), format=look,
                                                  stop_if_true=True))
        for p, rule in rules:
            look = style.panel_highlight(b, p, on_scale=on_scale)
            ws.conditional_format(*area, dict(type="formula", criteria=rule, format=look, stop_if_true=True))
