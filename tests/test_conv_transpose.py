"""Transposed convolution (F.conv_transpose2d) drawn as it is taught, and the conv-arithmetic worksheet: every cell
agrees with torch after LibreOffice and Gnumeric recalculate; random shapes and parameters agree too; bad specs are
one line; the worksheet's exercise grades right."""

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from blocks import block, records
from cli_helpers import refused_spec
from conftest import recalculated_values
from exercise_helpers import fill, save_through_libreoffice, write_roster
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

import xlconv
from xlconv import reference as ref
from xlconv.builtins import builtin_dir
from xlconv.cells import parse_a1, parse_range
from xlconv.exercise import exercise
from xlconv.formulas import CHECK_RIGHT, CHECK_WRONG
from xlconv.grade import grade, load_key
from xlconv.model import ConvTranspose, Relu
from xlconv.verify import read_records

SPEC = builtin_dir() / "conv-arithmetic.toml"

# Dumoulin & Visin's cases: (op, kind, input grid or op, H_in, kernel, stride, padding, output_padding, dilation, H_out)
GUIDE = [
    ("nopad", "conv", "input4", 4, 3, 1, 0, 0, 1, 2),       # no zero padding, unit strides: o = i - k + 1
    ("nopadT", "transpose", "nopad", 2, 3, 1, 0, 0, 1, 4),  # ... transposed: a full-padding convolution
    ("arbpad", "conv", "input5", 5, 4, 1, 2, 0, 1, 6),      # arbitrary padding: o = i - k + 2p + 1
    ("arbpadT", "transpose", "arbpad", 6, 4, 1, 2, 0, 1, 5),
    ("half", "conv", "input5", 5, 3, 1, 1, 0, 1, 5),        # half (same) padding: o = i
    ("halfT", "transpose", "half", 5, 3, 1, 1, 0, 1, 5),
    ("full", "conv", "input5", 5, 3, 1, 2, 0, 1, 7),        # full padding: o = i + k - 1
    ("fullT", "transpose", "full", 7, 3, 1, 2, 0, 1, 5),    # ... transposed: no padding
    ("strided", "conv", "input5", 5, 3, 2, 0, 0, 1, 2),     # non-unit strides: o = floor((i - k)/s) + 1
    ("stridedT", "transpose", "strided", 2, 3, 2, 0, 0, 1, 5),
    ("oddsize", "conv", "input6", 6, 3, 2, 0, 0, 1, 2),     # the last row and column are never read
    ("oddsizeT", "transpose", "oddsize", 2, 3, 2, 0, 1, 1, 6),  # output_padding a = (i + 2p - k) mod s = 1
    ("dilated", "conv", "input7", 7, 3, 1, 0, 0, 2, 3),     # dilation: o = i - d(k - 1)
    ("dilatedT", "transpose", "dilated", 3, 3, 1, 0, 0, 2, 7),
]
THE_GUIDES_FIGURE = [[12, 12, 17], [10, 17, 19], [9, 6, 14]]  # its 5x5 input and 3x3 kernel, no padding


def torch_maps():
    """Every block of the worksheet straight from the spec's numbers by torch.nn.functional (no xlconv code)."""
    doc = tomllib.loads(SPEC.read_text())
    t = {n: torch.tensor(g["values"], dtype=torch.float64)[None, None] for n, g in doc["grids"].items()}
    for op in doc["conv"]:
        t[op["name"]] = F.conv2d(t[op["input"]], t[op["weight"]], stride=op.get("stride", 1),
                                 padding=op.get("padding", 0), dilation=op.get("dilation", 1))
    for op in doc["conv_transpose"]:
        t[op["name"]] = F.conv_transpose2d(t[op["input"]], t[op["weight"]], stride=op.get("stride", 1),
                                           padding=op.get("padding", 0), output_padding=op.get("output_padding", 0),
                                           dilation=op.get("dilation", 1))
    return {n: v[0].numpy() for n, v in t.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return xlconv.build("conv-arithmetic", tmp_path_factory.mktemp("arith"))


@pytest.fixture(scope="module", params=["libreoffice", "gnumeric"])
def recalculated(request, built):
    if request.param == "gnumeric":
        request.applymarker(pytest.mark.gnumeric)
    else:
        request.applymarker(pytest.mark.libreoffice)
    [wb] = recalculated_values([built], request.param)
    return wb


@pytest.mark.libreoffice
@pytest.mark.parametrize("name, kind, source, h_in, k, s, p, op, d, h_out", GUIDE, ids=[g[0] for g in GUIDE])
def test_the_guides_cases_agree_with_torch_after_recalculation(recalculated, name, kind, source, h_in, k, s, p, op,
                                                               d, h_out):
    expected = torch_maps()[name]
    got = block(recalculated, name)
    assert got.shape == expected.shape == (1, h_out, h_out)
    np.testing.assert_array_equal(got, expected)
    assert block(recalculated, source).shape[1:] == (h_in, h_in)
    # the live size line says the same
    size = block(recalculated, f"{name}_size_h").ravel()
    if kind == "transpose":
        assert size.tolist() == [h_in, k, s, p, op, d, h_out]
        assert h_out == (h_in - 1) * s - 2 * p + d * (k - 1) + op + 1
        conv = next(g for g in GUIDE if g[0] == source)
        assert h_out == conv[3], "the transposed convolution maps the output size back to the input size"
    else:
        assert size.tolist() == [h_in, k, s, p, d, h_out]
    # the step-by-step panel adds up to the cell it picks
    filt, row, col, total, chosen = block(recalculated, f"{name}_trace").ravel()
    assert total == chosen == got[int(filt) - 1, int(row) - 1, int(col) - 1]


@pytest.mark.libreoffice
def test_the_guides_own_numbers(recalculated):
    # The middle 3x3 of the half- and full-padding maps is the guide's first figure.
    np.testing.assert_array_equal(block(recalculated, "half")[0, 1:4, 1:4], THE_GUIDES_FIGURE)
    np.testing.assert_array_equal(block(recalculated, "full")[0, 2:5, 2:5], THE_GUIDES_FIGURE)


@pytest.mark.libreoffice
@pytest.mark.parametrize("engine", ["libreoffice", pytest.param("gnumeric", marks=pytest.mark.gnumeric)])
def test_verify_checks_every_cell_of_the_worksheet(built, engine):
    [report] = xlconv.verify([built], engine=engine)
    assert report.ok, "\n".join(report.lines())
    kinds = {role for _, (_, _, _, role) in records(load_workbook(built)).items()}
    assert {"spread", "flipped", "trace", "size", "output"} <= kinds


def test_laid_out_as_taught(built):
    """The spread input copies the input (=cell) among typed zeros; the flipped kernel points at the original cells
    in reverse order; the output cells are SUMPRODUCTs of the spread input and the flipped kernel; a live size."""
    wb = load_workbook(built)
    recs = records(wb)
    ws = wb[recs["stridedT"][0]]

    def cells(name):
        _, grids, _, _ = recs[name]
        g = grids[0]
        return g, [[ws.cell(g.top + i + 1, g.left + j + 1).value for j in range(g.width)] for i in range(g.height)]

    src, _ = cells("strided")
    g, spread = cells("stridedT_spread")
    assert (g.height, g.width) == (7, 7)  # 2x2 with 1 zero between (3x3) and 2 zeros around
    for i in range(7):
        for j in range(7):
            if i in (2, 4) and j in (2, 4):
                assert spread[i][j] == "=" + src.window((i - 2) // 2, (j - 2) // 2, 1, 1).ref(), (i, j)
            else:
                assert spread[i][j] == 0, (i, j)  # typed, not a formula
    kg, _ = cells("kernel3")
    fg, flipped = cells("stridedT_kernel3_flipped")
    for i in range(3):
        for j in range(3):
            assert flipped[i][j] == "=" + kg.window(2 - i, 2 - j, 1, 1).ref()
    og, out = cells("stridedT")
    assert out[0][0] == f"=SUMPRODUCT({g.window(0, 0, 3, 3).ref()},{fg.ref(absolute=True)})"
    # the dilated case spreads the flipped kernel with zeros between its taps
    _, dil = cells("dilatedT_kernel3_flipped")
    assert [row[1] for row in dil] == ["=0"] * 5 and dil[0][0] == "=" + kg.window(2, 2, 1, 1).ref()
    # output_padding: one more row and column of zeros at the bottom and right
    _, odd = cells("oddsizeT_spread")
    assert len(odd) == 8 and odd[-1] == [0] * 8 and odd[-2] == [0] * 8
    # the size line is live: (H_in - 1)s - 2p + d(k - 1) + output_padding + 1
    size = [ws.cell(c.top + 1, c.left + 1).value for c in recs["oddsizeT_size_h"][1]]
    assert size[0].startswith("=ROW(") and size[1].startswith("=ROW(") and size[2:6] == [2, 0, 1, 1]
    cells_of_size = [c.ref() for c in recs["oddsizeT_size_h"][1]]
    assert size[6] == "=({0}-1)*{2}-2*{3}+{5}*({1}-1)+{4}+1".format(*cells_of_size), size[6]
    notes = " ".join(c.comment.text for row in ws.iter_rows() for c in row if c.comment)
    assert "scattered into the output" in notes and "rotated 180" in notes


def test_a_padding_beyond_the_kernels_reach_crops_the_spread_input(tmp_path):
    # d(k - 1) - p = 2 - 3 < 0: the spread input loses a cell on each side instead of gaining zeros.
    x = np.arange(1, 26, dtype=float).reshape(5, 5)
    op = ConvTranspose("y", "y", "x", ("kern",), None, stride=(2, 2), padding=(3, 3))
    spec = xlconv.from_arrays("Crop", {"x": x, "kern": np.arange(9.0).reshape(3, 3)}, [op])
    wb = load_workbook(xlconv.build(spec, tmp_path))
    recs = records(wb)
    g = recs["y_spread"][1][0]
    assert (g.height, g.width) == (7, 7)  # 9 - 1 - 1
    first = recs["x"][1][0]
    ws = wb[recs["y"][0]]
    assert ws.cell(g.top + 2, g.left + 2).value == "=" + first.window(1, 1, 1, 1).ref()
    assert ws.cell(g.top + 1, g.left + 1).value == 0
    expected = F.conv_transpose2d(torch.tensor(x)[None, None], torch.arange(9.0, dtype=torch.float64).reshape(
        1, 1, 3, 3), stride=2, padding=3)[0].numpy()
    np.testing.assert_array_equal(xlconv.compute(spec)["y"], expected)
    assert ref.spread(x[None], 3, 2, 3).shape == (1, 7, 7)


# -- random shapes through LibreOffice ----------------------------------------------------------------------------

BATCH = 10


@st.composite
def grids(draw, shape):
    """Small integers or two-decimal numbers."""
    n = int(np.prod(shape))
    if draw(st.booleans()):
        return np.array(draw(st.lists(st.integers(-9, 9), min_size=n, max_size=n)), dtype=float).reshape(shape)
    return np.array(draw(st.lists(st.integers(-500, 500), min_size=n, max_size=n))).reshape(shape) / 100


@st.composite
def cases(draw):
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    op = tuple(draw(st.integers(0, max(s[a], d[a]) - 1)) for a in (0, 1))
    # an input large enough that the output has a cell: (h - 1)s >= 2p - d(k - 1) - op
    low = [max(1, 1 - (-(2 * p[a] - d[a] * (k[a] - 1) - op[a]) // s[a])) for a in (0, 1)]
    h, w = draw(st.integers(low[0], max(low[0], 5))), draw(st.integers(low[1], max(low[1], 5)))
    arrays = {"x": draw(grids((c_in, h, w)))}
    for o in range(c_out):
        arrays[f"kern{o}"] = draw(grids((c_in, *k)))
    bias = tuple(draw(st.integers(-3, 3)) / 2 for _ in range(c_out)) if draw(st.booleans()) else None
    ops = [ConvTranspose("y", "y", "x", tuple(f"kern{o}" for o in range(c_out)), bias, s, p, op, d)]
    if draw(st.booleans()):
        ops.append(Relu("act", "act", "y"))
    return arrays, ops


def torch_outputs(arrays, ops):
    x = torch.tensor(arrays["x"])[None]
    t = ops[0]
    w = torch.stack([torch.tensor(arrays[n]) for n in t.weight], dim=1)  # (C_in, C_out, kh, kw)
    b = None if t.bias is None else torch.tensor(t.bias, dtype=torch.float64)
    y = F.conv_transpose2d(x, w, b, t.stride, t.padding, t.output_padding, 1, t.dilation)
    out = {"y": y[0].numpy()}
    if len(ops) > 1:
        out["act"] = F.relu(y)[0].numpy()
    return out


@pytest.mark.libreoffice
# No shrinking: each step would cost a LibreOffice run; the failing batch is printed whole.
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.lists(cases(), min_size=BATCH, max_size=BATCH))
def test_random_transposed_convolutions_agree_with_torch(batch):
    with tempfile.TemporaryDirectory() as tmp:
        paths = [xlconv.build(xlconv.from_arrays(f"case {n}", arrays, ops, name=f"case{n}"), tmp)
                 for n, (arrays, ops) in enumerate(batch)]
        for (arrays, ops), wb, path in zip(batch, recalculated_values(paths), paths):
            for name, expected in torch_outputs(arrays, ops).items():
                np.testing.assert_allclose(block(wb, name), expected, rtol=1e-12, atol=1e-9,
                                           err_msg=f"{Path(path).name}: {name} {ops}")
            filt, row, col, total, chosen = block(wb, "y_trace").ravel()
            picked = block(wb, "y")[int(filt) - 1, int(row) - 1, int(col) - 1]
            assert total == pytest.approx(picked, abs=1e-9) and chosen == pytest.approx(picked, abs=1e-9), ops


# -- bad specs ----------------------------------------------------------------------------------------------------

GOOD = """\
title = "t"
[grids.image]
values = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
[grids.kern]
values = [[1, 0], [0, 1]]
[[conv_transpose]]
name = "out"
input = "image"
weight = "kern"
"""

BAD = [
    ("output_padding not below stride or dilation", GOOD + "stride = 2\noutput_padding = 2\n",
     "conv_transpose[0].output_padding must be smaller than either stride or dilation (torch's rule), got 2 with "
     "stride 2 and dilation 1"),
    ("output_padding with unit stride", GOOD + "output_padding = [0, 1]\n",
     "conv_transpose[0].output_padding must be smaller than either stride or dilation"),
    ("negative output", GOOD + "padding = 3\n",
     "conv_transpose[0].padding 3 leaves an output of -2 x -2"),
    ("zero output", GOOD.replace("[[1, 0, 1], [0, 1, 0], [1, 0, 1]]", "[[1]]") + "padding = 1\n",
     "conv_transpose[0].padding 1 leaves an output of 0 x 0"),
    ("negative output_padding", GOOD + "output_padding = -1\n", "conv_transpose[0].output_padding must be >= 0"),
    ("stride zero", GOOD + "stride = 0\n", "conv_transpose[0].stride must be >= 1, got 0"),
    ("bias count", GOOD + "bias = [1, 2]\n", "conv_transpose[0].bias must be one number per weight (1)"),
    ("unknown key", GOOD + "kernel_size = 2\n", "conv_transpose[0].kernel_size is not a known key"),
    ("missing weight grid", GOOD.replace('weight = "kern"', 'weight = "nope"'),
     "conv_transpose[0].weight 'nope' is not a grid"),
    ("channel mismatch", GOOD.replace("[[1, 0], [0, 1]]", "[[[1, 0], [0, 1]], [[1, 0], [0, 1]]]"),
     "conv_transpose[0].weight has 2 channel(s) but the input 'image' has in_channels=1"),
]


@pytest.mark.parametrize("what, text, message", BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_one_line_exit_2_no_file(tmp_path, what, text, message):
    refused_spec(tmp_path, text, message)


def test_the_good_spec_builds_and_torch_agrees_on_the_refusals(tmp_path):
    spec = tmp_path / "x.toml"
    spec.write_text(GOOD)
    assert subprocess.run([sys.executable, "-m", "xlconv", "build", str(spec), "-o", str(tmp_path)],
                          capture_output=True).returncode == 0
    x, w = torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 2, 2)
    for kw in (dict(stride=2, output_padding=2), dict(output_padding=(0, 1)), dict(padding=3)):
        with pytest.raises(RuntimeError):
            F.conv_transpose2d(x, w, **kw)
    assert F.conv_transpose2d(x, w, stride=1, dilation=2, output_padding=1).shape[-1] == 6  # below dilation: fine


# -- exercise and grading -----------------------------------------------------------------------------------------


@pytest.mark.libreoffice
def test_an_exercise_of_conv_arithmetic_grades_right(tmp_path):
    roster = write_roster(tmp_path, "id\ns01\ns02\n")
    result = exercise("conv-arithmetic", tmp_path / "ex", seed=5, roster=roster)
    key = load_key(result.out_dir)
    names = [r.name for r in key.answers]
    assert names == [g[0] for g in GUIDE]
    # the right answers are torch's, from the variant's own drawn inputs
    inputs = key.variants["s02"]["inputs"]
    t = {n: torch.tensor(v, dtype=torch.float64)[None] for n, v in inputs.items()}
    for name, kind, source, _, _, s, p, op, d, _ in GUIDE:
        w = t["kernel4" if name.startswith("arbpad") else "kernel3"]
        if kind == "conv":
            t[name] = F.conv2d(t[source], w, stride=s, padding=p, dilation=d)
        else:
            t[name] = F.conv_transpose2d(t[source], w, stride=s, padding=p, output_padding=op, dilation=d)
        np.testing.assert_allclose(key.expected("s02")[name], t[name][0].numpy(), atol=1e-9)
    # the keys recalculate right; the self-checks read the inputs and their own answer cell only
    reports = xlconv.verify(result.key_files)
    assert all(r.ok and r.cells > 0 for r in reports), [r.lines() for r in reports]
    _self_checks_read_only_their_own_answer(result.student_files[0], key)
    files = dict(zip([v.student.id for v in result.variants], result.student_files))
    right = fill(files["s01"], tmp_path / "filled" / "s01.xlsx", key, "s01")
    wrong = fill(files["s02"], tmp_path / "filled" / "s02.xlsx", key, "s02",
                 answer=lambda b, c, i, j, v: v + 1 if (b, i, j) in (("stridedT", 2, 2), ("nopad", 0, 0)) else v)
    returned = save_through_libreoffice([right, wrong], tmp_path / "returned")
    recs, _ = read_records(result.key_files[0])
    checks = [r for r in recs if r.role == "check"]
    total = sum(g.height * g.width for r in checks for g in r.grids)
    for path, n_wrong in zip(returned, (0, 2)):
        ws = load_workbook(path, data_only=True)[key.sheet]
        marks = [ws.cell(g.top + i + 1, g.left + j + 1).value for r in checks for g in r.grids
                 for i in range(g.height) for j in range(g.width)]
        assert marks.count(CHECK_WRONG) == n_wrong and marks.count(CHECK_RIGHT) == total - n_wrong
    book = grade(returned, result.out_dir, None)
    rows = {r.student_id: r for r in book.rows}
    assert rows["s01"].status == "ok" and rows["s01"].total == book.max == total
    assert rows["s02"].total == book.max - 2
    assert rows["s02"].marks["stridedT"] == 24 and rows["s02"].marks["nopad"] == 3


def _self_checks_read_only_their_own_answer(path, key):
    answer_cells = {(g.top + i, g.left + j) for r in key.answers for g in r.grids
                    for i in range(g.height) for j in range(g.width)}
    recs, _ = read_records(path)
    ws = load_workbook(path)[key.sheet]
    for rec in (r for r in recs if r.role == "check"):
        answers = next(r for r in key.answers if r.name == rec.info["output"])
        for g, ag in zip(rec.grids, answers.grids):
            for i in range(g.height):
                for j in range(g.width):
                    f = ws.cell(g.top + i + 1, g.left + j + 1).value
                    refs = set()
                    for r in re.findall(r"\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?", f):
                        grid = parse_range(r)
                        refs |= {(grid.top + a, grid.left + b) for a in range(grid.height) for b in range(grid.width)}
                    assert refs & answer_cells == {(ag.top + i, ag.left + j)}, (rec.name, i, j, f)
    assert parse_a1("A1") == (0, 0)
