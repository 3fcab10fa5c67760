"""The workbook record: the contract between the writer and everything that reads a workbook later.

Every xlconv workbook has a hidden sheet ``_xlconv`` that says what each block of cells is (an input, a
kernel, an op's output, a size table, ...), where it is, and how it was computed, plus a canary cell that
proves an engine recalculated the file. This module alone knows that sheet's layout; the writer
(:mod:`xlconv.book`), :mod:`xlconv.verify`, :mod:`xlconv.exercise`, :mod:`xlconv.grade` and
:mod:`xlconv.safety` all go through its :class:`Block` and the typed op parameters below.

It imports nothing heavy (no XlsxWriter, openpyxl or NumPy): the sandboxed readers of untrusted files import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, Union

from xlconv.cells import Grid, parse_range
from xlconv.errors import WorkbookError
from xlconv.guards import check_tolerance

SHEET = "_xlconv"
# The canary: a formula whose cached value verify poisons; an engine that really recalculated gives 42 back.
CANARY_SHEET = SHEET
CANARY_CELL = "B1"
CANARY_FORMULA = "=21*2"
CANARY_VALUE = 42
FORMAT = 1
HEADER = ("name", "role", "sheet", "ranges", "info")
FORMAT_ROW, VERSION_ROW, TOLERANCE_ROW, HEADER_ROW = 1, 2, 3, 4  # zero-based rows of the fixed lines
FIRST_ROW = 5  # zero-based row of the first block
META_COLUMN = 6  # zero-based column (G) of the extra key/text rows (exercise data)
META_CHUNK = 32_000  # Excel caps a cell at 32,767 characters: long texts continue to the right

# Bounds on what a record may describe (the 64-channel AlexNet workbook records about 700,000 cells in 80
# blocks): a tampered range such as $A$1:$XFD$1048576 must not make a reader allocate gigabytes.
MAX_BLOCKS = 10_000
MAX_CHANNELS = 4_096
MAX_CELLS = 8_000_000
_SORTED_JSON = json.JSONEncoder(sort_keys=True)  # json.dumps(x, sort_keys=True) without a new encoder per call

# Roles. Typed by hand (verify reads them as the inputs of the recomputation):
ROOT_ROLES = ("input", "kernel", "bias")
# Exercise blocks: a student's typed answers, and the live self-checks and score (grade reads those).
EXERCISE_ROLES = ("answer", "check", "score")
# Recomputed by verify from the roots:
# spread and flipped: a transposed convolution's spread input and rotated kernels, as it is taught.
DERIVED_ROLES = ("padded", "dilated", "spread", "flipped", "size", "trace", "normalize", "output")
ROLES = ROOT_ROLES + EXERCISE_ROLES + DERIVED_ROLES


@dataclass(frozen=True)
class Block:
    """A recorded block: what it is, on which sheet, its grids (one per channel), and how it was computed."""

    name: str
    role: str
    sheet: str
    grids: tuple[Grid, ...]
    info: Mapping[str, Any] = field(default_factory=dict)

    def ranges(self) -> list[str]:
        """The absolute A1 range of each grid."""
        return [g.ref(absolute=True) for g in self.grids]

    def fit(self, values: Any) -> Any:
        """values (C, H, W) in the block's own layout: a vector (a flatten row, a logits column) may be laid out as a
        row or a column on the sheet, whichever reads best, so a vector of the same length takes the grids' shape;
        anything else is returned as it is (a real mismatch stays visible)."""
        import numpy as np

        a = np.asarray(values)
        shape = (len(self.grids), self.grids[0].height, self.grids[0].width) if self.grids else a.shape
        if a.shape != shape and a.size == int(np.prod(shape)) and sum(d > 1 for d in a.shape) <= 1 \
                and sum(d > 1 for d in shape) <= 1:
            return a.reshape(shape)
        return a

    def defined_names(self) -> list[tuple[str, Grid]]:
        """The workbook names of the grids: the block's name, or name_c0, name_c1, ... for several channels."""
        if len(self.grids) == 1:
            return [(self.name, self.grids[0])]
        return [(f"{self.name}_c{k}", g) for k, g in enumerate(self.grids)]

    def row(self) -> list[str]:
        """The block as one row of the record sheet."""
        return [self.name, self.role, self.sheet, json.dumps(self.ranges()), _SORTED_JSON.encode(dict(self.info))]

    def to_json(self) -> dict[str, Any]:
        """The block as an exercise manifest stores it."""
        return {"name": self.name, "role": self.role, "sheet": self.sheet, "ranges": self.ranges(),
                "info": dict(self.info)}

    @classmethod
    def from_json(cls, doc: Any, where: str) -> "Block":
        """A block from its manifest form; WorkbookError naming where when it is malformed."""
        if not isinstance(doc, dict):
            raise WorkbookError(f"{where}: a block must be an object, got {type(doc).__name__}")
        return _block(doc.get("name"), doc.get("role"), doc.get("sheet"), doc.get("ranges"), doc.get("info"), where)

    @classmethod
    def from_row(cls, row: Sequence[Any], where: str) -> "Block":
        """A block from a record-sheet row (ranges and info as JSON text)."""
        name, role, sheet, ranges, info = (list(row) + [None] * 5)[:5]
        try:
            ranges_doc = json.loads(ranges) if isinstance(ranges, str) else None
            info_doc = json.loads(info) if isinstance(info, str) else None
        except (ValueError, RecursionError) as e:
            raise WorkbookError(f"{where} is not a valid block record ({type(e).__name__})") from None
        return _block(name, role, sheet, ranges_doc, info_doc, where)


def _block(name: Any, role: Any, sheet: Any, ranges: Any, info: Any, where: str) -> Block:
    for key, v in (("name", name), ("role", role), ("sheet", sheet)):
        if not isinstance(v, str) or not v:
            raise WorkbookError(f"{where} is not a valid block record ({key} must be text)")
    if role not in ROLES:
        raise WorkbookError(f"{where} is not a valid block record (unknown role {role!r})")
    if not isinstance(ranges, list) or not ranges or not all(isinstance(r, str) for r in ranges):
        raise WorkbookError(f"{where} is not a valid block record (ranges must be a list of cell ranges)")
    if not isinstance(info, dict):
        raise WorkbookError(f"{where} is not a valid block record (info must be an object)")
    try:
        grids = tuple(parse_range(r) for r in ranges)
    except ValueError as e:
        raise WorkbookError(f"{where} is not a valid block record ({e})") from None
    return Block(name, role, sheet, grids, info)


@dataclass(frozen=True)
class Record:
    """What the record sheet holds: the blocks in writing order, the tolerance, and the extra key/text rows."""

    blocks: tuple[Block, ...]
    tolerance: float
    version: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)


def write(wb: Any, record: Record) -> None:
    """Add the hidden record sheet and one defined name per grid to an XlsxWriter workbook."""
    ws = wb.add_worksheet(SHEET)
    ws.write_string(0, 0, "canary (verify checks that an engine recomputed this)")
    ws.write_formula(CANARY_CELL, CANARY_FORMULA, None, CANARY_VALUE)
    ws.write_row(FORMAT_ROW, 0, ["format", FORMAT])
    ws.write_row(VERSION_ROW, 0, ["xlconv", record.version])
    ws.write_row(TOLERANCE_ROW, 0, ["tolerance", record.tolerance])
    ws.write_row(HEADER_ROW, 0, list(HEADER))
    for i, b in enumerate(record.blocks):
        ws.write_row(FIRST_ROW + i, 0, b.row())
        for name, g in b.defined_names():
            wb.define_name(name, "=" + g.sheet_ref(b.sheet))
    for i, (key, text) in enumerate(record.meta.items()):
        chunks = [text[k:k + META_CHUNK] for k in range(0, len(text), META_CHUNK)] or [""]
        ws.write_row(i, META_COLUMN, [key, *chunks])
    ws.hide()


def read(rows: Sequence[Sequence[Any]], path: str) -> Record:
    """Parse the record sheet's rows (values as a reader returns them); WorkbookError naming the cell."""
    def cell(r: int, c: int) -> Any:
        return rows[r][c] if r < len(rows) and c < len(rows[r]) else None

    header = tuple(cell(HEADER_ROW, c) for c in range(len(HEADER)))
    if (cell(FORMAT_ROW, 0), cell(FORMAT_ROW, 1)) != ("format", FORMAT) or header != HEADER:
        raise WorkbookError(f"{path}: the {SHEET} sheet is not an xlconv record of format {FORMAT}")
    tolerance = cell(TOLERANCE_ROW, 1)
    tolerance = check_tolerance(tolerance, f"{path}: {SHEET}!B{TOLERANCE_ROW + 1} (the tolerance)", WorkbookError)
    blocks: list[Block] = []
    cells = 0
    for n in range(FIRST_ROW, len(rows)):
        row = rows[n]
        if not row or row[0] is None:
            continue
        where = f"{path}: {SHEET}!A{n + 1}"
        if len(blocks) >= MAX_BLOCKS:
            raise WorkbookError(f"{where}: more than {MAX_BLOCKS:,} blocks; not a record xlconv wrote")
        block = Block.from_row(row[:len(HEADER)], where)
        if len(block.grids) > MAX_CHANNELS or not all(g.fits() for g in block.grids):
            raise WorkbookError(f"{where} is not a valid block record (its ranges leave the sheet or are too many)")
        cells += sum(g.height * g.width for g in block.grids)
        if cells > MAX_CELLS:
            raise WorkbookError(f"{where}: the blocks cover more than {MAX_CELLS:,} cells; not a record xlconv wrote")
        blocks.append(block)
    version = cell(VERSION_ROW, 1)
    return Record(tuple(blocks), float(tolerance), str(version) if version is not None else "")


# -- typed op parameters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvParams:
    """An output block computed by F.conv2d."""

    input: str
    weight: tuple[str, ...]
    bias: str | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]


@dataclass(frozen=True)
class ConvTransposeParams:
    """An output block computed by F.conv_transpose2d (each weight block is torch's weight[:, o])."""

    input: str
    weight: tuple[str, ...]
    bias: str | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]


@dataclass(frozen=True)
class PoolParams:
    """An output block computed by F.max_pool2d or F.avg_pool2d."""

    mode: str  # "max" | "avg"
    input: str
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool
    count_include_pad: bool


@dataclass(frozen=True)
class ReluParams:
    """An output block computed by F.relu."""

    input: str


@dataclass(frozen=True)
class FlattenParams:
    """An output block computed by torch.flatten (a row, channel by row by column)."""

    input: str


@dataclass(frozen=True)
class LinearParams:
    """An output block computed by F.linear (weight: out x in; the output a column)."""

    input: str
    weight: str
    bias: str | None


@dataclass(frozen=True)
class SoftmaxParams:
    """An output block computed by F.softmax over every cell."""

    input: str


@dataclass(frozen=True)
class LossParams:
    """A loss cell: F.cross_entropy (target: a one-cell block holding the class index) or F.mse_loss."""

    kind: str  # "cross_entropy" | "mse"
    input: str
    target: str
    reduction: str


@dataclass(frozen=True)
class GradParams:
    """A gradient block: dL/d(of), L the loss block, by torch.autograd."""

    of: str
    loss: str


@dataclass(frozen=True)
class SgdParams:
    """One SGD step: input - lr x grad (lr a one-cell block, grad the gradient block)."""

    input: str
    grad: str
    lr: str


OpParams = Union[ConvParams, ConvTransposeParams, PoolParams, ReluParams, FlattenParams, LinearParams, SoftmaxParams,
                 LossParams, GradParams, SgdParams]


def conv_info(p: ConvParams, **extra: Any) -> dict[str, Any]:
    """The info of a conv output block, as the writer records it."""
    return dict(op="conv", input=p.input, weight=list(p.weight), bias=p.bias, stride=list(p.stride),
                padding=list(p.padding), dilation=list(p.dilation), **extra)


def conv_transpose_info(p: ConvTransposeParams, **extra: Any) -> dict[str, Any]:
    """The info of a transposed conv's output block, as the writer records it."""
    return dict(op="conv_transpose", input=p.input, weight=list(p.weight), bias=p.bias, stride=list(p.stride),
                padding=list(p.padding), output_padding=list(p.output_padding), dilation=list(p.dilation), **extra)


def pool_info(p: PoolParams, **extra: Any) -> dict[str, Any]:
    """The info of a pooling output block, as the writer records it."""
    return dict(op=f"{p.mode}_pool", input=p.input, kernel_size=list(p.kernel_size), stride=list(p.stride),
                padding=list(p.padding), dilation=list(p.dilation), ceil_mode=p.ceil_mode,
                count_include_pad=p.count_include_pad, **extra)


def relu_info(p: ReluParams, **extra: Any) -> dict[str, Any]:
    """The info of a ReLU output block, as the writer records it."""
    return dict(op="relu", input=p.input, **extra)


class _Info:
    """Reads one block's info, naming the block in every error (the record may have been tampered with)."""

    def __init__(self, block: Block, where: str):
        self.info, self.where = block.info, f"{where}: {block.name}"

    def fail(self, key: str, msg: str) -> WorkbookError:
        return WorkbookError(f"{self.where}: info.{key} {msg}")

    def text(self, key: str, optional: bool = False) -> Any:
        v = self.info.get(key)
        if v is None and optional:
            return None
        if not isinstance(v, str):
            raise self.fail(key, f"must be a block name, got {_show(v)}")
        return v

    def names(self, key: str) -> tuple[str, ...]:
        v = self.info.get(key)
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise self.fail(key, f"must be a list of block names, got {_show(v)}")
        return tuple(v)

    def pair(self, key: str, minimum: int, maximum: int = 1024) -> tuple[int, int]:
        v = self.info.get(key)
        if (not isinstance(v, list) or len(v) != 2
                or any(isinstance(x, bool) or not isinstance(x, int) or not minimum <= x <= maximum for x in v)):
            raise self.fail(key, f"must be two integers from {minimum} to {maximum}, got {_show(v)}")
        return (v[0], v[1])

    def flag(self, key: str) -> bool:
        v = self.info.get(key)
        if not isinstance(v, bool):
            raise self.fail(key, f"must be true or false, got {_show(v)}")
        return v


def op_params(block: Block, where: str = "") -> OpParams:
    """The typed parameters of an output block; WorkbookError naming the block when they are malformed."""
    f = _Info(block, where or block.sheet)
    op = block.info.get("op")
    if op == "conv":
        return ConvParams(f.text("input"), f.names("weight"), f.text("bias", optional=True), f.pair("stride", 1),
                          f.pair("padding", 0), f.pair("dilation", 1))
    if op == "conv_transpose":
        return ConvTransposeParams(f.text("input"), f.names("weight"), f.text("bias", optional=True),
                                   f.pair("stride", 1), f.pair("padding", 0), f.pair("output_padding", 0),
                                   f.pair("dilation", 1))
    if op in ("max_pool", "avg_pool"):
        return PoolParams(op.split("_")[0], f.text("input"), f.pair("kernel_size", 1), f.pair("stride", 1),
                          f.pair("padding", 0), f.pair("dilation", 1), f.flag("ceil_mode"), f.flag("count_include_pad"))
    if op == "relu":
        return ReluParams(f.text("input"))
    if op == "flatten":
        return FlattenParams(f.text("input"))
    if op == "linear":
        return LinearParams(f.text("input"), f.text("weight"), f.text("bias", optional=True))
    if op == "softmax":
        return SoftmaxParams(f.text("input"))
    if op in ("cross_entropy", "mse"):
        reduction = f.text("reduction")
        if reduction not in ("mean", "sum"):
            raise f.fail("reduction", f'must be "mean" or "sum", got {_show(reduction)}')
        return LossParams(op, f.text("input"), f.text("target"), reduction)
    if op == "grad":
        return GradParams(f.text("of"), f.text("loss"))
    if op == "sgd":
        return SgdParams(f.text("input"), f.text("grad"), f.text("lr"))
    raise f.fail("op", f"is not an op xlconv records, got {_show(op)}")


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def blocks_json(blocks: Iterable[Block]) -> list[dict[str, Any]]:
    """Blocks in their manifest form."""
    return [b.to_json() for b in blocks]
