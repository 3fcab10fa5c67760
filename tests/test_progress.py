"""Progress bars: silent unless the CLI turns them on, and -q always wins."""

import io
import sys

import pytest

from xlconv import cli, progress


@pytest.fixture(autouse=True)
def _off():
    yield
    progress.configure(False)


def test_library_is_silent_by_default(capsys):
    progress.configure(False)
    with progress.bar(3, "work") as b:
        for _ in range(3):
            b.update()
    assert capsys.readouterr().err == ""


def test_a_shown_bar_writes_to_stderr_only(capsys):
    progress.configure(True)
    with progress.bar(2, "grading", unit="file") as b:
        b.update(2)
    out, err = capsys.readouterr()
    assert out == "" and "grading" in err and "/2" in err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("quiet, tty, shown", [(False, True, True), (True, True, False), (False, False, False),
                                               (True, False, False)])
def test_wanted_only_on_a_terminal_and_without_q(monkeypatch, quiet, tty, shown):
    monkeypatch.setattr(sys, "stderr", _Terminal() if tty else io.StringIO())
    assert progress.wanted(quiet) is shown


def test_every_command_takes_q():
    p = cli.parser()
    for command in ("build", "verify", "exercise", "grade", "alexnet", "render"):
        extra = {"exercise": ["lee-6x6"], "grade": ["x", "--key", "k"], "build": [], "alexnet": []}.get(command, ["f"])
        assert p.parse_args([command, "-q", *extra]).quiet is True
        assert p.parse_args([command, *extra]).quiet is False


@pytest.mark.libreoffice
def test_verify_shows_the_engine_phase_then_the_blocks(shipped, capsys):
    import xlconv

    progress.configure(True)
    report, = xlconv.verify([shipped["lee-6x6"]])
    out, err = capsys.readouterr()
    assert report.ok and out == ""
    assert "verify: libreoffice recalculating" in err and "workbook" in err
    assert "verify: " in err.split("recalculating", 1)[1] and "block" in err  # then one step per block


def test_the_alexnet_build_shows_its_phases_sheets_and_channels(tmp_path, capsys):
    from xlconv.build import alexnet_workbook

    progress.configure(True)
    alexnet_workbook(tmp_path / "a.xlsx", weights="random", channels="0-1")
    out, err = capsys.readouterr()
    assert out == ""
    for words in ("alexnet: torch", "alexnet: Preprocess", "alexnet: conv1 relu maps, channels 0-1",
                  "alexnet: saving a.xlsx"):
        assert words in err, words


def _on_a_terminal(args: list[str], cwd) -> str:
    """Run the CLI with stderr on a pseudo-terminal (so bars are wanted) and return what it wrote there."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    chunks = []
    try:
        proc = subprocess.Popen([sys.executable, "-m", "xlconv", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        while True:  # read as it comes: a full terminal buffer would block the bar's writes
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=300) == 0
    finally:
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.libreoffice
def test_the_cli_shows_bars_on_a_terminal_and_nothing_with_q(shipped, tmp_path):
    assert "recalculating" in _on_a_terminal(["verify", str(shipped["lee-6x6"])], tmp_path)
    assert _on_a_terminal(["verify", "-q", str(shipped["lee-6x6"])], tmp_path) == ""
