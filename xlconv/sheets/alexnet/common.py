"""What several AlexNet sheets say or compute alike: titles, the weights line, number text, the padded input."""

from __future__ import annotations

import numpy as np

from xlconv.torchnet import Geometry, Run


def heading(data: Run, what: str) -> str:
    """A sheet's title line; every title of an untrained network says so first."""
    prefix = "UNTRAINED AlexNet (random weights, seed %d): " % data.seed if data.weights.untrained else "AlexNet: "
    return prefix + what


def weights_line(data: Run) -> str:
    w = data.weights
    return f"Weights: {w.label}" + ("." if w.untrained else f" ({w.source}).") + (
        " These are random numbers, not learned filters: the pictures show noise and the predictions mean nothing."
        if w.untrained else "")


def conv1_module(geo: Geometry) -> str:
    """conv1 as print(model) shows it."""
    k, s, p = geo.kernel, geo.stride, geo.padding
    return (f"Conv2d({geo.in_channels}, {geo.filters}, kernel_size=({k}, {k}), stride=({s}, {s}), "
            f"padding=({p}, {p}))")


def pool1_module(geo: Geometry) -> str:
    """The first max pooling as the lecture writes it."""
    return f"MaxPool2d(kernel_size={geo.pool_kernel}, stride={geo.pool_stride})"


def square(n: int) -> str:
    """ "55 x 55"."""
    return f"{n} x {n}"


def decimals(values: np.ndarray) -> str:
    """A number format that fits about six characters for these values."""
    m = float(np.max(np.abs(values))) if values.size else 0.0
    return "0.00" if m < 10 else "0.0" if m < 100 else "0"


def fmt9(values: np.ndarray) -> list[str]:
    """Shortest-safe text of float32 numbers: 9 significant digits give back the same float32."""
    return [f"{v:.9g}" for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def fmt7(values: np.ndarray) -> list[str]:
    """Cached results: 7 significant digits, float32's precision (the engine recomputes them anyway)."""
    return [f"{v:.7g}" for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def padded_input(data: Run) -> np.ndarray:
    """The pre-processed photo with conv1's ring of zeros: (C, padded, padded) float32."""
    geo = data.geometry
    p = geo.padding
    out = np.zeros((geo.in_channels, geo.padded, geo.padded), dtype=np.float32)
    out[:, p:p + geo.size, p:p + geo.size] = data.photo.tensor
    return out


__all__ = ["heading", "weights_line", "conv1_module", "pool1_module", "square", "decimals", "fmt9", "fmt7",
           "padded_input"]
