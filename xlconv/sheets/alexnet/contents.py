"""The Contents sheet: the first tab, one line per sheet with a link, what it shows in the lecture's words, and
how to check it."""

from __future__ import annotations

from xlconv.book import Book
from xlconv.cells import a1
from xlconv.rowstream import Deferred
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import conv1_module, heading, pool1_module, square, weights_line
from xlconv.sheets.alexnet.layout import (SHEET_CONTENTS, SHEET_CONV, SHEET_FILTERS, SHEET_PRE, SHEET_PRED,
                                          SHEET_SHAPES, SHEET_TRACE, Layout)
from xlconv.torchnet import Run

WIDTHS = (2, 16, 70, 62)  # columns A (margin), B (sheet), C (what it shows), D (how to check it)


def link(sheet: str, cell: str = "A1") -> str:
    """An internal hyperlink to a cell of a sheet of this workbook."""
    return f"internal:'{sheet}'!{cell}"


class ContentsSheet:
    """One line per sheet: a link, what it shows in the lecture's words, and how to check it."""

    def __init__(self, book: Book, data: Run, layout: Layout, file_name: str):
        self.book, self.data, self.L, self.file_name = book, data, layout, file_name
        self.ws = book.wb.add_worksheet(SHEET_CONTENTS)

    def lines(self) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
        """(sheet, what it shows, how to check it, [(extra link text, cell)]) per sheet."""
        data, L = self.data, self.L
        geo = data.geometry
        k, n_in, size = geo.kernel, geo.in_channels, geo.size
        n = len(data.channels)
        verify = f"xlconv verify {self.file_name}"
        conv = L.sections["conv"]
        relu = L.sections["relu"]
        pool = L.sections["pool"]
        return [
            (SHEET_PRE,
             f"Image pre-processing: width and height by Resize({size}) and CenterCrop({size}); pixel values "
             f"standardised to [0, 1] by ToTensor() and normalised by Normalize(mean, std). All {n_in} x {size} x "
             f"{size} pixels of the crop are typed numbers you can change, and the mean and std too: conv1's input "
             "and every map follow.",
             f"Change a pixel, the mean or the std and watch the conv1 maps change. {verify} recomputes "
             "(pixel/255 - mean)/std for every input cell with NumPy and torch.", []),
            (SHEET_FILTERS,
             f"The learned filters' weights: conv1.weight, {geo.filters} filters, depth = {n_in} (RGB), size = {k} "
             f"by {k}. \"Filter has depth\": the input image has {n_in} channels, so each filter has {n_in} "
             "channels too. Drawn as the lecture draws them (w*0.5+0.5), and each by its own min-max.",
             "The numbers are model.features[0].weight and .bias, the cells every conv1 formula reads; verify "
             "uses them as they are in the workbook (edit one and the maps follow).",
             [("the numbers", a1(L.num_title, 1))]),
            (SHEET_CONV,
             f"Feature maps: \"each filter searches a small region and summarizes how the pattern appears in "
             f"different regions in a feature map\". conv1_out = conv1(imageTensor) = {conv1_module(geo)}: "
             f"{geo.filters} maps of {square(geo.conv)} ({n} on this sheet), then ReLU and {pool1_module(geo)} "
             f"(features[1:3]) to {square(geo.pooled)}. Every cell is a live formula.",
             f"{verify} recalculates the workbook in LibreOffice and compares every conv1, ReLU and pool cell with "
             "NumPy and with torch (F.conv2d, F.relu, F.max_pool2d).",
             [("input", a1(L.in_label[0], 1)), ("conv1 maps", a1(conv[0], 1)), ("ReLU maps", a1(relu[0], 1)),
              ("max-pool maps", a1(pool[0], 1))]),
            (SHEET_TRACE,
             f"\"Use Excel to verify!\" One conv1 output cell taken apart: its {n_in} x {k} x {k} window of the "
             "input times the filter, tap by tap, summed per channel, plus the bias. The conv1 sheet lights the "
             "window, the cell and the max-pool cells it feeds in orange.",
             "Type a channel, a row and a column; the check cell says \"= equal\" when the total equals the conv1 "
             "map's cell.", []),
            (SHEET_SHAPES,
             f"Feature map's width and height: H_out = (H_in + 2 x padding - kernel size)/stride + 1, "
             f"({size} + 2x{geo.padding} - {k})/{geo.stride} + 1, rounded down, for every layer, down to 256 x 6 x 6 "
             "= 9216 at the flatten; and every layer's parameters.",
             "The column \"sheet = torch?\" compares each live size with the shape torch produced (forward hooks); "
             "verify recomputes every size with NumPy and torch.", []),
            (SHEET_PRED,
             "What the whole network predicts for the photo: the five most probable of the 1000 ImageNet classes.",
             "Values computed by torch when the workbook was built (conv2 to the classifier are not formulas).", []),
        ]

    def build(self) -> None:
        b, ws, data = self.book, self.ws, self.data
        d = Deferred(ws)
        for c, w in enumerate(WIDTHS):
            ws.set_column(c, c, w)
        d.write_string(0, 1, heading(data, "contents of this workbook"), b.fmt(**style.TITLE))
        d.set_row(0, 22)
        intro = (f"This workbook ({self.file_name}) follows the lecture's AlexNet notebook from the photo to conv1 "
                 "and its max pooling, with live formulas: change a typed number and everything after it "
                 "recalculates. " + weights_line(data))
        d.merge_range(1, 1, 1, 3, intro, b.fmt(**style.NOTE))
        d.set_row(1, 15 * 3)
        r = 2
        if data.weights.untrained:
            d.merge_range(r, 1, r, 3, "UNTRAINED means the weights are random numbers (torch.manual_seed("
                          f"{data.seed})), not the pretrained ImageNet weights: every formula is still exactly conv1 "
                          "of this photo, but the filters are noise, the maps show no learned edges or colours, and "
                          "the predictions mean nothing. Build it where the pretrained file can be read or downloaded "
                          "for the real network.", b.fmt(**style.WARN, text_wrap=True, valign="top"))
            d.set_row(r, 16 * 4)
            r += 1
        r += 1
        head = b.fmt(bold=True, bottom=2, font_size=11)
        for c, text in enumerate(("sheet", "what it shows", "how to check it")):
            d.write_string(r, 1 + c, text, head)
        header_row = r
        linkf = b.fmt(font_color="#0563C1", underline=1, bold=True, font_size=12, valign="top")
        sub = b.fmt(font_color="#0563C1", underline=1, font_size=9, valign="top")
        wrap = b.fmt(text_wrap=True, valign="top", font_size=10)
        for sheet, what, check, extra in self.lines():
            r += 1
            d.write(r, 1, link(sheet), linkf, sheet, f"go to the {sheet} sheet")
            d.write_string(r, 2, what, wrap)
            d.write_string(r, 3, check, wrap)
            d.set_row(r, 13.5 * max(2, -(-len(what) // 80), -(-len(check) // 68)) + 6)
            for text, cell in extra:
                r += 1
                d.write(r, 1, link(sheet, cell), sub, f"  {sheet}: {text}", f"go to {text} on the {sheet} sheet")
                d.set_row(r, 14)
        r += 2
        d.merge_range(r, 1, r, 3, f"Check the whole workbook from a terminal: xlconv verify {self.file_name} "
                                  "(LibreOffice recalculates it, then NumPy and torch recompute every recorded "
                                  "block and every cell is compared).", b.fmt(**style.NOTE, bold=True))
        d.set_row(r, 15 * 2)
        d.flush()
        ws.set_zoom(style.fit_zoom((sum(style.column_px(w) for w in WIDTHS), (r + 1) * 40)))
        style.page_setup(ws, landscape=True, repeat_rows=(header_row, header_row))
        ws.fit_to_pages(1, 1)  # one page: the table is short
        ws.activate()


__all__ = ["ContentsSheet", "link"]
