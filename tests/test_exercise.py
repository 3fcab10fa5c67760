"""xlconv exercise: variants, student workbooks, answer keys, index and manifest."""

import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from exercise_helpers import fill, save_through_libreoffice, write_roster
from openpyxl import load_workbook

from xlconv import spec as specs
from xlconv.errors import ExerciseError, SpecError
from xlconv.exercise import exercise, read_roster, variant_seed
from xlconv.formulas import CHECK_RIGHT, CHECK_WRONG
from xlconv.grade import load_key
from xlconv.verify import read_records, verify

CHAINED = """
title = "Chained ops"
sheet = "Chained"
note = "conv, a padded conv of it, relu, then avg pooling."

[grids.image]
values = [[1, 0, 1, 0, 1, 1], [0, 1, 1, 0, 0, 1], [1, 1, 0, 1, 0, 0], [0, 0, 1, 1, 1, 0], [1, 0, 0, 1, 0, 1], [0, 1, 0, 0, 1, 1]]
exercise = [0, 2]

[grids.ka]
values = [[1, -1], [-1, 1]]
exercise = [-1, 1]

[grids.kb]
values = [[1, 2], [0, -1]]

[[conv]]
name = "cone"
input = "image"
weight = "ka"
bias = 1

[[conv]]
name = "ctwo"
input = "cone"
weight = "kb"
padding = 1

[[relu]]
name = "rone"
input = "ctwo"

[[pool]]
name = "pone"
input = "rone"
mode = "avg"
kernel_size = 2
stride = 1
"""


def sheet_xml(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        return zf.read("xl/worksheets/sheet1.xml").decode()


def values(path: Path, sheet: str, grid) -> list[list]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = load_workbook(path, data_only=True)
    ws = wb[sheet]
    return [[ws.cell(grid.top + i + 1, grid.left + j + 1).value for j in range(grid.width)] for i in range(grid.height)]


def test_variant_seed_is_a_stable_hash_of_seed_and_id():
    # Fixed values: SHA-256, never Python's salted hash(), so they hold across runs and machines.
    assert variant_seed(42, "s001") == 131020622079352
    assert variant_seed(42, "") == variant_seed(42, "")
    assert len({variant_seed(s, i) for s in (1, 2) for i in ("a", "b", "c")}) == 6
    assert all(0 <= variant_seed(s, "x") < 2**48 for s in range(50))


def test_variants_draw_integers_in_range_and_keep_fixed_grids(tmp_path):
    spec = specs.loads(CHAINED, "chained.toml")
    roster = write_roster(tmp_path)
    result = exercise(spec, tmp_path / "ex", seed=7, roster=roster)
    assert [v.student.id for v in result.variants] == ["s01", "s02", "s03", "s04", "s05"]
    assert result.randomized == ["image", "ka"]
    images = []
    for v in result.variants:
        g = {x.name: x.values for x in v.spec.grids}
        assert set(np.unique(g["image"])) <= {0, 1, 2} and np.unique(g["image"]).size > 1
        assert set(np.unique(g["ka"])) <= {-1, 0, 1}
        assert g["kb"].tolist() == [[[1, 2], [0, -1]]]  # no exercise range: the spec's values
        images.append(g["image"].tobytes())
    assert len(set(images)) == 5
    index = (tmp_path / "ex" / "index.csv").read_text().splitlines()
    assert index[0] == "student_id,name,file,key,variant_seed"
    assert index[1] == f"s01,Ada Lovelace,students/chained-s01.xlsx,keys/chained-s01-key.xlsx,{variant_seed(7, 's01')}"


def test_same_seed_and_roster_give_byte_identical_files(tmp_path):
    roster = write_roster(tmp_path)
    a = exercise("lee-6x6", tmp_path / "a", seed=5, roster=roster)
    b = exercise("lee-6x6", tmp_path / "b", seed=5, roster=roster)
    files_a = sorted(p.relative_to(a.out_dir) for p in a.out_dir.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.out_dir) for p in b.out_dir.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 12
    for f in files_a:
        assert (a.out_dir / f).read_bytes() == (b.out_dir / f).read_bytes(), f
    with zipfile.ZipFile(a.student_files[0]) as zf:
        assert {i.date_time for i in zf.infolist()} <= {(1980, 1, 1, 0, 0, 0), (1980, 1, 31, 0, 0, 0)}
        assert b"2024-01-01T00:00:00Z" in zf.read("docProps/core.xml")
    c = exercise("lee-6x6", tmp_path / "c", seed=6, roster=roster)
    assert c.student_files[0].read_bytes() != a.student_files[0].read_bytes()


def test_key_and_student_are_laid_out_cell_for_cell_alike(tmp_path):
    result = exercise("lee-6x6", tmp_path / "ex", seed=1)
    key, _ = read_records(result.key_files[0])
    student, _ = read_records(result.student_files[0])
    assert [(r.name, r.grids) for r in key] == [(r.name, r.grids) for r in student]
    roles = {r.name: (k.role, r.role) for k, r in zip(key, student)}
    assert roles["stride1"] == roles["stride2"] == roles["pooled"] == ("output", "answer")
    assert roles["stride1_check"] == ("check", "check") and roles["image"] == ("input", "input")
    assert not any(r.role == "trace" for r in key + student)  # the trace panel computes answers


def test_student_cells_blank_unlocked_and_sheet_protected_without_password(tmp_path):
    result = exercise("lee-6x6", tmp_path / "ex", seed=1)
    k = load_key(result.out_dir)
    wb = load_workbook(result.student_files[0])
    ws = wb[k.sheet]
    assert ws.protection.sheet and not ws.protection.password
    for rec in k.answers:
        for g in rec.grids:
            for i in range(g.height):
                for j in range(g.width):
                    cell = ws.cell(g.top + i + 1, g.left + j + 1)
                    assert cell.value is None and cell.protection.locked is False
                    assert cell.fill.fgColor.rgb.endswith("FFEB9C")
    g = k.inputs[0].grids[0]
    assert ws.cell(g.top + 1, g.left + 1).protection.locked is True
    assert wb["_xlconv"].sheet_state == "hidden"


def test_no_self_check_reveals_nothing(tmp_path):
    result = exercise("lee-6x6", tmp_path / "ex", seed=1, self_check=False)
    k = load_key(result.out_dir)
    xml = sheet_xml(result.student_files[0])
    formulas = re.findall(r"<f>(.*?)</f>", xml)
    assert formulas, "padded copies and the size tables stay live"
    for f in formulas:
        assert not re.search(r"SUMPRODUCT|MAX|AVERAGE|SUM\(|IF\(ISNUMBER|" + CHECK_RIGHT, f), f
    # Answer cells: written blank, with no cached value, no formula.
    for rec in k.answers:
        for g in rec.grids:
            for i in range(g.height):
                for j in range(g.width):
                    ref = g.cell(i, j)
                    m = re.search(rf'<c r="{ref}"[^>]*?(/>|>(.*?)</c>)', xml)
                    assert m and not m.group(2), (ref, m and m.group(0))
    # The hidden record holds the inputs as generated and the variant, never an answer.
    wb = load_workbook(result.student_files[0])
    hidden = wb["_xlconv"]
    meta = json.loads(hidden["H1"].value)
    assert meta["mode"] == "student" and meta["self_check"] is False
    assert set(json.loads(hidden["H2"].value)) == {"image", "filter1", "filter2"}
    text = " ".join(str(c.value) for row in hidden.iter_rows() for c in row if c.value is not None)
    assert "score" not in text and CHECK_RIGHT not in text
    assert not any(r.role == "check" for r in read_records(result.student_files[0])[0])


def test_self_checks_read_only_the_inputs_and_their_own_answer(tmp_path):
    result = exercise(specs.loads(CHAINED, "chained.toml"), tmp_path / "ex", seed=2)
    k = load_key(result.out_dir)
    records, _ = read_records(result.student_files[0])
    answer_cells = {(g.top + i, g.left + j) for r in k.answers for g in r.grids
                    for i in range(g.height) for j in range(g.width)}
    from xlconv.cells import parse_a1, parse_range

    wb = load_workbook(result.student_files[0])
    ws = wb[k.sheet]
    for rec in (r for r in records if r.role == "check"):
        answers = next(r for r in k.answers if r.name == rec.info["output"])
        for g, ag in zip(rec.grids, answers.grids):
            for i in range(g.height):
                for j in range(g.width):
                    f = ws.cell(g.top + i + 1, g.left + j + 1).value
                    assert f.startswith("=IF(")
                    refs = set()
                    for ref in re.findall(r"\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?", f):
                        grid = parse_range(ref)
                        refs |= {(grid.top + a, grid.left + b) for a in range(grid.height) for b in range(grid.width)}
                    assert refs & answer_cells == {(ag.top + i, ag.left + j)}, (rec.name, i, j)
    assert parse_a1("B1") == (0, 1)


@pytest.mark.libreoffice
def test_key_verifies_and_self_checks_tick_right_answers_in_libreoffice(tmp_path):
    roster = write_roster(tmp_path, "id\ns01\n")
    result = exercise(specs.loads(CHAINED, "chained.toml"), tmp_path / "ex", seed=3, roster=roster)
    k = load_key(result.out_dir)
    [report] = verify(result.key_files)
    assert report.ok and report.cells > 0
    right = fill(result.student_files[0], tmp_path / "right.xlsx", k, "s01")
    wrong = fill(result.student_files[0], tmp_path / "wrong.xlsx", k, "s01",
                 answer=lambda b, c, i, j, v: v + 1 if (b, i, j) == ("ctwo", 0, 0) else
                 ("text" if (b, i, j) == ("cone", 1, 1) else v))
    outs = save_through_libreoffice([result.key_files[0], right, wrong], tmp_path / "returned")
    records, _ = read_records(result.key_files[0])
    checks = [r for r in records if r.role == "check"]
    score = next(r for r in records if r.role == "score")
    total = sum(g.height * g.width for r in checks for g in r.grids)
    for path, wrong_cells, not_numbers in ((outs[0], 0, 0), (outs[1], 0, 0), (outs[2], 1, 1)):
        marks = [v for r in checks for g in r.grids for row in values(path, k.sheet, g) for v in row]
        assert marks.count(CHECK_WRONG) == wrong_cells and marks.count("?") == not_numbers
        assert marks.count(CHECK_RIGHT) == total - wrong_cells - not_numbers
        assert values(path, k.sheet, score.grids[0]) == [[total - wrong_cells - not_numbers]]


def test_roster_errors_name_the_file_and_column(tmp_path):
    def roster(text):
        p = tmp_path / "r.csv"
        p.write_text(text)
        return p

    with pytest.raises(ExerciseError, match=r"r\.csv: no student id column.*columns: 'email', 'mark'"):
        read_roster(roster("email,mark\na@b,1\n"))
    with pytest.raises(ExerciseError, match=r"r\.csv: row 3: column 'id' repeats the student id 's1' of row 2"):
        read_roster(roster("id,name\ns1,A\ns1,B\n"))
    with pytest.raises(ExerciseError, match=r"r\.csv: row 3: column 'ID' \(the student id\) is empty"):
        read_roster(roster("ID,Name\ns1,A\n,B\n"))
    with pytest.raises(ExerciseError, match=r"r\.csv: has no column 'matric' for the student id"):
        read_roster(roster("id\ns1\n"), id_column="matric")
    with pytest.raises(ExerciseError, match=r"give the same file name 'a_b'"):
        read_roster(roster("id\na/b\na b\n"))
    with pytest.raises(ExerciseError, match=r"nope\.csv: no such roster file"):
        read_roster(tmp_path / "nope.csv")
    students = read_roster(roster("Student ID,Full Name,extra\n007,James Bond,x\n\n 42 , Deep \n"))
    assert [(s.id, s.name) for s in students] == [("007", "James Bond"), ("42", "Deep")]
    assert [s.id for s in read_roster(roster("matric\nx1\n"), id_column="matric")] == ["x1"]


def test_ids_never_make_paths_outside_the_folder(tmp_path):
    roster = write_roster(tmp_path, "id\n../../evil\n/etc/passwd\n")
    result = exercise("velickovic-7x7", tmp_path / "ex", seed=1, roster=roster)
    for p in result.student_files + result.key_files:
        assert p.resolve().is_relative_to((tmp_path / "ex").resolve()) and p.exists()
    assert [p.name for p in result.student_files] == ["velickovic-7x7-evil.xlsx", "velickovic-7x7-etc_passwd.xlsx"]


def test_csv_grids_replace_a_grid_for_every_variant(tmp_path):
    (tmp_path / "img.csv").write_text("1,2,3,4,5\n5,4,3,2,1\n0,0,1,0,0\n1,1,1,1,1\n2,0,2,0,2\n")
    roster = write_roster(tmp_path)
    result = exercise("convolved-feature-5x5", tmp_path / "ex", seed=1, roster=roster,
                      grid_csv={"input": [tmp_path / "img.csv"]})
    assert result.randomized == ["filter"]
    for v in result.variants:
        assert v.spec.grid("input").values[0, 0].tolist() == [1, 2, 3, 4, 5]
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    with pytest.raises(ExerciseError, match=r"bad\.csv: row 2 has a cell that is not a number"):
        exercise("convolved-feature-5x5", tmp_path / "ex2", seed=1, grid_csv={"input": tmp_path / "bad.csv"})
    (tmp_path / "small.csv").write_text("1,2\n3,4\n")
    with pytest.raises(ExerciseError, match=r"with the CSV grids: .*larger than the padded input 2x2"):
        exercise("convolved-feature-5x5", tmp_path / "ex3", seed=1, grid_csv={"input": tmp_path / "small.csv"})
    with pytest.raises(ExerciseError, match=r"has no grid 'photo'"):
        exercise("convolved-feature-5x5", tmp_path / "ex4", seed=1, grid_csv={"photo": tmp_path / "img.csv"})


def test_refuses_to_overwrite_the_keys_of_another_seed(tmp_path):
    exercise("velickovic-7x7", tmp_path / "ex", seed=1)
    exercise("velickovic-7x7", tmp_path / "ex", seed=1)  # the same files again: fine
    with pytest.raises(ExerciseError, match=r"already holds another exercise or seed"):
        exercise("velickovic-7x7", tmp_path / "ex", seed=2)


def test_other_spec_kinds_and_bad_arguments_are_errors(tmp_path):
    with pytest.raises(ExerciseError, match=r"output-size\.toml: an output-size sheet has no grids for --grid"):
        exercise("output-size", tmp_path / "ex", seed=1, grid_csv={"x": "x.csv"})
    with pytest.raises(ExerciseError, match=r"seed must be an integer >= 0"):
        exercise("lee-6x6", tmp_path / "ex", seed=-1)
    with pytest.raises(ExerciseError, match=r"tolerance must be a number from 0 to 0.5, got -1"):
        exercise("lee-6x6", tmp_path / "ex", seed=1, tolerance=-1)


def test_exercise_note_replaces_the_note_on_exercise_sheets(tmp_path):
    text = CHAINED.replace('note = "conv, a', '[meta]\nx = "conv, a')
    with pytest.raises(SpecError, match=r"meta is not a known key"):
        specs.loads(text, "x.toml")
    spec = specs.loads(CHAINED + '\n[exercise]\nnote = "Work it out by hand."\n', "x.toml")
    assert spec.exercise_note == "Work it out by hand."
    with pytest.raises(SpecError, match=r"exercise\.notes is not a known key"):
        specs.loads(CHAINED + '\n[exercise]\nnotes = "x"\n', "x.toml")
    result = exercise(spec, tmp_path / "ex", seed=1)
    ws = load_workbook(result.student_files[0])["Chained"]
    assert ws["B2"].value.startswith("Work it out by hand.")
    assert ws["B1"].value == "Chained ops (exercise)"


def test_output_size_exercise_hides_the_lecture_numbers(tmp_path):
    result = exercise("output-size", tmp_path / "ex", seed=1)
    k = load_key(result.out_dir)
    assert [r.name for r in k.answers] == ["unrounded", "H_out"]
    assert k.expected("")["H_out"].ravel().tolist() == [55, 27, 27, 13, 13, 13, 13, 6, 13]
    assert k.expected("")["unrounded"].ravel()[0] == 55.25
    student = load_workbook(result.student_files[0])["Output size"]
    key = load_workbook(result.key_files[0])["Output size"]
    texts = [str(c.value) for row in student.iter_rows() for c in row if c.value is not None]
    assert not any("55.25" in t or "= 27" in t for t in texts)  # the lecture's worked numbers are answers
    assert any("55.25" in str(c.value) for row in key.iter_rows() for c in row)
    xml = sheet_xml(result.student_files[0])
    chained = re.findall(r"<f>K\d+</f><v>([^<]*)</v>", xml)
    assert chained == ["0"] * 7  # chained H_in cells cache 0, not the answer above
    for rec in k.answers:
        for i in range(rec.grids[0].height):
            m = re.search(rf'<c r="{rec.grids[0].cell(i, 0)}"[^>]*?(/>|>(.*?)</c>)', xml)
            assert m and not m.group(2)


@pytest.mark.libreoffice
def test_output_size_key_verifies_and_checks_tick(tmp_path):
    result = exercise("output-size", tmp_path / "ex", seed=1)
    k = load_key(result.out_dir)
    [report] = verify(result.key_files)
    assert report.ok and report.cells == 36
    wrong = fill(result.student_files[0], tmp_path / "filled.xlsx", k, "",
                 answer=lambda b, c, i, j, v: v + 1 if (b, i) == ("H_out", 0) else v)
    [out] = save_through_libreoffice([wrong], tmp_path / "returned")
    records, _ = read_records(result.key_files[0])
    checks = [g for r in records if r.role == "check" for g in r.grids]
    marks = [v for g in checks for row in values(out, k.sheet, g) for v in row]
    # Row 0's H_out is wrong, and row 1's H_in (chained from it) shows the wrong value, yet row 1's checks
    # follow the true chain: only one cross.
    assert marks.count(CHECK_WRONG) == 1 and marks.count(CHECK_RIGHT) == 17
    h_in = values(out, k.sheet, next(r for r in records if r.name == "layer1").grids[0].window(0, -1, 1, 1))
    assert h_in == [[56]]


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), 1e308, -1e-9, True, "0.1"])
def test_a_tolerance_that_would_pass_or_fail_everything_is_refused(tmp_path, tolerance):
    with pytest.raises(ExerciseError, match="tolerance must be a number from 0 to 0.5"):
        exercise("lee-6x6", tmp_path / "ex", seed=1, tolerance=tolerance)
    assert not (tmp_path / "ex").exists()


@pytest.mark.parametrize("name", ["lee-6x6", "dilation-5x5", "padding-same-full"])
def test_conv_exercise_files_print_whole_carry_notes_and_no_panels(tmp_path, name):
    """A student's file and its key print like the worksheet (blocks whole on A4, fitted to the width), carry the
    notes on parameter and answer cells, say the cross-correlation once, and have no step-by-step panel or panel
    colour: a panel computes the answers."""
    from test_workbook_contents import check_notes, check_print_setup

    from xlconv.sheets import style

    result = exercise(name, tmp_path / "ex", seed=7)
    for path in [*result.student_files, *result.key_files]:
        check_print_setup(path)
        found = check_notes(path)
        ws = load_workbook(path).worksheets[0]
        assert ws["B2"].value.count("cross-correlation") == 1
        texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
        assert not any("Step by step" in t for t in texts)
        panel_fills = {c[1:].upper() for c in style.PANEL_COLOURS}
        for cf in ws.conditional_formatting:
            for rule in cf.rules:
                fill = rule.dxf.fill.bgColor.rgb[-6:] if rule.dxf and rule.dxf.fill and rule.dxf.fill.bgColor else ""
                assert fill not in panel_fills, (path.name, cf.sqref)
        assert not any(re.search(r"\b4\b.*first|first one is", t) for t in found.values())
    if name == "lee-6x6":  # stride 2 never reads the image's last row and column, in the student's file too
        k = load_key(result.out_dir)
        g = next(r for r in k.inputs if r.name == "image").grids[0]
        ws = load_workbook(result.student_files[0])[k.sheet]
        corner = ws.cell(g.bottom + 1, g.right + 1)
        assert corner.fill.patternType == "darkUp" and "No window of stride2" in corner.comment.text


@pytest.mark.libreoffice
def test_drawn_dilation_and_padding_exercises_verify(tmp_path):
    results = [exercise(n, tmp_path / n, seed=4) for n in ("dilation-5x5", "padding-same-full")]
    reports = verify([p for r in results for p in r.key_files])
    assert all(r.ok and r.cells > 0 for r in reports), [r.lines() for r in reports]
    k = load_key(results[1].out_dir)
    assert [r.name for r in k.answers] == ["same", "full"]
    assert k.expected("")["full"].shape == (1, 7, 7)
