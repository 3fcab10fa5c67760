"""The instructor's loop end to end: an exercise for a roster, answers saved through LibreOffice (one right, one
with mistakes, one copied from a neighbour's variant, one typed as formulas and late), graded with feedback,
flags, a late penalty and a Canvas file; the feedback workbooks read back with openpyxl."""

import csv
import datetime as dt
import os
import re

import numpy as np
import pytest
from exercise_helpers import fill, save_through_libreoffice, sha256, write_roster
from openpyxl import load_workbook

from xlconv.exercise import exercise
from xlconv.feedback import all_values
from xlconv.grade import grade, load_key
from xlconv.lms import CANVAS_HEADER

SEED = 23
ROSTER = ("student_id,name,email,sis_login_id,section\n"
          "s01,Ada Lovelace,ada@uni.example,alovelace,Lab A\n"
          "s02,Bob Babbage,bob@uni.example,bbabbage,Lab A\n"
          "s03,Cy Shannon,cy@uni.example,cshannon,Lab B\n"
          "s04,Dee Hopper,dee@uni.example,dhopper,Lab B\n")
DUE = dt.datetime(2025, 3, 1, 23, 59, tzinfo=dt.timezone.utc)
GREEN, RED, YELLOW = "FFC6EFCE", "FFFFC7CE", "FFFFEB9C"


def s02_answer(b, c, i, j, v):
    """Mistakes of kinds the feedback names: off by one, a flipped sign, a blank, text."""
    if (b, c, i) == ("stride1", 0, 0) and j < 2:
        return v + 1
    if (b, c, i, j) == ("stride1", 1, 2, 2):
        return -v if v else 5.0
    if (b, c, i, j) == ("pooled", 0, 0, 0):
        return None
    if (b, c, i, j) == ("pooled", 1, 1, 1):
        return "dunno"
    return v


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    roster = write_roster(tmp, ROSTER)
    result = exercise("lee-6x6", tmp / "ex", seed=SEED, roster=roster)
    key = load_key(result.out_dir)
    files = dict(zip([v.student.id for v in result.variants], result.student_files))
    right01 = key.expected("s01")
    filled = tmp / "filled"
    subs = [
        fill(files["s01"], filled / "s01.xlsx", key, "s01"),
        fill(files["s02"], filled / "s02.xlsx", key, "s02", answer=s02_answer),
        # s03 types s01's right answers into s03's own workbook.
        fill(files["s03"], filled / "s03.xlsx", key, "s03",
             answer=lambda b, c, i, j, v: float(right01[b][c, i, j])),
        # s04 types the stride-2 answers as formulas (LibreOffice saves their values).
        fill(files["s04"], filled / "s04.xlsx", key, "s04",
             answer=lambda b, c, i, j, v: f"={v:g}*1" if b == "stride2" else v),
    ]
    saved = save_through_libreoffice(subs, tmp / "returned")
    late = (DUE + dt.timedelta(hours=36)).timestamp()  # 1.5 days late: 2 started days
    on_time = (DUE - dt.timedelta(hours=2)).timestamp()
    for p in saved:
        os.utime(p, (on_time, late if p.stem == "s04" else on_time))
    hashes = {p: sha256(p) for p in saved}
    runs = []
    for n in (1, 2):
        out = tmp / f"run{n}"
        book = grade(saved, result.out_dir, out / "gradebook.xlsx", feedback=out / "feedback", roster=roster,
                     lms="canvas", due=DUE.isoformat(), late_penalty=10)
        runs.append(book)
    marks_only = grade(saved, result.out_dir, tmp / "mo" / "gradebook.csv", feedback=tmp / "mo" / "feedback",
                       marks_only=True)
    return dict(tmp=tmp, key=key, saved=saved, hashes=hashes, runs=runs, marks_only=marks_only)


def rows(book):
    return {r.student_id: r for r in book.rows}


def sheet(path, key):
    return load_workbook(path)[key.sheet]


@pytest.mark.libreoffice
def test_gradebook_rows_flags_and_penalties(loop):
    key, book = loop["key"], loop["runs"][0]
    r = rows(book)
    assert [r[s].status for s in ("s01", "s02", "s03", "s04")] == ["ok"] * 4
    assert r["s01"].marks == {"stride1": 32, "stride2": 8, "pooled": 8} and not r["s01"].flags
    assert r["s02"].marks == {"stride1": 29, "stride2": 8, "pooled": 6}
    # s03 scores exactly the cells where s01's right answers happen to equal s03's (NumPy oracle from the key).
    own, src = key.expected("s03"), key.expected("s01")
    assert r["s03"].marks == {q: int(np.isclose(own[q], src[q]).sum()) for q in own}
    assert [f for f in r["s03"].flags if "variant" in f] == ["answers match s01's variant (stride1, stride2, pooled)"]
    assert not any("variant" in f for s in ("s01", "s02", "s04") for f in r[s].flags)
    # Formulas count by value by default, and are flagged.
    assert r["s04"].marks == {"stride1": 32, "stride2": 8, "pooled": 8}
    assert r["s04"].flags[0].startswith("8 answers typed as formulas (stride2[1](1,1)")
    assert "late 2 days" in r["s04"].flags
    assert r["s04"].penalty == 20 and r["s04"].final == 38.4
    assert "late 2 days: submitted 2025-03-03 11:59 UTC (the file's modification time), due 2025-03-01 23:59 UTC; " \
           "10% per started day = -20% of the marks" in r["s04"].note
    assert all(r[s].penalty == 0 and r[s].final == r[s].total for s in ("s01", "s02", "s03"))
    wb = load_workbook(book.path)
    head = [c.value for c in wb["gradebook"][1]]
    assert head[-6:] == ["percent", "penalty", "final", "tolerance", "flags", "note"]
    values = {row[1]: dict(zip(head, row)) for row in wb["gradebook"].iter_rows(min_row=2, values_only=True)}
    assert values["s04"]["final"] == 38.4 and "late 2 days" in values["s04"]["flags"]
    assert "answers match s01's variant" in values["s03"]["flags"]


@pytest.mark.libreoffice
def test_submissions_untouched_and_grading_twice_gives_the_same_bytes(loop):
    for path, digest in loop["hashes"].items():
        assert sha256(path) == digest
    a, b = loop["runs"]
    assert sha256(a.path) == sha256(b.path)
    assert sha256(a.lms) == sha256(b.lms)
    assert [p.name for p in a.feedback] == [f"s0{n}-feedback.xlsx" for n in (1, 2, 3, 4)]
    assert [sha256(p) for p in a.feedback] == [sha256(p) for p in b.feedback]


@pytest.mark.libreoffice
def test_canvas_file(loop):
    book = loop["runs"][0]
    lines = list(csv.reader(book.lms.read_text(encoding="utf-8").splitlines()))
    assert tuple(lines[0][:5]) == CANVAS_HEADER and lines[0][5] == "lee-6x6"
    assert lines[1] == ["    Points Possible", "", "", "", "", "48"]
    by_sis = {row[2]: row for row in lines[2:]}
    assert by_sis["s04"] == ["Dee Hopper", "", "s04", "dhopper", "Lab B", "38.40"]
    assert by_sis["s02"][5] == "43" and by_sis["s01"][3:5] == ["alovelace", "Lab A"]


def comments(ws):
    return {c.coordinate: c.comment.text for row in ws.iter_rows() for c in row if c.comment}


@pytest.mark.libreoffice
def test_feedback_colours_and_notes(loop):
    key, book = loop["key"], loop["runs"][0]
    paths = {p.stem.split("-")[0]: p for p in book.feedback}
    ws = sheet(paths["s02"], key)
    notes = comments(ws)
    stride1 = next(b for b in key.answers if b.name == "stride1")
    pooled = next(b for b in key.answers if b.name == "pooled")
    g0, g1 = stride1.grids
    first = g0.cell(0, 0)
    assert ws[first].fill.fgColor.rgb == RED and ws[g0.cell(1, 0)].fill.fgColor.rgb == GREEN
    assert notes[first].startswith("Wrong: ") and "off by 1 (answers within 0.005 count)" in notes[first]
    flipped = key.expected("s02")["stride1"][1, 2, 2] != 0
    assert ("sign is flipped" if flipped else "off by") in notes[g1.cell(2, 2)]
    assert notes[pooled.grids[0].cell(0, 0)] == notes[pooled.grids[0].cell(0, 0)].strip()
    assert notes[pooled.grids[0].cell(0, 0)].startswith("Blank: no answer.")
    assert ws[pooled.grids[1].cell(1, 1)].fill.fgColor.rgb == YELLOW
    assert notes[pooled.grids[1].cell(1, 1)].startswith("Not a number: 'dunno'")
    assert notes[g0.cell(1, 0)].startswith("Right: ")
    # Each question shows its mark.
    texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert any(t.endswith("29 of 32 marks") for t in texts) and any(t.endswith("6 of 8 marks") for t in texts)
    assert any(t.startswith("Marks: 43 of 48") for t in texts)
    # The copier's feedback names the variant its answers fit; the formula's note names the formula.
    notes03 = comments(sheet(paths["s03"], key))
    assert any("right value for s01's inputs, not yours" in t for t in notes03.values())
    notes04 = comments(sheet(paths["s04"], key))
    stride2 = next(b for b in key.answers if b.name == "stride2")
    assert "typed as the formula =" in notes04[stride2.grids[0].cell(0, 0)]
    late = [c.value for row in sheet(paths["s04"], key).iter_rows() for c in row if isinstance(c.value, str)]
    assert any("late penalty 20%   |   final 38.4 of 48" in t for t in late)


@pytest.mark.libreoffice
def test_feedback_explains_the_right_value_with_the_window_that_computes_it(loop):
    """Parse every "window rows a-b, columns c-d ... x Filter k" note and recompute it from the variant's inputs."""
    key, book = loop["key"], loop["runs"][0]
    checked = 0
    for path in book.feedback:
        sid = path.stem.split("-")[0]
        values, right = all_values(key, sid), key.expected(sid)
        for ref, text in comments(sheet(path, key)).items():
            m = re.search(r"window rows (\d+)\u2013(\d+), columns (\d+)\u2013(\d+) of 6 x 6 image \(cells [A-Z]+\d+:"
                          r"[A-Z]+\d+\) \u00d7 Filter (\d), products summed \u2192 (-?[\d.]+)", text)
            if not m:
                continue
            r0, r1, c0, c1, f, shown = int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), float(m[6])
            window = values["image"][0, r0 - 1:r1, c0 - 1:c1]
            assert float((window * values[f"filter{f}"][0]).sum()) == shown, (path.name, ref, text)
            block = next(b for b in key.answers for g in b.grids if ref in _cells(g))
            g = next(g for g in block.grids if ref in _cells(g))
            c, (i, j) = block.grids.index(g), _cells(g)[ref]
            assert right[block.name][c, i, j] == shown
            checked += 1
    assert checked > 30


def _cells(g):
    return {g.cell(i, j): (i, j) for i in range(g.height) for j in range(g.width)}


@pytest.mark.libreoffice
def test_feedback_holds_no_formula_and_marks_only_reveals_no_value(loop):
    key = loop["key"]
    for path in loop["runs"][0].feedback + loop["marks_only"].feedback:
        wb = load_workbook(path)
        assert not any(c.data_type == "f" for ws in wb.worksheets if ws.title != "_xlconv"
                       for row in ws.iter_rows() for c in row)
    for path in loop["marks_only"].feedback:
        notes = comments(sheet(path, key))
        assert notes and not any("Right value" in t or "window" in t or "sign" in t for t in notes.values())
        assert all(t in ("Right.", "Blank: no answer.") or t.startswith(("Wrong", "Not a number", "Right."))
                   for t in notes.values())


def test_output_size_feedback_shows_the_table_s_headings_and_layers(tmp_path):
    # The size table's cells sit row under row with their headings right above: the feedback shows those headings
    # and each layer's name, as the student's sheet does, at the same cells, and puts its hint under the table.
    result = exercise("output-size", tmp_path / "ex", seed=4, roster=write_roster(tmp_path, "student_id\ns01\n"))
    key = load_key(result.out_dir)
    returned = fill(result.student_files[0], tmp_path / "returned" / "s01.xlsx", key, "s01",
                    answer=lambda b, c, i, j, v: v + 1 if i == 0 else v)
    grade([returned], result.out_dir, tmp_path / "gradebook.csv", feedback=tmp_path / "feedback")
    ws = sheet(tmp_path / "feedback" / "s01-feedback.xlsx", key)
    student = sheet(result.student_files[0], key)
    recs = {b.name: b for b in key.records}
    top = recs["layer0"].grids[0].top
    headings = [ws.cell(top, c + 1).value for c in range(1, 12)]  # the row above the table (openpyxl: 1-based)
    assert [h for h in headings if h] == ["H_in", "padding", "kernel_size", "stride", "dilation", "ceil_mode",
                                          "unrounded", "H_out"]
    layers = [b for b in key.records if re.fullmatch(r"layer\d+", b.name)]
    assert len(layers) > 3
    for b in layers:  # each layer's name left of its row, where the student's sheet has it
        g = b.grids[0]
        assert ws.cell(g.top + 1, 2).value == student.cell(g.top + 1, 2).value == b.info["layer"], b.name
    answers = recs["H_out"].grids[0]
    below = [ws.cell(r, 2).value or "" for r in range(answers.bottom + 2, answers.bottom + 5)]
    assert any("Each answer cell has a note" in text for text in below), below


@pytest.mark.parametrize("c_in,h,w,k,stride,padding,dilation,output_padding", [
    (1, 2, 2, 3, 1, 0, 1, 0),
    (1, 3, 3, 3, 2, 1, 1, 1),
    (2, 3, 4, 2, 2, 0, 1, 0),
    (1, 3, 3, 3, 1, 2, 1, 0),
    (2, 2, 3, 3, 3, 1, 2, 2),
    (1, 4, 4, 4, (2, 1), (1, 2), (1, 2), (1, 0)),
])
def test_transposed_conv_feedback_names_the_products_torch_adds(c_in, h, w, k, stride, padding, dilation,
                                                                  output_padding):
    # The note on a transposed convolution's answer lists input cell x kernel tap products: summed, they are
    # torch's F.conv_transpose2d at that cell, for strides, paddings, dilations and output paddings.
    import torch

    from xlconv import record
    from xlconv.feedback import transpose_taps

    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    s, p, d, op = map(pair, (stride, padding, dilation, output_padding))
    rng = np.random.default_rng(7)
    x = rng.integers(-4, 5, (1, c_in, h, w)).astype(np.float64)
    wt = rng.integers(-3, 4, (c_in, 2, k, k)).astype(np.float64)
    want = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(wt), stride=s, padding=p,
                                                output_padding=op, dilation=d).numpy()[0]
    params = record.ConvTransposeParams("x", ("w0", "w1"), None, s, p, op, d)
    for o in range(2):
        for i in range(want.shape[1]):
            for j in range(want.shape[2]):
                taps = transpose_taps(params, [(h, w)] * c_in, k, k, i, j)
                got = sum(x[0, ch, a, b] * wt[ch, o, u, v] for ch, a, b, u, v in taps)
                assert got == want[o, i, j], (o, i, j, taps)
