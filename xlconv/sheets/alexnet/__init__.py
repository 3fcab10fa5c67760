"""The AlexNet conv1 workbook: Contents, Preprocess, Filters, conv1, Trace, Shapes and Predictions sheets.

One module per sheet; ``layout`` decides where the blocks are (from conv1's geometry as torchvision's model
defines it), ``common`` holds what several sheets say alike. The workbook is written with XlsxWriter in
constant_memory mode, each sheet strictly row by row; the big sheets (Preprocess's 150,528 pixels, Filters and
conv1, about 900,000 cells in all) are streamed by :class:`xlconv.rowstream.RowStream`. conv1's input cells are
live formulas of Preprocess's pixels, mean and std, so the workbook is live from the photo to the pooled maps.
Every formula comes from :mod:`xlconv.formulas` and carries its value from torch as the cached result, so
viewers that do not calculate still show numbers; LibreOffice, Excel and Gnumeric recompute them.
"""

from __future__ import annotations

from pathlib import Path

from xlconv import progress
from xlconv.book import Book
from xlconv.errors import WeightsError
from xlconv.sheets.alexnet.contents import ContentsSheet
from xlconv.sheets.alexnet.conv1 import ConvSheet
from xlconv.sheets.alexnet.filters import FiltersSheet, filter_pictures
from xlconv.sheets.alexnet.layout import CHANNEL_NAMES, Layout
from xlconv.sheets.alexnet.predictions import PredictionsSheet
from xlconv.sheets.alexnet.preprocess import PreprocessSheet
from xlconv.sheets.alexnet.shapes import ShapesSheet
from xlconv.sheets.alexnet.trace import TraceSheet
from xlconv.torchnet import Run

TOLERANCE = 1e-4


def write(data: Run, path: str | Path) -> Path:
    """Write the whole workbook for data to path (atomically)."""
    if data.geometry.in_channels != len(CHANNEL_NAMES):
        raise WeightsError(f"conv1 reads {data.geometry.in_channels} channels; the workbook draws an RGB photo")
    title = f"AlexNet conv1 walk-through ({data.weights.label})"
    n = len(data.channels)
    # Steps: six small sheets, conv1's three sections channel by channel, and saving the file.
    with progress.bar(6 + 3 * n + 1, "alexnet: writing", unit="step") as bar:
        with Book(path, title, constant_memory=True, tolerance=TOLERANCE) as book:
            layout = Layout(data)
            for name, sheet in (("Contents", ContentsSheet(book, data, layout, Path(path).name)),
                                ("Preprocess", PreprocessSheet(book, data, layout)),
                                ("Filters", FiltersSheet(book, data, layout))):
                bar.describe(f"alexnet: {name}")
                sheet.build()
                bar.update()
            ConvSheet(book, data, layout, bar).build()
            for name, last in (("Trace", TraceSheet(book, data, layout)), ("Shapes", ShapesSheet(book, data)),
                               ("Predictions", PredictionsSheet(book, data))):
                bar.describe(f"alexnet: {name}")
                last.build()
                bar.update()
            bar.describe(f"alexnet: saving {Path(path).name}")
        bar.update()
    return Path(path)


__all__ = ["write", "Layout", "filter_pictures", "TOLERANCE"]
