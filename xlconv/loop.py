"""The instructor's loop after grading: check the options before any file is read, then write the feedback
workbooks and the course site's import file once the gradebook is written."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from xlconv import feedback as fb
from xlconv import lms as lms_mod
from xlconv.errors import ExerciseError
from xlconv.flags import Policy, check_policy

if TYPE_CHECKING:
    from xlconv.grade import Gradebook, Key

GRADED = ("ok", "edited-inputs")  # the statuses that carry marks (grade.GRADED; grade imports this module)


def prepare(feedback: str | Path | None, formulas: str, due: str | dt.datetime | None, late_penalty: float,
            roster: str | Path | None, lms: str | None, id_column: str | None,
            out: Path | None) -> tuple[lms_mod.People | None, Policy]:
    """The roster and the grading policy, every option checked; ExerciseError naming the option or file."""
    formulas, when, penalty = check_policy(formulas, due, late_penalty)
    if lms is not None and lms not in lms_mod.SITES:
        raise ExerciseError(f"--lms: {lms!r} is not one of {', '.join(lms_mod.SITES)}")
    if lms is not None and out is None:
        raise ExerciseError("--lms writes its file beside the gradebook: give the gradebook a path (-o)")
    if feedback is not None:
        folder = Path(feedback)
        if folder.exists() and not folder.is_dir():
            raise ExerciseError(f"{folder}: --feedback needs a folder, and this is a file")
    people = lms_mod.read_people(roster, id_column) if roster is not None else None
    return people, Policy(formulas, when, penalty, dict(people.times) if people else {})


def lms_path(out: Path, site: str) -> Path:
    """Where the course site's import file goes: beside the gradebook, named for the site."""
    return out.with_name(f"{out.stem}-{site}.csv")


def finish(book: Gradebook, key: Key, feedback: str | Path | None, marks_only: bool, people: lms_mod.People | None,
           site: str | None, assignment: str | None, formulas: str = "flag") -> None:
    """Write the feedback workbooks and the course site's file the options asked for; record them on the book."""
    if feedback is not None:
        book.feedback = fb.write_all(book, key, Path(feedback), GRADED, marks_only, formulas)
    if site is not None and book.path is not None:
        name = assignment or key.exercise_id.rsplit("-", 1)[0]
        book.lms = lms_mod.write(book, people, site, name, lms_path(book.path, site))


__all__ = ["prepare", "finish", "lms_path", "GRADED"]
