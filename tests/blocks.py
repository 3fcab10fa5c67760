"""Test helper: read a recorded block's values out of a (recalculated) openpyxl workbook."""

import json

import numpy as np

from xlconv.record import FIRST_ROW as RECORD_FIRST_ROW
from xlconv.cells import parse_range


def records(wb):
    """{name: (sheet, [Grid, ...], info)} from the hidden _xlconv sheet."""
    out = {}
    for row in wb["_xlconv"].iter_rows(min_row=RECORD_FIRST_ROW + 1, values_only=True):
        if row[0]:
            out[row[0]] = (row[2], [parse_range(r) for r in json.loads(row[3])], json.loads(row[4]), row[1])
    return out


def block(wb, name):
    """(C, H, W) values of a recorded block, as the workbook holds them."""
    sheet, grids, _, _ = records(wb)[name]
    ws = wb[sheet]
    return np.array([[[ws.cell(g.top + i + 1, g.left + j + 1).value for j in range(g.width)]
                      for i in range(g.height)] for g in grids], dtype=float)


def cell_of(wb, name, k, i, j):
    """The openpyxl cell of block name at channel k, row i, column j."""
    sheet, grids, _, _ = records(wb)[name]
    g = grids[k]
    return wb[sheet].cell(g.top + i + 1, g.left + j + 1)
