"""Tests for xlconv.engine: real recalculation, the canary, and failure reporting."""

import io
import re
import stat
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import xlsxwriter
from openpyxl import load_workbook

from xlconv import engine
from xlconv.engine import recalculate
from xlconv.record import CANARY_CELL, CANARY_FORMULA, CANARY_SHEET, CANARY_VALUE
from xlconv.errors import EngineError, WorkbookError

ENGINES = [
    pytest.param("libreoffice", marks=pytest.mark.libreoffice),
    pytest.param("gnumeric", marks=pytest.mark.gnumeric),
    pytest.param("hyperformula", marks=pytest.mark.hyperformula),
]


def make_workbook(path: Path, a1: float = 3, canary: bool = True) -> Path:
    """Write Main!A1=a1 and Main!B1 '=A1*2' with a wrong cached value (999), plus the hidden canary sheet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Main")
    ws.write(0, 0, a1)
    ws.write_formula(0, 1, "=A1*2", None, 999)
    if canary:
        hidden = wb.add_worksheet(CANARY_SHEET)
        hidden.write_formula(CANARY_CELL, CANARY_FORMULA, None, CANARY_VALUE)
        hidden.hide()
    wb.close()
    return path


def cell(path: Path, sheet: str, ref: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gnumeric writes no default style; openpyxl warns
        wb = load_workbook(path, data_only=True, read_only=True)
    try:
        return wb[sheet][ref].value
    finally:
        wb.close()


@pytest.mark.parametrize("name", ENGINES)
def test_engine_recomputes_instead_of_echoing_cached_values(tmp_path, name):
    src = make_workbook(tmp_path / "in" / "conv.xlsx")
    before = src.read_bytes()
    [out] = recalculate([src], tmp_path / "out", engine=name)
    assert out == tmp_path / "out" / f"conv.{name}.xlsx"
    assert cell(out, "Main", "B1") == 6
    assert cell(out, CANARY_SHEET, CANARY_CELL) == CANARY_VALUE
    assert src.read_bytes() == before


@pytest.mark.parametrize("name", ENGINES)
def test_many_files_in_one_call_keep_order_and_get_distinct_names(tmp_path, name):
    # Same base name in three folders: the engine's temp copies and the outputs must not collide.
    sources = [make_workbook(tmp_path / d / "sheet.xlsx", a1=v) for d, v in (("a", 1), ("b", 2), ("c", 5))]
    outs = recalculate(sources, tmp_path / "out", engine=name)
    assert [o.name for o in outs] == [f"sheet.{name}.xlsx", f"sheet-2.{name}.xlsx", f"sheet-3.{name}.xlsx"]
    assert [cell(o, "Main", "B1") for o in outs] == [2, 4, 10]


@pytest.mark.libreoffice
def test_canary_catches_libreoffice_that_does_not_recalculate(tmp_path):
    src = make_workbook(tmp_path / "conv.xlsx")
    with pytest.raises(EngineError, match=r"libreoffice did not recalculate .*conv\.xlsx: canary _xlconv!B1 is -1"):
        recalculate([src], tmp_path / "out", _recalc_mode=1)


@pytest.mark.gnumeric
def test_canary_catches_gnumeric_without_recalc(tmp_path):
    src = make_workbook(tmp_path / "conv.xlsx")
    with pytest.raises(EngineError, match=r"gnumeric did not recalculate .*canary _xlconv!B1 is -1"):
        recalculate([src], tmp_path / "out", engine="gnumeric", _recalc_mode=1)


def fake_engine(tmp_path: Path, monkeypatch, script: str) -> None:
    """Stand in a shell script for ssconvert (called as: --recalc --export-type=... IN OUT)."""
    path = tmp_path / "fake-ssconvert"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(engine, "find_engine", lambda name: str(path))


def test_canary_catches_an_engine_that_copies_its_input(tmp_path, monkeypatch):
    fake_engine(tmp_path, monkeypatch, 'cp "$3" "$4"\n')
    src = make_workbook(tmp_path / "conv.xlsx")
    with pytest.raises(EngineError, match="canary _xlconv!B1 is -1, expected 42"):
        recalculate([src], tmp_path / "out", engine="gnumeric")


def test_missing_output_names_the_input_and_shows_stderr(tmp_path, monkeypatch):
    fake_engine(tmp_path, monkeypatch, "echo 'cannot open the thing' >&2\n")
    src = make_workbook(tmp_path / "conv.xlsx")
    with pytest.raises(EngineError, match=r"produced no output for .*conv\.xlsx: cannot open the thing"):
        recalculate([src], tmp_path / "out", engine="gnumeric")


def test_engine_failure_reports_exit_status_and_stderr(tmp_path, monkeypatch):
    fake_engine(tmp_path, monkeypatch, "echo 'it broke' >&2\nexit 3\n")
    with pytest.raises(EngineError, match="gnumeric failed with exit status 3: it broke"):
        recalculate([make_workbook(tmp_path / "conv.xlsx")], tmp_path / "out", engine="gnumeric")


def test_timeout_kills_the_whole_process_group(tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    fake_engine(tmp_path, monkeypatch, f"sleep 60 &\necho $! > {pid_file}\nsleep 60\n")
    start = time.monotonic()
    with pytest.raises(EngineError, match="gnumeric did not finish within 1 s"):
        recalculate([make_workbook(tmp_path / "conv.xlsx")], tmp_path / "out", engine="gnumeric", timeout=1)
    assert time.monotonic() - start < 30
    assert not _alive(int(pid_file.read_text()))


def _alive(pid: int) -> bool:
    for _ in range(50):  # the orphaned child is reaped asynchronously by init
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in "ZX":
            return False
        time.sleep(0.1)
    return True


def test_missing_engine_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "find_engine", lambda name: None)
    src = make_workbook(tmp_path / "conv.xlsx")
    with pytest.raises(EngineError, match="apt-get install -y --no-install-recommends libreoffice-calc-nogui"):
        recalculate([src], tmp_path / "out")
    with pytest.raises(EngineError, match="apt-get install -y gnumeric"):
        recalculate([src], tmp_path / "out", engine="gnumeric")


def test_unknown_engine_is_rejected(tmp_path):
    with pytest.raises(EngineError, match="unknown engine 'excel'"):
        recalculate([make_workbook(tmp_path / "conv.xlsx")], tmp_path / "out", engine="excel")


def test_non_xlsx_file_is_a_workbook_error(tmp_path):
    bad = tmp_path / "notes.xlsx"
    bad.write_text("not a zip")
    with pytest.raises(WorkbookError, match=r"notes\.xlsx: not an \.xlsx workbook"):
        recalculate([bad], tmp_path / "out")


def test_workbook_without_canary_sheet_is_a_workbook_error(tmp_path):
    src = make_workbook(tmp_path / "plain.xlsx", canary=False)
    with pytest.raises(WorkbookError, match=r"plain\.xlsx: not an xlconv workbook \(no _xlconv!B1 canary\)"):
        recalculate([src], tmp_path / "out")


def test_canary_cell_must_be_a_formula(tmp_path):
    src = tmp_path / "const.xlsx"
    wb = xlsxwriter.Workbook(str(src))
    wb.add_worksheet(CANARY_SHEET).write_number(CANARY_CELL, CANARY_VALUE)
    wb.close()
    with pytest.raises(WorkbookError, match="not an xlconv workbook"):
        recalculate([src], tmp_path / "out")


def test_no_inputs_means_no_engine_run(tmp_path):
    assert recalculate([], tmp_path / "out") == []


@pytest.mark.parametrize(
    "xml, expected",
    [
        ('<c r="B1"><f>21*2</f><v>42</v></c>', '<c r="B1"><f>21*2</f><v>-1</v></c>'),
        ('<c r="B1" s="0" t="n">\n  <f aca="false">21*2</f>\n  <v>42</v>\n</c>',
         '<c r="B1" s="0">\n  <f aca="false">21*2</f>\n  <v>-1</v>\n</c>'),
        ('<c r="B1" t="str"><f>21*2</f></c>', '<c r="B1"><f>21*2</f><v>-1</v></c>'),
        ('<x:c r="B1"><x:f>21*2</x:f><x:v>42</x:v></x:c>', '<x:c r="B1"><x:f>21*2</x:f><x:v>-1</x:v></x:c>'),
        ('<c r="A1"/><c r="B10"><f>1</f><v>1</v></c><c r="B1"><f>21*2</f><v/></c>',
         '<c r="A1"/><c r="B10"><f>1</f><v>1</v></c><c r="B1"><f>21*2</f><v>-1</v></c>'),
    ],
)
def test_poison_replaces_only_the_canary_value(xml, expected):
    assert engine._poison_canary(xml, Path("x.xlsx")) == expected


@pytest.mark.parametrize("xml", ['<c r="B1"/><c r="C1"><f>1</f></c>', '<c r="B1"><v>42</v></c>', "<c r='B10'><f>1</f></c>"])
def test_poison_rejects_a_missing_canary_formula(xml):
    with pytest.raises(WorkbookError, match="no _xlconv!B1 canary"):
        engine._poison_canary(xml, Path("x.xlsx"))



def _members(path: Path) -> dict[str, tuple[bytes, int, int]]:
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None  # every member inflates and matches its CRC
        return {i.filename: (zf.read(i), i.compress_type, i.compress_size) for i in zf.infolist()}


def _unseekable_copy(src: Path, dest: Path) -> None:
    """Rewrite a workbook through a stream zipfile cannot seek in, so every member is followed by a data
    descriptor (flag bit 3), as some zip writers do."""
    class Forward(io.RawIOBase):
        def __init__(self, fh):
            self.fh = fh

        def writable(self):
            return True

        def write(self, b):
            return self.fh.write(b)

    with zipfile.ZipFile(src) as zin, open(dest, "wb") as fh:
        with zipfile.ZipFile(Forward(fh), "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                zout.writestr(info.filename, zin.read(info))
    with zipfile.ZipFile(dest) as zf:
        assert all(i.flag_bits & 0x08 for i in zf.infolist())


@pytest.mark.parametrize("descriptors", [False, True], ids=["plain", "data-descriptors"])
def test_poisoned_copy_rewrites_the_canary_member_and_copies_the_rest_compressed(tmp_path, descriptors):
    src = make_workbook(tmp_path / "made.xlsx")
    if descriptors:
        _unseekable_copy(src, tmp_path / "streamed.xlsx")
        src = tmp_path / "streamed.xlsx"
    dest = tmp_path / "poisoned.xlsx"
    engine._write_poisoned_copy(src, dest)
    before, after = _members(src), _members(dest)
    assert list(before) == list(after)
    with zipfile.ZipFile(src) as zf:
        canary_member = engine._canary_sheet_member(zf, src)
    for name, (data, method, size) in before.items():
        if name == canary_member:
            assert after[name][1] == zipfile.ZIP_STORED and b"<v>-1</v>" in after[name][0]
        else:
            assert after[name] == (data, method, size)  # the same compressed bytes, not inflated and redone
    assert engine._read_canary(dest, "test", src) == -1
    assert cell(dest, "Main", "B1") == 999  # openpyxl reads the copy too


@pytest.mark.parametrize(
    "cell_xml, expected",
    [
        ('<c r="B1"><f>21*2</f><v>42</v></c>', 42),
        ('<c r="B1" s="3" t="n"><f>21*2</f><v>42.0</v></c>', 42),
        ('<x:c r="B1"><x:f>21*2</x:f><x:v>41.5</x:v></x:c>', 41.5),
        ('<c r="B1" t="str"><f>21*2</f><v>42</v></c>', "42 (a cell of type 'str')"),
        ('<c r="B1" t="e"><f>21*2</f><v>#VALUE!</v></c>', "#VALUE! (a cell of type 'e')"),
        ('<c r="B1"><f>21*2</f></c>', None),
        ('<c r="B1"><f>21*2</f><v/></c>', None),
        ('<c r="B10"><f>21*2</f><v>42</v></c>', None),
    ],
)
def test_canary_is_read_from_its_sheet_alone(tmp_path, cell_xml, expected):
    src = make_workbook(tmp_path / "made.xlsx")
    with zipfile.ZipFile(src) as zf:
        member = engine._canary_sheet_member(zf, src)
        xml = re.sub(r"<sheetData>.*</sheetData>", f"<sheetData><row r=\"1\">{cell_xml}</row></sheetData>",
                     zf.read(member).decode(), flags=re.DOTALL)
        with open(tmp_path / "engine-output.xlsx", "wb") as out:
            engine._copy_zip(zf, out, {member: xml.encode()})
    assert engine._read_canary(tmp_path / "engine-output.xlsx", "test", src) == expected
