"""The same operations through torch.nn.functional: the independent oracle (torch is imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # annotations only: the oracle imports nothing of the NumPy reference it checks
    import torch

    from xlconv.reference import Pair


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
