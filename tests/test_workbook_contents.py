"""What a student's spreadsheet program sees: live formulas of shared functions, with cached values."""

import re
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from blocks import block, records
from openpyxl import load_workbook

from xlconv.cells import MAX_FORMULA_CHARS
from xlconv.formulas import ALLOWED_FUNCTIONS, SELF_CHECK_FUNCTIONS

SHEETS = ["lee-6x6", "velickovic-7x7", "convolved-feature-5x5", "edge-laplacian", "output-size"]


def formulas(path):
    wb = load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str) and c.value.startswith("="):
                    yield ws.title, c.coordinate, c.value


@pytest.mark.parametrize("name", SHEETS)
def test_only_functions_every_spreadsheet_shares(shipped, name):
    used = set()
    for _, _, f in formulas(shipped[name]):
        used |= set(re.findall(r"([A-Z][A-Z0-9.]*)\(", f))
        assert len(f) <= MAX_FORMULA_CHARS
    assert used and used <= ALLOWED_FUNCTIONS, used - ALLOWED_FUNCTIONS


@pytest.mark.parametrize("self_check", [True, False])
def test_exercise_files_use_shared_functions_too(tmp_path, self_check):
    from xlconv.exercise import exercise

    result = exercise("lee-6x6", tmp_path / "ex", seed=1, self_check=self_check)
    for path in [*result.student_files, *result.key_files]:
        used = set()
        for _, _, f in formulas(path):
            used |= set(re.findall(r"([A-Z][A-Z0-9.]*)\(", f))
        assert used <= SELF_CHECK_FUNCTIONS, (path.name, used - SELF_CHECK_FUNCTIONS)


@pytest.mark.parametrize("name", SHEETS)
def test_every_output_cell_is_a_formula(shipped, name):
    wb = load_workbook(shipped[name])
    for block_name, (sheet, grids, info, role) in records(wb).items():
        if role in ("output", "padded", "dilated"):
            ph, pw = info.get("padding", [0, 0]) if role == "padded" else (0, 0)
            for g in grids:
                for i in range(g.height):
                    for j in range(g.width):
                        v = wb[sheet].cell(g.top + i + 1, g.left + j + 1).value
                        if ph <= i < g.height - ph and pw <= j < g.width - pw:
                            assert isinstance(v, str) and v.startswith("="), (block_name, g.cell(i, j), v)
                        else:  # the padding ring: visible zeros
                            assert v == 0, (block_name, g.cell(i, j), v)


def test_kernels_are_absolute_and_windows_relative(shipped):
    wb = load_workbook(shipped["convolved-feature-5x5"])
    sheet, grids, _, _ = records(wb)["feature"]
    f = wb[sheet].cell(grids[0].top + 1, grids[0].left + 1).value
    assert re.fullmatch(r"=SUMPRODUCT\([A-Z]+\d+:[A-Z]+\d+,\$[A-Z]+\$\d+:\$[A-Z]+\$\d+\)", f), f


@pytest.mark.parametrize("name", SHEETS)
def test_formula_cells_carry_their_values_for_viewers_that_do_not_calculate(shipped, name):
    """Every <f> in the file has a <v> beside it, and pandas (which never calculates) reads the numbers."""
    with zipfile.ZipFile(shipped[name]) as z:
        for member in z.namelist():
            if member.startswith("xl/worksheets/sheet"):
                xml = z.read(member).decode()
                n_formulas = xml.count("<f>")
                assert n_formulas == len(re.findall(r"<f>[^<]*</f><v>[^<]+</v>", xml)), member


def test_pandas_reads_the_lecture_numbers_without_any_engine(shipped):
    wb = load_workbook(shipped["lee-6x6"], data_only=True)
    sheet, grids, _, _ = records(wb)["stride1"]
    g = grids[0]
    df = pd.read_excel(shipped["lee-6x6"], sheet_name=sheet, header=None)
    values = df.iloc[g.top:g.top + g.height, g.left:g.left + g.width].to_numpy(dtype=float)
    np.testing.assert_array_equal(values, [[3, -1, -3, -1], [-3, 1, 0, -3], [-3, -3, 0, 1], [3, -2, -2, -1]])
    np.testing.assert_array_equal(values, block(wb, "stride1")[0])


def test_defined_names_point_at_the_blocks(shipped):
    wb = load_workbook(shipped["lee-6x6"])
    names = set(wb.defined_names.keys())
    assert {"image", "filter1", "filter2", "stride1_c0", "stride1_c1", "pooled_c0"} <= names
    sheet, grids, _, _ = records(wb)["image"]
    assert wb.defined_names["image"].attr_text == grids[0].sheet_ref(sheet)


def test_the_record_sheet_is_hidden(shipped):
    wb = load_workbook(shipped["lee-6x6"])
    assert wb["_xlconv"].sheet_state == "hidden"
    assert wb.sheetnames[0] == "Lee 6x6"


def test_building_toy_worksheets_does_not_import_torch(tmp_path):
    code = ("import sys, xlconv.cli; xlconv.cli.main(['build', '-o', sys.argv[1], *sys.argv[2:]]); "
            "print('torch' in sys.modules, 'torchvision' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), *SHEETS], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    assert sorted(p.stem for p in tmp_path.iterdir()) == sorted(SHEETS)


def test_same_spec_gives_byte_identical_files(tmp_path):
    from xlconv import build

    a = build("lee-6x6", tmp_path / "a").read_bytes()
    b = build("lee-6x6", tmp_path / "b").read_bytes()
    assert a == b
