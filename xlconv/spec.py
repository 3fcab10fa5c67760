"""Worksheet specs: TOML files (and the CSV files and photos they name) parsed into the model's dataclasses.

Builders never see dicts: every field is checked here, and every error names the file and
the field (``worksheets/x.toml: conv[0].stride must be >= 1, got 0``).
"""

from __future__ import annotations

import csv
import math
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, Sequence

import numpy as np

from xlconv import reference as ref
from xlconv.builtins import builtin_dir, builtin_names, resolve
from xlconv.errors import SpecError, XlconvError
from xlconv.guards import MAX_VALUE, image_size, input_file, xml_text
from xlconv.model import (
    NORMALIZE,
    AlexNetSpec,
    Conv,
    ConvSheetSpec,
    ConvTranspose,
    Examples,
    Flatten,
    GridSpec,
    Linear,
    Loss,
    Op,
    Pair,
    Pool,
    Relu,
    SizeRow,
    Softmax,
    SizeSheetSpec,
    Spec,
    check_name,
    check_shapes,
    dependency_order,
)
from xlconv.record import SHEET as RECORD_SHEET

# Excel forbids these in sheet names; LibreOffice and Google Sheets follow it on export.
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
RESERVED_SHEETS = {"history", RECORD_SHEET}


class _Fields:
    """Reads one TOML table, naming the file and field in every error, and rejecting unknown keys."""

    def __init__(self, path: str, prefix: str, table: Any):
        self.path, self.prefix = path, prefix
        if not isinstance(table, dict):
            self.fail("", f"must be a table, got {_show(table)}")
        self.table = table
        self.seen: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix and key else (self.prefix or key)

    def fail(self, key: str, msg: str) -> NoReturn:
        raise SpecError(f"{self.path}: {self.where(key)} {msg}")

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str, default: Any = ...) -> Any:
        self.seen.add(key)
        if key not in self.table:
            if default is ...:
                self.fail(key, "is required")
            return default
        return self.table[key]

    def text(self, key: str, default: Any = ...) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str):
            self.fail(key, f"must be a string, got {_show(v)}")
        return xml_text(v, f"{self.path}: {self.where(key)}", SpecError)

    def boolean(self, key: str, default: bool) -> bool:
        v = self.raw(key, default)
        if not isinstance(v, bool):
            self.fail(key, f"must be true or false, got {_show(v)}")
        return v

    def integer(self, key: str, default: Any = ..., minimum: int = 0) -> int:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(key, f"must be an integer, got {_show(v)}")
        if v < minimum:
            self.fail(key, f"must be >= {minimum}, got {v}")
        return v

    def pair(self, key: str, default: Any = ..., minimum: int = 0) -> Pair:
        v = self.raw(key, default)
        items = list(v) if isinstance(v, (list, tuple)) else [v, v]
        if len(items) != 2 or any(isinstance(x, bool) or not isinstance(x, int) for x in items):
            self.fail(key, f"must be an integer or a pair [h, w] of integers, got {_show(v)}")
        for x in items:
            if x < minimum:
                self.fail(key, f"must be >= {minimum}, got {x}")
        return (items[0], items[1])

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            self.fail(unknown[0], "is not a known key")


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def load(spec: str | Path) -> Spec:
    """Parse and validate a spec file (or built-in name) into a frozen dataclass."""
    path = resolve(spec)
    if path.exists():
        input_file(path, "spec file", SpecError, max_bytes=MAX_SPEC_BYTES)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark, as Windows editors write, is fine
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read: {e}") from None
    return loads(text, str(path), base=path.parent)


def loads(text: str, path: str = "<spec>", base: Path | None = None) -> Spec:
    """Parse and validate spec text; path names it in errors, base resolves CSV and photo files."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: TOML syntax error: {e}") from None
    top = _Fields(path, "", doc)
    kind = top.text("kind", "conv")
    name = Path(path).stem
    title = top.text("title", name)
    if kind == "alexnet":
        return _alexnet(top, path, name, title, base or Path("."))
    sheet = _sheet_name(top, top.text("sheet", title[:31]))
    note = top.text("note", "")
    if kind == "output-size":
        rows = _size_rows(path, top.raw("layer"))
        exercise_note = _exercise_note(path, top)
        top.done()
        return SizeSheetSpec(path, name, title, sheet, note, rows, exercise_note)
    if kind != "conv":
        top.fail("kind", f'must be "conv", "output-size" or "alexnet", got {_show(kind)}')
    grids_doc = top.raw("grids")
    if not isinstance(grids_doc, dict) or not grids_doc:
        top.fail("grids", "must be a table of named grids")
    grids = tuple(_grid(path, gname, g, base or Path(".")) for gname, g in grids_doc.items())
    ops = dependency_order(_ops(top, path), [g.name for g in grids])
    exercise_note, answers = _exercise(path, top)
    wrt, lr, examples = _training(path, top)
    top.done()
    spec = ConvSheetSpec(path, name, title, sheet, note, grids, ops, exercise_note, wrt, lr, examples, answers)
    check_shapes(spec)
    _check_answers(spec)
    return spec


def _exercise_note(path: str, top: _Fields) -> str:
    """The optional [exercise] table's note (an output-size sheet's [exercise] has nothing else)."""
    if not top.has("exercise"):
        return ""
    ex = _Fields(path, "exercise", top.raw("exercise"))
    note = ex.text("note", "")
    ex.done()
    return note


def _exercise(path: str, top: _Fields) -> tuple[str, tuple[str, ...]]:
    """The optional [exercise] table of a conv sheet: its note, and answers (the blocks an exercise asks for)."""
    if not top.has("exercise"):
        return "", ()
    ex = _Fields(path, "exercise", top.raw("exercise"))
    note = ex.text("note", "")
    answers: tuple[str, ...] = ()
    if ex.has("answers"):
        names = ex.raw("answers")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            ex.fail("answers", f"must be a non-empty list of op or gradient block names, got {_show(names)}")
        answers = tuple(names)
    ex.done()
    return note, answers


def _check_answers(spec: ConvSheetSpec) -> None:
    """[exercise] answers names ops, or gradient blocks "<value>_grad" of a spec with [gradients]."""
    ops = [op.name for op in spec.ops]
    grads = [f"{v}_grad" for v in list(spec.wrt) + ops] if spec.wrt else []
    for n in spec.exercise_answers:
        if n not in ops and n not in grads:
            raise SpecError(f"{spec.path}: exercise.answers: {n!r} is not an op" + (" or a gradient block" if grads
                            else "") + f" (choose from {', '.join(ops + grads)})")


MAX_EXAMPLES = 200  # shipped digits a student picks from: a list, not a data set


def _training(path: str, top: _Fields) -> tuple[tuple[str, ...], float | None, Examples | None]:
    """The optional [gradients] wrt, [sgd] lr and [examples] tables."""
    wrt: tuple[str, ...] = ()
    if top.has("gradients"):
        g = _Fields(path, "gradients", top.raw("gradients"))
        names = g.raw("wrt")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            g.fail("wrt", f"must be a non-empty list of grid names, got {_show(names)}")
        wrt = tuple(names)
        g.done()
    lr = None
    if top.has("sgd"):
        f = _Fields(path, "sgd", top.raw("sgd"))
        v = f.raw("lr")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= 1e6:
            f.fail("lr", f"must be a positive number, got {_show(v)}")
        lr = float(v)
        f.done()
    examples = None
    if top.has("examples"):
        f = _Fields(path, "examples", top.raw("examples"))
        grid = f.text("grid")
        labels = f.raw("labels")
        if (not isinstance(labels, list) or not labels or len(labels) > MAX_EXAMPLES
                or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in labels)):
            f.fail("labels", f"must be a list of 1 to {MAX_EXAMPLES} class indices (integers >= 0), got "
                             f"{_show(labels)}")
        raw = f.raw("values")
        if not isinstance(raw, list) or len(raw) != len(labels):
            f.fail("values", f"must be a list of one grid per label ({len(labels)}), got {_show(raw)}")
        values = _numeric(f, "values", raw)
        examples = Examples(grid, tuple(labels), values, f.integer("pick", 0))
        f.done()
    return wrt, lr, examples


def _alexnet(top: _Fields, path: str, name: str, title: str, base: Path) -> AlexNetSpec:
    """The alexnet kind: image, weights, seed, normalize, channels (and the common title)."""
    image = top.text("image", "grace_hopper")
    image_ref = None if image == "grace_hopper" else str(base / image)
    weights = top.text("weights", "pretrained")
    if weights not in ("pretrained", "random"):
        weights = str(base / weights)
    seed = top.integer("seed", 0)
    normalize = top.text("normalize", "lecture")
    if normalize not in NORMALIZE:
        top.fail("normalize", f'must be "lecture" or "imagenet", got {_show(normalize)}')
    raw = top.raw("channels", "0-63")
    if not isinstance(raw, (str, list)):
        top.fail("channels", f'must be a string such as "0-63" or a list of channel numbers, got {_show(raw)}')
    try:
        channels = parse_channels(raw, where=f"{path}: channels")
    except SpecError as e:
        raise SpecError(str(e)) from None
    top.done()
    return AlexNetSpec(path, name, title, image_ref, weights, seed, normalize, channels)


MAX_PHOTO_CELLS = 250_000  # cells of one grid: a 500 x 500 photo of typed pixels; the toy sheets use 32 x 32
MAX_SPEC_BYTES = 16 * 2**20  # a spec with a 1,000 x 1,000 grid typed in is about 4 MB


# No network xlconv draws has more filters in a layer; bounds a range such as "0-99999999999" before expanding it.
MAX_CHANNEL = 4095


def parse_channels(text: str | Sequence[int] | None, where: str = "--channels") -> tuple[int, ...] | None:
    """Channel numbers from "0-63", "0,5,9-12" or a list of ints, sorted without repeats; None (all) for None.

    Whether the network has that many filters is checked once it is loaded (see check_channels).
    """
    if text is None:
        return None
    picked: set[int] = set()
    if isinstance(text, str):
        for part in text.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d{1,9})(?:-(\d{1,9}))?", part)
            if not m:
                raise SpecError(f"{where}: {text!r} is not a channel list such as 0-63 or 0,5,9-12")
            lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
            if lo > hi:
                raise SpecError(f"{where}: {part!r} runs backwards")
            if hi > MAX_CHANNEL:
                raise SpecError(f"{where}: channel {hi} is past {MAX_CHANNEL}, more filters than any layer has")
            picked.update(range(lo, hi + 1))
    else:
        for v in text:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_CHANNEL:
                raise SpecError(f"{where}: {v!r} is not a channel number")
            picked.add(v)
    if not picked:
        raise SpecError(f"{where}: no channel selected")
    return tuple(sorted(picked))


def check_channels(channels: Sequence[int] | None, count: int, where: str = "--channels") -> tuple[int, ...]:
    """The channels of a layer with count filters (None: all of them); SpecError naming where if one is past it."""
    if channels is None:
        return tuple(range(count))
    bad = [c for c in channels if not 0 <= c < count]
    if bad:
        raise SpecError(f"{where}: channel {max(bad)} is outside 0-{count - 1} (conv1 has {count} filters)")
    return tuple(channels)


def channels_text(channels: Sequence[int]) -> str:
    """ "0-63" or "0-3,7": the compact form of a channel list."""
    parts, run = [], [channels[0]]
    for c in channels[1:]:
        if c == run[-1] + 1:
            run.append(c)
        else:
            parts.append(run)
            run = [c]
    parts.append(run)
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in parts)


def _sheet_name(f: _Fields, sheet: str) -> str:
    if not sheet or len(sheet) > 31:
        f.fail("sheet", f"must be 1 to 31 characters (Excel's limit), got {len(sheet)}")
    if _SHEET_FORBIDDEN.search(sheet) or sheet.startswith("'") or sheet.endswith("'"):
        f.fail("sheet", f"{sheet!r} has a character Excel forbids in sheet names ([ ] : * ? / \\ or edge ')")
    if sheet.lower() in RESERVED_SHEETS:
        f.fail("sheet", f"{sheet!r} is a name Excel or xlconv reserves")
    return sheet


def _check_name(f: _Fields, key: str, name: str) -> str:
    return check_name(name, f"{f.path}: {f.where(key)}")


def _grid(path: str, gname: str, table: Any, base: Path) -> GridSpec:
    f = _Fields(path, f"grids.{gname}", table)
    _check_name(f, "", gname)
    label = f.text("label", gname)
    sources = [k for k in ("values", "csv", "photo") if f.has(k)]
    if len(sources) != 1:
        f.fail("", "needs exactly one of values, csv or photo")
    colour = "auto"
    if sources[0] == "values":
        values, source = _numeric(f, "values", f.raw("values")), "typed in the spec"
    elif sources[0] == "csv":
        values, source = _csv(f, base), f"from {f.raw('csv')}"
    else:
        values, source = _photo(f, base)
        colour = "gray"
    exercise = None
    if f.has("exercise"):
        lo_hi = f.raw("exercise")
        if (not isinstance(lo_hi, list) or len(lo_hi) != 2
                or any(isinstance(x, bool) or not isinstance(x, int) for x in lo_hi) or lo_hi[0] > lo_hi[1]):
            f.fail("exercise", f"must be [low, high] integers with low <= high, got {_show(lo_hi)}")
        exercise = (float(lo_hi[0]), float(lo_hi[1]))
    f.done()
    return GridSpec(gname, label, values, source, colour, exercise)


def _numeric(f: _Fields, key: str, v: Any) -> np.ndarray:
    """A 2-D or 3-D rectangular array of finite numbers, returned as (C, H, W) float64."""
    depth = 0
    probe = v
    while isinstance(probe, list):
        if not probe:
            f.fail(key, "must not be empty")
        depth, probe = depth + 1, probe[0]
    if depth not in (2, 3):
        f.fail(key, f"must be a 2-D (rows) or 3-D (channels x rows) array of numbers, got depth {depth}")

    def walk(node: Any, d: int, where: str) -> None:
        if d == 0:
            if isinstance(node, bool) or not isinstance(node, (int, float)):
                f.fail(key, f"{where} must be a number, got {_show(node)}")
            if not math.isfinite(node) or abs(node) > MAX_VALUE:
                f.fail(key, f"{where} must be a finite number of at most {MAX_VALUE:g} in size, got {node}")
            return
        if not isinstance(node, list):
            f.fail(key, f"{where} must be a list, got {_show(node)}")
        for i, child in enumerate(node):
            walk(child, d - 1, f"{where}[{i}]")

    walk(v, depth, "")
    rows = v if depth == 3 else [v]
    width = len(rows[0][0])
    for c, channel in enumerate(rows):
        if len(channel) != len(rows[0]):
            f.fail(key, f"is ragged: channel {c} has {len(channel)} rows, channel 0 has {len(rows[0])}")
        for r, row in enumerate(channel):
            if len(row) != width:
                at = f"[{c}][{r}]" if depth == 3 else f"[{r}]"
                f.fail(key, f"is ragged: row {at} has {len(row)} numbers, row 0 has {width}")
    cells = len(rows) * len(rows[0]) * width
    if cells > MAX_PHOTO_CELLS:
        f.fail(key, f"has {cells:,} numbers, more than a teaching sheet can show (at most {MAX_PHOTO_CELLS:,})")
    return np.asarray(rows, dtype=np.float64)


def _csv(f: _Fields, base: Path) -> np.ndarray:
    names = f.raw("csv")
    names = names if isinstance(names, list) else [names]
    if not names or not all(isinstance(n, str) for n in names):
        f.fail("csv", f"must be a file name or a list of them (one per channel), got {_show(names)}")
    channels = []
    for n in names:
        p = base / n
        try:
            channels.append(read_csv_numbers(p))
        except OSError as e:
            f.fail("csv", f"cannot read {p}: {e.strerror}")
        except ValueError as e:
            f.fail("csv", f"{p} {e}")
    return _numeric(f, "csv", channels)


def read_csv_numbers(path: str | Path) -> list[list[float]]:
    """The rows of numbers of one CSV file, blank lines skipped; a ValueError names a row that is not numbers."""
    try:
        input_file(path, "CSV file", max_bytes=MAX_SPEC_BYTES)
    except XlconvError as e:  # a FIFO would block the read, a device never end it
        raise ValueError(str(e).split(": ", 1)[-1]) from None
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [[c.strip() for c in row] for row in csv.reader(fh) if any(c.strip() for c in row)]
    parsed = []
    for r, row in enumerate(rows, start=1):
        try:
            parsed.append([float(c) for c in row])
        except ValueError:
            raise ValueError(f"row {r} has a cell that is not a number: {_show(row)}") from None
    return parsed


def photo_path(name: str, base: Path) -> Path:
    """File of a photo named in a spec: a sample a dependency ships, or a path."""
    if name == "grace_hopper":
        import importlib.util

        # find_spec locates matplotlib without importing it (importing costs a few hundred ms).
        spec = importlib.util.find_spec("matplotlib")
        if spec and spec.submodule_search_locations:
            return Path(list(spec.submodule_search_locations)[0]) / "mpl-data/sample_data/grace_hopper.jpg"
    return base / name


def _photo(f: _Fields, base: Path) -> tuple[np.ndarray, str]:
    from PIL import Image, UnidentifiedImageError

    name = f.text("photo")
    crop = f.raw("crop", None)
    size = f.pair("size", None, minimum=1) if f.has("size") else None
    if size is not None and size[0] * size[1] > MAX_PHOTO_CELLS:
        f.fail("size", f"{size[0]} x {size[1]} is more cells than a sheet can show (at most {MAX_PHOTO_CELLS:,})")
    p = photo_path(name, base)
    try:
        if p.exists():
            input_file(p, "photo", SpecError)
        with Image.open(p) as opened:
            image_size(opened.size, f"{f.path}: {f.where('photo')}: {p}", SpecError)
            im = opened.convert("L")
            if crop is not None:
                if (not isinstance(crop, list) or len(crop) != 4
                        or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in crop)):
                    f.fail("crop", f"must be [top, left, height, width] in pixels, got {_show(crop)}")
                top, left, h, w = crop
                if h < 1 or w < 1 or top + h > im.height or left + w > im.width:
                    f.fail("crop", f"{crop} lies outside the {im.height}x{im.width} photo")
                im = im.crop((left, top, left + w, top + h))
            if size is not None:
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            values = np.asarray(im, dtype=np.float64)[None]
            if values.size > MAX_PHOTO_CELLS:
                f.fail("crop", f"leaves {values.shape[1]} x {values.shape[2]} pixels, more cells than a sheet can show "
                               f"(at most {MAX_PHOTO_CELLS:,}): crop or size it smaller")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        f.fail("photo", f"cannot read {p}: {e}")
    return values, f"grayscale 0-255 pixels of {p.name}" + (f", crop {crop}" if crop else "") + \
        (f", resized to {size[0]}x{size[1]}" if size else "")


_OP_KEYS = ("conv", "conv_transpose", "relu", "pool", "flatten", "linear", "softmax", "loss")
LOSS_KINDS = ("cross_entropy", "mse")


def _ops(top: _Fields, path: str) -> tuple[Op, ...]:
    ops: list[Op] = []
    for kind in _OP_KEYS:
        tables = top.raw(kind, [])
        if not isinstance(tables, list):
            top.fail(kind, f"must be an array of tables ([[{kind}]]), got {_show(tables)}")
        for i, t in enumerate(tables):
            f = _Fields(path, f"{kind}[{i}]", t)
            name = _check_name(f, "name", f.text("name"))
            label = f.text("label", name)
            inp = f.text("input")
            if kind in ("conv", "conv_transpose"):
                w = f.raw("weight")
                weight = tuple(w) if isinstance(w, list) else (w,)
                if not weight or not all(isinstance(x, str) for x in weight):
                    f.fail("weight", f"must be a grid name or a list of grid names, got {_show(w)}")
                bias = f.raw("bias", None)
                if bias is not None:
                    items = bias if isinstance(bias, list) else [bias]
                    if len(items) != len(weight) or any(
                            isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b)
                            or abs(b) > MAX_VALUE for b in items):
                        f.fail("bias", f"must be one number per weight ({len(weight)}), got {_show(bias)}")
                    bias = tuple(float(b) for b in items)
                if kind == "conv_transpose":  # F.conv_transpose2d's arguments, in its order
                    op: Op = ConvTranspose(name, label, inp, weight, bias, f.pair("stride", 1, minimum=1),
                                           f.pair("padding", 0), f.pair("output_padding", 0),
                                           f.pair("dilation", 1, minimum=1))
                else:
                    kernel_size = f.pair("kernel_size", None, minimum=1) if f.has("kernel_size") else None
                    op = Conv(name, label, inp, weight, bias, f.pair("stride", 1, minimum=1),
                              f.pair("padding", 0), f.pair("dilation", 1, minimum=1), kernel_size)
            elif kind == "linear":
                weight_name = f.text("weight")
                bias = f.raw("bias", None)
                if bias is not None:
                    if not isinstance(bias, list) or any(
                            isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b)
                            or abs(b) > MAX_VALUE for b in bias):
                        f.fail("bias", f"must be a list of numbers, one per output, got {_show(bias)}")
                    bias = tuple(float(b) for b in bias)
                op = Linear(name, label, inp, weight_name, bias)
            elif kind == "loss":
                loss_kind = f.text("kind")
                if loss_kind not in LOSS_KINDS:
                    f.fail("kind", f'must be "cross_entropy" or "mse", got {_show(loss_kind)}')
                target = f.raw("target")
                if loss_kind == "cross_entropy":
                    if isinstance(target, bool) or not isinstance(target, int):
                        f.fail("target", f"must be a class index (an integer) for cross_entropy, got {_show(target)}")
                    reduction = "mean"
                else:
                    if not isinstance(target, str):
                        f.fail("target", f"must be a grid name for mse, got {_show(target)}")
                    reduction = f.text("reduction", "mean")
                    if reduction not in ("mean", "sum"):
                        f.fail("reduction", f'must be "mean" or "sum", got {_show(reduction)}')
                op = Loss(name, label, inp, loss_kind, target, reduction)
            elif kind == "flatten":
                op = Flatten(name, label, inp)
            elif kind == "softmax":
                op = Softmax(name, label, inp)
            elif kind == "pool":
                mode = f.text("mode", "max")
                if mode not in ("max", "avg"):
                    f.fail("mode", f'must be "max" or "avg", got {_show(mode)}')
                k = f.pair("kernel_size", minimum=1)
                dilation = f.pair("dilation", 1, minimum=1)
                if mode == "avg" and dilation != (1, 1):
                    f.fail("dilation", "is not supported by avg pooling (torch's AvgPool2d has none)")
                op = Pool(name, label, inp, mode, k, f.pair("stride", k, minimum=1), f.pair("padding", 0),
                          dilation, f.boolean("ceil_mode", False), f.boolean("count_include_pad", True))
            else:
                op = Relu(name, label, inp)
            f.done()
            ops.append(replace(op, where=f"{kind}[{i}]"))
    if not ops:
        top.fail("conv", "at least one [[conv]], [[conv_transpose]], [[relu]] or [[pool]] is required")
    return tuple(ops)


def _size_rows(path: str, tables: Any) -> tuple[SizeRow, ...]:
    if not isinstance(tables, list) or not tables:
        raise SpecError(f"{path}: layer must be a non-empty array of tables ([[layer]])")
    rows = []
    for i, t in enumerate(tables):
        f = _Fields(path, f"layer[{i}]", t)
        name = f.text("name")
        label = f.text("label", name)
        ceil_mode = f.boolean("ceil_mode", False)
        # Without op, a row is pooling when it says so (name or label) or sets ceil_mode, as specs did before op.
        guess = "pool" if ceil_mode or "pool" in f"{name} {label}".lower() else "conv"
        op = f.text("op", guess)
        if op not in ("conv", "pool"):
            f.fail("op", f'must be "conv" or "pool", got {_show(op)}')
        if op == "conv" and ceil_mode:
            f.fail("ceil_mode", 'is a pooling option: set op = "pool" or leave ceil_mode out')
        row = SizeRow(name, label, f.integer("kernel_size", minimum=1), f.integer("stride", 1, minimum=1),
                      f.integer("padding", 0), f.integer("dilation", 1, minimum=1), ceil_mode,
                      f.integer("h_in", None if i else ..., minimum=1) if (f.has("h_in") or i == 0) else None,
                      f.text("lecture", ""), op)
        f.done()
        rows.append(row)
    # Check the chain the way torch would fail on it.
    h: int | None = None
    for i, r in enumerate(rows):
        h = r.h_in if r.h_in is not None else h
        assert h is not None, "layer[0].h_in is required above, so every row has an input height"
        out = ref.out_size(h, r.kernel_size, r.stride, r.padding, r.dilation, r.ceil_mode)
        if out < 1:
            raise SpecError(f"{path}: layer[{i}].kernel_size {r.kernel_size} (dilation {r.dilation}) is larger than "
                            f"the padded input {h + 2 * r.padding}")
        h = out
    return tuple(rows)


__all__ = ["load", "loads", "resolve", "builtin_names", "builtin_dir", "from_arrays", "read_csv_numbers", "photo_path",
           "parse_channels", "check_channels", "channels_text"]


def from_arrays(title: str, grids: dict[str, Any], ops: Sequence[Op], sheet: str | None = None,
                note: str = "", name: str | None = None) -> ConvSheetSpec:
    """A conv worksheet spec from NumPy arrays (2-D or (C, H, W)) and ops, as a notebook would make it."""
    path = f"<arrays {name or title}>"
    for key, text in (("title", title), ("sheet", sheet or ""), ("note", note), ("name", name or "")):
        xml_text(text, f"{path}: {key}", SpecError)
    f = _Fields(path, "", {})
    parsed = []
    for gname, arr in grids.items():
        _check_name(_Fields(path, f"grids.{gname}", {}), "", gname)
        a = np.asarray(arr, dtype=np.float64)
        a = a[None] if a.ndim == 2 else a
        if a.ndim != 3 or a.size == 0 or not np.all(np.isfinite(a)) or np.abs(a).max() > MAX_VALUE:
            raise SpecError(f"{path}: grids.{gname} must be a finite 2-D or 3-D array, got shape {a.shape}")
        parsed.append(GridSpec(gname, gname, a, "given as an array"))
    spec = ConvSheetSpec(path, name or re.sub(r"[^A-Za-z0-9_-]+", "-", title).strip("-").lower() or "worksheet",
                         title, _sheet_name(f, sheet or title[:31]), note, tuple(parsed), dependency_order(ops, list(grids)))
    check_shapes(spec)
    return spec
