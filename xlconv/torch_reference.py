"""The same operations through torch.nn.functional: the independent oracle (torch is imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # annotations only: the oracle imports nothing of the NumPy reference it checks
    import torch

    from xlconv.reference import Node, Pair


def _t(a: ArrayLike) -> torch.Tensor:
    import torch

    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def conv2d(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: int | Pair = 1,
           padding: int | Pair = 0, dilation: int | Pair = 1) -> np.ndarray:
    """F.conv2d on a (C, H, W) input, in float64."""
    import torch.nn.functional as F

    b = None if bias is None else _t(bias)
    return F.conv2d(_t(x)[None], _t(weight), b, stride=stride, padding=padding, dilation=dilation)[0].numpy()


def conv_transpose2d(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: int | Pair = 1,
                     padding: int | Pair = 0, output_padding: int | Pair = 0, dilation: int | Pair = 1) -> np.ndarray:
    """F.conv_transpose2d on a (C_in, H, W) input with weight (C_in, C_out, kh, kw), in float64."""
    import torch.nn.functional as F

    b = None if bias is None else _t(bias)
    return F.conv_transpose2d(_t(x)[None], _t(weight), b, stride=stride, padding=padding,
                              output_padding=output_padding, dilation=dilation)[0].numpy()


def max_pool2d(x: ArrayLike, kernel_size: int | Pair, stride: int | Pair | None = None, padding: int | Pair = 0,
               dilation: int | Pair = 1, ceil_mode: bool = False) -> np.ndarray:
    """F.max_pool2d on a (C, H, W) input, in float64."""
    import torch.nn.functional as F

    return F.max_pool2d(_t(x)[None], kernel_size, stride or kernel_size, padding, dilation,
                        ceil_mode=ceil_mode)[0].numpy()


def avg_pool2d(x: ArrayLike, kernel_size: int | Pair, stride: int | Pair | None = None, padding: int | Pair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    """F.avg_pool2d on a (C, H, W) input, in float64."""
    import torch.nn.functional as F

    return F.avg_pool2d(_t(x)[None], kernel_size, stride or kernel_size, padding, ceil_mode=ceil_mode,
                        count_include_pad=count_include_pad)[0].numpy()


def relu(x: ArrayLike) -> np.ndarray:
    """F.relu in float64."""
    import torch.nn.functional as F

    return F.relu(_t(x)).numpy()


def normalize(raw: ArrayLike, mean: ArrayLike, std: ArrayLike) -> np.ndarray:
    """torchvision's Normalize after ToTensor's division by 255, on (C, H, W) 0-255 pixels, in float64."""
    from torchvision.transforms import functional as TF

    x = _t(raw) / 255.0
    return TF.normalize(x, [float(m) for m in np.ravel(mean)], [float(s) for s in np.ravel(std)]).numpy()


def out_size(h_in: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
             ceil_mode: bool = False) -> int:
    """The output length torch really produces: pooling (ceil_mode) or convolving a zero column."""
    import torch
    import torch.nn.functional as F

    x = torch.zeros(1, 1, int(h_in), 1)
    if ceil_mode:
        y = F.max_pool2d(x, (kernel_size, 1), (stride, 1), (padding, 0), (dilation, 1), ceil_mode=True)
    else:
        w = torch.zeros(1, 1, kernel_size, 1)
        y = F.conv2d(x, w, stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
    return int(y.shape[2])


def conv_transpose_out_size(h_in: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0,
                            dilation: int = 1) -> int:
    """The output length torch's conv_transpose2d really produces (transposing a zero column)."""
    import torch
    import torch.nn.functional as F

    x = torch.zeros(1, 1, int(h_in), 1)
    w = torch.zeros(1, 1, kernel_size, 1)
    y = F.conv_transpose2d(x, w, stride=(stride, 1), padding=(padding, 0), output_padding=(output_padding, 0),
                           dilation=(dilation, 1))
    return int(y.shape[2])


def linear(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None) -> np.ndarray:
    """F.linear of the vector x (read in C, H, W order) with weight (out, in), as a (1, out, 1) column, in float64."""
    import torch.nn.functional as F

    xv = _t(x).reshape(-1)
    b = None if bias is None else _t(bias).reshape(-1)
    return F.linear(xv, _t(weight).reshape(-1, xv.numel()), b).reshape(1, -1, 1).numpy()


def softmax(x: ArrayLike) -> np.ndarray:
    """F.softmax over every entry, in x's shape, in float64."""
    import torch.nn.functional as F

    t = _t(x)
    return F.softmax(t.reshape(-1), dim=0).reshape(t.shape).numpy()


def cross_entropy(x: ArrayLike, target: int) -> np.ndarray:
    """F.cross_entropy of one row of logits and a class index, as (1, 1, 1), in float64."""
    import torch
    import torch.nn.functional as F

    return F.cross_entropy(_t(x).reshape(1, -1), torch.tensor([int(target)])).reshape(1, 1, 1).numpy()


def mse_loss(y: ArrayLike, target: ArrayLike, reduction: str = "mean") -> np.ndarray:
    """F.mse_loss with reduction "mean" or "sum", as (1, 1, 1), in float64."""
    import torch.nn.functional as F

    y_ = _t(y)
    return F.mse_loss(y_, _t(target).reshape(y_.shape), reduction=reduction).reshape(1, 1, 1).numpy()


def autograd(nodes: Sequence[Node], roots: Mapping[str, ArrayLike], loss: str) -> dict[str, np.ndarray]:
    """dL/dv by torch.autograd: the graph's forward pass in torch from its root values (inputs, weights, biases,
    targets), loss.backward(), then .grad of every root and of every op output (retain_grad)."""
    import torch
    import torch.nn.functional as F

    t: dict[str, torch.Tensor] = {}
    for name, v in roots.items():
        t[name] = _t(v).clone().requires_grad_(True)
    for n in nodes:
        x, a = t[n.input], n.args
        if n.op == "conv":
            w = torch.stack([t[k] for k in n.weight])
            b = t[n.bias].reshape(-1) if n.bias else None
            y = F.conv2d(x[None], w, b, stride=a["stride"], padding=a["padding"], dilation=a["dilation"])[0]
        elif n.op == "max_pool":
            y = F.max_pool2d(x[None], a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                             ceil_mode=a["ceil_mode"])[0]
        elif n.op == "avg_pool":
            y = F.avg_pool2d(x[None], a["kernel_size"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"],
                             count_include_pad=a["count_include_pad"])[0]
        elif n.op == "relu":
            y = F.relu(x)
        elif n.op == "flatten":
            y = torch.flatten(x).reshape(1, 1, -1)
        elif n.op == "linear":
            xv = x.reshape(-1)
            b = t[n.bias].reshape(-1) if n.bias else None
            y = F.linear(xv, t[n.weight[0]].reshape(-1, xv.numel()), b).reshape(1, -1, 1)
        elif n.op == "softmax":
            y = F.softmax(x.reshape(-1), dim=0).reshape(x.shape)
        elif n.op == "cross_entropy":
            assert n.target is not None, "a cross_entropy node names its target"
            target = torch.tensor([int(t[n.target].detach().reshape(-1)[0])])
            y = F.cross_entropy(x.reshape(1, -1), target).reshape(1, 1, 1)
        elif n.op == "mse":
            assert n.target is not None, "an mse node names its target"
            y = F.mse_loss(x, t[n.target].detach().reshape(x.shape),
                           reduction=a.get("reduction", "mean")).reshape(1, 1, 1)
        else:
            raise ValueError(f"{n.name}: torch has no op {n.op!r} here")
        y.retain_grad()
        t[n.name] = y
    t[loss].sum().backward()
    return {name: (v.grad.numpy() if v.grad is not None else np.zeros(tuple(v.shape))) for name, v in t.items()}


def torch_flatten(x: ArrayLike) -> np.ndarray:
    """torch.flatten of a (C, H, W) map as a (1, 1, N) row, in float64."""
    import torch

    return torch.flatten(_t(x)).reshape(1, 1, -1).numpy()
