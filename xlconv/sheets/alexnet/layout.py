"""Where every block of the AlexNet workbook is, decided up front so that sheets can refer to each other.

The sizes come from conv1's geometry as torchvision's model defines it (``Run.geometry``, read from
``model.features[0]`` and ``[2]``), not from numbers restated here.

The big grids (the photo's pixels on Preprocess, conv1's input and maps) are square cells of GRID_PX pixels,
stacked in one strip of columns: a page of paper (printed at about 10%) or a laptop screen (at the opening
zoom) holds whole grids and whole bands of MAPS_PER_BAND maps, never half of one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xlconv.cells import Grid
from xlconv.torchnet import Run

SHEET_CONTENTS, SHEET_PRE, SHEET_FILTERS, SHEET_CONV, SHEET_TRACE, SHEET_SHAPES, SHEET_PRED = (
    "Contents", "Preprocess", "Filters", "conv1", "Trace", "Shapes", "Predictions")
SHEETS = (SHEET_CONTENTS, SHEET_PRE, SHEET_FILTERS, SHEET_CONV, SHEET_TRACE, SHEET_SHAPES, SHEET_PRED)
CHANNEL_NAMES = ("R", "G", "B")
MAPS_PER_BAND = 4  # conv1 maps side by side: a band is as wide as one padded input grid
MAP_GAP = 2  # columns between maps
GRID_WIDTH = 3.3  # characters: 28 pixels, the square cell of the pixel, input and map grids
GRID_PX = 28
FILTER_WIDTH = 3.6  # characters: 30 pixels, the Filters sheet's square cells ("-0.123" at 7 points)
FILTER_PX = 30
# The trace's picks and what follows from them, as conv1 copies them: the map number, the output row and column,
# and the first and last row and column of the max-pool cells that the output cell feeds.
MIRRORED = ("map", "row", "column", "first_row", "last_row", "first_col", "last_col")
LABEL_POINTS = 66.0  # conv1's map labels and section titles: big enough to read at the opening zoom and in print


@dataclass
class Layout:
    """Rows and columns of the blocks that other sheets refer to (formulas, links, highlights)."""

    data: Run

    def __post_init__(self) -> None:
        geo = self.geo = self.data.geometry
        k = geo.kernel
        n_in = geo.in_channels
        # Preprocess: a header with the photo, then the raw pixels of each channel, stacked.
        self.pre_photo = (4, 1)  # the PNG's top-left cell
        self.pre_table_left = 14  # the table beside the photo: labels, then values (mean and std 3 cells each)
        self.pre_param_row = 12  # the mean's row; the std's is the next
        self.pre_param_left = self.pre_table_left + 9
        self.pre_slice = 17  # the title row of the slice of numbers
        self.pre_grid_title = 38
        self.pre_top = [self.pre_grid_title + 2 + c * (geo.size + 2) for c in range(n_in)]
        self.pre_left = 1

        # Filters: the pictures (each mapping a block, PICS_PER_ROW a row), then one band of numbers per filter.
        self.ch_left = [1 + c * (k + 1) for c in range(n_in)]  # R, G, B grids of each filter
        self.bias_col = 1 + n_in * (k + 1)
        self.num_pic_left = (self.bias_col + 2, self.bias_col + 2 + k + 1)
        self.f_last_col = self.num_pic_left[1] + k - 1
        self.pics_per_row = max(1, (self.f_last_col + 1) // (k + 1))  # as wide as a band of numbers
        self.pic_band = k + 2  # label row, kernel rows, gap
        n_filters = len(self.data.weight)
        pic_rows = math.ceil(n_filters / self.pics_per_row)
        self.pic_title: list[int] = []
        self.pic_top: list[int] = []
        row = 5
        for _half in range(2):
            self.pic_title.append(row)
            self.pic_top.append(row + 1)
            row += 1 + pic_rows * self.pic_band + 1
        self.num_title = row
        self.num_top = row + 2  # first filter's label row
        self.num_band = k + 2

        # conv1: a header, the padded input (R, G, B stacked), then conv, ReLU and pool maps in bands.
        self.conv_links = 3  # the row of links to the blocks
        self.conv_mirror = 4  # the row of the trace's picks
        self.in_label = [6 + c * (geo.padded + 2) for c in range(n_in)]
        self.in_top = [r + 1 for r in self.in_label]
        self.in_left = 1
        self.n_maps = len(self.data.channels)
        self.bands = math.ceil(self.n_maps / MAPS_PER_BAND)
        self.map_stride = geo.conv + MAP_GAP
        row = self.in_label[-1] + 1 + geo.padded + 1
        self.sections: dict[str, tuple[int, int, int]] = {}
        for key, size in (("conv", geo.conv), ("relu", geo.conv), ("pool", geo.pooled)):
            # section title row, then per band: a label row, the maps, a gap row
            self.sections[key] = (row, row + 1, size + 2)  # (title row, first band's label row, band stride)
            row = row + 1 + self.bands * (size + 2)
        self.conv_rows = row
        self.conv_last_col = max(self.in_left + geo.padded - 1, self.maps_area("conv").right)
        # conv1's copies of the trace's picks (conditional formats read cells of their own sheet only).
        self.mirror = {key: (self.conv_mirror, 1 + 12 * n + 9) for n, key in enumerate(MIRRORED)}

        # Trace: the picks, then per input channel the window, the filter and the products.
        self.trace_pick = {key: (3, 4 + 6 * n) for n, key in enumerate(("channel", "row", "column"))}
        self.trace_pos = (4, 4)  # the map number of the picked channel on conv1 (0: not built)
        self.trace_feeds = {key: (5, 4 + 6 * n) for n, key in enumerate(MIRRORED[3:])}
        self.trace_first = 8  # the first channel block's title row
        self.trace_block = k + 3  # a channel block: title, panel headings, k rows, a gap

    def map_size(self, key: str) -> int:
        """Height and width of the maps of section key."""
        return self.geo.pooled if key == "pool" else self.geo.conv

    def raw_grid(self, c: int) -> Grid:
        """Channel c's 0-255 pixels on Preprocess."""
        return Grid(self.pre_top[c], self.pre_left, self.geo.size, self.geo.size)

    def pre_param(self, which: str, c: int) -> Grid:
        """The mean's or std's cell of channel c on Preprocess (merged over 3 cells)."""
        return Grid(self.pre_param_row + (which == "std"), self.pre_param_left + 3 * c, 1, 1)

    def pic_cell(self, half: int, k: int) -> tuple[int, int]:
        """Top-left (row, column) of filter k's picture in the first (lecture) or second (min-max) block."""
        band, slot = divmod(k, self.pics_per_row)
        return self.pic_top[half] + band * self.pic_band + 1, 1 + slot * (self.geo.kernel + 1)

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
        """Channel c of conv1's padded input."""
        return Grid(self.in_top[c], self.in_left, self.geo.padded, self.geo.padded)

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


__all__ = ["Layout", "SHEETS", "SHEET_CONTENTS", "SHEET_PRE", "SHEET_FILTERS", "SHEET_CONV", "SHEET_TRACE",
           "SHEET_SHAPES", "SHEET_PRED", "CHANNEL_NAMES", "MAPS_PER_BAND", "MAP_GAP", "GRID_WIDTH", "GRID_PX",
           "FILTER_WIDTH", "FILTER_PX", "LABEL_POINTS", "MIRRORED"]
