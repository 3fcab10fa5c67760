"""The Filters sheet: every conv1 filter as a picture (coloured cells) and as numbers with its bias."""

from __future__ import annotations

import math

import numpy as np

from xlconv.book import Book
from xlconv.cells import parse_a1
from xlconv.rowstream import Deferred, RowStream, xf
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import fmt9, heading, weights_line
from xlconv.sheets.alexnet.layout import CHANNEL_NAMES, MAPS_PER_BAND, SHEET_FILTERS, Layout
from xlconv.torchnet import Run

MAX_FILL_FORMATS = 4096


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

    def build(self) -> None:
        b, ws, L, data = self.book, self.ws, self.L, self.data
        K = data.geometry.kernel
        n_in = data.geometry.in_channels
        n = len(data.weight)
        last_col = max(L.num_pic_left[1] + K, 2 * L.pic_cols + 2)
        ws.set_column(0, 0, 2)
        ws.set_column(1, last_col, L.f_colw)
        ws.set_zoom(70)
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
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED: random weights, so these pictures are noise, not learned edge and "
                                 "colour detectors.", b.fmt(**style.WARN))
        note = (f"Each filter has {n_in} channels (R, G, B) of {K} x {K} weights; drawing the three channels as the "
                "red, green and blue of one picture shows what colour pattern the filter responds to. Left: the "
                "lecture's mapping w*0.5+0.5 clipped to [0, 1] (weights near 0 look grey). Right: each filter "
                "stretched by its own minimum and maximum, (w - min)/(max - min), which makes faint filters "
                "visible. The pictures are cell colours drawn when the workbook was built (not live), rounded to "
                f"{2 ** bits} levels a channel; the numbers below are the weights every conv1 formula reads. "
                + weights_line(data))
        d.merge_range(2, 1, 2, 2 * L.pic_cols, note, b.fmt(**style.NOTE))
        d.set_row(2, 15 * 4)
        d.write_string(4, 1, "as the lecture draws them: w*0.5+0.5, clipped to [0, 1]", b.fmt(bold=True))
        d.write_string(4, L.pic_cols + 3, "each filter by its own min-max: (w - min)/(max - min)", b.fmt(bold=True))
        d.flush()

        stream = RowStream(ws, last_col + 2)
        col = stream.col_names.__getitem__  # a C-level lookup: a million calls
        label_s = xf(b.fmt(font_size=8, bold=True))
        pic_h = style.row_points(L.f_colw)  # square cells
        # 1. the grid of pictures, eight a band, twice.
        for band in range(math.ceil(n / MAPS_PER_BAND)):
            top = L.pic_top + band * L.pic_band
            ks = range(band * MAPS_PER_BAND, min(n, (band + 1) * MAPS_PER_BAND))
            cells = []
            for half in (0, 1):
                for slot, k in enumerate(ks):
                    c0 = 1 + half * (L.pic_cols + 2) + slot * (K + 1)
                    cells.append(stream.text(f"{col(c0)}{top + 1}", label_s, f"filter {k}"))
            stream.row(top, cells, 1, last_col)
            for i in range(K):
                r = top + 1 + i
                cells = []
                for half, q in ((0, q_lecture), (1, q_minmax)):
                    for slot, k in enumerate(ks):
                        c0 = 1 + half * (L.pic_cols + 2) + slot * (K + 1)
                        for j in range(K):
                            cells.append(stream.blank(f"{col(c0 + j)}{r + 1}", self._fill(q[k, i, j])))
                stream.row(r, cells, 1, last_col, pic_h)
        # 2. the numbers: one band per filter, R G B grids, the bias, and the two pictures again.
        title_row = L.num_top - 2
        stream.row(title_row, [stream.text(f"B{title_row + 1}", xf(b.fmt(bold=True, font_size=12)),
                                           f"The weights as numbers: model.features[0].weight[k, c] ({K} x {K} per "
                                           "channel) and model.features[0].bias[k]. Every conv1 formula reads "
                                           "these cells.")], 1, 1)
        wfmt = xf(style.cell(b, "kernel", "0.000", font_size=7))
        bfmt = xf(style.cell(b, "bias", "0.000", font_size=7, bold=True))
        lab = xf(b.fmt(font_size=8, bold=True))
        sub = xf(b.fmt(font_size=8))
        wtext = [fmt9(data.weight[k]) for k in range(n)]
        btext = fmt9(data.bias)
        for k in range(n):
            top = L.num_top + k * L.num_band
            cells = [stream.text(f"B{top + 1}", lab, f"filter {k}")]
            for c in range(n_in):
                cells.append(stream.text(f"{col(L.ch_left[c] + 2)}{top + 1}", sub,
                                         f"{CHANNEL_NAMES[c]}: weight[{k}, {c}]"))
            cells.append(stream.text(f"{col(L.bias_col)}{top + 1}", sub, f"bias[{k}]"))
            cells.append(stream.text(f"{col(L.num_pic_left[0])}{top + 1}", sub, "w*0.5+0.5"))
            cells.append(stream.text(f"{col(L.num_pic_left[1])}{top + 1}", sub, "min-max"))
            cells.sort(key=_col_of)
            stream.row(top, cells, 1, last_col)
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
                for p, q in zip(L.num_pic_left, (q_lecture, q_minmax)):
                    cells += [stream.blank(f"{col(p + j)}{rs}", self._fill(q[k, i, j])) for j in range(K)]
                stream.row(r, cells, 1, last_col, pic_h)
        for k in range(n):
            b.record(f"conv1_w{k}", "kernel", SHEET_FILTERS, [L.filter_grid(k, c) for c in range(n_in)],
                     label=f"model.features[0].weight[{k}]")
        b.record("conv1_bias", "bias", SHEET_FILTERS, [L.bias_cell(k) for k in data.channels],
                 label="model.features[0].bias of the channels on the conv1 sheet", channels=list(data.channels))
        style.page_setup(ws)


__all__ = ["FiltersSheet", "filter_pictures"]
