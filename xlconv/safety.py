"""Reading untrusted workbooks (students' submissions) without trusting them.

Every submission is read in its own short-lived process, forked per file from a reader started for the run
(``python -P -m xlconv.safety``; see ReaderPool), that:

* limits itself first (``RLIMIT_AS`` memory, ``RLIMIT_CPU`` time, ``RLIMIT_FSIZE`` 0 so it can write no file,
  no core dumps) and is killed, with its reader's process group, after a wall-clock timeout;
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

import io
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
from typing import Any, Callable, Sequence, cast

from xlconv import record
from xlconv.engine import kill_group
from xlconv.parallel import die_with_parent
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
    from xlconv.cells import parse_range

    values: dict[tuple[int, int], Any] = {}
    formulas: dict[tuple[int, int], str] = {}
    meta: dict[str, str] = {}
    sheets: list[str] = []
    box = _bounds(ranges)
    for data_only in (True, False):
        if not data_only and sheet not in sheets:
            break  # every answer cell is also read for a formula (grade's --formulas flag), even with a saved value
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
#
# A ReaderPool keeps `jobs` reading processes ("zygotes") for a whole batch. Each is a fresh interpreter
# (``python -P -m xlconv.safety``, an empty working folder, a cleaned environment, its own process group) that
# imports only what reading needs (openpyxl without NumPy, defusedxml, zipfile), then waits for requests on
# stdin. For every file it forks a child that limits itself (RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE 0, no core
# dumps), reads the file and writes its result to a pipe; the zygote relays the result (or how the child died)
# to the grading process. A fork costs about a millisecond, where a fresh interpreter cost 150 ms, and every
# file is read by a pristine process: what one file did (memory it fragmented, CPU it used) cannot change how
# the next is read, whichever worker reads it. The grading process enforces the wall-clock timeout: it kills
# the zygote's whole process group and starts a new zygote for the next file. A zygote exits when its stdin
# closes, so when the grading process dies, however it dies, its readers go with it.

_FRAME = b"%d %d\n"  # how the child ended (exit status, or -signal), then the length of its JSON result
_NO_RESULT_OOM = json.dumps({"status": "out-of-memory", "note": "reading it needed more memory than the limit",
                             "meta": {}, "sheets": [], "cells": None, "sheet": ""}).encode()
_START_TIMEOUT = 120.0  # seconds for a reader to start (an interpreter and openpyxl, on a busy machine)


def _limit(memory: int, cpu_seconds: int) -> None:
    import resource

    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value if which != resource.RLIMIT_CPU or hard == resource.RLIM_INFINITY
                                   else hard))


def _read_in_child(request: dict[str, Any], out_fd: int) -> None:
    """The forked child: limit itself, read one file, write its result as JSON to out_fd; never returns."""
    try:
        die_with_parent()
        oom = _NO_RESULT_OOM  # made before the limits: the child may be unable to make anything after them
        _limit(int(request["memory"]), int(request["cpu"]))
        try:
            try:
                result = read_workbook(Path(request["path"]), request["sheet"], request["ranges"])
            except Rejected as r:
                result = ReadResult(r.status, r.note)
            except BaseException as e:  # noqa: BLE001 - any failure on an untrusted file becomes a status
                result = ReadResult(*_classify(e))
            data = json.dumps({"status": result.status, "note": result.note, "meta": result.meta,
                               "sheets": result.sheets, "cells": result.cells, "sheet": result.sheet}).encode()
        except MemoryError:
            data = oom
        view = memoryview(data)
        while view:
            view = view[os.write(out_fd, view):]
    finally:
        os._exit(0)


def _serve() -> int:
    """The zygote: import what reading needs, then fork one limited child per request line on stdin."""
    import select

    sys.modules.setdefault("numpy", None)  # type: ignore[arg-type]  # openpyxl reads cells without it
    import openpyxl.reader.excel  # noqa: F401 - imported once here, inherited by every child
    from openpyxl.xml import DEFUSEDXML  # noqa: F401

    import resource

    for which in (resource.RLIMIT_FSIZE, resource.RLIMIT_CORE):
        resource.setrlimit(which, (0, resource.getrlimit(which)[1]))
    stdin = cast(io.BufferedReader, sys.stdin.buffer)
    stdout = sys.stdout.buffer
    stdout.write(b"ready\n")
    stdout.flush()
    while line := stdin.readline():
        request = json.loads(line)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)  # the child talks to no one but its pipe
            os.dup2(null, 1)
            _read_in_child(request, w)
        os.close(w)
        chunks = []
        while True:
            ready, _, _ = select.select([r, stdin.fileno()], [], [])
            if stdin.fileno() in ready and not stdin.peek(1):  # the grading process is gone: so is this reader
                os.kill(pid, signal.SIGKILL)
                return 0
            if r in ready:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        data = b"".join(chunks)
        stdout.write(_FRAME % (code, len(data)) + data)
        stdout.flush()
    return 0


class Reader:
    """One zygote process of a ReaderPool, started when first needed and again after it was killed."""

    def __init__(self, cwd: str, env: dict[str, str]):
        self.cwd, self.env = cwd, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""

    def start(self) -> None:
        """Start the zygote and wait until it has imported what reading needs."""
        # -P and an empty working folder: a submission folder can never shadow a module the reader imports.
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "xlconv.safety"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.cwd, env=self.env,
                                     start_new_session=True)
        self.buffer = b""
        line = self._receive_line(_deadline(_START_TIMEOUT))
        if line != b"ready":
            self.kill()
            raise OSError(f"the reading process did not start (it said {(line or b'')[:80]!r})")

    def kill(self) -> None:
        """Kill the zygote and whatever child it is running (its process group)."""
        if self.proc is not None:
            kill_group(self.proc)
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:  # what was buffered for a zygote that is gone
                        pass
            self.proc = None

    def close(self) -> None:
        """Let the zygote end by closing its stdin; kill it if it lingers."""
        if self.proc is not None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.kill()

    def _receive(self, n: int, deadline: float) -> bytes | None:
        import select
        import time

        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while len(self.buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, max(1 << 16, n - len(self.buffer)))
            if not chunk:
                raise EOFError("the reading process ended")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _receive_line(self, deadline: float) -> bytes | None:
        import select
        import time

        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("the reading process ended")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def read(self, path: Path, sheet: str, ranges: Sequence[str], timeout: float, memory: int) -> ReadResult:
        """Read one file in a fresh child of the zygote; a timeout kills the zygote (a new one starts next)."""
        import time

        if self.proc is None:
            try:
                self.start()
            except (OSError, EOFError) as e:
                return ReadResult("unreadable", f"the reading process could not start ({e})")
        assert self.proc is not None and self.proc.stdin is not None
        request = json.dumps({"path": str(path), "sheet": sheet, "ranges": list(ranges), "memory": memory,
                              "cpu": max(1, int(timeout) + 1)}).encode() + b"\n"
        start = time.monotonic()
        deadline = start + timeout
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.flush()
            header = self._receive_line(deadline)
            if header is not None:
                code, size = (int(x) for x in header.split())
                data = self._receive(size, deadline + 5.0)  # the result is written: a little more time to relay it
                if data is not None:
                    return _result(code, data, time.monotonic() - start)
        except (OSError, EOFError, ValueError) as e:
            self.kill()
            return ReadResult("unreadable", f"the reading process failed ({type(e).__name__}: {e})",
                              seconds=time.monotonic() - start)
        self.kill()
        return ReadResult("timeout", f"reading it took longer than {timeout:g} s; the reader was stopped",
                          seconds=time.monotonic() - start)


def _deadline(seconds: float) -> float:
    """The monotonic clock's time seconds from now."""
    import time

    return time.monotonic() + seconds


def _result(code: int, data: bytes, seconds: float) -> ReadResult:
    """A ReadResult from a child's exit status and JSON answer."""
    if not data:
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return ReadResult("timeout", f"the reader ran out of CPU time (signal {-code})", seconds=seconds)
        if code == -signal.SIGSEGV:  # the C parts of a parser that could not map memory
            return ReadResult("out-of-memory", "reading it needed more memory than the limit", seconds=seconds)
        return ReadResult("unreadable", f"the reader failed (exit status {code})", seconds=seconds)
    try:
        doc = json.loads(data)
        return ReadResult(doc["status"], doc["note"], doc["meta"], doc["sheets"], doc["cells"], seconds,
                          doc.get("sheet") or "")
    except (ValueError, KeyError, TypeError) as e:
        return ReadResult("unreadable", f"the reader's answer was garbled ({e})", seconds=seconds)


def _precheck(path: Path) -> ReadResult | None:
    """What the grading process can tell without opening the file: missing, not a regular file, too large."""
    import stat as stat_mod

    try:
        st = path.stat()
    except FileNotFoundError:
        return ReadResult("missing", "no such file")
    except OSError as e:
        return ReadResult("unreadable", f"cannot stat it: {e.strerror}")
    if not stat_mod.S_ISREG(st.st_mode):
        what = "a folder" if stat_mod.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
        return ReadResult("not-a-workbook", what)
    if st.st_size > MAX_FILE_BYTES:
        return ReadResult("too-large", f"{st.st_size:,} bytes (limit {MAX_FILE_BYTES:,})")
    return None


class ReaderPool:
    """`jobs` sandboxed readers for a batch of untrusted workbooks: ``with ReaderPool(2) as pool: pool.map(...)``."""

    def __init__(self, jobs: int = 1, timeout: float = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY):
        self.jobs, self.timeout, self.memory = max(1, int(jobs)), timeout, memory
        self._tmp = tempfile.TemporaryDirectory(prefix="xlconv-read-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPYXL_", "PYTHONSTARTUP", "PYTHONINSPECT"))}
        # The reader imports this very xlconv (the parent's working folder and relative paths do not carry over).
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                               if p and os.path.isabs(p)])
        env.update(OPENPYXL_DEFUSEDXML="True", PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        import queue

        self._readers = [Reader(self._tmp.name, env) for _ in range(self.jobs)]
        self._idle: queue.SimpleQueue[Reader] = queue.SimpleQueue()
        for r in self._readers:
            self._idle.put(r)

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(kill=exc[0] is not None)

    def close(self, kill: bool = False) -> None:
        """End every reader (kill: at once, e.g. on Ctrl-C or SIGTERM) and remove the working folder."""
        for r in self._readers:
            r.kill() if kill else r.close()
        self._tmp.cleanup()

    def pids(self) -> list[int]:
        """The process ids of the readers running now (for tests)."""
        return [r.proc.pid for r in self._readers if r.proc is not None]

    def read(self, path: str | Path, sheet: str, ranges: Sequence[str]) -> ReadResult:
        """Read one untrusted workbook in a sandboxed child, bounded in time and memory; never raises for the file."""
        path = Path(path)
        early = _precheck(path)
        if early is not None:
            return early
        reader = self._idle.get()
        try:
            return reader.read(path.resolve(), sheet, ranges, self.timeout, self.memory)
        finally:
            self._idle.put(reader)

    def map(self, paths: Sequence[str | Path], sheet: str, ranges: Sequence[str],
            done: Callable[[], None] | None = None) -> list[ReadResult]:
        """Read many files, `jobs` at a time; results in the order of paths, whatever order they finish in."""
        from concurrent.futures import ThreadPoolExecutor

        def one(p: str | Path) -> ReadResult:
            result = self.read(p, sheet, ranges)
            if done is not None:
                done()
            return result

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="xlconv-read")
        try:
            futures = [pool.submit(one, p) for p in paths]
            return [f.result() for f in futures]
        except BaseException:
            # Ctrl-C or SIGTERM: stop the readers now, so the threads waiting on them return at once.
            for f in futures if "futures" in locals() else []:
                f.cancel()
            for r in self._readers:
                r.kill()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def read_submission(path: str | Path, sheet: str, ranges: Sequence[str], timeout: float = DEFAULT_TIMEOUT,
                    memory: int = DEFAULT_MEMORY) -> ReadResult:
    """Read one untrusted workbook in a sandboxed process, bounded in time and memory; never raises for the file."""
    path = Path(path)
    early = _precheck(path)
    if early is not None:
        return early
    with ReaderPool(1, timeout, memory) as pool:
        return pool.read(path, sheet, ranges)


if __name__ == "__main__":
    sys.exit(_serve())
