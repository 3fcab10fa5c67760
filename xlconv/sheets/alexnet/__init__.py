"""The AlexNet conv1 workbook: Preprocess, Filters, conv1, Trace, Shapes and Predictions sheets.

The workbook is written with XlsxWriter in constant_memory mode, each sheet strictly row by row; the two
big sheets (Filters and conv1, about 600,000 cells) are streamed by :class:`xlconv.rowstream.RowStream`.
Every formula carries its value from torch as the cached result, so viewers that do not calculate still
show numbers; LibreOffice, Excel and Gnumeric recompute them.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlconv import formulas as fx
from xlconv.alexnet import PADDING, SIZE, Run, channels_text
from xlconv.book import COLOURS, Book
from xlconv.cells import MAX_FORMULA_CHARS, Grid, a1, quote_sheet
from xlconv.rowstream import Deferred, RowStream, xf

TOLERANCE = 1e-4
K = 11  # conv1's kernel_size
STRIDE = 4
PADDED = SIZE + 2 * PADDING  # 228
CONV = (PADDED - K) // STRIDE + 1  # 55
POOL_K, POOL_S = 3, 2
POOLED = (CONV - POOL_K) // POOL_S + 1  # 27
MAPS_PER_BAND = 8
MAP_GAP = 2  # columns between maps
SLICE = 8  # rows and columns of the raw-value slice on Preprocess
SLICE_AT = (108, 108)  # its top-left (row, column) in the 224x224 crop
MAX_FILL_FORMATS = 4096
MAP_COL_WIDTH = 5.0  # characters: "-12.34" fits at font size 8

SHEET_PRE, SHEET_FILTERS, SHEET_CONV, SHEET_TRACE, SHEET_SHAPES, SHEET_PRED = (
    "Preprocess", "Filters", "conv1", "Trace", "Shapes", "Predictions")
CHANNEL_NAMES = ("R", "G", "B")
CHANNEL_COLOURS = ("#FF0000", "#00A000", "#0000FF")
DIVERGING = dict(type="3_color_scale", min_color="#5A8AC6", mid_type="num", mid_value=0, mid_color="#FFFFFF",
                 max_color="#F8696B")
POSITIVE = dict(type="2_color_scale", min_type="num", min_value=0, min_color="#FFFFFF", max_color="#F8696B")
TITLE = dict(bold=True, font_size=14)
NOTE = dict(text_wrap=True, valign="top", font_size=10)
WARN = dict(bold=True, font_size=12, font_color="#C00000")


def write(data: Run, path: str | Path) -> Path:
    """Write the whole workbook for data to path (atomically)."""
    title = f"AlexNet conv1 walk-through ({data.weights.label})"
    with Book(path, title, constant_memory=True, tolerance=TOLERANCE) as book:
        layout = Layout(data)
        PreprocessSheet(book, data, layout).build()
        FiltersSheet(book, data, layout).build()
        ConvSheet(book, data, layout).build()
        TraceSheet(book, data, layout).build()
        ShapesSheet(book, data).build()
        PredictionsSheet(book, data).build()
    return Path(path)


def heading(data: Run, what: str) -> str:
    """A sheet's title line; every title of an untrained network says so first."""
    prefix = "UNTRAINED AlexNet (random weights, seed %d): " % data.seed if data.weights.untrained else "AlexNet: "
    return prefix + what


def weights_line(data: Run) -> str:
    w = data.weights
    return f"Weights: {w.label}" + ("." if w.untrained else f" ({w.source}).") + (
        " These are random numbers, not learned filters: the pictures show noise and the predictions mean nothing."
        if w.untrained else "")


def row_points(col_width: float) -> float:
    """The row height (points) that makes cells of a column this wide (characters) square: Excel draws a
    column of w characters w*7+5 pixels wide (Calibri 11), and a point is 4/3 pixel."""
    return round((col_width * 7 + 5) * 0.75, 2)


def _decimals(values: np.ndarray) -> str:
    """A number format that fits about six characters for these values."""
    m = float(np.max(np.abs(values))) if values.size else 0.0
    return "0.00" if m < 10 else "0.0" if m < 100 else "0"


def _fmt9(values: np.ndarray) -> list[str]:
    """Shortest-safe text of float32 numbers: 9 significant digits give back the same float32."""
    return [f"{v:.9g}" for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def _fmt7(values: np.ndarray) -> list[str]:
    """Cached results: 7 significant digits, float32's precision (the engine recomputes them anyway)."""
    return [f"{v:.7g}" for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


@dataclass
class Layout:
    """Where the blocks other sheets refer to are: decided up front so that sheets can cross-reference."""

    data: Run

    def __post_init__(self):
        # Filters: pictures first, then one band of numbers per filter.
        self.f_colw = 4.6
        self.pic_top = 6
        self.pic_band = K + 2  # label row, 11 rows, gap
        self.pic_cols = MAPS_PER_BAND * (K + 1)
        self.num_top = self.pic_top + MAPS_PER_BAND * self.pic_band + 3  # first filter's label row
        self.num_band = K + 2
        self.ch_left = [1 + c * (K + 1) for c in range(3)]  # R, G, B grids of each filter
        self.bias_col = 1 + 3 * (K + 1)
        self.num_pic_left = (self.bias_col + 2, self.bias_col + 2 + K + 1)

        # conv1: the padded input, then conv, ReLU and pool maps in bands of eight.
        self.in_label = 5
        self.in_top = 7
        self.in_left = [1 + c * (PADDED + MAP_GAP) for c in range(3)]
        self.n_maps = len(self.data.channels)
        self.bands = math.ceil(self.n_maps / MAPS_PER_BAND)
        self.map_stride = CONV + MAP_GAP
        row = self.in_top + PADDED + 2
        self.sections = {}
        for key, size in (("conv", CONV), ("relu", CONV), ("pool", POOLED)):
            # section title row, then per band: a label row, the maps, a gap row
            self.sections[key] = (row, row + 2, size + 2)  # (title row, first band's label row, band stride)
            row = row + 2 + self.bands * (size + 2) + 1
        self.conv_rows = row

    def filter_grid(self, k: int, c: int) -> Grid:
        return Grid(self.num_top + k * self.num_band + 1, self.ch_left[c], K, K)

    def bias_cell(self, k: int) -> Grid:
        return Grid(self.num_top + k * self.num_band + 1, self.bias_col, 1, 1)

    def weights_area(self) -> Grid:
        """From filter 0's first R weight to filter 63's bias row, for INDEX in the trace."""
        top = self.num_top + 1
        return Grid(top, self.ch_left[0], (len(self.data.weight) - 1) * self.num_band + K, self.bias_col - 1 + 1)

    def input_grid(self, c: int) -> Grid:
        return Grid(self.in_top, self.in_left[c], PADDED, PADDED)

    def map_grid(self, key: str, pos: int) -> Grid:
        """The pos-th selected channel's map in section key."""
        size = POOLED if key == "pool" else CONV
        _, first, stride = self.sections[key]
        band, slot = divmod(pos, MAPS_PER_BAND)
        return Grid(first + band * stride + 1, 1 + slot * self.map_stride, size, size)

    def maps_area(self, key: str) -> Grid:
        """All maps of a section, from the first map's top-left to the last band's bottom-right corner."""
        first = self.map_grid(key, 0)
        size = first.height
        _, _, stride = self.sections[key]
        width = (min(self.n_maps, MAPS_PER_BAND) - 1) * self.map_stride + size
        return Grid(first.top, first.left, (self.bands - 1) * stride + size, width)


# -- Preprocess ----------------------------------------------------------------------------------------


class PreprocessSheet:
    """Sizes, the crop, the picture, and raw 0-255 values next to live (x/255 - mean)/std."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.layout = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_PRE)
        self.d = Deferred(self.ws)

    def build(self):
        b, d, data, photo = self.book, self.d, self.data, self.data.photo
        ws = self.ws
        ws.set_column(0, 0, 2)
        ws.set_column(1, 1, 30)
        ws.set_column(2, 40, 7)
        d.write_string(0, 1, heading(data, "pre-processing the photo exactly as the lecture does"), b.fmt(**TITLE))
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED network: random weights. The pre-processing below is real; the "
                                 "filters and predictions are not learned.", b.fmt(**WARN))
        mode = ("the lecture's Normalize(mean=[0.5]*3, std=[0.5]*3)" if photo.normalize == "lecture" else
                "--normalize imagenet: the ImageNet mean and std of the weights' own transforms "
                "(AlexNet_Weights.IMAGENET1K_V1.transforms())")
        note = (f"transformer = Compose([Resize(224), CenterCrop(224), ToTensor(), Normalize(mean, std)]) with {mode}. "
                "Resize(224) scales the shorter side to 224 pixels (bilinear, antialiased), CenterCrop(224) cuts "
                "the middle 224x224, ToTensor() divides the 0-255 pixels by 255 and puts the channels first "
                "(3 x 224 x 224), Normalize computes (x - mean)/std per channel. "
                + weights_line(data) + " The workbook was computed by xlconv with torch and torchvision.")
        d.merge_range(2, 1, 2, 24, note, b.fmt(**NOTE))
        d.set_row(2, 15 * 5)
        label = b.fmt(bold=True, font_size=10, align="right")
        value = b.fmt(font_size=10, align="left")
        ow, oh = photo.original_size
        rw, rh = photo.resized_size
        left, top, right, bottom = photo.crop_box
        rows = [
            ("image file", str(photo.path)),
            ("original size (width x height)", f"{ow} x {oh} pixels, converted to RGB"),
            ("after Resize(224)", f"{rw} x {rh} pixels (shorter side 224)"),
            ("CenterCrop(224) box", f"left {left}, top {top}, right {right}, bottom {bottom} (in the resized image)"),
            ("after ToTensor()", "3 x 224 x 224 floats in [0, 1]: pixel / 255"),
            ("normalisation", photo.normalize + (" (mean 0.5, std 0.5: (x - 0.5)/0.5 maps [0, 1] to [-1, 1])"
                                                 if photo.normalize == "lecture" else "")),
        ]
        r = 4
        for k, v in rows:
            d.write_string(r, 1, k, label)
            d.write_string(r, 2, v, value)
            r += 1
        # mean and std: typed, live parameters of every formula below.
        r += 1
        param = b.cell_fmt("param", "0.000")
        head = b.fmt(bold=True, font_size=10, align="center")
        d.write_string(r, 1, "channel", label)
        for c in range(3):
            d.write_string(r, 2 + c, CHANNEL_NAMES[c], head)
        mean_cells, std_cells = [], []
        for k, (name, vals, cells) in enumerate((("mean", photo.mean, mean_cells), ("std", photo.std, std_cells))):
            rr = r + 1 + k
            d.write_string(rr, 1, f"{name} (type to change)", label)
            for c in range(3):
                d.write_number(rr, 2 + c, float(vals[c]), param)
                cells.append(Grid(rr, 2 + c, 1, 1))
        self.book.record("pre_mean", "input", SHEET_PRE, mean_cells, label="Normalize mean per channel")
        self.book.record("pre_std", "input", SHEET_PRE, std_cells, label="Normalize std per channel")
        r += 4
        y0, x0 = SLICE_AT
        d.write_string(r, 1, f"A slice of the crop: rows {y0}-{y0 + SLICE - 1}, columns {x0}-{x0 + SLICE - 1} "
                             f"(0-based, as torch indexes the 224 x 224 tensor)", b.fmt(bold=True, font_size=11))
        r += 1
        blocks = [("raw pixel values 0-255 (typed, from the resized and cropped photo)", "input", "0"),
                  ("normalised = (x/255 - mean)/std (live formulas)", "output", "0.000"),
                  ("the same cells on the conv1 sheet (live references to its padded input)", "kernel", "0.000")]
        raw = photo.pixels[y0:y0 + SLICE, x0:x0 + SLICE, :].transpose(2, 0, 1).astype(np.float64)  # (3, 8, 8)
        grids: dict[str, list[Grid]] = {}
        for n, (text, role, nf) in enumerate(blocks):
            d.write_string(r, 1, text, b.fmt(bold=True, font_size=10))
            top = r + 1
            gl = []
            for c in range(3):
                left_col = 2 + c * (SLICE + 1)
                d.write_string(top, left_col, f"{CHANNEL_NAMES[c]} (channel {c})", b.fmt(font_size=9))
                gl.append(Grid(top + 1, left_col, SLICE, SLICE))
            grids[role] = gl
            r = top + 1 + SLICE + 1
        norm_expected = (raw / 255.0 - np.array(photo.mean)[:, None, None]) / np.array(photo.std)[:, None, None]
        conv_vals = photo.tensor[:, y0:y0 + SLICE, x0:x0 + SLICE]
        for c in range(3):
            gr, gn, gk = grids["input"][c], grids["output"][c], grids["kernel"][c]
            src = self.layout.input_grid(c)
            fin = b.cell_fmt("input", "0", font_size=9)
            fout = b.cell_fmt("output", "0.000", font_size=9)
            fcopy = b.cell_fmt("kernel", "0.000", font_size=9)
            m, s = mean_cells[c].cell(0, 0, absolute=True), std_cells[c].cell(0, 0, absolute=True)
            for i in range(SLICE):
                for j in range(SLICE):
                    d.write_number(gr.top + i, gr.left + j, float(raw[c, i, j]), fin)
                    d.write_formula(gn.top + i, gn.left + j, f"=({gr.cell(i, j)}/255-{m})/{s}", fout,
                                    float(norm_expected[c, i, j]))
                    d.write_formula(gk.top + i, gk.left + j,
                                    "=" + quote_sheet(SHEET_CONV) + "!" + src.cell(PADDING + y0 + i, PADDING + x0 + j),
                                    fcopy, float(conv_vals[c, i, j]))
        self.book.record("pre_raw", "input", SHEET_PRE, grids["input"], label="raw 0-255 pixels of the crop",
                         rows=[y0, y0 + SLICE], columns=[x0, x0 + SLICE])
        info = dict(raw="pre_raw", mean="pre_mean", std="pre_std")
        self.book.record("pre_normalized", "normalize", SHEET_PRE, grids["output"], **info,
                         label="(x/255 - mean)/std, live")
        self.book.record("pre_conv1_input", "normalize", SHEET_PRE, grids["kernel"], **info,
                         label="the conv1 sheet's input cells for the same slice: typed float32 values that must "
                               "equal the normalisation")
        d.write_string(r, 1, "The conv1 sheet holds all 3 x 224 x 224 normalised values as typed numbers (torch's "
                             "float32 results, to keep the file small); the slice above shows they equal the live "
                             "formula. ", b.fmt(italic=True, font_size=9))
        r += 2
        d.write_string(3, 28, "The 224 x 224 crop the network sees (before normalisation), shown at 1.5x",
                       b.fmt(bold=True))
        d.flush()
        # The 224 x 224 picture the network sees, at twice its size, right of the table.
        from PIL import Image

        png = io.BytesIO()
        Image.fromarray(photo.pixels).save(png, format="PNG")
        ws.insert_image(4, 28, "crop.png", {"image_data": png, "x_scale": 1.5, "y_scale": 1.5,
                                            "description": "the 224 x 224 crop the network sees"})
        ws.hide_gridlines(2)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)
        ws.activate()


# -- Filters -------------------------------------------------------------------------------------------


def _quantise(rgb: np.ndarray, bits: int = 5) -> np.ndarray:
    """Colours in [0, 1] rounded to 2**bits levels a channel, as 0-255 integers."""
    levels = (1 << bits) - 1
    return np.round(np.round(np.clip(rgb, 0, 1) * levels) / levels * 255).astype(int)


def filter_pictures(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(64, 11, 11, 3) colours in [0, 1]: the lecture's w*0.5+0.5 clipped, and each filter's own min-max."""
    rgb = weight.transpose(0, 2, 3, 1).astype(np.float64)
    lecture = np.clip(rgb * 0.5 + 0.5, 0, 1)
    lo = rgb.min(axis=(1, 2, 3), keepdims=True)
    hi = rgb.max(axis=(1, 2, 3), keepdims=True)
    minmax = (rgb - lo) / np.where(hi > lo, hi - lo, 1.0)
    return lecture, minmax


class FiltersSheet:
    """All 64 filters as pictures (coloured cells) and as numbers with their biases."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.L = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_FILTERS)
        self.fills: dict[tuple[int, int, int], int] = {}

    def _fill(self, rgb) -> int:
        key = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
        s = self.fills.get(key)
        if s is None:
            s = xf(self.book.fmt(bg_color="#%02X%02X%02X" % key, pattern=1))
            self.fills[key] = s
        return s

    def build(self):
        b, ws, L, data = self.book, self.ws, self.L, self.data
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
        d.write_string(0, 1, heading(data, f"the {n} conv1 filters, model.features[0].weight: {n} x 3 x 11 x 11, "
                                           f"and their biases"), b.fmt(**TITLE))
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED: random weights, so these pictures are noise, not learned edge and "
                                 "colour detectors.", b.fmt(**WARN))
        note = ("Each filter has 3 channels (R, G, B) of 11 x 11 weights; drawing the three channels as the red, "
                "green and blue of one picture shows what colour pattern the filter responds to. Left: the "
                "lecture's mapping w*0.5+0.5 clipped to [0, 1] (weights near 0 look grey). Right: each filter "
                "stretched by its own minimum and maximum, (w - min)/(max - min), which makes faint filters "
                "visible. The pictures are cell colours drawn when the workbook was built (not live), rounded to "
                f"{2 ** bits} levels a channel; the numbers below are the weights every conv1 formula reads. "
                + weights_line(data))
        d.merge_range(2, 1, 2, 2 * L.pic_cols, note, b.fmt(**NOTE))
        d.set_row(2, 15 * 4)
        d.write_string(4, 1, "as the lecture draws them: w*0.5+0.5, clipped to [0, 1]", b.fmt(bold=True))
        d.write_string(4, L.pic_cols + 3, "each filter by its own min-max: (w - min)/(max - min)", b.fmt(bold=True))
        d.flush()

        stream = RowStream(ws, last_col + 2)
        col = stream.col_names.__getitem__  # a C-level lookup: a million calls
        label_s = xf(b.fmt(font_size=8, bold=True))
        pic_h = row_points(L.f_colw)  # square cells
        # 1. the 8 x 8 grid of pictures, twice.
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
                                           "The weights as numbers: model.features[0].weight[k, c] (11 x 11 per "
                                           "channel) and model.features[0].bias[k]. Every conv1 formula reads "
                                           "these cells.")], 1, 1)
        wfmt = xf(b.cell_fmt("kernel", "0.000", font_size=7))
        bfmt = xf(b.cell_fmt("bias", "0.000", font_size=7, bold=True))
        lab = xf(b.fmt(font_size=8, bold=True))
        sub = xf(b.fmt(font_size=8))
        wtext = [_fmt9(data.weight[k]) for k in range(n)]
        btext = _fmt9(data.bias)
        for k in range(n):
            top = L.num_top + k * L.num_band
            cells = [stream.text(f"B{top + 1}", lab, f"filter {k}")]
            for c in range(3):
                cells.append(stream.text(f"{col(L.ch_left[c] + 2)}{top + 1}", sub,
                                         f"{CHANNEL_NAMES[c]}: weight[{k}, {c}]"))
            cells.append(stream.text(f"{col(L.bias_col)}{top + 1}", sub, f"bias[{k}]"))
            cells.append(stream.text(f"{col(L.num_pic_left[0])}{top + 1}", sub, "w*0.5+0.5"))
            cells.append(stream.text(f"{col(L.num_pic_left[1])}{top + 1}", sub, "min-max"))
            cells.sort(key=lambda s: _col_of(s))
            stream.row(top, cells, 1, last_col)
            wt = wtext[k]
            for i in range(K):
                r = top + 1 + i
                rs = str(r + 1)
                cells = []
                for c in range(3):
                    base = c * K * K + i * K
                    left = L.ch_left[c]
                    cells += [f'<c r="{col(left + j)}{rs}" s="{wfmt}"><v>{wt[base + j]}</v></c>' for j in range(K)]
                if i == 0:
                    cells.append(stream.number(f"{col(L.bias_col)}{rs}", bfmt, btext[k]))
                for p, q in zip(L.num_pic_left, (q_lecture, q_minmax)):
                    cells += [stream.blank(f"{col(p + j)}{rs}", self._fill(q[k, i, j])) for j in range(K)]
                stream.row(r, cells, 1, last_col, pic_h)
        for k in range(n):
            self.book.record(f"conv1_w{k}", "kernel", SHEET_FILTERS, [L.filter_grid(k, c) for c in range(3)],
                             label=f"model.features[0].weight[{k}]")
        self.book.record("conv1_bias", "bias", SHEET_FILTERS, [L.bias_cell(k) for k in data.channels],
                         label="model.features[0].bias of the channels on the conv1 sheet", channels=list(data.channels))
        ws.hide_gridlines(2)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)


def _col_of(cell_xml: str) -> int:
    """Column number of a <c r="..."> element (to keep streamed cells in column order)."""
    from xlconv.cells import parse_a1

    ref = cell_xml.split('r="', 1)[1].split('"', 1)[0]
    return parse_a1(ref)[1]


# -- conv1 ---------------------------------------------------------------------------------------------


class ConvSheet:
    """The padded input and, per selected channel, the conv1, ReLU and max-pool maps as live formulas."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.L = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_CONV)

    def build(self):
        b, ws, L, data = self.book, self.ws, self.L, self.data
        chans = data.channels
        n = len(chans)
        last_col = max(L.in_left[2] + PADDED - 1, L.maps_area("conv").right)
        ws.set_column(0, 0, 2)
        ws.set_column(1, last_col, MAP_COL_WIDTH)
        ws.set_zoom(40)
        d = Deferred(ws)
        d.write_string(0, 1, heading(data, f"conv1 = model.features[0], then ReLU (features[1]) and MaxPool2d "
                                           f"(features[2]), for {n} of 64 channels ({channels_text(chans)})"),
                       b.fmt(**TITLE))
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED: random weights; the maps are real convolutions of the photo, but with "
                                 "random filters.", b.fmt(**WARN))
        note = ("Conv2d(3, 64, kernel_size=(11, 11), stride=(4, 4), padding=(2, 2)). The input below is the "
                "pre-processed photo (see Preprocess) with conv1's padding already applied: a 2-pixel ring of zeros "
                "(grey), 3 x 228 x 228. Every map cell is a live formula: SUMPRODUCT of an 11 x 11 window of each "
                "input channel with that channel of the filter (on the Filters sheet), plus the bias; the window "
                "moves 4 cells (the stride) per output cell, so output (y, x) reads rows 4y..4y+10 and columns "
                "4x..4x+10 of the padded input (0-based). (224 + 2x2 - 11)/4 + 1 = 55.25, rounded down: 55 x 55. "
                "ReLU: MAX(0, x). Max pooling: MAX of a 3 x 3 window, stride 2: (55 - 3)/2 + 1 = 27. Maps are in "
                "image orientation (row = y, column = x); colours are per-map heatmaps (blue negative, red "
                "positive). Zoom in to read the numbers. The Trace sheet takes one cell apart.")
        d.merge_range(2, 1, 2, 60, note, b.fmt(**NOTE))
        d.set_row(2, 15 * 6)
        d.write_string(L.in_label, 1, "Input: the normalised photo, channels R, G, B, padded by 2 (grey ring of "
                                      "zeros): 3 x 228 x 228 typed numbers", b.fmt(bold=True, font_size=12))
        d.flush()
        stream = RowStream(ws, last_col + 2)
        col = stream.col_names.__getitem__  # a C-level lookup: a million calls
        lab = xf(b.fmt(font_size=10, bold=True))
        big = xf(b.fmt(font_size=12, bold=True, font_color="#1F4E79"))
        grid_h = row_points(MAP_COL_WIDTH)  # square cells

        # 1. the padded input.
        r = L.in_label + 1
        stream.row(r, [stream.text(f"{col(L.in_left[c])}{r + 1}", lab,
                                   f"{CHANNEL_NAMES[c]}: channel {c} of the input tensor, padded")
                       for c in range(3)], 1, last_col)
        padded = np.zeros((3, PADDED, PADDED), dtype=np.float32)
        padded[:, PADDING:PADDING + SIZE, PADDING:PADDING + SIZE] = data.photo.tensor
        # No borders on the big grids: zoomed out, the heatmap colours draw the picture.
        in_s = xf(b.fmt(num_format="0.00", font_size=8, align="center", valign="vcenter",
                        bg_color=COLOURS["input"]))
        pad_s = xf(b.fmt(num_format="0", font_size=8, align="center", valign="vcenter", bg_color=COLOURS["padding"],
                         font_color="#404040"))
        for i in range(PADDED):
            rs = str(L.in_top + i + 1)
            cells = []
            ring_row = i < PADDING or i >= PADDING + SIZE
            for c in range(3):
                left = L.in_left[c]
                if ring_row:
                    cells += [f'<c r="{col(left + j)}{rs}" s="{pad_s}"><v>0</v></c>' for j in range(PADDED)]
                    continue
                vals = _fmt9(padded[c, i, PADDING:PADDING + SIZE])
                cells += [f'<c r="{col(left + j)}{rs}" s="{pad_s}"><v>0</v></c>' for j in range(PADDING)]
                cells += [f'<c r="{col(left + PADDING + j)}{rs}" s="{in_s}"><v>{v}</v></c>' for j, v in enumerate(vals)]
                cells += [f'<c r="{col(left + j)}{rs}" s="{pad_s}"><v>0</v></c>'
                          for j in range(PADDING + SIZE, PADDED)]
            stream.row(L.in_top + i, cells, 1, last_col, grid_h)
        for c in range(3):
            g = L.input_grid(c)
            inner = g.window(PADDING, PADDING, SIZE, SIZE)
            mean, std = data.photo.mean[c], data.photo.std[c]
            lo, hi = (0 - mean) / std, (1 - mean) / std
            ws.conditional_format(inner.top, inner.left, inner.bottom, inner.right, dict(
                type="2_color_scale", min_type="num", min_value=lo, min_color="#000000",
                max_type="num", max_value=hi, max_color=CHANNEL_COLOURS[c]))
            ws.conditional_format(inner.top, inner.left, inner.bottom, inner.right, dict(
                type="cell", criteria="<", value=lo + 0.7 * (hi - lo), format=b.fmt(font_color="#FFFFFF")))
        self.book.record("conv1_input", "input", SHEET_CONV, [L.input_grid(c) for c in range(3)],
                         label="the pre-processed photo padded by conv1's padding (2, 2): 3 x 228 x 228, ring "
                               "included")

        # 2. conv1 maps.
        sheet_w = quote_sheet(SHEET_FILTERS) + "!"
        pieces = []
        for k in chans:
            wr = [sheet_w + L.filter_grid(k, c).ref(absolute=True) for c in range(3)]
            bias = sheet_w + L.bias_cell(k).cell(0, 0, absolute=True)
            pieces.append(("SUMPRODUCT(", f",{wr[0]})+SUMPRODUCT(", f",{wr[1]})+SUMPRODUCT(", f",{wr[2]})+{bias}"))
        conv_vals = data.conv[list(chans)]
        conv_s = xf(_map_fmt(b, conv_vals))
        longest = 0

        def conv_row(pos_list, y, rs):
            nonlocal longest
            r0 = L.in_top + STRIDE * y + 1
            r1 = r0 + K - 1
            wins = [[f"{col(L.in_left[c] + STRIDE * x)}{r0}:{col(L.in_left[c] + STRIDE * x + K - 1)}{r1}"
                     for x in range(CONV)] for c in range(3)]
            w0, w1, w2 = wins
            cells = []
            for pos in pos_list:
                p0, p1, p2, p3 = pieces[pos]
                vals = _fmt7(conv_vals[pos, y])
                left = L.map_grid("conv", pos).left
                for x in range(CONV):
                    f = p0 + w0[x] + p1 + w1[x] + p2 + w2[x] + p3
                    cells.append(f'<c r="{col(left + x)}{rs}" s="{conv_s}"><f>{f}</f><v>{vals[x]}</v></c>')
                longest = max(longest, len(f))
            return cells

        self._section(stream, "conv", f"conv1 = model.features[0](x): {n} maps of 55 x 55, each cell = "
                                      f"SUMPRODUCT(R window, R filter) + SUMPRODUCT(G ...) + SUMPRODUCT(B ...) + bias",
                      "channel {k}: conv1", conv_row, big, lab, grid_h, last_col)
        if longest + 1 > MAX_FORMULA_CHARS:  # pragma: no cover - about 150 characters
            raise RuntimeError(f"conv1 formulas of {longest} characters")
        self._heat("conv", DIVERGING)
        conv_rec = [L.map_grid("conv", p) for p in range(n)]
        self.book.record("conv1", "output", SHEET_CONV, conv_rec, op="conv", input="conv1_input",
                         weight=[f"conv1_w{k}" for k in chans], bias="conv1_bias", stride=[STRIDE, STRIDE],
                         padding=[0, 0], dilation=[1, 1], channels=list(chans),
                         label="conv1 = model.features[0]: padding 0 over the input padded by 2, the same as "
                               "padding=(2, 2) on the 224 x 224 photo")

        # 3. ReLU maps.
        relu_vals = data.relu[list(chans)]
        relu_s = xf(_map_fmt(b, relu_vals))

        def relu_row(pos_list, y, rs):
            cells = []
            for pos in pos_list:
                src = L.map_grid("conv", pos)
                left = L.map_grid("relu", pos).left
                sr = src.top + y + 1
                vals = _fmt7(relu_vals[pos, y])
                cells += [f'<c r="{col(left + x)}{rs}" s="{relu_s}"><f>MAX(0,{col(src.left + x)}{sr})</f>'
                          f'<v>{vals[x]}</v></c>' for x in range(CONV)]
            return cells

        self._section(stream, "relu", "ReLU = model.features[1]: MAX(0, conv1 cell) for every cell",
                      "channel {k}: ReLU", relu_row, big, lab, grid_h, last_col)
        self._heat("relu", POSITIVE)
        self.book.record("relu1", "output", SHEET_CONV, [L.map_grid("relu", p) for p in range(n)], op="relu",
                         input="conv1", label="model.features[1] = ReLU")

        # 4. max pooling.
        pool_vals = data.pool[list(chans)]
        pool_s = xf(_map_fmt(b, pool_vals))

        def pool_row(pos_list, y, rs):
            cells = []
            for pos in pos_list:
                src = L.map_grid("relu", pos)
                left = L.map_grid("pool", pos).left
                r0 = src.top + POOL_S * y + 1
                r1 = r0 + POOL_K - 1
                vals = _fmt7(pool_vals[pos, y])
                cells += [f'<c r="{col(left + x)}{rs}" s="{pool_s}"><f>MAX({col(src.left + POOL_S * x)}{r0}:'
                          f'{col(src.left + POOL_S * x + POOL_K - 1)}{r1})</f><v>{vals[x]}</v></c>'
                          for x in range(POOLED)]
            return cells

        self._section(stream, "pool", "max pool = model.features[2] = MaxPool2d(kernel_size=3, stride=2): MAX of "
                                      "a 3 x 3 window of the ReLU map, moving 2 cells per output cell: 27 x 27",
                      "channel {k}: max pool", pool_row, big, lab, grid_h, last_col)
        self._heat("pool", POSITIVE)
        self.book.record("pool1", "output", SHEET_CONV, [L.map_grid("pool", p) for p in range(n)], op="max_pool",
                         input="relu1", kernel_size=[POOL_K, POOL_K], stride=[POOL_S, POOL_S], padding=[0, 0],
                         dilation=[1, 1], ceil_mode=False, count_include_pad=True,
                         label="model.features[2] = MaxPool2d(kernel_size=3, stride=2)")
        ws.hide_gridlines(2)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)

    def _section(self, stream: RowStream, key: str, title: str, label: str, row_cells, big: int, lab: int,
                 grid_h: float, last_col: int):
        L, col, chans = self.L, stream.col_names.__getitem__, self.data.channels
        title_row, first, stride = L.sections[key]
        stream.row(title_row, [stream.text(f"B{title_row + 1}", big, title)], 1, 1)
        size = POOLED if key == "pool" else CONV
        for band in range(L.bands):
            positions = list(range(band * MAPS_PER_BAND, min(len(chans), (band + 1) * MAPS_PER_BAND)))
            top = first + band * stride
            stream.row(top, [stream.text(f"{col(L.map_grid(key, p).left)}{top + 1}", lab,
                                         label.format(k=chans[p])) for p in positions], 1, last_col)
            for y in range(size):
                r = top + 1 + y
                stream.row(r, row_cells(positions, y, str(r + 1)), 1, last_col, grid_h)

    def _heat(self, key: str, rule: dict):
        for p in range(len(self.data.channels)):
            g = self.L.map_grid(key, p)
            self.ws.conditional_format(g.top, g.left, g.bottom, g.right, rule)


def _map_fmt(b: Book, values: np.ndarray):
    return b.fmt(num_format=_decimals(values), font_size=8, align="center", valign="vcenter",
                 bg_color=COLOURS["output"])


# -- Trace ---------------------------------------------------------------------------------------------


class TraceSheet:
    """One conv1 cell taken apart: window, filter, products, per-channel sums, bias, total = the map cell."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.L = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_TRACE)

    def build(self):
        b, ws, L, data = self.book, self.ws, self.L, self.data
        d = Deferred(ws)
        chans = data.channels
        ws.set_column(0, 0, 2)
        ws.set_column(1, 3 * (K + 1) + 12, 6.2)
        ws.set_column(3 * (K + 1) + 4, 3 * (K + 1) + 4, 11)  # the sums and the total
        d.write_string(0, 1, heading(data, "one conv1 output cell, step by step"), b.fmt(**TITLE))
        note = ("Type a channel (0-63, as torch numbers the filters) and an output row y and column x (1-55, 1 = "
                "top / left). The sheet fetches the 3 x 11 x 11 window of the padded input that this output cell "
                "reads (rows 4(y-1)+1 ... 4(y-1)+11 of the padded input, columns likewise), the filter's 3 x 11 x "
                "11 weights and its bias, multiplies them tap by tap, sums each channel, adds the bias, and "
                "compares the total with the cell of the conv1 map. All live (INDEX formulas).")
        d.merge_range(1, 1, 1, 36, note, b.fmt(**NOTE))
        d.set_row(1, 15 * 4)
        pick = b.cell_fmt("pick", "0", bold=True, border=2, locked=False)
        right = b.fmt(align="right", font_size=10, bold=True)
        r = 3
        default = (chans[0], CONV // 2 + 1, CONV // 2 + 1)
        picks = {}
        for n, (key, text, lo, hi) in enumerate((("channel", "channel (0-63)", 0, 63), ("row", "output row y (1-55)",
                                                                                        1, CONV),
                                                 ("column", "output column x (1-55)", 1, CONV))):
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
        d.write_formula(r, 4, f"=SUMPRODUCT(({chan_list}={ch})*(COLUMN({chan_list})-COLUMN({first_list})+1))",
                        b.cell_fmt("param", "0"), 1)
        d.write_string(r, 5, "(1 = the first map; 0: that channel is not on the conv1 sheet, rebuild with --channels)",
                       b.fmt(font_size=9, italic=True))
        pos_grid = Grid(r, 4, 1, 1)
        d.write_string(r, 14, "torch index:", right)
        d.write_formula(r, 15, f'="conv1_out[0, "&{ch}&", "&({y}-1)&", "&({x}-1)&"]"', b.fmt(font_size=10),
                        f"conv1_out[0, {default[0]}, {default[1] - 1}, {default[2] - 1}]")
        # The window, the filter and the products per channel.
        r = 8
        k0 = default[0]
        y0, x0 = (default[1] - 1) * STRIDE, (default[2] - 1) * STRIDE
        padded = np.zeros((3, PADDED, PADDED))
        padded[:, PADDING:PADDING + SIZE, PADDING:PADDING + SIZE] = data.photo.tensor
        win = padded[:, y0:y0 + K, x0:x0 + K]
        ker = data.weight[k0].astype(np.float64)
        area = L.weights_area().ref(absolute=True)
        weights_area = quote_sheet(SHEET_FILTERS) + "!" + area
        panels = (("window of the padded input (conv1 sheet)", "input", "0.00"),
                  ("filter weights (Filters sheet)", "kernel", "0.000"),
                  ("window x weights", "product", "0.000"))
        sum_cells = []
        for c in range(3):
            d.write_string(r, 1, f"channel {c} ({CHANNEL_NAMES[c]})", b.fmt(bold=True, font_size=11))
            top = r + 1
            src = quote_sheet(SHEET_CONV) + "!" + L.input_grid(c).ref(absolute=True)
            grids = []
            for n, (text, role, nf) in enumerate(panels):
                left = 1 + n * (K + 1)
                d.write_string(top, left, text, b.fmt(font_size=9, italic=True))
                grids.append(Grid(top + 1, left, K, K))
            gw, gk, gp = grids
            fw = b.cell_fmt("input", "0.00", font_size=8)
            fk = b.cell_fmt("kernel", "0.000", font_size=8)
            fp = b.cell_fmt("product", "0.000", font_size=8)
            for i in range(K):
                for j in range(K):
                    d.write_formula(gw.top + i, gw.left + j,
                                    f"=INDEX({src},({y}-1)*{STRIDE}+{i + 1},({x}-1)*{STRIDE}+{j + 1})", fw,
                                    float(win[c, i, j]))
                    d.write_formula(gk.top + i, gk.left + j,
                                    f"=INDEX({weights_area},{ch}*{L.num_band}+{i + 1},{L.ch_left[c] - L.ch_left[0] + j + 1})",
                                    fk, float(ker[c, i, j]))
                    d.write_formula(gp.top + i, gp.left + j, f"={gw.cell(i, j)}*{gk.cell(i, j)}", fp,
                                    float(win[c, i, j] * ker[c, i, j]))
            sc = 3 * (K + 1) + 1
            d.merge_range(top + 1, sc, top + 1, sc + 2, f"sum of channel {c}", right)
            d.write_formula(top + 1, sc + 3, f"=SUM({gp.ref()})", b.cell_fmt("product", "0.0000"),
                            float((win[c] * ker[c]).sum()))
            sum_cells.append(a1(top + 1, sc + 3))
            r = top + 1 + K + 1
        sc = 3 * (K + 1) + 1
        total = float((win * ker).sum() + data.bias[k0])
        map_val = float(data.conv[k0, default[1] - 1, default[2] - 1])
        d.merge_range(r, sc, r, sc + 2, "+ bias (Filters sheet)", right)
        d.write_formula(r, sc + 3, f"=INDEX({weights_area},{ch}*{L.num_band}+1,{L.bias_col - L.ch_left[0] + 1})",
                        b.cell_fmt("bias", "0.0000"), float(data.bias[k0]))
        bias_ref = a1(r, sc + 3)
        r += 1
        d.merge_range(r, sc, r, sc + 2, "= total", right)
        d.write_formula(r, sc + 3, "=" + "+".join(sum_cells + [bias_ref]), b.cell_fmt("output", "0.0000", bold=True),
                        total)
        total_ref = a1(r, sc + 3)
        total_grid = Grid(r, sc + 3, 1, 1)
        r += 1
        maps = quote_sheet(SHEET_CONV) + "!" + L.maps_area("conv").ref(absolute=True)
        band = f"INT(({pos_ref}-1)/{MAPS_PER_BAND})"
        slot = f"({pos_ref}-1-{MAPS_PER_BAND}*{band})"
        d.merge_range(r, sc, r, sc + 2, "the conv1 map's cell", right)
        d.write_formula(r, sc + 3, f'=IF({pos_ref}=0,"not built",INDEX({maps},{band}*{L.sections["conv"][2]}+{y},'
                                   f'{slot}*{L.map_stride}+{x}))', b.cell_fmt("output", "0.0000"), map_val)
        out_ref = a1(r, sc + 3)
        out_grid = Grid(r, sc + 3, 1, 1)
        r += 1
        d.merge_range(r, sc, r, sc + 2, "check", right)
        d.write_formula(r, sc + 3, f'=IF(ABS({total_ref}-{out_ref})<0.000001,"= equal","differs")',
                        b.fmt(bold=True, align="center"), "= equal")
        r += 1
        d.merge_range(r, sc, r, sc + 2, "after ReLU: MAX(0, total)", right)
        d.write_formula(r, sc + 3, f"=MAX(0,{total_ref})", b.cell_fmt("output", "0.0000"), max(total, 0.0))
        d.flush()
        self.book.record("conv1_trace", "trace", SHEET_TRACE,
                         [pos_grid, pick_grids["row"], pick_grids["column"], total_grid, out_grid],
                         output="conv1", cells=["filter", "row", "column", "total", "output"],
                         picks={k: v.replace("$", "") for k, v in picks.items()},
                         label="filter = the map number of the picked channel")
        ws.hide_gridlines(2)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)


# -- Shapes --------------------------------------------------------------------------------------------

SHAPE_COLUMNS = [  # key, heading, width
    ("name", "layer", 13),
    ("module", "module (print(model))", 52),
    ("c_in", "C in", 7), ("h_in", "H in", 7), ("w_in", "W in", 7),
    ("k", "kernel", 7), ("s", "stride", 7), ("p", "padding", 8), ("d", "dilation", 8), ("ceil", "ceil_mode", 9),
    ("c_out", "C out", 7), ("h_out", "H out", 7), ("w_out", "W out", 7),
    ("params", "parameters", 12),
    ("t_c", "torch C", 8), ("t_h", "torch H", 8), ("t_w", "torch W", 8), ("check", "sheet = torch?", 10),
    ("lecture", "the lecture", 70),
]

LECTURE_NOTES = {
    "features.0": "(224 + 2x2 - 11)/4 + 1 = 55.25, rounded down to 55. One listing in the lecture prints "
                  "padding=0 here; the model has padding=(2, 2). With padding 0 the map would be 54 x 54 (see below).",
    "features.2": "The slide computes (55 + 2x2 - 3)/2 + 1 = 27 with padding 2, but this pooling has padding 0: "
                  "(55 - 3)/2 + 1 = 27 (with padding 2 it would be 29).",
    "features.3": "The lecture's cell [15] writes conv2(conv1_out); the printed 27 x 27 needs the pooled map "
                  "conv1_out1 (the 55 x 55 conv1_out would give 55 x 55).",
    "features.6": "The slide says 394 channels; conv3 has 384: Conv2d(192, 384).",
    "features.7": "The lecture calls features[7:9] 'max pooling after the 3rd convolution'; it is this ReLU and "
                  "the next Conv2d(384, 256), not a pooling, so the size stays 13 x 13.",
    "features.8": "conv4: Conv2d(384, 256, kernel_size=3, padding=1), part of the lecture's features[7:9].",
    "features.12": "After the last pooling: 256 x 6 x 6.",
    "avgpool": "AdaptiveAvgPool2d((6, 6)) always outputs 6 x 6; the input is already 6 x 6, so nothing changes.",
    "flatten": "torch.flatten(x, 1) in AlexNet.forward: 256 x 6 x 6 = 9216, the in_features of classifier[1].",
    "classifier.6": "1000 scores, one per ImageNet class (see Predictions).",
}


class ShapesSheet:
    """Every layer with live output-size formulas and parameter counts, next to the shapes torch produced."""

    def __init__(self, book: Book, data: Run):
        self.book, self.data = book, data
        self.ws = book.wb.add_worksheet(SHEET_SHAPES)

    def build(self):
        b, ws, data = self.book, self.ws, self.data
        d = Deferred(ws)
        col = {key: i + 1 for i, (key, _, _) in enumerate(SHAPE_COLUMNS)}
        ws.set_column(0, 0, 2)
        for key, _, width in SHAPE_COLUMNS:
            ws.set_column(col[key], col[key], width)
        d.write_string(0, 1, heading(data, "every layer's input and output shape, and its parameters"),
                       b.fmt(**TITLE))
        note = ("One row per module of model.features, model.avgpool and model.classifier, plus the flatten in "
                "AlexNet.forward. Yellow cells are the layers' settings; the shapes are live: C/H/W in of a row is "
                "C/H/W out of the row above, and H out = INT((H in + 2 padding - dilation (kernel - 1) - 1) / stride) "
                "+ 1 for convolutions and poolings, so changing 224 or a padding updates everything below. "
                "Parameters: C out x C in x kernel x kernel + C out (bias) for a convolution, in x out + out for "
                "Linear. The torch columns are the shapes torch really produced for the photo (forward hooks): "
                "values, not formulas. Where the lecture slips, this sheet follows the real model and says so.")
        d.merge_range(1, 1, 1, col["lecture"], note, b.fmt(**NOTE))
        d.set_row(1, 15 * 4)
        head = b.fmt(bold=True, bottom=2, align="center", valign="vcenter", text_wrap=True)
        top = 3
        d.set_row(top, 30)
        for key, heading_text, _ in SHAPE_COLUMNS:
            d.write_string(top, col[key], heading_text, head)
        text = b.fmt(font_size=9, valign="vcenter")
        mono = b.fmt(font_size=8, valign="vcenter", font_name="Consolas")
        wrap = b.fmt(font_size=8, valign="vcenter", text_wrap=True, italic=True)
        param = b.cell_fmt("param", "0")
        live = b.cell_fmt("input", "0")
        out = b.cell_fmt("output", "0", bold=True)
        count = b.cell_fmt("output", "#,##0")
        torchf = b.cell_fmt("product", "0")
        r = top
        prev = None  # cells of the previous row's outputs
        first_params = None
        for n, layer in enumerate(data.shapes):
            r = top + 1 + n
            d.set_row(r, 24)
            cells = {key: a1(r, col[key]) for key in col}
            d.write_string(r, col["name"], layer.name, text)
            d.write_string(r, col["module"], layer.module, mono)
            ins = list(layer.in_shape) + [None] * (3 - len(layer.in_shape))
            outs = list(layer.out_shape) + [None] * (3 - len(layer.out_shape))
            # inputs: typed for the first row, else the previous row's outputs
            for key, v, pkey in (("c_in", ins[0], "c_out"), ("h_in", ins[1], "h_out"), ("w_in", ins[2], "w_out")):
                if v is None:
                    continue
                if prev is None:
                    d.write_number(r, col[key], v, param)
                else:
                    d.write_formula(r, col[key], fx.copy(prev[pkey]), live, v)
            p = layer.params
            kind = layer.kind
            if kind in ("conv", "maxpool"):
                for key, name in (("k", "kernel_size"), ("s", "stride"), ("p", "padding"), ("d", "dilation")):
                    d.write_number(r, col[key], p[name], param)
                if kind == "maxpool":
                    d.write_boolean(r, col["ceil"], p["ceil_mode"], b.cell_fmt("param", "General"))
                if kind == "conv":
                    d.write_number(r, col["c_out"], p["out_channels"], param)
                else:
                    d.write_formula(r, col["c_out"], fx.copy(cells["c_in"]), live, outs[0])
                for axis, (ikey, okey) in enumerate((("h_in", "h_out"), ("w_in", "w_out"))):
                    ceil = cells["ceil"] if kind == "maxpool" else None
                    d.write_formula(r, col[okey], fx.out_size(cells[ikey], cells["k"], cells["s"], cells["p"],
                                                              cells["d"], ceil), out, outs[1 + axis])
                    keys = ["in", "k", "s", "p", "d"] + (["ceil"] if ceil else []) + ["out"]
                    cols = [ikey, "k", "s", "p", "d"] + (["ceil"] if ceil else []) + [okey]
                    self.book.record(f"shape_{n}_{'hw'[axis]}", "size", SHEET_SHAPES,
                                     [Grid(r, col[c], 1, 1) for c in cols], rows=keys, layer=layer.name, axis=axis)
                if kind == "conv":
                    d.write_formula(r, col["params"], f"={cells['c_out']}*{cells['c_in']}*{cells['k']}*{cells['k']}"
                                                      f"+{cells['c_out']}", count, layer.n_params)
            elif kind == "adaptiveavgpool":
                d.write_formula(r, col["c_out"], fx.copy(cells["c_in"]), live, outs[0])
                for okey, v in (("h_out", outs[1]), ("w_out", outs[2])):
                    d.write_number(r, col[okey], p["output_size"], param)
            elif kind == "flatten":
                d.write_formula(r, col["c_out"], f"={cells['c_in']}*{cells['h_in']}*{cells['w_in']}", out, outs[0])
            elif kind == "linear":
                d.write_number(r, col["c_out"], p["out_features"], param)
                d.write_formula(r, col["params"], f"={cells['c_in']}*{cells['c_out']}+{cells['c_out']}", count,
                                layer.n_params)
            else:  # ReLU, Dropout: the shape passes through
                for ikey, okey, v in (("c_in", "c_out", outs[0]), ("h_in", "h_out", outs[1]),
                                      ("w_in", "w_out", outs[2])):
                    if v is not None:
                        d.write_formula(r, col[okey], fx.copy(cells[ikey]), live, v)
            if kind not in ("conv", "linear"):
                d.write_number(r, col["params"], 0, count)
            for key, v in zip(("t_c", "t_h", "t_w"), outs):
                if v is not None:
                    d.write_number(r, col[key], v, torchf)
            checks = [f"({cells[o]}={cells[t]})" for o, t, v in zip(("c_out", "h_out", "w_out"), ("t_c", "t_h", "t_w"),
                                                                     outs) if v is not None]
            d.write_formula(r, col["check"], f'=IF({"*".join(checks)},"= torch","differs")',
                            b.fmt(align="center", font_size=9, bold=True), "= torch")
            d.write_string(r, col["lecture"], LECTURE_NOTES.get(layer.name, ""), wrap)
            prev = {k: cells[k] for k in ("c_out", "h_out", "w_out")}
            if first_params is None:
                first_params = a1(r, col["params"])
            last_params = a1(r, col["params"])
        r += 1
        d.write_string(r, col["module"], "total parameters (live sum) / torch's count", b.fmt(bold=True, align="right"))
        total = sum(s.n_params for s in data.shapes)
        d.write_formula(r, col["params"], f"=SUM({first_params}:{last_params})", count, total)
        d.write_number(r, col["t_c"], total, b.cell_fmt("product", "#,##0"))
        self.total_cell = (r, col["params"])
        # What the lecture's padding=0 listing would give.
        r += 2
        d.write_string(r, col["name"], "what if", b.fmt(bold=True))
        d.write_string(r, col["module"], "conv1 as one listing prints it, padding=0: H out = "
                                         "INT((224 + 2x0 - 11)/4) + 1", text)
        h, k, s, pz, dil = (a1(r, col[c]) for c in ("h_in", "k", "s", "p", "d"))
        d.write_number(r, col["h_in"], SIZE, param)
        d.write_number(r, col["k"], K, param)
        d.write_number(r, col["s"], STRIDE, param)
        d.write_number(r, col["p"], 0, param)
        d.write_number(r, col["d"], 1, param)
        d.write_formula(r, col["h_out"], fx.out_size(h, k, s, pz, dil), out, 54)
        d.write_string(r, col["lecture"], "54 x 54, not the 55 x 55 torch prints: the real conv1 pads by 2.", wrap)
        self.book.record("shape_padding0", "size", SHEET_SHAPES,
                         [Grid(r, col[c], 1, 1) for c in ("h_in", "k", "s", "p", "d", "h_out")],
                         rows=["in", "k", "s", "p", "d", "out"], layer="features.0 with padding=0")
        d.flush()
        ws.freeze_panes(top + 1, 2)
        ws.hide_gridlines(2)
        ws.set_landscape()
        ws.fit_to_pages(1, 0)


# -- Predictions ---------------------------------------------------------------------------------------


class PredictionsSheet:
    """The top-5 ImageNet classes by torch (values)."""

    def __init__(self, book: Book, data: Run):
        self.book, self.data = book, data
        self.ws = book.wb.add_worksheet(SHEET_PRED)

    def build(self):
        b, ws, data = self.book, self.ws, self.data
        d = Deferred(ws)
        ws.set_column(0, 0, 2)
        ws.set_column(1, 2, 10)
        ws.set_column(3, 3, 36)
        ws.set_column(4, 4, 14)
        d.write_string(0, 1, heading(data, "what the whole network predicts for the photo"), b.fmt(**TITLE))
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED network: random weights, so these classes are meaningless (every "
                                 "probability is about 1/1000).", b.fmt(**WARN))
        note = ("Computed by torch when the workbook was built: model(x) on the pre-processed photo, softmax over "
                "the 1000 scores, the five largest. These are values, not formulas: conv2 to fc8 take about 700 "
                "million multiplications, more than a spreadsheet should hold. Class names from "
                "AlexNet_Weights.IMAGENET1K_V1.meta['categories']. " + weights_line(data))
        d.merge_range(2, 1, 2, 8, note, b.fmt(**NOTE))
        d.set_row(2, 15 * 5)
        head = b.fmt(bold=True, bottom=2, align="center")
        for c, text in enumerate(("rank", "class index", "class name", "probability (torch)")):
            d.write_string(4, 1 + c, text, head)
        for n, (idx, name, prob) in enumerate(data.top5):
            r = 5 + n
            d.write_number(r, 1, n + 1, b.fmt(align="center"))
            d.write_number(r, 2, idx, b.fmt(align="center"))
            d.write_string(r, 3, name, b.fmt())
            d.write_number(r, 4, prob, b.cell_fmt("output", "0.00%"))
        d.flush()
        ws.conditional_format(5, 4, 9, 4, dict(type="data_bar", bar_color="#63BE7B", min_type="num", min_value=0,
                                               max_type="num", max_value=1))
        ws.hide_gridlines(2)


__all__ = ["write", "Layout", "filter_pictures", "TOLERANCE"]
