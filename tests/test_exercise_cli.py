"""The exercise loop end to end through the command line: exercise -> fill -> save in LibreOffice -> grade."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from exercise_helpers import fill, save_through_libreoffice, sha256, write_roster

from xlconv.cli import main
from xlconv.grade import load_key


@pytest.mark.libreoffice
def test_exercise_fill_grade_end_to_end(tmp_path, capsys):
    roster = write_roster(tmp_path, "Student ID,Name\nA1,Ann\nB2,Ben\nC3,Cat\n")
    out = tmp_path / "ex"
    assert main(["exercise", "lee-6x6", "--seed", "2024", "--roster", str(roster), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out.split()
    assert printed[:3] == [str(out / "students" / f"lee-6x6-{i}.xlsx") for i in ("A1", "B2", "C3")]
    assert printed[-2:] == [str(out / "index.csv"), str(out / "exercise.json")]
    assert "seed 2024: 3 variant(s); random grids: filter1, filter2, image" in captured.err
    index = pd.read_csv(out / "index.csv", dtype=str)
    assert index["student_id"].tolist() == ["A1", "B2", "C3"] and index["name"].tolist() == ["Ann", "Ben", "Cat"]

    key = load_key(out)
    filled = [fill(out / "students/lee-6x6-A1.xlsx", tmp_path / "filled/A1.xlsx", key, "A1"),
              fill(out / "students/lee-6x6-B2.xlsx", tmp_path / "filled/B2.xlsx", key, "B2",
                   answer=lambda b, c, i, j, v: v if b == "stride1" else None)]
    returned = save_through_libreoffice(filled, tmp_path / "returned")
    junk = tmp_path / "returned" / "notes.xlsx"
    junk.write_text("not a workbook")
    hashes = {p: sha256(p) for p in returned}
    gradebook = tmp_path / "gradebook.csv"
    proc = subprocess.run([sys.executable, "-m", "xlconv", "grade", str(tmp_path / "returned"), "--key", str(out),
                           "-o", str(gradebook)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'returned' / 'A1.xlsx'}: ok 48/48"
    assert lines[1] == f"{tmp_path / 'returned' / 'B2.xlsx'}: ok 32/48"
    assert lines[2].startswith(f"{junk}: not-a-workbook - (not an .xlsx workbook")
    assert lines[3] == str(gradebook)
    df = pd.read_csv(gradebook)
    assert df["status"].tolist() == ["ok", "ok", "not-a-workbook"]
    assert df["total"].tolist()[:2] == [48, 32] and pd.isna(df["total"][2])
    assert all(sha256(p) == h for p, h in hashes.items())


def test_no_self_check_flag(tmp_path, capsys):
    assert main(["exercise", "velickovic-7x7", "--seed", "1", "--no-self-check", "-o", str(tmp_path / "ex")]) == 0
    assert load_key(tmp_path / "ex").records and not any(r.role == "check" for r in load_key(tmp_path / "ex").records)


@pytest.mark.parametrize("args, message", [
    (["exercise", "lee-6x6", "--roster", "{tmp}/roster.csv"], r"roster\.csv: no student id column"),
    (["exercise", "lee-6x6", "--roster", "{tmp}/roster.csv", "--id-column", "sid"],
     r"roster\.csv: has no column 'sid' for the student id"),
    (["exercise", "no-such-sheet"], r"no-such-sheet: no such spec file"),
    (["exercise", "lee-6x6", "--grid", "image"], r"--grid 'image': expected NAME=FILE\.csv"),
    (["exercise", "output-size", "--grid", "x=y.csv"], r"an output-size sheet has no grids for --grid"),
    (["grade", "{tmp}/x.xlsx", "--key", "{tmp}/nokey"], r"exercise\.json: no such file; pass --key the folder"),
])
def test_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    import re

    (tmp_path / "roster.csv").write_text("email,mark\na@b,1\n")
    args = [a.format(tmp=tmp_path) for a in args] + ["-o", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("xlconv: ") and err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "out").exists() or args[0] == "grade"


def test_grade_of_only_hostile_files_still_writes_a_gradebook(tmp_path, capsys):
    assert main(["exercise", "velickovic-7x7", "--seed", "1", "-o", str(tmp_path / "ex")]) == 0
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04garbage")
    assert main(["grade", str(bad), "--key", str(tmp_path / "ex"), "-o", str(tmp_path / "gb.xlsx")]) == 0
    df = pd.read_excel(tmp_path / "gb.xlsx", sheet_name="gradebook", engine="openpyxl")
    assert df["status"].tolist() == ["truncated"]
    assert Path(tmp_path / "gb.xlsx").exists()
