"""The command line end to end, as a user runs it."""

import subprocess
import sys

import pytest
import xlsxwriter

XLCONV = [sys.executable, "-m", "xlconv"]


def run(*args, cwd=None):
    return subprocess.run(XLCONV + list(args), capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.mark.libreoffice
def test_build_then_verify_every_shipped_worksheet(tmp_path):
    built = run("build", cwd=tmp_path)  # default: every spec in xlconv/worksheets/, into ./build
    assert built.returncode == 0, built.stderr
    files = sorted((tmp_path / "build").glob("*.xlsx"))
    names = {f.stem for f in files}
    assert {"lee-6x6", "velickovic-7x7", "convolved-feature-5x5", "edge-laplacian", "output-size"} <= names
    assert built.stdout.split() == [str(p.relative_to(tmp_path)) for p in files]

    checked = run("verify", *map(str, files))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for f in files:  # every workbook reported, one line per sheet, each ok
        lines = [line for line in checked.stdout.splitlines() if line.startswith(f"{f}: ")]
        assert lines and all(line.endswith(": ok") for line in lines), (f, checked.stdout)
    assert "cells checked against NumPy and torch after libreoffice" in checked.stdout


def test_build_named_specs_into_a_folder(tmp_path):
    proc = run("build", "lee-6x6", "velickovic-7x7", "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lee-6x6.xlsx", "velickovic-7x7.xlsx"]


def test_verify_refuses_a_file_that_is_not_a_workbook(tmp_path):
    junk = tmp_path / "notes.xlsx"
    junk.write_text("just text")
    proc = run("verify", str(junk))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"xlconv: {junk}: not an .xlsx workbook (it starts with the bytes 6a 75 73 74 20 74 65 78)"


def test_verify_refuses_a_workbook_xlconv_did_not_make(tmp_path):
    other = tmp_path / "other.xlsx"
    wb = xlsxwriter.Workbook(other)
    wb.add_worksheet().write_formula("A1", "=1+1", None, 2)
    wb.close()
    proc = run("verify", str(other))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"xlconv: {other}: not a workbook xlconv made (it has no _xlconv sheet)"


def test_missing_file(tmp_path):
    proc = run("verify", str(tmp_path / "nope.xlsx"))
    assert proc.returncode == 2 and "nope.xlsx" in proc.stderr and "Traceback" not in proc.stderr


def test_python_m_and_console_script_agree():
    proc = run("--help")
    assert proc.returncode == 0 and "build" in proc.stdout and "verify" in proc.stdout


@pytest.mark.parametrize("args, status", [(["build", "lee-6x6", "-o", "out"], 0), (["verify", "missing.xlsx"], 2)])
def test_the_command_skips_torch_teardown_but_keeps_its_output_and_status(tmp_path, args, status):
    # With torch loaded, run() ends the process with os._exit: what was printed must still arrive, in full.
    code = ("import sys, torch; from xlconv.cli import run; "
            f"sys.argv = ['xlconv'] + {args!r}; print('before', flush=False); run()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == status, proc.stderr
    if status == 0:
        assert proc.stdout.splitlines() == ["before", "out/lee-6x6.xlsx"]
    else:
        assert proc.stdout == "before\n" and proc.stderr.startswith("xlconv: ") and "missing.xlsx" in proc.stderr
