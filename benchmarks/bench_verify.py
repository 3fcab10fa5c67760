"""Benchmark: `xlconv verify` of the default AlexNet workbook, side by side with LibreOffice's own recalculation.

Every measurement runs in a fresh process, interleaved round by round so that the noise of a shared machine hits
all of them alike; the table gives medians and ratios, and the load average before and after.

    .venv/bin/python benchmarks/bench_verify.py [--rounds 3] [--channels 0-63] [--against REV] [--workbook FILE]

Rows:

* LibreOffice's recalculation alone: ``xlconv.engine.recalculate`` (the poisoned copy, soffice, the canary
  check), timed inside its process, so the interpreter start is not counted against it;
* ``xlconv verify -q`` (this tree), wall clock of the whole command;
* reading the recalculated workbook's values: this tree's reader (python-calamine in a child process), and
  openpyxl in read-only mode as verify read them before (every row of every recorded sheet);
* with ``--against REV``: ``xlconv verify -q`` with the code of git revision REV (a temporary worktree first on
  PYTHONPATH), e.g. the commit before the fast reader, as the same-run baseline.

The target of issue 12: verify <= LibreOffice's recalculation + 3 s.
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

from common import ROOT, load, worktree  # benchmarks/common.py, beside this script


RECALC = """
import sys, time, tempfile
from xlconv.engine import recalculate
with tempfile.TemporaryDirectory() as out:
    t = time.perf_counter()
    recalculate([sys.argv[1]], out)
    print(time.perf_counter() - t)
"""

# verify itself, with its own LibreOffice run timed inside it: the pair (whole command, soffice) comes from one
# run, so the overhead is measured without the engine's run-to-run noise (seconds on this machine).
VERIFY_PAIRED = """
import json, sys, time
t0 = time.perf_counter()
import xlconv.engine
import xlconv.verify
engine, verify = sys.modules["xlconv.engine"], sys.modules["xlconv.verify"]  # the package's names are functions
spent = {"soffice": 0.0, "recalculate": 0.0}
def timed(key, f):
    def g(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            spent[key] += time.perf_counter() - t
    return g
engine._run = timed("soffice", engine._run)
verify.recalculate = timed("recalculate", verify.recalculate)
import xlconv.cli as cli
real_main = cli.main
def main_then_report(argv=None):
    status = real_main(["verify", "-q", sys.argv[1]])
    print(json.dumps(spent), flush=True)
    return status
cli.main = main_then_report
cli.run()  # as the xlconv command ends: its exit is part of what the user waits for
"""

READ_NEW = """
import sys, time
from xlconv.verify import read_records
from xlconv.xlsxread import read_values
blocks, _ = read_records(sys.argv[2])
t = time.perf_counter()
read_values(sys.argv[1], sorted({b.sheet for b in blocks}))
print(time.perf_counter() - t)
"""

READ_OLD = """
import sys, time
from xlconv.verify import read_records
from xlconv.xlsxread import open_workbook
blocks, _ = read_records(sys.argv[2])
t = time.perf_counter()
wb = open_workbook(sys.argv[1])
for name in sorted({b.sheet for b in blocks}):
    rows = list(wb[name].iter_rows(values_only=True))
wb.close()
print(time.perf_counter() - t)
"""






def run(cmd: list[str], env: dict[str, str], inner: bool) -> float:
    """Seconds a fresh process takes (its own report of the timed part when inner)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1) or (inner and proc.returncode != 0):
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if "verify" in cmd and proc.returncode != 0:
        raise SystemExit(f"verify reported a failure: {proc.stdout[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1]) if inner else wall


def run_paired(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds of a verify process, and the seconds it spent in soffice and in engine.recalculate."""
    import json

    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"verify failed ({proc.returncode}): {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    spent = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, spent["soffice"], spent["recalculate"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--channels", default="0-63", help="conv1 channels of the workbook (default: all 64)")
    ap.add_argument("--workbook", type=Path, help="verify this workbook instead of building one")
    ap.add_argument("--against", metavar="REV", help="also time verify at this git revision, interleaved")
    args = ap.parse_args()
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"start: {load()}", flush=True)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xlconv-bench-verify-")))
        book = args.workbook
        if book is None:
            book = tmp / "alexnet.xlsx"
            subprocess.run([py, "-m", "xlconv", "alexnet", "--weights", "random", "--channels", args.channels,
                            "-q", "-o", str(book)], env=env, check=True, stdout=subprocess.DEVNULL)
        size = book.stat().st_size / 2**20
        recalculated = tmp / "recalculated"
        subprocess.run([py, "-c", "import sys; from xlconv.engine import recalculate; "
                        "recalculate([sys.argv[1]], sys.argv[2])", str(book), str(recalculated)], env=env, check=True)
        out = next(recalculated.glob("*.xlsx"))
        cmds: dict[str, tuple[list[str], dict[str, str], bool]] = {
            "LibreOffice recalculation alone (engine.recalculate)": ([py, "-c", RECALC, str(book)], env, True),
            "xlconv verify (this tree)": ([py, "-m", "xlconv", "verify", "-q", str(book)], env, False),
            "read values: python-calamine child (this tree)": ([py, "-c", READ_NEW, str(out), str(book)], env, True),
            "read values: openpyxl read-only (the old reader)": ([py, "-c", READ_OLD, str(out), str(book)], env,
                                                                 True),
        }
        if args.against:
            base = stack.enter_context(worktree(args.against))
            old_env = {**os.environ, "PYTHONPATH": str(base)}
            cmds[f"xlconv verify at {args.against}"] = ([py, "-m", "xlconv", "verify", str(book)], old_env, False)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        paired: list[tuple[float, float, float]] = []  # (whole verify command, its soffice run, its recalculate)
        for r in range(args.rounds):
            for name, (cmd, cmd_env, inner) in cmds.items():
                times[name].append(run(cmd, cmd_env, inner))
                print(f"round {r + 1}: {name}: {times[name][-1]:.2f} s ({load()})", file=sys.stderr, flush=True)
            paired.append(run_paired([py, "-c", VERIFY_PAIRED, str(book)], env))
            print(f"round {r + 1}: verify {paired[-1][0]:.2f} s, of which soffice {paired[-1][1]:.2f} s "
                  f"({load()})", file=sys.stderr, flush=True)
    recalc = statistics.median(times["LibreOffice recalculation alone (engine.recalculate)"])
    what = args.workbook or f"xlconv alexnet --weights random --channels {args.channels}"
    print(f"\nworkbook: {what}, {size:.2f} MB")
    print(f"| measurement | median s ({args.rounds} runs) | min s | max s | x recalculation | - recalculation s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m:.2f} | {min(ts):.2f} | {max(ts):.2f} | {m / recalc:.2f} | {m - recalc:+.2f} |")
    verify = statistics.median(times["xlconv verify (this tree)"])
    print(f"\nverify - recalculation: {verify - recalc:+.2f} s (medians of separate runs; target: <= +3 s)")
    over_soffice = statistics.median(w - s for w, s, _ in paired)
    over_recalc = statistics.median(w - r for w, _, r in paired)
    print(f"verify - its own soffice run, paired in one process: {over_soffice:+.2f} s median "
          f"(runs: {', '.join(f'{w - s:+.2f}' for w, s, _ in paired)}; soffice median "
          f"{statistics.median(s for _, s, _ in paired):.2f} s)")
    print(f"verify - its own engine.recalculate (copy, soffice, canary), paired: {over_recalc:+.2f} s median")
    if args.against:
        old = statistics.median(times[f"xlconv verify at {args.against}"])
        print(f"verify: this tree / {args.against} = {verify / old:.2f} ({old - verify:.2f} s saved)")
    new_read = statistics.median(times["read values: python-calamine child (this tree)"])
    old_read = statistics.median(times["read values: openpyxl read-only (the old reader)"])
    print(f"reading values: openpyxl / calamine = {old_read / new_read:.1f}")
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
