"""xlconv: Excel workbooks with live formulas for teaching convolutional networks.

The library mirrors the command line, so a notebook can do what ``xlconv`` does::

    import xlconv
    spec = xlconv.load_spec("lee-6x6")            # or xlconv.from_arrays(...)
    path = xlconv.build(spec, "build")            # build/lee-6x6.xlsx, live formulas
    xlconv.compute(spec)["stride1"]                # the NumPy reference of every block
    [r.ok for r in xlconv.verify([path])]          # recalculated by LibreOffice, checked by NumPy and torch
"""

__version__ = "0.1.0"

from xlconv.build import build, build_all, write_workbook  # noqa: E402
from xlconv.errors import (  # noqa: E402
    EngineError,
    SpecError,
    VerifyError,
    WorkbookError,
    XlconvError,
)
from xlconv.spec import Conv, Pool, Relu, from_arrays  # noqa: E402
from xlconv.spec import load as load_spec  # noqa: E402
from xlconv.verify import verify  # noqa: E402


def compute(spec):
    """NumPy values of every grid and op output of a conv worksheet spec."""
    from xlconv.sheets.conv import compute as _compute

    return _compute(spec)


__all__ = ["build", "build_all", "write_workbook", "load_spec", "from_arrays", "compute", "verify", "Conv", "Pool",
           "Relu", "XlconvError", "SpecError", "WorkbookError", "EngineError", "VerifyError", "__version__"]
