"""The model of a worksheet: frozen dataclasses of grids, ops and sheets, their graph and shape checks, and
the NumPy forward pass. No I/O and no file formats: spec.py turns TOML, CSV and photos into these.

Names follow torch and the lecture: ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``ceil_mode``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, NoReturn, Sequence, TypeAlias, Union

import numpy as np

from xlconv import reference as ref
from xlconv.errors import SpecError
from xlconv.guards import MAX_VALUE

Pair: TypeAlias = tuple[int, int]
Shape: TypeAlias = tuple[int, int, int]  # (C, H, W)
NORMALIZE = ("lecture", "imagenet")  # the AlexNet workbook's two pre-processing choices
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
# Names Excel would read as a cell (B3, XFD1), an R1C1 reference (R, C12, RC, R1C1) or a value.
_CELL_LIKE = (re.compile(r"^[A-Za-z]{1,3}[0-9]+$"), re.compile(r"^[rR]\d*([cC]\d*)?$"), re.compile(r"^[cC]\d*$"))
# Names Excel reserves for itself (its built-in defined names) or reads as booleans.
_RESERVED = {"true", "false", "print_area", "print_titles", "criteria", "database", "extract", "consolidate_area",
             "sheet_title", "auto_open", "auto_close", "auto_activate", "auto_deactivate", "recorder"}


def check_name(name: str, where: str) -> str:
    """A grid or op name that can also be a defined name in Excel; SpecError naming where otherwise."""
    if not _NAME.match(name) or any(p.match(name) for p in _CELL_LIKE):
        raise SpecError(f"{where} {name!r} must be a letter then letters, digits or _ (at most 31), not a cell "
                        f"address")
    if name.lower() in _RESERVED:
        raise SpecError(f"{where} {name!r} is a name Excel reserves; choose another")
    return name


def _shape3(values: np.ndarray) -> Shape:
    c, h, w = values.shape
    return (int(c), int(h), int(w))


@dataclass(frozen=True, eq=False)
class GridSpec:
    """A named constant tensor typed into the sheet: an input image or a kernel, (C, H, W)."""

    name: str
    label: str
    values: np.ndarray
    source: str  # where the numbers came from, said on the sheet
    colour_scale: str = "auto"  # "gray" draws a photo as a picture
    exercise: tuple[float, float] | None = None  # (low, high) integers an exercise may draw


@dataclass(frozen=True)
class Conv:
    """Conv2d with one output channel per weight grid (torch's cross-correlation)."""

    name: str
    label: str
    input: str
    weight: tuple[str, ...]
    bias: tuple[float, ...] | None
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    kernel_size: Pair | None = None  # optional; when given it must match the weight grids
    where: str = field(default="", compare=False)  # "conv[0]": names the spec field in errors
    kind = "conv"


@dataclass(frozen=True)
class ConvTranspose:
    """ConvTranspose2d with one output channel per weight grid; each grid is C_in x kh x kw, torch's weight[:, o]."""

    name: str
    label: str
    input: str
    weight: tuple[str, ...]
    bias: tuple[float, ...] | None
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    output_padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    where: str = field(default="", compare=False)
    kind = "conv_transpose"


@dataclass(frozen=True)
class Pool:
    """MaxPool2d or AvgPool2d, per channel."""

    name: str
    label: str
    input: str
    mode: str  # "max" | "avg"
    kernel_size: Pair
    stride: Pair
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True
    where: str = field(default="", compare=False)
    kind = "pool"


@dataclass(frozen=True)
class Relu:
    """ReLU, max(0, x) per cell."""

    name: str
    label: str
    input: str
    where: str = field(default="", compare=False)
    kind = "relu"


@dataclass(frozen=True)
class Flatten:
    """torch.flatten of a (C, H, W) map into a row, in channel, row, column order."""

    name: str
    label: str
    input: str
    where: str = field(default="", compare=False)
    kind = "flatten"


@dataclass(frozen=True)
class Linear:
    """F.linear: weight is a grid of out x in numbers (torch's layout); the output is a column of out cells."""

    name: str
    label: str
    input: str
    weight: str
    bias: tuple[float, ...] | None
    where: str = field(default="", compare=False)
    kind = "linear"


@dataclass(frozen=True)
class Softmax:
    """Softmax over every cell of its input (the max subtracted first)."""

    name: str
    label: str
    input: str
    where: str = field(default="", compare=False)
    kind = "softmax"


@dataclass(frozen=True)
class Loss:
    """F.cross_entropy (input: logits, target: a class index) or F.mse_loss (target: a grid name)."""

    name: str
    label: str
    input: str
    loss: str  # "cross_entropy" | "mse" (the spec's kind)
    target: int | str
    reduction: str = "mean"
    where: str = field(default="", compare=False)
    kind = "loss"


Op: TypeAlias = Union[Conv, ConvTranspose, Pool, Relu, Flatten, Linear, Softmax, Loss]
DENSE = (Flatten, Linear, Softmax, Loss)  # the ops that read a map or vector as a whole


@dataclass(frozen=True)
class Examples:
    """Shipped examples a student picks from: each a value of grid, with its true class; pick is shown first."""

    grid: str
    labels: tuple[int, ...]
    values: np.ndarray  # (N, H, W): one channel per example
    pick: int


@dataclass(frozen=True)
class ConvSheetSpec:
    """A worksheet of grids and the convolution, ReLU and pooling ops applied to them."""

    path: str
    name: str
    title: str
    sheet: str
    note: str
    grids: tuple[GridSpec, ...]
    ops: tuple[Op, ...]
    exercise_note: str = ""  # [exercise] note: replaces note on exercise (student and key) sheets
    wrt: tuple[str, ...] = ()  # [gradients] wrt: the grids whose gradients the workbook draws
    lr: float | None = None  # [sgd] lr: one SGD step on them, and the loss after it
    examples: Examples | None = None  # [examples]: digits to pick from
    exercise_answers: tuple[str, ...] = ()  # [exercise] answers: the blocks an exercise asks for (default: see sheets)
    kind = "conv"

    def grid(self, name: str) -> GridSpec:
        """The grid called name."""
        return next(g for g in self.grids if g.name == name)


@dataclass(frozen=True)
class SizeRow:
    """One layer in the output-size table."""

    name: str
    label: str
    kernel_size: int
    stride: int
    padding: int
    dilation: int
    ceil_mode: bool
    h_in: int | None  # None: chained from the previous row's output
    lecture: str  # what the lecture wrote for this row, if it differs
    op: str = "conv"  # "conv" | "pool": only pooling has ceil_mode


@dataclass(frozen=True)
class SizeSheetSpec:
    """A worksheet of the output-size rule as live cells, one row per layer."""

    path: str
    name: str
    title: str
    sheet: str
    note: str
    rows: tuple[SizeRow, ...]
    exercise_note: str = ""  # [exercise] note: replaces note on exercise (student and key) sheets
    kind = "output-size"


@dataclass(frozen=True)
class AlexNetSpec:
    """The AlexNet conv1 workbook (kind = "alexnet"): the keys mirror `xlconv alexnet`'s options."""

    path: str
    name: str
    title: str
    image: str | None  # None: the default photograph; else a file (resolved against the spec's folder)
    weights: str  # "pretrained" | "random" | a state_dict file (resolved against the spec's folder)
    seed: int
    normalize: str  # "lecture" | "imagenet"
    channels: tuple[int, ...] | None  # None: every filter of conv1
    kind = "alexnet"


Spec: TypeAlias = Union[ConvSheetSpec, SizeSheetSpec, AlexNetSpec]


def dependency_order(ops: Sequence[Op], grids: Sequence[str]) -> tuple[Op, ...]:
    """Ops reordered so each comes after the op it reads (a conv may follow a pool); ties keep spec order, except
    that a transposed convolution comes right after the op it reads (the convolution it undoes, case by case)."""
    done, left = set(grids), list(ops)
    ordered: list[Op] = []
    while left:
        ready = next((op for op in left if op.input in done), None)
        if ready is None:  # a missing or circular input: check_shapes names it
            return tuple(ordered + left)
        ordered.append(ready)
        done.add(ready.name)
        left.remove(ready)
        for follower in [op for op in left if isinstance(op, ConvTranspose) and op.input == ready.name]:
            ordered.append(follower)
            done.add(follower.name)
            left.remove(follower)
    return tuple(ordered)


def _where(spec: ConvSheetSpec, op: Op) -> str:
    if op.where:
        return op.where
    kinds = [o for o in spec.ops if o.kind == op.kind]
    return f"{op.kind}[{kinds.index(op)}]"


def shape_of(spec: ConvSheetSpec, name: str) -> Shape:
    """(C, H, W) of a grid or of an op's output."""
    return _shapes(spec)[name]


def _shapes(spec: ConvSheetSpec) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {g.name: _shape3(g.values) for g in spec.grids}
    for op in spec.ops:
        shapes[op.name] = op_shape(op, shapes[op.input], spec)
    return shapes


def op_shape(op: Op, in_shape: Shape, spec: ConvSheetSpec) -> Shape:
    """Output (C, H, W) of op on an input of in_shape."""
    c, h, w = in_shape
    if isinstance(op, (Relu, Softmax)):
        return in_shape
    if isinstance(op, Flatten):
        return (1, 1, c * h * w)
    if isinstance(op, Linear):
        return (1, int(spec.grid(op.weight).values.shape[1]), 1)
    if isinstance(op, Loss):
        return (1, 1, 1)
    if isinstance(op, Conv):
        kh, kw = spec.grid(op.weight[0]).values.shape[1:]
        return (len(op.weight),
                ref.out_size(h, kh, op.stride[0], op.padding[0], op.dilation[0]),
                ref.out_size(w, kw, op.stride[1], op.padding[1], op.dilation[1]))
    if isinstance(op, ConvTranspose):
        kh, kw = spec.grid(op.weight[0]).values.shape[1:]
        return (len(op.weight),
                ref.conv_transpose_out_size(h, kh, op.stride[0], op.padding[0], op.output_padding[0], op.dilation[0]),
                ref.conv_transpose_out_size(w, kw, op.stride[1], op.padding[1], op.output_padding[1], op.dilation[1]))
    return (c,
            ref.out_size(h, op.kernel_size[0], op.stride[0], op.padding[0], op.dilation[0], op.ceil_mode),
            ref.out_size(w, op.kernel_size[1], op.stride[1], op.padding[1], op.dilation[1], op.ceil_mode))


def check_shapes(spec: ConvSheetSpec) -> None:
    """Check names, references and sizes the way torch would refuse them, naming the field."""
    def fail(where: str, msg: str) -> NoReturn:
        raise SpecError(f"{spec.path}: {where} {msg}")

    shapes: dict[str, Shape] = {g.name: _shape3(g.values) for g in spec.grids}
    kernels = {w for op in spec.ops if isinstance(op, (Conv, ConvTranspose)) for w in op.weight}
    kernels |= {op.weight for op in spec.ops if isinstance(op, Linear)}
    for op in spec.ops:
        where = _where(spec, op)
        check_name(op.name, f"{spec.path}: {where}.name")
        if op.name in shapes:
            fail(f"{where}.name", f"{op.name!r} is already the name of a grid or op")
        if op.input not in shapes:
            fail(f"{where}.input", f"{op.input!r} is not a grid or an op (or its inputs go round in a circle)")
        if op.input in kernels and op.input in {g.name for g in spec.grids}:
            fail(f"{where}.input", f"{op.input!r} is used as a kernel; give the input its own grid")
        c, h, w = shapes[op.input]
        if isinstance(op, DENSE):
            _check_dense(spec, op, shapes, fail, where)
            shapes[op.name] = op_shape(op, shapes[op.input], spec)
            continue
        _check_extent(op, h, w, fail, where)
        if isinstance(op, (Conv, ConvTranspose)):
            for wname in op.weight:
                if wname not in {g.name for g in spec.grids}:
                    fail(f"{where}.weight", f"{wname!r} is not a grid")
            kshapes = {spec.grid(x).values.shape for x in op.weight}
            if len(kshapes) > 1:
                fail(f"{where}.weight", f"grids differ in shape: {sorted(kshapes)}")
            kc, kh, kw = kshapes.pop()
            if kc != c:
                fail(f"{where}.weight", f"has {kc} channel(s) but the input {op.input!r} has in_channels={c}")
            if isinstance(op, ConvTranspose):
                if op.bias is not None and len(op.bias) != len(op.weight):
                    fail(f"{where}.bias", f"must be one number per weight ({len(op.weight)}), got {len(op.bias)}")
                _check_transpose(op, (h, w), (kh, kw), fail, where)
                shapes[op.name] = op_shape(op, shapes[op.input], spec)
                continue
            ks = op.kernel_size
            if ks is not None and ks != (kh, kw):
                fail(f"{where}.kernel_size", f"is {list(ks)} but the weight grids are {kh}x{kw}")
            eh = op.dilation[0] * (kh - 1) + 1
            ew = op.dilation[1] * (kw - 1) + 1
            ph, pw = h + 2 * op.padding[0], w + 2 * op.padding[1]
            if eh > ph or ew > pw:
                fail(f"{where}.weight", f"kernel {kh}x{kw} (dilated {eh}x{ew}) is larger than the padded input {ph}x{pw}")
        elif isinstance(op, Pool):
            k = op.kernel_size
            for axis in (0, 1):
                if op.padding[axis] * 2 > k[axis]:
                    fail(f"{where}.padding", f"must be at most half the kernel_size (torch's rule), got {op.padding[axis]}")
            eh = op.dilation[0] * (k[0] - 1) + 1
            ew = op.dilation[1] * (k[1] - 1) + 1
            if eh > h + 2 * op.padding[0] or ew > w + 2 * op.padding[1]:
                fail(f"{where}.kernel_size", f"window {eh}x{ew} is larger than the padded input "
                                             f"{h + 2 * op.padding[0]}x{w + 2 * op.padding[1]}")
            for axis, n_in in ((0, h), (1, w)):
                n_out = ref.out_size(n_in, k[axis], op.stride[axis], op.padding[axis], op.dilation[axis], op.ceil_mode)
                for i in range(n_out):
                    if not ref.pool_bounds(i, n_in, k[axis], op.stride[axis], op.padding[axis], op.dilation[axis])[0]:
                        fail(f"{where}.dilation", f"puts output {('row', 'column')[axis]} {i} entirely in the padding "
                                                  f"(torch would give -inf there)")
        shapes[op.name] = op_shape(op, shapes[op.input], spec)
    _check_training(spec, shapes, fail)
    check_values(spec)


def _check_dense(spec: ConvSheetSpec, op: Op, shapes: dict[str, Shape], fail: Callable[[str, str], NoReturn],
                 where: str) -> None:
    """torch's rules for flatten, linear, softmax and the losses."""
    n_in = int(np.prod(shapes[op.input]))
    grids = {g.name for g in spec.grids}
    if isinstance(op, Linear):
        if op.weight not in grids:
            fail(f"{where}.weight", f"{op.weight!r} is not a grid")
        wc, out, inn = _shape3(spec.grid(op.weight).values)
        if wc != 1:
            fail(f"{where}.weight", f"must be a 2-D grid of out x in numbers (F.linear's layout), got {wc} channels")
        if inn != n_in:
            fail(f"{where}.weight", f"has {inn} columns (in_features) but the input {op.input!r} has {n_in} numbers "
                                    f"(F.linear: mat1 and mat2 shapes cannot be multiplied)")
        if op.bias is not None and len(op.bias) != out:
            fail(f"{where}.bias", f"must be one number per row of the weight ({out}), got {len(op.bias)}")
    elif isinstance(op, Loss):
        if op.loss == "cross_entropy":
            if not isinstance(op.target, int) or not 0 <= op.target < n_in:
                fail(f"{where}.target", f"must be a class index from 0 to {n_in - 1} (the input {op.input!r} has "
                                        f"{n_in} logits), got {op.target!r}")
        else:
            if not isinstance(op.target, str) or op.target not in grids:
                fail(f"{where}.target", f"must be the name of a grid, got {op.target!r}")
            if shapes[op.target] != shapes[op.input]:
                fail(f"{where}.target", f"is {list(shapes[op.target])} but the input {op.input!r} is "
                                        f"{list(shapes[op.input])} (torch would broadcast; give the same shape)")
    if isinstance(op, (Linear, Softmax, Flatten)) and n_in > MAX_SIDE:
        fail(f"{where}.input", f"has {n_in:,} numbers, more than a sheet's row can show")


def _check_training(spec: ConvSheetSpec, shapes: dict[str, Shape], fail: Callable[[str, str], NoReturn]) -> None:
    """[gradients], [sgd] and [examples]: names that exist, a loss to differentiate, ops with a backward pass."""
    grids = {g.name for g in spec.grids}
    losses = [op for op in spec.ops if isinstance(op, Loss)]
    if spec.wrt:
        if len(losses) != 1:
            fail("gradients.wrt", f"needs exactly one [[loss]] to differentiate, got {len(losses)}")
        path = {n.name for n in ref.ancestors(nodes(spec), losses[0].name)}
        reads = {x for n in ref.ancestors(nodes(spec), losses[0].name) for x in n.reads()}
        for k, name in enumerate(spec.wrt):
            if name not in grids:
                fail(f"gradients.wrt[{k}]", f"{name!r} is not a grid")
            if name not in reads:
                fail(f"gradients.wrt[{k}]", f"{name!r} does not reach the loss {losses[0].name!r}")
        for op in spec.ops:
            if op.name in path and isinstance(op, ConvTranspose):
                fail(f"{_where(spec, op)}", "has no drawn backward pass (conv_transpose); leave it off the loss's path")
        if len(set(spec.wrt)) != len(spec.wrt):
            fail("gradients.wrt", "names a grid twice")
    if spec.lr is not None and not spec.wrt:
        fail("sgd", "needs [gradients] wrt = [...]: the step moves those grids")
    ex = spec.examples
    if ex is not None:
        if ex.grid not in grids:
            fail("examples.grid", f"{ex.grid!r} is not a grid")
        shape = shapes[ex.grid]
        if shape[0] != 1 or ex.values.shape[1:] != shape[1:]:
            fail("examples.values", f"each example must be {shape[1]} x {shape[2]} like the grid {ex.grid!r}, got "
                                    f"{ex.values.shape[1]} x {ex.values.shape[2]}")
        if len(ex.labels) != ex.values.shape[0]:
            fail("examples.labels", f"must be one class per example ({ex.values.shape[0]}), got {len(ex.labels)}")
        if not 0 <= ex.pick < len(ex.labels):
            fail("examples.pick", f"must be from 0 to {len(ex.labels) - 1}, got {ex.pick}")
        if not np.allclose(ex.values[ex.pick], spec.grid(ex.grid).values[0], atol=1e-9):
            fail(f"grids.{ex.grid}.values", f"must equal examples.values[{ex.pick}] (the picked example, "
                                            f"examples.pick = {ex.pick})")
        for op in losses:
            if op.loss == "cross_entropy" and op.target != ex.labels[ex.pick]:
                fail(f"{_where(spec, op)}.target", f"is {op.target} but the picked example's label is "
                                                   f"{ex.labels[ex.pick]} (examples.labels[{ex.pick}]): the sheet's "
                                                   f"target follows the pick")


def nodes(spec: ConvSheetSpec) -> list[ref.Node]:
    """The spec's ops as the backward pass's graph: biases are the values "<op>_bias", a cross-entropy's class
    index the value "<loss>_target" (see graph_values)."""
    out = []
    for op in spec.ops:
        if isinstance(op, Conv):
            out.append(ref.Node(op.name, "conv", op.input, op.weight, f"{op.name}_bias" if op.bias else None,
                                args=dict(stride=op.stride, padding=op.padding, dilation=op.dilation)))
        elif isinstance(op, Pool):
            out.append(ref.Node(op.name, f"{op.mode}_pool", op.input, args=dict(
                kernel_size=op.kernel_size, stride=op.stride, padding=op.padding, dilation=op.dilation,
                ceil_mode=op.ceil_mode, count_include_pad=op.count_include_pad)))
        elif isinstance(op, Linear):
            out.append(ref.Node(op.name, "linear", op.input, (op.weight,), f"{op.name}_bias" if op.bias else None))
        elif isinstance(op, Loss):
            target = f"{op.name}_target" if op.loss == "cross_entropy" else str(op.target)
            out.append(ref.Node(op.name, op.loss, op.input, target=target, args=dict(reduction=op.reduction)))
        elif isinstance(op, (Relu, Flatten, Softmax)):
            out.append(ref.Node(op.name, op.kind, op.input))
        else:
            out.append(ref.Node(op.name, op.kind, op.input, op.weight))
    return out


def graph_values(spec: ConvSheetSpec, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """values plus the biases ((O, 1, 1) for a conv, a (1, out, 1) column for a linear) and the targets of nodes()."""
    out = dict(values)
    for op in spec.ops:
        if isinstance(op, Conv) and op.bias is not None:
            out[f"{op.name}_bias"] = np.asarray(op.bias, dtype=np.float64)[:, None, None]
        elif isinstance(op, Linear) and op.bias is not None:
            out[f"{op.name}_bias"] = np.asarray(op.bias, dtype=np.float64).reshape(1, -1, 1)
        elif isinstance(op, Loss) and op.loss == "cross_entropy":
            out[f"{op.name}_target"] = np.array([[[float(op.target)]]])
    return out


def gradients(spec: ConvSheetSpec, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """dL/dv of every value on the loss's path (NumPy), from the forward values."""
    loss = next(op for op in spec.ops if isinstance(op, Loss))
    return ref.backward(nodes(spec), graph_values(spec, values), loss.name)


# A sheet has 16,384 columns; no padded input, dilated window or stride may reach past that, and no block
# may hold more cells than a teaching sheet can show (checked before anything is computed or allocated).
MAX_SIDE = 16_384
MAX_BLOCK_CELLS = 4_000_000


def _check_transpose(op: ConvTranspose, hw: Pair, k: Pair, fail: Callable[[str, str], NoReturn], where: str) -> None:
    """torch's rules for conv_transpose2d (output_padding below stride or dilation, an output of at least one cell),
    and the spread input and the output must fit a sheet."""
    for axis in (0, 1):
        opad, s, d = op.output_padding[axis], op.stride[axis], op.dilation[axis]
        if opad >= s and opad >= d:
            fail(f"{where}.output_padding", f"must be smaller than either stride or dilation (torch's rule), got "
                                            f"{opad} with stride {s} and dilation {d}")
    out = [ref.conv_transpose_out_size(hw[a], k[a], op.stride[a], op.padding[a], op.output_padding[a], op.dilation[a])
           for a in (0, 1)]
    if min(out) < 1:
        fail(f"{where}.padding", f"{torch_pair(op.padding)} leaves an output of {out[0]} x {out[1]}: (H_in - 1) x stride "
                                 f"- 2 x padding + dilation x (kernel_size - 1) + output_padding + 1 must be at least 1")
    spread = [(hw[a] - 1) * op.stride[a] + 1 + 2 * ref.spread_border(k[a], op.padding[a], op.dilation[a])
              + op.output_padding[a] for a in (0, 1)]
    for key, (rows, cols) in (("stride", spread), ("padding", out)):
        if rows > MAX_SIDE or cols > MAX_SIDE or rows * cols > MAX_BLOCK_CELLS:
            what = "spread input" if key == "stride" else "output"
            fail(f"{where}.{key}", f"makes the {what} {rows:,} x {cols:,}, larger than a sheet can show")


def torch_pair(p: Pair) -> str:
    """A pair as torch prints an argument: 2, or (2, 3)."""
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def _check_extent(op: Op, h: int, w: int, fail: Callable[[str, str], NoReturn], where: str) -> None:
    """Refuse padding, strides and windows so large that the padded input alone would not fit a sheet."""
    if isinstance(op, (Relu, *DENSE)):
        return
    for key, pair in (("stride", op.stride), ("padding", op.padding), ("dilation", op.dilation)):
        if max(pair) > MAX_SIDE:
            fail(f"{where}.{key}", f"must be at most {MAX_SIDE:,} (a sheet's width), got {max(pair):,}")
    if isinstance(op, Pool) and max(op.kernel_size) > MAX_SIDE:
        fail(f"{where}.kernel_size", f"must be at most {MAX_SIDE:,}, got {max(op.kernel_size):,}")
    if isinstance(op, ConvTranspose):
        return  # its padding crops: _check_transpose sizes the spread input and the output
    ph, pw = h + 2 * op.padding[0], w + 2 * op.padding[1]
    if max(op.padding) and (ph > MAX_SIDE or pw > MAX_SIDE or ph * pw > MAX_BLOCK_CELLS):
        fail(f"{where}.padding", f"makes the padded input {ph:,} x {pw:,}, larger than a sheet can show")


def check_values(spec: ConvSheetSpec) -> None:
    """Every op's output must stay a finite number a spreadsheet can hold (1e308 typed in a cell overflows)."""
    values = compute(spec)
    for op in spec.ops:
        v = values[op.name]
        if not np.all(np.isfinite(v)) or (v.size and np.abs(v).max() > MAX_VALUE):
            raise SpecError(f"{spec.path}: {op.where or op.name} gives numbers too large for a spreadsheet "
                            f"(over {MAX_VALUE:g} or infinite): use smaller inputs")


def compute(spec: ConvSheetSpec) -> dict[str, np.ndarray]:
    """Values of every grid and op output, by the NumPy reference (the forward pass)."""
    values = {g.name: g.values for g in spec.grids}
    for op in spec.ops:
        values[op.name] = apply(op, values)
    return values


def apply(op: Op, values: dict[str, np.ndarray]) -> np.ndarray:
    """NumPy output of one op given the values of its inputs."""
    x = values[op.input]
    if isinstance(op, Conv):
        w = np.stack([values[n] for n in op.weight])
        return ref.conv2d(x, w, op.bias, op.stride, op.padding, op.dilation)
    if isinstance(op, ConvTranspose):  # torch's weight is (C_in, C_out, kh, kw): each grid is weight[:, o]
        w = np.stack([values[n] for n in op.weight], axis=1)
        return ref.conv_transpose2d(x, w, op.bias, op.stride, op.padding, op.output_padding, op.dilation)
    if isinstance(op, Pool):
        if op.mode == "max":
            return ref.max_pool2d(x, op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode)
        return ref.avg_pool2d(x, op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad)
    if isinstance(op, Flatten):
        return ref.flatten(x)
    if isinstance(op, Linear):
        b = None if op.bias is None else np.asarray(op.bias)
        return ref.linear(x, values[op.weight], b)
    if isinstance(op, Softmax):
        return ref.softmax(x)
    if isinstance(op, Loss):
        if op.loss == "cross_entropy":
            return ref.cross_entropy(x, int(op.target))
        return ref.mse_loss(x, values[str(op.target)], op.reduction)
    return ref.relu(x)


__all__ = ["Pair", "Shape", "GridSpec", "Conv", "ConvTranspose", "Pool", "Relu", "Op", "ConvSheetSpec", "SizeRow",
           "SizeSheetSpec", "AlexNetSpec", "Spec", "Flatten", "Linear", "Softmax", "Loss", "Examples", "DENSE", "nodes",
           "graph_values", "gradients", "NORMALIZE", "check_name", "dependency_order", "shape_of", "op_shape",
           "check_shapes", "compute", "apply"]
