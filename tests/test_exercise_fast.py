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
