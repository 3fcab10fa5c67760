"""xlconv grade: fill variants as students would, save them through LibreOffice, grade, check every mark."""

import math

import pandas as pd
import pytest
from exercise_helpers import (
    ROSTER,
    fill,
    save_through_libreoffice,
    sha256,
    write_roster,
)
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from xlconv.exercise import exercise
from xlconv.grade import STATUSES, grade, load_key, read_answer

SEED = 11
MINUS = "\u2212"


def as_text(v: float) -> str:
    """How a student might type a right answer as text."""
    n = int(v)
    if n < 0:
        return f"{MINUS}{-n}"  # a Unicode minus
    return f"+{n}" if n % 2 else f" {n} "


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grade")
    roster = write_roster(tmp, ROSTER + "s06,Fay Formula\n")
    result = exercise("lee-6x6", tmp / "ex", seed=SEED, roster=roster)
    key = load_key(result.out_dir)
    files = dict(zip([v.student.id for v in result.variants], result.student_files))
    filled = tmp / "filled"
    subs = {
        "s01": fill(files["s01"], filled / "s01.xlsx", key, "s01"),
        "s02": fill(files["s02"], filled / "s02.xlsx", key, "s02", answer=lambda b, c, i, j, v: (
            v + 1 if (b, c, i) == ("stride1", 0, 0) and j < 3 else None if (b, c, i) == ("pooled", 1, 1) else v)),
        "s03": fill(files["s03"], filled / "s03.xlsx", key, "s03", answer=lambda b, c, i, j, v: (
            "abc" if (b, c, i, j) == ("stride1", 1, 3, 3) else True if (b, c, i, j) == ("stride1", 1, 3, 2)
            else as_text(v) if b == "stride1" else v + 0.004 if (b, c, i, j) == ("stride2", 0, 0, 0)
            else v + 0.006 if (b, c, i, j) == ("stride2", 0, 0, 1) else v)),
        "s04": fill(files["s04"], filled / "s04.xlsx", key, "s04",
                    inputs={("image", 0, 0, 0): 1 - key.variants["s04"]["inputs"]["image"][0][0][0]}),
        "s05": fill(files["s05"], filled / "s05.xlsx", key, "s05", answer=lambda *a: None),
    }
    returned = tmp / "returned"
    saved = save_through_libreoffice(list(subs.values()), returned)
    # s06 types formulas, saved by openpyxl (as some online tools do): no cached values, grading recalculates.
    saved.append(fill(files["s06"], returned / "s06.xlsx", key, "s06", answer=lambda b, c, i, j, v: f"={v:g}+0"))
    hashes = {p: sha256(p) for p in saved}
    book = grade(saved, result.out_dir, tmp / "gradebook.csv")
    return dict(tmp=tmp, result=result, key=key, saved=saved, hashes=hashes, book=book)


@pytest.mark.libreoffice
def test_every_mark(graded):
    book = graded["book"]
    assert book.questions == {"stride1": 32, "stride2": 8, "pooled": 8} and book.max == 48
    rows = {r.student_id: r for r in book.rows}
    assert list(rows) == ["s01", "s02", "s03", "s04", "s05", "s06"]
    expect = {
        "s01": ("ok", {"stride1": 32, "stride2": 8, "pooled": 8}),
        "s02": ("ok", {"stride1": 29, "stride2": 8, "pooled": 6}),
        "s03": ("ok", {"stride1": 30, "stride2": 7, "pooled": 8}),
        "s04": ("edited-inputs", {"stride1": 32, "stride2": 8, "pooled": 8}),
        "s05": ("ok", {"stride1": 0, "stride2": 0, "pooled": 0}),
        "s06": ("ok", {"stride1": 32, "stride2": 8, "pooled": 8}),
    }
    for sid, (status, marks) in expect.items():
        assert (rows[sid].status, rows[sid].marks) == (status, marks), (sid, rows[sid].note)
        assert rows[sid].total == sum(marks.values())
    assert rows["s01"].note == "" and rows["s05"].note == ""
    assert rows["s06"].note == "answers are formulas saved without values: recalculated in LibreOffice"
    assert rows["s03"].name == "Cy Shannon"
    assert rows["s03"].note.endswith("and 26 more; not numbers (wrong): I21 True, J21 'abc'")
    assert rows["s03"].note.startswith("text read as numbers: B18 ")
    assert rows["s04"].note.startswith("changed input cells (graded against the inputs as generated): B8 (")


@pytest.mark.libreoffice
def test_submissions_are_never_changed(graded):
    for path, digest in graded["hashes"].items():
        assert sha256(path) == digest


@pytest.mark.libreoffice
def test_gradebook_csv_and_tolerance_override(graded, tmp_path):
    df = pd.read_csv(graded["tmp"] / "gradebook.csv", dtype={"student_id": str})
    assert list(df.columns) == ["file", "student_id", "name", "variant_seed", "status", "stride1 (of 32)",
                                "stride2 (of 8)", "pooled (of 8)", "total", "max", "percent", "penalty", "final",
                                "tolerance", "flags", "note"]
    assert df["total"].tolist() == [48, 43, 45, 48, 0, 48]
    assert df["tolerance"].tolist() == [0.005] * 6
    assert df.loc[1, "percent"] == round(100 * 43 / 48, 1)
    # A looser tolerance accepts s03's answer that is 0.006 off.
    book = grade([graded["saved"][2]], graded["result"].out_dir, tmp_path / "gb.xlsx", tolerance=0.01)
    assert book.rows[0].marks["stride2"] == 8
    wb = load_workbook(tmp_path / "gb.xlsx")
    assert wb.sheetnames == ["gradebook", "scheme"]
    scheme = [c.value for c in wb["scheme"]["A"]]
    assert any("within 0.01" in str(s) for s in scheme)
    assert any(str(s).startswith("edited-inputs:") for s in scheme)


@pytest.mark.libreoffice
def test_status_words_are_documented(graded):
    assert {r.status for r in graded["book"].rows} <= set(STATUSES)


@given(st.integers(min_value=-10**6, max_value=10**6), st.sampled_from(["", " ", "  ", "\t", "\u00a0"]))
def test_integers_typed_as_text_read_as_a_teacher_would(n, pad):
    for text in (str(n), f"{pad}{n}{pad}", str(n).replace("-", MINUS), str(n).replace("-", "\u2013")):
        a = read_answer(text)
        assert (a.kind, a.value) == ("text", n), text
    if n >= 0:
        assert read_answer(f"+{n}").value == n
        assert read_answer(f"{n},5").value == n + 0.5  # a decimal comma


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_floats_read_back_exactly(x):
    assert read_answer(x) == read_answer(x) and read_answer(x).value == x
    assert read_answer(repr(x)).value == x


@given(st.text())
def test_any_text_reads_without_error(text):
    a = read_answer(text)
    assert a.kind in ("blank", "text", "bad")
    assert a.value is None or math.isfinite(a.value)


def test_answers_that_are_not_numbers():
    assert read_answer(None).kind == "blank" and read_answer("   ").kind == "blank"
    assert read_answer("1/4").value == 0.25 and read_answer("1/0").kind == "bad"
    for bad in ("abc", "3 4", "1,000.5", "nan", "inf", "1e999", "#DIV/0!", True, float("nan"), "--3", "3-"):
        assert read_answer(bad).kind == "bad", bad
    assert read_answer("\uff13").value == 3  # a full-width digit
    assert read_answer("'-2").value == -2


def test_chained_ops_with_bias_and_avg_pooling_grade_without_an_engine(tmp_path):
    # Typed answers are constants: a file saved by openpyxl (no cached values anywhere) grades without LibreOffice.
    from test_exercise import CHAINED

    from xlconv import spec as specs

    result = exercise(specs.loads(CHAINED, "chained.toml"), tmp_path / "ex", seed=4)
    key = load_key(result.out_dir)
    assert [r.name for r in key.answers] == ["cone", "ctwo", "rone", "pone"]
    assert "cone_bias" in {r.name for r in key.inputs}
    right = fill(result.student_files[0], tmp_path / "right.xlsx", key, "",
                 answer=lambda b, c, i, j, v: round(v, 2) if b == "pone" else v)
    bias = fill(result.student_files[0], tmp_path / "bias.xlsx", key, "", inputs={("cone_bias", 0, 0, 0): 5})
    book = grade([right, bias], result.out_dir, None)
    assert [(r.status, r.total) for r in book.rows] == [("ok", book.max), ("edited-inputs", book.max)]
    assert book.rows[1].note.startswith("changed input cells (graded against the inputs as generated): ")
    assert book.path is None


def test_output_size_exercise_grades(tmp_path):
    result = exercise("output-size", tmp_path / "ex", seed=1)
    key = load_key(result.out_dir)
    right = fill(result.student_files[0], tmp_path / "right.xlsx", key, "",
                 answer=lambda b, c, i, j, v: f"{v:g}".replace(".", ",") if b == "unrounded" else v)
    edited = fill(result.student_files[0], tmp_path / "edited.xlsx", key, "", inputs={("layer0", 0, 0, 1): 7})
    book = grade([right, edited], result.out_dir, None)
    assert book.questions == {"unrounded": 9, "H_out": 9}
    assert [(r.status, r.total) for r in book.rows] == [("ok", 18), ("edited-inputs", 18)]
    assert book.rows[1].note.endswith("generated): F6 (11 -> 7)")
