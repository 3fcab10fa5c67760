"""The xlconv command line: each command parses its arguments, calls one library function, and prints."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from xlconv._version import __version__
from xlconv import progress
from xlconv.errors import ExerciseError, XlconvError
from xlconv.guards import Terminated, stop_cleanly_on_signals


def _build(args: argparse.Namespace) -> int:
    from xlconv.build import build_all

    for path in build_all(args.specs or None, args.output):
        print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from xlconv.verify import verify

    reports = verify(args.files, engine=args.engine, tolerance=args.tolerance, timeout=args.timeout)
    for report in reports:
        print("\n".join(report.lines()))
    return 0 if all(r.ok for r in reports) else 1


def _exercise(args: argparse.Namespace) -> int:
    from xlconv.exercise import exercise

    grids: dict[str, list[str]] = {}
    for item in args.grid or []:
        name, sep, files = item.partition("=")
        if not sep or not name or not files:
            raise ExerciseError(f"--grid {item!r}: expected NAME=FILE.csv (or NAME=ch0.csv,ch1.csv)")
        grids[name] = files.split(",")
    result = exercise(args.spec, args.output, seed=args.seed, roster=args.roster, self_check=args.self_check,
                      tolerance=args.tolerance, grid_csv=grids, id_column=args.id_column,
                      name_column=args.name_column, jobs=args.jobs)
    for path in result.student_files:
        print(path)
    for path in result.key_files:
        print(path)
    print(result.index)
    print(result.manifest)
    varied = ", ".join(result.randomized) or "none (every variant has the spec's inputs)"
    print(f"exercise {result.exercise_id}, seed {result.seed}: {len(result.variants)} variant(s); random grids: "
          f"{varied}. Hand out {result.out_dir / 'students'}; keep the rest for grading.", file=sys.stderr)
    return 0


def _grade(args: argparse.Namespace) -> int:
    from xlconv.grade import grade

    book = grade(args.submissions, args.key, args.output, tolerance=args.tolerance, timeout=args.timeout,
                 jobs=args.jobs, feedback=args.feedback, marks_only=args.feedback_marks_only, formulas=args.formulas,
                 due=args.due, late_penalty=args.late_penalty, roster=args.roster, lms=args.lms,
                 id_column=args.id_column, assignment=args.assignment)
    for row in book.rows:
        marks = f"{row.total}/{book.max}" if row.total is not None else "-"
        if row.penalty and row.final is not None:
            marks += f" -> {row.final:g} after -{row.penalty:g}%"
        print(f"{row.file}: {row.status} {marks}" + (f" ({row.note})" if row.note and row.status != "ok" else "")
              + (f" [flags: {'; '.join(row.flags)}]" if row.flags else ""))
    print(book.path)
    for path in book.feedback:
        print(path)
    if book.lms is not None:
        print(book.lms)
    return 0


def _alexnet(args: argparse.Namespace) -> int:
    from xlconv.build import alexnet_workbook

    print(alexnet_workbook(args.output, image=args.image, weights=args.weights, seed=args.seed,
                         normalize=args.normalize, channels=args.channels))
    return 0


def _render(args: argparse.Namespace) -> int:
    from xlconv.render import render

    for path in render(args.files, args.output, dpi=args.dpi, timeout=args.timeout):
        print(path)
    return 0


def _jobs(text: str) -> int:
    from xlconv.parallel import MAX_JOBS

    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_JOBS}, got {text!r}")
    return n


def parser() -> argparse.ArgumentParser:
    """The argument parser of the xlconv command."""
    p = argparse.ArgumentParser(prog="xlconv", description="Excel workbooks with live formulas for teaching CNNs.")
    p.add_argument("--version", action="version", version=f"xlconv {__version__}")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bars (they show only when stderr is a terminal anyway)")
    jobs = argparse.ArgumentParser(add_help=False)
    jobs.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N",
                      help="worker processes (default: one per core); the output is the same for any N")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", parents=[quiet], help="write one .xlsx per worksheet spec")
    b.add_argument("specs", nargs="*", metavar="SPEC", help="spec file or built-in name (default: all built-ins)")
    b.add_argument("-o", "--output", default="build", metavar="DIR", help="output folder (default: build)")
    b.set_defaults(func=_build)
    v = sub.add_parser("verify", parents=[quiet], help="recalculate workbooks in a real engine and check every cell")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--engine", choices=("libreoffice", "gnumeric", "hyperformula"), default="libreoffice")
    v.add_argument("--tolerance", type=float, default=None,
                   help="largest accepted absolute difference (default: the workbook's own, 1e-6 for toy sheets)")
    v.add_argument("--timeout", type=float, default=600, help="seconds the engine may take (default: 600)")
    v.set_defaults(func=_verify)
    e = sub.add_parser("exercise", parents=[quiet, jobs],
                       help="student workbooks with blank answer cells, answer keys and an index")
    e.add_argument("spec", metavar="SPEC", help="conv spec file or built-in name")
    e.add_argument("--seed", type=int, default=None, help="seed of the variants (default: a fresh one, printed)")
    e.add_argument("--roster", metavar="FILE.csv", help="one variant per student (a column of ids, optional names)")
    e.add_argument("--id-column", help="the roster's id column (default: id, student_id, ...)")
    e.add_argument("--name-column", help="the roster's name column (default: name, if any)")
    e.add_argument("--self-check", action=argparse.BooleanOptionalAction, default=True,
                   help="a live check beside each answer and a live score (default); --no-self-check reveals "
                        "nothing about the answers")
    e.add_argument("--tolerance", type=float, default=0.005,
                   help="largest accepted |answer - right value| (default: 0.005)")
    e.add_argument("--grid", action="append", metavar="NAME=FILE.csv",
                   help="replace a grid by a CSV of numbers for every variant (repeatable)")
    e.add_argument("-o", "--output", default="exercise", metavar="DIR", help="output folder (default: exercise)")
    e.set_defaults(func=_exercise)
    g = sub.add_parser("grade", parents=[quiet, jobs], help="grade returned exercise workbooks into a gradebook")
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="returned workbooks, or folders of them")
    g.add_argument("--key", required=True, metavar="DIR", help="the folder `xlconv exercise` wrote")
    g.add_argument("-o", "--output", default="gradebook.csv", metavar="FILE",
                   help="gradebook.csv or gradebook.xlsx (default: gradebook.csv)")
    g.add_argument("--tolerance", type=float, default=None, help="override the exercise's tolerance")
    g.add_argument("--timeout", type=float, default=30, help="seconds to read one file (default: 30)")
    g.add_argument("--feedback", metavar="DIR", help="write a feedback workbook per graded file into DIR (named by "
                   "student id): each answer cell marked right or wrong with the reason and the right value")
    g.add_argument("--feedback-marks-only", action="store_true",
                   help="feedback marks cells right or wrong without revealing right values (for resubmission)")
    g.add_argument("--formulas", choices=("allow", "flag", "zero"), default="flag",
                   help="answers typed as formulas: count by value silently, count and flag (default), or score 0")
    g.add_argument("--due", metavar="ISO-TIME", help="due time, e.g. 2025-03-01T23:59+01:00: later files are flagged "
                   "late (by the roster's time column, else the file's modification time)")
    g.add_argument("--late-penalty", type=float, default=0.0, metavar="P",
                   help="percent of the marks taken per started day late (needs --due; default 0)")
    g.add_argument("--roster", metavar="FILE.csv", help="the roster or the course site's export: ids, names, e-mail, "
                   "SIS ids, sections, submission times")
    g.add_argument("--id-column", help="the roster's student id column (default: id, student_id, ...)")
    g.add_argument("--lms", choices=("canvas", "moodle"),
                   help="also write the gradebook in the course site's import format, beside -o")
    g.add_argument("--assignment", metavar="NAME", help="the assignment's column name for --lms (default: the spec)")
    g.set_defaults(func=_grade)
    a = sub.add_parser("alexnet", parents=[quiet],
                       help="the lecture's AlexNet: pre-processing, conv1 filters, live conv1/ReLU/pool maps, shapes "
                            "and predictions in one workbook")
    a.add_argument("--image", default=None, metavar="PATH",
                   help="a photo Pillow can read (default: matplotlib's grace_hopper.jpg)")
    a.add_argument("--weights", default="pretrained", metavar="pretrained|random|PATH",
                   help="AlexNet_Weights.IMAGENET1K_V1 from the torch cache or the internet (default), an untrained "
                        "network seeded by --seed, or a state_dict file")
    a.add_argument("--seed", type=int, default=0, metavar="N", help="seed of --weights random (default: 0)")
    a.add_argument("--normalize", choices=("lecture", "imagenet"), default="lecture",
                   help="the lecture's mean=std=0.5 (default) or the weights' ImageNet mean and std")
    a.add_argument("--channels", default="0-63", metavar="0-63",
                   help="conv1 channels to build live maps for, e.g. 0-63 (default), 0-7 or 0,5,9-12")
    a.add_argument("-o", "--output", default="build/alexnet-conv1.xlsx", metavar="FILE",
                   help="output file (default: build/alexnet-conv1.xlsx)")
    a.set_defaults(func=_alexnet)
    r = sub.add_parser("render", parents=[quiet],
                       help="print workbooks to PDF and one PNG per page (LibreOffice recalculates first)")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("-o", "--output", default="render", metavar="DIR", help="output folder (default: render)")
    r.add_argument("--dpi", type=int, default=60, metavar="N", help="resolution of the PNGs (default: 60)")
    r.add_argument("--timeout", type=float, default=300, help="seconds LibreOffice may take (default: 300)")
    r.set_defaults(func=_render)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; XlconvError becomes one line on stderr and exit status 2."""
    args = parser().parse_args(argv)
    progress.configure(progress.wanted(args.quiet))
    stop_cleanly_on_signals()
    try:
        return int(args.func(args))
    except XlconvError as e:
        print(f"xlconv: {e}", file=sys.stderr)
        return 2
    except Terminated as e:
        return 128 + e.signum
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """The `xlconv` command: main(), then exit with its status."""
    status = main()
    if "torch" in sys.modules:
        # Unloading torch's native libraries at interpreter exit takes over a second (1.1 s measured here), as
        # long as all of verify's own checking: every file is closed and every temporary folder removed by now,
        # so the process ends without that teardown.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken pipe: the normal exit would report it the same way
            status = status or 120
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
