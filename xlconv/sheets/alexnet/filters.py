"""The Filters sheet: every conv1 filter as a picture (coloured cells) and as numbers with its bias."""

from __future__ import annotations

import math

import numpy as np

from xlconv.book import Book
from xlconv.cells import a1, parse_a1
from xlconv.rowstream import Deferred, RowStream, xf
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import fmt9, heading, note, print_plan, scaled_page_setup, weights_line
from xlconv.sheets.alexnet.layout import CHANNEL_NAMES, FILTER_PX, FILTER_WIDTH, SHEET_FILTERS, Layout
from xlconv.torchnet import Run

MAX_FILL_FORMATS = 4096
NOTE_ROW_PT = 62.0
TITLE_ROW_PT = 22.0
PIC_LABEL_PT = 12  # "filter 12" over a picture: readable at the opening zoom and in print (about 60%)
PIC_LABEL_ROW_PT = 18.0


def _quantise(rgb: np.ndarray, bits: int = 5) -> np.ndarray:
    """Colours in [0, 1] rounded to 2**bits levels a channel, as 0-255 integers."""
    levels = (1 << bits) - 1
    return np.round(np.round(np.clip(rgb, 0, 1) * levels) / levels * 255).astype(int)


def filter_pictures(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(filters, k, k, 3) colours in [0, 1]: the lecture's w*0.5+0.5 clipped, and each filter's own min-max."""
    rgb = weight.transpose(0, 2, 3, 1).astype(np.float64)
    lecture = np.clip(rgb * 0.5 + 0.5, 0, 1)
    lo = rgb.min(axis=(1, 2, 3), keepdims=True)
    hi = rgb.max(axis=(1, 2, 3), keepdims=True)
    minmax = (rgb - lo) / np.where(hi > lo, hi - lo, 1.0)
    return lecture, minmax


def _col_of(cell_xml: str) -> int:
    """Column number of a <c r="..."> element (to keep streamed cells in column order)."""
    ref = cell_xml.split('r="', 1)[1].split('"', 1)[0]
    return parse_a1(ref)[1]


class FiltersSheet:
    """All conv1 filters as pictures (coloured cells) and as numbers with their biases."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.L = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_FILTERS)
        self.fills: dict[tuple[int, int, int], int] = {}

    def _fill(self, rgb: np.ndarray) -> int:
        key = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
        s = self.fills.get(key)
        if s is None:
            s = xf(self.book.fmt(bg_color="#%02X%02X%02X" % key, pattern=1))
            self.fills[key] = s
        return s

    def _styles(self, q: np.ndarray) -> list[list[list[int]]]:
        """The fill style of every picture cell, (filters, k, k) from (filters, k, k, 3) colours, each distinct
        colour looked up once."""
        packed = (q[..., 0] << 16) | (q[..., 1] << 8) | q[..., 2]
        colours, where = np.unique(packed, return_inverse=True)
        styles = np.array([self._fill(np.array([c >> 16, (c >> 8) & 255, c & 255])) for c in colours.tolist()])
        return styles[where.reshape(packed.shape)].tolist()

    def build(self) -> None:
        b, ws, L, data = self.book, self.ws, self.L, self.data
        K = data.geometry.kernel
        n_in = data.geometry.in_channels
        n = len(data.weight)
        last_col = L.f_last_col
        ws.set_column(0, 0, 2)
        ws.set_column(1, last_col, FILTER_WIDTH)
        lecture, minmax = filter_pictures(data.weight)
        # One cell format per distinct colour: 5 bits a channel, or 4 when that gives too many formats.
        for bits in (5, 4):
            q_lecture, q_minmax = _quantise(lecture, bits), _quantise(minmax, bits)
            colours = np.unique(np.concatenate([q_lecture.reshape(-1, 3), q_minmax.reshape(-1, 3)]), axis=0)
            if len(colours) <= MAX_FILL_FORMATS:
                break
        self.bits = bits
        d = Deferred(ws)
        d.write_string(0, 1, heading(data, f"the {n} conv1 filters, model.features[0].weight: {n} x {n_in} x {K} x "
                                           f"{K}, and their biases"), b.fmt(**style.TITLE))
        d.set_row(0, 22)
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED: random weights, so these pictures are noise, not learned edge and "
                                 "colour detectors.", b.fmt(**style.WARN))
        text = (f"\"Filter has depth\": the input image has {n_in} channels (R, G, B), so each filter has {n_in} "
                f"channels of {K} x {K} weights; drawing the three channels as the red, green and blue of one picture "
                "shows what colour pattern the filter responds to. First as the lecture draws them, w*0.5+0.5 "
                "clipped to [0, 1] (weights near 0 look grey); then each filter stretched by its own minimum and "
                "maximum, (w - min)/(max - min), which makes faint filters visible. The pictures are cell colours "
                f"drawn when the workbook was built (not live), rounded to {2 ** bits} levels a channel; the numbers "
                "further down are the weights every conv1 formula reads. " + weights_line(data))
        d.merge_range(2, 1, 2, last_col, text, b.fmt(**style.NOTE))
        d.set_row(2, NOTE_ROW_PT)
        d.write(3, 1, f"internal:'{SHEET_FILTERS}'!{a1(L.num_title, 1)}",
                b.fmt(font_color="#0563C1", underline=1, font_size=10), "go to the numbers",
                "the weights as numbers, one band per filter")
        d.flush()

        stream = RowStream(ws, last_col + 2)
        col = stream.col_names.__getitem__  # a C-level lookup: a million calls
        label_s = xf(b.fmt(font_size=PIC_LABEL_PT, bold=True, valign="bottom"))
        title_s = xf(b.fmt(bold=True, font_size=12, font_color=style.HEADING_BLUE, valign="vcenter"))
        pic_h = FILTER_PX * 0.75  # square cells
        # 1. the pictures: each mapping a block of pictures, pics_per_row a row.
        titles = ("As the lecture draws them: w*0.5+0.5, clipped to [0, 1]",
                  "Each filter by its own min-max: (w - min)/(max - min)")
        rows_of_pics = math.ceil(n / L.pics_per_row)
        s_lecture, s_minmax = self._styles(q_lecture), self._styles(q_minmax)
        for half, q in ((0, s_lecture), (1, s_minmax)):
            stream.row(L.pic_title[half], [stream.text(f"B{L.pic_title[half] + 1}", title_s, titles[half])], 1, 1,
                       TITLE_ROW_PT)
            for band in range(rows_of_pics):
                ks = range(band * L.pics_per_row, min(n, (band + 1) * L.pics_per_row))
                top = L.pic_top[half] + band * L.pic_band
                cells = [stream.text(f"{col(L.pic_cell(half, k)[1])}{top + 1}", label_s, f"filter {k}") for k in ks]
                stream.row(top, cells, 1, last_col, PIC_LABEL_ROW_PT)
                for i in range(K):
                    r = top + 1 + i
                    cells = []
                    for k in ks:
                        c0 = L.pic_cell(half, k)[1]
                        qi = q[k][i]
                        cells += [f'<c r="{col(c0 + j)}{r + 1}" s="{qi[j]}"/>' for j in range(K)]
                    stream.row(r, cells, 1, last_col, pic_h)
        # 2. the numbers: one band per filter, R G B grids, the bias, and the two pictures again.
        stream.row(L.num_title, [stream.text(f"B{L.num_title + 1}", title_s,
                                             f"The weights as numbers: model.features[0].weight[k, c] ({K} x {K} per "
                                             "channel) and model.features[0].bias[k]. Every conv1 formula reads "
                                             "these cells.")], 1, 1, TITLE_ROW_PT)
        wfmt = xf(style.cell(b, "kernel", "0.000", font_size=7))
        bfmt = xf(style.cell(b, "bias", "0.000", font_size=7, bold=True))
        lab = xf(b.fmt(font_size=PIC_LABEL_PT, bold=True, valign="bottom"))
        sub = xf(b.fmt(font_size=9, valign="bottom"))
        wtext = [fmt9(data.weight[k]) for k in range(n)]
        btext = fmt9(data.bias)
        for k in range(n):
            top = L.num_top + k * L.num_band
            cells = [stream.text(f"B{top + 1}", lab, f"filter {k}")]
            for c in range(n_in):
                cells.append(stream.text(f"{col(L.ch_left[c] + 4)}{top + 1}", sub,
                                         f"{CHANNEL_NAMES[c]}: weight[{k}, {c}]"))
            cells.append(stream.text(f"{col(L.bias_col)}{top + 1}", sub, f"bias[{k}]"))
            cells.append(stream.text(f"{col(L.num_pic_left[0])}{top + 1}", sub, "w*0.5+0.5"))
            cells.append(stream.text(f"{col(L.num_pic_left[1])}{top + 1}", sub, "min-max"))
            cells.sort(key=_col_of)
            stream.row(top, cells, 1, last_col, PIC_LABEL_ROW_PT)
            wt = wtext[k]
            for i in range(K):
                r = top + 1 + i
                rs = str(r + 1)
                cells = []
                for c in range(n_in):
                    base = c * K * K + i * K
                    left = L.ch_left[c]
                    cells += [f'<c r="{col(left + j)}{rs}" s="{wfmt}"><v>{wt[base + j]}</v></c>' for j in range(K)]
                if i == 0:
                    cells.append(stream.number(f"{col(L.bias_col)}{rs}", bfmt, btext[k]))
                for p, q in zip(L.num_pic_left, (s_lecture, s_minmax)):
                    qi = q[k][i]
                    cells += [f'<c r="{col(p + j)}{rs}" s="{qi[j]}"/>' for j in range(K)]
                stream.row(r, cells, 1, last_col, pic_h)
        for k in range(n):
            b.record(f"conv1_w{k}", "kernel", SHEET_FILTERS, [L.filter_grid(k, c) for c in range(n_in)],
                     label=f"model.features[0].weight[{k}]")
        b.record("conv1_bias", "bias", SHEET_FILTERS, [L.bias_cell(k) for k in data.channels],
                 label="model.features[0].bias of the channels on the conv1 sheet", channels=list(data.channels))
        first = L.filter_grid(0, 0)  # notes after the rows are streamed (see common.note)
        note(ws, first.top, first.left, "model.features[0].weight[0, 0, 0, 0]: \"those are the network parameters "
                                        "to be learned\". Every conv1 formula of filter 0 reads this grid; type "
                                        "another weight and its maps follow.")
        note(ws, L.bias_cell(0).top, L.bias_cell(0).left, "model.features[0].bias[0]: added once to every output "
                                                          "cell of filter 0, after the three SUMPRODUCTs.")
        self._screen_and_paper(rows_of_pics)

    def _screen_and_paper(self, rows_of_pics: int) -> None:
        ws, L = self.ws, self.L
        K = self.data.geometry.kernel
        n = len(self.data.weight)
        end = L.num_top + n * L.num_band
        rows = [15.0] * end
        rows[0], rows[2] = 22.0, NOTE_ROW_PT
        starts: list[int] = []
        for half in (0, 1):
            rows[L.pic_title[half]] = TITLE_ROW_PT
            for band in range(rows_of_pics):
                top = L.pic_top[half] + band * L.pic_band
                starts.append(L.pic_title[half] if band == 0 else top)
                rows[top] = PIC_LABEL_ROW_PT
                for i in range(K):
                    rows[top + 1 + i] = FILTER_PX * 0.75
        rows[L.num_title] = TITLE_ROW_PT
        starts.append(L.num_title)
        for k in range(n):
            top = L.num_top + k * L.num_band
            if k:
                starts.append(top)
            rows[top] = PIC_LABEL_ROW_PT
            for i in range(K):
                rows[top + 1 + i] = FILTER_PX * 0.75
        width_px = style.column_px(2) + L.f_last_col * FILTER_PX
        # Screen: the sheet's width, and the title, note and first row of pictures.
        ws.set_zoom(style.fit_zoom((width_px, sum(rows[:L.pic_top[0] + L.pic_band]) * 4 / 3)))
        ws.freeze_panes(1, 0)
        scaled_page_setup(ws, True, print_plan(rows, starts, width_px * 0.75, landscape=True))
        ws.print_area(0, 0, end - 1, L.f_last_col)


__all__ = ["FiltersSheet", "filter_pictures"]
