"""Benchmark: `xlconv build` of the shipped toy worksheets, side by side with baselines in the same run.

Each command runs in a fresh process, interleaved round by round so that machine noise hits all
of them alike; the table gives medians and ratios to the bare interpreter start.

    .venv/bin/python benchmarks/bench_build.py [--rounds 7] [--against REV]

--against REV also runs the import and the build with the code of git revision REV (checked out into a
temporary worktree and put first on PYTHONPATH), interleaved with this tree's, so that a change's effect
on speed is measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import worktree  # benchmarks/common.py, beside this script


TOY = ["lee-6x6", "velickovic-7x7", "convolved-feature-5x5", "edge-laplacian", "output-size"]


Command = tuple[list[str], dict[str, str] | None]


def commands(out: str, baseline: Path | None = None, rev: str = "") -> dict[str, Command]:
    py = sys.executable
    cmds: dict[str, Command] = {
        "python -c pass (interpreter start)": ([py, "-c", "pass"], None),
        "import xlconv.cli": ([py, "-c", "import xlconv.cli"], None),
        "import torch, torchvision (what lazy import avoids)": ([py, "-c", "import torch, torchvision"], None),
        "xlconv build (5 toy worksheets)": ([py, "-m", "xlconv", "build", *TOY, "-o", out], None),
    }
    if baseline is not None:
        env = {**os.environ, "PYTHONPATH": str(baseline)}
        cmds[f"import xlconv.cli at {rev}"] = ([py, "-c", "import xlconv.cli"], env)
        cmds[f"xlconv build (5 toy worksheets) at {rev}"] = (
            [py, "-m", "xlconv", "build", *TOY, "-o", out + "-base"], env)
    return cmds




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--against", metavar="REV", help="also time the code of this git revision, interleaved")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(tempfile.TemporaryDirectory())
        base = stack.enter_context(worktree(args.against)) if args.against else None
        cmds = commands(out, base, args.against or "")
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.rounds):
            for name, (cmd, env) in cmds.items():
                t = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
                times[name].append(time.perf_counter() - t)
    start = statistics.median(times["python -c pass (interpreter start)"])
    print(f"| command | median s ({args.rounds} runs) | x interpreter start |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m:.3f} | {m / start:.1f} |")
    build = statistics.median(times["xlconv build (5 toy worksheets)"])
    imp = statistics.median(times["import xlconv.cli"])
    print(f"\nwork of the build itself (build - import): {build - imp:.3f} s")
    if args.against:
        old = statistics.median(times[f"xlconv build (5 toy worksheets) at {args.against}"])
        print(f"build: this tree / {args.against} = {build / old:.2f}")


if __name__ == "__main__":
    main()
