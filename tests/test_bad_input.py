"""Bad specs end with one line naming the file and the field, exit status 2, and no output file."""

import subprocess
import sys

import pytest
from cli_helpers import build_spec, refused_spec

GOOD = """\
title = "t"
[grids.image]
values = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
[grids.k]
values = [[1, 0], [0, 1]]
[[conv]]
name = "out"
input = "image"
weight = "k"
"""

# (what is wrong, the spec text, what the one line must say)
BAD = [
    ("toml syntax", GOOD.replace('title = "t"', 'title = "t'), "TOML syntax error"),
    ("ragged grid", GOOD.replace("[0, 1, 0]", "[0, 1]"), "grids.image.values is ragged: row [1] has 2 numbers"),
    ("non-numeric", GOOD.replace("[0, 1, 0]", '[0, "x", 0]'), "grids.image.values [1][1] must be a number"),
    ("boolean", GOOD.replace("[0, 1, 0]", "[0, true, 0]"), "grids.image.values [1][1] must be a number"),
    ("kernel too large", GOOD.replace("[[1, 0], [0, 1]]", "[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]"),
     "conv[0].weight kernel 4x4 (dilated 4x4) is larger than the padded input 3x3"),
    ("dilated too large", GOOD + "dilation = 3\n", "conv[0].weight kernel 2x2 (dilated 4x4) is larger"),
    ("stride zero", GOOD + "stride = 0\n", "conv[0].stride must be >= 1, got 0"),
    ("dilation zero", GOOD + "dilation = 0\n", "conv[0].dilation must be >= 1, got 0"),
    ("negative padding", GOOD + "padding = -1\n", "conv[0].padding must be >= 0, got -1"),
    ("unknown key", GOOD + "strides = 2\n", "conv[0].strides is not a known key"),
    ("unknown top key", "colour = 1\n" + GOOD, "colour is not a known key"),
    ("missing input", GOOD.replace('input = "image"', 'input = "img"'), "conv[0].input 'img' is not a grid"),
    ("sheet name", 'sheet = "a/b"\n' + GOOD, "sheet 'a/b' has a character Excel forbids"),
    ("sheet too long", f'sheet = "{"x" * 32}"\n' + GOOD, "sheet must be 1 to 31 characters"),
    ("name like a cell", GOOD.replace('name = "out"', 'name = "AB12"'), "conv[0].name 'AB12'"),
    ("pool padding", GOOD + '[[pool]]\nname = "p"\ninput = "out"\nkernel_size = 2\npadding = 2\n',
     "pool[0].padding must be at most half the kernel_size"),
    ("too big for a sheet", GOOD.replace("[[1, 0, 1], [0, 1, 0], [1, 0, 1]]", "[" + ",".join(["[1]"] * 1_048_577) + "]")
     .replace("[[1, 0], [0, 1]]", "[[1]]"), "grids.image.values has 1,048,577 numbers, more than a teaching sheet"),
    ("taller than a sheet", GOOD.replace("[[1, 0, 1], [0, 1, 0], [1, 0, 1]]", "[" + ",".join(["[1]"] * 200_000) + "]")
     .replace("[[1, 0], [0, 1]]", "[[1]]") + "padding = [500000, 0]\n", "conv[0].padding must be at most 16,384"),
    ("too wide for a sheet", GOOD.replace("[[1, 0, 1], [0, 1, 0], [1, 0, 1]]", "[[" + ",".join(["1"] * 16_400) + "]]")
     .replace("[[1, 0], [0, 1]]", "[[1]]"), "does not fit a worksheet"),
    ("channel mismatch", GOOD.replace("[[1, 0], [0, 1]]", "[[[1, 0], [0, 1]], [[1, 0], [0, 1]]]"),
     "conv[0].weight has 2 channel(s) but the input 'image' has in_channels=1"),
]


def test_the_good_spec_builds(tmp_path):
    proc, _, out = build_spec(tmp_path, GOOD)
    assert proc.returncode == 0, proc.stderr
    assert (out / "x.xlsx").exists()


@pytest.mark.parametrize("what, text, message", BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_one_line_exit_2_no_file(tmp_path, what, text, message):
    refused_spec(tmp_path, text, message)


def test_a_bad_spec_among_good_ones_writes_nothing(tmp_path):
    """All specs are parsed before any workbook is written."""
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD + "stride = 0\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "xlconv", "build", "lee-6x6", str(bad), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "conv[0].stride" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_formula_past_excels_limit_is_refused(tmp_path):
    # 300 input channels: each output cell would sum 300 SUMPRODUCTs, over 8,192 characters.
    channels = "[" + ",".join(["[[1,0,1],[0,1,0],[1,0,1]]"] * 300) + "]"
    text = f'title = "t"\n[grids.image]\nvalues = {channels}\n[grids.k]\nvalues = {channels}\n' \
           '[[conv]]\nname = "out"\ninput = "image"\nweight = "k"\n'
    proc, spec, out = build_spec(tmp_path, text)
    assert proc.returncode == 2, proc.stderr
    assert "past Excel's limit of 8192" in proc.stderr and str(spec) in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unknown_builtin_name(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xlconv", "build", "no-such-sheet", "-o", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("xlconv: no-such-sheet: no such spec file, and not a built-in worksheet")


def test_csv_grid(tmp_path):
    (tmp_path / "img.csv").write_text("1,0,1\n0,1,0\n1,0,1\n")
    proc, _, out = build_spec(tmp_path, GOOD.replace("values = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]", 'csv = "img.csv"'))
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "img.csv").write_text("1,0,1\n0,x,0\n1,0,1\n")
    proc, spec, _ = build_spec(tmp_path, GOOD.replace("values = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]",
                                                     'csv = "img.csv"'))
    assert proc.returncode == 2 and "grids.image.csv" in proc.stderr and "row 2" in proc.stderr


def test_a_conv_may_follow_a_pool(tmp_path):
    """Ops are laid out in dependency order, whatever order their [[kinds]] appear in the file."""
    text = GOOD.replace("[[1, 0, 1], [0, 1, 0], [1, 0, 1]]", "[[1,0,1,0],[0,1,0,1],[1,0,1,0],[0,1,0,1]]") + \
        '[[conv]]\nname = "after"\ninput = "pooled"\nweight = "kk"\n' \
        '[[pool]]\nname = "pooled"\ninput = "out"\nkernel_size = 1\n' \
        '[grids.kk]\nvalues = [[2]]\n'
    proc, _, out = build_spec(tmp_path, text)
    assert proc.returncode == 0, proc.stderr


def test_ops_that_read_each_other_in_a_circle(tmp_path):
    text = GOOD.replace('input = "image"', 'input = "p"') + '[[pool]]\nname = "p"\ninput = "out"\nkernel_size = 1\n'
    proc, spec, _ = build_spec(tmp_path, text)
    assert proc.returncode == 2
    assert "conv[0].input 'p' is not a grid or an op (or its inputs go round in a circle)" in proc.stderr
