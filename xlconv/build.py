"""Building workbooks from specs: the library call behind `xlconv build`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Sequence

from xlconv import progress
from xlconv import spec as specs
from xlconv.book import Book
from xlconv.errors import PretrainedUnavailable, SpecError
from xlconv.model import AlexNetSpec, ConvSheetSpec, SizeSheetSpec, Spec


def write_workbook(spec: Spec, path: str | Path) -> Path:
    """Write the workbook for one parsed spec to path (atomically: no partial file on error)."""
    if isinstance(spec, AlexNetSpec):
        return _alexnet(spec, path)
    with Book(path, spec.title) as book:
        if isinstance(spec, SizeSheetSpec):
            from xlconv.sheets import size

            size.build_sheet(book, spec)
        elif isinstance(spec, ConvSheetSpec):
            from xlconv.sheets import backprop, conv

            sheet = conv.build_sheet(book, spec)
            if spec.wrt:
                backprop.build_sheet(sheet)
            sheet.extra_sheets()
        else:  # pragma: no cover - the spec parser only makes the kinds above
            raise TypeError(f"unknown spec kind {type(spec).__name__}")
    return Path(path)


def alexnet_workbook(path: str | Path, image: str | Path | None = None, weights: str = "pretrained", seed: int = 0,
                     normalize: str = "lecture", channels: str | Sequence[int] | None = None,
                     note: str | None = None, where: str = "--channels") -> Path:
    """Write the AlexNet conv1 workbook to path (atomically: no partial file on error); return the path."""
    from xlconv import torchnet  # imports torch only now
    from xlconv.sheets import alexnet as sheets

    with progress.bar(1, "alexnet: torch, AlexNet's weights, the photo, one forward pass", unit="phase") as bar:
        data = torchnet.run(image, weights, seed, normalize, channels, where)
        bar.update()
    if note:
        data.extra["note"] = note
    return sheets.write(data, path)


def _alexnet(spec: AlexNetSpec, path: str | Path) -> Path:
    """The AlexNet workbook; without pretrained weights (offline, nothing cached) it warns and goes UNTRAINED."""
    def workbook(weights: str) -> Path:
        return alexnet_workbook(path, image=spec.image, weights=weights, seed=spec.seed, normalize=spec.normalize,
                                channels=spec.channels, where=f"{spec.path}: channels")

    try:
        return workbook(spec.weights)
    except PretrainedUnavailable as e:
        if spec.weights != "pretrained":  # pragma: no cover - only "pretrained" raises it
            raise
        print(f"xlconv: WARNING: {spec.path}: {e}. Building {Path(path).name} from RANDOM weights "
              f"(seed {spec.seed}) instead; every sheet says UNTRAINED.", file=sys.stderr, flush=True)
        return workbook("random")


def build(spec: str | Path | Spec, out_dir: str | Path = "build") -> Path:
    """Build one spec (a parsed spec, a file or a built-in name) into out_dir/<name>.xlsx."""
    parsed = spec if isinstance(spec, (ConvSheetSpec, SizeSheetSpec, AlexNetSpec)) else specs.load(spec)
    return write_workbook(parsed, Path(out_dir) / f"{parsed.name}.xlsx")


def build_all(names: Iterable[str | Path] | None = None, out_dir: str | Path = "build") -> list[Path]:
    """Build several specs (default: every shipped one); all are parsed before any file is written."""
    wanted = list(names or specs.builtin_names())
    if not wanted:
        raise SpecError(f"no built-in worksheets in {specs.builtin_dir()}: this xlconv is installed without its "
                        f"package data; reinstall it")
    parsed = [specs.load(n) for n in wanted]
    return [build(p, out_dir) for p in parsed]
