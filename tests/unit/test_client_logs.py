"""kafka-python's expected start-up errors are quieted; its other errors are kept."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from kafka.errors import GroupAuthorizationFailedError, NotCoordinatorError, RequestTimedOutError

from broker.clients import ExpectedClientNoise, quiet_client_logs


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``quiet_client_logs()`` applied, and the kafka loggers restored afterwards."""
    names = ("kafka", "kafka.net", *ExpectedClientNoise.LOGGERS)
    saved = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).filters))
        for name in names
    }
    quiet_client_logs()
    quiet_client_logs()  # Twice, as two entry points in one process may: one filter each.
    yield caplog
    for name, (level, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.filters[:] = filters


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_expected_start_up_errors_are_quieted(quiet: pytest.LogCaptureFixture) -> None:
    logging.getLogger("kafka.cluster").error("Topic %s not found in cluster metadata", "rows")
    coordinator = logging.getLogger("kafka.coordinator")
    coordinator.error(
        "Error sending %s to node %s [%s]", "JoinGroupRequest", 1, NotCoordinatorError()
    )
    coordinator.error(
        "Group Coordinator lookup for group %s failed: %s", "g", RequestTimedOutError()
    )
    assert errors(quiet) == []


def test_other_errors_are_kept(quiet: pytest.LogCaptureFixture) -> None:
    logging.getLogger("kafka.cluster").error("Topic %s is not authorized for this client", "rows")
    coordinator = logging.getLogger("kafka.coordinator")
    denied = GroupAuthorizationFailedError("g")
    coordinator.error("Error sending %s to node %s [%s]", "JoinGroupRequest", 1, denied)
    logging.getLogger("kafka.coordinator.consumer").error(
        "Not authorized to commit offsets for group %s", "g"
    )
    assert errors(quiet) == [
        "Topic rows is not authorized for this client",
        f"Error sending JoinGroupRequest to node 1 [{denied}]",
        "Not authorized to commit offsets for group g",
    ]


def test_quieted_lines_show_at_debug(quiet: pytest.LogCaptureFixture) -> None:
    logging.getLogger("kafka").setLevel(logging.DEBUG)
    logging.getLogger("kafka.cluster").error("Topic %s not found in cluster metadata", "rows")
    [record] = [r for r in quiet.records if r.name == "kafka.cluster"]
    assert (record.levelname, record.getMessage()) == (
        "DEBUG",
        "Topic rows not found in cluster metadata",
    )
