"""The conv1 sheet: the padded input and, per selected channel, the conv1, ReLU and max-pool maps as live formulas.

About 600,000 cells: the rows are streamed by :class:`xlconv.rowstream.RowStream`. Each map's formula is cut
once into fixed pieces by the formula builders (``formulas.pieces``), and the hot loops only put cell
references between them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from xlsxwriter.format import Format

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import Book
from xlconv.cells import MAX_FORMULA_CHARS, quote_sheet
from xlconv.rowstream import Deferred, RowStream, xf
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import conv1_module, decimals, fmt7, fmt9, heading, padded_input, pool1_module, square
from xlconv.sheets.alexnet.layout import CHANNEL_NAMES, MAPS_PER_BAND, SHEET_CONV, SHEET_FILTERS, Layout
from xlconv.spec import channels_text
from xlconv.torchnet import Run

MAP_COL_WIDTH = 5.0  # characters: "-12.34" fits at font size 8
CHANNEL_COLOURS = ("#FF0000", "#00A000", "#0000FF")
RowCells = Callable[[list[int], int, str], list[str]]


def _map_fmt(b: Book, values: np.ndarray) -> Format:
    return b.fmt(num_format=decimals(values), font_size=8, align="center", valign="vcenter",
                 bg_color=style.COLOURS["output"])


class ConvSheet:
    """The padded input and, per selected channel, the conv1, ReLU and max-pool maps as live formulas."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.L = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_CONV)

    def build(self) -> None:
        b, ws, L, data = self.book, self.ws, self.L, self.data
        geo = data.geometry
        K, S, P, size, padded_size = geo.kernel, geo.stride, geo.padding, geo.size, geo.padded
        CONV, POOLED, POOL_K, POOL_S = geo.conv, geo.pooled, geo.pool_kernel, geo.pool_stride
        n_in = geo.in_channels
        chans = data.channels
        n = len(chans)
        last_col = max(L.in_left[-1] + padded_size - 1, L.maps_area("conv").right)
        ws.set_column(0, 0, 2)
        ws.set_column(1, last_col, MAP_COL_WIDTH)
        ws.set_zoom(40)
        d = Deferred(ws)
        d.write_string(0, 1, heading(data, f"conv1 = model.features[0], then ReLU (features[1]) and MaxPool2d "
                                           f"(features[2]), for {n} of {geo.filters} channels "
                                           f"({channels_text(chans)})"), b.fmt(**style.TITLE))
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED: random weights; the maps are real convolutions of the photo, but with "
                                 "random filters.", b.fmt(**style.WARN))
        unrounded = ref.lecture_out_size(size, K, S, P)
        pool_unrounded = (CONV - POOL_K) / POOL_S + 1
        note = (f"{conv1_module(geo)}. The input below is the pre-processed photo (see Preprocess) with conv1's "
                f"padding already applied: a {P}-pixel ring of zeros (grey), {n_in} x {square(padded_size)}. Every "
                f"map cell is a live formula: SUMPRODUCT of an {square(K)} window of each input channel with that "
                f"channel of the filter (on the Filters sheet), plus the bias; the window moves {S} cells (the "
                f"stride) per output cell, so output (y, x) reads rows {S}y..{S}y+{K - 1} and columns "
                f"{S}x..{S}x+{K - 1} of the padded input (0-based). ({size} + 2x{P} - {K})/{S} + 1 = "
                f"{unrounded:g}{', rounded down' if unrounded != CONV else ''}: {square(CONV)}. ReLU: MAX(0, x). "
                f"Max pooling: MAX of a {square(POOL_K)} window, stride {POOL_S}: ({CONV} - {POOL_K})/{POOL_S} + 1 = "
                f"{pool_unrounded:g}{f', rounded down: {POOLED}' if pool_unrounded != POOLED else ''}. Maps are in "
                "image orientation (row = y, column = x); colours are per-map heatmaps (blue negative, red "
                "positive). Zoom in to read the numbers. The Trace sheet takes one cell apart.")
        d.merge_range(2, 1, 2, 60, note, b.fmt(**style.NOTE))
        d.set_row(2, 15 * 6)
        d.write_string(L.in_label, 1, f"Input: the normalised photo, channels {', '.join(CHANNEL_NAMES)}, padded by "
                                      f"{P} (grey ring of zeros): {n_in} x {square(padded_size)} typed numbers",
                       b.fmt(bold=True, font_size=12))
        d.flush()
        stream = RowStream(ws, last_col + 2)
        col = stream.col_names.__getitem__  # a C-level lookup: a million calls
        lab = xf(b.fmt(font_size=10, bold=True))
        big = xf(b.fmt(font_size=12, bold=True, font_color=style.HEADING_BLUE))
        grid_h = style.row_points(MAP_COL_WIDTH)  # square cells

        # 1. the padded input.
        r = L.in_label + 1
        stream.row(r, [stream.text(f"{col(L.in_left[c])}{r + 1}", lab,
                                   f"{CHANNEL_NAMES[c]}: channel {c} of the input tensor, padded")
                       for c in range(n_in)], 1, last_col)
        padded = padded_input(data)
        # No borders on the big grids: zoomed out, the heatmap colours draw the picture.
        in_s = xf(b.fmt(num_format="0.00", font_size=8, align="center", valign="vcenter",
                        bg_color=style.COLOURS["input"]))
        pad_s = xf(b.fmt(num_format="0", font_size=8, align="center", valign="vcenter",
                         bg_color=style.COLOURS["padding"], font_color="#404040"))
        for i in range(padded_size):
            rs = str(L.in_top + i + 1)
            cells = []
            ring_row = i < P or i >= P + size
            for c in range(n_in):
                left = L.in_left[c]
                if ring_row:
                    cells += [f'<c r="{col(left + j)}{rs}" s="{pad_s}"><v>0</v></c>' for j in range(padded_size)]
                    continue
                vals = fmt9(padded[c, i, P:P + size])
                cells += [f'<c r="{col(left + j)}{rs}" s="{pad_s}"><v>0</v></c>' for j in range(P)]
                cells += [f'<c r="{col(left + P + j)}{rs}" s="{in_s}"><v>{v}</v></c>' for j, v in enumerate(vals)]
                cells += [f'<c r="{col(left + j)}{rs}" s="{pad_s}"><v>0</v></c>' for j in range(P + size, padded_size)]
            stream.row(L.in_top + i, cells, 1, last_col, grid_h)
        for c in range(n_in):
            g = L.input_grid(c)
            inner = g.window(P, P, size, size)
            mean, std = data.photo.mean[c], data.photo.std[c]
            lo, hi = (0 - mean) / std, (1 - mean) / std
            ws.conditional_format(inner.top, inner.left, inner.bottom, inner.right, dict(
                type="2_color_scale", min_type="num", min_value=lo, min_color="#000000",
                max_type="num", max_value=hi, max_color=CHANNEL_COLOURS[c]))
            ws.conditional_format(inner.top, inner.left, inner.bottom, inner.right, dict(
                type="cell", criteria="<", value=lo + 0.7 * (hi - lo), format=b.fmt(font_color="#FFFFFF")))
        b.record("conv1_input", "input", SHEET_CONV, [L.input_grid(c) for c in range(n_in)],
                 label=f"the pre-processed photo padded by conv1's padding ({P}, {P}): {n_in} x "
                       f"{square(padded_size)}, ring included")

        # 2. conv1 maps: per map, the formula with holes for its three windows, cut into pieces once.
        sheet_w = quote_sheet(SHEET_FILTERS) + "!"
        holes = [fx.hole(c) for c in range(n_in)]
        pieces = []
        for k in chans:
            wr = [sheet_w + L.filter_grid(k, c).ref(absolute=True) for c in range(n_in)]
            bias = sheet_w + L.bias_cell(k).cell(0, 0, absolute=True)
            pieces.append(fx.pieces(fx.conv(holes, wr, bias), n_in))
        conv_vals = data.conv[list(chans)]
        conv_s = xf(_map_fmt(b, conv_vals))
        longest = 0

        def conv_row(pos_list: list[int], y: int, rs: str) -> list[str]:
            nonlocal longest
            r0 = L.in_top + S * y + 1
            r1 = r0 + K - 1
            wins = [[f"{col(L.in_left[c] + S * x)}{r0}:{col(L.in_left[c] + S * x + K - 1)}{r1}"
                     for x in range(CONV)] for c in range(n_in)]
            w0, w1, w2 = wins
            cells = []
            f = ""
            for pos in pos_list:
                p0, p1, p2, p3 = pieces[pos]
                vals = fmt7(conv_vals[pos, y])
                left = L.map_grid("conv", pos).left
                for x in range(CONV):
                    f = p0 + w0[x] + p1 + w1[x] + p2 + w2[x] + p3
                    cells.append(f'<c r="{col(left + x)}{rs}" s="{conv_s}"><f>{f}</f><v>{vals[x]}</v></c>')
                longest = max(longest, len(f))
            return cells

        self._section(stream, "conv", f"conv1 = model.features[0](x): {n} maps of {square(CONV)}, each cell = "
                                      f"SUMPRODUCT(R window, R filter) + SUMPRODUCT(G ...) + SUMPRODUCT(B ...) + bias",
                      "channel {k}: conv1", conv_row, big, lab, grid_h, last_col)
        if longest + 1 > MAX_FORMULA_CHARS:  # pragma: no cover - about 150 characters
            raise RuntimeError(f"conv1 formulas of {longest} characters")
        self._heat("conv", style.DIVERGING_MINMAX)
        conv_rec = [L.map_grid("conv", p) for p in range(n)]
        b.record("conv1", "output", SHEET_CONV, conv_rec, op="conv", input="conv1_input",
                 weight=[f"conv1_w{k}" for k in chans], bias="conv1_bias", stride=[S, S],
                 padding=[0, 0], dilation=[1, 1], channels=list(chans),
                 label=f"conv1 = model.features[0]: padding 0 over the input padded by {P}, the same as "
                       f"padding=({P}, {P}) on the {size} x {size} photo")

        # 3. ReLU maps.
        relu_vals = data.relu[list(chans)]
        relu_s = xf(_map_fmt(b, relu_vals))
        relu0, relu1 = fx.pieces(fx.relu(fx.hole(0)), 1)

        def relu_row(pos_list: list[int], y: int, rs: str) -> list[str]:
            cells = []
            for pos in pos_list:
                src = L.map_grid("conv", pos)
                left = L.map_grid("relu", pos).left
                sr = src.top + y + 1
                vals = fmt7(relu_vals[pos, y])
                cells += [f'<c r="{col(left + x)}{rs}" s="{relu_s}"><f>{relu0}{col(src.left + x)}{sr}{relu1}</f>'
                          f'<v>{vals[x]}</v></c>' for x in range(CONV)]
            return cells

        self._section(stream, "relu", "ReLU = model.features[1]: MAX(0, conv1 cell) for every cell",
                      "channel {k}: ReLU", relu_row, big, lab, grid_h, last_col)
        self._heat("relu", style.POSITIVE_MINMAX)
        b.record("relu1", "output", SHEET_CONV, [L.map_grid("relu", p) for p in range(n)], op="relu",
                 input="conv1", label="model.features[1] = ReLU")

        # 4. max pooling.
        pool_vals = data.pool[list(chans)]
        pool_s = xf(_map_fmt(b, pool_vals))
        pool0, pool1 = fx.pieces(fx.pool("max", [fx.hole(0)]), 1)

        def pool_row(pos_list: list[int], y: int, rs: str) -> list[str]:
            cells = []
            for pos in pos_list:
                src = L.map_grid("relu", pos)
                left = L.map_grid("pool", pos).left
                r0 = src.top + POOL_S * y + 1
                r1 = r0 + POOL_K - 1
                vals = fmt7(pool_vals[pos, y])
                cells += [f'<c r="{col(left + x)}{rs}" s="{pool_s}"><f>{pool0}{col(src.left + POOL_S * x)}{r0}:'
                          f'{col(src.left + POOL_S * x + POOL_K - 1)}{r1}{pool1}</f><v>{vals[x]}</v></c>'
                          for x in range(POOLED)]
            return cells

        self._section(stream, "pool", f"max pool = model.features[2] = {pool1_module(geo)}: MAX of a "
                                      f"{square(POOL_K)} window of the ReLU map, moving {POOL_S} cells per output "
                                      f"cell: {square(POOLED)}",
                      "channel {k}: max pool", pool_row, big, lab, grid_h, last_col)
        self._heat("pool", style.POSITIVE_MINMAX)
        b.record("pool1", "output", SHEET_CONV, [L.map_grid("pool", p) for p in range(n)], op="max_pool",
                 input="relu1", kernel_size=[POOL_K, POOL_K], stride=[POOL_S, POOL_S], padding=[0, 0],
                 dilation=[1, 1], ceil_mode=False, count_include_pad=True,
                 label=f"model.features[2] = {pool1_module(geo)}")
        style.page_setup(ws)

    def _section(self, stream: RowStream, key: str, title: str, label: str, row_cells: RowCells, big: int,
                 lab: int, grid_h: float, last_col: int) -> None:
        L, col, chans = self.L, stream.col_names.__getitem__, self.data.channels
        title_row, first, stride = L.sections[key]
        stream.row(title_row, [stream.text(f"B{title_row + 1}", big, title)], 1, 1)
        size = L.map_size(key)
        for band in range(L.bands):
            positions = list(range(band * MAPS_PER_BAND, min(len(chans), (band + 1) * MAPS_PER_BAND)))
            top = first + band * stride
            stream.row(top, [stream.text(f"{col(L.map_grid(key, p).left)}{top + 1}", lab,
                                         label.format(k=chans[p])) for p in positions], 1, last_col)
            for y in range(size):
                r = top + 1 + y
                stream.row(r, row_cells(positions, y, str(r + 1)), 1, last_col, grid_h)

    def _heat(self, key: str, rule: dict[str, object]) -> None:
        for p in range(len(self.data.channels)):
            g = self.L.map_grid(key, p)
            self.ws.conditional_format(g.top, g.left, g.bottom, g.right, rule)


__all__ = ["ConvSheet", "MAP_COL_WIDTH"]
