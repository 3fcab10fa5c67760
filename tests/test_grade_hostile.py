"""Hostile and broken submissions: each becomes a gradebook row with a clear status, in bounded time and memory.

The corpus is built here (nothing is downloaded): random bytes, an empty file, a truncated zip, an encrypted
(OLE2) workbook, an old .xls, macro-enabled files, workbooks of another variant and another exercise, an
answer key, external links, a billion-laughs XML, a zip bomb, a zip of thousands of members, OpenDocument,
PDF, a FIFO, a device, a missing file, a formula-injection student id and a path-traversal member.
"""

import json
import os
import random
import resource
import time
import zipfile
from pathlib import Path

import pytest
import xlsxwriter
from exercise_helpers import fill, sha256, write_roster
from openpyxl import load_workbook

from xlconv import safety
from xlconv.exercise import exercise
from xlconv.grade import grade, load_key

BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                  + b"".join(b' <!ENTITY lol%d "%s">\n' % (n, b"".join(b"&lol%s;" % (str(n - 1).encode() if n > 1
                                                                                      else b"") for _ in range(10)))
                             for n in range(1, 10))
                  + b']>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                    b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData>'
                    b'</worksheet>')
EXTERNAL_LINK = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<externalLink xmlns="http://schemas.'
                 b'openxmlformats.org/spreadsheetml/2006/main"><externalBook xmlns:r="http://schemas.openxmlformats'
                 b'.org/officeDocument/2006/relationships" r:id="rId1"/></externalLink>')


def rezip(src: Path, dst: Path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, (replace or {}).get(info.filename, zin.read(info)))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def zip_bomb(src: Path, dst: Path, megabytes: int = 200) -> Path:
    rezip(src, dst)
    with zipfile.ZipFile(dst, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("xl/worksheets/sheet3.xml", "w", force_zip64=True) as fh:
            block = b"\0" * 2**20
            for _ in range(megabytes):
                fh.write(block)
    return dst


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    roster = write_roster(tmp, "id,name\ns01,Ada\ns02,Bob\n")
    ex = exercise("lee-6x6", tmp / "ex", seed=21, roster=roster)
    other_seed = exercise("lee-6x6", tmp / "ex-other-seed", seed=22, roster=roster)
    other_exercise = exercise("velickovic-7x7", tmp / "ex-other", seed=21, roster=roster)
    key = load_key(ex.out_dir)
    d = tmp / "submissions"
    d.mkdir()
    good = fill(ex.student_files[0], d / "good.xlsx", key, "s01")
    files: dict[str, tuple[Path, str]] = {"good": (good, "ok")}

    def add(name: str, status: str, path: Path):
        files[name] = (path, status)

    rng = random.Random(0)
    (d / "random.xlsx").write_bytes(rng.randbytes(5000))
    add("random bytes", "not-a-workbook", d / "random.xlsx")
    (d / "empty.xlsx").write_bytes(b"")
    add("empty", "not-a-workbook", d / "empty.xlsx")
    data = good.read_bytes()
    (d / "truncated.xlsx").write_bytes(data[: len(data) // 2])
    add("truncated", "truncated", d / "truncated.xlsx")
    ole = safety.OLE_MAGIC + bytes(504) + "Root Entry".encode("utf-16-le") + bytes(44) + \
        "EncryptionInfo".encode("utf-16-le") + bytes(36) + "EncryptedPackage".encode("utf-16-le") + rng.randbytes(4000)
    (d / "encrypted.xlsx").write_bytes(ole)
    add("password-protected", "encrypted", d / "encrypted.xlsx")
    (d / "legacy.xls").write_bytes(safety.OLE_MAGIC + bytes(504) + "Workbook".encode("utf-16-le") + bytes(2000))
    add("old .xls", "not-a-workbook", d / "legacy.xls")
    add("xlsm", "macro-enabled", rezip(good, d / "macro.xlsm", add={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0" * 64}))
    add("vba in .xlsx", "macro-enabled", rezip(good, d / "macro.xlsx", add={"xl/vbaProject.bin": b"\0" * 256}))
    add("another variant", "wrong-variant",
        fill(other_seed.student_files[0], d / "other-variant.xlsx", key, "s01", answer=lambda *a: 1))
    add("another exercise", "wrong-exercise", other_exercise.student_files[0])
    add("answer key", "answer-key", ex.key_files[1])
    add("external links", "external-links",
        rezip(good, d / "links.xlsx", add={"xl/externalLinks/externalLink1.xml": EXTERNAL_LINK}))
    add("billion laughs", "xml-bomb",
        rezip(good, d / "laughs.xlsx", replace={"xl/worksheets/sheet1.xml": BILLION_LAUGHS}))
    add("zip bomb", "zip-bomb", zip_bomb(good, d / "bomb.xlsx"))
    many = rezip(good, d / "many.xlsx", add={f"xl/media/x{i}.bin": b"" for i in range(safety.MAX_MEMBERS + 10)})
    add("thousands of members", "zip-bomb", many)
    with zipfile.ZipFile(d / "sheet.ods", "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>")
    add("ods", "not-a-workbook", d / "sheet.ods")
    (d / "essay.pdf").write_bytes(b"%PDF-1.4\n" + rng.randbytes(1000))
    add("pdf", "not-a-workbook", d / "essay.pdf")
    plain = d / "plain.xlsx"
    wb = xlsxwriter.Workbook(str(plain))
    wb.add_worksheet("Sheet1").write(0, 0, 3)
    wb.close()
    add("not an exercise", "not-an-exercise", plain)
    # A student id that would run as a formula in the gradebook.
    inj = load_workbook(good)
    meta = json.loads(inj["_xlconv"]["H1"].value)
    meta["student_id"] = '=HYPERLINK("http://example.invalid","x")'
    inj["_xlconv"]["H1"].value = json.dumps(meta)
    inj.save(d / "injection.xlsx")
    add("formula injection", "unknown-student", d / "injection.xlsx")
    renamed = load_workbook(good)
    renamed[key.sheet].title = "My answers"
    renamed.save(d / "renamed.xlsx")
    add("renamed sheet", "ok", d / "renamed.xlsx")
    deleted = load_workbook(good)
    deleted.create_sheet("Notes")
    del deleted[key.sheet]
    deleted.save(d / "deleted.xlsx")
    add("deleted sheet", "missing-sheet", d / "deleted.xlsx")
    evil = tmp / "evil.txt"
    add("path traversal member", "ok",
        rezip(good, d / "traversal.xlsx", add={"../" * 12 + str(evil).lstrip("/"): b"pwned"}))
    os.mkfifo(d / "pipe.xlsx")
    add("fifo", "not-a-workbook", d / "pipe.xlsx")
    (d / "zero.xlsx").symlink_to("/dev/zero")
    add("device", "not-a-workbook", d / "zero.xlsx")
    add("missing", "missing", d / "missing.xlsx")
    return dict(tmp=tmp, ex=ex, key=key, files=files, evil=evil, dir=d)


def test_every_hostile_file_gets_its_status_in_bounded_time_and_memory(corpus):
    files = corpus["files"]
    paths = [p for p, _ in files.values()]
    hashes = {p: sha256(p) for p in paths if p.is_file() and not p.is_symlink()}
    corpus["key"].expected("s01")  # torch and NumPy loaded before measuring
    before = set(corpus["tmp"].rglob("*"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    out = corpus["tmp"] / "out" / "gradebook.xlsx"
    book = grade(paths, corpus["ex"].out_dir, out)
    elapsed = time.monotonic() - start
    rows = dict(zip(files, book.rows))
    for name, (path, status) in files.items():
        row = rows[name]
        assert row.file == str(path)
        assert row.status == status, (name, row.status, row.note)
        assert row.note or status == "ok", name
        assert row.seconds < 15, (name, row.seconds)
        assert (row.total is None) == (status != "ok"), name
    assert rows["good"].total == rows["path traversal member"].total == rows["renamed sheet"].total == 48
    assert rows["renamed sheet"].note.startswith("the sheet 'Lee 6x6' was renamed 'My answers'")
    assert "1:" not in rows["zip bomb"].note and "would decompress to 209,715,200 bytes" in rows["zip bomb"].note
    assert elapsed < 120
    # Memory: the run itself stays small (each file was parsed in a process limited to DEFAULT_MEMORY).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200 * 1024  # kB
    # Nothing changed, nothing written but the gradebook, nothing extracted.
    for p, digest in hashes.items():
        assert sha256(p) == digest, p
    assert set(corpus["tmp"].rglob("*")) - before == {out.parent, out}
    assert not corpus["evil"].exists()
    # The injected student id is text in the gradebook, not a formula.
    ws = load_workbook(out)["gradebook"]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)
    assert "'=HYPERLINK(\"http://example.invalid\",\"x\")" in [c.value for c in cells]


def test_a_folder_is_not_a_workbook(tmp_path):
    (tmp_path / "folder.xlsx").mkdir()
    assert safety.read_submission(tmp_path / "folder.xlsx", "x", []).status == "not-a-workbook"


def test_a_file_that_takes_too_long_is_stopped(corpus):
    good = corpus["files"]["good"][0]
    start = time.monotonic()
    # 1 ms: less than any read takes (the reader starts before the clock does; a fork and a parse do not fit)
    result = safety.read_submission(good, corpus["key"].sheet, [], timeout=0.001)
    assert result.status == "timeout" and time.monotonic() - start < 5


def test_a_file_that_needs_too_much_memory_is_stopped(corpus, tmp_path):
    # 120,000 numbers in the graded range: 1 MB zipped, far more than 64 MB once read into Python.
    import xlsxwriter

    big = tmp_path / "big.xlsx"
    wb = xlsxwriter.Workbook(str(big), {"constant_memory": True})
    ws = wb.add_worksheet(corpus["key"].sheet)
    for r in range(400):
        ws.write_row(r, 0, [r * 1000.5 + c for c in range(300)])
    wb.close()
    ranges = ["A1:KN400"]
    assert safety.read_submission(big, corpus["key"].sheet, ranges).status == "ok"  # the default limit reads it
    result = safety.read_submission(big, corpus["key"].sheet, ranges, memory=64 * 2**20)
    assert result.status == "out-of-memory", result


def test_defusedxml_backstops_the_dtd_scan(corpus, monkeypatch):
    # Without the byte scan, the parser itself (openpyxl with defusedxml) still refuses the entities.
    monkeypatch.setattr(safety, "_scan_xml", lambda zf, info: None)
    path = corpus["files"]["billion laughs"][0]
    with pytest.raises(Exception) as exc:
        safety.read_workbook(path, corpus["key"].sheet, ["$B$18:$E$21"])
    assert safety._classify(exc.value)[0] == "xml-bomb"


def test_gradebook_path_must_not_be_a_submission(corpus):
    from xlconv.errors import ExerciseError

    good = corpus["files"]["good"][0]
    digest = sha256(good)
    with pytest.raises(ExerciseError, match="is one of the submissions"):
        grade([good], corpus["ex"].out_dir, good.with_suffix(".xlsx"))
    with pytest.raises(ExerciseError, match=r"must be a \.csv or \.xlsx file"):
        grade([good], corpus["ex"].out_dir, corpus["tmp"] / "gb.txt")
    assert sha256(good) == digest
