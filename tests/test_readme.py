"""The README's examples run as written."""

import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def blocks(lang):
    """The fenced blocks of one language ("" for plain fences), in order."""
    found, current, inside = [], [], None
    for line in README.splitlines(keepends=True):
        if line.startswith("```"):
            if inside is None:
                inside, current = line[3:].strip(), []
            else:
                if inside == lang:
                    found.append("".join(current))
                inside = None
        elif inside is not None:
            current.append(line)
    return found


def test_python_example_runs(tmp_path):
    (code,) = [b for b in blocks("python") if "load_spec" in b]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "[[ 3. -1. -3. -1.]"
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["lee-6x6.xlsx", "vertical-edges.xlsx"]


@pytest.mark.libreoffice
def test_python_example_workbooks_verify(tmp_path):
    import xlconv

    (code,) = [b for b in blocks("python") if "load_spec" in b]
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)
    reports = xlconv.verify(sorted((tmp_path / "build").glob("*.xlsx")))
    assert all(r.ok for r in reports), [r.lines() for r in reports]


def test_the_two_commands_are_the_ones_ci_runs():
    (first, *_) = blocks("sh")
    commands = [line.split("#")[0].strip() for line in first.strip().splitlines()]
    assert commands == ["python3 dev.py build", "python3 dev.py test"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "python3 dev.py test"


def test_the_error_example_is_what_xlconv_says(tmp_path):
    (example,) = [b for b in blocks("") if b.startswith("xlconv: ")]
    spec = tmp_path / "worksheets" / "x.toml"
    spec.parent.mkdir()
    spec.write_text('[grids.image]\nvalues = [[1, 2], [3, 4]]\n[[conv]]\nname = "o"\ninput = "image"\n'
                    'weight = "image2"\nstride = 0\n[grids.image2]\nvalues = [[1]]\n')
    proc = subprocess.run([sys.executable, "-m", "xlconv", "build", "worksheets/x.toml"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == example


def test_sharded_gradebooks_concatenate_to_the_whole(tmp_path):
    (shard,) = [b for b in blocks("python") if "gradebook-*.csv" in b]
    (commands,) = [b for b in blocks("sh") if "gradebook-1.csv" in b]
    xlconv = [sys.executable, "-m", "xlconv"]
    roster = tmp_path / "roster.csv"
    roster.write_text("id\n" + "".join(f"s{i}\n" for i in range(4)))
    subprocess.run(xlconv + ["exercise", "lee-6x6", "--seed", "1", "--roster", str(roster), "-o", "ex"],
                   cwd=tmp_path, check=True, capture_output=True)
    for i in range(4):  # the students' blank workbooks, handed back in two parts
        part = tmp_path / "returned" / f"part-{1 + i // 2}"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"s{i}.xlsx").write_bytes((tmp_path / "ex" / "students" / f"lee-6x6-s{i}.xlsx").read_bytes())
    (part / "notes.txt").write_text("not a workbook")
    for line in commands.strip().splitlines():
        subprocess.run(xlconv + line.split("#")[0].split()[1:], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", shard], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(xlconv + ["grade", "returned", "--key", "ex", "-o", "whole.csv"], cwd=tmp_path, check=True,
                   capture_output=True)
    combined = (tmp_path / "gradebook.csv").read_text()
    assert combined == (tmp_path / "whole.csv").read_text()
    assert len(combined.splitlines()) == 1 + 5 and "not-a-workbook" in combined
