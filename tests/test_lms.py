"""Course-site import files, checked against the sites' documented formats; and the flag rules on their own."""

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlconv.errors import ExerciseError
from xlconv.flags import CellMark, check_policy, fit_other_variant, late_days, parse_time
from xlconv.feedback import verdict
from xlconv.grade import Gradebook, Row
from xlconv.lms import CANVAS_HEADER, MOODLE_HEADER, canvas_text, moodle_text, read_people

# Canvas: "Import CSV File for Carmen Grades", Ohio State's guide to Canvas's gradebook import
# (https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades):
# columns A-E are Student Name, Student ID, SIS User ID, SIS Login ID, Section, column F the assignment; the file is
# best made from Canvas's own gradebook export, whose header and "Points Possible" row look like this:
CANVAS_EXAMPLE = """Student,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (23)
    Points Possible,,,,,10.00
"Block, Jasen",11,,jblock3430,XC 101,8.00
"""
# Moodle: "Grade import" (https://docs.moodle.org/311/en/Grade_import): "The import file format is the same as the
# corresponding export format"; map "Email Address" to useremail or "Id Number" to useridnumber. The plain-text
# export (grade/export/txt/grade_export_txt.php) writes the user profile fields' full names, then one column per
# grade item:
MOODLE_EXAMPLE = """First name,Last name,ID number,Institution,Department,Email address,Assignment: Essay (Real)
Ada,Lovelace,s01,,,ada@uni.example,7.00
"""


def book():
    rows = [Row("a.xlsx", "ok", student_id="s01", name="Ada Lovelace", marks={"q": 40}),
            Row("b.xlsx", "ok", student_id="s02", name="Bob Babbage", marks={"q": 30}, penalty=10.0),
            Row("c.xlsx", "not-a-workbook"),
            Row("d.xlsx", "ok", student_id="s02", name="Bob Babbage", marks={"q": 20})]
    return Gradebook(rows, {"q": 48}, 0.005, None)


def test_canvas_header_matches_the_documented_file():
    ours = list(csv.reader(io.StringIO(canvas_text(book(), None, "lee-6x6"))))
    documented = list(csv.reader(io.StringIO(CANVAS_EXAMPLE)))
    assert ours[0][:5] == documented[0][:5] == list(CANVAS_HEADER)
    assert ours[1][0] == documented[1][0] and len(ours[1]) == len(documented[1])
    # SIS User ID carries the roster id; a student with two files gets the better one, after penalties.
    assert ours[2:] == [["Ada Lovelace", "", "s01", "", "", "40"], ["Bob Babbage", "", "s02", "", "", "27"]]


def test_moodle_header_matches_the_documented_export(tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text("ID number,First name,Last name,Email address\ns01,Ada,Lovelace,ada@uni.example\n")
    people = read_people(roster)
    ours = list(csv.reader(io.StringIO(moodle_text(book(), people, "Essay"))))
    documented = list(csv.reader(io.StringIO(MOODLE_EXAMPLE)))
    assert ours[0][:6] == documented[0][:6] == list(MOODLE_HEADER)
    assert ours[1] == ["Ada", "Lovelace", "s01", "", "", "ada@uni.example", "40"]
    assert ours[2] == ["Bob", "Babbage", "s02", "", "", "", "27"]


def test_a_canvas_export_as_roster(tmp_path):
    roster = tmp_path / "canvas.csv"
    roster.write_text(CANVAS_EXAMPLE.replace(",,jblock", ",s01,jblock").replace('"Block, Jasen",11', '"Block, Jasen",11'))
    people = read_people(roster, id_column="SIS User ID")
    p = people.by_id["s01"]
    assert (p.get("name"), p.get("sis_login_id"), p.get("section")) == ("Block, Jasen", "jblock3430", "XC 101")
    lines = list(csv.reader(io.StringIO(canvas_text(book(), people, "Quiz 1 (23)"))))
    assert lines[2][:5] == ["Block, Jasen", "", "s01", "jblock3430", "XC 101"]


def test_formula_injection_from_names_is_text(tmp_path):
    b = book()
    b.rows[0].name = "=HYPERLINK(\"http://x\")"
    assert "'=HYPERLINK" in canvas_text(b, None, "x")


@pytest.mark.parametrize("late,days", [(-1, 0), (0, 0), (1, 1), (86400, 1), (86401, 2), (3 * 86400 - 5, 3)])
def test_late_days_count_started_days(late, days):
    due = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    assert late_days(due + dt.timedelta(seconds=late), due) == days


@pytest.mark.parametrize("text,expected", [
    ("2025-03-01T23:59Z", dt.datetime(2025, 3, 1, 23, 59, tzinfo=dt.timezone.utc)),
    ("2025-03-01T23:59:00+01:00", dt.datetime(2025, 3, 1, 22, 59, tzinfo=dt.timezone.utc)),
    ("Saturday, 1 March 2025, 11:59 PM", dt.datetime(2025, 3, 1, 23, 59)),
])
def test_times_as_sites_write_them(text, expected):
    assert parse_time(text, "x") == expected


@pytest.mark.parametrize("args,message", [
    (("maybe", None, 0), "--formulas"), (("flag", "tomorrow", 0), "--due"), (("flag", None, 10), "needs --due"),
    (("flag", "2025-03-01T00:00Z", 101), "--late-penalty"), (("flag", "2025-03-01T00:00Z", float("nan")), "--late"),
])
def test_bad_policies_name_the_option(args, message):
    with pytest.raises(ExerciseError, match=message):
        check_policy(*args)


@given(st.integers(0, 2**32 - 1))
def test_a_copy_fits_the_other_variant_and_own_answers_never_do(seed):
    rng = np.random.default_rng(seed)
    own = rng.integers(-3, 4, (2, 4, 4)).astype(float)
    other = rng.integers(-3, 4, (2, 4, 4)).astype(float)
    differ = int((own != other).sum())
    assert fit_other_variant(own, own, other, 0.005) == 0
    fit = fit_other_variant(other, own, other, 0.005)
    assert fit == (32 if differ >= 3 else 0)


@pytest.mark.parametrize("value,formula,kind,number,expect", [
    (None, "", "blank", None, ("wrong", "Blank: no answer.")),
    ("abc", "", "bad", None, ("not-a-number", "Not a number: 'abc' is not an answer.")),
    (-2.0, "", "number", -2.0, ("wrong", "Wrong: -2: the sign is flipped.")),
    (4.0, "", "number", 4.0, ("wrong", "Wrong: 4: transposed: that is the right value of row 1, column 2.")),
    (2.5, "", "number", 2.5, ("wrong", "Wrong: 2.5: off by 0.5 (answers within 0.005 count).")),
    (9.0, "", "number", 9.0, ("wrong", "Wrong: 9: that is another channel's value at this place.")),
    (2.0, "=1+1", "number", 2.0, ("right", "Right: 2. It was typed as the formula =1+1; graded by its value. "
                                           "Type numbers, not formulas.")),
])
def test_verdicts_name_the_mistake(value, formula, kind, number, expect):
    expected = np.array([[[2.0, 4.0], [3.0, 1.0]], [[9.0, 0.0], [0.0, 0.0]]])
    cell = CellMark("q", 0, 0, 0, value, formula, kind, number, number is not None and abs(number - 2.0) <= 0.005)
    if value == 4.0:
        cell = CellMark("q", 0, 1, 0, value, formula, kind, number, False)
        expected[0, 1, 0] = 3.0
    assert verdict(cell, expected, 0.005, "flag", False) == expect


def test_formulas_zero_and_marks_only():
    expected = np.array([[[2.0]]])
    cell = CellMark("q", 0, 0, 0, 2.0, "=1+1", "number", 2.0, True)
    assert verdict(cell, expected, 0.005, "zero", False)[0] == "wrong"
    wrong = CellMark("q", 0, 0, 0, -2.0, "", "number", -2.0, False)
    assert verdict(wrong, expected, 0.005, "flag", True) == ("wrong", "Wrong: -2 is not within 0.005 of the right value.")


def test_missing_roster_column_is_one_line(tmp_path: Path):
    roster = tmp_path / "r.csv"
    roster.write_text("who,mail\nx,y\n")
    with pytest.raises(ExerciseError, match="no student id column"):
        read_people(roster)
