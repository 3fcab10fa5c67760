"""What several AlexNet sheets say or compute alike: titles, the weights line, number text, the padded input,
cell notes and print plans."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from xlconv.sheets import style
from xlconv.torchnet import CHECKPOINT, Geometry, Run


def heading(data: Run, what: str) -> str:
    """A sheet's title line; every title of an untrained network says so first."""
    prefix = "UNTRAINED AlexNet (random weights, seed %d): " % data.seed if data.weights.untrained else "AlexNet: "
    return prefix + what


def weights_line(data: Run) -> str:
    """Where the weights came from, without any path of the machine that built the workbook."""
    w = data.weights
    where = {"pretrained": f" (torchvision's file {CHECKPOINT}, from the torch cache or downloaded).",
             "file": "."}.get(w.kind, ".")
    return f"Weights: {w.label}" + where + (
        " These are random numbers, not learned filters: the pictures show noise and the predictions mean nothing."
        if w.untrained else "")


def conv1_module(geo: Geometry) -> str:
    """conv1 as print(model) shows it."""
    k, s, p = geo.kernel, geo.stride, geo.padding
    return (f"Conv2d({geo.in_channels}, {geo.filters}, kernel_size=({k}, {k}), stride=({s}, {s}), "
            f"padding=({p}, {p}))")


def pool1_module(geo: Geometry) -> str:
    """The first max pooling as the lecture writes it."""
    return f"MaxPool2d(kernel_size={geo.pool_kernel}, stride={geo.pool_stride})"


def square(n: int) -> str:
    """ "55 x 55"."""
    return f"{n} x {n}"


def decimals(values: np.ndarray) -> str:
    """A number format that fits about six characters for these values."""
    m = float(np.max(np.abs(values))) if values.size else 0.0
    return "0.00" if m < 10 else "0.0" if m < 100 else "0"


def fmt9(values: np.ndarray) -> list[str]:
    """Shortest-safe text of float32 numbers: 9 significant digits give back the same float32."""
    return [f"{v:.9g}" for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def fmt7(values: np.ndarray) -> list[str]:
    """Cached results: 7 significant digits, float32's precision (the engine recomputes them anyway)."""
    return [f"{v:.7g}" for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def typed_number(v: float) -> float:
    """A number as a spreadsheet reads it back after XlsxWriter typed it (16 significant digits)."""
    return float(f"{float(v):.16G}")


def normalized_input(data: Run) -> np.ndarray:
    """conv1's input cells as every engine computes them: (pixel/255 - mean)/std in float64 from the typed pixels,
    mean and std, (C, size, size). As their cached values, verify can work out conv1 from the original workbook
    while the engine recalculates: they are the values the engine's copy holds."""
    raw = data.photo.pixels.transpose(2, 0, 1).astype(np.float64)
    mean = np.array([typed_number(v) for v in data.photo.mean])[:, None, None]
    std = np.array([typed_number(v) for v in data.photo.std])[:, None, None]
    return (raw / 255 - mean) / std


def padded_input(data: Run) -> np.ndarray:
    """conv1's input cells with their ring of zeros, the values they hold (normalized_input): (C, padded, padded)."""
    geo = data.geometry
    p = geo.padding
    out = np.zeros((geo.in_channels, geo.padded, geo.padded))
    out[:, p:p + geo.size, p:p + geo.size] = normalized_input(data)
    return out


# A4 minus style.page_setup's margins (0.4 in left and right, 0.5 in top and bottom), in points: (width, height).
A4_POINTS = {True: ((11.69 - 0.8) * 72, (8.27 - 1.0) * 72), False: ((8.27 - 0.8) * 72, (11.69 - 1.0) * 72)}


# LibreOffice draws a column of w characters with Carlito's digit width (7.4 pixels at 11 points), Excel with 7
LIBREOFFICE_WIDER = 1.10  # and a margin for its page set-up


def note(ws: Any, row: int, col: int, text: str) -> None:
    """A cell note (style.note), also on a row a constant_memory sheet has already written.

    XlsxWriter keeps notes apart from the rows and writes them at close, but in constant_memory mode it refuses
    one for a row it has passed, and a note stored for a row that RowStream streams later makes XlsxWriter write
    that row a second time. So: notes on streamed rows are added after the rows are streamed (never on the last
    row streamed), and this lets them through. An error, not a silent loss, when a note is still refused.
    """
    passed = bool(getattr(ws, "constant_memory", False)) and row < ws.previous_row
    if passed:
        ws.constant_memory = False  # only the dimension check reads it here
    try:
        style.note(ws, row, col, text)
    finally:
        if passed:
            ws.constant_memory = True
    if col not in ws.comments.get(row, {}):
        raise RuntimeError(f"the note at row {row + 1}, column {col + 1} was refused")


def print_plan(row_points: Sequence[float], starts: Sequence[int], width_points: float,
               landscape: bool = True) -> tuple[int, list[int]]:
    """A fixed print scale and page breaks for a sheet of bands that must not be split.

    row_points: every row's height; starts: the first row of each band (a grid, a band of maps, a panel), in
    order; width_points: the printed columns' width as Excel draws them (LibreOffice's are a little wider, which
    the plan allows for). The scale (percent, 10 to 100) fits the width to the page
    and the tallest band to one page; the breaks go before each band that would not fit on the current page.
    A fixed scale, not Excel's fit-to-width, because fit-to-width makes Excel ignore manual page breaks.
    """
    page_w, page_h = A4_POINTS[landscape]
    width_points *= LIBREOFFICE_WIDER
    bounds = list(starts) + [len(row_points)]
    heights = [sum(row_points[a:b]) for a, b in zip(bounds, bounds[1:])]
    head = sum(row_points[:bounds[0]]) if bounds else 0.0
    tallest = max([head + (heights[0] if heights else 0.0)] + heights[1:])
    scale = min(1.0, page_w / max(width_points, 1.0), page_h / max(tallest, 1.0))
    pct = max(10, min(100, int(math.floor(scale * 100))))
    room = page_h / (pct / 100)
    breaks: list[int] = []
    used = head
    for a, h in zip(bounds, heights):
        if used > 0 and used + h > room and a > 0:
            breaks.append(a)
            used = h
        else:
            used += h
    return pct, breaks


def row_height(d: Any, book: Any, row: int, points: float) -> None:
    """Set a row's height through a Deferred, also for a row without cells: a constant_memory sheet writes a
    row's height only with the row's cells, so an empty row gets a blank, unformatted cell in column A."""
    d.set_row(row, points)
    d.write_blank(row, 0, None, book.fmt())


def scaled_page_setup(ws: Any, landscape: bool, plan: tuple[int, list[int]],
                      repeat_rows: tuple[int, int] | None = None) -> None:
    """style.page_setup with a fixed print scale and the page breaks of a print_plan."""
    pct, breaks = plan
    style.page_setup(ws, landscape=landscape, breaks=breaks, repeat_rows=repeat_rows, fit_width=False)
    ws.set_print_scale(pct)


__all__ = ["heading", "weights_line", "conv1_module", "pool1_module", "square", "decimals", "fmt9", "fmt7",
           "padded_input", "normalized_input", "typed_number", "note", "print_plan", "scaled_page_setup",
           "row_height"]
