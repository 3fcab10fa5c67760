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
