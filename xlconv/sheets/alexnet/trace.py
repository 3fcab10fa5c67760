"""The Trace sheet: one conv1 cell taken apart, from its window and filter to the total that equals the map cell,
and the max-pool cells it feeds (the conv1 sheet lights them, with the window, in the first panel colour)."""

from __future__ import annotations

import numpy as np

from xlconv import formulas as fx
from xlconv.book import Book
from xlconv.cells import Grid, a1, quote_sheet
from xlconv.rowstream import Deferred
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import heading, note, padded_input, print_plan, scaled_page_setup
from xlconv.sheets.alexnet.layout import (CHANNEL_NAMES, MAPS_PER_BAND, SHEET_CONV, SHEET_FILTERS, SHEET_TRACE,
                                          Layout)
from xlconv.spec import channels_text
from xlconv.torchnet import Run

PANELS = (("window of the padded input (conv1 sheet)", "input", "0.00"),
          ("filter weights (Filters sheet)", "kernel", "0.000"),
          ("window x weights", "product", "0.000"))
COL_WIDTH = 5.4  # characters: 43 pixels, "-0.123" at 8 points
NOTE_ROW_PT = 30.0
SUM_WIDTH = 9.0  # the sums and the total: "-12.3456"


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
        last_col = sc + 3
        ws.set_column(0, 0, 2)
        ws.set_column(1, last_col - 1, COL_WIDTH)
        ws.set_column(last_col, last_col, SUM_WIDTH)
        d.write_string(0, 1, heading(data, "one conv1 output cell, step by step"), b.fmt(**style.TITLE))
        d.set_row(0, 22)
        text = (f"\"Use Excel to verify!\" Type a channel (0-{last}, as torch numbers the filters) and an output row "
                f"y and column x (1-{CONV}, 1 = top / left). The sheet fetches the {n_in} x {K} x {K} window of the "
                f"padded input that this output cell reads (rows {S}(y-1)+1 ... {S}(y-1)+{K} of the padded input, "
                f"columns likewise), the filter's {n_in} x {K} x {K} weights and its bias, multiplies them tap by "
                "tap, sums each channel, adds the bias, and compares the total with the cell of the conv1 map. All "
                "live (INDEX formulas). On the conv1 sheet the window, the output cell and the max-pool cells it "
                "feeds are lit in orange.")
        d.merge_range(1, 1, 1, last_col, text, b.fmt(**style.NOTE))
        d.set_row(1, NOTE_ROW_PT)
        pick = style.cell(b, "pick", "0", bold=True, border=2, locked=False, font_size=11)
        right = b.fmt(align="right", font_size=10, bold=True, valign="vcenter")
        small = b.fmt(font_size=9, italic=True, valign="vcenter")
        default = (chans[0], CONV // 2 + 1, CONV // 2 + 1)
        picks = {}
        for n, (key, text, lo, hi) in enumerate((("channel", f"channel (0-{last})", 0, last),
                                                 ("row", f"output row y (1-{CONV})", 1, CONV),
                                                 ("column", f"output column x (1-{CONV})", 1, CONV))):
            r, c = L.trace_pick[key]
            d.merge_range(r, c - 3, r, c - 1, text, right)
            d.write_number(r, c, default[n], pick)
            ws.data_validation(r, c, r, c, dict(validate="integer", criteria="between", minimum=lo, maximum=hi,
                                                input_title=key, input_message=f"{lo} to {hi}"))
            picks[key] = a1(r, c, absolute=True)
        pick_grids = {k: Grid(*L.trace_pick[k], 1, 1) for k in ("channel", "row", "column")}
        ch, y, x = picks["channel"], picks["row"], picks["column"]
        # The channel list that finds the picked channel's map on conv1: a hidden helper row below the sheet.
        r_list = L.trace_first + n_in * L.trace_block + 7
        list_left = 1
        chan_list = Grid(r_list, list_left, 1, len(chans)).ref(absolute=True)
        first_list = a1(r_list, list_left, absolute=True)
        r, c = L.trace_pos
        d.merge_range(r, c - 3, r, c - 1, "map number on conv1", right)
        pos_ref = a1(r, c, absolute=True)
        d.write_formula(r, c, fx.position_in(chan_list, first_list, ch), style.cell(b, "param", "0", bold=True), 1)
        d.write_string(r, c + 1, f"(1 = the first map; 0: that channel is not on the conv1 sheet, which holds "
                                 f"channels {channels_text(chans)}: rebuild with --channels)", small)
        pos_grid = Grid(r, c, 1, 1)
        d.merge_range(r, 19, r, 21, "torch index", right)
        d.write_formula(r, 22, fx.torch_index_label("conv1_out", ch, y, x), b.fmt(font_size=10, bold=True),
                        f"conv1_out[0, {default[0]}, {default[1] - 1}, {default[2] - 1}]")
        # The max-pool cells this output cell feeds.
        P_K, P_S, POOLED = geo.pool_kernel, geo.pool_stride, geo.pooled
        feeds = {}
        first_r = max(1, -((P_K - default[1]) // P_S) + 1)
        last_r = min(POOLED, (default[1] - 1) // P_S + 1)
        cached = {"first_row": first_r, "last_row": last_r, "first_col": first_r, "last_col": last_r}
        look = b.fmt(bold=True, align="center", valign="vcenter", bg_color=style.PANEL_COLOURS[0], border=1,
                     border_color=style.PANEL_BORDER[0], num_format="0")
        for key, text, pos in (("first_row", "feeds max-pool rows", y), ("last_row", "to", y),
                               ("first_col", "and columns", x), ("last_col", "to", x)):
            r, c = L.trace_feeds[key]
            d.merge_range(r, c - 3, r, c - 1, text, right)
            f = (fx.pool_first(pos, P_K, P_S) if key.startswith("first") else fx.pool_last(pos, P_S, POOLED))
            d.write_formula(r, c, f, look, cached[key])
            feeds[key] = a1(r, c, absolute=True)
        r = L.trace_feeds["first_row"][0]
        d.write_formula(r, L.trace_feeds["last_col"][1] + 1,
                        fx.torch_span_label("pool1_out", ch, feeds["first_row"], feeds["last_row"],
                                            feeds["first_col"], feeds["last_col"]),
                        b.fmt(font_size=10, bold=True),
                        f"pool1_out[0, {default[0]}, {first_r - 1}:{last_r}, {first_r - 1}:{last_r}]")
        d.write_string(r + 1, 1, f"Max pooling {P_K} x {P_K}, stride {P_S}: pooled cell (i, j) is the largest of "
                                 f"ReLU rows {P_S}(i-1)+1 ... {P_S}(i-1)+{P_K} and columns likewise, so this output "
                                 "cell's ReLU value can win in these pooled cells (orange on the conv1 sheet's "
                                 "max-pool map of the channel).", small)
        # The window, the filter and the products per channel.
        k0 = default[0]
        y0, x0 = (default[1] - 1) * S, (default[2] - 1) * S
        win = padded_input(data)[:, y0:y0 + K, x0:x0 + K]  # the cells' own values: the window copies them
        ker = data.weight[k0].astype(np.float64)
        weights_area = quote_sheet(SHEET_FILTERS) + "!" + L.weights_area().ref(absolute=True)
        sum_cells = []
        r = L.trace_first
        first_cells: list[tuple[int, int]] = []
        heads = [style.PANEL_COLOURS[0], None, None]
        for c in range(n_in):
            d.write_string(r, 1, f"channel {c} ({CHANNEL_NAMES[c]})", b.fmt(bold=True, font_size=11))
            top = r + 1
            src = quote_sheet(SHEET_CONV) + "!" + L.input_grid(c).ref(absolute=True)
            grids = []
            for n, (text, _, _) in enumerate(PANELS):
                left = 1 + n * (K + 1)
                hf = (b.fmt(font_size=9, italic=True, bold=True, bg_color=heads[n], border=1,
                            border_color=style.PANEL_BORDER[0]) if heads[n] else b.fmt(font_size=9, italic=True))
                if heads[n]:
                    d.merge_range(top, left, top, left + K - 1, text + ": lit in orange there", hf)
                else:
                    d.write_string(top, left, text, hf)
                grids.append(Grid(top + 1, left, K, K))
            gw, gk, gp = grids
            if c == 0:
                first_cells = [(gw.top, gw.left), (gk.top, gk.left), (gp.top, gp.left)]
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
        # The totals sit beside the last channel's panels, under its sum.
        r = L.trace_first + (n_in - 1) * L.trace_block + 4
        d.merge_range(r, sc, r, sc + 2, "+ bias (Filters sheet)", right)
        d.write_formula(r, sc + 3, fx.stacked_tap(weights_area, ch, L.num_band, 0, L.bias_col - L.ch_left[0]),
                        style.cell(b, "bias", "0.0000"), float(data.bias[k0]))
        bias_at = (r, sc + 3)
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
                                                  y, x), look, map_val)
        out_ref = a1(r, sc + 3)
        out_grid = Grid(r, sc + 3, 1, 1)
        r += 1
        d.merge_range(r, sc, r, sc + 2, "check", right)
        d.write_formula(r, sc + 3, fx.equal_check(total_ref, out_ref), b.fmt(bold=True, align="center"), "= equal")
        r += 1
        d.merge_range(r, sc, r, sc + 2, "after ReLU: MAX(0, total)", right)
        d.write_formula(r, sc + 3, fx.relu(total_ref), style.cell(b, "output", "0.0000"), max(total, 0.0))
        end = max(r, L.trace_first + n_in * L.trace_block - 1)
        # The helper row: hidden, below the print area.
        for n, k in enumerate(chans):
            d.write_number(r_list, list_left + n, k, b.fmt(font_size=8, font_color="#808080", align="center"))
        d.set_row(r_list, None, None, {"hidden": True})
        self._notes(first_cells, bias_at, total_grid, out_grid, pos_grid)
        d.flush()
        b.record("conv1_trace", "trace", SHEET_TRACE,
                 [pos_grid, pick_grids["row"], pick_grids["column"], total_grid, out_grid],
                 output="conv1", cells=["filter", "row", "column", "total", "output"],
                 picks={k: v.replace("$", "") for k, v in picks.items()},
                 feeds={k: v.replace("$", "") for k, v in feeds.items()},
                 label="filter = the map number of the picked channel")
        # Screen: the picks and the first channel's panels; the picks stay when scrolling.
        width_px = style.column_px(2) + (last_col - 1) * style.column_px(COL_WIDTH) + style.column_px(SUM_WIDTH)
        rows = [15.0] * (end + 1)
        rows[0], rows[1] = 22.0, NOTE_ROW_PT
        ws.set_zoom(style.fit_zoom((width_px, sum(rows[:L.trace_first + L.trace_block]) * 4 / 3)))
        ws.freeze_panes(L.trace_first - 1, 0)
        starts = [L.trace_first + c * L.trace_block for c in range(n_in)]
        scaled_page_setup(ws, True, print_plan(rows, starts, width_px * 0.75, landscape=True),
                          repeat_rows=(L.trace_pick["channel"][0], L.trace_feeds["first_row"][0]))
        ws.print_area(0, 0, end, last_col)

    def _notes(self, first_cells: list[tuple[int, int]], bias_at: tuple[int, int], total: Grid, out: Grid,
               pos: Grid) -> None:
        ws, L, geo = self.ws, self.L, self.data.geometry
        K, S = geo.kernel, geo.stride
        note(ws, *L.trace_pick["channel"], f"Which of the {geo.filters} filters (conv1's output channels, 0-based "
                                           "as torch numbers them). Each filter searches its own pattern and makes "
                                           "its own feature map.")
        note(ws, *L.trace_pick["row"], f"Output row y, 1 = top. The window starts at row {S}(y-1)+1 of the padded "
                                       f"input: the stride {S} is how far the filter shifts per output cell.")
        note(ws, *L.trace_pick["column"], f"Output column x, 1 = left. The window starts at column {S}(x-1)+1 of the "
                                          "padded input.")
        note(ws, pos.top, pos.left, "Where the picked channel's map is on the conv1 sheet (its position in the list "
                                    "of channels the workbook was built with).")
        note(ws, *L.trace_feeds["first_row"], f"Max pooling: each pooled cell takes the largest of a "
                                              f"{geo.pool_kernel} x {geo.pool_kernel} window of the ReLU map, moving "
                                              f"{geo.pool_stride} cells. These are the pooled cells whose window "
                                              "contains this output cell.")
        (wr, wc), (kr, kc), (pr, pc) = first_cells
        note(ws, wr, wc, f"\"Filter searches patterns in a small region\": the {K} x {K} region of the padded input "
                         "that this output cell sees, fetched by INDEX from the conv1 sheet.")
        note(ws, kr, kc, f"The filter's weights for this input channel (\"filter has depth\": {geo.in_channels} "
                         f"channels of {K} x {K}), fetched by INDEX from the Filters sheet.")
        note(ws, pr, pc, "Window times weight, tap by tap; their sum over the three channels plus the bias is the "
                         "output cell.")
        note(ws, *bias_at, "The filter's bias, added once after the three channel sums.")
        note(ws, total.top, total.left, "y = b + w1 x1 + w2 x2 + ...: the three channel sums plus the bias. It must "
                                        "equal the conv1 map's cell below.")
        note(ws, out.top, out.left, "The conv1 sheet's own cell for this channel, row and column (lit in orange "
                                    "there).")


__all__ = ["TraceSheet"]
