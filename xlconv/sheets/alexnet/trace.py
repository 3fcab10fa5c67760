"""The Trace sheet: one conv1 cell taken apart, from its window and filter to the total that equals the map cell."""

from __future__ import annotations

import numpy as np

from xlconv import formulas as fx
from xlconv.book import Book
from xlconv.cells import Grid, a1, quote_sheet
from xlconv.rowstream import Deferred
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import heading, padded_input
from xlconv.sheets.alexnet.layout import (CHANNEL_NAMES, MAPS_PER_BAND, SHEET_CONV, SHEET_FILTERS, SHEET_TRACE,
                                          Layout)
from xlconv.torchnet import Run

PANELS = (("window of the padded input (conv1 sheet)", "input", "0.00"),
          ("filter weights (Filters sheet)", "kernel", "0.000"),
          ("window x weights", "product", "0.000"))


class TraceSheet:
    """One conv1 cell taken apart: window, filter, products, per-channel sums, bias, total = the map cell."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.L = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_TRACE)

    def build(self) -> None:
        b, ws, L, data = self.book, self.ws, self.L, self.data
        geo = data.geometry
        K, S, CONV, n_in = geo.kernel, geo.stride, geo.conv, geo.in_channels
        last = geo.filters - 1
        d = Deferred(ws)
        chans = data.channels
        sc = len(PANELS) * (K + 1) + 1  # the column of the sums' labels
        ws.set_column(0, 0, 2)
        ws.set_column(1, sc + 11, 6.2)
        ws.set_column(sc + 3, sc + 3, 11)  # the sums and the total
        d.write_string(0, 1, heading(data, "one conv1 output cell, step by step"), b.fmt(**style.TITLE))
        note = (f"Type a channel (0-{last}, as torch numbers the filters) and an output row y and column x (1-{CONV}, "
                f"1 = top / left). The sheet fetches the {n_in} x {K} x {K} window of the padded input that this "
                f"output cell reads (rows {S}(y-1)+1 ... {S}(y-1)+{K} of the padded input, columns likewise), the "
                f"filter's {n_in} x {K} x {K} weights and its bias, multiplies them tap by tap, sums each channel, "
                "adds the bias, and compares the total with the cell of the conv1 map. All live (INDEX formulas).")
        d.merge_range(1, 1, 1, 36, note, b.fmt(**style.NOTE))
        d.set_row(1, 15 * 4)
        pick = style.cell(b, "pick", "0", bold=True, border=2, locked=False)
        right = b.fmt(align="right", font_size=10, bold=True)
        r = 3
        default = (chans[0], CONV // 2 + 1, CONV // 2 + 1)
        picks = {}
        for n, (key, text, lo, hi) in enumerate((("channel", f"channel (0-{last})", 0, last),
                                                 ("row", f"output row y (1-{CONV})", 1, CONV),
                                                 ("column", f"output column x (1-{CONV})", 1, CONV))):
            c = 1 + n * 6
            d.merge_range(r, c, r, c + 2, text, right)
            d.write_number(r, c + 3, default[n], pick)
            ws.data_validation(r, c + 3, r, c + 3, dict(validate="integer", criteria="between", minimum=lo,
                                                        maximum=hi, input_title=key, input_message=f"{lo} to {hi}"))
            picks[key] = a1(r, c + 3, absolute=True)
        pick_grids = {k: Grid(r, 4 + 6 * n, 1, 1) for n, k in enumerate(("channel", "row", "column"))}
        ch, y, x = picks["channel"], picks["row"], picks["column"]
        # Which map of the conv1 sheet shows that channel: its position in the list of built channels.
        r = 5
        d.write_string(r, 1, "channels on the conv1 sheet:", b.fmt(font_size=9, italic=True))
        list_left = 5
        for n, k in enumerate(chans):
            d.write_number(r, list_left + n, k, b.fmt(font_size=8, font_color="#808080", align="center"))
        chan_list = Grid(r, list_left, 1, len(chans)).ref(absolute=True)
        first_list = a1(r, list_left, absolute=True)
        r = 6
        d.merge_range(r, 1, r, 3, "map number on conv1", right)
        pos_ref = a1(r, 4, absolute=True)
        d.write_formula(r, 4, fx.position_in(chan_list, first_list, ch), style.cell(b, "param", "0"), 1)
        d.write_string(r, 5, "(1 = the first map; 0: that channel is not on the conv1 sheet, rebuild with --channels)",
                       b.fmt(font_size=9, italic=True))
        pos_grid = Grid(r, 4, 1, 1)
        d.write_string(r, 14, "torch index:", right)
        d.write_formula(r, 15, fx.torch_index_label("conv1_out", ch, y, x), b.fmt(font_size=10),
                        f"conv1_out[0, {default[0]}, {default[1] - 1}, {default[2] - 1}]")
        # The window, the filter and the products per channel.
        r = 8
        k0 = default[0]
        y0, x0 = (default[1] - 1) * S, (default[2] - 1) * S
        win = padded_input(data).astype(np.float64)[:, y0:y0 + K, x0:x0 + K]
        ker = data.weight[k0].astype(np.float64)
        weights_area = quote_sheet(SHEET_FILTERS) + "!" + L.weights_area().ref(absolute=True)
        sum_cells = []
        for c in range(n_in):
            d.write_string(r, 1, f"channel {c} ({CHANNEL_NAMES[c]})", b.fmt(bold=True, font_size=11))
            top = r + 1
            src = quote_sheet(SHEET_CONV) + "!" + L.input_grid(c).ref(absolute=True)
            grids = []
            for n, (text, _, _) in enumerate(PANELS):
                left = 1 + n * (K + 1)
                d.write_string(top, left, text, b.fmt(font_size=9, italic=True))
                grids.append(Grid(top + 1, left, K, K))
            gw, gk, gp = grids
            fw = style.cell(b, "input", "0.00", font_size=8)
            fk = style.cell(b, "kernel", "0.000", font_size=8)
            fp = style.cell(b, "product", "0.000", font_size=8)
            for i in range(K):
                for j in range(K):
                    d.write_formula(gw.top + i, gw.left + j, fx.window_tap(src, y, x, i, j, (S, S), (1, 1)), fw,
                                    float(win[c, i, j]))
                    d.write_formula(gk.top + i, gk.left + j,
                                    fx.stacked_tap(weights_area, ch, L.num_band, i, L.ch_left[c] - L.ch_left[0] + j),
                                    fk, float(ker[c, i, j]))
                    d.write_formula(gp.top + i, gp.left + j, fx.product(gw.cell(i, j), gk.cell(i, j)), fp,
                                    float(win[c, i, j] * ker[c, i, j]))
            d.merge_range(top + 1, sc, top + 1, sc + 2, f"sum of channel {c}", right)
            d.write_formula(top + 1, sc + 3, fx.total([gp.ref()]), style.cell(b, "product", "0.0000"),
                            float((win[c] * ker[c]).sum()))
            sum_cells.append(a1(top + 1, sc + 3))
            r = top + 1 + K + 1
        total = float((win * ker).sum() + data.bias[k0])
        map_val = float(data.conv[k0, default[1] - 1, default[2] - 1])
        d.merge_range(r, sc, r, sc + 2, "+ bias (Filters sheet)", right)
        d.write_formula(r, sc + 3, fx.stacked_tap(weights_area, ch, L.num_band, 0, L.bias_col - L.ch_left[0]),
                        style.cell(b, "bias", "0.0000"), float(data.bias[k0]))
        bias_ref = a1(r, sc + 3)
        r += 1
        d.merge_range(r, sc, r, sc + 2, "= total", right)
        d.write_formula(r, sc + 3, fx.plus(sum_cells + [bias_ref]), style.cell(b, "output", "0.0000", bold=True),
                        total)
        total_ref = a1(r, sc + 3)
        total_grid = Grid(r, sc + 3, 1, 1)
        r += 1
        maps = quote_sheet(SHEET_CONV) + "!" + L.maps_area("conv").ref(absolute=True)
        d.merge_range(r, sc, r, sc + 2, "the conv1 map's cell", right)
        d.write_formula(r, sc + 3, fx.banded_cell(maps, pos_ref, MAPS_PER_BAND, L.sections["conv"][2], L.map_stride,
                                                  y, x), style.cell(b, "output", "0.0000"), map_val)
        out_ref = a1(r, sc + 3)
        out_grid = Grid(r, sc + 3, 1, 1)
        r += 1
        d.merge_range(r, sc, r, sc + 2, "check", right)
        d.write_formula(r, sc + 3, fx.equal_check(total_ref, out_ref), b.fmt(bold=True, align="center"), "= equal")
        r += 1
        d.merge_range(r, sc, r, sc + 2, "after ReLU: MAX(0, total)", right)
        d.write_formula(r, sc + 3, fx.relu(total_ref), style.cell(b, "output", "0.0000"), max(total, 0.0))
        d.flush()
        b.record("conv1_trace", "trace", SHEET_TRACE,
                 [pos_grid, pick_grids["row"], pick_grids["column"], total_grid, out_grid],
                 output="conv1", cells=["filter", "row", "column", "total", "output"],
                 picks={k: v.replace("$", "") for k, v in picks.items()},
                 label="filter = the map number of the picked channel")
        style.page_setup(ws)


__all__ = ["TraceSheet"]
