"""Shared guards for values that come from outside (command lines, manifests, workbooks): one check each, so
every command refuses the same bad value with the same words."""

from __future__ import annotations

import math
from typing import Any

from xlconv.errors import XlconvError

# An answer within 0.5 of a whole number is a guess, not a check; xlconv's own defaults are 1e-6 to 0.005.
MAX_TOLERANCE = 0.5


def check_tolerance(value: Any, where: str, error: type[XlconvError] = XlconvError) -> float:
    """A tolerance: a finite number from 0 to MAX_TOLERANCE; error naming where otherwise (NaN would pass all)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= MAX_TOLERANCE):
        raise error(f"{where} must be a number from 0 to {MAX_TOLERANCE:g}, got {value!r}")
    return float(value)
