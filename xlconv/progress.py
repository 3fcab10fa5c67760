"""Progress bars on stderr, shown only when the CLI says a person is watching.

The library is silent by default, so scripts and tests never see a bar; ``xlconv``'s CLI calls
:func:`configure` with ``stderr is a terminal and not -q``. tqdm is imported only when a bar is shown.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

_shown = False


def configure(show: bool) -> None:
    """Turn bars on or off for this process (the CLI: on when stderr is a terminal and -q is not given)."""
    global _shown
    _shown = bool(show)


def wanted(quiet: bool) -> bool:
    """Whether bars should show: not quiet and stderr is a terminal."""
    try:
        return not quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def shown() -> bool:
    """Whether bars are currently on."""
    return _shown


class Bar:
    """One bar: ``with bar(total, "verify") as b: b.update()``; does nothing when bars are off."""

    def __init__(self, total: int | None, desc: str, unit: str = "it"):
        self._tqdm: Any = None
        if _shown:
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                              dynamic_ncols=True, mininterval=0.2)

    def update(self, n: int = 1) -> None:
        """Advance by n steps."""
        if self._tqdm is not None:
            self._tqdm.update(n)

    def describe(self, text: str) -> None:
        """Change the label, e.g. to name the phase now running."""
        if self._tqdm is not None:
            self._tqdm.set_description_str(text)

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def bar(total: int | None, desc: str, unit: str = "it") -> Bar:
    """A bar of ``total`` steps (None when unknown) labelled ``desc``."""
    return Bar(total, desc, unit)
