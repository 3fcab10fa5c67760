"""verify works out the references from the original workbook while the engine runs, and uses them only when the
engine's copy holds the very inputs they came from."""

import sys

import numpy as np
import pytest
from blocks import cell_of
from openpyxl import load_workbook

import xlconv
from xlconv.build import alexnet_workbook
from xlconv.engine import recalculate
from xlconv.record import EXERCISE_ROLES, ROOT_ROLES

import xlconv.verify  # noqa: E402,F401 - the module; the package's xlconv.verify attribute is the function

verify_module = sys.modules["xlconv.verify"]

pytestmark = pytest.mark.libreoffice


def _live(recalculated, blocks):
    """Every block's references recomputed after the engine, from the engine's copy: what check does without ahead."""
    checked = [r for r in blocks if r.role not in EXERCISE_ROLES]
    cells = verify_module._Cells(recalculated, checked)
    current, out = {}, {}
    for rec in checked:
        got = cells.block(rec)
        if rec.role in ROOT_ROLES:
            current[rec.name] = got
            continue
        exp = [rec.fit(e) for e in verify_module.expected_block(rec, current, got, blocks)]
        out[rec.name] = exp
        if rec.role == "output":
            current[rec.name] = exp[0]
    return cells, checked, out


@pytest.fixture(scope="module")
def alexnet_small(tmp_path_factory):
    """Two small AlexNet workbooks: the lecture's mean and std (0.5) and ImageNet's (0.485, 0.229, ...)."""
    out = tmp_path_factory.mktemp("alexnet")
    return {norm: alexnet_workbook(out / f"{norm}.xlsx", weights="random", normalize=norm, channels=[0, 5])
            for norm in ("lecture", "imagenet")}


@pytest.mark.parametrize("name", ["lee-6x6", "velickovic-7x7", "dilation-5x5", "conv-arithmetic", "tiny-cnn-digits",
                                  "alexnet-lecture", "alexnet-imagenet"])
def test_references_from_the_original_are_those_of_the_engines_copy(shipped, alexnet_small, tmp_path, name):
    original = alexnet_small[name.split("-")[1]] if name.startswith("alexnet") else shipped[name]
    blocks, _ = verify_module.read_records(original)
    ahead = verify_module.work_ahead(original, blocks)
    recalculated, = recalculate([original], tmp_path)
    cells, checked, live = _live(recalculated, blocks)
    assert ahead.holds(cells, checked)  # so verify uses them: the engine's copy holds the original's inputs
    # Every block that depends on the inputs alone was worked out ahead, and agrees with the live references to
    # the last digits LibreOffice keeps (it saves 15 significant digits of the inputs).
    own_cells = [r.name for r in checked if verify_module.reads_own_cells(r)]
    assert set(ahead.expected) == set(live) - set(own_cells)
    for name_, exp in ahead.expected.items():
        assert len(exp) == len(live[name_])
        for a, b in zip(exp, live[name_]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name_)


def test_an_input_the_engine_computes_differently_makes_verify_recompute_everything(shipped, tmp_path):
    wb = load_workbook(shipped["lee-6x6"])
    cell = cell_of(wb, "image", 0, 2, 3)
    typed = cell.value
    cell.value = f"=2-1-{1 - typed}" if typed in (0, 1) else f"={typed}"  # the same number, now a formula
    cell_of(wb, "filter1", 0, 0, 0).value = "=7"  # a new number: no cached value in openpyxl's file
    edited = tmp_path / "edited.xlsx"
    wb.save(edited)
    blocks, _ = verify_module.read_records(edited)
    ahead = verify_module.work_ahead(edited, blocks)
    recalculated, = recalculate([edited], tmp_path)
    cells, checked, _ = _live(recalculated, blocks)
    assert not ahead.holds(cells, checked)
    report, = xlconv.verify([edited])  # recomputed from the engine's inputs: every formula follows the 7
    assert report.ok, "\n".join(report.lines())
