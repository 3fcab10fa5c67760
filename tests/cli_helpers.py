"""Running the xlconv command as a user does, and what every refusal must look like: one line naming the file and
field, exit status 2, no traceback, nothing left behind."""

import subprocess
import sys
from pathlib import Path


def run_cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m xlconv ARGS` in cwd, without a terminal or stdin."""
    return subprocess.run([sys.executable, "-m", "xlconv", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 2 and one line on stderr that starts with "xlconv: " and holds every word, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xlconv: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def build_spec(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """`xlconv build` of a spec with this text: (the process, the spec's path, the output folder)."""
    spec = tmp_path / "x.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    return run_cli(["build", str(spec), "-o", str(out)], tmp_path), spec, out


def refused_spec(tmp_path: Path, text: str, message: str) -> None:
    """A spec `xlconv build` refuses in one line naming the spec file and saying message, writing nothing."""
    proc, spec, out = build_spec(tmp_path, text)
    one_line_error(proc, message)
    assert proc.stderr.startswith(f"xlconv: {spec}: "), proc.stderr
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
