"""Reading untrusted workbooks (students' submissions) without trusting them.

Every submission is read in its own short-lived Python process (``python -P -m xlconv.safety``) that:

* limits itself first (``RLIMIT_AS`` memory, ``RLIMIT_CPU`` time, ``RLIMIT_FSIZE`` 0 so it can write no file,
  no core dumps) and is killed, with its process group, after a wall-clock timeout;
* sniffs the bytes before any parser sees them: an empty file, an OLE2 compound file (a password-protected
  .xlsx is one: ``EncryptedPackage``; otherwise an old .xls), or anything that is not a zip;
* checks the zip's directory before decompressing anything: member count, each member's and the total
  uncompressed size, the compression ratio, encrypted members, unusual compression methods;
* refuses macro-enabled files (``.xlsm``, ``vbaProject.bin``, a macroEnabled content type), OpenDocument and
  other Office files, and workbooks with external links (``xl/externalLinks/``);
* scans every XML part (decompressed in bounded chunks, which also checks the CRCs) for ``<!DOCTYPE`` and
  ``<!ENTITY``, which no spreadsheet writes and every XML entity bomb needs;
* only then parses with openpyxl, which uses defusedxml when it is installed (it is a dependency, and the
  process refuses to parse without it), with ``read_only=True`` and ``keep_links=False``.

The file is opened read-only; nothing is executed, extracted or written. Whatever goes wrong ends as a status
word and a note, never as an exception in the grading run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from xlconv import record
from xlconv.engine import kill_group
from xlconv.xlsxread import open_workbook

MAX_FILE_BYTES = 20 * 2**20  # a student's toy workbook is tens of kB; LibreOffice's a few hundred
MAX_MEMBERS = 2_000
MAX_MEMBER_BYTES = 64 * 2**20  # uncompressed
MAX_TOTAL_BYTES = 256 * 2**20  # uncompressed, all members
MAX_RATIO = 100  # uncompressed / compressed, for members above RATIO_FLOOR
RATIO_FLOOR = 2**20
DEFAULT_TIMEOUT = 30.0  # seconds of wall clock per file
DEFAULT_MEMORY = 768 * 2**20  # address space of the reading process
META_SHEET = record.SHEET
META_COLUMN = record.META_COLUMN + 1  # 1-based, as openpyxl counts: key, then text chunks to the right
META_ROWS = 20
META_CHUNKS = 64
MAX_FORMULA_TEXT = 200
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
XML_SUFFIXES = (".xml", ".rels", ".vml")
MACRO_SUFFIXES = (".xlsm", ".xltm", ".xlam", ".xlsb")
_DANGEROUS = [s.encode(enc) for s in ("<!DOCTYPE", "<!ENTITY") for enc in ("ascii", "utf-16-le", "utf-16-be")]
_CHUNK = 1 << 16

# Statuses this module can give (grade.py adds the ones about variants and marks).
STATUSES = {
    "not-a-workbook": "not an .xlsx workbook (another kind of file, or an empty one)",
    "truncated": "a damaged or truncated zip: it cannot be read to the end",
    "encrypted": "password-protected: xlconv cannot open it without the password",
    "macro-enabled": "a macro-enabled workbook (.xlsm or vbaProject.bin): never opened",
    "external-links": "links to other workbooks: never opened (paste values and resubmit)",
    "zip-bomb": "its zip members would decompress to far more than any workbook needs",
    "xml-bomb": "its XML declares a DTD or entities (an entity-expansion 'billion laughs' attack)",
    "too-large": "larger than any workbook of this exercise could be",
    "timeout": "reading it took longer than the time limit",
    "out-of-memory": "reading it needed more memory than the limit",
    "unreadable": "a zip that the workbook reader could not parse",
    "missing": "no such file",
}


@dataclass(frozen=True)
class Limits:
    """What a workbook file may be before it is parsed at all."""

    file_bytes: int = MAX_FILE_BYTES
    members: int = MAX_MEMBERS
    member_bytes: int = MAX_MEMBER_BYTES
    total_bytes: int = MAX_TOTAL_BYTES
    ratio: int = MAX_RATIO


SUBMISSION = Limits()  # a student's returned toy workbook
# A workbook xlconv built, to verify: the 64-channel AlexNet workbook is ~10 MB zipped, one sheet ~100 MB of XML.
WORKBOOK = Limits(file_bytes=128 * 2**20, member_bytes=1024 * 2**20, total_bytes=1536 * 2**20)


class Rejected(Exception):
    """A submission that must not be parsed: a status word and a note for the gradebook."""

    def __init__(self, status: str, note: str):
        super().__init__(f"{status}: {note}")
        self.status, self.note = status, note


@dataclass
class ReadResult:
    """What the sandboxed reader found in one file."""

    status: str  # "ok" or one of STATUSES
    note: str = ""
    meta: dict[str, str] = field(default_factory=dict)  # record sheet rows: key -> text
    sheets: list[str] = field(default_factory=list)
    # range -> rows of [value, formula]: the formula's text (at most MAX_FORMULA_TEXT characters) or False
    cells: dict[str, list[list[list[Any]]]] | None = None
    seconds: float = 0.0
    sheet: str = ""  # the sheet the cells were read from


# --- checks before parsing (run inside the sandboxed process) ---------------------------------------------


def sniff(path: Path, limits: Limits = SUBMISSION) -> None:
    """Refuse what is not a zip at all, naming what it looks like."""
    size = path.stat().st_size
    if size == 0:
        raise Rejected("not-a-workbook", "an empty file")
    if size > limits.file_bytes:
        raise Rejected("too-large", f"{size:,} bytes (limit {limits.file_bytes:,})")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head.startswith(OLE_MAGIC):
            fh.seek(0)
            data = fh.read(MAX_FILE_BYTES)
            if any(n.encode("utf-16-le") in data for n in ("EncryptedPackage", "EncryptionInfo")):
                raise Rejected("encrypted", "a password-protected workbook (an encrypted OLE2 package); "
                                            "ask for a copy saved without a password")
            raise Rejected("not-a-workbook", "an old binary Excel (.xls, OLE2) or other Office file; ask for .xlsx")
    if not head.startswith(b"PK"):
        raise Rejected("not-a-workbook", _describe(head))


def _describe(head: bytes) -> str:
    known = {b"%PDF": "a PDF", b"{\\rtf": "an RTF document", b"\x1f\x8b": "a gzip file", b"Rar!": "a RAR archive",
             b"7z\xbc\xaf": "a 7-Zip archive", b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image"}
    for magic, what in known.items():
        if head.startswith(magic):
            return f"{what}, not an .xlsx workbook"
    if head.lstrip()[:1] in (b"<", b"\xef"):
        return "a text, XML or HTML file, not an .xlsx workbook"
    return f"not an .xlsx workbook (it starts with the bytes {head[:8].hex(' ')})"


def check_zip(path: Path, zf: zipfile.ZipFile, limits: Limits = SUBMISSION) -> None:
    """Refuse zips whose directory promises a bomb, and workbooks that carry macros or external links."""
    infos = zf.infolist()
    if len(infos) > limits.members:
        raise Rejected("zip-bomb", f"{len(infos):,} zip members (limit {limits.members:,})")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise Rejected("encrypted", f"zip member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise Rejected("not-a-workbook", f"zip member {info.filename!r} uses compression method "
                                             f"{info.compress_type}, which no spreadsheet writes")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.member_bytes:
            raise Rejected("zip-bomb", f"zip member {info.filename!r} would decompress to {info.file_size:,} bytes "
                                       f"(limit {limits.member_bytes:,})")
        if info.file_size > RATIO_FLOOR and ratio > limits.ratio:
            raise Rejected("zip-bomb", f"zip member {info.filename!r} is compressed {ratio:,.0f} to 1 "
                                       f"(limit {limits.ratio} to 1)")
        if total > limits.total_bytes:
            raise Rejected("zip-bomb", f"the zip members would decompress to more than {limits.total_bytes:,} bytes")
    names = {i.filename for i in infos}
    lower = {n.lower() for n in names}
    if "mimetype" in lower or "content.xml" in lower:
        raise Rejected("not-a-workbook", "an OpenDocument file (.ods?); ask for .xlsx")
    if "word/document.xml" in lower or "ppt/presentation.xml" in lower:
        raise Rejected("not-a-workbook", "a Word or PowerPoint document, not a workbook")
    if path.suffix.lower() in MACRO_SUFFIXES or any(n.endswith("vbaproject.bin") for n in lower):
        raise Rejected("macro-enabled", "a macro-enabled workbook (.xlsm or vbaProject.bin); it was not opened")
    if any(n.startswith("xl/externallinks/") for n in lower):
        raise Rejected("external-links", "it links to other workbooks (xl/externalLinks); it was not opened: "
                                         "ask for a copy with values pasted instead of links")
    for info in infos:
        if info.filename.lower().endswith(XML_SUFFIXES) or info.filename == "[Content_Types].xml":
            _scan_xml(zf, info)
    if "[Content_Types].xml" in names:
        types = zf.read("[Content_Types].xml")
        if b"macroEnabled" in types or b"vbaProject" in types:
            raise Rejected("macro-enabled", "its content types declare macros; it was not opened")
    if "xl/workbook.xml" not in names:
        raise Rejected("not-a-workbook", "a zip without xl/workbook.xml, not an .xlsx workbook")


def _scan_xml(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Stream one XML part (bounded by its declared size; CRC checked) looking for DTD or entity declarations."""
    tail = b""
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            window = tail + chunk
            if any(d in window for d in _DANGEROUS):
                raise Rejected("xml-bomb", f"{info.filename} declares a DTD or XML entities, which no spreadsheet "
                                           f"writes (an entity-expansion attack); it was not parsed")
            tail = window[-32:]


def check_workbook(path: Path, limits: Limits = WORKBOOK) -> None:
    """The checks before parsing, outside a sandbox (for verify): Rejected says why a file must not be opened."""
    sniff(path, limits)
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip(path, zf, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise Rejected("truncated", f"a damaged or truncated zip ({type(e).__name__}: {e})") from None


# --- parsing ------------------------------------------------------------------------------------------------


def _bounds(ranges: Sequence[str]) -> tuple[int, int, int, int] | None:
    from xlconv.cells import parse_range

    grids = [parse_range(r) for r in ranges]
    if not grids:
        return None
    return (min(g.top for g in grids) + 1, max(g.bottom for g in grids) + 1,
            min(g.left for g in grids) + 1, max(g.right for g in grids) + 1)


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)  # dates, times, and whatever else a reader returns: text, which reads as a wrong answer


def read_workbook(path: Path, sheet: str, ranges: Sequence[str]) -> ReadResult:
    """Check, then read the record sheet's rows and the cells of ranges on sheet (call inside the sandbox)."""
    from openpyxl.xml import DEFUSEDXML

    if not DEFUSEDXML:
        return ReadResult("unreadable", "defusedxml is not installed (or OPENPYXL_DEFUSEDXML is off): "
                                        "refusing to parse untrusted XML")
    sniff(path)
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip(path, zf)
    except zipfile.BadZipFile as e:
        raise Rejected("truncated", f"a damaged or truncated zip ({e})") from None
    values, formulas, meta, sheets = {}, {}, {}, []
    box = _bounds(ranges)
    for data_only in (True, False):
        wb = open_workbook(path, data_only)
        try:
            sheets = list(wb.sheetnames)
            others = [n for n in sheets if n != META_SHEET]
            if sheet not in sheets and len(others) == 1:
                sheet = others[0]  # the student renamed the tab (only cells are protected)
            if data_only and META_SHEET in sheets:
                for row in wb[META_SHEET].iter_rows(min_row=1, max_row=META_ROWS, min_col=META_COLUMN,
                                                    max_col=META_COLUMN + META_CHUNKS, values_only=True):
                    if row and isinstance(row[0], str):
                        meta[row[0]] = "".join(x for x in row[1:] if isinstance(x, str))
            if sheet in sheets and box is not None:
                r0, r1, c0, c1 = box
                for row in wb[sheet].iter_rows(min_row=r0, max_row=r1, min_col=c0, max_col=c1):
                    for cell in row:
                        if getattr(cell, "row", None) is None:
                            continue  # an EmptyCell of read-only mode
                        if data_only:
                            values[(cell.row - 1, cell.column - 1)] = _jsonable(cell.value)
                        elif cell.data_type == "f":  # its text, for the gradebook's flag and the feedback note
                            formulas[(cell.row - 1, cell.column - 1)] = str(cell.value)[:MAX_FORMULA_TEXT] or "="
        finally:
            wb.close()
    if sheet not in sheets:
        return ReadResult("ok", meta=meta, sheets=sheets, cells=None)
    from xlconv.cells import parse_range

    cells = {}
    for r in ranges:
        g = parse_range(r)
        cells[r] = [[[values.get((g.top + i, g.left + j)), formulas.get((g.top + i, g.left + j), False)]
                     for j in range(g.width)] for i in range(g.height)]
    return ReadResult("ok", meta=meta, sheets=sheets, cells=cells, sheet=sheet)


def _classify(exc: BaseException) -> tuple[str, str]:
    """A status for an exception a parser raised on a file that passed the checks."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and len(chain) < 10:  # openpyxl wraps parser errors in a ValueError
        chain.append(link)
        link = link.__cause__ or link.__context__
    for e in chain:
        if (type(e).__module__ or "").startswith("defusedxml"):
            return "xml-bomb", f"defusedxml refused its XML ({type(e).__name__})"
    name = type(exc).__name__
    text = str(exc).strip().replace("\n", " ")[:200]
    module = type(exc).__module__ or ""
    # Under RLIMIT_AS the dynamic loader itself can fail to map a module the parser needs.
    if isinstance(exc, MemoryError) or (isinstance(exc, (ImportError, OSError))
                                        and ("failed to map segment" in text or "Cannot allocate memory" in text)):
        return "out-of-memory", "reading it needed more memory than the limit"
    if isinstance(exc, (zipfile.BadZipFile, EOFError)) or name == "error" and module == "zlib":
        return "truncated", f"a damaged or truncated zip ({name}: {text})"
    if name == "InvalidFileException":
        return "not-a-workbook", text
    return "unreadable", f"{name}: {text}" if text else name


# --- the sandbox ----------------------------------------------------------------------------------------------


def _limit(memory: int, cpu_seconds: int) -> None:
    import resource

    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value if which != resource.RLIMIT_CPU or hard == resource.RLIM_INFINITY
                                   else hard))


def _worker_main() -> int:
    """Entry point of the sandboxed process: request JSON on stdin, result JSON on stdout."""
    request = json.loads(sys.stdin.read(1 << 20))
    _limit(int(request["memory"]), int(request["cpu"]))
    try:
        result = read_workbook(Path(request["path"]), request["sheet"], request["ranges"])
    except Rejected as r:
        result = ReadResult(r.status, r.note)
    except BaseException as e:  # noqa: BLE001 - any failure on an untrusted file becomes a status
        result = ReadResult(*_classify(e))
    doc = {"status": result.status, "note": result.note, "meta": result.meta, "sheets": result.sheets,
           "cells": result.cells, "sheet": result.sheet}
    sys.stdout.write(json.dumps(doc))
    sys.stdout.flush()
    return 0


def read_submission(path: str | Path, sheet: str, ranges: Sequence[str], timeout: float = DEFAULT_TIMEOUT,
                    memory: int = DEFAULT_MEMORY) -> ReadResult:
    """Read one untrusted workbook in a sandboxed process, bounded in time and memory; never raises for the file."""
    import time

    path = Path(path)
    start = time.monotonic()
    try:
        st = path.stat()
    except FileNotFoundError:
        return ReadResult("missing", "no such file")
    except OSError as e:
        return ReadResult("unreadable", f"cannot stat it: {e.strerror}")
    import stat as stat_mod

    if not stat_mod.S_ISREG(st.st_mode):
        what = "a folder" if stat_mod.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
        return ReadResult("not-a-workbook", what)
    if st.st_size > MAX_FILE_BYTES:
        return ReadResult("too-large", f"{st.st_size:,} bytes (limit {MAX_FILE_BYTES:,})")
    request = json.dumps({"path": str(path.resolve()), "sheet": sheet, "ranges": list(ranges), "memory": memory,
                          "cpu": max(1, int(timeout) + 1)})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPYXL_", "PYTHONSTARTUP", "PYTHONINSPECT"))}
    # The reader imports this very xlconv (the parent's working folder and relative paths do not carry over).
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                           if p and os.path.isabs(p)])
    env.update(OPENPYXL_DEFUSEDXML="True", PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory(prefix="xlconv-read-") as empty:
        # -P and an empty working folder: a submission folder can never shadow a module the reader imports.
        proc = subprocess.Popen([sys.executable, "-P", "-m", "xlconv.safety"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=empty, env=env,
                                start_new_session=True)
        try:
            out, err = proc.communicate(request.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return ReadResult("timeout", f"reading it took longer than {timeout:g} s; the reader was stopped",
                              seconds=time.monotonic() - start)
        finally:
            kill_group(proc)
    seconds = time.monotonic() - start
    if proc.returncode != 0 or not out:
        code = proc.returncode
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return ReadResult("timeout", f"the reader ran out of CPU time (signal {-code})", seconds=seconds)
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        if "MemoryError" in tail[0]:
            return ReadResult("out-of-memory", "reading it needed more memory than the limit", seconds=seconds)
        return ReadResult("unreadable", f"the reader failed (exit status {code}): {tail[0][:200]}", seconds=seconds)
    try:
        doc = json.loads(out)
        return ReadResult(doc["status"], doc["note"], doc["meta"], doc["sheets"], doc["cells"], seconds,
                          doc.get("sheet") or "")
    except (ValueError, KeyError, TypeError) as e:
        return ReadResult("unreadable", f"the reader's answer was garbled ({e})", seconds=seconds)




if __name__ == "__main__":
    sys.exit(_worker_main())
