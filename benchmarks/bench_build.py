"""Benchmark: `xlconv build` of the shipped toy worksheets, side by side with baselines in the same run.

Each command runs in a fresh process, interleaved round by round so that machine noise hits all
of them alike; the table gives medians and ratios to the bare interpreter start.

    .venv/bin/python benchmarks/bench_build.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

TOY = ["lee-6x6", "velickovic-7x7", "convolved-feature-5x5", "edge-laplacian", "output-size"]


def commands(out: str) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass (interpreter start)": [py, "-c", "pass"],
        "import xlconv.cli": [py, "-c", "import xlconv.cli"],
        "import torch, torchvision (what lazy import avoids)": [py, "-c", "import torch, torchvision"],
        "xlconv build (5 toy worksheets)": [py, "-m", "xlconv", "build", *TOY, "-o", out],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cmds = commands(out)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                t = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t)
    base = statistics.median(times["python -c pass (interpreter start)"])
    print(f"| command | median s ({args.rounds} runs) | x interpreter start |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m:.3f} | {m / base:.1f} |")
    build = statistics.median(times["xlconv build (5 toy worksheets)"])
    imp = statistics.median(times["import xlconv.cli"])
    print(f"\nwork of the build itself (build - import): {build - imp:.3f} s")


if __name__ == "__main__":
    main()
