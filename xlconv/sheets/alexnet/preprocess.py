"""The Preprocess sheet: sizes, the crop, the picture, and raw 0-255 values next to live (x/255 - mean)/std."""

from __future__ import annotations

import io

import numpy as np

from xlconv import formulas as fx
from xlconv import reference as ref
from xlconv.book import Book
from xlconv.cells import Grid, quote_sheet
from xlconv.rowstream import Deferred
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import heading, weights_line
from xlconv.sheets.alexnet.layout import CHANNEL_NAMES, SHEET_CONV, SHEET_PRE, Layout
from xlconv.torchnet import Run

SLICE = 8  # rows and columns of the raw-value slice


class PreprocessSheet:
    """Sizes, the crop, the picture, and raw 0-255 values next to live (x/255 - mean)/std."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.layout = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_PRE)
        self.d = Deferred(self.ws)

    def build(self) -> None:
        b, d, data, photo = self.book, self.d, self.data, self.data.photo
        geo = data.geometry
        n, size = geo.in_channels, geo.size
        ws = self.ws
        ws.set_column(0, 0, 2)
        ws.set_column(1, 1, 30)
        ws.set_column(2, 40, 7)
        d.write_string(0, 1, heading(data, "pre-processing the photo exactly as the lecture does"),
                       b.fmt(**style.TITLE))
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED network: random weights. The pre-processing below is real; the "
                                 "filters and predictions are not learned.", b.fmt(**style.WARN))
        mode = ("the lecture's Normalize(mean=[0.5]*3, std=[0.5]*3)" if photo.normalize == "lecture" else
                "--normalize imagenet: the ImageNet mean and std of the weights' own transforms "
                "(AlexNet_Weights.IMAGENET1K_V1.transforms())")
        note = (f"transformer = Compose([Resize({size}), CenterCrop({size}), ToTensor(), Normalize(mean, std)]) "
                f"with {mode}. Resize({size}) scales the shorter side to {size} pixels (bilinear, antialiased), "
                f"CenterCrop({size}) cuts the middle {size}x{size}, ToTensor() divides the 0-255 pixels by 255 and "
                f"puts the channels first ({n} x {size} x {size}), Normalize computes (x - mean)/std per channel. "
                + weights_line(data) + " The workbook was computed by xlconv with torch and torchvision.")
        d.merge_range(2, 1, 2, 24, note, b.fmt(**style.NOTE))
        d.set_row(2, 15 * 5)
        label = b.fmt(bold=True, font_size=10, align="right")
        value = b.fmt(font_size=10, align="left")
        ow, oh = photo.original_size
        rw, rh = photo.resized_size
        left, top, right, bottom = photo.crop_box
        rows = [
            ("image file", str(photo.path)),
            ("original size (width x height)", f"{ow} x {oh} pixels, converted to RGB"),
            (f"after Resize({size})", f"{rw} x {rh} pixels (shorter side {size})"),
            (f"CenterCrop({size}) box",
             f"left {left}, top {top}, right {right}, bottom {bottom} (in the resized image)"),
            ("after ToTensor()", f"{n} x {size} x {size} floats in [0, 1]: pixel / 255"),
            ("normalisation", photo.normalize + (" (mean 0.5, std 0.5: (x - 0.5)/0.5 maps [0, 1] to [-1, 1])"
                                                 if photo.normalize == "lecture" else "")),
        ]
        r = 4
        for key, text in rows:
            d.write_string(r, 1, key, label)
            d.write_string(r, 2, text, value)
            r += 1
        # mean and std: typed, live parameters of every formula below.
        r += 1
        param = style.cell(b, "param", "0.000")
        head = b.fmt(bold=True, font_size=10, align="center")
        d.write_string(r, 1, "channel", label)
        for c in range(n):
            d.write_string(r, 2 + c, CHANNEL_NAMES[c], head)
        mean_cells: list[Grid] = []
        std_cells: list[Grid] = []
        for k, (name, vals, cells) in enumerate((("mean", photo.mean, mean_cells), ("std", photo.std, std_cells))):
            rr = r + 1 + k
            d.write_string(rr, 1, f"{name} (type to change)", label)
            for c in range(n):
                d.write_number(rr, 2 + c, float(vals[c]), param)
                cells.append(Grid(rr, 2 + c, 1, 1))
        b.record("pre_mean", "input", SHEET_PRE, mean_cells, label="Normalize mean per channel")
        b.record("pre_std", "input", SHEET_PRE, std_cells, label="Normalize std per channel")
        r += 4
        y0 = x0 = (size - SLICE) // 2  # the middle of the crop
        d.write_string(r, 1, f"A slice of the crop: rows {y0}-{y0 + SLICE - 1}, columns {x0}-{x0 + SLICE - 1} "
                             f"(0-based, as torch indexes the {size} x {size} tensor)", b.fmt(bold=True, font_size=11))
        r += 1
        blocks = [("raw pixel values 0-255 (typed, from the resized and cropped photo)", "input", "0"),
                  ("normalised = (x/255 - mean)/std (live formulas)", "output", "0.000"),
                  ("the same cells on the conv1 sheet (live references to its padded input)", "kernel", "0.000")]
        raw = photo.pixels[y0:y0 + SLICE, x0:x0 + SLICE, :].transpose(2, 0, 1).astype(np.float64)  # (3, 8, 8)
        grids: dict[str, list[Grid]] = {}
        for text, role, _ in blocks:
            d.write_string(r, 1, text, b.fmt(bold=True, font_size=10))
            top = r + 1
            gl = []
            for c in range(n):
                left_col = 2 + c * (SLICE + 1)
                d.write_string(top, left_col, f"{CHANNEL_NAMES[c]} (channel {c})", b.fmt(font_size=9))
                gl.append(Grid(top + 1, left_col, SLICE, SLICE))
            grids[role] = gl
            r = top + 1 + SLICE + 1
        norm_expected = ref.normalize(raw, photo.mean, photo.std)
        conv_vals = photo.tensor[:, y0:y0 + SLICE, x0:x0 + SLICE]
        conv_sheet = quote_sheet(SHEET_CONV) + "!"
        p = geo.padding
        for c in range(n):
            gr, gn, gk = grids["input"][c], grids["output"][c], grids["kernel"][c]
            src = self.layout.input_grid(c)
            fin = style.cell(b, "input", "0", font_size=9)
            fout = style.cell(b, "output", "0.000", font_size=9)
            fcopy = style.cell(b, "kernel", "0.000", font_size=9)
            m, s = mean_cells[c].cell(0, 0, absolute=True), std_cells[c].cell(0, 0, absolute=True)
            for i in range(SLICE):
                for j in range(SLICE):
                    d.write_number(gr.top + i, gr.left + j, float(raw[c, i, j]), fin)
                    d.write_formula(gn.top + i, gn.left + j, fx.normalize(gr.cell(i, j), m, s), fout,
                                    float(norm_expected[c, i, j]))
                    d.write_formula(gk.top + i, gk.left + j, fx.copy(conv_sheet + src.cell(p + y0 + i, p + x0 + j)),
                                    fcopy, float(conv_vals[c, i, j]))
        b.record("pre_raw", "input", SHEET_PRE, grids["input"], label="raw 0-255 pixels of the crop",
                 rows=[y0, y0 + SLICE], columns=[x0, x0 + SLICE])
        info = dict(raw="pre_raw", mean="pre_mean", std="pre_std")
        b.record("pre_normalized", "normalize", SHEET_PRE, grids["output"], **info,
                 label="(x/255 - mean)/std, live")
        b.record("pre_conv1_input", "normalize", SHEET_PRE, grids["kernel"], **info,
                 label="the conv1 sheet's input cells for the same slice: typed float32 values that must "
                       "equal the normalisation")
        d.write_string(r, 1, f"The conv1 sheet holds all {n} x {size} x {size} normalised values as typed numbers "
                             "(torch's float32 results, to keep the file small); the slice above shows they equal "
                             "the live formula. ", b.fmt(italic=True, font_size=9))
        d.write_string(3, 28, f"The {size} x {size} crop the network sees (before normalisation), shown at 1.5x",
                       b.fmt(bold=True))
        d.flush()
        # The picture the network sees, at 1.5 times its size, right of the table.
        from PIL import Image

        png = io.BytesIO()
        Image.fromarray(photo.pixels).save(png, format="PNG")
        ws.insert_image(4, 28, "crop.png", {"image_data": png, "x_scale": 1.5, "y_scale": 1.5,
                                            "description": f"the {size} x {size} crop the network sees"})
        style.page_setup(ws)
        ws.activate()


__all__ = ["PreprocessSheet", "SLICE"]
