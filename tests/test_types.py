"""The package type-checks: mypy with the configuration in pyproject.toml ([tool.mypy]) finds no error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a cold run (no .mypy_cache yet) takes about half a minute; later runs about a second
def test_mypy_is_clean():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mypy found errors (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
