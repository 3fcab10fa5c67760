"""Change inputs and kernels the way a student would; after recalculation every output follows."""

import numpy as np
import pytest
from blocks import block, cell_of
from conftest import recalculated_values
from openpyxl import load_workbook

import xlconv
from xlconv import reference as ref


@pytest.mark.libreoffice
def test_outputs_follow_edited_inputs_and_kernels(shipped, tmp_path):
    wb = load_workbook(shipped["lee-6x6"])
    rng = np.random.default_rng(7)
    image = rng.integers(-3, 4, size=(6, 6))
    filter2 = rng.integers(-2, 3, size=(3, 3))
    for i in range(6):
        for j in range(6):
            cell_of(wb, "image", 0, i, j).value = int(image[i, j])
    for i in range(3):
        for j in range(3):
            cell_of(wb, "filter2", 0, i, j).value = int(filter2[i, j])
    edited = tmp_path / "edited.xlsx"
    wb.save(edited)

    (after,) = recalculated_values([edited])
    weight = np.stack([np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1]])[None], filter2[None]])
    stride1 = ref.conv2d(image[None], weight)
    np.testing.assert_array_equal(block(after, "stride1"), stride1)
    np.testing.assert_array_equal(block(after, "stride2"), ref.conv2d(image[None], weight, stride=2))
    np.testing.assert_array_equal(block(after, "pooled"), ref.max_pool2d(stride1, 2))
    # The edit really changed the answer: the map is no longer the one built from the lecture's inputs.
    assert not np.array_equal(block(after, "stride1"), block(load_workbook(shipped["lee-6x6"], data_only=True),
                                                             "stride1"))

    report, = xlconv.verify([edited])
    assert report.ok, "\n".join(report.lines())


@pytest.mark.libreoffice
def test_trace_panel_follows_the_students_pick(shipped, tmp_path):
    wb = load_workbook(shipped["lee-6x6"])
    picks = block(load_workbook(shipped["lee-6x6"], data_only=True), "stride1_trace")
    assert picks.ravel()[:3].tolist() == [1, 1, 1]
    for k, value in enumerate([2, 3, 4]):  # filter 2, row 3, column 4
        cell_of(wb, "stride1_trace", k, 0, 0).value = value
    edited = tmp_path / "picked.xlsx"
    wb.save(edited)
    (after,) = recalculated_values([edited])
    total, chosen = block(after, "stride1_trace").ravel()[3:]
    assert total == chosen == block(after, "stride1")[1, 2, 3]
    report, = xlconv.verify([edited])
    assert report.ok


@pytest.mark.libreoffice
def test_verify_catches_a_broken_formula(shipped, tmp_path):
    wb = load_workbook(shipped["velickovic-7x7"])
    cell = cell_of(wb, "IK", 0, 2, 2)
    assert cell.value.startswith("=SUMPRODUCT(")
    cell.value += "+1"  # wrong on purpose
    broken = tmp_path / "broken.xlsx"
    wb.save(broken)
    report, = xlconv.verify([broken])
    assert not report.ok
    assert report.sheets[0].mismatches >= 1
    assert any("IK[0, 2, 2]" in f for f in report.sheets[0].failures)


@pytest.mark.libreoffice
@pytest.mark.parametrize("engine", ["libreoffice", pytest.param("gnumeric", marks=pytest.mark.gnumeric)])
def test_a_workbook_saved_by_a_spreadsheet_program_still_verifies(shipped, tmp_path, engine):
    """What LibreOffice or Gnumeric writes back (as a student's save would) is still a workbook verify knows."""
    from xlconv.engine import recalculate

    (saved,) = recalculate([shipped["lee-6x6"]], tmp_path, engine=engine)
    report, = xlconv.verify([saved])
    assert report.ok, "\n".join(report.lines())
    assert report.cells == xlconv.verify([shipped["lee-6x6"]])[0].cells


@pytest.mark.libreoffice
def test_pooling_panel_follows_the_students_pick_and_edits(shipped, tmp_path):
    """Type a pooled cell into the pooling panel (and change the image): the window's MAX is that cell, by torch."""
    import torch
    import torch.nn.functional as F

    wb = load_workbook(shipped["lee-6x6"])
    image = np.random.default_rng(3).integers(0, 2, size=(6, 6))
    for i in range(6):
        for j in range(6):
            cell_of(wb, "image", 0, i, j).value = int(image[i, j])
    for k, value in enumerate([2, 2, 1]):  # Filter 2, pooled row 2, column 1
        cell_of(wb, "pooled_trace", k, 0, 0).value = value
    edited = tmp_path / "pool-picked.xlsx"
    wb.save(edited)
    (after,) = recalculated_values([edited])
    filters = torch.tensor([[[1, -1, -1], [-1, 1, -1], [-1, -1, 1]], [[-1, 1, -1], [-1, 1, -1], [-1, 1, -1]]],
                           dtype=torch.float64)[:, None]
    pooled = F.max_pool2d(F.conv2d(torch.tensor(image, dtype=torch.float64)[None, None], filters), 2)[0].numpy()
    total, chosen = block(after, "pooled_trace").ravel()[3:]
    assert total == chosen == pooled[1, 1, 0] == block(after, "pooled")[1, 1, 0]
    report, = xlconv.verify([edited])
    assert report.ok, "\n".join(report.lines())


@pytest.mark.libreoffice
def test_pooling_panels_are_right_for_every_pick_with_padding_ceil_mode_and_dilation(tmp_path):
    """Every pick of three pooling panels (max with padding and ceil_mode over two channels, an average that
    counts the padding, a dilated max), recalculated by LibreOffice, equals torch's pooled cell."""
    import torch
    import torch.nn.functional as F

    from xlconv.model import Pool

    x = np.random.default_rng(11).integers(-9, 10, size=(2, 5, 5))
    ops = [Pool("mp", "mp", "x", "max", (3, 3), (2, 2), (1, 1), (1, 1), True),
           Pool("ap", "ap", "x", "avg", (3, 3), (2, 2), (1, 1), (1, 1), True, True),
           Pool("dp", "dp", "x", "max", (2, 2), (1, 1), (0, 0), (2, 2))]
    spec = xlconv.from_arrays("Pools", {"x": x}, ops, name="pools")
    built = xlconv.build(spec, tmp_path)
    t = torch.tensor(x, dtype=torch.float64)[None]
    expected = {"mp": F.max_pool2d(t, 3, 2, 1, ceil_mode=True)[0].numpy(),
                "ap": F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=True)[0].numpy(),
                "dp": F.max_pool2d(t, 2, 1, 0, dilation=2)[0].numpy()}
    picks = {n: [(c, i, j) for c in range(v.shape[0]) for i in range(v.shape[1]) for j in range(v.shape[2])]
             for n, v in expected.items()}
    files = []
    for n in range(max(len(p) for p in picks.values())):
        wb = load_workbook(built)
        for name, options in picks.items():
            for k, value in enumerate(options[n % len(options)]):
                cell_of(wb, f"{name}_trace", k, 0, 0).value = value + 1
        files.append(tmp_path / f"pick{n}.xlsx")
        wb.save(files[-1])
    for n, after in enumerate(recalculated_values(files)):
        for name, options in picks.items():
            c, i, j = options[n % len(options)]
            total, chosen = block(after, f"{name}_trace").ravel()[3:]
            assert total == pytest.approx(expected[name][c, i, j], abs=1e-12), (name, c, i, j)
            assert chosen == pytest.approx(expected[name][c, i, j], abs=1e-12), (name, c, i, j)
