"""Verification: recalculate a workbook in a real engine, then recompute every recorded block with NumPy and torch."""

from __future__ import annotations

import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from xlconv import progress, record
from xlconv import reference as ref
from xlconv import torch_reference as tref
from xlconv.engine import recalculate
from xlconv.errors import VerifyError, WorkbookError
from xlconv import safety
from xlconv.guards import check_tolerance, input_file
from xlconv.parallel import default_jobs
from xlconv.record import (EXERCISE_ROLES, ROOT_ROLES, Block, ConvParams, ConvTransposeParams, FlattenParams,
                           GradParams, LinearParams, LossParams, PoolParams, ReluParams, SgdParams, SoftmaxParams)
from xlconv.xlsxread import Sheet, read_values

MAX_REPORTED = 5


@dataclass
class SheetReport:
    """What verify found on one sheet."""

    sheet: str
    cells: int = 0
    max_diff: float = 0.0
    failures: list[str] = field(default_factory=list)
    mismatches: int = 0
    inputs: int = 0  # typed input cells read (a sheet of them only, such as Digits, has nothing to recompute)
    feeds: set[tuple[str, str]] = field(default_factory=set)  # (block, sheet) checked against these inputs

    @property
    def ok(self) -> bool:
        """Whether every cell matched and nothing failed."""
        return self.mismatches == 0 and not self.failures


@dataclass
class Report:
    """What verify found in one workbook."""

    path: Path
    engine: str
    tolerance: float
    sheets: list[SheetReport]

    @property
    def ok(self) -> bool:
        """Whether every sheet is ok."""
        return all(s.ok for s in self.sheets)

    @property
    def cells(self) -> int:
        """How many cells were checked in all."""
        return sum(s.cells for s in self.sheets)

    def lines(self) -> list[str]:
        """The human report, one line per sheet plus one per failure."""
        out = []
        for s in self.sheets:
            status = "ok" if s.ok else "FAIL"
            if s.cells == 0 and s.inputs and not s.failures:
                names = " and ".join(name for name, _ in sorted(s.feeds))
                where = ", ".join(sorted({repr(sheet) for _, sheet in s.feeds}))
                used = f"; the picked example ({names} on {where}) is checked against them" if s.feeds else ""
                out.append(f"{self.path}: {s.sheet}: {s.inputs} typed input cells, no formulas to recompute{used}: "
                           f"{status}")
                continue
            out.append(f"{self.path}: {s.sheet}: {s.cells} cells checked against NumPy and torch after {self.engine}, "
                       f"largest |difference| {s.max_diff:.3g} (tolerance {self.tolerance:g}): {status}")
            out += [f"  {f}" for f in s.failures]
        return out


def read_records(path: str | Path, name: str | Path | None = None) -> tuple[list[Block], float]:
    """The block records (and the tolerance) of an xlconv workbook; errors say name (default: path)."""
    path = Path(path)
    shown = name or path
    input_file(path, "workbook", WorkbookError, max_bytes=safety.WORKBOOK.file_bytes)
    try:
        safety.check_workbook(path)  # a zip bomb, macros or an XML bomb are never parsed
    except safety.Rejected as r:
        raise WorkbookError(f"{shown}: {r.note}") from None
    try:
        values = read_values(path, [], rows=(record.SHEET, record.FIRST_ROW + record.MAX_BLOCKS + 1,
                                             record.META_COLUMN))
    except OSError as e:
        raise WorkbookError(f"{shown}: not a readable .xlsx workbook ({e})") from None
    if record.SHEET not in values.names:
        raise WorkbookError(f"{shown}: not a workbook xlconv made (it has no {record.SHEET} sheet)")
    if record.SHEET in values.problems:  # a damaged member surfaces only while reading
        raise WorkbookError(f"{shown}: the {record.SHEET} sheet cannot be read ({values.problems[record.SHEET]})")
    rows = values.rows[record.SHEET]
    parsed = record.read(rows, str(shown))
    if not parsed.blocks:
        raise WorkbookError(f"{shown}: its {record.SHEET} record lists no blocks: nothing to verify")
    return list(parsed.blocks), parsed.tolerance


class _Cells:
    """Values of one recalculated workbook, every sheet the record names read at once with python-calamine."""

    def __init__(self, path: Path, blocks: Sequence[Block], name: str | Path | None = None, timeout: float = 300,
                 jobs: int | None = None):
        self.name = name or path
        cells: dict[str, int] = {}
        for rec in blocks:
            cells[rec.sheet] = cells.get(rec.sheet, 0) + sum(g.height * g.width for g in rec.grids)
        jobs = min(2, default_jobs()) if jobs is None else jobs
        try:  # two readers at once when there are cores for them: the biggest sheet alone is most of the wait
            values = read_values(path, sorted(cells), timeout=timeout, jobs=jobs, weights=cells)
        except OSError as e:  # read_records parsed it a moment ago; anything now is damage or a hostile file
            raise WorkbookError(f"{self.name}: its values cannot be read ({e})") from None
        self.names, self.sheets, self.problems = set(values.names), values.sheets, values.problems

    def sheet(self, sheet: str) -> Sheet:
        """One sheet's values; WorkbookError naming it when it is missing or could not be read."""
        if sheet not in self.names:
            raise WorkbookError(f"{self.name}: the sheet {sheet!r} that xlconv recorded is missing")
        if sheet in self.problems:
            raise WorkbookError(f"{self.name}: the sheet {sheet!r} cannot be read ({self.problems[sheet]})")
        return self.sheets[sheet]

    def block(self, rec: Block) -> np.ndarray:
        """(C, H, W) floats of a block; text, blanks and errors become NaN."""
        values = self.sheet(rec.sheet)
        return np.stack([values.window(g.top, g.left, g.height, g.width) for g in rec.grids])

    def describe(self, rec: Block, k: int, i: int, j: int) -> str:
        """What a cell of a block holds when it holds no number."""
        g = rec.grids[k]
        return self.sheet(rec.sheet).describe(g.top + i, g.left + j)


def reads_own_cells(rec: Block) -> bool:
    """Whether a block is recomputed from its own cells (size tables, trace panels): nothing about it can be
    worked out before the engine has run."""
    return rec.role in ("size", "trace") or rec.info.get("op") in ("out_size", "lecture_size")


@dataclass
class Ahead:
    """References worked out from an original workbook's inputs while an engine recalculates its copy."""

    roots: dict[str, np.ndarray]  # every input block as the original holds it
    expected: dict[str, list[np.ndarray]]  # block -> what it should hold, by NumPy then torch, from those inputs

    def holds(self, cells: _Cells, checked: Sequence[Block]) -> bool:
        """Whether the engine's copy holds the inputs these references came from.

        LibreOffice saves 15 significant digits, so equal means within 1e-14 relative: the references from the
        original's full-precision inputs are then those the engine itself computed from."""
        for rec in checked:
            if rec.role not in ROOT_ROLES:
                continue
            mine, got = self.roots.get(rec.name), cells.block(rec)
            if mine is None or mine.shape != got.shape or not np.allclose(got, mine, rtol=1e-14, atol=0,
                                                                           equal_nan=True):
                return False
        return True


def work_ahead(original: str | Path, blocks: Sequence[Block], timeout: float = 300) -> Ahead:
    """Every reference that depends on the workbook's inputs alone, from the original's values (as written)."""
    checked = [rec for rec in blocks if rec.role not in EXERCISE_ROLES]
    # One reader: this runs beside the engine, on the core it leaves free.
    cells = _Cells(Path(original), [rec for rec in checked if rec.role in ROOT_ROLES], original, timeout, jobs=1)
    roots = {rec.name: cells.block(rec) for rec in checked if rec.role in ROOT_ROLES}
    current, expected = dict(roots), {}
    for rec in checked:
        if rec.role in ROOT_ROLES or reads_own_cells(rec):
            continue
        try:
            exp = [rec.fit(e) for e in expected_block(rec, current, None, blocks)]
        except Exception:  # noqa: BLE001 - left to the check after the engine, which reports it
            continue
        expected[rec.name] = exp
        if rec.role == "output":
            current[rec.name] = exp[0]
    return Ahead(roots, expected)


def check(recalculated: str | Path, original: str | Path | None = None, engine: str = "libreoffice",
          tolerance: float | None = None, timeout: float = 300,
          records: tuple[list[Block], float] | None = None, ahead: Ahead | None = None) -> Report:
    """Recompute every recorded block of an already recalculated workbook and compare cell by cell.

    ``records`` (blocks and tolerance) are the original's, when verify has read them already: the engine's copy
    is then parsed only by the bounded reader, never by openpyxl. ``ahead`` holds references worked out from the
    original while the engine ran; they are used only if the engine's copy holds the same inputs.
    """
    recalculated = Path(recalculated)
    blocks, recorded_tol = records if records is not None else read_records(recalculated, original)
    tol = recorded_tol if tolerance is None else check_tolerance(tolerance, "--tolerance", VerifyError)
    checked = [rec for rec in blocks if rec.role not in EXERCISE_ROLES]
    with progress.bar(len(checked), "verify: reading values", unit="block") as bar:
        cells = _Cells(recalculated, checked, original, timeout)
        if ahead is not None and not ahead.holds(cells, checked):
            ahead = None
        sheets = {rec.sheet: SheetReport(rec.sheet) for rec in blocks}
        current: dict[str, np.ndarray] = {}
        for rec in checked:
            bar.describe(f"verify: {rec.sheet}!{rec.name}")
            _check_block(rec, cells, current, sheets[rec.sheet], tol, blocks, ahead)
            for source in (rec.info.get("examples"), rec.info.get("pick")) if rec.role in ROOT_ROLES else ():
                src = next((r for r in blocks if r.name == source), None)
                if src is not None and src.sheet != rec.sheet:  # the picked digit: checked against Digits
                    sheets[src.sheet].feeds.add((rec.name, rec.sheet))
            bar.update()
    return Report(Path(original or recalculated), engine, tol, list(sheets.values()))


def _check_block(rec: Block, cells: _Cells, current: dict[str, np.ndarray], report: SheetReport,
                 tol: float, blocks: Sequence[Block], ahead: Ahead | None = None) -> None:
    """Compare one block with NumPy and torch (or, for a root block, check it holds numbers)."""
    got = cells.block(rec)
    if rec.role in ROOT_ROLES:
        bad = np.argwhere(np.isnan(got))
        if len(bad):
            k, i, j = bad[0]
            report.failures.append(f"{rec.sheet}!{rec.grids[k].cell(i, j)} ({rec.name}) is not a number: it is "
                                   f"{cells.describe(rec, k, i, j)}")
        current[rec.name] = got
        report.inputs += got.size
        _check_picked(report, rec, current, got, cells)
        return
    expected = ahead.expected.get(rec.name) if ahead is not None else None
    if expected is None:
        try:
            recomputed = expected_block(rec, current, got, blocks)
        except (WorkbookError, VerifyError) as e:
            report.failures.append(str(e))
            report.mismatches += 1
            return
        except (KeyError, ValueError, TypeError, IndexError, ZeroDivisionError, RuntimeError) as e:
            # A record edited by hand (an input that is not a block, shapes that do not fit): that block fails.
            report.failures.append(f"{rec.name}: cannot be recomputed from its record ({type(e).__name__}: "
                                   f"{str(e)[:120]})")
            report.mismatches += 1
            return
        expected = [rec.fit(e) for e in recomputed]
    if rec.role == "output":
        current[rec.name] = expected[0]
    for exp in expected:
        _compare(report, rec, got, exp, tol, cells)


def _check_picked(report: SheetReport, rec: Block, cur: dict[str, np.ndarray], got: np.ndarray,
                  cells: _Cells) -> None:
    """A root block that INDEXes shipped examples by a pick cell (the picked digit, its label) must hold the
    picked example: info examples names the examples' block, pick the pick cell's block (1-based)."""
    table, pick = rec.info.get("examples"), rec.info.get("pick")
    if not isinstance(table, str) or not isinstance(pick, str):
        return
    if table not in cur or pick not in cur:
        report.failures.append(f"{rec.name}: its examples {table!r} or pick {pick!r} are not recorded before it")
        report.mismatches += 1
        return
    n = cur[pick].ravel()[0]
    rows = cur[table]
    if not np.isfinite(n) or not 1 <= int(n) <= rows.shape[0] or n != int(n):
        report.failures.append(f"{rec.name}: the pick {n!r} is not an example number from 1 to {rows.shape[0]}")
        report.mismatches += 1
        return
    picked = rows[int(n) - 1].reshape(got.shape)
    _compare(report, rec, got, picked, 0.0, cells)


def _nodes(records: Sequence[Block]) -> list[ref.Node]:
    """The recorded forward ops as a graph for the backward pass (biases, targets and weights are blocks)."""
    out: list[ref.Node] = []
    for r in records:
        if r.role != "output" or r.info.get("op") not in ("conv", "max_pool", "avg_pool", "relu", "flatten", "linear",
                                                          "softmax", "cross_entropy", "mse"):
            continue
        p = record.op_params(r)
        if isinstance(p, ConvParams):
            out.append(ref.Node(r.name, "conv", p.input, p.weight, p.bias,
                                args=dict(stride=p.stride, padding=p.padding, dilation=p.dilation)))
        elif isinstance(p, PoolParams):
            out.append(ref.Node(r.name, f"{p.mode}_pool", p.input, args=dict(
                kernel_size=p.kernel_size, stride=p.stride, padding=p.padding, dilation=p.dilation,
                ceil_mode=p.ceil_mode, count_include_pad=p.count_include_pad)))
        elif isinstance(p, LinearParams):
            out.append(ref.Node(r.name, "linear", p.input, (p.weight,), p.bias))
        elif isinstance(p, LossParams):
            out.append(ref.Node(r.name, p.kind, p.input, target=p.target, args=dict(reduction=p.reduction)))
        elif isinstance(p, (ReluParams, FlattenParams, SoftmaxParams)):
            out.append(ref.Node(r.name, str(r.info["op"]), p.input))
    return out


def gradients(loss: str, cur: dict[str, np.ndarray], records: Sequence[Block]) -> tuple[dict[str, np.ndarray],
                                                                                      dict[str, np.ndarray]]:
    """dL/dv of every value the recorded loss depends on, by the NumPy chain rule from the current values and by
    torch.autograd from the current root values (inputs, weights, biases, targets) alone."""
    path = ref.ancestors(_nodes(records), loss)
    if not path or path[-1].name != loss:
        raise VerifyError(f"{loss}: is not a recorded loss, so its gradients cannot be recomputed")
    made = {n.name for n in path}
    roots = {x: cur[x] for n in path for x in n.reads() if x not in made}
    return ref.backward(path, cur, loss), tref.autograd(path, roots, loss)


def expected_block(rec: Block, cur: dict[str, np.ndarray], got: np.ndarray | None,
                   records: Sequence[Block] = ()) -> list[np.ndarray]:
    """What the block should hold, by NumPy then by torch, from the workbook's current inputs (records: every block
    of the workbook, which a gradient needs to retrace the forward pass)."""
    info = rec.info
    if rec.role == "padded":
        return [ref.pad(cur[info["input"]], info["padding"])]
    if rec.role == "dilated":
        return [ref.dilate_kernel(cur[info["input"]], info["dilation"])]
    if rec.role == "spread":  # a transposed conv's input, spread and padded (or cropped) as it is taught
        return [ref.spread(cur[info["input"]], info["kernel_size"], info["stride"], info["padding"],
                           info["output_padding"], info["dilation"])]
    if rec.role == "flipped":  # its kernel rotated 180 degrees (and dilated)
        return [ref.flip_kernel(cur[info["input"]], info["dilation"])]
    if rec.role == "size":
        return _expected_size(rec, _own_cells(rec, got))
    if rec.role == "trace":
        return [_expected_trace(rec, cur, _own_cells(rec, got))]
    if rec.role == "normalize":  # (raw/255 - mean)/std: ToTensor() then Normalize(), from the workbook's cells
        raw, mean, std = cur[info["raw"]], cur[info["mean"]].ravel(), cur[info["std"]].ravel()
        return [ref.normalize(raw, mean, std), tref.normalize(raw, mean, std)]
    if rec.role != "output":
        raise VerifyError(f"{rec.name}: unknown recorded role {rec.role!r}")
    if info.get("op") in ("out_size", "lecture_size"):
        return _expected_size_chain(rec, cur, got)
    p = record.op_params(rec)
    if isinstance(p, GradParams):
        np_grads, torch_grads = gradients(p.loss, cur, records)
        if p.of not in np_grads:
            raise VerifyError(f"{rec.name}: {p.of!r} does not reach the loss {p.loss!r}")
        return [np_grads[p.of].reshape(cur[p.of].shape), torch_grads[p.of].reshape(cur[p.of].shape)]
    if isinstance(p, SgdParams):  # the step from the recomputed gradient, never from the sheet's gradient cells
        lr = float(cur[p.lr].ravel()[0])
        return [cur[p.input] - lr * cur[p.grad].reshape(cur[p.input].shape)]
    x = cur[p.input]
    if isinstance(p, FlattenParams):
        return [ref.flatten(x), tref.torch_flatten(x)]
    if isinstance(p, LinearParams):
        b = cur[p.bias].ravel() if p.bias else None
        return [f(x, cur[p.weight], b) for f in (ref.linear, tref.linear)]
    if isinstance(p, SoftmaxParams):
        return [ref.softmax(x), tref.softmax(x)]
    if isinstance(p, LossParams) and p.kind == "cross_entropy":
        t = cur[p.target].ravel()[0]
        if not np.isfinite(t) or t != int(t) or not 0 <= t < x.size:
            raise VerifyError(f"{rec.name}: the target {t!r} is not a class index from 0 to {x.size - 1}")
        return [ref.cross_entropy(x, int(t)), tref.cross_entropy(x, int(t))]
    if isinstance(p, LossParams):
        return [f(x, cur[p.target], p.reduction) for f in (ref.mse_loss, tref.mse_loss)]
    if isinstance(p, ConvParams):
        w = np.stack([cur[n] for n in p.weight])
        b = cur[p.bias].ravel() if p.bias else None
        return [f(x, w, b, stride=p.stride, padding=p.padding, dilation=p.dilation)
                for f in (ref.conv2d, tref.conv2d)]
    if isinstance(p, ConvTransposeParams):  # torch's weight is (C_in, C_out, kh, kw): each block is weight[:, o]
        w = np.stack([cur[n] for n in p.weight], axis=1)
        b = cur[p.bias].ravel() if p.bias else None
        return [f(x, w, b, stride=p.stride, padding=p.padding, output_padding=p.output_padding, dilation=p.dilation)
                for f in (ref.conv_transpose2d, tref.conv_transpose2d)]
    if isinstance(p, PoolParams) and p.mode == "max":
        return [f(x, kernel_size=p.kernel_size, stride=p.stride, padding=p.padding, dilation=p.dilation,
                  ceil_mode=p.ceil_mode) for f in (ref.max_pool2d, tref.max_pool2d)]
    if isinstance(p, PoolParams):
        return [f(x, kernel_size=p.kernel_size, stride=p.stride, padding=p.padding, ceil_mode=p.ceil_mode,
                  count_include_pad=p.count_include_pad) for f in (ref.avg_pool2d, tref.avg_pool2d)]
    assert isinstance(p, ReluParams), f"op_params gave {type(p).__name__}"
    return [ref.relu(x), tref.relu(x)]


def _own_cells(rec: Block, got: np.ndarray | None) -> np.ndarray:
    """The workbook's values of a block that is recomputed from its own cells (size tables, trace panels)."""
    if got is None:
        raise VerifyError(f"{rec.name}: a {rec.role} block is recomputed from its own cells, but none were given")
    return got


def _expected_size(rec: Block, got: np.ndarray) -> list[np.ndarray]:
    """The size table's output cell recomputed from its own (possibly edited) parameter cells."""
    v = dict(zip(rec.info["rows"], got.ravel()))
    if "outpad" in v:
        return _expected_transpose_size(rec, v, got)
    expected = got.copy()
    params = [v["in"], v["k"], v["s"], v["p"], v["d"]]
    if any(np.isnan(params)) or min(params[1:3] + params[4:]) < 1:
        return [expected]  # parameters a student blanked or zeroed: nothing meaningful to recompute
    h, k, s, p, d = (int(x) for x in params)
    ceil = bool(np.nan_to_num(v.get("ceil", 0.0)))  # a blank ceil_mode cell is FALSE to the engines too
    out_index = rec.info["rows"].index("out")
    np_out, torch_out = expected.copy(), expected.copy()
    out = ref.out_size(h, k, s, p, d, ceil)
    np_out.reshape(-1)[out_index] = out
    if out >= 1:
        torch_out.reshape(-1)[out_index] = tref.out_size(h, k, s, p, d, ceil)
    if "lecture" in rec.info["rows"]:  # the unrounded value: plain arithmetic, no torch counterpart
        at = rec.info["rows"].index("lecture")
        np_out.reshape(-1)[at] = torch_out.reshape(-1)[at] = ref.lecture_out_size(h, k, s, p, d)
    return [np_out, torch_out]


def _expected_transpose_size(rec: Block, v: dict[str, float], got: np.ndarray) -> list[np.ndarray]:
    """A transposed conv's size line recomputed from its own (possibly edited) cells:
    (H_in - 1)s - 2p + d(k - 1) + output_padding + 1, by NumPy and by what torch's conv_transpose2d gives."""
    params = [v["in"], v["k"], v["s"], v["p"], v["outpad"], v["d"]]
    out_index = rec.info["rows"].index("out")
    np_out, torch_out = got.copy(), got.copy()
    if any(np.isnan(params)) or min(params[0:3] + params[5:]) < 1 or min(params[3:5]) < 0:
        return [np_out]  # parameters a student blanked or zeroed: nothing meaningful to recompute
    h, k, s, p, op, d = (int(x) for x in params)
    out = ref.conv_transpose_out_size(h, k, s, p, op, d)
    np_out.reshape(-1)[out_index] = out
    if out >= 1 and (op < s or op < d):  # torch refuses the rest
        torch_out.reshape(-1)[out_index] = tref.conv_transpose_out_size(h, k, s, p, op, d)
    return [np_out, torch_out]


def _expected_size_chain(rec: Block, cur: dict[str, np.ndarray], got: np.ndarray | None) -> list[np.ndarray]:
    """An exercise's size-table answers (H_out, or the lecture's unrounded value) down the chain of layers."""
    np_vals: list[float] = []
    torch_vals: list[float] = []
    h: float | None = None
    for layer, h_in in zip(rec.info["layers"], rec.info["h_in"]):
        # padding, kernel_size, stride, dilation, and ceil_mode on a pooling row only (a convolution has none)
        typed = [float(x) for x in cur[layer].ravel()]
        p, k, s, d = typed[:4]
        ceil = typed[4] if len(typed) > 4 else 0.0
        if h_in:
            h = float(cur[h_in].ravel()[0])
        if h is None or any(np.isnan([h, p, k, s, d, ceil])) or min(k, s, d) < 1:
            np_vals.append(np.nan)  # a parameter someone blanked or zeroed
            torch_vals.append(np.nan)
            h = np.nan
            continue
        out = ref.out_size(int(h), int(k), int(s), int(p), int(d), bool(ceil))
        if rec.info["op"] == "lecture_size":
            np_vals.append(ref.lecture_out_size(h, k, s, p, d))
            torch_vals.append(np_vals[-1])  # plain arithmetic: no torch counterpart
        else:
            np_vals.append(out)
            torch_vals.append(tref.out_size(int(h), int(k), int(s), int(p), int(d), bool(ceil)) if out >= 1 else out)
        h = out
    shape = (1, len(np_vals), 1)
    return [np.array(np_vals, dtype=np.float64).reshape(shape), np.array(torch_vals, dtype=np.float64).reshape(shape)]


def _expected_trace(rec: Block, cur: dict[str, np.ndarray], got: np.ndarray) -> np.ndarray:
    """The trace panel's total and chosen cell must both equal the output the student picked."""
    v = dict(zip(rec.info["cells"], got.ravel()))
    out = cur[rec.info["output"]]
    o, r, c = (int(v[k]) - 1 if np.isfinite(v[k]) else -1 for k in ("filter", "row", "column"))
    expected = got.copy()
    if 0 <= o < out.shape[0] and 0 <= r < out.shape[1] and 0 <= c < out.shape[2]:
        flat = expected.reshape(-1)
        flat[rec.info["cells"].index("total")] = out[o, r, c]
        flat[rec.info["cells"].index("output")] = out[o, r, c]
    return expected


def _compare(report: SheetReport, rec: Block, got: np.ndarray, exp: np.ndarray, tol: float, cells: _Cells) -> None:
    if got.shape != exp.shape:
        report.failures.append(f"{rec.name}: block is {got.shape} in the workbook but {exp.shape} by the reference")
        report.mismatches += 1
        return
    diff = np.abs(got - exp)
    diff[np.isnan(got) & np.isnan(exp)] = 0.0
    diff[np.isnan(diff)] = np.inf
    report.cells += got.size
    report.max_diff = max(report.max_diff, float(diff.max(initial=0.0)))
    # LibreOffice stores results to 15 significant digits, hence the relative term.
    bad = np.argwhere(diff > tol + 1e-12 * np.abs(np.nan_to_num(exp)))
    report.mismatches += len(bad)
    for k, i, j in bad[:MAX_REPORTED - min(len(report.failures), MAX_REPORTED)]:
        value = cells.describe(rec, k, i, j) if np.isnan(got[k, i, j]) else repr(float(got[k, i, j]))
        report.failures.append(f"{rec.sheet}!{rec.grids[k].cell(i, j)} ({rec.name}[{k}, {i}, {j}]) is "
                               f"{value}, expected {float(exp[k, i, j])!r}")


def verify(paths: Sequence[str | Path], engine: str = "libreoffice", tolerance: float | None = None,
           timeout: float = 600) -> list[Report]:
    """Recalculate workbooks in a real spreadsheet engine and check every recorded block with NumPy and torch."""
    paths = [Path(p) for p in paths]
    if tolerance is not None:
        check_tolerance(tolerance, "--tolerance", VerifyError)
    records = [read_records(p) for p in paths]  # fail fast, with a clear message, on files xlconv did not make
    normalize = any(rec.role == "normalize" for blocks, _ in records for rec in blocks)
    with tempfile.TemporaryDirectory(prefix="xlconv-verify-") as tmp:
        with _engine_phase(paths, records, engine, normalize, timeout) as ahead:
            outs = recalculate(paths, tmp, engine=engine, timeout=timeout)
        return [check(out, p, engine, tolerance, timeout, rec, a) for out, p, rec, a in zip(outs, paths, records,
                                                                                            ahead)]


@contextmanager
def _engine_phase(paths: Sequence[str | Path], records: Sequence[tuple[list[Block], float]], engine: str,
                  normalize: bool, timeout: float) -> Iterator[list[Ahead | None]]:
    """While the engine recalculates (on one core): import torch (and torchvision, for a workbook that normalizes
    a photo) and work out every reference the original's inputs decide, seconds verify would otherwise add after
    the engine; and keep the bar's clock ticking. Yields one Ahead (or None) per file, filled in meanwhile."""
    files = len(paths)
    ahead: list[Ahead | None] = [None] * files
    with progress.bar(files, f"verify: {engine} recalculating", unit="workbook") as bar:
        stop = threading.Event()

        def meanwhile() -> None:
            try:
                import torch.nn.functional  # noqa: F401
                if normalize:
                    import torchvision.transforms.functional  # noqa: F401
                for i, (path, (blocks, _)) in enumerate(zip(paths, records)):
                    if stop.is_set():
                        break
                    ahead[i] = work_ahead(path, blocks, timeout)
            except Exception:  # noqa: BLE001 - the check after the engine recomputes, and reports, all of it
                pass
            while not stop.wait(0.5):
                bar.update(0)

        worker = threading.Thread(target=meanwhile, name="xlconv-verify-warm", daemon=True)
        worker.start()
        try:
            yield ahead
        finally:
            stop.set()
        worker.join()  # the imports are needed next anyway; an engine error skips this and is raised at once
        bar.update(files)
