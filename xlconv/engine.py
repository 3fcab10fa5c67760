"""Recalculate .xlsx workbooks in a real spreadsheet engine (LibreOffice, Gnumeric or HyperFormula).

Each input is copied with the cached value of its canary cell (``_xlconv!B1``,
formula ``=21*2``) replaced by a wrong value; an output whose canary does not
read 42 was therefore not recalculated, whatever the engine claims.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from defusedxml import ElementTree

from xlconv import hyperformula
from xlconv.errors import EngineError, WorkbookError
from xlconv.guards import input_file
from xlconv.record import CANARY_CELL, CANARY_SHEET, CANARY_VALUE

ENGINES = ("libreoffice", "gnumeric", "hyperformula")

_POISON = "-1"
BINARIES = {"libreoffice": "soffice", "gnumeric": "ssconvert", "hyperformula": "node"}
INSTALL_COMMANDS = {
    "libreoffice": "apt-get install -y --no-install-recommends libreoffice-calc-nogui",
    "gnumeric": "apt-get install -y gnumeric",
}
_NAMES = {"libreoffice": "LibreOffice", "gnumeric": "Gnumeric", "hyperformula": "HyperFormula"}
_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_NS_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_OFFICE_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_STDERR_TAIL = 2000
# GLib/GTK chatter that Gnumeric and LibreOffice print even when all goes well.
_NOISE = re.compile(r"^\(\S+:\d+\): [\w-]+-(WARNING|Message|DEBUG|INFO)\b|javaldx|^\s*$")


def find_engine(engine: str = "libreoffice") -> str | None:
    """Return the path of the engine's command-line binary, or None when it is not installed."""
    _check_engine_name(engine)
    if engine == "hyperformula":  # node alone is not enough: the npm packages must be there too
        return hyperformula.find()
    return shutil.which(BINARIES[engine])


def install_hint(engine: str) -> str:
    """One line saying that an engine is missing and the command that installs it."""
    if engine == "hyperformula":
        return hyperformula.install_hint()
    return f"{_NAMES[engine]} ({BINARIES[engine]}) not found; install it with: {INSTALL_COMMANDS[engine]}"


def recalculate(
    paths: Sequence[Path | str],
    out_dir: Path | str,
    engine: str = "libreoffice",
    timeout: float = 300,
    *,
    _recalc_mode: int = 0,
) -> list[Path]:
    """Recalculate each workbook in a real spreadsheet engine; return recalculated copies (same order), written into out_dir.

    ``timeout`` bounds each engine process: the one LibreOffice run that
    converts all inputs, or each Gnumeric run. ``_recalc_mode`` is for tests:
    any value but 0 makes the engine skip recalculation, which the canary catches.
    """
    _check_engine_name(engine)
    sources = [Path(p) for p in paths]
    if not sources:
        return []
    with tempfile.TemporaryDirectory(prefix="xlconv-engine-") as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        (work / "out").mkdir()
        # Unique temp names: inputs from different folders may share a base name.
        inputs = [work / "in" / f"{i:03d}.xlsx" for i in range(len(sources))]
        for src, dest in zip(sources, inputs):
            _write_poisoned_copy(src, dest)
        binary = find_engine(engine)
        if binary is None:
            raise EngineError(install_hint(engine))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        targets = _output_names(sources, out_dir, engine)
        if engine == "libreoffice":
            outputs, stderr = _run_libreoffice(binary, inputs, work, timeout, _recalc_mode)
        elif engine == "hyperformula":
            outputs = [work / "out" / p.name for p in inputs]
            stderr = hyperformula.recalculate(binary, list(zip(inputs, outputs)), work, timeout, _run,
                                              use_cached=_recalc_mode != 0)
        else:
            outputs, stderr = _run_gnumeric(binary, inputs, work, timeout, _recalc_mode)
        for src, produced, target in zip(sources, outputs, targets):
            if not produced.is_file():
                raise EngineError(f"{engine} produced no output for {src}: {_tail(stderr)}")
            _check_canary(produced, engine, src)
            shutil.move(produced, target)
    return targets


def convert(paths: Sequence[Path | str], out_dir: Path | str, target: str = "pdf", timeout: float = 300) -> list[Path]:
    """Convert workbooks with LibreOffice into out_dir/<stem>.<target> (same order); return those paths.

    LibreOffice runs as recalculate() runs it: a private profile that recalculates every formula on load and
    never runs macros, in its own process group, killed after ``timeout`` seconds. Inputs must be .xlsx
    workbooks (WorkbookError naming the file otherwise) with distinct stems; nothing is written on error.
    """
    sources = [Path(p) for p in paths]
    if not sources:
        return []
    stems: dict[str, Path] = {}
    for src in sources:
        check_xlsx(src)
        if src.stem in stems:
            raise WorkbookError(f"{src}: same name as {stems[src.stem]}; the outputs would overwrite each other")
        stems[src.stem] = src
    binary = find_engine("libreoffice")
    if binary is None:
        raise EngineError(install_hint("libreoffice"))
    extension = target.split(":", 1)[0]
    with tempfile.TemporaryDirectory(prefix="xlconv-engine-") as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        (work / "out").mkdir()
        inputs = [work / "in" / f"{i:03d}.xlsx" for i in range(len(sources))]
        for src, dest in zip(sources, inputs):
            shutil.copyfile(src, dest)
        profile = work / "profile"
        _write_libreoffice_profile(profile, 0)
        command = [binary, "--headless", "--norestore", "--nolockcheck", f"-env:UserInstallation={profile.as_uri()}",
                   "--convert-to", target, "--outdir", str(work / "out"), *map(str, inputs)]
        stderr = _run("libreoffice", command, work, timeout)
        produced = [work / "out" / f"{p.stem}.{extension}" for p in inputs]
        for src, made in zip(sources, produced):
            if not made.is_file():
                raise EngineError(f"libreoffice produced no {extension} for {src}: {_tail(stderr)}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / f"{src.stem}.{extension}" for src in sources]
        for made, dest in zip(produced, targets):
            shutil.move(made, dest)
    return targets


def check_xlsx(path: Path | str) -> None:
    """WorkbookError naming the file unless it is a readable .xlsx package (a zip with a workbook part)."""
    path = input_file(path, "workbook", WorkbookError)  # exists, a regular file, not too big
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _main_part(zf, names) not in names:
                raise WorkbookError(f"{path}: not an .xlsx workbook (no workbook part)")
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise WorkbookError(f"{path}: not an .xlsx workbook ({exc})") from None


def run_tool(name: str, command: list[str], timeout: float) -> str:
    """Run a helper program (such as poppler's pdftoppm) the way the engines run: own process group, private
    HOME, timeout; EngineError naming it if it fails. Returns its output, minus known noise."""
    with tempfile.TemporaryDirectory(prefix=f"xlconv-{name}-") as tmp:
        return _run(name, command, Path(tmp), timeout)


def _check_engine_name(engine: str) -> None:
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")


def _output_names(sources: list[Path], out_dir: Path, engine: str) -> list[Path]:
    taken: set[str] = set()
    names = []
    for src in sources:
        stem, n = src.stem, 1
        while (name := f"{stem}{f'-{n}' if n > 1 else ''}.{engine}.xlsx") in taken:
            n += 1
        taken.add(name)
        names.append(out_dir / name)
    return names


# --- the canary -------------------------------------------------------------


def _write_poisoned_copy(src: Path, dest: Path) -> None:
    """Copy the workbook with the canary's cached value set to a wrong one: the canary sheet's member rewritten,
    every other member copied as its compressed bytes (inflating and rewriting the 64-channel AlexNet workbook's
    100 MB of XML took a second of verify's own time)."""
    try:
        with zipfile.ZipFile(src) as zin:
            member = _canary_sheet_member(zin, src)
            xml = zin.read(member).decode("utf-8")
            poisoned = _poison_canary(xml, src).encode("utf-8")
            with open(dest, "wb") as out:
                _copy_zip(zin, out, {member: poisoned})
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, zlib.error, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise WorkbookError(f"{src}: no such file") from None
        raise WorkbookError(f"{src}: not an .xlsx workbook ({exc})") from None


_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_ZIP32 = 0xFFFFFFFF
_DATA_DESCRIPTOR = 0x08
_UTF8_NAMES = 0x800


def _copy_zip(zin: zipfile.ZipFile, out: BinaryIO, replace: dict[str, bytes]) -> None:
    """Write zin's members to out: those in replace with their new bytes (stored), the others' compressed
    bytes unchanged. Plain zip only (no zip64, at most 65,535 members); BadZipFile for anything else."""
    infos = zin.infolist()
    if len(infos) >= 0xFFFF:
        raise zipfile.BadZipFile(f"{len(infos)} members")
    fp = zin.fp
    assert fp is not None
    central = []
    for info in infos:
        name = info.filename.encode("utf-8")
        if info.filename in replace:
            data = replace[info.filename]
            method, crc, size, csize = zipfile.ZIP_STORED, zlib.crc32(data), len(data), len(data)
        else:
            fp.seek(info.header_offset)
            header = fp.read(_LOCAL.size)
            if len(header) != _LOCAL.size or _LOCAL.unpack(header)[0] != 0x04034B50:
                raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
            name_len, extra_len = _LOCAL.unpack(header)[9:]
            fp.seek(info.header_offset + _LOCAL.size + name_len + extra_len)
            data = fp.read(info.compress_size)
            if len(data) != info.compress_size:
                raise zipfile.BadZipFile(f"{info.filename!r} is truncated")
            method, crc, size, csize = info.compress_type, info.CRC, info.file_size, info.compress_size
        offset = out.tell()
        if max(size, csize, offset + len(data)) >= _ZIP32:
            raise zipfile.BadZipFile(f"{info.filename!r} needs zip64")
        year, month, day, hour, minute, second = info.date_time
        dos_date = max(year - 1980, 0) << 9 | month << 5 | day
        dos_time = hour << 11 | minute << 5 | second // 2
        # Sizes go in the local header, so no data descriptor follows the data.
        flags = (info.flag_bits & ~_DATA_DESCRIPTOR) | _UTF8_NAMES
        out.write(_LOCAL.pack(0x04034B50, 20, flags, method, dos_time, dos_date, crc, csize, size, len(name), 0))
        out.write(name)
        out.write(data)
        central.append(_CENTRAL.pack(0x02014B50, 20, 20, flags, method, dos_time, dos_date, crc, csize, size,
                                     len(name), 0, 0, 0, 0, 0, offset) + name)
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    out.write(_END.pack(0x06054B50, 0, 0, len(central), len(central), len(directory), start, 0))


def _not_xlconv(path: Path) -> WorkbookError:
    return WorkbookError(f"{path}: not an xlconv workbook (no {CANARY_SHEET}!{CANARY_CELL} canary)")


def _canary_sheet_member(zf: zipfile.ZipFile, path: Path) -> str:
    """Find the zip member holding the canary sheet via the workbook part and its relationships."""
    names = set(zf.namelist())
    workbook = _main_part(zf, names)
    if workbook not in names:
        raise WorkbookError(f"{path}: not an .xlsx workbook (no {workbook})")
    try:
        root = ElementTree.fromstring(zf.read(workbook))
        rel_id = next(
            (s.get(f"{_NS_REL}id") for s in root.iter(f"{_NS_MAIN}sheet") if s.get("name") == CANARY_SHEET),
            None,
        )
        if rel_id is None:
            raise _not_xlconv(path)
        rels = _read_rels(zf, _rels_name(workbook))
    except ElementTree.ParseError as exc:
        raise WorkbookError(f"{path}: not an .xlsx workbook ({exc})") from None
    target = rels.get(rel_id)
    if target is None:
        raise _not_xlconv(path)
    member = _resolve(workbook, target)
    if member not in names:
        raise _not_xlconv(path)
    return member


def _main_part(zf: zipfile.ZipFile, names: set[str]) -> str:
    if "_rels/.rels" in names:
        try:
            for rel in ElementTree.fromstring(zf.read("_rels/.rels")).iter(f"{_NS_PKG_REL}Relationship"):
                if rel.get("Type") == _OFFICE_DOCUMENT:
                    return _resolve("", rel.get("Target", ""))
        except ElementTree.ParseError:
            pass
    return "xl/workbook.xml"


def _rels_name(part: str) -> str:
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def _read_rels(zf: zipfile.ZipFile, name: str) -> dict[str, str]:
    if name not in zf.namelist():
        return {}
    root = ElementTree.fromstring(zf.read(name))
    return {r.get("Id"): r.get("Target", "") for r in root.iter(f"{_NS_PKG_REL}Relationship")}


def _resolve(source_part: str, target: str) -> str:
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(posixpath.dirname(source_part), target))


_CELL = re.compile(
    r"(?P<open><(?P<p>\w+:)?c\b(?=[^>]*\sr=[\"']" + CANARY_CELL + r"[\"'])[^>]*?)(?<!/)>"
    r"(?P<body>.*?)(?P<close></(?P=p)?c>)",
    re.DOTALL,
)
_VALUE = re.compile(r"<(?P<p>\w+:)?v\s*/>|<(?P<q>\w+:)?v>(?P<text>.*?)</(?P=q)?v>", re.DOTALL)
_FORMULA_END = re.compile(r"<(?P<p>\w+:)?f\b[^>]*?(/>|>.*?</(?P=p)?f>)", re.DOTALL)
_TYPE_ATTR = re.compile(r"\st=[\"'][^\"']*[\"']")


def _poison_canary(xml: str, path: Path) -> str:
    """Return the sheet XML with the canary formula's cached value replaced by a wrong number."""
    cell = _CELL.search(xml)
    if cell is None:
        raise _not_xlconv(path)
    body, prefix = cell["body"], cell["p"] or ""
    formula = _FORMULA_END.search(body)
    if formula is None:
        raise _not_xlconv(path)
    value = f"<{prefix}v>{_POISON}</{prefix}v>"
    if _VALUE.search(body):
        body = _VALUE.sub(value, body, count=1)
    else:
        body = body[: formula.end()] + value + body[formula.end() :]
    # A string or error type attribute would make the engine read -1 as text.
    opening = _TYPE_ATTR.sub("", cell["open"]) + ">"
    return xml[: cell.start()] + opening + body + cell["close"] + xml[cell.end() :]


def _check_canary(produced: Path, engine: str, original: Path) -> None:
    value = _read_canary(produced, engine, original)
    if value != CANARY_VALUE:
        raise EngineError(
            f"{engine} did not recalculate {original}: canary {CANARY_SHEET}!{CANARY_CELL} "
            f"is {value!r}, expected {CANARY_VALUE}"
        )


_CANARY_SHEET_BYTES = 64 * 2**20  # the record sheet of the largest workbook xlconv writes is well under 1 MB
_CELL_TYPE = re.compile(r"\st=[\"'](?P<t>[^\"']*)[\"']")


def _read_canary(produced: Path, engine: str, original: Path) -> object:
    """The canary's value as the engine saved it, read from the canary sheet's XML alone: a number, the text of
    a string result, or None when the cell or its value is missing (openpyxl, which parses the whole workbook
    and its styles first, took most of a second on the 64-channel AlexNet workbook)."""
    try:
        with zipfile.ZipFile(produced) as zf:
            member = _canary_sheet_member(zf, produced)
            if zf.getinfo(member).file_size > _CANARY_SHEET_BYTES:
                return None
            with zf.open(member) as fh:
                xml = fh.read(_CANARY_SHEET_BYTES + 1).decode("utf-8")
    except WorkbookError:
        return None  # no canary sheet or cell: reported as not recalculated
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, zlib.error, EOFError, KeyError) as exc:
        raise EngineError(f"{engine} wrote an unreadable workbook for {original}: {exc}") from None
    cell = _CELL.search(xml)
    if cell is None:
        return None
    value = _VALUE.search(cell["body"])
    if value is None or value["text"] is None:  # no value, or an empty <v/>
        return None
    text = value["text"].strip()
    kind = _CELL_TYPE.search(cell["open"])
    if kind is None or kind["t"] == "n":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    return f"{text} (a cell of type {kind['t']!r})"


# --- running the engines ----------------------------------------------------


def _run_libreoffice(
    binary: str, inputs: list[Path], work: Path, timeout: float, recalc_mode: int
) -> tuple[list[Path], str]:
    profile = work / "profile"
    _write_libreoffice_profile(profile, recalc_mode)
    out = work / "out"
    command = [
        binary,
        "--headless",
        "--norestore",
        "--nolockcheck",
        f"-env:UserInstallation={profile.as_uri()}",
        "--convert-to",
        "xlsx:Calc MS Excel 2007 XML",
        "--outdir",
        str(out),
        *map(str, inputs),
    ]
    stderr = _run("libreoffice", command, work, timeout)
    return [out / p.name for p in inputs], stderr


def _write_libreoffice_profile(profile: Path, recalc_mode: int) -> None:
    """Write a private profile that always recalculates on load and never runs macros."""
    items = [
        ("/org.openoffice.Office.Calc/Formula/Load", "OOXMLRecalcMode", recalc_mode),
        ("/org.openoffice.Office.Calc/Formula/Load", "ODFRecalcMode", recalc_mode),
        ("/org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel", 3),
        ("/org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution", "true"),
    ]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        *(
            f'<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse">'
            f"<value>{value}</value></prop></item>"
            for path, name, value in items
        ),
        "</oor:items>",
    ]
    (profile / "user").mkdir(parents=True)
    (profile / "user" / "registrymodifications.xcu").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _run_gnumeric(
    binary: str, inputs: list[Path], work: Path, timeout: float, recalc_mode: int
) -> tuple[list[Path], str]:
    outputs, stderr = [], ""
    for src in inputs:
        dest = work / "out" / src.name
        command = [binary, *(["--recalc"] if recalc_mode == 0 else []),
                   "--export-type=Gnumeric_Excel:xlsx2", str(src), str(dest)]
        stderr = _run("gnumeric", command, work, timeout)
        outputs.append(dest)
        if not dest.is_file():
            break  # recalculate() reports this input with this run's stderr
    outputs += [work / "out" / p.name for p in inputs[len(outputs) :]]
    return outputs, stderr


def _run(engine: str, command: list[str], work: Path, timeout: float) -> str:
    """Run one engine process in its own process group; return its stderr, minus known noise."""
    env = {**os.environ, "HOME": str(work)}
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env.pop(var, None)
    env["GSETTINGS_BACKEND"] = "memory"  # keeps GLib from looking for dconf
    log = work / "engine.log"
    with open(log, "wb") as sink:
        # Output goes to a file, not a pipe: a stray grandchild holding a pipe open would hang us.
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            env=env, cwd=work, start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise EngineError(f"{engine} did not finish within {timeout:g} s (timeout); killed it") from None
        finally:
            kill_group(proc)  # reap helpers that outlived the main process
    output = "\n".join(
        line for line in log.read_text(errors="replace").splitlines() if not _NOISE.search(line)
    )
    if code != 0:
        raise EngineError(f"{engine} failed with exit status {code}: {_tail(output)}")
    return output


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a process started with start_new_session=True, and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(text: str) -> str:
    text = text.strip()
    if not text:
        return "(the engine printed nothing)"
    return text[-_STDERR_TAIL:]
