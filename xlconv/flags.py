"""What a gradebook row should make an instructor look twice at: answers that fit another student's variant,
identical files, identical wrong answers, answers typed as formulas, and late work (with its penalty).

Every flag is evidence the instructor can check, not a verdict: "answers match s01's variant" means the
answer block is wrong for the student's own inputs and right, cell for cell, for the inputs the key gave s01.
The variants are compared by the right values the key computes for each of them (NumPy, cross-checked with
torch), never by file names or what a file says about itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from xlconv.errors import ExerciseError

if TYPE_CHECKING:
    from xlconv.grade import Key, Row

FORMULA_POLICIES = ("allow", "flag", "zero")
# A block "fits" another variant when at least this share of its cells is right for that variant, more than
# for the student's own, and at least MIN_FIT cells: a few coincidences on 0/1 images prove nothing.
FIT_SHARE = 0.75
MIN_FIT = 3
# Identical wrong answers: at least this many cells, the same wrong number in the same cell.
MIN_SHARED_WRONG = 3
DAY = dt.timedelta(days=1)
# Moodle's grading worksheet writes "Monday, 3 March 2025, 11:59 PM" (English locale); ISO 8601 is tried first.
LONG_FORMS = ("%A, %d %B %Y, %I:%M %p", "%A, %d %B %Y, %H:%M", "%d %B %Y, %I:%M %p", "%d %B %Y, %H:%M",
              "%Y-%m-%d %H:%M:%S %Z")


@dataclass(frozen=True)
class CellMark:
    """One answer cell as graded: where it is, what the student typed, and whether it is right."""

    question: str
    channel: int
    i: int
    j: int
    value: Any  # as the sandboxed reader returned it (number, text, bool or None)
    formula: str  # the formula's text when the cell holds one, else ""
    kind: str  # read_answer's kind: "blank" | "number" | "text" | "bad"
    number: float | None
    right: bool


@dataclass(frozen=True)
class Policy:
    """The instructor's rules for formulas and late work."""

    formulas: str = "flag"  # allow | flag | zero
    due: dt.datetime | None = None
    late_penalty: float = 0.0  # percent of the marks per started day late
    times: Mapping[str, dt.datetime] = field(default_factory=dict)  # student id -> submitted (roster/LMS export)


def check_policy(formulas: str, due: str | dt.datetime | None, late_penalty: float) -> tuple[str, dt.datetime | None,
                                                                                             float]:
    """The formula policy, the due time (aware) and the penalty, checked; ExerciseError naming the option."""
    if formulas not in FORMULA_POLICIES:
        raise ExerciseError(f"--formulas: {formulas!r} is not one of {', '.join(FORMULA_POLICIES)}")
    when = parse_time(due, "--due") if isinstance(due, str) else due
    if when is not None and when.tzinfo is None:
        when = when.astimezone()  # a due time without a zone is the instructor's local time
    if isinstance(late_penalty, bool) or not isinstance(late_penalty, (int, float)) or not (
            math.isfinite(late_penalty) and 0 <= late_penalty <= 100):
        raise ExerciseError(f"--late-penalty: must be a percentage from 0 to 100, got {late_penalty!r}")
    if late_penalty and when is None:
        raise ExerciseError("--late-penalty needs --due (the time the work was due)")
    return formulas, when, float(late_penalty)


def parse_time(text: str, where: str) -> dt.datetime:
    """An ISO 8601 time (or the long form Moodle exports, "Monday, 3 March 2025, 11:59 PM"); ExerciseError
    naming where when it is not a time."""
    s = str(text).strip()
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        pass
    for form in LONG_FORMS:
        try:
            return dt.datetime.strptime(s, form)
        except ValueError:
            continue
    raise ExerciseError(f"{where}: {s[:60]!r} is not a time (use ISO 8601, e.g. 2025-03-01T23:59+01:00)")


def apply(rows: Sequence[Row], key: Key, tol: float, policy: Policy, graded_statuses: Sequence[str]) -> None:
    """Add flags to graded rows, zero formula answers when the policy says so, and take late penalties."""
    graded = [r for r in rows if r.status in graded_statuses and r.cells]
    _formulas(graded, policy.formulas)
    _other_variants(graded, key, tol)
    _identical_files(rows)
    _shared_wrong(graded)
    if policy.due is not None:
        for r in graded:
            _late(r, policy)


def _formulas(rows: Sequence[Row], policy: str) -> None:
    for r in rows:
        typed = [c for c in r.cells if c.formula]
        if not typed or policy == "allow":
            continue
        cells = ", ".join(f"{c.question}[{c.channel + 1}]({c.i + 1},{c.j + 1})" for c in typed[:2])
        more = f" and {len(typed) - 2} more" if len(typed) > 2 else ""
        if policy == "zero":
            for c in typed:
                if c.right:
                    r.marks[c.question] -= 1
            r.flags.append(f"{len(typed)} answers typed as formulas, scored 0 ({cells}{more}: e.g. {typed[0].formula})")
            r.note = "; ".join(x for x in (r.note, f"{len(typed)} answers typed as formulas scored 0 "
                                                   f"(--formulas zero)") if x)
        else:
            r.flags.append(f"{len(typed)} answers typed as formulas ({cells}{more}: e.g. {typed[0].formula})")


def _numbers(r: Row, question: str, shape: tuple[int, ...]) -> np.ndarray:
    """The student's numbers of one question as an array (NaN where blank or not a number)."""
    out = np.full(shape, np.nan)
    for c in r.cells:
        if c.question == question and c.number is not None:
            out[c.channel, c.i, c.j] = c.number
    return out


def fit_other_variant(answers: np.ndarray, own: np.ndarray, other: np.ndarray, tol: float) -> int:
    """How many cells fit the other variant, if the block fits it better than its own, else 0."""
    answered = ~np.isnan(answers)
    n = int(answered.sum())
    if n < MIN_FIT or own.shape != other.shape:
        return 0
    diff = ~np.isclose(own, other, rtol=0, atol=tol)  # cells where the two variants' right answers differ
    fits_other = answered & (np.abs(np.nan_to_num(answers) - other) <= tol + 1e-9)
    fits_own = answered & (np.abs(np.nan_to_num(answers) - own) <= tol + 1e-9)
    telling = int((fits_other & diff).sum())  # fits that only a copy explains
    if telling < MIN_FIT or fits_other.sum() <= fits_own.sum() or fits_other.sum() < FIT_SHARE * n:
        return 0
    return int(fits_other.sum())


def _other_variants(rows: Sequence[Row], key: Key, tol: float) -> None:
    suspicious = [r for r in rows if any(r.marks.get(q.name, 0) < _size(q) for q in key.answers)]
    if not suspicious:
        return
    others = sorted(key.variants)
    for r in suspicious:
        mine = key.expected(r.student_id)
        found: dict[str, list[str]] = {}
        for q in key.answers:
            if r.marks.get(q.name, 0) == _size(q):
                continue
            answers = _numbers(r, q.name, mine[q.name].shape)
            best, best_id = 0, ""
            for sid in others:
                if sid == r.student_id:
                    continue
                fit = fit_other_variant(answers, mine[q.name], key.expected(sid)[q.name], tol)
                if fit > best:
                    best, best_id = fit, sid
            if best_id:
                found.setdefault(best_id, []).append(q.name)
                r.fits.setdefault(q.name, best_id)
        for sid, questions in found.items():
            r.flags.append(f"answers match {sid}'s variant ({', '.join(questions)})")


def _size(block: Any) -> int:
    return sum(g.height * g.width for g in block.grids)


def _identical_files(rows: Sequence[Row]) -> None:
    by_hash: dict[str, list[Row]] = {}
    for r in rows:
        digest = _digest(Path(r.file))
        if digest is not None:
            by_hash.setdefault(digest, []).append(r)
    for same in by_hash.values():
        if len(same) > 1:
            for r in same:
                names = ", ".join(Path(o.file).name + (f" ({o.student_id})" if o.student_id else "")
                                  for o in same if o is not r)
                r.flags.append(f"identical file to {names}")


def _digest(path: Path) -> str | None:
    """SHA-256 of a regular file's bytes (read, never parsed), or None."""
    try:
        if not path.is_file() or path.stat().st_size > 64 * 2**20:
            return None
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def _wrong(r: Row) -> dict[tuple[str, int, int, int], float]:
    return {(c.question, c.channel, c.i, c.j): round(c.number, 6) for c in r.cells
            if c.number is not None and not c.right}


def _shared_wrong(rows: Sequence[Row]) -> None:
    wrong = [(r, _wrong(r)) for r in rows]
    for a, wa in wrong:
        for b, wb in wrong:
            if a is b or not wa or not wb or a.student_id == b.student_id:
                continue
            shared = [k for k, v in wa.items() if wb.get(k) == v]
            if len(shared) >= MIN_SHARED_WRONG and len(shared) >= 0.5 * min(len(wa), len(wb)):
                who = b.student_id or Path(b.file).name
                a.flags.append(f"{len(shared)} wrong answers identical to {who}'s")


def submitted_at(r: Row, times: Mapping[str, dt.datetime]) -> tuple[dt.datetime, str]:
    """When a file was handed in: the roster's (or LMS export's) time for the student, else its modification time."""
    if r.student_id in times:
        t = times[r.student_id]
        return (t if t.tzinfo else t.astimezone()), "the roster's time"
    stamp = os.stat(r.file).st_mtime
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc), "the file's modification time"


def late_days(submitted: dt.datetime, due: dt.datetime) -> int:
    """Started days after the due time: 1 second late is 1 day, exactly 24 h late is 1 day, 24 h 1 s is 2."""
    late = submitted - due
    return 0 if late <= dt.timedelta(0) else math.ceil(late / DAY)


def _late(r: Row, policy: Policy) -> None:
    assert policy.due is not None
    try:
        when, source = submitted_at(r, policy.times)
    except OSError:
        r.flags.append("submission time unknown (no roster time, and the file's time cannot be read)")
        return
    r.submitted = when.isoformat(timespec="seconds")
    days = late_days(when, policy.due)
    if not days:
        return
    r.penalty = min(100.0, days * policy.late_penalty)
    what = (f"late {days} day{'s' if days > 1 else ''}: submitted {_show_time(when)} ({source}), "
            f"due {_show_time(policy.due)}")
    r.flags.append(f"late {days} day{'s' if days > 1 else ''}")
    if policy.late_penalty:
        what += f"; {policy.late_penalty:g}% per started day = -{r.penalty:g}% of the marks"
    r.note = "; ".join(x for x in (r.note, what) if x)


def _show_time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


__all__ = ["CellMark", "Policy", "apply", "check_policy", "parse_time", "late_days", "fit_other_variant",
           "submitted_at", "FORMULA_POLICIES"]
