"""Opening .xlsx files to read them: the one openpyxl opener verify, the engine's canary check and the
grading sandbox share (read-only, never following external links, quiet about other programs' styles), and the
fast reader of a recalculated workbook's values (python-calamine, in a bounded child process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # the reading child process imports no NumPy
    import numpy as np

READ_MEMORY = 2 * 2**30  # address space of the reading process: the 64-channel AlexNet workbook needs ~300 MB


def open_workbook(path: str | Path, data_only: bool = True) -> Any:
    """An openpyxl workbook in read-only mode: cached values (data_only) or formulas, no external links."""
    from openpyxl import load_workbook

    with warnings.catch_warnings():
        # Gnumeric's files have no default style; openpyxl's warning about it is noise here.
        warnings.simplefilter("ignore")
        return load_workbook(path, read_only=True, data_only=data_only, keep_links=False)


@dataclass
class Sheet:
    """One sheet's cached values from A1: numbers (NaN where a cell holds no number) and the text of text cells."""

    numbers: np.ndarray  # (rows, columns) float64; booleans are 0 and 1 as the engines count them
    texts: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, column) -> text, dates as ISO text

    def window(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """The (height, width) floats from (top, left); cells beyond the sheet's last one are NaN (blank)."""
        import numpy as np

        out = np.full((height, width), np.nan)
        part = self.numbers[top:top + height, left:left + width]
        out[:part.shape[0], :part.shape[1]] = part
        return out

    def describe(self, row: int, col: int) -> str:
        """What a cell that holds no number holds instead, for a failure message."""
        text = self.texts.get((row, col))
        if text is not None:
            return f"the text {text[:40]!r}"
        return "blank or an error value (#DIV/0!, #VALUE!, #REF!, ...)"


@dataclass
class Values:
    """A workbook's sheet names and the sheets that were read (or why one could not be)."""

    names: list[str]
    sheets: dict[str, Sheet]
    problems: dict[str, str]  # sheet -> why it could not be read
    rows: dict[str, list[list[Any]]] = field(default_factory=dict)  # sheet -> top-left rows as values, None blank


def read_values(path: str | Path, sheets: Sequence[str] | None = None, timeout: float = 300,
                memory: int = READ_MEMORY, rows: tuple[str, int, int] | None = None,
                jobs: int = 1, weights: Mapping[str, int] | None = None) -> Values:
    """Read cached values with python-calamine in a child process bounded in memory and time (call the safety
    checks first); OSError if the reader itself fails, a problem per sheet for what it could not read.

    ``rows=(sheet, n, m)`` also returns that sheet's first n rows of m cells as plain values (None for a blank),
    the way openpyxl's ``iter_rows(values_only=True)`` gives them. ``jobs`` children read the sheets at once,
    split by ``weights`` (say, each sheet's cell count): calamine parses one sheet on one core.
    """
    groups = _split(list(sheets) if sheets is not None else None, jobs, weights or {})
    if len(groups) == 1:
        return _read_group(path, groups[0], timeout, memory, rows)
    with ThreadPoolExecutor(len(groups)) as pool:  # each thread only waits on its child
        parts = list(pool.map(lambda g: _read_group(path, g[1], timeout, memory, rows if g[0] == 0 else None),
                              enumerate(groups)))
    merged = parts[0]
    for part in parts[1:]:
        merged.sheets.update(part.sheets)
        merged.problems.update(part.problems)
    return merged


def _split(sheets: list[str] | None, jobs: int, weights: Mapping[str, int]) -> list[list[str] | None]:
    """At most jobs groups of sheets, heaviest first onto the lightest group (None: every sheet, one group)."""
    if sheets is None or jobs <= 1 or len(sheets) <= 1:
        return [sheets]
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(sheets)))]
    load = [0] * len(groups)
    for name in sorted(sheets, key=lambda n: -weights.get(n, 1)):
        k = load.index(min(load))
        groups[k].append(name)
        load[k] += weights.get(name, 1)
    return [sorted(g) for g in groups]


def _read_group(path: str | Path, sheets: list[str] | None, timeout: float, memory: int,
                rows: tuple[str, int, int] | None) -> Values:
    request = json.dumps({"path": str(Path(path).resolve()), "sheets": [] if sheets is None else list(sheets),
                          "all": sheets is None, "rows": rows, "memory": memory, "cpu": max(1, int(timeout) + 1)})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                           if p and os.path.isabs(p)])
    with tempfile.TemporaryDirectory(prefix="xlconv-values-") as empty:
        # A separate process: calamine aborts the whole interpreter when a sheet's cells span more than memory
        # holds (two cells at A1 and XFD1048576 are 17 G cells), which no exception could catch here.
        proc = subprocess.Popen([sys.executable, "-P", "-m", "xlconv.xlsxread"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=empty, env=env,
                                start_new_session=True)
        try:
            out, err = proc.communicate(request.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OSError(f"reading its values took longer than {timeout:g} s") from None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    header, _, body = out.partition(b"\n")
    if proc.returncode != 0 or not header:
        code = proc.returncode
        why = ("it needs more memory than any workbook xlconv writes (cells far apart?)"
               if code in (-signal.SIGABRT, -signal.SIGKILL, -signal.SIGSEGV) or b"MemoryError" in err
               else f"the reader failed (exit status {code}): "
                    f"{(err.decode(errors='replace').strip().splitlines() or [''])[-1][:200]}")
        raise OSError(why)
    import numpy as np

    doc = json.loads(header)
    got: dict[str, Sheet] = {}
    offset = 0
    for s in doc["sheets"]:
        n = s["rows"] * s["cols"]
        numbers = np.frombuffer(body, dtype="<f8", count=n, offset=offset).reshape(s["rows"], s["cols"])
        offset += 8 * n
        got[s["name"]] = Sheet(numbers, {(r, c): t for r, c, t in s["texts"]})
    return Values(list(doc["names"]), got, dict(doc["problems"]), dict(doc["rows"]))


def _sheet(rows: list[list[Any]]) -> tuple[int, bytes, list[tuple[int, int, str]]]:
    """Width, float64 bytes and texts of calamine's rows (floats, "" for blanks and error values, str, bool,
    dates); the child imports no NumPy, which would cost more than the conversion."""
    width = max(map(len, rows), default=0)
    numbers = array("d")
    texts: list[tuple[int, int, str]] = []
    nan = float("nan")
    for i, row in enumerate(rows):
        # Text that looks like a number stays text: a cell is a number only if calamine says so.
        values = [v if type(v) is float else nan for v in row]
        for j in [j for j, v in enumerate(row) if type(v) is not float and v != ""]:
            v = row[j]
            if isinstance(v, (bool, int)):
                values[j] = float(v)
            else:
                texts.append((i, j, v if isinstance(v, str) else str(v)))
        numbers.extend(values)
        if len(row) < width:
            numbers.extend([nan] * (width - len(row)))
    if sys.byteorder != "little":
        numbers.byteswap()
    return width, numbers.tobytes(), texts


def _limit(memory: int, cpu_seconds: int) -> None:
    import resource

    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, hard if which == resource.RLIMIT_CPU else value))


def _main() -> int:
    """The child process: a request on stdin; a JSON header line, then each sheet's float64 bytes, on stdout."""
    request = json.loads(sys.stdin.read(1 << 20))
    _limit(int(request["memory"]), int(request["cpu"]))
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(request["path"])
    names = list(wb.sheet_names)
    wanted = names if request["all"] else [n for n in request["sheets"] if n in names]
    header: dict[str, Any] = {"names": names, "sheets": [], "problems": {}, "rows": {}}
    blobs = []
    if request["rows"] and request["rows"][0] in names:
        name, n, m = request["rows"]
        try:
            top = wb.get_sheet_by_name(name).to_python(skip_empty_area=False, nrows=int(n))
            header["rows"][name] = [[None if v == "" else v if isinstance(v, (str, bool, int, float)) else str(v)
                                     for v in row[:int(m)]] for row in top]
        except Exception as e:  # noqa: BLE001 - calamine's XmlError, ZipError and others on a damaged member
            header["problems"][name] = f"{type(e).__name__}: {str(e)[:200]}"
    for name in wanted:
        try:
            rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except MemoryError:
            raise
        except Exception as e:  # calamine's XmlError, ZipError and others on a damaged member
            header["problems"][name] = f"{type(e).__name__}: {str(e)[:200]}"
            continue
        width, blob, texts = _sheet(rows)
        header["sheets"].append({"name": name, "rows": len(rows), "cols": width, "texts": texts})
        blobs.append(blob)
    sys.stdout.buffer.write(json.dumps(header).encode() + b"\n")
    for blob in blobs:
        sys.stdout.buffer.write(blob)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
