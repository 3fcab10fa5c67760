"""Shared guards for values that come from outside (command lines, manifests, workbooks): one check each, so
every command refuses the same bad value with the same words."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import stat
from pathlib import Path
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


# -- files read ---------------------------------------------------------------------------------------------

MAX_INPUT_BYTES = 64 * 2**20  # a spec, CSV, roster or photo; workbooks have their own limits (safety.py)


def input_file(path: str | Path, what: str, error: type[XlconvError] = XlconvError,
               max_bytes: int = MAX_INPUT_BYTES) -> Path:
    """A file to read: it exists, is a regular file (not a FIFO, device or folder) and is not too big."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except OSError as e:
        raise error(f"{p}: cannot read the {what}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{p}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{p}: is not a regular file (a device, pipe or socket), not a {what}")
    if st.st_size > max_bytes:
        raise error(f"{p}: {st.st_size:,} bytes, more than the {max_bytes:,} a {what} may have")
    return p


def files_under(folder: Path) -> list[Path]:
    """Every visible file in folder and its subfolders (as course sites export one folder per student),
    sorted; symbolic links to folders are not followed, so a link loop cannot trap the walk."""
    found = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__MACOSX")))
        for n in sorted(names):
            if not n.startswith((".", "~$")):
                found.append(Path(root) / n)
    return found


def parse_json(text: str, where: str, error: type[XlconvError] = XlconvError, max_chars: int = 4 * 2**20) -> Any:
    """JSON from an untrusted text: too long, too deep (RecursionError) or malformed is one error naming where."""
    if len(text) > max_chars:
        raise error(f"{where}: {len(text):,} characters of JSON, more than {max_chars:,}")
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply") from None
    except ValueError as e:
        raise error(f"{where}: not valid JSON ({e})") from None


# Numbers typed into a sheet: Excel's largest is 9.99e307, and a product of two cells must stay finite.
MAX_VALUE = 1e100
# What XML 1.0 cannot hold (an .xlsx is XML): control characters but tab, newline and return; U+FFFE, U+FFFF;
# lone surrogates.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_text(text: str, where: str, error: type[XlconvError] = XlconvError) -> str:
    """Text a workbook can hold; error naming where and the character otherwise."""
    m = _NOT_XML.search(text)
    if m:
        raise error(f"{where} has the character U+{ord(m.group()):04X} at position {m.start() + 1}, which an .xlsx "
                    f"file cannot hold")
    return text


# Photos: pixels are counted from the header, before anything is decoded.
MAX_PIXELS = 40_000_000  # a 40-megapixel camera; Pillow itself refuses 179 million as a decompression bomb
MAX_ASPECT = 16  # Resize(224) of a 100000 x 1 strip would make a 22-million-pixel-long image


def image_size(size: tuple[int, int], where: str, error: type[XlconvError] = XlconvError) -> None:
    """Refuse a photo too big to decode or too thin to resize, from its header's (width, height)."""
    w, h = size
    if w < 1 or h < 1:
        raise error(f"{where}: an empty image ({w} x {h} pixels)")
    if w * h > MAX_PIXELS:
        raise error(f"{where}: {w} x {h} pixels, more than the {MAX_PIXELS:,} xlconv decodes")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise error(f"{where}: {w} x {h} pixels is more than {MAX_ASPECT} times longer than wide; crop it first")


# -- files written ------------------------------------------------------------------------------------------


def output_path(path: str | Path, error: type[XlconvError] = XlconvError) -> Path:
    """Where to write path: through a symbolic link to its target (never replacing the link), refusing an
    existing folder, device, pipe or socket (as root, replacing /dev/null would break the machine)."""
    p = Path(path)
    if p.is_symlink():
        try:
            p = p.resolve(strict=False)
        except (OSError, RuntimeError) as e:  # a link loop
            raise error(f"{path}: a symbolic link that cannot be followed ({e})") from None
    try:
        st = p.stat()
    except FileNotFoundError:
        return p
    except OSError as e:
        raise error(f"{path}: cannot write there: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a folder; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is a device, pipe or socket, not a file xlconv may replace")
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that every half-written file is removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def stop_cleanly_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into Terminated (a KeyboardInterrupt), as Python already does for SIGINT."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)
