"""The wheel is complete: installed alone into a fresh virtual environment, it builds every built-in from an empty folder.

The wheel is built offline (no build isolation, no index) from a copy of the sources, so the repository gets
no build/ or egg-info litter. The fresh venv gets the wheel and nothing else; the folders of the test
process's sys.path, except the repository itself, are appended to its own by a .pth file, as plain folders,
so the dependencies import but the repository's xlconv does not: the editable-install hook (a .pth in the test
environment's site-packages) is not processed there, and the venv's own site-packages comes first. The test
checks that the xlconv that runs is the wheel's.
"""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from xlconv._version import __version__

ROOT = Path(__file__).resolve().parent.parent
BUILTINS = sorted(p.stem for p in (ROOT / "xlconv" / "worksheets").glob("*.toml"))
PIP_ENV = {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

pytestmark = pytest.mark.slow


def _run(command, **kwargs):
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{command} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv folder, environment for its commands): the built wheel installed alone into a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "xlconv", src / "xlconv", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "NO_PROXY", "no_proxy")}
    env = {**clean, **PIP_ENV}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(tmp / "dist"), str(src)], env=env)
    (wheel,) = (tmp / "dist").glob("xlconv-*.whl")

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--ignore-installed", str(wheel)], env=env)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Every folder this test process imports from, except the repository (the parent of its xlconv package).
    deps = [p for p in map(Path, sys.path) if p.is_absolute() and p.is_dir() and p.resolve() != ROOT]
    (Path(purelib) / "zz_test_environment.pth").write_text("".join(f"{p}\n" for p in deps))

    run_env = dict(clean)
    run_env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    run_env["VIRTUAL_ENV"] = str(env_dir)
    # No pretrained AlexNet: an empty torch cache, and a download that fails at once, so alexnet-conv1 takes
    # build's offline path (a warning, random weights) instead of fetching 233 MB when online.
    run_env["TORCH_HOME"] = str(tmp / "empty-torch-home")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        run_env[proxy] = "http://127.0.0.1:9"
    return env_dir, run_env


@pytest.fixture
def empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_the_wheel_carries_the_builtins_and_the_venv_runs_its_own_copy(installed, empty):
    env_dir, env = installed
    code = "import xlconv, xlconv.builtins as b; print(xlconv.__file__); print(b.builtin_dir()); print(*b.builtin_names())"
    where, folder, names = _run([str(env_dir / "bin" / "python"), "-c", code], cwd=empty, env=env).stdout.splitlines()
    assert Path(where).is_relative_to(env_dir), where
    assert Path(folder).is_relative_to(env_dir), folder
    assert names.split() == BUILTINS


def test_version_from_an_empty_folder(installed, empty):
    env_dir, env = installed
    for command in ([str(env_dir / "bin" / "xlconv"), "--version"],
                    [str(env_dir / "bin" / "python"), "-m", "xlconv", "--version"]):
        assert _run(command, cwd=empty, env=env).stdout == f"xlconv {__version__}\n"


def test_build_every_builtin_from_an_empty_folder(installed, empty):
    env_dir, env = installed
    assert BUILTINS and "lee-6x6" in BUILTINS and "alexnet-conv1" in BUILTINS
    xlconv = str(env_dir / "bin" / "xlconv")
    built = _run([xlconv, "build", "-o", "out"], cwd=empty, env=env)
    assert built.stdout.split() == [os.path.join("out", f"{name}.xlsx") for name in BUILTINS]
    assert sorted(p.name for p in (empty / "out").iterdir()) == [f"{name}.xlsx" for name in BUILTINS]
    assert all((empty / "out" / f"{name}.xlsx").read_bytes()[:2] == b"PK" for name in BUILTINS)
    # The issue's own reproduction: a built-in by name.
    named = _run([xlconv, "build", "lee-6x6", "-o", "named"], cwd=empty, env=env)
    assert named.stdout.split() == [os.path.join("named", "lee-6x6.xlsx")]
    assert (empty / "named" / "lee-6x6.xlsx").exists()
