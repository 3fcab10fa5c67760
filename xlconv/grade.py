"""Grading returned exercise workbooks: one gradebook row per submission, whatever the file is.

Marking scheme
--------------
* A *question* is one answer block of the sheet: one op's output (for example both feature maps of a conv
  with two filters, or a pooled map). Its marks are the number of its cells answered right; its maximum is
  its number of cells. ``total`` and ``max`` add the questions up; ``percent`` is 100 * total / max.
* An answer is right when it is a number within the tolerance of the right value: ``|answer - right| <=
  tolerance`` (default 0.005, i.e. right to 2 decimal places; the exercise records it, ``--tolerance``
  overrides it). The right values come from the inputs *as generated* (the key's manifest), computed with
  NumPy and cross-checked with torch: a student who changed an input does not get a new right answer, and
  the row's status says ``edited-inputs``.
* Typed text is read the way a teacher would read it: surrounding spaces are ignored, a Unicode minus
  (U+2212) or dash counts as a minus sign, a leading ``+`` is allowed, full-width digits count, a single
  comma with no dot is a decimal comma (``"3,5"`` is 3.5), a fraction ``a/b`` is its value. Blank cells are
  unanswered; anything else (words, ``TRUE``, error values, dates) is wrong, with a note.
* Cells the student filled with formulas count by their saved values; a file saved without values (by
  openpyxl or some online tools) is recalculated in LibreOffice first (macros disabled, with a timeout).

Statuses: ``ok`` and ``edited-inputs`` carry marks; every other status (see STATUSES) explains why a file
got none. A hostile or broken file is a row, never an error of the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from xlconv import flags, loop, progress, safety
from xlconv.atomic import atomic_path
from xlconv.guards import check_tolerance, files_under, input_file, parse_json
from xlconv.errors import ExerciseError, VerifyError, WorkbookError, XlconvError
from xlconv.exercise import MANIFEST, MANIFEST_FORMAT, META_KEY
from xlconv.parallel import check_jobs, default_jobs
from xlconv.record import ROOT_ROLES, Block
from xlconv.verify import expected_block

if TYPE_CHECKING:
    import pandas as pd

GRADED = ("ok", "edited-inputs")
STATUSES = {
    "ok": "graded",
    "edited-inputs": "graded against the inputs as generated; the student changed input cells (see note)",
    "not-an-exercise": "a workbook, but not an xlconv exercise (no exercise record in its hidden _xlconv sheet)",
    "wrong-exercise": "an exercise workbook made for another exercise than this key's",
    "wrong-variant": "not the variant this key gives the student it names (another seed or term)",
    "unknown-student": "the student id it records is not in this key",
    "answer-key": "an answer key, not a student's workbook",
    "missing-sheet": "the exercise sheet is missing from the workbook",
    "recalc-failed": "answers typed as formulas had no saved values, and LibreOffice could not recalculate them",
    **safety.STATUSES,
}
MAX_NOTE_ITEMS = 4
_MINUSES = "\u2212\u2010\u2011\u2012\u2013\u2014\ufe63\uff0d"
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")
_FRACTION = re.compile(r"([+-]?\d+)/(\d+)")


# --- reading one typed answer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A typed answer as a teacher reads it: blank, a number (perhaps read from text), or not a number."""

    kind: str  # "blank" | "number" | "text" (a number read from text) | "bad"
    value: float | None = None
    shown: str = ""


def read_answer(v: Any) -> Answer:
    """Read a cell's value as a teacher would (see the module docstring for the rules)."""
    if v is None:
        return Answer("blank")
    if isinstance(v, bool):
        return Answer("bad", shown=str(v).upper())
    if isinstance(v, (int, float)):
        f = float(v)
        return Answer("number", f) if math.isfinite(f) else Answer("bad", shown=repr(v))
    raw = str(v)
    s = unicodedata.normalize("NFKC", raw)
    s = s.translate({ord(c): "-" for c in _MINUSES}).translate({ord(c): None for c in _INVISIBLE}).strip()
    if s.startswith("'"):
        s = s[1:].strip()  # a text marker some tools keep
    if not s:
        return Answer("blank")
    m = re.fullmatch(r"([+-])\s*(.+)", s)
    if m:
        s = m[1] + m[2]
    if "," in s and "." not in s and s.count(",") == 1:
        s = s.replace(",", ".")  # a decimal comma
    if _NUMBER.fullmatch(s) and math.isfinite(float(s)):
        return Answer("text", float(s), raw)
    m = _FRACTION.fullmatch(s)
    if m and int(m[2]) != 0:
        return Answer("text", int(m[1]) / int(m[2]), raw)
    return Answer("bad", shown=raw)


# --- the key ------------------------------------------------------------------------------------------------------


@dataclass
class Key:
    """An exercise's manifest (exercise.json), as `xlconv exercise` wrote it into the key folder."""

    folder: Path
    exercise_id: str
    sheet: str
    tolerance: float
    records: list[Block]
    answers: list[Block]
    inputs: list[Block]
    variants: dict[str, dict]  # student id -> variant
    title: str = ""
    _expected: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def expected(self, student_id: str) -> dict[str, np.ndarray]:
        """Right answers of a student's variant, by NumPy, cross-checked with torch."""
        if student_id not in self._expected:
            variant = self.variants[student_id]
            cur = {k: np.asarray(v, dtype=np.float64) for k, v in variant["inputs"].items()}
            out = {}
            for rec in self.records:
                if rec.role not in ("padded", "dilated", "output"):
                    continue
                results = [rec.fit(r) for r in expected_block(rec, cur, None, self.records)]
                for other in results[1:]:
                    if other.shape != results[0].shape or not np.allclose(other, results[0], rtol=1e-12, atol=1e-9):
                        raise VerifyError(f"{rec.name}: NumPy and torch disagree on the right answers")
                cur[rec.name] = results[0]
                if rec.role == "output":
                    out[rec.name] = results[0]
            self._expected[student_id] = out
        return self._expected[student_id]


def load_key(folder: str | Path) -> Key:
    """The manifest of an exercise folder; ExerciseError naming the file when it is missing or malformed."""
    folder = Path(folder)
    path = folder if folder.suffix == ".json" and not folder.is_dir() else folder / MANIFEST
    if not path.exists():
        raise ExerciseError(f"{path}: no such file; pass --key the folder `xlconv exercise -o` wrote")
    input_file(path, "exercise manifest", ExerciseError)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as e:
        raise ExerciseError(f"{path}: not a readable exercise manifest ({e})") from None
    doc = parse_json(text, f"{path}: not a readable exercise manifest:", ExerciseError, max_chars=256 * 2**20)
    try:
        if doc["format"] != MANIFEST_FORMAT:
            raise ExerciseError(f"{path}: manifest format {doc['format']!r}, this xlconv reads {MANIFEST_FORMAT}")
        records = [Block.from_json(b, f"{path}: blocks[{n}]") for n, b in enumerate(doc["blocks"])]
        variants = {v["student_id"]: v for v in doc["variants"]}
        asked = doc.get("answers")  # the answer blocks (older manifests: every output block)
        answers = [r for r in records if r.role == "output" and (not isinstance(asked, list) or r.name in asked)]
        key = Key(path.parent, doc["exercise_id"], doc["sheet"], float(doc["tolerance"]), records,
                  answers, [r for r in records if r.role in ROOT_ROLES], variants,
                  str(doc.get("title", ""))[:300])
    except WorkbookError as e:
        raise ExerciseError(str(e)) from None
    except (KeyError, TypeError, ValueError) as e:
        raise ExerciseError(f"{path}: not a valid exercise manifest ({type(e).__name__}: {e})") from None
    return key


# --- grading --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One gradebook row."""

    file: str
    status: str
    note: str = ""
    student_id: str = ""
    name: str = ""
    variant_seed: int | None = None
    marks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cells: list[flags.CellMark] = field(default_factory=list)  # every answer cell as graded (for flags, feedback)
    flags: list[str] = field(default_factory=list)
    fits: dict[str, str] = field(default_factory=dict)  # question -> the student whose variant its answers fit
    penalty: float = 0.0  # percent of the marks taken off (late work)
    submitted: str = ""  # when it was handed in, when a due time was given

    @property
    def final(self) -> float | None:
        """The total after the penalty, or None when the file was not graded."""
        total = self.total
        return None if total is None else round(total * (1 - self.penalty / 100), 2)

    @property
    def total(self) -> int | None:
        """The marks added up, or None when the file was not graded."""
        return sum(self.marks.values()) if self.status in GRADED else None


@dataclass
class Gradebook:
    """The result of `grade`: rows, the questions and their maxima, and where the gradebook was written."""

    rows: list[Row]
    questions: dict[str, int]  # answer block -> number of cells
    tolerance: float
    path: Path | None
    feedback: list[Path] = field(default_factory=list)  # feedback workbooks written, one per graded file
    lms: Path | None = None  # the course site's import file, when asked for

    @property
    def max(self) -> int:
        """The most marks a submission can get: every answer cell."""
        return sum(self.questions.values())

    def frame(self) -> pd.DataFrame:
        """The gradebook as a pandas DataFrame (one row per submission)."""
        import pandas as pd

        records = []
        for r in self.rows:
            graded = r.status in GRADED
            rec: dict[str, object] = {"file": _safe_text(r.file), "student_id": _safe_text(r.student_id),
                                      "name": _safe_text(r.name), "variant_seed": r.variant_seed, "status": r.status}
            for q, n in self.questions.items():
                rec[question_column(q, n)] = r.marks.get(q) if graded else None
            total = r.total  # None exactly when the file was not graded
            rec.update(total=total, max=self.max if graded else None,
                       percent=round(100.0 * total / self.max, 1) if total is not None and self.max else None,
                       penalty=r.penalty if graded else None, final=r.final, tolerance=self.tolerance,
                       flags=_safe_text("; ".join(r.flags)), note=_safe_text(r.note))
            records.append(rec)
        df = pd.DataFrame.from_records(records, columns=list(_columns(self)))
        for c in ["variant_seed", "total", "max"] + [question_column(q, n) for q, n in self.questions.items()]:
            df[c] = df[c].astype("Int64")
        return df


def question_column(name: str, cells: int) -> str:
    """The gradebook's column heading of a question: its name and how many cells it has."""
    return f"{name} (of {cells})"


def _columns(book: Gradebook) -> Iterator[str]:
    yield from ("file", "student_id", "name", "variant_seed", "status")
    yield from (question_column(q, n) for q, n in book.questions.items())
    yield from ("total", "max", "percent", "penalty", "final", "tolerance", "flags", "note")


def _safe_text(text: str) -> str:
    """Text a spreadsheet shows as text: never a formula (CSV/formula injection from a student's file)."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    if text[:1] in ("=", "@", "\t") or (text[:1] in ("+", "-") and not re.fullmatch(r"[+-][\d.]+", text)):
        return "'" + text
    return text


def grade(submissions: Sequence[str | Path], key: str | Path, output: str | Path | None = "gradebook.csv",
          tolerance: float | None = None, timeout: float = safety.DEFAULT_TIMEOUT,
          memory: int = safety.DEFAULT_MEMORY, engine_timeout: float = 120.0, jobs: int | None = None,
          feedback: str | Path | None = None, marks_only: bool = False, formulas: str = "flag",
          due: str | dt.datetime | None = None, late_penalty: float = 0.0, roster: str | Path | None = None,
          lms: str | None = None, id_column: str | None = None, assignment: str | None = None) -> Gradebook:
    """Grade returned workbooks against an exercise folder; write the gradebook (.csv or .xlsx) to output, and
    optionally a feedback workbook per graded file and the course site's import file (see xlconv.loop).

    jobs sandboxed readers (default: one per core) read the files; the gradebook is the same for any number."""
    from openpyxl.xml import defusedxml_available

    if not defusedxml_available():
        raise ExerciseError("defusedxml is not installed: refusing to parse students' files (pip install defusedxml)")
    k = load_key(key)
    tol = k.tolerance if tolerance is None else tolerance
    tol = check_tolerance(tol, "tolerance" if tolerance is not None else f"{k.folder / MANIFEST}: tolerance", ExerciseError)
    out = Path(output) if output is not None else None
    if out is not None and out.suffix.lower() not in (".csv", ".xlsx"):
        raise ExerciseError(f"{out}: the gradebook must be a .csv or .xlsx file")
    people, policy = loop.prepare(feedback, formulas, due, late_penalty, roster, lms, id_column, out)
    files = _expand(submissions, out)
    if out is not None:
        for f in files:
            if f.exists() and out.exists() and os.path.samefile(f, out):
                raise ExerciseError(f"{out}: is one of the submissions; choose another gradebook path")
        if out.is_dir():
            raise ExerciseError(f"{out}: is a folder; give the gradebook a file name")
    ranges = [r for rec in k.answers + k.inputs for r in _ranges(rec)]
    jobs = default_jobs() if jobs is None else check_jobs(jobs, "jobs", ExerciseError)
    # torch (for the cross-check of the right answers) is imported while the readers work, not after them.
    warm = threading.Thread(target=_import_torch, daemon=True)
    warm.start()
    with safety.ReaderPool(jobs, timeout, memory) as pool:
        with progress.bar(len(files), "grade", unit="file") as bar:
            reads = pool.map(files, k.sheet, ranges, bar.update)
        recalculated = _recalculate_all(files, reads, k, ranges, pool, engine_timeout)
    warm.join()
    with _one_torch_thread():
        rows = [_grade_safely(f, r, k, tol, recalculated.get(n)) for n, (f, r) in enumerate(zip(files, reads))]
    _note_duplicates(rows)
    flags.apply(rows, k, tol, policy, GRADED)
    book = Gradebook(rows, {rec.name: _cells(rec) for rec in k.answers}, tol, out)
    if out is not None:
        write_gradebook(book, out)
    loop.finish(book, k, feedback, marks_only, people, lms, assignment, policy.formulas)
    return book


def _import_torch() -> None:
    try:
        import torch  # noqa: F401
    except Exception:  # noqa: BLE001 - the marking that needs it reports it
        pass


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread while marking: each right answer is a tiny grid, on which torch's thread pool
    mostly waits for itself (0.7 ms a conv on a busy 2-core machine, 0.1 ms on one thread)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _expand(submissions: Sequence[str | Path], out: Path | None) -> list[Path]:
    """Files to grade: folders stand for the files in them and their subfolders (not hidden ones, not Office lock
    files, not the gradebook)."""
    files = []
    for s in map(Path, submissions):
        if s.is_dir():
            for f in files_under(s):  # one subfolder per student, as course sites export them
                if out is not None and f.resolve() == out.resolve():
                    continue
                files.append(f)
        else:
            files.append(s)
    return files


def _ranges(rec: Block) -> list[str]:
    return [g.ref(absolute=True) for g in rec.grids]


def _cells(rec: Block) -> int:
    return sum(g.height * g.width for g in rec.grids)


def _meta(read: safety.ReadResult) -> dict | None:
    text = read.meta.get(META_KEY)
    if not text or len(text) > 100_000:
        return None
    try:
        meta = parse_json(text, META_KEY, ExerciseError)
    except ExerciseError:  # malformed, or nested deep enough to exhaust the stack
        return None
    return meta if isinstance(meta, dict) else None


def _grade_safely(path: Path, read: safety.ReadResult, k: Key, tol: float,
                  recalculated: safety.ReadResult | None = None) -> Row:
    """One file's row, whatever the file holds: no submission can stop the run for the others."""
    try:
        return _grade_one(path, read, k, tol, recalculated)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - a hostile file must cost one row, not the gradebook
        note = f"{type(e).__name__}: {str(e)[:160]}"
        return Row(str(path), "unreadable", f"could not be graded ({note})", seconds=read.seconds)


def _grade_one(path: Path, read: safety.ReadResult, k: Key, tol: float,
               recalculated: safety.ReadResult | None = None) -> Row:
    row = Row(str(path), read.status, read.note, seconds=read.seconds)
    if read.status != "ok":
        return row
    meta = _meta(read)
    if meta is None:
        row.status, row.note = "not-an-exercise", STATUSES["not-an-exercise"]
        return row
    sid = str(meta.get("student_id", ""))[:200]
    row.student_id, row.name = sid, str(meta.get("name", ""))[:200]
    seed = meta.get("variant_seed")
    row.variant_seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    if meta.get("exercise_id") != k.exercise_id:
        row.status = "wrong-exercise"
        row.note = f"made for exercise {str(meta.get('exercise_id'))[:80]!r}; this key is {k.exercise_id!r}"
        return row
    if sid not in k.variants:
        row.status, row.note = "unknown-student", f"records student id {sid!r}, which is not in this key"
        return row
    variant = k.variants[sid]
    row.name = variant["name"]  # the roster's, not the file's
    if row.variant_seed != variant["variant_seed"]:
        row.status = "wrong-variant"
        row.note = (f"records variant seed {seed!r}, but this key gives {sid!r} the variant "
                    f"{variant['variant_seed']} (a file from another seed or term?)")
        return row
    if meta.get("mode") == "key":
        row.status, row.note = "answer-key", STATUSES["answer-key"]
        return row
    if read.cells is None:
        row.status, row.note = "missing-sheet", f"the sheet {k.sheet!r} is missing (sheets: {read.sheets})"
        return row
    if _needs_recalculation(read, k):
        read = recalculated or safety.ReadResult("recalc-failed", "answers are formulas without saved values, "
                                                                  "and they were not recalculated")
        if read.status != "ok":
            row.status, row.note = read.status, read.note
            return row
        row = _mark(row, read, k, tol, variant)
        row.note = "; ".join(x for x in ("answers are formulas saved without values: recalculated in LibreOffice",
                                         row.note) if x)
    else:
        row = _mark(row, read, k, tol, variant)
    if read.sheet and read.sheet != k.sheet:
        if row.status == "edited-inputs":  # not the exercise sheet renamed, but some other sheet
            return Row(str(path), "missing-sheet", f"the sheet {k.sheet!r} is missing (the only other sheet, "
                       f"{read.sheet!r}, does not hold this variant's inputs)", row.student_id, row.name,
                       row.variant_seed, seconds=row.seconds)
        row.note = "; ".join(x for x in (f"the sheet {k.sheet!r} was renamed {read.sheet!r}", row.note) if x)
    return row


def _needs_recalculation(read: safety.ReadResult, k: Key) -> bool:
    """Whether a file's answers hold formulas saved without values (openpyxl, some online tools save so)."""
    return read.status == "ok" and read.cells is not None and any(
        is_formula and value is None for rec in k.answers for r in _ranges(rec)
        for line in read.cells.get(r, ()) for value, is_formula in line)


def _recalculate_all(files: list[Path], reads: list[safety.ReadResult], k: Key, ranges: list[str],
                     pool: safety.ReaderPool, engine_timeout: float) -> dict[int, safety.ReadResult]:
    """Recalculate in LibreOffice the files whose answers are formulas without saved values, and read them
    again: all in one LibreOffice run, and one run per file only if that one fails (one bad file costs one row)."""
    from xlconv.engine import recalculate

    todo = [n for n, r in enumerate(reads) if _needs_recalculation(r, k)]
    found: dict[int, safety.ReadResult] = {}
    if not todo:
        return found
    with tempfile.TemporaryDirectory(prefix="xlconv-grade-") as tmp:
        # Copies with distinct names: students' files often share one (a folder per student).
        copies = []
        for n in todo:
            copy = Path(tmp) / "in" / f"{n:06d}.xlsx"
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(files[n], copy)
            copies.append(copy)
        try:
            batches = [list(zip(todo, recalculate(copies, Path(tmp) / "out",
                                                        timeout=engine_timeout + 5.0 * len(copies))))]
        except XlconvError:
            batches = []
            for n, copy in zip(todo, copies):
                try:
                    batches.append(list(zip([n], recalculate([copy], Path(tmp) / f"out{n}", timeout=engine_timeout))))
                except XlconvError as e:
                    found[n] = safety.ReadResult("recalc-failed", f"answers are formulas without saved values, and "
                                                                  f"LibreOffice could not recalculate: {str(e)[:200]}")
        for batch in batches:
            for n, out in batch:
                read = pool.read(out, k.sheet, ranges)
                if read.status == "ok" and read.cells is None:
                    read = safety.ReadResult("recalc-failed", "the recalculated copy lost the exercise sheet")
                found[n] = read
    return found


def _mark(row: Row, read: safety.ReadResult, k: Key, tol: float, variant: dict) -> Row:
    cells = read.cells
    assert cells is not None, "_grade_one marks only reads that found the exercise sheet"
    notes: list[str] = []
    edited = []
    for rec in k.inputs:
        want = np.asarray(variant["inputs"][rec.name], dtype=np.float64)
        for c, (g, r) in enumerate(zip(rec.grids, _ranges(rec))):
            for i, line in enumerate(cells[r]):
                for j, (value, _) in enumerate(line):
                    a = read_answer(float(value) if isinstance(value, bool) else value)  # ceil_mode cells
                    if a.kind != "number" or abs(a.value - want[c, i, j]) > 1e-9:
                        edited.append(f"{g.cell(i, j)} ({want[c, i, j]:g} -> {_show(value)})")
    texts, bads = [], []
    expected = k.expected(row.student_id)
    for rec in k.answers:
        exp = expected[rec.name]
        right = 0
        for c, (g, r) in enumerate(zip(rec.grids, _ranges(rec))):
            for i, line in enumerate(cells[r]):
                for j, (value, formula) in enumerate(line):
                    a = read_answer(value)
                    ok = a.value is not None and abs(a.value - exp[c, i, j]) <= tol + 1e-9
                    row.cells.append(flags.CellMark(rec.name, c, i, j, value, _formula_text(formula), a.kind,
                                                    a.value, ok))
                    if a.kind == "bad":
                        bads.append(f"{g.cell(i, j)} {_show(value)}")
                    elif a.kind == "text":
                        texts.append(f"{g.cell(i, j)} {_show(value)} as {a.value:g}")
                    right += ok
        row.marks[rec.name] = right
    if edited:
        row.status = "edited-inputs"
        notes.append(f"changed input cells (graded against the inputs as generated): {_some(edited)}")
    if texts:
        notes.append(f"text read as numbers: {_some(texts)}")
    if bads:
        notes.append(f"not numbers (wrong): {_some(bads)}")
    row.note = "; ".join(notes)
    return row


def _formula_text(formula: Any) -> str:
    """The formula the reader reported for a cell ("" for none; "=" when a reader says only that there is one)."""
    if isinstance(formula, str):
        return formula
    return "=" if formula else ""


def _show(value: Any) -> str:
    s = repr(value) if isinstance(value, str) else str(value)
    return s if len(s) <= 24 else s[:21] + "..."


def _some(items: list[str]) -> str:
    more = len(items) - MAX_NOTE_ITEMS
    return ", ".join(items[:MAX_NOTE_ITEMS]) + (f" and {more} more" if more > 0 else "")


def _note_duplicates(rows: list[Row]) -> None:
    by_id: dict[str, list[Row]] = {}
    for r in rows:
        if r.status in GRADED and r.student_id:
            by_id.setdefault(r.student_id, []).append(r)
    for same in by_id.values():
        if len(same) > 1:
            for r in same:
                others = ", ".join(Path(o.file).name for o in same if o is not r)
                r.note = "; ".join(x for x in (r.note, f"the same student's variant is also in {others}") if x)


def write_gradebook(book: Gradebook, path: str | Path) -> Path:
    """Write the gradebook atomically: CSV, or XLSX with a second sheet explaining the scheme and statuses."""
    path = Path(path)
    df = book.frame()
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False, encoding="utf-8")
        else:
            import pandas as pd

            from xlconv.book import FIXED_DATE

            scheme = pd.DataFrame({"scheme": scheme_lines(book)})
            # XlsxWriter with a fixed creation date: grading twice gives the same bytes (openpyxl stamps the time).
            with pd.ExcelWriter(tmp, engine="xlsxwriter",
                                engine_kwargs={"options": {"strings_to_formulas": False, "strings_to_urls": False}}
                                ) as xw:
                xw.book.set_properties({"created": FIXED_DATE, "author": "xlconv"})
                df.to_excel(xw, sheet_name="gradebook", index=False)
                scheme.to_excel(xw, sheet_name="scheme", index=False)
    return path


def scheme_lines(book: Gradebook) -> list[str]:
    """The marking scheme and the statuses, in words (the XLSX gradebook's second sheet)."""
    lines = [
        "Each question is one answer block (one op's output); its mark is the number of its cells answered right.",
        f"Right: a number within {book.tolerance:g} of the value computed (NumPy, checked with torch) from the "
        f"inputs as generated, not as the student may have changed them.",
        "Text is read as a teacher would: spaces ignored, a Unicode minus or dash is a minus, '+3' is 3, "
        "'3,5' is 3.5, '1/4' is 0.25; blank is unanswered; anything else is wrong.",
        "Questions: " + ", ".join(f"{q} ({n} cells)" for q, n in book.questions.items()) + f"; total {book.max}.",
        "penalty: percent of the marks taken for late work (per started day after --due); final: the total after it.",
        "flags: what to look at twice, with its evidence: answers that fit another student's variant (from the "
        "keys' right values), identical files, identical wrong answers, answers typed as formulas, late work.",
        "Statuses:",
    ]
    lines += [f"{s}: {text}" for s, text in STATUSES.items()]
    return lines


__all__ = ["grade", "read_answer", "Answer", "load_key", "Key", "Row", "Gradebook", "write_gradebook",
           "STATUSES", "GRADED", "scheme_lines", "question_column"]
