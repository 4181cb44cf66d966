"""Browser tests: real headless Chromium (Debian's package), never a downloaded browser."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the app in real headless Chromium (minutes; needs /usr/bin/chromium)"
    )
