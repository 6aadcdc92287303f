"""The fetching process logs in its consumer's format, its loggers named under ``fetcher.``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from multiprocessing.connection import Connection

import pytest


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_fetchers_lines_are_in_the_format_it_is_given(log_format: str) -> None:
    commands_read, commands_write = os.pipe()
    records_read, records_write = os.pipe()
    fetcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broker.fetcher",
            "--commands-fd",
            str(commands_read),
            "--records-fd",
            str(records_write),
            "--log-format",
            log_format,
        ],
        pass_fds=(commands_read, records_write),
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(commands_read)
    os.close(records_write)
    commands = Connection(commands_write, readable=False)
    try:
        # Nothing listens on port 1: kafka-python warns at once while it retries.
        commands.send(("start", ["127.0.0.1:1"], "test-fetcher-logs", 10))
        assert fetcher.stderr is not None
        line = fetcher.stderr.readline()
    finally:
        fetcher.kill()
        fetcher.wait(timeout=10)
        commands.close()
        os.close(records_read)
    if log_format == "json":
        entry = json.loads(line)
        assert entry["logger"].startswith("fetcher.kafka.")
        assert entry["level"] in {"WARNING", "ERROR"}
    else:
        assert " logger=fetcher.kafka." in line
        assert " level=WARNING " in line or " level=ERROR " in line
