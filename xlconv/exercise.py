"""Exercises for instructors: fresh inputs per variant, a student workbook and an answer key per variant.

``exercise(spec, out_dir, seed=..., roster=...)`` writes::

    out_dir/students/<spec>-<id>.xlsx      hand these out: blank answer cells under sheet protection
    out_dir/keys/<spec>-<id>-key.xlsx      the live-formula answer key, laid out cell for cell like the student's
    out_dir/index.csv                      id, name, file, key, variant seed
    out_dir/exercise.json                  what grading needs: layout, ops, and every variant's inputs as generated

Each variant's seed comes from (seed, student id) through SHA-256, never Python's salted hash(), so the same
seed and roster always give the same variants, and the same files byte for byte (XlsxWriter writes fixed
document and zip member timestamps). Grids with an ``exercise = [low, high]`` range get fresh random integers
from a NumPy Generator seeded by the variant seed and the grid's name; other grids keep their spec values,
unless a CSV replaces them for every variant. Kernel sizes, stride, padding and pooling stay as in the spec.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeAlias, Union

import numpy as np

from xlconv import progress
from xlconv import spec as specs
from xlconv._version import __version__
from xlconv.atomic import atomic_folder, write_text
from xlconv.book import Book
from xlconv.guards import check_tolerance, input_file, parse_json, xml_text
from xlconv.errors import ExerciseError, SpecError
from xlconv.parallel import check_jobs, default_jobs, fork_map
from xlconv.model import (AlexNetSpec, Conv, ConvSheetSpec, ConvTranspose, Flatten, GridSpec, Linear, Loss,
                          SizeSheetSpec, Spec, check_shapes, compute)
from xlconv.record import Block
from xlconv.sheets.conv import DEFAULT_TOLERANCE, ConvSheet

MANIFEST = "exercise.json"
INDEX = "index.csv"
STUDENTS_DIR = "students"
KEYS_DIR = "keys"
MANIFEST_FORMAT = 1
META_KEY = "exercise"  # the record sheet's row (column G) holding the exercise's JSON
INPUTS_KEY = "inputs"  # ... and the row holding the inputs as generated
SEED_BITS = 48  # variant seeds stay exact in JSON, JavaScript and a spreadsheet opening index.csv (< 2**53)
ID_COLUMNS = ("id", "student_id", "studentid", "student", "sid", "student_number", "matriculation_number")
NAME_COLUMNS = ("name", "student_name", "full_name", "fullname")
MAX_REDRAWS = 1000
ExerciseSpec: TypeAlias = Union[ConvSheetSpec, SizeSheetSpec]  # the kinds of sheet an exercise can be made of


@dataclass(frozen=True)
class Student:
    """One roster row: an id (required) and a name (may be empty)."""

    id: str
    name: str = ""


@dataclass(frozen=True)
class Variant:
    """One student's version of the exercise: its seed and the spec with its inputs as generated."""

    student: Student
    seed: int
    spec: ExerciseSpec
    student_file: str  # relative to the exercise folder
    key_file: str

    @property
    def id(self) -> str:
        """A short name of the variant (its seed in hex)."""
        return f"{self.seed:012x}"


@dataclass(frozen=True)
class ExerciseResult:
    """What `exercise` wrote."""

    out_dir: Path
    exercise_id: str
    seed: int
    variants: list[Variant]
    randomized: list[str]  # grids drawn at random per variant
    index: Path
    manifest: Path

    @property
    def student_files(self) -> list[Path]:
        """The student workbooks written, one per variant."""
        return [self.out_dir / v.student_file for v in self.variants]

    @property
    def key_files(self) -> list[Path]:
        """The answer keys written, one per variant."""
        return [self.out_dir / v.key_file for v in self.variants]


# --- seeds and inputs -------------------------------------------------------


def _exercise_spec(spec: Spec) -> ExerciseSpec:
    """The spec if an exercise can be made of it (a conv or an output-size sheet); ExerciseError naming it if not."""
    if isinstance(spec, AlexNetSpec):
        raise ExerciseError(f"{spec.path}: xlconv exercise makes exercises of conv and output-size sheets, not of the "
                            f"AlexNet workbook")
    return spec


def variant_seed(seed: int, student_id: str) -> int:
    """The variant seed of a student: stable across runs, machines and Python versions."""
    digest = hashlib.sha256(f"xlconv-exercise\0{int(seed)}\0{student_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[: SEED_BITS // 8], "big")


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def draw_grid(grid: GridSpec, vseed: int) -> np.ndarray:
    """Random integers in the grid's exercise range, same shape; redrawn while every cell is equal."""
    if grid.exercise is None:
        raise ExerciseError(f"grid {grid.name!r} has no exercise range ([low, high]) to draw from")
    lo, hi = (int(x) for x in grid.exercise)
    rng = np.random.default_rng([vseed, _name_key(grid.name)])
    values = rng.integers(lo, hi, size=grid.values.shape, endpoint=True)
    for _ in range(MAX_REDRAWS):
        if lo == hi or values.size == 1 or np.unique(values).size > 1:
            break
        values = rng.integers(lo, hi, size=grid.values.shape, endpoint=True)  # a constant grid teaches nothing
    return values.astype(np.float64)


def make_variant_spec(spec: ExerciseSpec, vseed: int) -> ExerciseSpec:
    """The spec with fresh random integers in every grid that has an exercise range."""
    if isinstance(spec, SizeSheetSpec):
        return spec  # no grids: every variant is the spec's table
    grids = []
    for g in spec.grids:
        if g.exercise is None:
            grids.append(g)
            continue
        lo, hi = (int(x) for x in g.exercise)
        grids.append(dataclasses.replace(g, values=draw_grid(g, vseed),
                                         source=f"random integers {lo} to {hi} (variant {vseed:012x})"))
    out = dataclasses.replace(spec, grids=tuple(grids))
    return _pick_example(out, vseed) if spec.examples is not None else out


def _pick_example(spec: ConvSheetSpec, vseed: int) -> ConvSheetSpec:
    """An exercise of a spec with [examples] is one sheet of typed inputs (grading reads one sheet): no Digits sheet
    and no pick cell. Each variant gets its own shipped example, drawn from the variant seed, typed into the image,
    with its true class as the cross-entropy target; when the image has an exercise range it is drawn instead and
    the spec's target stays."""
    ex = spec.examples
    assert ex is not None
    grid = spec.grid(ex.grid)
    ops = spec.ops
    note = spec.exercise_note
    if grid.exercise is None:
        rng = np.random.default_rng([vseed, _name_key(ex.grid)])
        n = int(rng.integers(len(ex.labels)))
        label = int(ex.labels[n])
        grid = dataclasses.replace(grid, values=ex.values[n][None].astype(np.float64),
                                   source=f"shipped example {n + 1} (variant {vseed:012x})")
        with_digit = dataclasses.replace(spec, grids=tuple(grid if g.name == ex.grid else g for g in spec.grids),
                                         examples=None)
        ce = [op for op in ops if isinstance(op, Loss) and op.loss == "cross_entropy"]
        target = label
        if ce:
            # A trained net is sure of most digits: with their true class as the target the loss and every gradient
            # would be about 0 (an all-zero answer would pass). The target is drawn from the classes it does not
            # predict, so that the loss is large and the gradients are worth working out.
            logits = compute(with_digit)[ce[0].input].ravel()
            others = [c for c in range(logits.size) if c != int(np.argmax(logits))]
            target = int(others[int(rng.integers(len(others)))])
            ops = tuple(dataclasses.replace(op, target=target) if op in ce else op for op in ops)
        note = note or (f"{spec.title}. Your digit is shipped test digit {n + 1}, a {label}, typed into the image; the "
                        f"filters and dense weights are the trained ones. The loss's target is class {target}: drawn "
                        f"for this exercise from the classes the network does not predict, so that the loss and its "
                        f"gradients are large enough to work out (for a digit the network is sure of they are about "
                        f"0).")
    grids = tuple(grid if g.name == ex.grid else g for g in spec.grids)
    return dataclasses.replace(spec, grids=grids, ops=ops, examples=None, exercise_note=note)


def read_grid_csv(paths: Sequence[str | Path]) -> np.ndarray:
    """A grid from CSV files of numbers, one file per channel: (C, H, W) float64."""
    channels = []
    for p in map(Path, paths):
        try:
            rows = specs.read_csv_numbers(p)
        except (OSError, UnicodeDecodeError) as e:
            raise ExerciseError(f"{p}: cannot read the grid CSV: {e}") from None
        except ValueError as e:
            raise ExerciseError(f"{p}: {e}") from None
        if not rows:
            raise ExerciseError(f"{p}: the grid CSV has no numbers")
        for r, values in enumerate(rows, start=1):
            if not all(np.isfinite(values)):
                raise ExerciseError(f"{p}: row {r} has a number that is not finite: {values}")
            if len(values) != len(rows[0]):
                raise ExerciseError(f"{p}: row {r} has {len(values)} numbers, row 1 has {len(rows[0])}")
        channels.append(rows)
    if len({(len(c), len(c[0])) for c in channels}) > 1:
        raise ExerciseError(f"{', '.join(map(str, paths))}: the channels differ in size")
    return np.asarray(channels, dtype=np.float64)


def with_csv_grids(spec: ConvSheetSpec, grid_csv: Mapping[str, Sequence[str | Path] | str | Path]) -> ConvSheetSpec:
    """The spec with some grids replaced by CSV files (the same for every variant, never randomized)."""
    names = {g.name for g in spec.grids}
    grids = list(spec.grids)
    for name, paths in grid_csv.items():
        if name not in names:
            raise ExerciseError(f"{spec.path}: has no grid {name!r} for a CSV to replace "
                                f"(grids: {', '.join(sorted(names))})")
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        values = read_grid_csv(paths)
        k = next(i for i, g in enumerate(grids) if g.name == name)
        grids[k] = dataclasses.replace(grids[k], values=values, exercise=None,
                                       source="from " + ", ".join(Path(p).name for p in paths))
    out = dataclasses.replace(spec, grids=tuple(grids))
    try:
        check_shapes(out)
    except SpecError as e:
        raise ExerciseError(f"with the CSV grids: {e}") from None
    return out


def spec_fingerprint(spec: ExerciseSpec) -> str:
    """SHA-256 of what makes an exercise: sheet, ops, grid shapes and ranges, and the values of fixed grids."""
    if isinstance(spec, SizeSheetSpec):
        doc = {"kind": spec.kind, "name": spec.name, "title": spec.title, "sheet": spec.sheet,
               "rows": [dataclasses.asdict(r) for r in spec.rows]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()
    doc = {
        "kind": spec.kind, "name": spec.name, "title": spec.title, "sheet": spec.sheet,
        "ops": [dict(dataclasses.asdict(op), kind=op.kind) for op in spec.ops],
        "grids": [{"name": g.name, "shape": list(g.values.shape), "exercise": g.exercise,
                   "values": None if g.exercise else g.values.tolist()} for g in spec.grids],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=list).encode("utf-8")).hexdigest()


def exercise_id(spec: ExerciseSpec) -> str:
    """The spec's name and a short hash of it: workbooks of another exercise never match."""
    return f"{spec.name}-{spec_fingerprint(spec)[:12]}"


# --- the roster -------------------------------------------------------------


def _norm(column: str) -> str:
    return re.sub(r"[\s\-.]+", "_", str(column).strip().lower())


def _plain_csv(path: Path) -> tuple[list[str], list[dict[str, str]]] | None:
    """The columns and rows pandas would read from a plain roster (unique, non-empty header names, the same
    number of fields on every line, no quotes, tabs, lone carriage returns, byte-order marks past the first or
    leading spaces), read without importing pandas (half a second); None for anything else, which read_roster
    hands to pandas itself."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None  # pandas names the error
    text = text.replace("\r\n", "\n")
    if any(c in text for c in '"\t\r\0\ufeff'):
        return None
    lines = [line for line in text.split("\n") if line]
    if not lines or any(line[0] == " " or not line.strip() for line in lines):
        return None
    columns = [f.lstrip(" ") for f in lines[0].split(",")]  # skipinitialspace
    if "" in columns or len(set(columns)) < len(columns):
        return None
    rows = []
    for line in lines[1:]:
        fields = [f.lstrip(" ") for f in line.split(",")]  # skipinitialspace
        if len(fields) != len(columns):
            return None
        rows.append(dict(zip(columns, fields)))
    return columns, rows


def _pandas_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of a roster CSV as pandas reads it."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except FileNotFoundError:
        raise ExerciseError(f"{path}: no such roster file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise ExerciseError(f"{path}: not a readable roster CSV ({type(e).__name__}: {str(e).strip()})") from None
    return list(df.columns), df.to_dict("records")


def read_roster(path: str | Path, id_column: str | None = None, name_column: str | None = None) -> list[Student]:
    """Students of a roster CSV (read as pandas reads it): an id column and an optional name column."""
    path = Path(path)
    if path.exists():
        input_file(path, "roster", ExerciseError)
    table = _plain_csv(path) if path.is_file() else None
    df_columns, records = table if table is not None else _pandas_csv(path)
    columns = {_norm(c): c for c in df_columns}
    found = ", ".join(repr(str(c)) for c in df_columns) or "none"

    def pick(wanted: str | None, candidates: tuple[str, ...], what: str, required: bool) -> str | None:
        if wanted is not None:
            if wanted in df_columns:
                return wanted
            if _norm(wanted) in columns:
                return columns[_norm(wanted)]
            raise ExerciseError(f"{path}: has no column {wanted!r} for the {what} (columns: {found})")
        for c in candidates:
            if c in columns:
                return columns[c]
        if required:
            raise ExerciseError(f"{path}: no {what} column: name one {', '.join(candidates[:4])} or pass "
                                f"--id-column (columns: {found})")
        return None

    id_col = pick(id_column, ID_COLUMNS, "student id", True)
    assert id_col is not None  # required: pick raised otherwise
    name_col = pick(name_column, NAME_COLUMNS, "student name", False)
    students: list[Student] = []
    seen: dict[str, int] = {}  # student id -> roster row
    for n, row in enumerate(records, start=2):  # row 1 is the header
        sid = xml_text(str(row[id_col]).strip(), f"{path}: row {n}: column {id_col!r}", ExerciseError)
        name = str(row[name_col]).strip() if name_col else ""
        xml_text(name, f"{path}: row {n}: column {name_col!r}", ExerciseError)
        if not sid:
            if name or any(str(v).strip() for v in row.values()):
                raise ExerciseError(f"{path}: row {n}: column {id_col!r} (the student id) is empty")
            continue  # a blank line
        if sid in seen:
            raise ExerciseError(f"{path}: row {n}: column {id_col!r} repeats the student id {sid!r} of row {seen[sid]}")
        seen[sid] = n
        students.append(Student(sid, name))
    if not students:
        raise ExerciseError(f"{path}: column {id_col!r} has no student ids")
    safe: dict[str, str] = {}
    for s in students:
        f = safe_id(s.id)
        if f in safe:
            raise ExerciseError(f"{path}: column {id_col!r}: the ids {safe[f]!r} and {s.id!r} give the same file "
                                f"name {f!r}")
        safe[f] = s.id
    return students


def safe_id(student_id: str) -> str:
    """A student id as a file-name part: letters, digits, '.', '_' and '-' only, never a path."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", student_id).strip("._-")
    return s[:64] or "id_" + hashlib.sha256(student_id.encode()).hexdigest()[:12]


# --- writing ----------------------------------------------------------------


def root_values(spec: ExerciseSpec) -> dict[str, np.ndarray]:
    """The typed blocks of a sheet as generated: every grid, and each conv's bias cells as (O, 1, 1)."""
    if isinstance(spec, SizeSheetSpec):
        from xlconv.sheets.size import layer_inputs

        return {k: np.asarray(v, dtype=np.float64) for k, v in layer_inputs(spec).items()}
    values = {g.name: g.values for g in spec.grids}
    flattens = {op.name for op in spec.ops if isinstance(op, Flatten)}
    for op in spec.ops:
        if isinstance(op, (Conv, ConvTranspose)) and op.bias is not None:
            values[f"{op.name}_bias"] = np.asarray(op.bias, dtype=np.float64)[:, None, None]
        elif isinstance(op, Linear) and op.input in flattens:  # laid out one column per output (sheets/dense.py)
            w = values[op.weight]
            values[op.weight] = w.reshape(w.shape[1], w.shape[2], 1)
            if op.bias is not None:
                values[f"{op.name}_bias"] = np.asarray(op.bias, dtype=np.float64)[None, None, :]
        elif isinstance(op, Linear) and op.bias is not None:
            values[f"{op.name}_bias"] = np.asarray(op.bias, dtype=np.float64)[None, :, None]
        elif isinstance(op, Loss) and op.loss == "cross_entropy":
            values[f"{op.name}_target"] = np.array([[[float(op.target)]]])
    return values


def _meta(spec: ExerciseSpec, eid: str, v: Variant, mode: str, self_check: bool, tolerance: float) -> dict[str, object]:
    return {"format": MANIFEST_FORMAT, "exercise_id": eid, "spec": spec.name, "sheet": spec.sheet,
            "variant_seed": v.seed, "variant_id": v.id, "student_id": v.student.id, "name": v.student.name,
            "mode": mode, "self_check": self_check, "tolerance": tolerance, "xlconv": __version__}


def _write(path: Path, v: Variant, eid: str, mode: str, self_check: bool, tolerance: float,
           values: dict[str, np.ndarray] | None = None) -> list[Block]:
    """One workbook of a variant (mode "key" or "student"); values: the spec's computed blocks, if known."""
    spec = v.spec
    who = " ".join(x for x in (v.student.id, v.student.name) if x)
    info = (f"Student: {who}   |   " if who else "") + f"variant {v.id}" + ("   |   ANSWER KEY" if mode == "key" else "")
    title = spec.title + (" (answer key)" if mode == "key" else " (exercise)")
    with Book(path, title, atomic=False) as book:  # in exercise's temporary folder, which appears whole
        book.meta[META_KEY] = json.dumps(_meta(spec, eid, v, mode, self_check, tolerance), sort_keys=True)
        book.meta[INPUTS_KEY] = json.dumps({k: a.tolist() for k, a in root_values(spec).items()}, sort_keys=True)
        if isinstance(spec, SizeSheetSpec):
            from xlconv.sheets import size

            size.build_sheet(book, spec, mode=mode, self_check=self_check, tolerance=tolerance, info=info)
        else:
            # A copy: the backward pass adds its gradients to the sheet's values.
            sheet = ConvSheet(book, spec, dict(values) if values is not None else None, mode=mode,
                              self_check=self_check, tolerance=tolerance, info=info)
            sheet.build(finish=not spec.wrt)
            if spec.wrt:  # the backward pass on the same sheet, its gradient blocks answers like any other
                from xlconv.sheets import backprop

                backprop.append(sheet)
                sheet.finish()
    return list(book.blocks)


def exercise(spec: str | Path | Spec, out_dir: str | Path = "exercise", seed: int | None = None,
             roster: str | Path | Sequence[Student] | None = None, self_check: bool = True,
             tolerance: float = DEFAULT_TOLERANCE, grid_csv: Mapping[str, Sequence[str | Path] | str | Path] | None = None,
             id_column: str | None = None, name_column: str | None = None, jobs: int | None = None) -> ExerciseResult:
    """Write a student workbook and an answer key per variant, an index CSV and the manifest grading reads;
    jobs processes write the variants (default: one per core), with the same files for any number."""
    jobs = default_jobs() if jobs is None else check_jobs(jobs, "jobs", ExerciseError)
    parsed = _exercise_spec(spec if isinstance(spec, (ConvSheetSpec, SizeSheetSpec, AlexNetSpec)) else specs.load(spec))
    if grid_csv and isinstance(parsed, SizeSheetSpec):
        raise ExerciseError(f"{parsed.path}: an output-size sheet has no grids for --grid to replace")
    tolerance = check_tolerance(tolerance, "tolerance", ExerciseError)
    if grid_csv and isinstance(parsed, ConvSheetSpec):  # an output-size sheet was refused above
        parsed = with_csv_grids(parsed, grid_csv)
    if seed is None:
        seed = secrets.randbelow(10**9)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ExerciseError(f"seed must be an integer >= 0, got {seed!r}")
    if roster is None:
        students = [Student("")]
    elif isinstance(roster, (str, Path)):
        students = read_roster(roster, id_column, name_column)
    else:
        students = list(roster)
    out = Path(out_dir)
    eid = exercise_id(parsed)
    earlier = _check_out_dir(out, eid, seed)

    variants = []
    for s in students:
        vseed = variant_seed(seed, s.id)
        stem = f"{parsed.name}-{safe_id(s.id)}" if s.id else parsed.name
        variants.append(Variant(s, vseed, make_variant_spec(parsed, vseed), f"{STUDENTS_DIR}/{stem}.xlsx",
                                f"{KEYS_DIR}/{stem}-key.xlsx"))
    with atomic_folder(out) as tmp:  # interrupted or out of disk: out keeps what it had
        return _write_all(parsed, out, tmp, eid, seed, variants, earlier, self_check, tolerance, jobs)


def _write_all(parsed: ExerciseSpec, out: Path, tmp: Path, eid: str, seed: int, variants: list[Variant],
               earlier: list[dict[str, Any]], self_check: bool, tolerance: float, jobs: int = 1) -> ExerciseResult:
    """Every variant's files, the manifest and the index, written into tmp (moved to out by the caller)."""
    first = variants[0]

    def write_variant(v: Variant) -> tuple[tuple[list[Block], list[str]] | None, str, str]:
        # The key and the student's workbook show the same inputs: their values are computed once.
        values = compute(v.spec) if isinstance(v.spec, ConvSheetSpec) else None
        key_blocks = _write(tmp / v.key_file, v, eid, "key", self_check, tolerance, values)
        student_blocks = _write(tmp / v.student_file, v, eid, "student", self_check, tolerance, values)
        # Only the first variant's blocks travel back (they make the manifest's layout); every variant sends what
        # its two layouts are, so that the caller still checks that all are the same.
        mine = (key_blocks, [b.name for b in student_blocks if b.role == "answer"]) if v is first else None
        return mine, _layout_digest(key_blocks), _layout_digest(student_blocks)

    # The workers are forked here, after the spec was parsed and every variant drawn: each writes whole
    # variants into tmp, and the results come back in roster order, so the manifest is the same for any --jobs.
    with progress.bar(len(variants), "exercise", unit="variant") as bar:
        written = fork_map(write_variant, variants, jobs, bar.update)
    mine, digest, _ = written[0]
    assert mine is not None  # the first variant's blocks came back
    key_blocks, answers = mine
    if any(d != digest for _, *pair in written for d in pair):
        raise AssertionError("exercise layouts differ between key, student or variants")  # a bug, not input
    # A grid's source names one variant's random draw: not part of the exercise's layout.
    layout = [dataclasses.replace(b, info={k: x for k, x in b.info.items() if k != "source"}) for b in key_blocks]

    randomized = {g.name: [int(x) for x in g.exercise]
                  for g in (parsed.grids if isinstance(parsed, ConvSheetSpec) else ()) if g.exercise}
    # The same exercise and seed again with a smaller roster: the earlier students keep their variants
    # (their files stay in the folder, and grading must still know them).
    new_ids = {v.student.id for v in variants}
    kept = [old for old in earlier if old.get("student_id") not in new_ids]
    manifest = {
        "format": MANIFEST_FORMAT, "xlconv": __version__, "exercise_id": eid, "spec": parsed.name,
        "spec_path": str(parsed.path), "spec_hash": spec_fingerprint(parsed), "title": parsed.title,
        "sheet": parsed.sheet, "seed": seed, "self_check": self_check, "tolerance": tolerance,
        "randomized": randomized,
        "blocks": [b.to_json() for b in layout],
        "answers": answers,
        "variants": kept + [{"student_id": v.student.id, "name": v.student.name, "variant_seed": v.seed,
                             "variant_id": v.id, "student_file": v.student_file, "key_file": v.key_file,
                             "inputs": {k: a.tolist() for k, a in root_values(v.spec).items()}} for v in variants],
    }
    write_text(tmp / MANIFEST, json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    rows = [["student_id", "name", "file", "key", "variant_seed"]] + [
        [str(old.get("student_id", "")), str(old.get("name", "")), str(old.get("student_file", "")),
         str(old.get("key_file", "")), str(old.get("variant_seed", ""))] for old in kept] + [
        [v.student.id, v.student.name, v.student_file, v.key_file, str(v.seed)] for v in variants]
    write_text(tmp / INDEX, _csv_text(rows))
    drawn = sorted(randomized)
    ex = parsed.examples if isinstance(parsed, ConvSheetSpec) else None
    if ex is not None and ex.grid not in randomized:
        drawn.append(f"{ex.grid} (a shipped example per variant, and a target class)")
    return ExerciseResult(out, eid, seed, variants, drawn, out / INDEX, out / MANIFEST)


def _layout_digest(blocks: list[Block]) -> str:
    """What a workbook's layout is (each block's name and cells), as a short text to compare."""
    return hashlib.sha256(repr([(b.name, b.grids) for b in blocks]).encode("utf-8")).hexdigest()


def _check_out_dir(out: Path, eid: str, seed: int) -> list[dict[str, Any]]:
    """Refuse to overwrite the keys of a different exercise or seed (students may hold those variants);
    return the variants an earlier run of the same exercise and seed wrote there."""
    if out.exists() and not out.is_dir():
        raise ExerciseError(f"{out}: exists and is not a folder")
    old = out / MANIFEST
    if not old.exists():
        return []
    try:
        doc = parse_json(old.read_text(encoding="utf-8"), str(old), ExerciseError)
        same = isinstance(doc, dict) and doc.get("exercise_id") == eid and doc.get("seed") == seed
    except (OSError, ExerciseError):
        same = False
    if not same:
        raise ExerciseError(f"{out}: already holds another exercise or seed ({MANIFEST}); its keys would be lost: "
                            f"choose another -o folder or delete it")
    earlier = doc.get("variants")
    return [v for v in earlier if isinstance(v, dict)] if isinstance(earlier, list) else []


def _csv_text(rows: list[list[str]]) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


__all__ = ["exercise", "variant_seed", "read_roster", "read_grid_csv", "Student", "Variant", "ExerciseResult",
           "exercise_id", "spec_fingerprint", "root_values", "safe_id", "MANIFEST", "INDEX", "META_KEY", "INPUTS_KEY"]
