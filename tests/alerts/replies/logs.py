"""DEBUG for the secrets checks: the root logger and every client library's, whatever an
earlier test's ``setup_logging`` held them at (``quiet_libraries`` mutes them at INFO)."""

from __future__ import annotations

import logging

import pytest

from listener.core.log import CHATTY_LIBRARIES


def debug_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in CHATTY_LIBRARIES:
        caplog.set_level(logging.DEBUG, logger=name)
