"""Where every block of the AlexNet workbook is, decided up front so that sheets can refer to each other.

The sizes come from conv1's geometry as torchvision's model defines it (``Run.geometry``, read from
``model.features[0]`` and ``[2]``), not from numbers restated here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xlconv.cells import Grid
from xlconv.torchnet import Run

SHEET_PRE, SHEET_FILTERS, SHEET_CONV, SHEET_TRACE, SHEET_SHAPES, SHEET_PRED = (
    "Preprocess", "Filters", "conv1", "Trace", "Shapes", "Predictions")
CHANNEL_NAMES = ("R", "G", "B")
MAPS_PER_BAND = 8
MAP_GAP = 2  # columns between maps


@dataclass
class Layout:
    """Rows and columns of the Filters and conv1 blocks (the Trace and Preprocess sheets read them)."""

    data: Run

    def __post_init__(self) -> None:
        geo = self.geo = self.data.geometry
        k = geo.kernel
        # Filters: pictures first, then one band of numbers per filter.
        self.f_colw = 4.6
        self.pic_top = 6
        self.pic_band = k + 2  # label row, kernel rows, gap
        self.pic_cols = MAPS_PER_BAND * (k + 1)
        self.num_top = self.pic_top + MAPS_PER_BAND * self.pic_band + 3  # first filter's label row
        self.num_band = k + 2
        self.ch_left = [1 + c * (k + 1) for c in range(geo.in_channels)]  # R, G, B grids of each filter
        self.bias_col = 1 + geo.in_channels * (k + 1)
        self.num_pic_left = (self.bias_col + 2, self.bias_col + 2 + k + 1)

        # conv1: the padded input, then conv, ReLU and pool maps in bands of eight.
        self.in_label = 5
        self.in_top = 7
        self.in_left = [1 + c * (geo.padded + MAP_GAP) for c in range(geo.in_channels)]
        self.n_maps = len(self.data.channels)
        self.bands = math.ceil(self.n_maps / MAPS_PER_BAND)
        self.map_stride = geo.conv + MAP_GAP
        row = self.in_top + geo.padded + 2
        self.sections: dict[str, tuple[int, int, int]] = {}
        for key, size in (("conv", geo.conv), ("relu", geo.conv), ("pool", geo.pooled)):
            # section title row, then per band: a label row, the maps, a gap row
            self.sections[key] = (row, row + 2, size + 2)  # (title row, first band's label row, band stride)
            row = row + 2 + self.bands * (size + 2) + 1
        self.conv_rows = row

    def map_size(self, key: str) -> int:
        """Height and width of the maps of section key."""
        return self.geo.pooled if key == "pool" else self.geo.conv

    def filter_grid(self, k: int, c: int) -> Grid:
        return Grid(self.num_top + k * self.num_band + 1, self.ch_left[c], self.geo.kernel, self.geo.kernel)

    def bias_cell(self, k: int) -> Grid:
        return Grid(self.num_top + k * self.num_band + 1, self.bias_col, 1, 1)

    def weights_area(self) -> Grid:
        """From filter 0's first R weight to the last filter's bias row, for INDEX in the trace."""
        top = self.num_top + 1
        return Grid(top, self.ch_left[0], (len(self.data.weight) - 1) * self.num_band + self.geo.kernel,
                    self.bias_col - 1 + 1)

    def input_grid(self, c: int) -> Grid:
        return Grid(self.in_top, self.in_left[c], self.geo.padded, self.geo.padded)

    def map_grid(self, key: str, pos: int) -> Grid:
        """The pos-th selected channel's map in section key."""
        size = self.map_size(key)
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


__all__ = ["Layout", "SHEET_PRE", "SHEET_FILTERS", "SHEET_CONV", "SHEET_TRACE", "SHEET_SHAPES", "SHEET_PRED",
           "CHANNEL_NAMES", "MAPS_PER_BAND", "MAP_GAP"]
