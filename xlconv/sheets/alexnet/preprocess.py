"""The Preprocess sheet: sizes, the crop, the photo, the mean and std, and all the crop's raw 0-255 pixels.

The pixels are typed numbers drawn as three pictures (each channel black to full red, green or blue by a colour
scale); conv1's input cells are live formulas of them, (pixel/255 - mean)/std, so that a changed pixel, mean or
std changes every map.
"""

from __future__ import annotations

import io

from xlconv import formulas as fx
from xlconv.book import Book
from xlconv.cells import Grid, a1, quote_sheet
from xlconv.rowstream import Deferred, RowStream, xf
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import (heading, note, print_plan, row_height, scaled_page_setup, square,
                                          weights_line)
from xlconv.sheets.alexnet.layout import (CHANNEL_NAMES, GRID_PX, GRID_WIDTH, SHEET_CONV, SHEET_PRE,
                                          SHEET_TRACE, Layout)
from xlconv.torchnet import Run

SLICE = 8  # rows and columns of the slice of numbers
PHOTO_CELLS = 12  # the photo spans this many square cells each way
TABLE_LEFT = 1 + PHOTO_CELLS + 1  # the column of the table's labels, right of the photo
LABEL_CELLS, VALUE_CELLS = 9, 22  # merged widths of the table's labels and values (Layout.pre_param_left)
PARAM_CELLS = 3  # merged width of a mean or std cell
CHANNEL_COLOURS = ("#FF0000", "#00B050", "#0070C0")
LAST_COL = TABLE_LEFT + LABEL_CELLS + VALUE_CELLS - 1  # the header's right edge


class PreprocessSheet:
    """Sizes, the crop, the photo, the mean and std, and the crop's raw pixels as typed numbers."""

    def __init__(self, book: Book, data: Run, layout: Layout):
        self.book, self.data, self.L = book, data, layout
        self.ws = book.wb.add_worksheet(SHEET_PRE)
        self.d = Deferred(self.ws)
        self.mean_cells: list[Grid] = []
        self.std_cells: list[Grid] = []

    def build(self) -> None:
        b, d, data, photo, L = self.book, self.d, self.data, self.data.photo, self.L
        geo = data.geometry
        n, size = geo.in_channels, geo.size
        ws = self.ws
        ws.set_column(0, 0, 2)
        ws.set_column(1, L.pre_left + size, GRID_WIDTH)
        d.write_string(0, 1, heading(data, "pre-processing the photo exactly as the lecture does"),
                       b.fmt(**style.TITLE))
        d.set_row(0, 22)
        if data.weights.untrained:
            d.write_string(1, 1, "UNTRAINED network: random weights. The pre-processing below is real; the "
                                 "filters and predictions are not learned.", b.fmt(**style.WARN))
        mode = ("the lecture's Normalize(mean=[0.5]*3, std=[0.5]*3)" if photo.normalize == "lecture" else
                "--normalize imagenet: the ImageNet mean and std of the weights' own transforms "
                "(AlexNet_Weights.IMAGENET1K_V1.transforms())")
        text = (f"transformer = Compose([Resize({size}), CenterCrop({size}), ToTensor(), Normalize(mean, std)]) "
                f"with {mode}. Image width and height: Resize({size}) scales the shorter side to {size} pixels "
                f"(bilinear, antialiased), CenterCrop({size}) cuts the middle {size}x{size}. Pixel values: ToTensor() "
                f"divides the 0-255 pixels by 255 ([0, 1], channels first: {n} x {size} x {size}) and Normalize "
                "computes (x - mean)/std per channel. Below the photo: all its pixels as typed numbers; conv1's "
                "input cells compute (pixel/255 - mean)/std from them, live. " + weights_line(data))
        d.merge_range(2, 1, 2, LAST_COL, text, b.fmt(**style.NOTE))
        d.set_row(2, 15 * 5)
        for r in range(L.pre_photo[0], L.pre_grid_title - 2):
            row_height(d, b, r, GRID_PX * 0.75)  # square cells: the photo spans whole cells, the slice is square
        self._table()
        self._slice()
        self._grids()
        self._photo()
        content_w = style.column_px(2) + LAST_COL * GRID_PX
        rows = self._row_points(L.pre_grid_title)
        # The opening view: the title, the note, the photo and the table beside it.
        ws.set_zoom(style.fit_zoom((content_w, sum(rows[:L.pre_photo[0] + PHOTO_CELLS]) * 4 / 3)))
        ws.freeze_panes(1, 0)
        # Print the header and the slice; the 150,528 pixel cells below are for the screen (a picture 224 cells
        # high prints only at a scale where the text above could not be read).
        plan = print_plan(rows, [L.pre_slice], content_w * 0.75, landscape=True)
        scaled_page_setup(ws, True, plan)
        ws.print_area(0, 0, L.pre_grid_title - 2, LAST_COL)

    def _row_points(self, last: int) -> list[float]:
        """The heights of rows 0 to last - 1 as this sheet sets them."""
        rows = [15.0] * last
        rows[0], rows[2] = 22.0, 75.0
        for r in range(self.L.pre_photo[0], last - 2):
            rows[r] = GRID_PX * 0.75
        return rows

    def _table(self) -> None:
        b, d, data, photo, L = self.book, self.d, self.data, self.data.photo, self.L
        geo = data.geometry
        n, size = geo.in_channels, geo.size
        label = b.fmt(bold=True, font_size=10, align="right", valign="vcenter")
        value = b.fmt(font_size=10, align="left", valign="vcenter")
        ow, oh = photo.original_size
        rw, rh = photo.resized_size
        left, top, right, bottom = photo.crop_box
        rows = [
            ("image file", photo.path.name),
            ("original size (width x height)", f"{ow} x {oh} pixels, converted to RGB"),
            (f"after Resize({size})", f"{rw} x {rh} pixels (shorter side {size})"),
            (f"CenterCrop({size}) box", f"left {left}, top {top}, right {right}, bottom {bottom} (in the resized "
                                        "image)"),
            ("after ToTensor()", f"{n} x {size} x {size} floats in [0, 1]: pixel / 255"),
            ("normalisation", photo.normalize + (" (mean 0.5, std 0.5: (x - 0.5)/0.5 maps [0, 1] to [-1, 1])"
                                                 if photo.normalize == "lecture" else "")),
        ]
        r = L.pre_photo[0]
        d.write_string(r - 1, TABLE_LEFT, f"The {size} x {size} crop the network sees (left, before "
                                          "normalisation)", b.fmt(bold=True, font_size=11))
        for key, text in rows:
            d.merge_range(r, TABLE_LEFT, r, TABLE_LEFT + LABEL_CELLS - 1, key, label)
            d.merge_range(r, TABLE_LEFT + LABEL_CELLS, r, LAST_COL, text, value)
            r += 1
        # mean and std: typed, live parameters of every conv1 input cell.
        r += 1
        param = style.cell(b, "param", "0.000", font_size=10, bold=True)
        head = b.fmt(bold=True, font_size=10, align="center", valign="vcenter")
        d.merge_range(r, TABLE_LEFT, r, TABLE_LEFT + LABEL_CELLS - 1, "channel", label)
        col0 = TABLE_LEFT + LABEL_CELLS
        for c in range(n):
            c0 = col0 + c * PARAM_CELLS
            d.merge_range(r, c0, r, c0 + PARAM_CELLS - 1, f"{CHANNEL_NAMES[c]} ({c})", head)
        for k, (name, vals, cells) in enumerate((("mean", photo.mean, self.mean_cells),
                                                 ("std", photo.std, self.std_cells))):
            rr = r + 1 + k
            d.merge_range(rr, TABLE_LEFT, rr, TABLE_LEFT + LABEL_CELLS - 1, f"{name} (type to change)", label)
            for c in range(n):
                c0 = col0 + c * PARAM_CELLS
                d.merge_range(rr, c0, rr, c0 + PARAM_CELLS - 1, "", param)
                d.write_number(rr, c0, float(vals[c]), param)
                cells.append(Grid(rr, c0, 1, 1))
                if cells[-1] != L.pre_param(name, c):  # pragma: no cover - the layout and this table disagree
                    raise RuntimeError(f"{name} of channel {c} is not where the layout says")
        rr = r + 3
        d.write_string(rr, TABLE_LEFT, "Type another mean or std, or a pixel below: conv1's input cells, its maps, "
                                       f"the {SHEET_TRACE} sheet and the ReLU and max-pool maps all follow.",
                       b.fmt(italic=True, font_size=10, font_color=style.HEADING_BLUE))
        b.record("pre_mean", "input", SHEET_PRE, self.mean_cells, label="Normalize mean per channel")
        b.record("pre_std", "input", SHEET_PRE, self.std_cells, label="Normalize std per channel")
        mean_text = ", ".join(f"{v:g}" for v in photo.mean)
        std_text = ", ".join(f"{v:g}" for v in photo.std)
        for c in range(n):
            note(self.ws, self.mean_cells[c].top, self.mean_cells[c].left,
                 f"Normalize(mean=[{mean_text}], std=[{std_text}]): the mean of channel {CHANNEL_NAMES[c]}, "
                 "subtracted from every pixel/255 of the channel. Type another value: conv1's input and all maps "
                 "follow.")
            note(self.ws, self.std_cells[c].top, self.std_cells[c].left,
                 f"The std of channel {CHANNEL_NAMES[c]}: (pixel/255 - mean)/std. With mean 0.5 and std 0.5 the "
                 "lecture's transformer maps [0, 1] to [-1, 1]. Type another value: the maps follow.")

    def _slice(self) -> None:
        """An 8 x 8 slice: the raw pixels (copies of the grids below) and conv1's input cells for them."""
        b, d, data, L = self.book, self.d, self.data, self.L
        geo = data.geometry
        n, size, p = geo.in_channels, geo.size, geo.padding
        y0 = x0 = (size - SLICE) // 2  # the middle of the crop
        r = L.pre_slice
        d.write_string(r, 1, f"A slice of the crop, rows {y0}-{y0 + SLICE - 1} and columns {x0}-{x0 + SLICE - 1} "
                             f"(0-based, as torch indexes the {size} x {size} tensor): the raw pixels (live copies of "
                             f"the grids below) and the same cells of conv1's input, (pixel/255 - mean)/std",
                       b.fmt(bold=True, font_size=11))
        conv_sheet = quote_sheet(SHEET_CONV) + "!"
        raw = self.data.photo.pixels.transpose(2, 0, 1)
        tensor = self.data.photo.tensor
        fin = style.cell(b, "input", "0", font_size=9)
        fout = style.cell(b, "output", "0.00", font_size=8)
        sub = b.fmt(font_size=9, italic=True)
        for k, (what, f) in enumerate((("raw 0-255", fin), ("(pixel/255 - mean)/std on conv1", fout))):
            top = r + 1 + k * (SLICE + 1)
            for c in range(n):
                left = 1 + c * (SLICE + 1)
                d.write_string(top, left, f"{CHANNEL_NAMES[c]}: {what}", sub)
                g = Grid(top + 1, left, SLICE, SLICE)
                for i in range(SLICE):
                    for j in range(SLICE):
                        if k == 0:
                            src = L.raw_grid(c).cell(y0 + i, x0 + j)
                            d.write_formula(g.top + i, g.left + j, fx.copy(src), f, int(raw[c, y0 + i, x0 + j]))
                        else:
                            src = conv_sheet + L.input_grid(c).cell(p + y0 + i, p + x0 + j)
                            d.write_formula(g.top + i, g.left + j, fx.copy(src), f, float(tensor[c, y0 + i, x0 + j]))
                if c == 0:
                    note(self.ws, g.top, g.left,
                         "A copy of the pixel in the grid below (the typed number)." if k == 0 else
                         "A copy of conv1's input cell for this pixel: ToTensor() then Normalize(), "
                         "(pixel/255 - mean)/std, computed on the conv1 sheet from this sheet's pixel, mean and std.")

    def _grids(self) -> None:
        """All pixels of the crop, one 224 x 224 grid per channel, stacked; streamed row by row."""
        b, d, data, L, ws = self.book, self.d, self.data, self.L, self.ws
        geo = data.geometry
        n, size = geo.in_channels, geo.size
        d.write_string(L.pre_grid_title, 1, f"All {n} x {square(size)} pixels of the crop as typed numbers "
                                            "(0-255): each channel is drawn from black (0) to its full colour "
                                            "(255). Type over a pixel and conv1's maps follow.",
                       b.fmt(bold=True, font_size=12, font_color=style.HEADING_BLUE))
        d.write_string(L.pre_grid_title - 2, 1, "Printing stops above: the pixel grids below are for the screen "
                                                "(zoom out to see the three pictures).",
                       b.fmt(italic=True, font_size=9, font_color="#808080"))
        d.flush()
        stream = RowStream(ws, L.pre_left + size + 2)
        col = stream.col_names.__getitem__
        lab = xf(b.fmt(font_size=11, bold=True))
        pix = xf(b.fmt(num_format="0", font_size=7, align="center", valign="vcenter"))
        pixels = data.photo.pixels
        h = GRID_PX * 0.75
        for c in range(n):
            g = L.raw_grid(c)
            stream.row(g.top - 1, [stream.text(f"{col(g.left)}{g.top}", lab,
                                               f"{CHANNEL_NAMES[c]}: channel {c}, {square(size)} pixels")],
                       1, 1)
            vals = pixels[:, :, c].astype(int).tolist()
            for i in range(size):
                rs = str(g.top + i + 1)
                stream.row(g.top + i, [f'<c r="{col(g.left + j)}{rs}" s="{pix}"><v>{v}</v></c>'
                                       for j, v in enumerate(vals[i])], g.left, g.right, h)
            ws.conditional_format(g.top, g.left, g.bottom, g.right, dict(
                type="2_color_scale", min_type="num", min_value=0, min_color="#000000",
                max_type="num", max_value=255, max_color=CHANNEL_COLOURS[c]))
            ws.conditional_format(g.top, g.left, g.bottom, g.right, dict(
                type="cell", criteria="<", value=170, format=b.fmt(font_color="#FFFFFF")))
        for c in range(n):  # after the rows are streamed (see common.note)
            g = L.raw_grid(c)
            note(ws, g.top, g.left, f"The {CHANNEL_NAMES[c]} value of the crop's top-left pixel, 0-255, as the "
                                    f"photo stores it. ToTensor() divides it by 255; conv1's input cell "
                                    f"{a1(L.input_grid(c).top + geo.padding, L.input_grid(c).left + geo.padding)} "
                                    "normalises it. Type another value and the maps follow.")
        b.record("pre_raw", "input", SHEET_PRE, [L.raw_grid(c) for c in range(n)],
                 label="raw 0-255 pixels of the crop, typed: what ToTensor() divides by 255")

    def _photo(self) -> None:
        """The crop the network sees, where the reading starts, on whole square cells (no stretching)."""
        from PIL import Image

        photo, L = self.data.photo, self.L
        size = self.data.geometry.size
        png = io.BytesIO()
        Image.fromarray(photo.pixels).save(png, format="PNG")
        scale = PHOTO_CELLS * GRID_PX / photo.pixels.shape[1]
        r0, c0 = L.pre_photo
        self.ws.insert_image(r0, c0, "crop.png", {
            "image_data": png, "x_scale": scale, "y_scale": PHOTO_CELLS * GRID_PX / photo.pixels.shape[0],
            "object_position": 2, "description": f"the {size} x {size} crop the network sees"})


__all__ = ["PreprocessSheet", "SLICE", "PHOTO_CELLS"]
