"""A class of hundreds: --jobs gives the same files and gradebooks for any number of workers; the pre-started
sandboxed readers keep their guarantees (a killed worker, a timeout or a memory-hungry file costs one row, and
the next file is read by a fresh process); no process outlives a batch, an interrupt or the grading process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import xlsxwriter
from exercise_helpers import fill, write_roster

from xlconv import parallel, progress, safety
from xlconv.errors import ExerciseError, XlconvError
from xlconv.exercise import exercise
from xlconv.grade import grade, load_key

ROSTER = "id,name\n" + "".join(f"s{i:02d},Student {i}\n" for i in range(7))


def children(pid: int) -> set[int]:
    """The live child processes of pid (any of its threads)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(x) for x in (task / "children").read_text().split())
        except FileNotFoundError:
            pass
    return {p for p in found if _alive(p)}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cls(tmp_path_factory):
    """An exercise of 7 students, and returned files: right, half right, an answer key, junk, a truncated zip."""
    tmp = tmp_path_factory.mktemp("class")
    ex = exercise("lee-6x6", tmp / "ex", seed=5, roster=write_roster(tmp, ROSTER), jobs=1)
    key = load_key(ex.out_dir)
    d = tmp / "returned"
    files = [fill(ex.student_files[n], d / f"s{n:02d}" / "answers.xlsx", key, f"s{n:02d}",
                  answer=(lambda *a: a[-1]) if n % 2 else (lambda b, c, i, j, v: v if i == 0 else 7)) for n in range(7)]
    (d / "junk.xlsx").write_bytes(b"not a workbook")
    (d / "half.xlsx").write_bytes(files[0].read_bytes()[:3000])
    big = d / "big.xlsx"  # 120,000 numbers in the graded range: slow to read, and too big for a small memory limit
    wb = xlsxwriter.Workbook(str(big), {"constant_memory": True})
    ws = wb.add_worksheet(key.sheet)
    for r in range(400):
        ws.write_row(r, 0, [r * 1000.5 + c for c in range(300)])
    wb.close()
    # Slow to open whatever is read of it: openpyxl parses all 300,000 shared strings first (seconds).
    slow = tmp / "slow.xlsx"
    wb = xlsxwriter.Workbook(str(slow))
    wb.add_worksheet(key.sheet)
    strings = wb.add_worksheet("strings")
    for r in range(3000):
        strings.write_row(r, 0, [f"{r}-{c}" for c in range(100)])
    wb.close()
    return dict(tmp=tmp, ex=ex, key=key, dir=d, files=files, big=big, slow=slow)


# -- the same output for any --jobs ------------------------------------------------------------------------------


def test_exercise_files_are_byte_identical_for_any_jobs(cls, tmp_path):
    roster = write_roster(tmp_path, ROSTER)
    trees = {jobs: tree_bytes(exercise("lee-6x6", tmp_path / f"j{jobs}", seed=5, roster=roster, jobs=jobs).out_dir)
             for jobs in (1, 2, 4)}
    assert len(trees[1]) == 2 * 7 + 2
    assert trees[1] == trees[2] == trees[4]
    assert trees[1] == tree_bytes(cls["ex"].out_dir)  # and the same as an earlier run


def test_gradebooks_are_byte_identical_for_any_jobs(cls, tmp_path):
    books = {}
    for jobs in (1, 2, 4):
        book = grade([cls["dir"]], cls["ex"].out_dir, tmp_path / f"gb{jobs}.csv", jobs=jobs, timeout=60)
        books[jobs] = (tmp_path / f"gb{jobs}.csv").read_bytes()
    statuses = [r.status for r in book.rows]
    assert statuses == ["not-an-exercise", "truncated", "not-a-workbook"] + ["ok"] * 7, statuses
    assert [r.total for r in book.rows[3:]] == [16, 48, 16, 48, 16, 48, 16]
    assert books[1] == books[2] == books[4]


def test_jobs_must_be_a_positive_whole_number(cls, tmp_path):
    for bad in (0, -1, 1.5, True, parallel.MAX_JOBS + 1):
        with pytest.raises(ExerciseError, match="jobs must be a whole number"):
            exercise("lee-6x6", tmp_path / "x", seed=1, jobs=bad)
        with pytest.raises(ExerciseError, match="jobs must be a whole number"):
            grade([cls["files"][0]], cls["ex"].out_dir, None, jobs=bad)
    proc = subprocess.run([sys.executable, "-m", "xlconv", "grade", "x", "--key", "k", "--jobs", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--jobs: must be a whole number from 1" in proc.stderr


def test_default_jobs_is_the_cores_this_process_may_use():
    assert parallel.default_jobs() == len(os.sched_getaffinity(0))


# -- fork_map ------------------------------------------------------------------------------------------------


def _square_or_fail(x: int) -> int:
    if x == 5:
        raise ExerciseError("five")
    if x == 6:
        os._exit(3)  # a worker that dies without a word
    return x * x


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_fork_map_keeps_the_order(jobs):
    assert parallel.fork_map(lambda x: x * x, list(range(20)), jobs) == [x * x for x in range(20)]
    assert children(os.getpid()) == set()


def test_fork_map_raises_a_workers_error_and_reaps_them_all():
    with pytest.raises(ExerciseError, match="five"):
        parallel.fork_map(_square_or_fail, [1, 2, 5, 3], 2)
    with pytest.raises(XlconvError, match=r"a worker process died \(exit status 3\) on item 2 of 3"):
        parallel.fork_map(_square_or_fail, [1, 6, 2], 2)
    assert children(os.getpid()) == set()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)])
def test_a_stopped_exercise_leaves_nothing_and_no_workers(tmp_path, sig, code):
    roster = write_roster(tmp_path, "id\n" + "".join(f"s{i:03d}\n" for i in range(400)))
    proc = subprocess.Popen([sys.executable, "-m", "xlconv", "exercise", "lee-6x6", "--seed", "1", "--roster",
                             str(roster), "-o", str(tmp_path / "ex"), "--jobs", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and not (len(workers) == 2 and list(tmp_path.glob(".ex.*/students/*"))):
        workers = children(proc.pid)
        time.sleep(0.02)
    assert len(workers) == 2, "the workers never started"
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    assert "Traceback" not in proc.stderr.read().decode()
    assert not any(map(_alive, workers))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roster.csv"]


# -- the sandboxed readers -----------------------------------------------------------------------------------


def _ranges(key) -> list[str]:
    return [g.ref(absolute=True) for rec in key.answers + key.inputs for g in rec.grids]


def test_a_worker_killed_mid_file_costs_that_file_only(cls):
    key, good = cls["key"], cls["files"][1]
    with safety.ReaderPool(1, timeout=60) as pool:
        assert pool.read(good, key.sheet, _ranges(key)).status == "ok"
        zygote = pool.pids()[0]

        def kill_when_reading() -> None:  # the forked child reading the big file, or failing that the zygote
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                kids = children(zygote)
                if kids:
                    os.kill(kids.pop(), signal.SIGKILL)
                    return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_when_reading)
        killer.start()
        killed = pool.read(cls["big"], key.sheet, ["A1:KN400"])
        killer.join()
        assert killed.status == "timeout" and "signal 9" in killed.note, killed
        assert pool.read(good, key.sheet, _ranges(key)).status == "ok"  # the same zygote, a fresh child
        # Now kill the zygote itself between files: the next file starts a new one.
        os.kill(zygote, signal.SIGKILL)
        time.sleep(0.2)
        after = pool.read(good, key.sheet, _ranges(key))
        assert after.status == "unreadable" and "reading process" in after.note, after
        assert pool.read(good, key.sheet, _ranges(key)).status == "ok"
        assert pool.pids() != [zygote]
    assert children(os.getpid()) == set()


def test_a_timeout_and_a_memory_hog_in_a_batch_cost_one_row_each(cls):
    key = cls["key"]
    files = [cls["files"][1], cls["big"], cls["files"][3]]
    with safety.ReaderPool(2, timeout=60, memory=64 * 2**20) as pool:
        small = pool.map(files, key.sheet, ["A1:KN400"])
    assert [r.status for r in small] == ["ok", "out-of-memory", "ok"], small
    with safety.ReaderPool(2, timeout=2) as pool:
        slow = pool.map([files[0], cls["slow"], files[2]], key.sheet, _ranges(key))
        assert slow[1].status == "timeout" and slow[1].seconds < 5, slow[1]
        assert [slow[0].status, slow[2].status] == ["ok", "ok"]
        assert pool.read(cls["files"][1], key.sheet, _ranges(key)).status == "ok"  # a new zygote took over
    assert children(os.getpid()) == set()


def test_each_file_is_read_by_a_fresh_process(cls):
    # A child forked per file: every file reads the same whichever worker reads it, after whatever came before.
    key = cls["key"]
    with safety.ReaderPool(1, timeout=60) as pool:
        first = pool.read(cls["files"][1], key.sheet, _ranges(key))
        pool.read(cls["big"], key.sheet, ["A1:KN400"])
        again = pool.read(cls["files"][1], key.sheet, _ranges(key))
    assert first.cells == again.cells and first.meta == again.meta


def test_the_reader_does_not_load_numpy(cls):
    # The zygote imports what reading needs and no more: NumPy's compiled core is not mapped into it.
    with safety.ReaderPool(1, timeout=60) as pool:
        assert pool.read(cls["files"][1], cls["key"].sheet, _ranges(cls["key"])).status == "ok"
        maps = Path(f"/proc/{pool.pids()[0]}/maps").read_text()
    assert "_multiarray_umath" not in maps and "libtorch" not in maps


def test_no_reader_outlives_a_batch_or_an_interrupt(cls):
    grade([cls["dir"]], cls["ex"].out_dir, None, jobs=2)
    assert children(os.getpid()) == set()
    pool = safety.ReaderPool(2, timeout=60)

    def interrupt_soon() -> None:
        time.sleep(0.5)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt_soon).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with pool:
            pool.map([cls["big"]] * 20, cls["key"].sheet, ["A1:KN400"])
    assert time.monotonic() - start < 15  # the readers were killed, not waited for
    assert children(os.getpid()) == set()


def _readers_of(pid: int) -> set[int]:
    return {p for p in children(pid) if b"xlconv.safety" in Path(f"/proc/{p}/cmdline").read_bytes()}


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130),
                                       (signal.SIGKILL, -signal.SIGKILL)])
def test_readers_die_with_the_grading_process(cls, tmp_path, sig, code):
    many = tmp_path / "many"
    many.mkdir()
    for n in range(30):
        (many / f"{n:02d}.xlsx").symlink_to(cls["big"])
    proc = subprocess.Popen([sys.executable, "-m", "xlconv", "grade", str(many), "--key", str(cls["ex"].out_dir),
                             "-o", str(tmp_path / "gb.csv"), "--jobs", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 60
    readers: set[int] = set()
    while time.monotonic() < deadline and len(readers) < 2:
        readers = _readers_of(proc.pid)
        time.sleep(0.05)
    assert len(readers) == 2, "the readers never started"
    grandchildren: set[int] = set()
    while time.monotonic() < deadline and not grandchildren:
        grandchildren = set().union(*(children(r) for r in readers))
        time.sleep(0.01)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    assert "Traceback" not in proc.stderr.read().decode()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_alive, readers | grandchildren)):
        time.sleep(0.05)
    assert not any(map(_alive, readers | grandchildren))
    assert not (tmp_path / "gb.csv").exists()


# -- progress ----------------------------------------------------------------------------------------------------


def test_progress_bars_show_only_when_turned_on(cls, tmp_path, capsys):
    roster = write_roster(tmp_path, "id\na\nb\nc\n")
    try:
        exercise("lee-6x6", tmp_path / "quiet", seed=1, roster=roster, jobs=2)
        grade(cls["files"][:2], cls["ex"].out_dir, None, jobs=2)
        assert capsys.readouterr().err == ""
        progress.configure(True)
        exercise("lee-6x6", tmp_path / "shown", seed=1, roster=roster, jobs=2)
        grade(cls["files"][:2], cls["ex"].out_dir, None, jobs=2)
    finally:
        progress.configure(False)
    err = capsys.readouterr().err
    assert "exercise:" in err and "/3 [" in err and "variant/s" in err
    assert "grade:" in err and "/2 [" in err and "file/s" in err


def test_a_reader_that_cannot_start_costs_each_file_a_row(cls, tmp_path):
    # A package named xlconv first on the reader's path that fails to import: the reader cannot start, however
    # xlconv itself is installed (editable, wheel or PYTHONPATH).
    broken = tmp_path / "broken"
    (broken / "xlconv").mkdir(parents=True)
    (broken / "xlconv" / "__init__.py").write_text("raise ImportError('a reader that cannot start')\n")
    pool = safety.ReaderPool(1, timeout=60)
    with pool:
        pool._readers[0].env["PYTHONPATH"] = str(broken)
        results = pool.map(cls["files"][:2], cls["key"].sheet, _ranges(cls["key"]))
    assert [r.status for r in results] == ["unreadable", "unreadable"]
    assert "could not start" in results[0].note and all("the reading process" in r.note for r in results), \
        [r.note for r in results]
    assert children(os.getpid()) == set()


def test_reused_note_xml_never_mixes_up_two_workbooks_notes(tmp_path):
    # The notes' XML is made once per distinct set of notes: same notes, same bytes; other notes, their own.
    import zipfile

    from openpyxl import load_workbook

    from xlconv.book import Book

    def book(name: str, notes: list[str]) -> Path:
        with Book(tmp_path / name, "t") as b:
            ws = b.wb.add_worksheet("s")
            for r, text in enumerate(notes):
                ws.write_number(r, 0, r)
                ws.write_comment(r, 0, text)
        return tmp_path / name

    a, b, c = book("a.xlsx", ["one", "two"]), book("b.xlsx", ["one", "two"]), book("c.xlsx", ["one", "<three>"])
    d = book("d.xlsx", ["one"])
    assert a.read_bytes() == b.read_bytes()
    for path, notes in ((a, ["one", "two"]), (c, ["one", "<three>"]), (d, ["one"])):
        ws = load_workbook(path)["s"]
        assert [ws.cell(r + 1, 1).comment.text for r in range(len(notes))] == notes
        with zipfile.ZipFile(path) as zf:
            assert zf.read("xl/drawings/vmlDrawing1.vml").count(b"<v:shape ") == len(notes)
