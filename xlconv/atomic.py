"""Writing a file (or a folder of files) so that it appears whole or not at all.

Every output goes through here: the target is checked by guards.output_path (a symbolic link is written
through, never replaced; a device, pipe, socket or folder is refused), the data goes to a temporary name
beside it, and only a complete file is renamed into place. Any exception, Ctrl-C, SIGTERM or SIGHUP
(see guards.stop_cleanly_on_signals) or a full disk removes the temporary file instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from xlconv.guards import output_path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside path; renamed onto path if the block succeeds, removed if it fails."""
    target = output_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private; what we write is an ordinary file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def in_folder(path: str | Path) -> Iterator[Path]:
    """path itself, removed if the block fails: for a file inside a folder atomic_folder made, which appears whole
    (a temporary name per file would only cost a file creation and a rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield target
    except BaseException:
        target.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside path whose files, if the block succeeds, are moved into path (made if needed);
    if it fails, the temporary folder goes and path keeps what it had."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        target.mkdir(exist_ok=True)
        # Files in subfolders first, the top-level ones (an index, a manifest) last: a reader never sees a
        # manifest that names files not yet there.
        files = sorted((p for p in tmp.rglob("*") if p.is_file()),
                       key=lambda p: (len(p.relative_to(tmp).parts) == 1, str(p)))
        for src in files:
            dest = target / src.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, output_path(dest))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write text to path atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return Path(path)
