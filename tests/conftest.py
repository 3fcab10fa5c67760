"""Shared test setup.

Engine markers: mark a test ``@pytest.mark.libreoffice`` or ``@pytest.mark.gnumeric``
when it needs that spreadsheet engine. Without the engine the test is skipped with
a reason naming the missing binary and the command that installs it; when the
environment variable ``XLCONV_REQUIRE_LIBREOFFICE=1`` is set (as .ci/run does) it
fails instead, so CI can never go green by skipping the real-engine tests.
"""

import os

import pytest

from xlconv.engine import find_engine

_INSTALL = {
    "libreoffice": ("soffice", "apt-get install -y --no-install-recommends libreoffice-calc-nogui"),
    "gnumeric": ("ssconvert", "apt-get install -y gnumeric"),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for engine, (binary, install) in _INSTALL.items():
        if item.get_closest_marker(engine) is None or find_engine(engine):
            continue
        reason = f"{engine} ({binary}) not installed; install it with: {install}"
        if os.environ.get("XLCONV_REQUIRE_LIBREOFFICE") == "1":
            pytest.fail(f"XLCONV_REQUIRE_LIBREOFFICE=1 but {reason}", pytrace=False)
        pytest.skip(reason)
