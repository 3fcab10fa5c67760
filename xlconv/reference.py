"""NumPy reference for the operations on the sheets, with torch.nn.functional's semantics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

Pair: TypeAlias = tuple[int, int]


def pair(v: int | Iterable[int]) -> Pair:
    """(h, w) from an int or a pair, as torch's _pair does."""
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    h, w = v
    return (int(h), int(w))


def out_size(h_in: int, kernel_size: int, stride: int = 1, padding: int = 0,
             dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length along one axis: floor((h_in + 2p - d(k-1) - 1)/s) + 1, torch's pooling rule for ceil_mode."""
    span = h_in + 2 * padding - dilation * (kernel_size - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        # torch: the last window must start inside the input or its left padding.
        if (out - 1) * stride >= h_in + padding:
            out -= 1
        return out
    return span // stride + 1


def pad(x: np.ndarray, padding: int | Pair, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of a (C, H, W) array with a constant ring."""
    ph, pw = pair(padding)
    return np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (ph, ph), (pw, pw)), constant_values=value)


def dilate_kernel(w: np.ndarray, dilation: int | Pair) -> np.ndarray:
    """Spread a (..., kh, kw) kernel with zeros between taps, the kernel a dilated conv effectively uses."""
    dh, dw = pair(dilation)
    kh, kw = w.shape[-2:]
    out = np.zeros(w.shape[:-2] + (dh * (kh - 1) + 1, dw * (kw - 1) + 1))
    out[..., ::dh, ::dw] = w
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, bias: ArrayLike | None = None, stride: int | Pair = 1,
           padding: int | Pair = 0, dilation: int | Pair = 1) -> np.ndarray:
    """Cross-correlation of x (C, H, W) with weight (O, C, kh, kw) plus bias (O,), like F.conv2d."""
    sh, sw = pair(stride)
    xp = pad(x, padding)
    wd = dilate_kernel(np.asarray(weight, dtype=np.float64), dilation)
    kh, kw = wd.shape[-2:]
    oh = (xp.shape[1] - kh) // sh + 1
    ow = (xp.shape[2] - kw) // sw + 1
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw][:, :oh, :ow]
    out = np.einsum("chwij,ocij->ohw", windows, wd)
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64)[:, None, None]
    return out


def conv_transpose_out_size(h_in: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0,
                            dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis: (H_in - 1)s - 2p + d(k - 1) + output_padding + 1."""
    return (h_in - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def conv_transpose2d(x: np.ndarray, weight: np.ndarray, bias: ArrayLike | None = None, stride: int | Pair = 1,
                     padding: int | Pair = 0, output_padding: int | Pair = 0, dilation: int | Pair = 1) -> np.ndarray:
    """Transposed convolution of x (C_in, H, W) with weight (C_in, C_out, kh, kw) plus bias (C_out,), like
    F.conv_transpose2d, by its definition: every input cell times the whole (dilated) kernel, scattered into the
    output at (row x stride, column x stride) and summed where the copies overlap; then padding cells are cut off
    each side (output_padding adds cells at the bottom and right)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    _, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    oh = conv_transpose_out_size(h, kh, sh, ph, oph, dh)
    ow = conv_transpose_out_size(wd, kw, sw, pw, opw, dw)
    full = np.zeros((c_out, (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw * (kw - 1) + 1 + opw))
    for i in range(h):
        for j in range(wd):
            full[:, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw] += \
                np.einsum("c,cokl->okl", x[:, i, j], w)
    out = full[:, ph:ph + oh, pw:pw + ow]
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64)[:, None, None]
    return out


Tap = tuple[int, int, int, int]  # (input row, input column, kernel row, kernel column)


def conv_taps(i: int, j: int, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
              size: Pair) -> list[Tap]:
    """The products F.conv2d adds into output cell (i, j) of one input channel of the given (height, width): each
    kernel tap with the input cell under it, in kernel order, taps on the padding left out (they add 0)."""
    return [(i * stride[0] + u * dilation[0] - padding[0], j * stride[1] + v * dilation[1] - padding[1], u, v)
            for u in range(kernel_size[0]) for v in range(kernel_size[1])
            if 0 <= i * stride[0] + u * dilation[0] - padding[0] < size[0]
            and 0 <= j * stride[1] + v * dilation[1] - padding[1] < size[1]]


def conv_transpose_taps(i: int, j: int, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
                        size: Pair) -> list[Tap]:
    """The products F.conv_transpose2d adds into output cell (i, j) of one input channel of the given (height,
    width), in kernel order: input cell (a, b) lands kernel tap (u, v) on (a*stride - padding + u*dilation, ...)."""
    out = []
    for u in range(kernel_size[0]):
        a, off = divmod(i + padding[0] - u * dilation[0], stride[0])
        if off or not 0 <= a < size[0]:
            continue
        for v in range(kernel_size[1]):
            b, off = divmod(j + padding[1] - v * dilation[1], stride[1])
            if not off and 0 <= b < size[1]:
                out.append((a, b, u, v))
    return out


def spread_border(kernel_size: int, padding: int, dilation: int = 1) -> int:
    """Zeros around the spread input of a transposed convolution taught as a convolution: d(k - 1) - p (negative:
    that many cells are cropped instead)."""
    return dilation * (kernel_size - 1) - padding


def spread(x: np.ndarray, kernel_size: int | Pair, stride: int | Pair = 1, padding: int | Pair = 0,
           output_padding: int | Pair = 0, dilation: int | Pair = 1) -> np.ndarray:
    """The input of a transposed convolution as it is taught (C, H, W): stride - 1 zeros between cells, d(k - 1) - p
    zeros around (cropped where negative), output_padding more at the bottom and right. A stride-1 convolution of it
    with the kernel rotated 180 degrees (flip_kernel) is the transposed convolution."""
    x = np.asarray(x, dtype=np.float64)
    k, s, p, op, d = pair(kernel_size), pair(stride), pair(padding), pair(output_padding), pair(dilation)
    c, h, w = x.shape
    inner = np.zeros((c, (h - 1) * s[0] + 1, (w - 1) * s[1] + 1))
    inner[:, ::s[0], ::s[1]] = x
    q = [spread_border(k[a], p[a], d[a]) for a in (0, 1)]
    before, after = q, [q[0] + op[0], q[1] + op[1]]
    big = np.pad(inner, ((0, 0), (max(before[0], 0), max(after[0], 0)), (max(before[1], 0), max(after[1], 0))))
    top, left = max(-before[0], 0), max(-before[1], 0)
    return big[:, top:big.shape[1] - max(-after[0], 0), left:big.shape[2] - max(-after[1], 0)]


def flip_kernel(w: np.ndarray, dilation: int | Pair = 1) -> np.ndarray:
    """A (..., kh, kw) kernel rotated 180 degrees (then spread by the dilation): what a transposed convolution taught
    as a convolution slides over the spread input."""
    return dilate_kernel(np.flip(np.asarray(w, dtype=np.float64), axis=(-2, -1)), dilation)


def pool_bounds(i: int, n_in: int, kernel_size: int, stride: int, padding: int, dilation: int = 1) -> tuple[list[int], int]:
    """Input indices inside the i-th pooling window along one axis, and torch's avg-pool divisor length."""
    start = i * stride - padding
    taps = [start + t * dilation for t in range(kernel_size)]
    # avg_pool2d (count_include_pad) counts the padding ring but not what ceil_mode hangs past it.
    end = min(start + kernel_size, n_in + padding)
    return [t for t in taps if 0 <= t < n_in], end - start


def _pool(x: np.ndarray, kernel_size: int | Pair, stride: int | Pair | None, padding: int | Pair,
          dilation: int | Pair, ceil_mode: bool, reduce: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    k, s, p, d = pair(kernel_size), pair(stride if stride else kernel_size), pair(padding), pair(dilation)
    _, h, w = x.shape
    oh = out_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    out = np.empty((x.shape[0], oh, ow))
    for i in range(oh):
        rows, nh = pool_bounds(i, h, k[0], s[0], p[0], d[0])
        for j in range(ow):
            cols, nw = pool_bounds(j, w, k[1], s[1], p[1], d[1])
            out[:, i, j] = reduce(x[:, rows][:, :, cols], nh * nw)
    return out


def max_pool2d(x: np.ndarray, kernel_size: int | Pair, stride: int | Pair | None = None, padding: int | Pair = 0,
               dilation: int | Pair = 1, ceil_mode: bool = False) -> np.ndarray:
    """Max pooling of (C, H, W) like F.max_pool2d (padding never wins the max)."""
    return _pool(x, kernel_size, stride, padding, dilation, ceil_mode, lambda v, n: v.max(axis=(1, 2)))


def avg_pool2d(x: np.ndarray, kernel_size: int | Pair, stride: int | Pair | None = None, padding: int | Pair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    """Average pooling of (C, H, W) like F.avg_pool2d."""
    def mean(v: np.ndarray, n: int) -> np.ndarray:
        return v.sum(axis=(1, 2)) / (n if count_include_pad else v.shape[1] * v.shape[2])
    return _pool(x, kernel_size, stride, padding, 1, ceil_mode, mean)


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x) element-wise."""
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


# -- The dense head: flatten, linear, softmax and the losses (vectors are (1, 1, N) rows, a linear's output a
# (1, N, 1) column, so that each logit sits beside its row of weights and both backward products are SUMPRODUCTs).


def flatten(x: np.ndarray) -> np.ndarray:
    """torch.flatten of a (C, H, W) map in channel, row, column order, as a (1, 1, N) row."""
    return np.asarray(x, dtype=np.float64).reshape(1, 1, -1)


def linear(x: np.ndarray, weight: np.ndarray, bias: ArrayLike | None = None) -> np.ndarray:
    """F.linear of the vector x (any shape, read in C, H, W order) with weight (out, in), as a (1, out, 1) column."""
    y = np.asarray(weight, dtype=np.float64).reshape(-1, np.asarray(x).size) @ np.asarray(x, dtype=np.float64).ravel()
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64).ravel()
    return y.reshape(1, -1, 1)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over every entry (the max subtracted first, as torch does), in x's shape."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def cross_entropy(x: np.ndarray, target: int) -> np.ndarray:
    """F.cross_entropy of one row of logits and a class index: log-sum-exp (max subtracted) minus the target's
    logit, as (1, 1, 1)."""
    v = np.asarray(x, dtype=np.float64).ravel()
    m = v.max()
    return np.array([[[np.log(np.exp(v - m).sum()) + m - v[int(target)]]]])


def mse_loss(y: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """F.mse_loss with reduction "mean" or "sum", as (1, 1, 1)."""
    d = np.asarray(y, dtype=np.float64) - np.asarray(target, dtype=np.float64).reshape(np.shape(y))
    s = float((d * d).sum())
    return np.array([[[s / d.size if reduction == "mean" else s]]])


# -- The backward pass, op by op (torch's rules), and through a whole graph of nodes -------------------------------


def max_pool2d_backward(x: np.ndarray, grad: np.ndarray, kernel_size: int | Pair, stride: int | Pair | None = None,
                        padding: int | Pair = 0, dilation: int | Pair = 1, ceil_mode: bool = False) -> np.ndarray:
    """dL/dx of max pooling: each window's gradient goes to its maximum, the FIRST one in row-major window order
    when several tie (torch's rule); overlapping windows add up."""
    x = np.asarray(x, dtype=np.float64)
    k, s, p, d = pair(kernel_size), pair(stride if stride else kernel_size), pair(padding), pair(dilation)
    _, h, w = x.shape
    out = np.zeros_like(x)
    for i in range(grad.shape[1]):
        rows, _ = pool_bounds(i, h, k[0], s[0], p[0], d[0])
        for j in range(grad.shape[2]):
            cols, _ = pool_bounds(j, w, k[1], s[1], p[1], d[1])
            for c in range(x.shape[0]):
                taps = [(r, q) for r in rows for q in cols]
                vals = [x[c, r, q] for r, q in taps]
                r, q = taps[int(np.argmax(vals))]  # argmax returns the first of equal maxima
                out[c, r, q] += grad[c, i, j]
    return out


def avg_pool2d_backward(x: np.ndarray, grad: np.ndarray, kernel_size: int | Pair, stride: int | Pair | None = None,
                        padding: int | Pair = 0, ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    """dL/dx of average pooling: each window's gradient shared by its taps, divided as the forward pass divides."""
    x = np.asarray(x, dtype=np.float64)
    k, s, p = pair(kernel_size), pair(stride if stride else kernel_size), pair(padding)
    _, h, w = x.shape
    out = np.zeros_like(x)
    for i in range(grad.shape[1]):
        rows, nh = pool_bounds(i, h, k[0], s[0], p[0])
        for j in range(grad.shape[2]):
            cols, nw = pool_bounds(j, w, k[1], s[1], p[1])
            n = nh * nw if count_include_pad else len(rows) * len(cols)
            for r in rows:
                for q in cols:
                    out[:, r, q] += grad[:, i, j] / n
    return out


def conv2d_backward(x: np.ndarray, weight: np.ndarray, grad: np.ndarray, stride: int | Pair = 1,
                    padding: int | Pair = 0, dilation: int | Pair = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dL/dx, dL/dweight, dL/dbias) of a convolution: the weight's gradient is the correlation of the (padded)
    input with dL/dY, the input's the full convolution of dL/dY with the flipped kernel, the bias's the sums."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    xp = pad(x, (ph, pw))
    dxp = np.zeros_like(xp)
    dwt = np.zeros_like(w)
    _, kh, kw = w.shape[1:]
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + sh * (grad.shape[1] - 1) + 1, sh)
            cols = slice(b * dw, b * dw + sw * (grad.shape[2] - 1) + 1, sw)
            dwt[:, :, a, b] = np.einsum("ohw,chw->oc", grad, xp[:, rows, cols])
            dxp[:, rows, cols] += np.einsum("ohw,oc->chw", grad, w[:, :, a, b])
    return dxp[:, ph:ph + x.shape[1], pw:pw + x.shape[2]], dwt, grad.sum(axis=(1, 2))


@dataclass
class Node:
    """One op of a graph, as the backward pass needs it: its name, what it computes and which values it reads.

    op: conv, max_pool, avg_pool, relu, flatten, linear, softmax, cross_entropy or mse; weight, bias and target
    name other values of the graph; args holds the op's torch arguments (stride, padding, ..., reduction)."""

    name: str
    op: str
    input: str
    weight: tuple[str, ...] = ()
    bias: str | None = None
    target: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)

    def reads(self) -> list[str]:
        """The names of every value the op reads."""
        return [self.input, *self.weight, *([self.bias] if self.bias else []), *([self.target] if self.target else [])]


BACKWARD_OPS = ("conv", "max_pool", "avg_pool", "relu", "flatten", "linear", "softmax", "cross_entropy", "mse")


def ancestors(nodes: Sequence[Node], name: str) -> list[Node]:
    """The nodes that name's value depends on (itself included), in graph order."""
    by_name = {n.name: n for n in nodes}
    wanted, todo = set(), [name]
    while todo:
        cur = todo.pop()
        if cur in by_name and cur not in wanted:
            wanted.add(cur)
            todo.extend(by_name[cur].reads())
    return [n for n in nodes if n.name in wanted]


def backward(nodes: Sequence[Node], values: Mapping[str, np.ndarray], loss: str) -> dict[str, np.ndarray]:
    """dL/dv for every value v the loss depends on (inputs, weights, biases and every op's output), by the chain rule
    op by op from the loss back; values holds every value of the forward pass. A target gets no gradient."""
    path = ancestors(nodes, loss)
    grads: dict[str, np.ndarray] = {loss: np.ones_like(values[loss])}

    def add(name: str, g: np.ndarray) -> None:
        g = np.asarray(g, dtype=np.float64).reshape(np.shape(values[name]))
        grads[name] = grads[name] + g if name in grads else g

    for n in reversed(path):
        g = grads.get(n.name)
        if g is None:
            continue
        x, a = values[n.input], n.args
        if n.op == "cross_entropy":
            t = int(np.asarray(values[str(n.target)]).ravel()[0])
            p = softmax(x).ravel()
            p[t] -= 1.0
            add(n.input, p * float(g.ravel()[0]))
        elif n.op == "mse":
            # element by element in C order: a vector target may be a column where the input is a row
            d = np.asarray(x, dtype=np.float64) - np.reshape(values[str(n.target)], np.shape(x))
            add(n.input, 2 * d / (d.size if a.get("reduction", "mean") == "mean" else 1) * float(g.ravel()[0]))
        elif n.op == "softmax":
            p = values[n.name]
            add(n.input, p * (g - (g * p).sum()))
        elif n.op == "linear":
            wmat = np.asarray(values[n.weight[0]], dtype=np.float64).reshape(-1, np.size(x))
            gv = g.ravel()
            add(n.input, wmat.T @ gv)
            add(n.weight[0], np.outer(gv, np.ravel(x)))
            if n.bias:
                add(n.bias, gv)
        elif n.op == "flatten":
            add(n.input, g)
        elif n.op == "relu":
            add(n.input, g * (values[n.name] > 0))  # torch passes the gradient where the output is positive
        elif n.op == "max_pool":
            add(n.input, max_pool2d_backward(x, g, a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                                             a["ceil_mode"]))
        elif n.op == "avg_pool":
            add(n.input, avg_pool2d_backward(x, g, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                                             a["count_include_pad"]))
        elif n.op == "conv":
            w = np.stack([values[k] for k in n.weight])
            dx, dw, db = conv2d_backward(x, w, g, a["stride"], a["padding"], a["dilation"])
            add(n.input, dx)
            for k, wname in enumerate(n.weight):
                add(wname, dw[k])
            if n.bias:
                add(n.bias, db)
        else:
            raise ValueError(f"{n.name}: no backward pass for op {n.op!r}")
    return grads


def normalize(raw: ArrayLike, mean: ArrayLike, std: ArrayLike) -> np.ndarray:
    """ToTensor() then Normalize(mean, std) of (C, H, W) 0-255 pixels: (x/255 - mean)/std per channel."""
    raw = np.asarray(raw, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
    return (raw / 255.0 - mean) / std


def lecture_out_size(h_in: float, kernel_size: float, stride: float, padding: float, dilation: float = 1) -> float:
    """The lecture's unrounded (H_in + 2*padding - kernel_size)/stride + 1, e.g. 55.25; with a dilation d the
    kernel spans d*(kernel_size-1)+1 cells: (H_in + 2*padding - d*(kernel_size-1) - 1)/stride + 1."""
    return (h_in + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1


def is_integral(a: np.ndarray) -> bool:
    """Whether every entry is a whole number (chooses the number format)."""
    a = np.asarray(a, dtype=np.float64)
    return bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))


__all__ = ["pair", "out_size", "pad", "dilate_kernel", "conv2d", "conv_transpose_out_size", "conv_transpose2d",
           "spread_border", "spread", "flip_kernel", "pool_bounds", "max_pool2d",
           "avg_pool2d", "relu", "normalize", "lecture_out_size", "is_integral", "flatten", "linear", "softmax",
           "cross_entropy", "mse_loss", "max_pool2d_backward", "avg_pool2d_backward", "conv2d_backward", "Node",
           "BACKWARD_OPS", "ancestors", "backward"]
