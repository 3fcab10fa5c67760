"""xlconv: Excel workbooks with live formulas for teaching convolutional networks.

The library mirrors the command line, so a notebook can do what ``xlconv`` does::

    import xlconv
    spec = xlconv.load_spec("lee-6x6")            # or xlconv.from_arrays(...)
    path = xlconv.build(spec, "build")            # build/lee-6x6.xlsx, live formulas
    xlconv.compute(spec)["stride1"]                # the NumPy reference of every block
    [r.ok for r in xlconv.verify([path])]          # recalculated by LibreOffice, checked by NumPy and torch

Names are imported on first use (PEP 562), so ``import xlconv`` stays cheap.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from xlconv._version import __version__

# public name -> (module, attribute)
_LAZY = {
    "build": ("xlconv.build", "build"),
    "build_all": ("xlconv.build", "build_all"),
    "write_workbook": ("xlconv.build", "write_workbook"),
    "alexnet_workbook": ("xlconv.build", "alexnet_workbook"),
    "load_spec": ("xlconv.spec", "load"),
    "from_arrays": ("xlconv.spec", "from_arrays"),
    "compute": ("xlconv.model", "compute"),
    "Conv": ("xlconv.model", "Conv"),
    "ConvTranspose": ("xlconv.model", "ConvTranspose"),
    "Pool": ("xlconv.model", "Pool"),
    "Relu": ("xlconv.model", "Relu"),
    "verify": ("xlconv.verify", "verify"),
    "render": ("xlconv.render", "render"),
    "XlconvError": ("xlconv.errors", "XlconvError"),
    "SpecError": ("xlconv.errors", "SpecError"),
    "WorkbookError": ("xlconv.errors", "WorkbookError"),
    "EngineError": ("xlconv.errors", "EngineError"),
    "VerifyError": ("xlconv.errors", "VerifyError"),
    "ExerciseError": ("xlconv.errors", "ExerciseError"),
}

if TYPE_CHECKING:
    from xlconv.build import alexnet_workbook, build, build_all, write_workbook
    from xlconv.errors import EngineError, ExerciseError, SpecError, VerifyError, WorkbookError, XlconvError
    from xlconv.model import Conv, ConvTranspose, Pool, Relu, compute
    from xlconv.render import render
    from xlconv.spec import from_arrays
    from xlconv.spec import load as load_spec
    from xlconv.verify import verify


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'xlconv' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The package module: importing the submodule xlconv.build (or verify, exercise, grade) must not replace
    the public function of the same name, which is what `xlconv.build(...)` means."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY) + ["__version__"]
