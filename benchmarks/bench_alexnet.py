#!/usr/bin/env python3
"""Speed and size of the default AlexNet workbook (all 64 channels), side by side with what bounds it.

    python benchmarks/bench_alexnet.py [--runs 3] [--weights random|pretrained|PATH] [--xlsxwriter-api]
                                       [--markdown benchmarks/RESULTS-alexnet.md]

Every measurement runs in a fresh Python process, --runs times; the table gives medians. Peak memory is the
child's maximum resident set size (os.wait4). Rows:

  (a)  baseline: import torch, torchvision; load AlexNet; one forward pass on a 224x224 photo
  build: `xlconv alexnet` writing the whole workbook (includes everything (a) does)
  build, split: the same in one process, timing the torch part and the workbook writing separately
  (b)  the same cells (the photo's pixels, the weights and the conv1 sheet, ~920,000 numbers and formulas)
       written by openpyxl's write-only mode from NumPy arrays (openpyxl cannot store cached formula values;
       XlsxWriter's public write_formula can, see --xlsxwriter-api, but runs ~40 regular expressions per formula)
  (c)  floor: zlib level 6 over the workbook's XML parts (what any .xlsx writer must at least spend)
  LibreOffice: xlconv.engine.recalculate (load, recalculate everything, save), one soffice process
  xlconv verify: the whole check of the workbook (LibreOffice included), for reference

Targets (2 cores): build <= (a) + 3 s, peak memory <= (a) + 300 MB, file < 15 MB, LibreOffice < 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

BASELINE = r"""
import sys, torch, torchvision
from torchvision.models import alexnet, AlexNet_Weights
from xlconv.torchnet import preprocess
weights = sys.argv[1]
if weights == "random":
    torch.manual_seed(0)
    model = alexnet(weights=None)
elif weights == "pretrained":
    model = alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)
else:
    model = alexnet(weights=None)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
model.eval()
x = torch.from_numpy(preprocess(None).tensor)[None]
with torch.no_grad():
    model(x)
"""

SPLIT = r"""
import json, sys, time
t0 = time.perf_counter()
from xlconv import torchnet
from xlconv.sheets import alexnet as sheets
data = torchnet.run(weights=sys.argv[1], channels=sys.argv[3])
t1 = time.perf_counter()
sheets.write(data, sys.argv[2])
t2 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "write": t2 - t1}))
"""

# The same cells as the conv1 sheet and the Filters weights, from NumPy arrays, with another writer.
OTHER_WRITER = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
writer, npz, out = sys.argv[1], sys.argv[2], sys.argv[3]
z = np.load(npz)
from xlconv.sheets.alexnet import Layout
from xlconv.sheets.alexnet.layout import MAPS_PER_BAND
from xlconv.torchnet import Geometry, Run
from xlsxwriter.utility import xl_col_to_name
chans = tuple(int(c) for c in z["channels"])
geo = Geometry(*(int(v) for v in z["geometry"]))  # the model's conv1 and pooling, saved with the arrays
K, STRIDE, PADDING, SIZE = geo.kernel, geo.stride, geo.padding, geo.size
POOL_K, POOL_S, PADDED, CONV, POOLED = geo.pool_kernel, geo.pool_stride, geo.padded, geo.conv, geo.pooled
L = Layout(Run(None, None, chans, geo, z["weight"], z["bias"], None, None, None, [], [], "", 0))
n = len(chans)
width = max(L.in_left + PADDED, L.maps_area("conv").right + 1, L.raw_grid(0).right + 1)
col = [xl_col_to_name(c) for c in range(width + 40)]
padded = np.zeros((3, PADDED, PADDED))
padded[:, PADDING:PADDING + SIZE, PADDING:PADDING + SIZE] = z["x"]
pixels = z["pixels"]

def pre_rows():
    for c in range(3):
        g = L.raw_grid(c)
        for i in range(SIZE):
            yield g.top + i, {g.left + j: float(pixels[i, j, c]) for j in range(SIZE)}

def conv1_rows():
    pre = "'Preprocess'!"
    for c in range(3):
        g, raw = L.input_grid(c), L.raw_grid(c)
        mean, std = (pre + L.pre_param(w, c).cell(0, 0, absolute=True) for w in ("mean", "std"))
        for i in range(PADDED):
            row = {}
            for j in range(PADDED):
                y, x = i - PADDING, j - PADDING
                if 0 <= y < SIZE and 0 <= x < SIZE:
                    f = f"=({pre}{col[raw.left + x]}{raw.top + y + 1}/255-{mean})/{std}"
                    row[g.left + j] = (f, float(padded[c, i, j]))
                else:
                    row[g.left + j] = 0.0
            yield g.top + i, row
    wsheet = "'Filters'!"
    for key, size, vals in (("conv", CONV, z["conv"]), ("relu", CONV, z["relu"]), ("pool", POOLED, z["pool"])):
        for band in range(L.bands):
            pos_list = range(band * MAPS_PER_BAND, min(n, (band + 1) * MAPS_PER_BAND))
            top = L.map_grid(key, pos_list[0]).top
            for y in range(size):
                row = {}
                for pos in pos_list:
                    g = L.map_grid(key, pos)
                    for x in range(size):
                        if key == "conv":
                            k = chans[pos]
                            terms = []
                            for c in range(3):
                                r0 = L.input_grid(c).top + STRIDE * y + 1
                                c0 = L.in_left + STRIDE * x
                                terms.append(f"SUMPRODUCT({col[c0]}{r0}:{col[c0 + K - 1]}{r0 + K - 1},"
                                             f"{wsheet}{L.filter_grid(k, c).ref(absolute=True)})")
                            f = "=" + "+".join(terms) + "+" + wsheet + L.bias_cell(k).cell(0, 0, absolute=True)
                        elif key == "relu":
                            s = L.map_grid("conv", pos)
                            f = f"=MAX(0,{col[s.left + x]}{s.top + y + 1})"
                        else:
                            s = L.map_grid("relu", pos)
                            r0 = s.top + POOL_S * y + 1
                            f = (f"=MAX({col[s.left + POOL_S * x]}{r0}:"
                                 f"{col[s.left + POOL_S * x + POOL_K - 1]}{r0 + POOL_K - 1})")
                        row[g.left + x] = (f, float(vals[pos, y, x]))
                yield top + y, row

def filter_rows():
    for k in range(len(z["weight"])):
        for i in range(K):
            row = {}
            for c in range(3):
                for j in range(K):
                    row[L.ch_left[c] + j] = float(z["weight"][k, c, i, j])
            if i == 0:
                row[L.bias_col] = float(z["bias"][k])
            yield L.num_top + k * L.num_band + 1 + i, row

t1 = time.perf_counter()
if writer == "openpyxl":
    from openpyxl import Workbook
    wb = Workbook(write_only=True)
    for name, rows in (("Preprocess", pre_rows()), ("Filters", filter_rows()), ("conv1", conv1_rows())):
        ws = wb.create_sheet(name)
        last = -1
        for r, cells in rows:
            for _ in range(r - last - 1):
                ws.append([])
            line = [None] * (max(cells) + 1)
            for c, v in cells.items():
                line[c] = v[0] if isinstance(v, tuple) else v
            ws.append(line)
            last = r
    wb.save(out)
else:
    import xlsxwriter
    wb = xlsxwriter.Workbook(out, {"constant_memory": True})
    for name, rows in (("Preprocess", pre_rows()), ("Filters", filter_rows()), ("conv1", conv1_rows())):
        ws = wb.add_worksheet(name)
        for r, cells in rows:
            for c in sorted(cells):
                v = cells[c]
                if isinstance(v, tuple):
                    ws.write_formula(r, c, v[0], None, v[1])
                else:
                    ws.write_number(r, c, v)
    wb.close()
t2 = time.perf_counter()
print(json.dumps({"setup": t1 - t0, "write": t2 - t1}))
"""

DEFLATE = r"""
import json, sys, time, zipfile, zlib
with zipfile.ZipFile(sys.argv[1]) as z:
    parts = [z.read(n) for n in z.namelist() if n.endswith(".xml") or n.endswith(".rels")]
t0 = time.perf_counter()
size = sum(len(zlib.compress(p, 6)) for p in parts)
t1 = time.perf_counter()
print(json.dumps({"deflate": t1 - t0, "raw": sum(len(p) for p in parts), "compressed": size}))
"""


def run(args: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS in MB of that process, stdout)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{err}")
    return wall, usage.ru_maxrss / 1024, text


def repeat(label: str, n: int, args: list[str], env: dict) -> dict:
    walls, rss, outs = [], [], []
    for i in range(n):
        w, m, out = run(args, env)
        walls.append(w)
        rss.append(m)
        outs.append(out)
        print(f"  {label} run {i + 1}/{n}: {w:.2f} s, {m:.0f} MB", file=sys.stderr, flush=True)
    return {"wall": statistics.median(walls), "rss": statistics.median(rss), "walls": walls, "outs": outs}


def median_json(outs: list[str], key: str) -> float:
    return statistics.median(json.loads(o.strip().splitlines()[-1])[key] for o in outs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--weights", default="random", help="random (default here: offline), pretrained or a file")
    p.add_argument("--channels", default="0-63")
    p.add_argument("--xlsxwriter-api", action="store_true",
                   help="also time XlsxWriter's public write_formula/write_number (slow: about a minute a run)")
    p.add_argument("--markdown", type=Path, help="also write the table to this file")
    a = p.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    n = a.runs
    rows = []
    with tempfile.TemporaryDirectory(prefix="xlconv-bench-") as tmp:
        tmp = Path(tmp)
        book = tmp / "alexnet-conv1.xlsx"
        print("(a) baseline", file=sys.stderr)
        base = repeat("(a)", n, [PY, "-c", BASELINE, a.weights], env)
        print("build", file=sys.stderr)
        build = repeat("build", n, [PY, "-m", "xlconv", "alexnet", "--weights", a.weights, "--channels", a.channels,
                                    "-o", str(book)], env)
        split = repeat("split", n, [PY, "-c", SPLIT, a.weights, str(tmp / "split.xlsx"), a.channels], env)
        size = book.stat().st_size / 1e6
        # Arrays for the other writers.
        npz = tmp / "arrays.npz"
        subprocess.run([PY, "-c", (
            "import dataclasses, sys, numpy as np\nfrom xlconv import torchnet\n"
            "d = torchnet.run(weights=sys.argv[1], channels=sys.argv[3])\n"
            "c = list(d.channels)\n"
            "np.savez(sys.argv[2], x=d.photo.tensor, pixels=d.photo.pixels, weight=d.weight, bias=d.bias, "
            "conv=d.conv[c], relu=d.relu[c], pool=d.pool[c], channels=np.array(c), geometry=np.array(dataclasses.astuple(d.geometry)))\n"),
            a.weights, str(npz), a.channels], check=True, cwd=ROOT, env=env)
        print("(b) openpyxl", file=sys.stderr)
        other = repeat("(b)", n, [PY, "-c", OTHER_WRITER, "openpyxl", str(npz), str(tmp / "openpyxl.xlsx")], env)
        other_size = (tmp / "openpyxl.xlsx").stat().st_size / 1e6
        api = None
        if a.xlsxwriter_api:
            api = repeat("(b2)", n, [PY, "-c", OTHER_WRITER, "xlsxwriter", str(npz), str(tmp / "xw.xlsx")], env)
            api_size = (tmp / "xw.xlsx").stat().st_size / 1e6
        print("(c) deflate", file=sys.stderr)
        deflate = repeat("(c)", n, [PY, "-c", DEFLATE, str(book)], env)
        info = json.loads(deflate["outs"][0])
        print("LibreOffice", file=sys.stderr)
        lo = []
        sys.path.insert(0, str(ROOT))
        from xlconv.engine import recalculate

        for i in range(n):
            t0 = time.perf_counter()
            recalculate([book], tmp / f"lo{i}", timeout=900)
            lo.append(time.perf_counter() - t0)
            print(f"  LibreOffice run {i + 1}/{n}: {lo[-1]:.2f} s", file=sys.stderr, flush=True)
        counts = cell_counts(book)
        print("xlconv verify", file=sys.stderr)
        ver = repeat("verify", n, [PY, "-m", "xlconv", "verify", str(book)], env)

    def ratio(x):
        return f"{x / base['wall']:.2f}x"

    torch_part, write_part = median_json(split["outs"], "torch"), median_json(split["outs"], "write")
    other_write = median_json(other["outs"], "write")
    rows.append(("(a) import torch, torchvision + load AlexNet + one forward pass", f"{base['wall']:.2f}",
                 f"{base['rss']:.0f}", "1.00x", ""))
    rows.append(("**build**: `xlconv alexnet` (default workbook, all channels)", f"**{build['wall']:.2f}**",
                 f"**{build['rss']:.0f}**", ratio(build["wall"]), f"**{size:.2f}**"))
    rows.append(("  of which: torch part (weights, photo, conv1/ReLU/pool, shapes, top-5)", f"{torch_part:.2f}", "",
                 "", ""))
    rows.append(("  of which: writing the workbook (Book + RowStream, zip included)", f"{write_part:.2f}", "", "",
                 ""))
    rows.append(("(b) the same pixel + weight + conv1 cells by openpyxl write-only (no cached values)",
                 f"{other['wall']:.2f} (writing {other_write:.2f})", f"{other['rss']:.0f}", ratio(other["wall"]),
                 f"{other_size:.2f}"))
    if api:
        rows.append(("(b2) the same cells by XlsxWriter's public API, constant_memory",
                     f"{api['wall']:.2f} (writing {median_json(api['outs'], 'write'):.2f})", f"{api['rss']:.0f}",
                     ratio(api["wall"]), f"{api_size:.2f}"))
    rows.append(("(c) floor: zlib level 6 of the workbook's XML parts", f"{median_json(deflate['outs'], 'deflate'):.2f}",
                 "", "", f"{info['compressed'] / 1e6:.2f} (of {info['raw'] / 1e6:.0f} MB XML)"))
    rows.append(("LibreOffice: recalculate the whole workbook (xlconv.engine.recalculate)",
                 f"{statistics.median(lo):.2f}", "", "", ""))
    rows.append(("`xlconv verify`: LibreOffice, then every recorded block re-read (openpyxl) and recomputed by "
                 "NumPy and torch", f"{ver['wall']:.2f}", f"{ver['rss']:.0f}", "", ""))
    d_time, d_mem = build["wall"] - base["wall"], build["rss"] - base["rss"]
    lines = [
        "# AlexNet workbook: speed and size\n",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}; weights: {a.weights}; channels: {a.channels}; medians of {n} runs, each in a fresh "
        f"process.\n",
        f"Cells: {counts['conv']:,} conv formulas, {counts['relu']:,} ReLU, {counts['pool']:,} pool, "
        f"{counts['input']:,} input cells ({counts['normalize']:,} of them (pixel/255 - mean)/std formulas), "
        f"{counts['pixels']:,} typed pixels, {counts['weights']:,} weights and biases.\n",
        "| measurement | wall time (s) | peak RSS (MB) | time vs (a) | file (MB) |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        "Targets:",
        f"- build - (a) = {d_time:+.2f} s (target <= 3 s): {'met' if d_time <= 3 else 'MISSED'}",
        f"- peak memory build - (a) = {d_mem:+.0f} MB (target <= 300 MB): {'met' if d_mem <= 300 else 'MISSED'}",
        f"- file {size:.2f} MB (target < 15 MB): {'met' if size < 15 else 'MISSED'}",
        f"- LibreOffice {statistics.median(lo):.2f} s (target < 30 s): "
        f"{'met' if statistics.median(lo) < 30 else 'MISSED'}",
        "",
        f"All runs (s): (a) {fmt(base['walls'])}; build {fmt(build['walls'])}; (b) {fmt(other['walls'])}; "
        f"LibreOffice {fmt(lo)}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    return 0


def fmt(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def cell_counts(book: Path) -> dict[str, int]:
    """Cells of each kind, from the workbook's own block records."""
    sys.path.insert(0, str(ROOT))
    from xlconv.verify import read_records

    recs = {r.name: r for r in read_records(book)[0]}

    def cells(name):
        return sum(g.height * g.width for g in recs[name].grids)

    return {"conv": cells("conv1"), "relu": cells("relu1"), "pool": cells("pool1"), "input": cells("conv1_input"),
            "normalize": cells("conv1_normalized"), "pixels": cells("pre_raw"),
            "weights": sum(cells(n) for n in recs if n.startswith("conv1_w")) + 64}


if __name__ == "__main__":
    sys.exit(main())
