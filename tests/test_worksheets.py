"""The shipped worksheets reproduce the lecture's numbers after a real engine recalculates them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from blocks import block, records
from openpyxl import load_workbook
from conftest import recalculated_values

import xlconv

LEE_IMAGE = [[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 1, 0], [0, 0, 1, 1, 0, 0],
             [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 1, 0]]
FILTER1 = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1]]
FILTER2 = [[-1, 1, -1], [-1, 1, -1], [-1, 1, -1]]
K = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
I7 = [[0, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0, 0],
      [0, 0, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]]
INPUT5 = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
CONVOLVED_FEATURE = [[4, 3, 4], [2, 4, 3], [2, 3, 4]]


def torch_conv(x, w, **kw):
    """F.conv2d of one 2-D image with one 2-D filter, as a 2-D array."""
    t = torch.tensor(x, dtype=torch.float64)[None, None]
    return F.conv2d(t, torch.tensor(w, dtype=torch.float64)[None, None], **kw)[0, 0].numpy()


# The specs that draw dilation and padding out: (worksheet, block, torch's map from the lecture's numbers)
DRAWN = [
    ("dilation-5x5", "plain", torch_conv(I7, FILTER1)),
    ("dilation-5x5", "dilated", torch_conv(I7, FILTER1, dilation=2)),
    ("padding-same-full", "same", torch_conv(INPUT5, K, padding=1)),
    ("padding-same-full", "full", torch_conv(INPUT5, K, padding=2)),
]

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



@pytest.mark.libreoffice
@pytest.mark.parametrize("sheet, name, expected", DRAWN, ids=[f"{s}-{n}" for s, n, _ in DRAWN])
def test_dilation_and_padding_sheets_agree_with_torch(engine_books, sheet, name, expected):
    np.testing.assert_array_equal(block(engine_books[sheet], name)[0], expected)


def test_dilation_and_padding_do_what_the_lecture_says():
    """The oracle's side of the drawn specs, in the lecture's terms: dilation 2 spreads a 3x3 filter over 5x5
    (7x7 -> 3x3 instead of 5x5); padding 1 keeps 5x5 ("same"), padding 2 gives 7x7 ("full"); both keep the
    lecture's 3x3 convolved feature in their middle."""
    assert torch_conv(I7, FILTER1).shape == (5, 5) and torch_conv(I7, FILTER1, dilation=2).shape == (3, 3)
    spread = np.zeros((5, 5))
    spread[::2, ::2] = FILTER1
    np.testing.assert_array_equal(torch_conv(I7, FILTER1, dilation=2), torch_conv(I7, spread))
    same, full = torch_conv(INPUT5, K, padding=1), torch_conv(INPUT5, K, padding=2)
    assert same.shape == (5, 5) and full.shape == (7, 7)
    np.testing.assert_array_equal(same[1:4, 1:4], CONVOLVED_FEATURE)
    np.testing.assert_array_equal(full[2:5, 2:5], CONVOLVED_FEATURE)


@pytest.mark.libreoffice
def test_drawn_sheets_show_the_padding_ring_and_the_spread_filter(engine_books):
    wb = engine_books["padding-same-full"]
    full = block(wb, "full_padded")[0]
    assert full.shape == (9, 9) and not full[:2].any() and not full[:, -2:].any()
    np.testing.assert_array_equal(full[2:7, 2:7], INPUT5)
    spread = block(engine_books["dilation-5x5"], "dilated_filter1_dilated")[0]
    np.testing.assert_array_equal(spread[::2, ::2], FILTER1)
    assert not spread[1::2].any() and not spread[:, 1::2].any()


@pytest.mark.libreoffice
def test_no_cell_prints_hashes(shipped, tmp_path):
    """LibreOffice prints every toy sheet and an exercise with no "###" (a number too wide for its cell)."""
    import shutil
    import subprocess

    from xlconv.engine import find_engine
    from xlconv.exercise import exercise

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    result = exercise("lee-6x6", tmp_path / "ex", seed=7)
    groups = [[p for n, p in shipped.items() if n != "output-size"], result.student_files, result.key_files]
    profile = (tmp_path / "profile").as_uri()
    pdfs = {}
    for n, group in enumerate(groups):  # the student's file has the shipped sheet's name
        out = tmp_path / f"pdf{n}"
        subprocess.run([find_engine("libreoffice"), "--headless", f"-env:UserInstallation={profile}", "--convert-to",
                        "pdf", "--outdir", str(out), *map(str, group)], check=True, capture_output=True, timeout=300)
        pdfs.update({book: out / f"{book.stem}.pdf" for book in group})
    for book, pdf in pdfs.items():
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "###" not in text, book.name
        panels = [n for n, (_, _, _, role) in records(load_workbook(book)).items() if role == "trace"]
        assert text.count("Step by step") == len(panels), book.name  # every panel printed, none on exercises
