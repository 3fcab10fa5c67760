"""The conv1 sheet: the padded input as live formulas of the Preprocess sheet's pixels, mean and std, and per
selected channel the conv1, ReLU and max-pool maps as live formulas.

About 750,000 cells: the rows are streamed by :class:`xlconv.rowstream.RowStream`. Each map's formula is cut
once into fixed pieces by the formula builders (``formulas.pieces``), and the hot loops only put cell
references between them.

The sheet is a poster: square cells of 28 pixels, the input channels stacked, MAPS_PER_BAND maps a band, and
text in large type, so that at the opening zoom (whole 55 x 55 maps on a laptop screen) and printed at about
10% (whole grids and bands on a page) the labels can still be read.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from xlsxwriter.format import Format

from xlconv import formulas as fx
from xlconv import progress
from xlconv import reference as ref
from xlconv.book import Book
from xlconv.cells import MAX_FORMULA_CHARS, a1, quote_sheet
from xlconv.rowstream import Deferred, RowStream, xf
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import (conv1_module, decimals, fmt7, heading, normalized_input, note,
                                          pool1_module, print_plan, row_height, scaled_page_setup, square)
from xlconv.sheets.alexnet.layout import (CHANNEL_NAMES, GRID_PX, GRID_WIDTH, LABEL_POINTS, MAPS_PER_BAND, MIRRORED,
                                          SHEET_CONTENTS, SHEET_CONV, SHEET_FILTERS, SHEET_PRE, SHEET_TRACE, Layout)
from xlconv.spec import channels_text
from xlconv.torchnet import Run

MAP_COL_WIDTH = GRID_WIDTH
CHANNEL_COLOURS = ("#FF0000", "#00A000", "#0000FF")
RowCells = Callable[[list[int], int, str], list[str]]
# Type sizes of this sheet (points): about three times the other sheets', as its cells are seen from afar.
TITLE_PT, WARN_PT, NOTE_PT, LINK_PT, SECTION_PT, LABEL_PT = 40, 32, 28, 26, 54, 48
NOTE_ROW_PT = 150.0
LINKS_ROW_PT = 40.0


def _map_fmt(b: Book, values: np.ndarray) -> Format:
    return b.fmt(num_format=decimals(values), font_size=7, align="center", valign="vcenter",
                 bg_color=style.COLOURS["output"])


def trace_look(b: Book) -> Format:
    """The trace's highlight: the first panel colour, framed, with a bold dark number (over a heat map too)."""
    return b.fmt(bg_color=style.PANEL_COLOURS[0], border=1, border_color=style.PANEL_BORDER[0], bold=True,
                 font_color="#000000")


class ConvSheet:
    """The padded input (live normalisation of Preprocess's pixels) and the conv1, ReLU and max-pool maps."""

    def __init__(self, book: Book, data: Run, layout: Layout, bar: progress.Bar | None = None):
        self.book, self.data, self.L = book, data, layout
        self.bar = bar  # advanced by one step per channel of each section
        self.ws = book.wb.add_worksheet(SHEET_CONV)
        self.row_points: dict[int, float] = {}

    def build(self) -> None:
        b, ws, L, data = self.book, self.ws, self.L, self.data
        geo = data.geometry
        K, S, P, size, padded_size = geo.kernel, geo.stride, geo.padding, geo.size, geo.padded
        CONV, POOLED, POOL_K, POOL_S = geo.conv, geo.pooled, geo.pool_kernel, geo.pool_stride
        n_in = geo.in_channels
        chans = data.channels
        n = len(chans)
        last_col = L.conv_last_col
        ws.set_column(0, 0, 2)
        ws.set_column(1, last_col, MAP_COL_WIDTH)
        self._header()
        grid_h = style.row_points(MAP_COL_WIDTH)  # square cells
        # The trace's highlights go first, so that they win over the heat maps (stop_if_true).
        self._trace_highlights()
        stream = RowStream(ws, last_col + 2)
        col = stream.col_names.__getitem__  # a C-level lookup: a million calls
        lab = xf(b.fmt(font_size=LABEL_PT, bold=True, valign="vcenter"))
        big = xf(b.fmt(font_size=SECTION_PT, bold=True, font_color=style.HEADING_BLUE, valign="vcenter"))

        # 1. the padded input: a ring of typed zeros around live (pixel/255 - mean)/std of Preprocess's cells.
        normalized = normalized_input(data)
        # No borders on the big grids: zoomed out, the heatmap colours draw the picture.
        in_s = xf(b.fmt(num_format="0.00", font_size=7, align="center", valign="vcenter",
                        bg_color=style.COLOURS["input"]))
        pad_s = xf(b.fmt(num_format="0", font_size=7, align="center", valign="vcenter",
                         bg_color=style.COLOURS["padding"], font_color="#404040"))
        pre = quote_sheet(SHEET_PRE) + "!"
        raw_cols = [pre + stream.col(L.raw_grid(0).left + j) for j in range(size)]
        longest = 0
        for c in range(n_in):
            g = L.input_grid(c)
            self._label_row(stream, g.top - 1, g.left, lab,
                            f"Input {CHANNEL_NAMES[c]}: channel {c} of the photo, (pixel/255 - mean)/std of the "
                            f"Preprocess sheet's pixels, padded by {P} (grey ring of zeros): {square(padded_size)}")
            m, s = (pre + L.pre_param(w, c).cell(0, 0, absolute=True) for w in ("mean", "std"))
            p0, p1 = fx.pieces(fx.normalize(fx.hole(0), m, s), 1)
            raw_top = L.raw_grid(c).top
            exact = normalized[c]
            for i in range(padded_size):
                rs = str(g.top + i + 1)
                if i < P or i >= P + size:
                    cells = [f'<c r="{col(g.left + j)}{rs}" s="{pad_s}"><v>0</v></c>' for j in range(padded_size)]
                else:
                    raw_r = str(raw_top + i - P + 1)
                    vals = [repr(v) for v in exact[i - P].tolist()]
                    cells = [f'<c r="{col(g.left + j)}{rs}" s="{pad_s}"><v>0</v></c>' for j in range(P)]
                    cells += [f'<c r="{col(g.left + P + j)}{rs}" s="{in_s}"><f>{p0}{raw_cols[j]}{raw_r}{p1}</f>'
                              f'<v>{v}</v></c>' for j, v in enumerate(vals)]
                    cells += [f'<c r="{col(g.left + j)}{rs}" s="{pad_s}"><v>0</v></c>'
                              for j in range(P + size, padded_size)]
                    longest = max(longest, len(p0) + len(raw_cols[-1]) + len(raw_r) + len(p1))
                stream.row(g.top + i, cells, 1, last_col, grid_h)
            inner = g.window(P, P, size, size)
            mean, std = data.photo.mean[c], data.photo.std[c]
            lo, hi = (0 - mean) / std, (1 - mean) / std
            ws.conditional_format(inner.top, inner.left, inner.bottom, inner.right, dict(
                type="2_color_scale", min_type="num", min_value=lo, min_color="#000000",
                max_type="num", max_value=hi, max_color=CHANNEL_COLOURS[c]))
            ws.conditional_format(inner.top, inner.left, inner.bottom, inner.right, dict(
                type="cell", criteria="<", value=lo + 0.7 * (hi - lo), format=b.fmt(font_color="#FFFFFF")))
        inner_grids = [L.input_grid(c).window(P, P, size, size) for c in range(n_in)]
        b.record("conv1_normalized", "normalize", SHEET_CONV, inner_grids, raw="pre_raw", mean="pre_mean",
                 std="pre_std", label="ToTensor() then Normalize(): (pixel/255 - mean)/std of Preprocess's cells, "
                                      "live: the inside of conv1's padded input")
        b.record("conv1_input", "input", SHEET_CONV, [L.input_grid(c) for c in range(n_in)],
                 label=f"conv1's input padded by conv1's padding ({P}, {P}): {n_in} x {square(padded_size)}, a ring "
                       "of typed zeros around conv1_normalized")

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
        in_cols = [col(L.in_left + j) for j in range(padded_size)]

        def conv_row(pos_list: list[int], y: int, rs: str) -> list[str]:
            nonlocal longest
            wins = []
            for c in range(n_in):
                r0 = L.input_grid(c).top + S * y + 1
                r1 = r0 + K - 1
                wins.append([f"{in_cols[S * x]}{r0}:{in_cols[S * x + K - 1]}{r1}" for x in range(CONV)])
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
        self._notes()  # after the rows are streamed (see common.note)
        self._screen_and_paper(grid_h)

    # -- the header ------------------------------------------------------------------------------------------

    def _header(self) -> None:
        b, ws, L, data = self.book, self.ws, self.L, self.data
        geo = data.geometry
        K, S, P, size, padded_size = geo.kernel, geo.stride, geo.padding, geo.size, geo.padded
        CONV, POOLED, POOL_K, POOL_S = geo.conv, geo.pooled, geo.pool_kernel, geo.pool_stride
        n_in = geo.in_channels
        chans = data.channels
        last_col = L.conv_last_col
        d = Deferred(ws)
        d.write_string(0, 1, heading(data, f"conv1 = model.features[0], then ReLU (features[1]) and MaxPool2d "
                                           f"(features[2]), for {len(chans)} of {geo.filters} channels "
                                           f"({channels_text(chans)})"),
                       b.fmt(bold=True, font_size=TITLE_PT, valign="vcenter"))
        self._set_row(d, 0, TITLE_PT * 1.4)
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED: random weights; the maps are real convolutions of the photo, but with "
                                 "random filters.", b.fmt(bold=True, font_size=WARN_PT, font_color="#C00000",
                                                          valign="vcenter"))
            self._set_row(d, 1, WARN_PT * 1.4)
        unrounded = ref.lecture_out_size(size, K, S, P)
        pool_unrounded = (CONV - POOL_K) / POOL_S + 1
        text = (f"{conv1_module(geo)}. The input below is the photo of the {SHEET_PRE} sheet, ToTensor() and "
                f"Normalize() as live formulas, (pixel/255 - mean)/std, with conv1's padding already applied: a "
                f"{P}-pixel ring of zeros (grey), {n_in} x {square(padded_size)}. Every map cell is a live formula: "
                f"SUMPRODUCT of an {square(K)} window of each input channel with that channel of the filter (on "
                f"the {SHEET_FILTERS} sheet), plus the bias; the window moves {S} cells (the stride) per output "
                f"cell, so output (y, x) reads rows {S}y..{S}y+{K - 1} and columns {S}x..{S}x+{K - 1} of the "
                f"padded input (0-based). ({size} + 2x{P} - {K})/{S} + 1 = {unrounded:g}"
                f"{', rounded down' if unrounded != CONV else ''}: {square(CONV)}. ReLU: MAX(0, x). Max pooling: MAX "
                f"of a {square(POOL_K)} window, stride {POOL_S}: ({CONV} - {POOL_K})/{POOL_S} + 1 = "
                f"{pool_unrounded:g}{f', rounded down: {POOLED}' if pool_unrounded != POOLED else ''}. Maps are in "
                "image orientation (row = y, column = x); colours are per-map heatmaps (blue negative, red "
                "positive). Zoom in to read the numbers. Lit in orange: the cell the Trace sheet takes apart, its "
                "window on the input and the max-pool cells it feeds.")
        d.merge_range(2, 1, 2, last_col, text, b.fmt(text_wrap=True, valign="top", font_size=NOTE_PT))
        self._set_row(d, 2, NOTE_ROW_PT)
        # Links to the blocks of this long sheet, and to the neighbouring sheets.
        linkf = b.fmt(font_color="#0563C1", underline=1, font_size=LINK_PT, bold=True, valign="vcenter")
        targets = [(f"input {CHANNEL_NAMES[c]}", SHEET_CONV, a1(L.in_label[c], 1)) for c in range(n_in)]
        targets += [(text, SHEET_CONV, a1(L.sections[key][0], 1)) for text, key in
                    (("conv1 maps", "conv"), ("ReLU maps", "relu"), ("max-pool maps", "pool"))]
        targets += [(SHEET_TRACE, SHEET_TRACE, "A1"), (SHEET_CONTENTS, SHEET_CONTENTS, "A1")]
        r = L.conv_links
        for n, (text, sheet, cell) in enumerate(targets):
            c0 = 1 + 12 * n
            d.merge_range(r, c0, r, c0 + 10, "", linkf)
            d.write(r, c0, f"internal:'{sheet}'!{cell}", linkf, text, f"go to {text}")
        self._set_row(d, r, LINKS_ROW_PT)
        # The trace's picks, copied here: the highlights read them (a rule may only read its own sheet).
        r = L.conv_mirror
        label = b.fmt(font_size=LINK_PT, bold=True, align="right", valign="vcenter")
        value = b.fmt(font_size=LINK_PT, bold=True, align="center", valign="vcenter", bg_color=style.PANEL_COLOURS[0],
                      border=1, border_color=style.PANEL_BORDER[0])
        texts = {"map": f"{SHEET_TRACE}: map", "row": "row y", "column": "column x", "first_row": "max-pool rows",
                 "last_row": "to", "first_col": "columns", "last_col": "to"}
        picks = self._trace_values()
        for key in MIRRORED:
            row, c = L.mirror[key]
            d.merge_range(row, c - 9, row, c - 1, texts[key], label)
            d.merge_range(row, c, row, c + 2, "", value)
            src = quote_sheet(SHEET_TRACE) + "!" + a1(*self._trace_cell(key), absolute=True)
            d.write_formula(row, c, fx.copy(src), value, picks[key])
        d.write_string(r, L.mirror["last_col"][1] + 4, "(lit in orange)", b.fmt(font_size=LINK_PT, italic=True,
                                                                             valign="vcenter"))
        self._set_row(d, r, LINKS_ROW_PT)
        self._set_row(d, r + 1, 6.0)  # a thin gap before the input
        d.flush()

    def _trace_cell(self, key: str) -> tuple[int, int]:
        L = self.L
        if key == "map":
            return L.trace_pos
        if key in ("row", "column"):
            return L.trace_pick[key]
        return L.trace_feeds[key]

    def _trace_values(self) -> dict[str, int]:
        """What the trace's cells hold as built (its default pick): the cached values of the copies."""
        geo = self.data.geometry
        y = x = geo.conv // 2 + 1
        first_r = max(1, -((geo.pool_kernel - y) // geo.pool_stride) + 1)
        last_r = min(geo.pooled, (y - 1) // geo.pool_stride + 1)
        return {"map": 1, "row": y, "column": x, "first_row": first_r, "last_row": last_r, "first_col": first_r,
                "last_col": last_r}

    def _trace_highlights(self) -> None:
        """Light the trace's window on the input, its conv1 and ReLU cell and the max-pool cells it feeds."""
        b, ws, L, data = self.book, self.ws, self.L, self.data
        geo = data.geometry
        look = trace_look(b)
        m = {key: a1(*L.mirror[key], absolute=True) for key in MIRRORED}
        for c in range(geo.in_channels):
            g = L.input_grid(c)
            rule = fx.in_window(g.top + 1, g.left + 1, m["row"], m["column"], (geo.kernel, geo.kernel),
                                (geo.stride, geo.stride), (1, 1))
            ws.conditional_format(g.top, g.left, g.bottom, g.right, dict(type="formula", criteria=rule, format=look,
                                                                         stop_if_true=True))
        for p in range(len(data.channels)):
            this_map = f"{m['map']}={p + 1}"
            for key in ("conv", "relu"):
                g = L.map_grid(key, p)
                rule = fx.is_cell(g.top + 1, g.left + 1, m["row"], m["column"], this_map)
                ws.conditional_format(g.top, g.left, g.bottom, g.right, dict(type="formula", criteria=rule,
                                                                             format=look, stop_if_true=True))
            g = L.map_grid("pool", p)
            rule = fx.in_span(g.top + 1, g.left + 1, m["first_row"], m["last_row"], m["first_col"], m["last_col"],
                              this_map)
            ws.conditional_format(g.top, g.left, g.bottom, g.right, dict(type="formula", criteria=rule, format=look,
                                                                         stop_if_true=True))

    def _notes(self) -> None:
        """Notes in the lecture's words on the first cell of each block."""
        ws, L, data = self.ws, self.L, self.data
        geo = data.geometry
        P, K, S = geo.padding, geo.kernel, geo.stride
        g = L.input_grid(0)
        if P:
            note(ws, g.top, g.left, f"Padding: conv1 has padding=({P}, {P}), so the {geo.size} x {geo.size} input "
                                    f"gets a ring of {P} zeros on every side: {geo.padded} x {geo.padded}. These "
                                    "zeros are typed, not computed.")
        note(ws, g.top + P, g.left + P,
             "Pixel values are standardised to [0, 1] and normalised: (pixel/255 - mean)/std, ToTensor() then "
             f"Normalize(). A live formula of the {SHEET_PRE} sheet's pixel, mean and std: change any of them and "
             "every map follows.")
        k0 = data.channels[0]
        note(ws, *self._first("conv"), f"conv1_out[0, {k0}, 0, 0]: filter {k0} times the {K} x {K} x "
                                       f"{geo.in_channels} window at the top-left of the padded input, summed, plus "
                                       f"the bias. \"Filter has depth\": one SUMPRODUCT per input channel. The "
                                       f"window moves {S} cells (the stride) per output cell.")
        note(ws, *self._first("relu"), "ReLU = model.features[1]: MAX(0, x) of the conv1 cell above. Negative "
                                       "responses become 0.")
        note(ws, *self._first("pool"), f"Max pooling, model.features[2]: the largest of a {geo.pool_kernel} x "
                                       f"{geo.pool_kernel} window of the ReLU map, moving {geo.pool_stride} cells: "
                                       f"{geo.conv} x {geo.conv} becomes {geo.pooled} x {geo.pooled}.")

    def _first(self, key: str) -> tuple[int, int]:
        g = self.L.map_grid(key, 0)
        return g.top, g.left

    def _set_row(self, d: Deferred, row: int, points: float) -> None:
        row_height(d, self.book, row, points)
        self.row_points[row] = points

    def _label_row(self, stream: RowStream, row: int, left: int, s: int, text: str) -> None:
        stream.row(row, [stream.text(f"{stream.col(left)}{row + 1}", s, text)], 1, left, LABEL_POINTS)
        self.row_points[row] = LABEL_POINTS

    def _section(self, stream: RowStream, key: str, title: str, label: str, row_cells: RowCells, big: int,
                 lab: int, grid_h: float, last_col: int) -> None:
        L, col, chans = self.L, stream.col_names.__getitem__, self.data.channels
        title_row, first, stride = L.sections[key]
        stream.row(title_row, [stream.text(f"B{title_row + 1}", big, title)], 1, 1, SECTION_PT * 1.5)
        self.row_points[title_row] = SECTION_PT * 1.5
        size = L.map_size(key)
        for band in range(L.bands):
            positions = list(range(band * MAPS_PER_BAND, min(len(chans), (band + 1) * MAPS_PER_BAND)))
            if self.bar is not None:
                self.bar.describe(f"alexnet: conv1 {key} maps, channels {chans[positions[0]]}-{chans[positions[-1]]}")
            top = first + band * stride
            stream.row(top, [stream.text(f"{col(L.map_grid(key, p).left)}{top + 1}", lab,
                                         label.format(k=chans[p])) for p in positions], 1, last_col, LABEL_POINTS)
            self.row_points[top] = LABEL_POINTS
            for y in range(size):
                r = top + 1 + y
                stream.row(r, row_cells(positions, y, str(r + 1)), 1, last_col, grid_h)
            if self.bar is not None:
                self.bar.update(len(positions))

    def _heat(self, key: str, rule: dict[str, object]) -> None:
        for p in range(len(self.data.channels)):
            g = self.L.map_grid(key, p)
            self.ws.conditional_format(g.top, g.left, g.bottom, g.right, rule)

    # -- screen and paper ------------------------------------------------------------------------------------

    def band_starts(self) -> list[int]:
        """The first row of every block that must stay whole on paper: each input grid, each band of maps (a
        section's title goes with its first band)."""
        L = self.L
        starts = list(L.in_label)
        for key in ("conv", "relu", "pool"):
            title, first, stride = L.sections[key]
            starts += [title] + [first + band * stride for band in range(1, L.bands)]
        return starts

    def _screen_and_paper(self, grid_h: float) -> None:
        L, ws, geo = self.L, self.ws, self.data.geometry
        rows = [self.row_points.get(r, grid_h if r >= L.in_label[0] else 15.0) for r in range(L.conv_rows)]
        for key in ("conv", "relu", "pool"):  # the gap rows between bands are plain rows
            _, first, stride = L.sections[key]
            for band in range(L.bands):
                gap = first + band * stride + 1 + L.map_size(key)
                if gap < len(rows) and gap not in self.row_points:
                    rows[gap] = 15.0
        for c in range(geo.in_channels):
            gap = L.in_top[c] + geo.padded
            if gap < len(rows) and gap not in self.row_points:
                rows[gap] = 15.0
        # Screen: a whole band of maps (its label and 55 rows) in the window; headings stay when scrolling.
        band_px = (LABEL_POINTS + geo.conv * grid_h) * 4 / 3
        width_px = style.column_px(2) + (L.conv_last_col) * GRID_PX
        ws.set_zoom(style.fit_zoom((min(width_px, MAPS_PER_BAND * L.map_stride * GRID_PX), band_px), least=10))
        ws.freeze_panes(1, 0)
        width_pt = width_px * 0.75
        plan = print_plan(rows, self.band_starts(), width_pt, landscape=True)
        scaled_page_setup(self.ws, True, plan, repeat_rows=None)
        ws.print_area(0, 0, L.conv_rows - 1, L.conv_last_col)


__all__ = ["ConvSheet", "MAP_COL_WIDTH", "trace_look"]
