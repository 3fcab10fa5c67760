"""Shared test setup.

Engine markers: mark a test ``@pytest.mark.libreoffice`` or ``@pytest.mark.gnumeric``
when it needs that spreadsheet engine. Without the engine the test is skipped with
a reason naming the missing binary and the command that installs it; when the
environment variable ``XLCONV_REQUIRE_LIBREOFFICE=1`` is set (as .ci/run does) it
fails instead, so CI can never go green by skipping the real-engine tests.
"""

import os

import pytest

from xlconv.engine import ENGINES, find_engine, install_hint


def pytest_runtest_setup(item: pytest.Item) -> None:
    for engine in ENGINES:
        if item.get_closest_marker(engine) is None or find_engine(engine):
            continue
        reason = install_hint(engine)
        if os.environ.get("XLCONV_REQUIRE_LIBREOFFICE") == "1":
            pytest.fail(f"XLCONV_REQUIRE_LIBREOFFICE=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def shipped(tmp_path_factory):
    """Every shipped worksheet built once: {name: path}."""
    from xlconv import build
    from xlconv.spec import builtin_names

    out = tmp_path_factory.mktemp("shipped")
    return {name: build(name, out) for name in builtin_names() if name != "alexnet-conv1"}


def recalculated_values(paths, engine="libreoffice"):
    """Recalculate workbooks in a real engine and return their openpyxl value workbooks, in order."""
    import tempfile
    import warnings

    from openpyxl import load_workbook

    from xlconv.engine import recalculate

    out = tempfile.mkdtemp(prefix="xlconv-test-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [load_workbook(p, data_only=True) for p in recalculate(paths, out, engine=engine)]
