"""The Predictions sheet: the top-5 ImageNet classes by torch (values, not formulas)."""

from __future__ import annotations

from xlconv.book import Book
from xlconv.rowstream import Deferred
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import heading, weights_line
from xlconv.sheets.alexnet.layout import SHEET_PRED
from xlconv.torchnet import Run


class PredictionsSheet:
    """The top-5 ImageNet classes by torch (values)."""

    def __init__(self, book: Book, data: Run):
        self.book, self.data = book, data
        self.ws = book.wb.add_worksheet(SHEET_PRED)

    def build(self) -> None:
        b, ws, data = self.book, self.ws, self.data
        d = Deferred(ws)
        ws.set_column(0, 0, 2)
        ws.set_column(1, 2, 10)
        ws.set_column(3, 3, 36)
        ws.set_column(4, 4, 14)
        # Portrait and as wide as the table: the title and warning wrap inside it.
        d.merge_range(0, 1, 0, 4, heading(data, "what the whole network predicts for the photo"),
                      b.fmt(**style.TITLE, text_wrap=True, valign="top"))
        d.set_row(0, 40 if data.weights.untrained else 22)
        if data.weights.untrained:
            d.merge_range(1, 1, 1, 4, "UNTRAINED network: random weights, so these classes are meaningless (every "
                                      "probability is about 1/1000).", b.fmt(**style.WARN, text_wrap=True,
                                                                             valign="top"))
            d.set_row(1, 34)
        note = ("Computed by torch when the workbook was built: model(x) on the pre-processed photo, softmax over "
                "the 1000 scores, the five largest. These are values, not formulas: conv2 to fc8 take about 700 "
                "million multiplications, more than a spreadsheet should hold. Class names from "
                "AlexNet_Weights.IMAGENET1K_V1.meta['categories']. " + weights_line(data))
        d.merge_range(2, 1, 2, 4, note, b.fmt(**style.NOTE))
        d.set_row(2, 15 * 7)
        head = b.fmt(bold=True, bottom=2, align="center")
        for c, text in enumerate(("rank", "class index", "class name", "probability (torch)")):
            d.write_string(4, 1 + c, text, head)
        for n, (idx, name, prob) in enumerate(data.top5):
            r = 5 + n
            d.write_number(r, 1, n + 1, b.fmt(align="center"))
            d.write_number(r, 2, idx, b.fmt(align="center"))
            d.write_string(r, 3, name, b.fmt())
            d.write_number(r, 4, prob, style.cell(b, "output", "0.00%"))
        d.flush()
        ws.conditional_format(5, 4, 9, 4, dict(type="data_bar", bar_color="#63BE7B", min_type="num", min_value=0,
                                               max_type="num", max_value=1))
        ws.set_zoom(100)
        style.page_setup(ws, landscape=False)
        ws.print_area(0, 0, 9, 4)


__all__ = ["PredictionsSheet"]
