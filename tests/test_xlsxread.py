"""The fast reader verify uses (python-calamine in a bounded child process) against openpyxl, cell by cell:
numbers, blanks, text, booleans, dates and error values, as LibreOffice and Gnumeric write them; and a wrong
cell still fails verify, naming the cell and what it holds."""

from __future__ import annotations

import datetime
import math
import shutil
import time

import numpy as np
import pytest
from blocks import cell_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

import xlconv
from xlconv.engine import convert, run_tool
from xlconv import xlsxread
from xlconv.xlsxread import open_workbook, read_values

ERRORS = {"#DIV/0!", "#VALUE!", "#N/A", "#REF!", "#NUM!", "#NAME?", "#NULL!"}

# Formulas whose results cover every kind of value an engine writes back.
FORMULAS = [
    ["=1/3", "=1/0", '=VALUE("x")', "=TRUE()", '="text"', 3],
    [None, None, None, None, None, None],  # a blank row between
    ["=NA()", "=A1*2", "=DATE(2020,1,2)", False, '=""', "=SQRT(-1)"],
    [-0.0, 1e-300, "1.5", "=A1>0", "=#REF!", 12345678901234567890],
    ["=2^0.5", "=-A1", "=ROUND(A1,2)", "  ", "=LEN(\"abc\")", "=1E+308*10"],
]


def _mixed_workbook(path):
    wb = Workbook()
    ws = wb.active
    ws.title = "S"
    for i, row in enumerate(FORMULAS):
        for j, v in enumerate(row):
            if v is not None:
                ws.cell(i + 3, j + 2, v)  # from B3: the reader must keep absolute positions
    ws.cell(5, 4).number_format = "yyyy-mm-dd"
    wb.save(path)


def _recalculated(tmp_path, engine):
    src = tmp_path / "mixed.xlsx"
    _mixed_workbook(src)
    out = tmp_path / "out"
    out.mkdir()
    if engine == "libreoffice":
        (made,) = convert([src], out, "xlsx:Calc MS Excel 2007 XML")
        return made
    made = out / "mixed.xlsx"
    run_tool("gnumeric", [shutil.which("ssconvert") or "ssconvert", "--recalc",
                          "--export-type=Gnumeric_Excel:xlsx2", str(src), str(made)], 120)
    return made


def _agree(openpyxl_value, sheet, r, c):
    """Assert the fast reader's number and text of (r, c) say what openpyxl's value says."""
    got = sheet.numbers[r, c] if r < sheet.numbers.shape[0] and c < sheet.numbers.shape[1] else math.nan
    text = sheet.texts.get((r, c))
    v = openpyxl_value
    where = f"cell ({r}, {c}) = {v!r}"
    if isinstance(v, bool):
        assert got == float(v) and text is None, where
    elif isinstance(v, (int, float)):
        assert got == float(v) or (math.isnan(got) and math.isnan(v)), (where, got)
        assert text is None, where
    elif v is None or v == "" or (isinstance(v, str) and v in ERRORS):
        # calamine says "" for a blank, an empty text and an error value alike: all three are not numbers.
        assert math.isnan(got) and text is None, (where, got, text)
    elif isinstance(v, str):
        # Gnumeric writes spaces-only text without xml:space="preserve", which calamine reads as blank.
        assert math.isnan(got) and (text == v or (text is None and not v.strip())), (where, got, text)
    elif isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
        assert math.isnan(got) and text is not None, where
    else:  # pragma: no cover - openpyxl gives nothing else
        raise AssertionError(where)


@pytest.mark.libreoffice
@pytest.mark.parametrize("engine", ["libreoffice", pytest.param("gnumeric", marks=pytest.mark.gnumeric)])
def test_calamine_and_openpyxl_agree_cell_by_cell_on_a_recalculated_workbook(tmp_path, engine):
    made = _recalculated(tmp_path, engine)
    wb = open_workbook(made)
    rows = list(wb["S"].iter_rows(values_only=True))
    wb.close()
    values = read_values(made, ["S"])
    sheet = values.sheets["S"]
    assert values.names == ["S"] and not values.problems
    kinds = set()
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            _agree(v, sheet, r, c)
            kinds.add("error" if isinstance(v, str) and v in ERRORS else type(v).__name__)
    # The workbook really held every kind (an engine that wrote fewer would make this test vacuous).
    assert {"error", "bool", "float", "str", "NoneType"} <= kinds, kinds
    assert sheet.numbers[2, 1] == pytest.approx(1 / 3) and math.isnan(sheet.numbers[2, 2])  # B3 and C3
    assert sheet.texts[(5, 3)] == "1.5" and math.isnan(sheet.numbers[5, 3])  # text that looks like a number


cell_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False, width=64),
                        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                                max_size=8).filter(lambda t: not t.startswith("=")),  # "=..." is a formula
                        st.sampled_from(["1.5", "-2", "1e3", "TRUE", "#DIV/0!"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=st.lists(st.lists(cell_values, min_size=1, max_size=6), min_size=1, max_size=6),
       top=st.integers(0, 3), left=st.integers(0, 3))
def test_typed_values_read_the_same_as_openpyxl(tmp_path, grid, top, left):
    path = tmp_path / "typed.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.title = "T"
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v is not None:
                ws.cell(top + i + 1, left + j + 1, v)
    wb.save(path)
    back = load_workbook(path, read_only=True)
    rows = list(back["T"].iter_rows(values_only=True))
    back.close()
    sheet = read_values(path, ["T"]).sheets["T"]
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            _agree(v, sheet, r, c)


def test_cells_far_apart_fail_fast_instead_of_taking_the_memory(tmp_path):
    """Two values at A1 and XFD1048576 would make calamine allocate 17 G cells: the bounded child dies, the
    caller gets an OSError, in seconds."""
    path = tmp_path / "far.xlsx"
    wb = Workbook()
    wb.active["A1"] = 1
    wb.active["XFD1048576"] = 2
    wb.save(path)
    t = time.monotonic()
    with pytest.raises(OSError, match="more memory"):
        read_values(path, [wb.active.title])
    assert time.monotonic() - t < 30


def test_only_the_asked_sheets_are_read_from_a1_and_a_missing_one_is_left_out(tmp_path):
    path = tmp_path / "two.xlsx"
    wb = Workbook()
    wb.active.title = "A"
    wb.create_sheet("B")["C2"] = 7
    wb.save(path)
    values = read_values(path, ["B", "Nope"])
    assert values.names == ["A", "B"] and set(values.sheets) == {"B"}
    assert values.sheets["B"].numbers.shape == (2, 3) and values.sheets["B"].numbers[1, 2] == 7


@pytest.mark.parametrize("jobs", [2, 3])
def test_readers_in_parallel_give_what_one_reader_gives(tmp_path, jobs):
    path = tmp_path / "four.xlsx"
    wb = Workbook()
    wb.active.title = "A"
    for k, name in enumerate(["B", "C", "D"]):
        ws = wb.create_sheet(name)
        for r in range(1, 4 + 3 * k):
            ws.cell(r, 2, r * (k + 1))
        ws["A1"] = f"text {name}"
    wb.create_sheet("_record")["A1"] = "kept"
    wb.save(path)
    wanted = ["A", "B", "C", "D", "Nope"]
    one = read_values(path, wanted, rows=("_record", 1, 1))
    many = read_values(path, wanted, rows=("_record", 1, 1), jobs=jobs, weights={"D": 100, "C": 50})
    assert many.names == one.names and many.rows == one.rows == {"_record": [["kept"]]}
    assert set(many.sheets) == set(one.sheets) == {"A", "B", "C", "D"}
    for name in one.sheets:
        np.testing.assert_array_equal(many.sheets[name].numbers, one.sheets[name].numbers)
        assert many.sheets[name].texts == one.sheets[name].texts


@pytest.mark.parametrize("sheets, jobs, weights, groups", [
    (["a", "b", "c"], 2, {"a": 10, "b": 3, "c": 3}, [["a"], ["b", "c"]]),
    (["a", "b", "c"], 1, {}, [["a", "b", "c"]]),
    (["a"], 4, {}, [["a"]]),
    (None, 2, {}, [None]),
    (["x", "y", "z", "w"], 2, {"x": 5, "y": 4, "z": 3, "w": 2}, [["w", "x"], ["y", "z"]]),
])
def test_sheets_are_split_heaviest_first_onto_the_lightest_reader(sheets, jobs, weights, groups):
    assert xlsxread._split(sheets, jobs, weights) == groups


@pytest.mark.libreoffice
def test_a_wrong_cell_fails_verify_naming_the_cell_and_what_it_holds(shipped, tmp_path):
    wb = load_workbook(shipped["velickovic-7x7"])
    text = cell_of(wb, "IK", 0, 0, 0)
    error = cell_of(wb, "IK", 0, 1, 1)
    wrong = cell_of(wb, "IK", 0, 2, 2)
    text.value = "oops"
    error.value = "=1/0"
    wrong.value = 12345  # a constant where a formula was
    broken = tmp_path / "broken.xlsx"
    wb.save(broken)
    report, = xlconv.verify([broken])
    failures = "\n".join(report.lines())
    assert not report.ok and report.sheets[0].mismatches >= 3, failures
    assert f"!{text.coordinate} (IK[0, 0, 0]) is the text 'oops', expected" in failures
    assert f"!{error.coordinate} (IK[0, 1, 1]) is blank or an error value" in failures
    assert f"!{wrong.coordinate} (IK[0, 2, 2]) is 12345.0, expected" in failures
