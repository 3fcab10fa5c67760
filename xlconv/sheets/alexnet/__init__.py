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
    with Book(path, title, constant_memory=True, tolerance=TOLERANCE) as book:
        layout = Layout(data)
        ContentsSheet(book, data, layout, Path(path).name).build()
        PreprocessSheet(book, data, layout).build()
        FiltersSheet(book, data, layout).build()
        ConvSheet(book, data, layout).build()
        TraceSheet(book, data, layout).build()
        ShapesSheet(book, data).build()
        PredictionsSheet(book, data).build()
    return Path(path)


__all__ = ["write", "Layout", "filter_pictures", "TOLERANCE"]
