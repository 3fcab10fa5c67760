"""The shipped worksheets reproduce the lecture's numbers after a real engine recalculates them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from blocks import block
from conftest import recalculated_values

import xlconv

LEE_IMAGE = [[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 1, 0], [0, 0, 1, 1, 0, 0],
             [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 1, 0]]
FILTER1 = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1]]
FILTER2 = [[-1, 1, -1], [-1, 1, -1], [-1, 1, -1]]
K = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]

# (worksheet, block, channel, the numbers as printed in the lecture)
LECTURE = [
    ("lee-6x6", "stride1", 0, [[3, -1, -3, -1], [-3, 1, 0, -3], [-3, -3, 0, 1], [3, -2, -2, -1]]),
    ("lee-6x6", "stride2", 0, [[3, -3], [-3, 0]]),
    ("lee-6x6", "pooled", 0, [[3, 0], [3, 1]]),
    ("lee-6x6", "pooled", 1, [[-1, 1], [0, 3]]),
    ("velickovic-7x7", "IK", 0, [[1, 4, 3, 4, 1], [1, 2, 4, 3, 3], [1, 2, 3, 4, 1], [1, 3, 3, 1, 1], [3, 3, 1, 1, 0]]),
    ("convolved-feature-5x5", "feature", 0, [[4, 3, 4], [2, 4, 3], [2, 3, 4]]),
]


@pytest.fixture(scope="module", params=["libreoffice", "gnumeric"])
def engine_books(request, shipped):
    """The shipped workbooks as each engine recalculated them: {name: openpyxl workbook}."""
    engine = request.param
    if engine == "gnumeric":
        request.applymarker(pytest.mark.gnumeric)
    names = list(shipped)
    return dict(zip(names, recalculated_values([shipped[n] for n in names], engine)))


@pytest.mark.libreoffice
@pytest.mark.parametrize("sheet, name, channel, expected", LECTURE)
def test_lecture_numbers(engine_books, sheet, name, channel, expected):
    np.testing.assert_array_equal(block(engine_books[sheet], name)[channel], expected)


@pytest.mark.libreoffice
def test_lecture_numbers_match_torch_too():
    """The lecture's maps are what torch computes from the lecture's inputs (the oracle agrees with the slide)."""
    x = torch.tensor(LEE_IMAGE, dtype=torch.float64)[None, None]
    w = torch.tensor([FILTER1, FILTER2], dtype=torch.float64)[:, None]
    assert F.conv2d(x, w).numpy()[0, 0].tolist() == LECTURE[0][3]
    assert F.conv2d(x, w, stride=2).numpy()[0, 0].tolist() == LECTURE[1][3]
    assert F.max_pool2d(F.conv2d(x, w), 2).numpy()[0].tolist() == [LECTURE[2][3], LECTURE[3][3]]


@pytest.mark.libreoffice
@pytest.mark.parametrize("engine", ["libreoffice", pytest.param("gnumeric", marks=pytest.mark.gnumeric)])
def test_every_shipped_cell_agrees_with_numpy_and_torch(shipped, engine):
    reports = xlconv.verify(list(shipped.values()), engine=engine)
    for r in reports:
        assert r.ok, "\n".join(r.lines())
        assert r.cells > 0
    cells = {r.path.stem: r.cells for r in reports}
    assert cells["edge-laplacian"] > 32 * 32 * 2  # padded input and the map, at least


@pytest.mark.libreoffice
def test_output_size_sheet_gives_the_lectures_numbers(engine_books):
    wb = engine_books["output-size"]
    outs = [int(block(wb, f"size_{n}")[-1, 0, 0]) for n in range(9)]
    assert outs == [55, 27, 27, 13, 13, 13, 13, 6, 13]
    ws = wb["Output size"]
    lecture = [c.value for c in next(ws.iter_cols(min_col=10, max_col=10, min_row=6, max_row=6))]
    assert lecture == [55.25]


@pytest.mark.libreoffice
def test_edge_map_is_the_laplacian_of_the_photo(engine_books):
    wb = engine_books["edge-laplacian"]
    photo = block(wb, "photo")
    assert photo.shape == (1, 32, 32) and photo.min() >= 0 and photo.max() <= 255 and photo.std() > 20
    lap = torch.tensor([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=torch.float64)[None, None]
    expected = F.conv2d(torch.tensor(photo)[None], lap, padding=1)[0].numpy()
    np.testing.assert_allclose(block(wb, "edges"), expected)
    padded = block(wb, "edges_padded")
    assert padded.shape == (1, 34, 34)
    assert not padded[0, 0].any() and not padded[0, -1].any() and not padded[0, :, 0].any()


@pytest.mark.libreoffice
def test_trace_panel_equals_its_output_cell(engine_books):
    wb = engine_books["lee-6x6"]
    trace = block(wb, "stride1_trace").ravel()  # filter, row, column, total, output
    assert trace.tolist() == [1, 1, 1, 3, 3]
