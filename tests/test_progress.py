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
