"""The xlconv command line: each command parses its arguments, calls one library function, and prints."""

from __future__ import annotations

import argparse
import sys

from xlconv.errors import XlconvError


def _build(args) -> int:
    from xlconv.build import build_all

    for path in build_all(args.specs or None, args.output):
        print(path)
    return 0


def _verify(args) -> int:
    from xlconv.verify import verify

    reports = verify(args.files, engine=args.engine, tolerance=args.tolerance, timeout=args.timeout)
    for report in reports:
        print("\n".join(report.lines()))
    return 0 if all(r.ok for r in reports) else 1


def _alexnet(args) -> int:
    from xlconv.alexnet import build_workbook

    print(build_workbook(args.output, image=args.image, weights=args.weights, seed=args.seed,
                         normalize=args.normalize, channels=args.channels))
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of the xlconv command."""
    p = argparse.ArgumentParser(prog="xlconv", description="Excel workbooks with live formulas for teaching CNNs.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write one .xlsx per worksheet spec")
    b.add_argument("specs", nargs="*", metavar="SPEC", help="spec file or built-in name (default: all built-ins)")
    b.add_argument("-o", "--output", default="build", metavar="DIR", help="output folder (default: build)")
    b.set_defaults(func=_build)
    v = sub.add_parser("verify", help="recalculate workbooks in a real engine and check every cell")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--engine", choices=("libreoffice", "gnumeric"), default="libreoffice")
    v.add_argument("--tolerance", type=float, default=None,
                   help="largest accepted absolute difference (default: the workbook's own, 1e-6 for toy sheets)")
    v.add_argument("--timeout", type=float, default=600, help="seconds the engine may take (default: 600)")
    v.set_defaults(func=_verify)
    a = sub.add_parser("alexnet", help="the lecture's AlexNet: pre-processing, conv1 filters, live conv1/ReLU/pool "
                                       "maps, shapes and predictions in one workbook")
    a.add_argument("--image", default=None, metavar="PATH",
                   help="a photo Pillow can read (default: matplotlib's grace_hopper.jpg)")
    a.add_argument("--weights", default="pretrained", metavar="pretrained|random|PATH",
                   help="AlexNet_Weights.IMAGENET1K_V1 from the torch cache or the internet (default), an untrained "
                        "network seeded by --seed, or a state_dict file")
    a.add_argument("--seed", type=int, default=0, metavar="N", help="seed of --weights random (default: 0)")
    a.add_argument("--normalize", choices=("lecture", "imagenet"), default="lecture",
                   help="the lecture's mean=std=0.5 (default) or the weights' ImageNet mean and std")
    a.add_argument("--channels", default="0-63", metavar="0-63",
                   help="conv1 channels to build live maps for, e.g. 0-63 (default), 0-7 or 0,5,9-12")
    a.add_argument("-o", "--output", default="build/alexnet-conv1.xlsx", metavar="FILE",
                   help="output file (default: build/alexnet-conv1.xlsx)")
    a.set_defaults(func=_alexnet)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; XlconvError becomes one line on stderr and exit status 2."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except XlconvError as e:
        print(f"xlconv: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
