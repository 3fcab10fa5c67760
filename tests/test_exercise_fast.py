"""xlconv exercise's fast paths (cached parts, the sheet rows' writer, reused formats, the roster without pandas)
write exactly what XlsxWriter's own classes and pandas give: every file byte for byte, for any --jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlconv import book
from xlconv.errors import ExerciseError
from xlconv.exercise import Student, _pandas_csv, _plain_csv, exercise, read_roster
from xlconv.model import AlexNetSpec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in (ROOT / "xlconv" / "worksheets").glob("*.toml"))
# Names with characters that XML escapes, a name that is also a label of the sheet (one shared string for both),
# and one without a name: whatever a roster holds goes through both paths alike.
ROSTER = [Student("s01", "Ada & <Lovelace>"), Student("s02", 'Bob "the" Babbage'), Student("s03", "input"),
          Student("s04", "")]


def exercisable(name: str) -> bool:
    from xlconv import spec as specs

    return not isinstance(specs.load(name), AlexNetSpec)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", [n for n in SHIPPED if exercisable(n)])
def test_fast_paths_write_the_same_bytes_as_xlsxwriter(tmp_path, monkeypatch, name):
    monkeypatch.setattr(book, "_PLAIN", True)
    exercise(name, tmp_path / "plain", seed=5, roster=ROSTER, jobs=1)
    monkeypatch.setattr(book, "_PLAIN", False)
    plain = files(tmp_path / "plain")
    assert len([f for f in plain if f.endswith(".xlsx")]) == 2 * len(ROSTER)
    for jobs in (1, 2):
        exercise(name, tmp_path / f"fast{jobs}", seed=5, roster=ROSTER, jobs=jobs)
        fast = files(tmp_path / f"fast{jobs}")
        assert fast.keys() == plain.keys()
        differ = [f for f in plain if fast[f] != plain[f]]
        assert not differ, f"{name}, --jobs {jobs}: {differ} differ from XlsxWriter's own output"


def test_the_part_caches_never_serve_another_workbook_s_parts(tmp_path, monkeypatch):
    # Two exercises with different notes and formats, interleaved: each file still equals XlsxWriter's own.
    order = ["lee-6x6", "velickovic-7x7", "lee-6x6", "output-size"]
    monkeypatch.setattr(book, "_PLAIN", True)
    for n, name in enumerate(order):
        exercise(name, tmp_path / f"plain{n}", seed=n, roster=ROSTER[:2], jobs=1)
    monkeypatch.setattr(book, "_PLAIN", False)
    for n, name in enumerate(order):
        exercise(name, tmp_path / f"fast{n}", seed=n, roster=ROSTER[:2], jobs=1)
        assert files(tmp_path / f"fast{n}") == files(tmp_path / f"plain{n}"), name


# -- the roster without pandas ----------------------------------------------------------------------------------

PIECES = ["id", "name", "s1", "007", " ", "  ", ",", ",", "\n", "\n", "\r\n", "\r", '"', "\t", "é", "x y", "NaN",
          "nan", "NA", "#", "'", "\ufeff", "-", "1.0", "TRUE", "\x00", "\x0b", "\u2028", "\x85", ";"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30), st.booleans(), st.booleans())
def test_a_plain_roster_reads_as_pandas_reads_it(tmp_path_factory, pieces, header, bom):
    text = ("id,name\n" if header else "") + "".join(pieces)
    path = tmp_path_factory.mktemp("roster") / "r.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    fast = _plain_csv(path)
    if fast is None:
        return  # read_roster hands it to pandas
    columns, rows = _pandas_csv(path)  # a pandas error here would fail the test: the fast path read it
    assert all(type(c) is str for c in columns)
    assert fast == (columns, rows)


def test_a_plain_roster_does_not_import_pandas(tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text("Student ID,Name\ns1,Ada\ns2, Bob\n\ns3,Cy\n", encoding="utf-8")
    code = ("import sys; from xlconv.exercise import read_roster; "
            f"print([(s.id, s.name) for s in read_roster({str(roster)!r})], 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[('s1', 'Ada'), ('s2', 'Bob'), ('s3', 'Cy')] False"


def test_an_unusual_roster_is_still_read_by_pandas(tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text('id,name\ns1,"Lovelace, Ada"\ns2,Bob\n', encoding="utf-8")  # a quoted comma
    assert _plain_csv(roster) is None
    assert [(s.id, s.name) for s in read_roster(roster)] == [("s1", "Lovelace, Ada"), ("s2", "Bob")]
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(ExerciseError, match=r"empty\.csv: not a readable roster CSV \(EmptyDataError"):
        read_roster(tmp_path / "empty.csv")


@pytest.mark.parametrize("name", SHIPPED)
def test_built_workbooks_are_the_same_bytes_as_xlsxwriter_s(tmp_path, monkeypatch, name):
    # The fast paths serve `xlconv build` too (AlexNet's workbook streams its rows: constant_memory).
    from xlconv.build import build

    monkeypatch.setattr(book, "_PLAIN", True)
    plain = build(name, tmp_path / "plain").read_bytes()
    monkeypatch.setattr(book, "_PLAIN", False)
    assert build(name, tmp_path / "fast").read_bytes() == plain


# -- the write calls' fast paths, call by call ------------------------------------------------------------------

def _odd_calls(ws, b):
    """Write calls the sheets never make (A1 notation, out of bounds, links, array and dynamic formulas, text and
    error results, NaN, colour scales, data bars, long or repeated notes), each also made a second time, so that
    the second call is served from what the first one stored."""
    f = b.fmt(bold=True, bg_color="#FFEEDD")
    for rep in range(2):
        r = 20 * rep
        ws.write_number(r, 0, 1.5, f)
        ws.write_number(r, 1, 7)
        ws.write_number("C1", 2.5)
        ws.write_number(1_048_576, 0, 1)  # past the last row: -1, nothing stored
        ws.write_number(r, 16_384, 1)
        ws.write_formula(r + 1, 0, "=A1*2", f, 3.0)
        ws.write_formula(r + 1, 1, "=SUM(A1:B1)")
        ws.write_formula(r + 1, 2, '=IF(A1>1,"big","small")', None, "big")
        ws.write_formula(r + 1, 3, "=1/0", f, "#DIV/0!")
        ws.write_formula(r + 1, 4, '=""', None, "")
        ws.write_formula(r + 1, 5, "{=SUM(A1:B1*2)}", None, 9)
        ws.write_formula(r + 1, 6, "=FILTER(A1:B1,A1:B1>1)", None, 0)
        ws.write_formula(r + 1, 7, "=STDEV.S(A1:B1)", f, 1)  # a future function: XlsxWriter prefixes it
        ws.write_formula("I2", "=A1")
        ws.write_blank(r + 2, 0, None)  # no format: nothing stored, no dimension
        ws.write_blank(r + 2, 1, None, f)
        ws.write_blank(r + 2, 40, "ignored")
        ws.write_string(r + 3, 0, "plain & <escaped> \"text\"", f)
        ws.write_string(r + 3, 1, "x" * 20_000)
        ws.write_string(r + 3, 2, "y" * 40_000)  # past Excel's cell limit: truncated, -2
        ws.write_row(r + 4, 0, ["a", "", None, 1, 2.5, True, "http://example.com", "mailto:x@y.z", "ftp:notalink",
                                "=1+1", "{=1}", "internal:Sheet2!A1", "x:y"], f)
        ws.write_row("A30", ["row", "in", "A1"])
        ws.write_comment(r + 5, 0, "a note", {"author": "t", "x_scale": 2, "font_size": 9})
        ws.write_comment(r + 5, 1, "a note", {"author": "t", "x_scale": 2, "font_size": 9})
        ws.write_comment(r + 5, 2, "n" * 40_000)
        ws.write_comment("D6", "by A1")
        ws.write_comment(1_048_576, 0, "out")
        ws.conditional_format(r, 0, r + 3, 3, {"type": "cell", "criteria": ">", "value": 1, "format": f})
        ws.conditional_format(r, 0, r + 3, 3, {"type": "2_color_scale", "format": f})
        ws.conditional_format(r, 4, r + 3, 5, {"type": "3_color_scale", "min_color": "#FFFFFF"})
        ws.conditional_format(r, 6, r + 3, 6, {"type": "data_bar"})
        ws.conditional_format(r, 7, r + 3, 7, {"type": "data_bar", "bar_solid": True})
        ws.conditional_format("A1:B2", {"type": "formula", "criteria": "=$A$1>1", "format": f})
        ws.conditional_format(r, 8, r, 8, {"type": "text", "criteria": "containsText", "value": 'a"b', "format": f})
        ws.conditional_format(r, 9, r, 9, {"type": "cell", "criteria": "nonsense", "value": 1})
    ws.set_column(0, 3, 14)
    ws.set_row(5, 30)


def test_odd_write_calls_store_what_xlsxwriter_stores(tmp_path, monkeypatch):
    import warnings

    out = {}
    for plain in (True, False):
        monkeypatch.setattr(book, "_PLAIN", plain)
        for n in range(2):  # the second workbook is served from the caches the first one filled
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # XlsxWriter warns about the invalid calls, alike in both
                with book.Book(tmp_path / f"{plain}{n}.xlsx", "odd calls") as b:
                    _odd_calls(b.wb.add_worksheet("odd"), b)
            out[(plain, n)] = (tmp_path / f"{plain}{n}.xlsx").read_bytes()
    assert out[(False, 0)] == out[(True, 0)]
    assert out[(False, 1)] == out[(True, 1)]
