"""Grades in a course site's own import format, and the roster columns that say who is who there.

Canvas ("Import grades in the Gradebook"): a CSV whose header is ``Student, ID, SIS User ID, SIS Login ID,
Section`` followed by one column per assignment; the second row may be ``Points Possible``. Canvas matches a
row by its ID, SIS User ID or SIS Login ID; a new column name makes a new assignment. We write the roster's
student id as SIS User ID (unless the roster has its own SIS User ID column) and the points after penalties.

Moodle ("Grade import", CSV): the format of its own plain-text grade export, ``First name, Last name, ID number,
Institution, Department, Email address`` and then one column per grade item; on import the teacher maps "ID
number" to useridnumber or "Email address" to useremail, and the grade column to the assignment.

The roster (a CSV: the exercise's roster, or the course site's own export) names its columns; matched without
case, spaces or punctuation: see COLUMNS.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from xlconv.atomic import write_text
from xlconv.errors import ExerciseError
from xlconv.exercise import ID_COLUMNS, NAME_COLUMNS
from xlconv.flags import parse_time
from xlconv.guards import input_file

if TYPE_CHECKING:
    from xlconv.grade import Gradebook

SITES = ("canvas", "moodle")
CANVAS_HEADER = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "    Points Possible"  # as Canvas's own export writes it (leading spaces included)
MOODLE_HEADER = ("First name", "Last name", "ID number", "Institution", "Department", "Email address")
# The roster's columns, normalised (lower case, runs of spaces, dashes, dots and brackets as one "_").
COLUMNS = {
    "name": NAME_COLUMNS + ("student",),
    "first_name": ("first_name", "firstname", "given_name"),
    "last_name": ("last_name", "lastname", "surname", "family_name"),
    "email": ("email", "email_address", "e_mail", "mail"),
    "sis_user_id": ("sis_user_id",),
    "sis_login_id": ("sis_login_id", "login_id", "login", "username", "user_name"),
    "section": ("section", "sections", "group"),
    "canvas_id": ("canvas_id", "canvas_user_id"),
    "id_number": ("id_number", "idnumber"),
    "institution": ("institution",),
    "department": ("department",),
    "time": ("submitted", "submitted_at", "submission_time", "submission_date", "time", "timestamp",
             "last_modified_submission", "handed_in"),
}


def _norm(column: str) -> str:
    return re.sub(r"[\s\-.()\[\]]+", "_", str(column).strip().lower()).strip("_")


@dataclass(frozen=True)
class Person:
    """One roster row: the exercise's student id and what the course site knows the student by."""

    id: str
    fields: Mapping[str, str] = field(default_factory=dict)  # COLUMNS key -> text

    def get(self, key: str) -> str:
        """A field's text, "" when the roster has no such column."""
        return self.fields.get(key, "")


@dataclass(frozen=True)
class People:
    """The roster: people by student id, the columns found, and submission times (when it has a time column)."""

    path: Path
    by_id: Mapping[str, Person]
    columns: Mapping[str, str]  # COLUMNS key -> the roster's own heading
    times: Mapping[str, dt.datetime]


def read_people(path: str | Path, id_column: str | None = None, time_column: str | None = None) -> People:
    """The roster's people and their course-site columns; ExerciseError naming the file, row or column."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise ExerciseError(f"{path}: no such roster file")
    input_file(path, "roster", ExerciseError)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise ExerciseError(f"{path}: not a readable roster CSV ({type(e).__name__}: {str(e).strip()})") from None
    headings = {_norm(c): str(c) for c in df.columns}
    found = ", ".join(repr(str(c)) for c in df.columns) or "none"
    if id_column is not None:
        id_col = headings.get(_norm(id_column))
        if id_col is None:
            raise ExerciseError(f"{path}: has no column {id_column!r} for the student id (columns: {found})")
    else:
        # A Moodle export keys students by "ID number".
        id_col = next((headings[c] for c in ID_COLUMNS + COLUMNS["id_number"] if c in headings), None)
        if id_col is None:
            raise ExerciseError(f"{path}: no student id column: name one {', '.join(ID_COLUMNS[:4])} or pass "
                                f"--id-column (columns: {found})")
    columns: dict[str, str] = {}
    for key, names in COLUMNS.items():
        for name in names:
            if name in headings and headings[name] != id_col:
                columns[key] = headings[name]
                break
    if time_column is not None:
        if _norm(time_column) not in headings:
            raise ExerciseError(f"{path}: has no column {time_column!r} for the submission time (columns: {found})")
        columns["time"] = headings[_norm(time_column)]
    # A Canvas gradebook export as the roster: its "ID" is Canvas's own id, not the SIS one.
    if "sis_user_id" in columns and _norm(id_col) == "id":
        columns.setdefault("canvas_id", id_col)
    by_id: dict[str, Person] = {}
    times: dict[str, dt.datetime] = {}
    for n, row in enumerate(df.to_dict("records"), start=2):
        sid = str(row[id_col]).strip()
        if not sid or sid.lower() == "points possible":
            continue  # a blank line, or the second row of a Canvas export
        fields = {k: str(row[c]).strip() for k, c in columns.items()}
        by_id[sid] = Person(sid, fields)
        if fields.get("time"):
            times[sid] = parse_time(fields["time"], f"{path}: row {n}: column {columns['time']!r}")
    return People(path, by_id, columns, times)


def _csv(rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)  # RFC 4180, as both sites document
    return buf.getvalue()


def _safe(text: str) -> str:
    """Text a spreadsheet or course site shows as text, never a formula."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t") else text


def _points(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:g}" if float(x).is_integer() else f"{x:.2f}"


def _best_rows(book: Gradebook) -> dict[str, float]:
    """Each graded student's points after penalties (a student with several files: the best one)."""
    best: dict[str, float] = {}
    for r in book.rows:
        final = r.final
        if final is not None and r.student_id:
            best[r.student_id] = max(best.get(r.student_id, final), final)
    return best


def canvas_text(book: Gradebook, people: People | None, assignment: str) -> str:
    """The Canvas gradebook import CSV: one row per graded student, the assignment's points after penalties."""
    rows: list[list[object]] = [[*CANVAS_HEADER, _safe(assignment)], [CANVAS_POINTS_ROW, "", "", "", "", book.max]]
    names = {r.student_id: r.name for r in book.rows}
    for sid, points in _best_rows(book).items():
        p = people.by_id.get(sid) if people else None
        name = (p.get("name") if p else "") or names.get(sid, "")
        rows.append([_safe(name), _safe(p.get("canvas_id") if p else ""), _safe((p.get("sis_user_id") if p else "")
                     or sid), _safe(p.get("sis_login_id") if p else ""), _safe(p.get("section") if p else ""),
                     _points(points)])
    return _csv(rows)


def moodle_text(book: Gradebook, people: People | None, assignment: str) -> str:
    """The Moodle grade import CSV: its export's columns, then the grade item; keyed by ID number or email."""
    rows: list[list[object]] = [[*MOODLE_HEADER, _safe(assignment)]]
    names = {r.student_id: r.name for r in book.rows}
    for sid, points in _best_rows(book).items():
        p = people.by_id.get(sid) if people else None
        first, last = (p.get("first_name"), p.get("last_name")) if p else ("", "")
        if not (first or last):
            full = ((p.get("name") if p else "") or names.get(sid, "")).split()
            first, last = " ".join(full[:-1]) or " ".join(full), full[-1] if len(full) > 1 else ""
        rows.append([_safe(first), _safe(last), _safe((p.get("id_number") if p else "") or sid),
                     _safe(p.get("institution") if p else ""), _safe(p.get("department") if p else ""),
                     _safe(p.get("email") if p else ""), _points(points)])
    return _csv(rows)


def write(book: Gradebook, people: People | None, site: str, assignment: str, path: Path) -> Path:
    """Write the course site's import file atomically."""
    text = canvas_text(book, people, assignment) if site == "canvas" else moodle_text(book, people, assignment)
    write_text(path, text)
    return path


__all__ = ["read_people", "People", "Person", "canvas_text", "moodle_text", "write", "SITES", "CANVAS_HEADER",
           "MOODLE_HEADER", "COLUMNS"]
