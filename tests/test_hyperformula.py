"""verify --engine hyperformula: HyperFormula (Excel's semantics, run by node) recalculates, verify checks every cell."""

import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from exercise_helpers import fill, write_roster
from openpyxl import load_workbook

from xlconv import engine, hyperformula
from xlconv.engine import recalculate
from xlconv.errors import EngineError
from xlconv.exercise import exercise
from xlconv.formulas import CHECK_RIGHT, CHECK_WRONG
from xlconv.grade import load_key
from xlconv.verify import read_records, verify

XLCONV = [sys.executable, "-m", "xlconv"]
ROOT = Path(__file__).resolve().parent.parent
HF = "hyperformula"
NUMBER = r"(?:np\.float64\()?%s(?:\.0)?\)?"  # verify prints a NumPy float as 3.0 or np.float64(3.0)


def run(*args):
    return subprocess.run(XLCONV + list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL)


def values(path: Path, sheet: str, grid) -> list[list]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = load_workbook(path, data_only=True, read_only=True)
    try:
        rows = wb[sheet].iter_rows(min_row=grid.top + 1, max_row=grid.bottom + 1, min_col=grid.left + 1,
                                   max_col=grid.right + 1, values_only=True)
        return [list(r) for r in rows]
    finally:
        wb.close()


def first_output(path: Path):
    """The sheet, address and recorded block of the first output cell of a toy workbook."""
    records, _ = read_records(path)
    rec = next(r for r in records if r.role == "output" and r.info.get("op") == "conv")
    return rec.sheet, rec.grids[0].cell(0, 0), rec


def edited(src: Path, dest: Path, sheet: str, ref: str, value) -> Path:
    """A copy of src with one cell's content replaced (a constant or a formula), saved as a spreadsheet program would."""
    wb = load_workbook(src)
    wb[sheet][ref].value = value
    wb.save(dest)
    return dest


# --- install plumbing (no engine needed) ------------------------------------


def test_pins_match_the_package_json_and_lock_npm_installs_from():
    package = json.loads((ROOT / "engines" / "hyperformula" / "package.json").read_text())
    lock = json.loads((ROOT / "engines" / "hyperformula" / "package-lock.json").read_text())
    assert package["dependencies"] == hyperformula.PINS
    for name, version in hyperformula.PINS.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_missing_packages_give_one_line_with_the_npm_command(tmp_path, monkeypatch):
    monkeypatch.setenv(hyperformula.NODE_MODULES_ENV, str(tmp_path / "node_modules"))
    assert engine.find_engine(HF) is None
    hint = engine.install_hint(HF)
    assert "\n" not in hint
    assert f"npm install --prefix {tmp_path}" in hint and "hyperformula@3.5.0" in hint
    monkeypatch.delenv(hyperformula.NODE_MODULES_ENV)
    assert "npm ci --prefix " + str(ROOT / "engines" / "hyperformula") in hyperformula.install_command()


def test_verify_without_the_packages_is_one_line_and_exit_2(tmp_path, monkeypatch, shipped):
    monkeypatch.setenv(hyperformula.NODE_MODULES_ENV, str(tmp_path / "nothing"))
    proc = run("verify", "--engine", HF, str(shipped["lee-6x6"]))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "npm install --prefix" in proc.stderr, proc.stderr


def test_the_runner_ships_in_the_package_and_the_packages_do_not():
    assert hyperformula.SCRIPT.is_file() and hyperformula.SCRIPT.parent.parent.name == "xlconv"
    ignored = subprocess.run(["git", "check-ignore", "-q", "engines/hyperformula/node_modules/x"], cwd=ROOT)
    assert ignored.returncode == 0


# --- the engine --------------------------------------------------------------


@pytest.mark.hyperformula
def test_every_shipped_toy_worksheet_verifies(shipped):
    start = time.perf_counter()
    reports = verify(list(shipped.values()), engine=HF)
    assert [r.path for r in reports] == list(shipped.values())
    for r in reports:
        assert r.ok and r.cells > 0, "\n".join(r.lines())
        assert all(s.max_diff <= 1e-9 for s in r.sheets), "\n".join(r.lines())
    print(f"hyperformula: {len(reports)} toy workbooks in {time.perf_counter() - start:.1f} s")


@pytest.mark.hyperformula
def test_exercise_keys_verify(tmp_path):
    keys = []
    for name in ("lee-6x6", "velickovic-7x7", "conv-arithmetic", "output-size", "dilation-5x5"):
        keys += exercise(name, tmp_path / name, seed=7).key_files
    reports = verify(keys, engine=HF)
    assert all(r.ok and r.cells > 0 for r in reports), "\n".join(line for r in reports for line in r.lines())


@pytest.mark.hyperformula
def test_self_checks_and_the_score_evaluate_their_arrays(tmp_path):
    # The score is SUMPRODUCT((range="✓")*1): an array expression HyperFormula evaluates only with array arithmetic.
    result = exercise("lee-6x6", tmp_path / "ex", seed=3, roster=write_roster(tmp_path, "id\ns01\n"))
    k = load_key(result.out_dir)
    right = fill(result.student_files[0], tmp_path / "right.xlsx", k, "s01")
    first = k.answers[0].name
    wrong = fill(result.student_files[0], tmp_path / "wrong.xlsx", k, "s01",
                 answer=lambda b, c, i, j, v: v + 1 if (b, c, i, j) == (first, 0, 0, 0) else
                 ("text" if (b, c, i, j) == (first, 0, 1, 1) else v))
    outs = recalculate([result.student_files[0], right, wrong], tmp_path / "out", engine=HF)
    records, _ = read_records(result.key_files[0])
    checks = [r for r in records if r.role == "check"]
    score = next(r for r in records if r.role == "score")
    total = sum(g.height * g.width for r in checks for g in r.grids)
    for path, blank, wrong_cells, not_numbers in ((outs[0], total, 0, 0), (outs[1], 0, 0, 0), (outs[2], 0, 1, 1)):
        marks = [v for r in checks for g in r.grids for row in values(path, k.sheet, g) for v in row]
        assert marks.count(CHECK_WRONG) == wrong_cells and marks.count("?") == not_numbers, marks
        assert marks.count(None) + marks.count("") == blank
        right_marks = total - blank - wrong_cells - not_numbers
        assert marks.count(CHECK_RIGHT) == right_marks
        assert values(path, k.sheet, score.grids[0]) == [[right_marks]]


@pytest.mark.slow
@pytest.mark.hyperformula
def test_small_alexnet_workbook_verifies(tmp_path):
    pytest.importorskip("torchvision")
    path = tmp_path / "a.xlsx"
    built = run("alexnet", "--weights", "random", "--channels", "0-1", "-o", str(path), "-q")
    assert built.returncode == 0, built.stderr
    start = time.perf_counter()
    proc = run("verify", "--engine", HF, str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "conv1: " in proc.stdout and "after hyperformula" in proc.stdout
    print(f"hyperformula: AlexNet --channels 0-1 verified in {time.perf_counter() - start:.1f} s")


@pytest.mark.hyperformula
def test_a_formula_replaced_by_a_wrong_constant_fails_with_exit_1(tmp_path, shipped):
    src = shipped["lee-6x6"]
    sheet, ref, rec = first_output(src)
    bad = edited(src, tmp_path / "bad.xlsx", sheet, ref, 4)  # the right value is 3
    proc = run("verify", "--engine", HF, str(bad))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(rf"{sheet}!{ref} \({rec.name}\[0, 0, 0\]\) is {NUMBER % 4}, expected {NUMBER % 3}", proc.stdout)
    assert ": FAIL" in proc.stdout


@pytest.mark.hyperformula
def test_the_canary_catches_a_run_that_keeps_cached_values(tmp_path, shipped):
    # --cached hands HyperFormula each formula's cached result instead of the formula, as a lazy engine would.
    with pytest.raises(EngineError, match=r"hyperformula did not recalculate .*lee-6x6\.xlsx: canary _xlconv!B1 "
                                          r"is -1, expected 42"):
        recalculate([shipped["lee-6x6"]], tmp_path / "out", engine=HF, _recalc_mode=1)


@pytest.mark.hyperformula
def test_stale_cached_values_are_recomputed(tmp_path, shipped):
    # openpyxl drops every cached value, so each number verify reads can only have come from HyperFormula.
    src = shipped["lee-6x6"]
    sheet, ref, _ = first_output(src)
    copy = edited(src, tmp_path / "copy.xlsx", "Lee 6x6", "B8", 7)  # an input cell: the map must follow it
    [out] = recalculate([copy], tmp_path / "out", engine=HF)
    records, _ = read_records(src)
    rec = next(r for r in records if r.role == "output" and r.info.get("op") == "conv")
    assert values(out, sheet, rec.grids[0])[0][0] == 3 + 6 * 1  # filter 1's top-left tap is 1
    [report] = verify([copy], engine=HF)
    assert report.ok, "\n".join(report.lines())


@pytest.mark.libreoffice
@pytest.mark.hyperformula
def test_a_function_hyperformula_lacks_fails_naming_the_cell_where_libreoffice_passes(tmp_path, shipped):
    src = shipped["lee-6x6"]
    sheet, ref, rec = first_output(src)
    wb = load_workbook(src)
    formula = wb[sheet][ref].value
    wb.close()
    # AGGREGATE is Excel 2010's (stored with its _xlfn. prefix) and LibreOffice's; HyperFormula 3.5 has none: #NAME?.
    path = edited(src, tmp_path / "aggregate.xlsx", sheet, ref, f"{formula}+0*_xlfn.AGGREGATE(9,4,B8:B9)")
    [lo] = verify([path])
    [hf] = verify([path], engine=HF)
    assert lo.ok, "\n".join(lo.lines())
    assert not hf.ok
    # calamine reads an error value (#NAME?) like a blank, and verify says so
    failure = rf"{sheet}!{ref} \({rec.name}\[0, 0, 0\]\) is blank or an error value .*, expected {NUMBER % 3}"
    assert any(re.search(failure, line) for line in hf.lines()), hf.lines()


@pytest.mark.hyperformula
def test_timeout_and_heap_cap_stop_node(tmp_path, shipped, monkeypatch):
    start = time.monotonic()
    with pytest.raises(EngineError, match="hyperformula did not finish within 0.05 s"):
        recalculate([shipped["lee-6x6"]], tmp_path / "out", engine=HF, timeout=0.05)
    assert time.monotonic() - start < 30
    monkeypatch.setattr(hyperformula, "HEAP_MB", 4)  # far below what loading exceljs takes
    with pytest.raises(EngineError, match="hyperformula failed with exit status"):
        recalculate([shipped["lee-6x6"]], tmp_path / "out", engine=HF)


@pytest.mark.hyperformula
def test_the_trace_finds_its_first_pooled_cell_in_hyperformula_too(tmp_path):
    # The first max-pool output a conv1 position feeds, ceil((pos - k)/s) + 1 at least 1, once read -INT(-x), which
    # HyperFormula (INT truncating toward zero) got one too low at every other position.
    import math

    import xlsxwriter

    from xlconv import formulas
    from xlconv.cells import a1
    from xlconv.record import CANARY_CELL, CANARY_FORMULA, CANARY_SHEET, CANARY_VALUE

    path = tmp_path / "first.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Main")
    for pos in range(1, 56):
        ws.write(pos - 1, 0, pos)
        ws.write_formula(pos - 1, 1, formulas.pool_first(a1(pos - 1, 0), 3, 2), None, -1)
    wb.add_worksheet(CANARY_SHEET).write_formula(CANARY_CELL, CANARY_FORMULA, None, CANARY_VALUE)
    wb.close()
    [out] = recalculate([path], tmp_path / "out", engine=HF)
    wb2 = load_workbook(out, data_only=True, read_only=True)
    got = [row[1] for row in wb2["Main"].iter_rows(values_only=True)]
    wb2.close()
    assert got == [max(1, math.ceil((pos - 3) / 2) + 1) for pos in range(1, 56)]
