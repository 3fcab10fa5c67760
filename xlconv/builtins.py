"""The built-in worksheet specs: package data in xlconv/worksheets/, found through importlib.resources.

They travel inside the wheel, so ``xlconv build lee-6x6`` works from any folder after ``pip install .``,
not only from a clone. Standard library only: importing this module must stay cheap.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from xlconv.errors import SpecError


def builtin_dir() -> Path:
    """The folder of the shipped worksheet specs (the package's worksheets/)."""
    folder = resources.files("xlconv") / "worksheets"
    # An installed wheel or a clone is unpacked on disk, so this is a real folder; specs may name sibling
    # files (CSV, photos) relative to themselves, which needs a real path, not a Traversable inside a zip.
    if not isinstance(folder, Path):
        raise SpecError(f"the built-in worksheets are not on disk ({folder}); install xlconv unzipped")
    return folder


def builtin_names() -> list[str]:
    """Names of the shipped specs, in build order."""
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def resolve(spec: str | Path) -> Path:
    """Path of a spec given as a file path or as a built-in name such as "lee-6x6"."""
    p = Path(spec)
    if p.suffix == ".toml" or p.exists():
        return p
    candidate = builtin_dir() / f"{spec}.toml"
    if candidate.exists():
        return candidate
    raise SpecError(f"{spec}: no such spec file, and not a built-in worksheet "
                    f"(built-ins: {', '.join(builtin_names())})")


__all__ = ["builtin_dir", "builtin_names", "resolve"]
