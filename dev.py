#!/usr/bin/env python3
"""Developer entry point: set up .venv on demand, then build worksheets or run the tests.

    python3 dev.py build [xlconv build args...]
    python3 dev.py test [pytest args...]

Standard library only, so it runs on a fresh clone with any python3 >= 3.11.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".xlconv-install-stamp"
# binary -> the Debian package that brings it (Carlito, Calibri's metrics, comes with LibreOffice)
ENGINE_PACKAGES = {"soffice": "libreoffice-calc-nogui", "ssconvert": "gnumeric", "pdftoppm": "poppler-utils",
                   "node": "nodejs", "npm": "npm"}
ENGINE_BINARIES = tuple(ENGINE_PACKAGES)
HF_DIR = ROOT / "engines" / "hyperformula"  # its package.json and package-lock.json pin HyperFormula
USAGE = "usage: python3 dev.py build [args...] | python3 dev.py test [pytest args...]"


def main(argv: list) -> int:
    """Dispatch the subcommand and return the exit status of what it ran."""
    if sys.version_info < (3, 11):
        print(f"dev.py: needs Python >= 3.11, this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    if not argv or argv[0] not in ("build", "test"):
        print(USAGE, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    status = ensure_venv()
    if status != 0:
        return status
    if command == "build":
        return run([str(BIN / "xlconv"), "build", *args], interactive=True)
    ensure_engines()
    return run([str(BIN / "python"), "-m", "pytest", *args], interactive=True)


def ensure_venv() -> int:
    """Create .venv and install the project (editable, with test extras) unless the stamp says it is current."""
    if not (BIN / "python").exists():
        print(f"dev.py: creating {VENV}", flush=True)
        status = run([sys.executable, "-m", "venv", str(VENV)])
        if status != 0:
            print("dev.py: could not create the venv (on Debian: apt-get install -y python3-venv)", file=sys.stderr)
            return status
    wanted = install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted and (BIN / "xlconv").exists():
        return 0
    print("dev.py: installing xlconv and its test dependencies into .venv", flush=True)
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    status = run([str(BIN / "python"), "-m", "pip", "install", "-e", ".[test]"], env=env)
    if status == 0:
        STAMP.write_text(wanted)
    return status


def install_fingerprint() -> str:
    """Hash what decides the install: the project metadata and the venv's Python."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update((VENV / "pyvenv.cfg").read_bytes())
    return digest.hexdigest()


def ensure_engines() -> None:
    """Install LibreOffice, Gnumeric, poppler and node when missing and we may, then HyperFormula; otherwise say how."""
    ensure_system_engines()
    ensure_hyperformula()


def ensure_hyperformula() -> None:
    """npm ci the pinned HyperFormula into engines/hyperformula/node_modules unless it is there already."""
    installed = HF_DIR / "node_modules" / ".package-lock.json"
    lock = HF_DIR / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    command = ["npm", "ci", "--prefix", str(HF_DIR), "--ignore-scripts", "--no-audit", "--no-fund"]
    if shutil.which("npm") is None:
        print(f"dev.py: npm missing, HyperFormula tests will be skipped; install with: "
              f"sudo apt-get install -y nodejs npm && {' '.join(command)}", flush=True)
        return
    print(f"dev.py: installing HyperFormula with {' '.join(command)}", flush=True)
    # Not fatal: the hyperformula tests then skip (or fail under CI) and say why.
    run(command)


def ensure_system_engines() -> None:
    """Install LibreOffice, Gnumeric, poppler and node (with npm) when missing and we may; otherwise say how."""
    missing = [b for b in ENGINE_BINARIES if shutil.which(b) is None]
    if not missing:
        return
    # Only the missing binaries' packages: a nodesource nodejs bundles npm and conflicts with Debian's npm.
    packages = [ENGINE_PACKAGES[b] for b in missing]
    if "soffice" in missing:
        packages.append("fonts-crosextra-carlito")  # Calibri's metrics, so pages break as in Excel
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            f"dev.py: {', '.join(missing)} missing, engine tests will be skipped; install with: "
            f"sudo apt-get update && sudo {' '.join(install)}",
            flush=True,
        )
        return
    print(f"dev.py: {', '.join(missing)} missing; installing {' '.join(packages)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # A failed install is not fatal here: the engine tests then skip (or fail under CI) and say why.
    if run(["apt-get", "update"], env=env) == 0:
        run(install, env=env)


def run(command: list, env: dict | None = None, interactive: bool = False) -> int:
    """Run a command from the repo root; return its exit status as a shell would report it."""
    # Installers get no stdin so that nothing can stop to ask a question.
    stdin = None if interactive else subprocess.DEVNULL
    status = subprocess.call(command, cwd=ROOT, env=env, stdin=stdin)
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
