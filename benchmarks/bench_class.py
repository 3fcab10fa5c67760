"""Benchmark: a class of hundreds. `xlconv exercise` for a roster and `xlconv grade` of the returned files,
side by side with the code of another git revision, in one run.

    .venv/bin/python benchmarks/bench_class.py [--rounds 3] [--students 300] [--against 4d88b85] [--big 10000]

The returned files are made once, with this tree: `xlconv exercise` for the roster, then every student's
workbook filled with the right answers by openpyxl (as a script or an online tool saves: values, no formulas)
except every tenth, which is filled and then saved by LibreOffice (as a student's spreadsheet saves it). Each
timed command runs in a fresh process, this tree's and REV's interleaved round by round so that machine noise
hits both alike; the table gives medians, rates and ratios. The machine's load (`uptime`) is printed before and
after: on a shared machine the ratios, not the absolute figures, are what one run can tell. --big N also makes
one exercise of N students with this tree, timed once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, load, worktree  # benchmarks/common.py, beside this script

SPEC = "lee-6x6"
SEED = 12




def roster(path: Path, n: int) -> Path:
    path.write_text("student_id,name\n" + "".join(f"s{i:05d},Student {i}\n" for i in range(n)), encoding="utf-8")
    return path




def returned_files(ex: Path, out: Path) -> list[Path]:
    """Every student's workbook with the right answers typed in; every tenth saved again by LibreOffice."""
    sys.path.insert(0, str(ROOT))
    from openpyxl import load_workbook

    from xlconv.engine import recalculate
    from xlconv.grade import load_key

    key = load_key(ex)
    out.mkdir(parents=True)
    files, through_lo = [], []
    for n, (sid, v) in enumerate(sorted(key.variants.items())):
        wb = load_workbook(ex / v["student_file"])
        ws = wb[key.sheet]
        right = key.expected(sid)
        for rec in key.answers:
            for c, g in enumerate(rec.grids):
                for i in range(g.height):
                    for j in range(g.width):
                        ws.cell(g.top + i + 1, g.left + j + 1).value = float(right[rec.name][c, i, j])
        dest = out / f"{sid}.xlsx"
        wb.save(dest)
        files.append(dest)
        if n % 10 == 9:
            through_lo.append(dest)
    if through_lo:
        for src, saved in zip(through_lo, recalculate(through_lo, out.parent / "lo", timeout=600)):
            shutil.move(saved, src)
    return files


def run(cmd: list[str], env: dict[str, str]) -> float:
    # Run from a neutral folder: `python -m` puts the working folder first on sys.path, ahead of PYTHONPATH,
    # so running from this tree would time this tree's code twice.
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--students", type=int, default=300)
    ap.add_argument("--against", metavar="REV", help="also time the code of this git revision, interleaved")
    ap.add_argument("--big", type=int, default=10_000, metavar="N", help="one exercise of N students (0: none)")
    args = ap.parse_args()
    py = sys.executable
    here = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"before: {load()}; {args.students} students, {args.rounds} rounds")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xlconv-class-")))
        trees = {"this tree": here}
        if args.against:
            base = stack.enter_context(worktree(args.against))
            trees[args.against] = {**os.environ, "PYTHONPATH": str(base)}
        # Each tree's modules compiled to bytecode first, as pip does when it installs the wheel: without it (this
        # machine sets PYTHONDONTWRITEBYTECODE) every run would compile xlconv's sources again, some 0.3 s.
        for env in trees.values():
            subprocess.run([py, "-m", "compileall", "-q", str(Path(env["PYTHONPATH"]) / "xlconv")], check=True)
        print("bytecode compiled in both trees (as an installed wheel has it)")
        r = roster(tmp / "roster.csv", args.students)
        run([py, "-m", "xlconv", "exercise", SPEC, "--seed", str(SEED), "--roster", str(r), "-o", str(tmp / "key"),
             "-q"], here)
        t = time.perf_counter()
        files = returned_files(tmp / "key", tmp / "returned")
        print(f"made {len(files)} returned files in {time.perf_counter() - t:.0f} s "
              f"({len(files) // 10} saved by LibreOffice)")
        times: dict[tuple[str, str], list[float]] = {}
        for k in range(args.rounds):
            for name, env in trees.items():
                out = tmp / f"ex-{k}-{len(times)}"
                times.setdefault(("exercise", name), []).append(run(
                    [py, "-m", "xlconv", "exercise", SPEC, "--seed", str(SEED), "--roster", str(r), "-o", str(out),
                     "-q"], env))
                shutil.rmtree(out)
                gb = tmp / f"gradebook-{name.replace(' ', '-')}.csv"
                times.setdefault(("grade", name), []).append(run(
                    [py, "-m", "xlconv", "grade", str(tmp / "returned"), "--key", str(tmp / "key"), "-o", str(gb),
                     "-q"], env))
        books = {name: (tmp / f"gradebook-{name.replace(' ', '-')}.csv").read_bytes() for name in trees}
        versions = {name: subprocess.run([py, "-c", "import xlconv.parallel"], env=env, cwd=tempfile.gettempdir(),
                                         capture_output=True).returncode == 0 for name, env in trees.items()}
        print(f"has xlconv.parallel (the new code): {versions}")
        print(f"after: {load()}")
        print(f"\n| command | tree | median s ({args.rounds} runs) | rate | this tree / {args.against or '-'} |")
        print("|---|---|---:|---:|---:|")
        for what, n, unit in (("exercise", args.students, "variants/s"), ("grade", len(files), "files/s")):
            for name in trees:
                m = statistics.median(times[(what, name)])
                ratio = ""
                if args.against and name == "this tree":
                    ratio = f"{statistics.median(times[(what, args.against)]) / m:.1f}x faster"
                print(f"| {what} ({n}) | {name} | {m:.2f} | {n / m:.1f} {unit} | {ratio} |")
        if args.against:
            same = books["this tree"] == books[args.against]
            print(f"\ngradebooks of both trees identical: {'yes' if same else 'NO'}")
        if args.big:
            big = roster(tmp / "big.csv", args.big)
            print(f"\nbefore the {args.big:,}-student exercise: {load()}")
            s = run([py, "-m", "xlconv", "exercise", SPEC, "--seed", str(SEED), "--roster", str(big), "-o",
                     str(tmp / "big"), "-q"], here)
            print(f"exercise of {args.big:,} students (this tree, once): {s:.0f} s, {args.big / s:.1f} variants/s; "
                  f"after: {load()}")


if __name__ == "__main__":
    main()
