"""The panels beside a convolution or pooling: its live output-size table, and the step-by-step panel
that takes one output cell apart (window, kernel, products, their sum = the cell)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.cells import Grid, a1
from xlconv.model import Conv, Pool
from xlconv.sheets import style

if TYPE_CHECKING:
    from xlconv.sheets.conv import BandBlock, ConvSheet, Placed

def size_table(sheet: ConvSheet, op: Conv | Pool, src: Placed, out_grids: list[Grid], kernel: tuple[int, int],
               top: int, left: int, kernel_grid: Grid | None = None) -> None:
    """Output height and width as live formulas of the input size, kernel, stride, padding, dilation."""
    b, ws = sheet.book, sheet.ws
    first, last = src.grids[0].cell(0, 0), src.grids[0].cell(src.grids[0].height - 1, src.grids[0].width - 1)
    label_fmt = b.fmt(font_size=9, align="right", valign="vcenter")
    head_fmt = b.fmt(bold=True, font_size=9, align="center")
    param = style.cell(b, "param", "0")
    ws.write_string(top - 1, left, "output size (live)", b.fmt(bold=True, font_size=9))
    ws.write_string(top, left + 3, "H", head_fmt)
    ws.write_string(top, left + 4, "W", head_fmt)
    cells: dict[str, tuple[str, str]] = {}
    pool = isinstance(op, Pool)
    entries = [("input size", "in"), ("kernel_size", "k"), ("stride", "s"), ("padding", "p"), ("dilation", "d")]
    if pool:
        entries.append(("ceil_mode", "ceil"))
    entries.append(("output size", "out"))
    _, h_in, w_in = src.values.shape
    for n, (text, key) in enumerate(entries, start=1):
        r = top + n
        ws.merge_range(r, left, r, left + 2, text, label_fmt)
        hw = []
        for axis in (0, 1):
            c = left + 3 + axis
            hw.append(a1(r, c))
            if key == "in":
                f = fx.rows_of(first, last) if axis == 0 else fx.columns_of(first, last)
                ws.write_formula(r, c, f, style.cell(b, "input", "0"), (h_in, w_in)[axis])
            elif key == "k" and kernel_grid is not None:
                kf, kl = kernel_grid.cell(0, 0), kernel_grid.cell(kernel_grid.height - 1, kernel_grid.width - 1)
                f = fx.rows_of(kf, kl) if axis == 0 else fx.columns_of(kf, kl)
                ws.write_formula(r, c, f, style.cell(b, "kernel", "0"), kernel[axis])
            elif key == "ceil":
                assert isinstance(op, Pool), "only pooling has a ceil_mode row"
                ws.write_boolean(r, c, op.ceil_mode, style.cell(b, "param", style.BOOLEAN_FORMAT))
            elif key == "out":
                i, k, s, p, d = (cells[x][axis] for x in ("in", "k", "s", "p", "d"))
                f = fx.out_size(i, k, s, p, d, cells["ceil"][axis] if pool else None)
                ws.write_formula(r, c, f, style.cell(b, "output", "0", bold=True),
                                 (out_grids[0].height, out_grids[0].width)[axis])
            else:
                value = {"k": kernel, "s": op.stride, "p": op.padding, "d": op.dilation}[key][axis]
                ws.write_number(r, c, value, param)
        cells[key] = (hw[0], hw[1])
    for axis, suffix in ((0, "h"), (1, "w")):
        sheet.book.record(f"{op.name}_size_{suffix}", "size", sheet.spec.sheet,
                         [Grid(top + n, left + 3 + axis, 1, 1) for n in range(1, len(entries) + 1)],
                         rows=[key for _, key in entries], output=op.name, axis=axis)
    sheet.grid_rows.update(range(top, top + len(entries) + 1))
    sheet.max_col = max(sheet.max_col, left + 4)
    sheet.row = max(sheet.row, top + len(entries) + 2)


def trace(sheet: ConvSheet, op: Conv, window_src: Placed, kernels: dict[str, list[Grid]], bias_cells: list[Grid] | None,
          out_grids: list[Grid]) -> None:
    """Step-by-step panel: pick an output cell; see its window, the products, and their sum."""
    b, ws = sheet.book, sheet.ws
    c_in = len(window_src.grids)
    n_out = len(op.weight)
    eh, ew = kernels[op.weight[0]][0].height, kernels[op.weight[0]][0].width
    oh, ow = out_grids[0].height, out_grids[0].width
    ws.write_string(sheet.row, 1, f"Step by step for {op.name}: type an output cell's filter, row and column "
                                 f"(1-based); its window lights up in the input and the products below add up "
                                 f"to that output cell.", b.fmt(italic=True, font_size=10))
    sheet.row += 1
    pick_row = sheet.row
    pick_fmt = style.cell(b, "pick", "0", bold=True, border=2, locked=False)
    picks: dict[str, str] = {}
    pick_grids: list[Grid] = []
    col = 1
    for key, limit in (("filter", n_out), ("row", oh), ("column", ow)):
        ws.merge_range(pick_row, col, pick_row, col + 1, key, b.fmt(align="right", font_size=10))
        ws.write_number(pick_row, col + 2, 1, pick_fmt)
        ws.data_validation(pick_row, col + 2, pick_row, col + 2,
                           dict(validate="integer", criteria="between", minimum=1, maximum=limit,
                                input_title=f"{key}", input_message=f"1 to {limit}"))
        picks[key] = a1(pick_row, col + 2, absolute=True)
        pick_grids.append(Grid(pick_row, col + 2, 1, 1))
        col += 4
    sheet.grid_rows.add(pick_row)
    sheet.row += 2
    o_ref, r_ref, c_ref = picks["filter"], picks["row"], picks["column"]
    blocks: list[BandBlock] = []
    for k in range(c_in):
        ch = f" ch {k}" if c_in > 1 else ""
        blocks += [(f"window{ch}", [""], (eh, ew)), (f"kernel{ch}", [""], (eh, ew)),
                   (f"products{ch}", [""], (eh, ew))]
    placed = sheet.band(blocks)
    sums: list[Grid] = []
    win_vals = sheet.values[op.input]
    padded = ref.pad(win_vals, op.padding)
    kvals = ref.dilate_kernel(sheet.values[op.weight[0]], op.dilation)
    win0 = padded[:, 0:eh, 0:ew]
    for k in range(c_in):
        wg, kg, pg = placed[3 * k][0], placed[3 * k + 1][0], placed[3 * k + 2][0]
        src_abs = window_src.grids[k].ref(absolute=True)
        sheet.write_grid(wg, "input", win0[k],
                         lambda i, j: fx.window_tap(src_abs, r_ref, c_ref, i, j, op.stride, (1, 1)))
        sheet.write_grid(kg, "kernel", kvals[k],
                         lambda i, j: fx.choose(o_ref, [kernels[w][k].cell(i, j, absolute=True)
                                                        for w in op.weight]))
        sheet.write_grid(pg, "product", win0[k] * kvals[k],
                         lambda i, j: fx.product(wg.cell(i, j), kg.cell(i, j)))
        sums.append(pg)
        # Light up the window in the (padded) input the student reads it from.
        sgrid = window_src.grids[k]
        ws.conditional_format(sgrid.top, sgrid.left, sgrid.bottom, sgrid.right, dict(
            type="formula", criteria=fx.in_window(sgrid.top + 1, sgrid.left + 1, r_ref, c_ref, (eh, ew),
                                                  op.stride, (1, 1)),
            format=b.fmt(bg_color=style.COLOURS["pick"], bold=True, font_color="#9C0006")))
    for oc, g in enumerate(out_grids):
        ws.conditional_format(g.top, g.left, g.bottom, g.right, dict(
            type="formula", criteria=fx.is_cell(g.top + 1, g.left + 1, r_ref, c_ref, f"{o_ref}={oc + 1}"),
            format=b.fmt(bold=True, font_color="#9C0006", bg_color=style.COLOURS["pick"])))
    # The totals column, right of the last products grid.
    left = placed[-1][0].right + 2
    top = placed[0][0].top
    label_fmt = b.fmt(font_size=9, align="right", valign="vcenter")
    per_channel = [float((win0[k] * kvals[k]).sum()) for k in range(c_in)]
    bias_val = op.bias[0] if op.bias else 0.0
    total = sum(per_channel) + bias_val
    r = top
    sum_cells: list[str] = []
    for k, pg in enumerate(sums):
        ws.merge_range(r, left, r, left + 2, f"sum of products ch {k}" if c_in > 1 else "sum of products",
                       label_fmt)
        ws.write_formula(r, left + 3, fx.total([pg.ref()]), style.cell(b, "product", style.num_format(np.array(per_channel))),
                         style.cached(per_channel[k]))
        sum_cells.append(a1(r, left + 3))
        r += 1
    if bias_cells:
        ws.merge_range(r, left, r, left + 2, "+ bias", label_fmt)
        ws.write_formula(r, left + 3, fx.choose(o_ref, [g.cell(0, 0, absolute=True) for g in bias_cells]),
                         style.cell(b, "bias", style.num_format(np.array(op.bias))), style.cached(bias_val))
        sum_cells.append(a1(r, left + 3))
        r += 1
    ws.merge_range(r, left, r, left + 2, "= total", label_fmt)
    total_ref = a1(r, left + 3)
    ws.write_formula(r, left + 3, fx.total(sum_cells), style.cell(b, "output", style.num_format(np.array([total])),
                                                                  bold=True), style.cached(total))
    r += 1
    ws.merge_range(r, left, r, left + 2, "output cell", label_fmt)
    chosen_ref = a1(r, left + 3)
    ws.write_formula(r, left + 3, fx.choose(o_ref, [fx.index(g.ref(absolute=True), r_ref, c_ref)[1:]
                                                    for g in out_grids]),
                     style.cell(b, "output", style.num_format(np.array([total]))), style.cached(sheet.values[op.name][0, 0, 0]))
    r += 1
    ws.merge_range(r, left, r, left + 2, "check", label_fmt)
    ws.write_formula(r, left + 3, fx.equal_check(total_ref, chosen_ref), b.fmt(bold=True, align="center"),
                     "= equal")
    for rr in range(top, r + 1):
        sheet.grid_rows.add(rr)
    sheet.book.record(f"{op.name}_trace", "trace", sheet.spec.sheet,
                     pick_grids + [Grid(r - 2, left + 3, 1, 1), Grid(r - 1, left + 3, 1, 1)],
                     output=op.name, cells=["filter", "row", "column", "total", "output"])
    sheet.max_col = max(sheet.max_col, left + 3)
    sheet.row = max(sheet.row, r + 2)
