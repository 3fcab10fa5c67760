"""Careless and hostile input everywhere: one line naming the file and field, exit 2, no traceback, nothing left
behind, in bounded time; one bad file never stops a batch. Each case is a repro from the issue that asked for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image

from cli_helpers import one_line_error, run_cli
from xlconv import cli
from xlconv.build import build
from xlconv.exercise import exercise
from xlconv.grade import grade
from xlconv.verify import check

GOOD = ('title = "t"\n[grids.image]\nvalues = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\n[grids.k]\nvalues = [[1, 0], [0, 1]]\n'
        '[[conv]]\nname = "out"\ninput = "image"\nweight = "k"\n')


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if p.is_file() or p.is_dir())


# -- outputs ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_output_onto_a_device_is_refused_and_the_device_stays(tmp_path):
    dev = tmp_path / "n"
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null
    (tmp_path / "s.toml").write_text(GOOD)
    (tmp_path / "out").mkdir()
    os.symlink(dev, tmp_path / "out" / "s.xlsx")
    proc = run_cli(["build", "s.toml", "-o", "out"], tmp_path)
    one_line_error(proc, "device")
    assert (tmp_path / "out" / "s.xlsx").is_symlink() and dev.is_char_device()
    assert leftovers(tmp_path / "out") == []


def test_output_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "s.toml").write_text(GOOD)
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "real.xlsx"
    target.write_text("old")
    os.symlink(target, out / "s.xlsx")
    assert run_cli(["build", "s.toml", "-o", "out"], tmp_path).returncode == 0
    assert (out / "s.xlsx").is_symlink() and zipfile.is_zipfile(target)
    assert leftovers(out) == [] and leftovers(tmp_path) == []


def test_sigterm_mid_build_leaves_nothing_behind(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "xlconv", "alexnet", "--weights", "random", "--channels", "0-63",
                             "-o", str(tmp_path / "a.xlsx")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Wait until the workbook is being written (its temporary file exists), then stop it.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not leftovers(tmp_path):
        time.sleep(0.05)
    assert leftovers(tmp_path), "the build never started writing"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert "Traceback" not in proc.stderr.read().decode()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_interrupted_exercise_leaves_the_folder_as_it_was(tmp_path, monkeypatch, jobs):
    import xlconv.exercise as ex

    real = ex._write

    def failing(path, v, *args, **kwargs):
        if v.student.id == "c" and "key" not in path.name:
            raise KeyboardInterrupt  # as Ctrl-C or SIGTERM would, halfway through the roster (in a worker)
        return real(path, v, *args, **kwargs)

    monkeypatch.setattr(ex, "_write", failing)
    with pytest.raises(KeyboardInterrupt):
        exercise("lee-6x6", tmp_path / "ex", seed=1, roster=[ex.Student(s) for s in "abcd"], jobs=jobs)
    assert not (tmp_path / "ex").exists() or list((tmp_path / "ex").iterdir()) == []
    assert leftovers(tmp_path) == []


def test_the_same_exercise_with_a_smaller_roster_keeps_the_earlier_students(tmp_path):
    from xlconv.exercise import Student
    from xlconv.grade import load_key

    exercise("lee-6x6", tmp_path / "ex", seed=3, roster=[Student("a"), Student("b")])
    exercise("lee-6x6", tmp_path / "ex", seed=3, roster=[Student("a")])
    key = load_key(tmp_path / "ex")
    assert sorted(key.variants) == ["a", "b"]
    book = grade([tmp_path / "ex" / "students"], tmp_path / "ex", None)
    assert sorted(r.status for r in book.rows) == ["ok", "ok"]


# -- specs and options ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case,text,words", [
    ("control character in the title", GOOD.replace('title = "t"', 'title = "t\\u0001"'), ["title", "U+0001"]),
    ("U+FFFE in the sheet name", GOOD.replace('title = "t"', 'title = "t"\nsheet = "a\\uFFFEb"'), ["sheet", "U+FFFE"]),
    ("1e308 overflows", GOOD.replace("[[1, 0], [0, 1]]", "[[1e308, 1e308], [0, 1]]"), ["values"]),
    ("1e100 times 1e100", GOOD.replace("[[1, 0], [0, 1]]", "[[1e100, 0], [0, 1]]").replace("[1, 2, 3]", "[1e100, 2, 3]"),
     ["conv[0]", "too large"]),
    ("a NaN bias", GOOD + "bias = [nan]\n", ["conv[0].bias"]),
    ("an R1C1 name", GOOD.replace('name = "out"', 'name = "R1C1"'), ["conv[0].name"]),
    ("an RC name", GOOD.replace('name = "out"', 'name = "rc"'), ["conv[0].name"]),
    ("a reserved name", GOOD.replace('name = "out"', 'name = "Print_Area"'), ["conv[0].name", "reserves"]),
    ("TRUE as a grid name", GOOD.replace("[grids.k]", "[grids.TRUE]").replace('weight = "k"', 'weight = "TRUE"'),
     ["grids.TRUE"]),
])
def test_bad_specs_get_one_line_and_no_file(tmp_path, case, text, words):
    (tmp_path / "s.toml").write_text(text, encoding="utf-8")
    proc = run_cli(["build", "s.toml", "-o", "out"], tmp_path)
    one_line_error(proc, "s.toml", *words)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_spec_that_is_a_fifo_or_a_folder_is_refused(tmp_path):
    os.mkfifo(tmp_path / "f.toml")
    one_line_error(run_cli(["build", "f.toml"], tmp_path, timeout=30), "f.toml")
    (tmp_path / "d.toml").mkdir()
    one_line_error(run_cli(["build", "d.toml"], tmp_path, timeout=30), "d.toml", "folder")


def test_a_huge_channel_range_is_refused_before_it_is_expanded(tmp_path):
    start = time.monotonic()
    proc = run_cli(["alexnet", "--weights", "random", "--channels", "0-99999999999", "-o", "a.xlsx"], tmp_path)
    one_line_error(proc, "--channels")
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("size,words", [((100000, 1), ["longer than wide"]), ((9000, 9000), ["pixels, more than"])])
def test_images_too_thin_or_too_big_are_refused_from_their_header(tmp_path, size, words):
    Image.new("L", size).save(tmp_path / "p.png")
    proc = run_cli(["alexnet", "--weights", "random", "--channels", "0", "--image", "p.png", "-o", "a.xlsx"], tmp_path)
    one_line_error(proc, "p.png", *words)
    assert not (tmp_path / "a.xlsx").exists()


def test_a_decompression_bomb_image_is_one_line(tmp_path):
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 megapixels in a few hundred kB
    proc = run_cli(["alexnet", "--weights", "random", "--channels", "0", "--image", "bomb.png", "-o", "a.xlsx"],
                   tmp_path)
    one_line_error(proc, "bomb.png")


@pytest.mark.parametrize("tolerance", ["nan", "-1", "inf", "1e308"])
def test_verify_refuses_a_tolerance_that_passes_or_fails_everything(shipped, tmp_path, tolerance):
    proc = run_cli(["verify", "--tolerance", tolerance, str(shipped["lee-6x6"])], tmp_path)
    one_line_error(proc, "--tolerance")


# -- the workbook's own record ----------------------------------------------------------------------------------


def tampered(src: Path, dst: Path, edits: dict[str, object]) -> Path:
    wb = load_workbook(src)
    ws = wb["_xlconv"]
    for ref, value in edits.items():
        ws[ref].value = value
    wb.save(dst)
    return dst


@pytest.mark.parametrize("edits,words", [
    ({"B4": float("inf")}, ["B4", "tolerance"]),
    ({"B4": 1e308}, ["B4", "tolerance"]),
    ({"B4": "lots"}, ["B4", "tolerance"]),
    ({"D6": '["$A$1:$XFD$1048576"]'}, ["_xlconv!A6"]),
    ({"D6": "[" * 30000}, ["_xlconv!A6"]),
    ({"B6": "villain"}, ["_xlconv!A6", "role"]),
])
def test_a_tampered_record_is_one_line_naming_the_users_file(shipped, tmp_path, edits, words):
    bad = tampered(shipped["lee-6x6"], tmp_path / "mine.xlsx", edits)
    start = time.monotonic()
    proc = run_cli(["verify", "mine.xlsx"], tmp_path)
    one_line_error(proc, "mine.xlsx", *words)
    assert "xlconv-" not in proc.stderr  # never the temporary copy's name
    assert time.monotonic() - start < 60
    assert bad.exists()


def test_an_emptied_record_is_nothing_to_verify(shipped, tmp_path):
    wb = load_workbook(shipped["lee-6x6"])
    ws = wb["_xlconv"]
    for row in ws.iter_rows(min_row=6):
        for c in row[:5]:
            c.value = None
    wb.save(tmp_path / "empty.xlsx")
    one_line_error(run_cli(["verify", "empty.xlsx"], tmp_path), "empty.xlsx", "nothing to verify")


@pytest.mark.parametrize("info", [
    '{"op": "conv", "input": "nobody", "weight": ["filter1"], "bias": null, "stride": [1, 1], "padding": [0, 0], '
    '"dilation": [1, 1]}',
    '{"op": "conv", "input": "image", "weight": ["filter1"], "bias": null, "stride": [0, 1], "padding": [0, 0], '
    '"dilation": [1, 1]}',
    '{"op": "teleport", "input": "image"}',
    '{"op": "max_pool", "input": "image", "kernel_size": [2, 2]}',
])
def test_tampered_op_parameters_fail_that_block_not_the_program(shipped, tmp_path, info):
    src = shipped["lee-6x6"]
    rows = {r[0].value: r[0].row for r in load_workbook(src)["_xlconv"].iter_rows(min_row=6) if r[0].value}
    bad = tampered(src, tmp_path / "mine.xlsx", {f"E{rows['stride1']}": info})
    report = check(bad, bad)
    assert not report.ok
    assert any("stride1" in f for s in report.sheets for f in s.failures)


def test_verify_refuses_a_zip_bomb_before_parsing_it(shipped, tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(shipped["lee-6x6"]) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        zout.writestr("xl/media/big.bin", b"\0" * (200 * 2**20))  # 200 MB of zeros: about 200 kB zipped
    proc = run_cli(["verify", "bomb.xlsx"], tmp_path)
    one_line_error(proc, "bomb.xlsx", "compressed")


# -- grading a class ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_exercise(tmp_path_factory):
    from xlconv.exercise import Student

    tmp = tmp_path_factory.mktemp("hostile-ex")
    return exercise("lee-6x6", tmp / "ex", seed=7, roster=[Student("s001"), Student("s002")])


def test_one_hostile_submission_does_not_stop_the_class(small_exercise, tmp_path):
    ex = small_exercise
    subs = tmp_path / "subs"
    subs.mkdir()
    for cell, name in (("H1", "deep"), ("D6", "deep_range")):
        tampered(ex.student_files[0], subs / f"{name}.xlsx", {cell: "[" * 30000})
    good = subs / "good.xlsx"
    good.write_bytes(ex.student_files[1].read_bytes())
    proc = run_cli(["grade", "subs", "--key", str(ex.out_dir), "-o", "gb.csv"], tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = (tmp_path / "gb.csv").read_text().splitlines()
    assert len(lines) == 4 and any(line.startswith("subs/good.xlsx,s002") for line in lines)


def test_grade_searches_subfolders_and_survives_a_link_loop(small_exercise, tmp_path):
    ex = small_exercise
    for n, f in enumerate(ex.student_files):
        d = tmp_path / "subs" / f"student {n}"
        d.mkdir(parents=True)
        (d / f.name).write_bytes(f.read_bytes())
    os.symlink("..", tmp_path / "subs" / "student 0" / "loop")
    proc = run_cli(["grade", "subs", "--key", str(ex.out_dir), "-o", "gb.csv"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = (tmp_path / "gb.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(",ok," in r for r in rows), rows


def test_a_fresh_build_then_build_again_says_nothing_is_left_over(tmp_path):
    (tmp_path / "s.toml").write_text(GOOD)
    for _ in range(2):
        assert run_cli(["build", "s.toml", "-o", "out"], tmp_path).returncode == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["s.xlsx"]
    assert cli.main(["build", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out")]) == 0
    assert build(tmp_path / "s.toml", tmp_path / "out").exists()
