"""The CLI's log handler follows ``sys.stderr``: run inside a program that swaps stderr and
closes it afterwards (a test runner capturing output), it leaves nothing writing to the
closed stream."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from core.logging_setup import JsonFormatter, configure_logging


@pytest.fixture()
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_records_go_to_the_stderr_of_the_moment_not_a_closed_one(
    root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    during, after = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", during)
    configure_logging("INFO")
    logging.getLogger("shoprank.test").info("while captured")
    during.close()  # the runner is done with its stream
    monkeypatch.setattr(sys, "stderr", after)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    logging.getLogger("shoprank.test").warning("afterwards")
    out = after.getvalue()
    assert "afterwards" in out and "Logging error" not in out


def test_json_format_and_level(root_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    configure_logging("WARNING", "json")
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)
    logging.getLogger("shoprank.test").info("hidden")
    logging.getLogger("shoprank.test").warning("shown %d", 7)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and '"msg": "shown 7"' in lines[0] and '"level": "warning"' in lines[0]
