"""The checkpoint commits a poll's positions only once its windows are durable."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from kafka.structs import TopicPartition

from consumer.checkpoint import Checkpoint

TP = TopicPartition("rows", 0)
OTHER = TopicPartition("rows", 1)


class CommitLog:
    """A consumer's commit calls, with the async callbacks left for the test to run."""

    def __init__(self) -> None:
        self.commits: list[tuple[str, dict[TopicPartition, int]]] = []
        self.callbacks: list[tuple[Any, Any]] = []

    def commit_async(self, offsets: dict[TopicPartition, Any], callback: Any) -> None:
        self.commits.append(("async", {tp: o.offset for tp, o in offsets.items()}))
        self.callbacks.append((callback, offsets))

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append(("sync", {tp: o.offset for tp, o in offsets.items()}))

    def acknowledge(self, response: Any = None) -> None:
        callback, offsets = self.callbacks.pop(0)
        callback(offsets, response)


def written() -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


@pytest.fixture
def log() -> CommitLog:
    return CommitLog()


@pytest.fixture
def checkpoint(log: CommitLog) -> Checkpoint:
    return Checkpoint(log)


def test_position_is_the_open_windows_first_offset_or_past_the_last_read(
    log: CommitLog, checkpoint: Checkpoint
) -> None:
    checkpoint.store(TP, last_offset=79, needed=50)
    checkpoint.store(OTHER, last_offset=9, needed=None)
    checkpoint.hand_off(None)
    assert log.commits == [("async", {TP: 50, OTHER: 10})]


def test_a_poll_is_committed_only_once_its_write_is_done(
    log: CommitLog, checkpoint: Checkpoint
) -> None:
    checkpoint.store(TP, last_offset=99, needed=None)
    pending: Future[None] = Future()
    checkpoint.hand_off(lambda: pending)
    checkpoint.settle(wait=False)
    assert log.commits == []
    pending.set_result(None)
    checkpoint.settle(wait=False)
    assert log.commits == [("async", {TP: 100})]


def test_the_next_poll_waits_for_the_one_in_flight(log: CommitLog, checkpoint: Checkpoint) -> None:
    pending: Future[None] = Future()
    checkpoint.store(TP, last_offset=49, needed=None)
    checkpoint.hand_off(lambda: pending)
    checkpoint.store(TP, last_offset=99, needed=None)

    def second() -> Future[None]:
        # Started only once the first poll's write is settled and committed.
        assert log.commits == [("async", {TP: 50})]
        return written()

    pending.set_result(None)
    checkpoint.hand_off(second)
    assert log.commits == [("async", {TP: 50})]


def test_a_failed_write_is_raised_and_never_committed(
    log: CommitLog, checkpoint: Checkpoint
) -> None:
    failed: Future[None] = Future()
    failed.set_exception(OSError("disk full"))
    checkpoint.store(TP, last_offset=49, needed=None)
    checkpoint.hand_off(lambda: failed)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.settle(wait=True)
    checkpoint.settle(wait=True)
    assert log.commits == []


def test_one_async_commit_at_a_time_and_the_next_carries_the_rest(
    log: CommitLog, checkpoint: Checkpoint
) -> None:
    checkpoint.store(TP, last_offset=49, needed=None)
    checkpoint.hand_off(None)
    checkpoint.store(TP, last_offset=99, needed=None)
    checkpoint.hand_off(None)
    assert log.commits == [("async", {TP: 50})]
    log.acknowledge()
    checkpoint.settle(wait=False)
    assert log.commits == [("async", {TP: 50}), ("async", {TP: 100})]


def test_a_failed_async_commit_is_sent_again(log: CommitLog, checkpoint: Checkpoint) -> None:
    checkpoint.store(TP, last_offset=49, needed=None)
    checkpoint.hand_off(None)
    log.acknowledge(RuntimeError("coordinator moved"))
    checkpoint.settle(wait=True)
    checkpoint.commit()
    assert log.commits == [("async", {TP: 50}), ("sync", {TP: 50})]


def test_unchanged_and_revoked_partitions_are_not_committed(
    log: CommitLog, checkpoint: Checkpoint
) -> None:
    checkpoint.store(TP, last_offset=49, needed=None)
    checkpoint.store(OTHER, last_offset=49, needed=None)
    checkpoint.hand_off(None)
    log.acknowledge()
    checkpoint.store(OTHER, last_offset=99, needed=None)
    checkpoint.forget([OTHER])
    checkpoint.commit()
    assert log.commits == [("async", {TP: 50, OTHER: 50})]


def test_a_revoked_partition_is_left_out_of_a_write_in_flight(
    log: CommitLog, checkpoint: Checkpoint
) -> None:
    checkpoint.store(TP, last_offset=49, needed=None)
    checkpoint.store(OTHER, last_offset=49, needed=None)
    pending: Future[None] = Future()
    checkpoint.hand_off(lambda: pending)
    checkpoint.forget([OTHER])
    pending.set_result(None)
    checkpoint.settle(wait=True)
    assert log.commits == [("async", {TP: 50})]


def test_the_final_commit_refuses_while_a_poll_is_in_flight(checkpoint: Checkpoint) -> None:
    checkpoint.store(TP, last_offset=49, needed=None)
    checkpoint.hand_off(lambda: Future())
    with pytest.raises(RuntimeError, match="settle them first"):
        checkpoint.commit()
    checkpoint.abandon()
    checkpoint.commit()
