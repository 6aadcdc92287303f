"""The checkpoint: which offsets are read, durable, in flight and committed, per partition.

A partition's commit position is the first offset the next window still needs:
the first row of its open window, or past the last row read when no window is
open. A poll's positions are committed only once its windows are durable (see
:meth:`Checkpoint.hand_off`); at most one poll's windows are in flight at a time.
Commits go out asynchronously while the loop runs, and synchronously on a clean
stop. A lost asynchronous commit costs nothing but time: the windows past the
last committed offset are judged again under the same ids, into the same files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

logger = logging.getLogger(__name__)


@dataclass
class _Offsets:
    """One partition's commit position after the last poll, and the last one committed."""

    position: int
    committed: int | None = None


@dataclass(frozen=True)
class _InFlight:
    """A poll's windows being made durable, and the positions to commit once they are."""

    done: Future[None]
    positions: dict[TopicPartition, int]


class Checkpoint:
    """Owns what is durable, in flight and committed for one consumer.

    The loop tells it, per poll, where each partition stands (:meth:`store`) and
    hands it the poll's durability work (:meth:`hand_off`); between polls it
    commits what became durable (:meth:`settle`), and on a clean stop everything
    (:meth:`commit`).

    Safe for kafka-python 3's rebalance listener, which runs on the client's IO
    thread where nothing may block: :meth:`forget` only drops state.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
        The consumer whose offsets are committed, with auto-commit off.
    """

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self._partitions: dict[TopicPartition, _Offsets] = {}
        self._in_flight: _InFlight | None = None
        self._durable: dict[TopicPartition, int] = {}
        """Positions whose windows are all durable, not yet committed."""
        self._commit_in_flight = False

    def store(self, tp: TopicPartition, last_offset: int, needed: int | None) -> None:
        """Note where ``tp`` stands after a poll.

        Parameters
        ----------
        tp : TopicPartition
            The partition read.
        last_offset : int
            Offset of the last record read from it.
        needed : int or None
            The first offset its open window still holds, None when no window is open.
        """
        position = last_offset + 1 if needed is None else needed
        state = self._partitions.get(tp)
        if state is None:
            self._partitions[tp] = _Offsets(position)
        else:
            state.position = position

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        """Drop partitions another instance now owns: their offsets are no longer ours."""
        for tp in revoked:
            self._partitions.pop(tp, None)

    def hand_off(self, write: Callable[[], Future[None]] | None) -> None:
        """Commit this poll's positions once ``write``'s windows are durable.

        Takes the positions now, waits for the previous poll's windows (one poll in
        flight at most), then starts ``write``; its positions are committed by a
        later :meth:`settle` once it is done. With ``write`` None the poll wrote
        nothing, so its positions are durable already and are committed now.

        Raises
        ------
        Exception
            Whatever the previous poll's write raised: nothing of it is committed.
        """
        positions = self._positions()
        self.settle(wait=True)
        if write is None:
            self._durable.update(positions)
            self._commit_durable()
        else:
            self._in_flight = _InFlight(write(), positions)

    def settle(self, wait: bool) -> None:
        """Commit the in-flight poll's positions if it is done (or once done, with ``wait``).

        Raises whatever writing that poll's windows raised.
        """
        in_flight = self._in_flight
        if in_flight is not None and (wait or in_flight.done.done()):
            self._in_flight = None
            in_flight.done.result()
            self._durable.update(in_flight.positions)
        self._commit_durable()

    def commit(self) -> None:
        """Commit, and wait for, each partition's position.

        Only for when no poll is in flight (after ``settle(wait=True)``): then every
        completed window is durable.
        """
        if self._in_flight is not None:
            raise RuntimeError("a poll's windows are still being archived; settle them first")
        self._durable = {}
        offsets = self._moved(self._positions())
        if offsets:
            self.consumer.commit(offsets)

    def abandon(self) -> None:
        """Forget the poll in flight, committing nothing of it (its write failed or was cut off)."""
        self._in_flight = None

    def _commit_durable(self) -> None:
        """Commit the durable positions asynchronously, unless a commit is in flight."""
        if self._commit_in_flight or not self._durable:
            return  # The next call carries these offsets too.
        durable, self._durable = self._durable, {}
        offsets = self._moved(durable)
        if offsets:
            # Safe to commit asynchronously: if it is lost, the windows are judged
            # again under the same ids and archived to the same files.
            self._commit_in_flight = True
            self.consumer.commit_async(offsets, callback=self._commit_done)

    def _positions(self) -> dict[TopicPartition, int]:
        """Each partition's commit position now."""
        return {tp: state.position for tp, state in self._partitions.items()}

    def _moved(self, positions: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        """The positions that differ from the last commit, as offsets; marks them committed.

        Partitions revoked since the positions were taken are left out: not ours to commit.
        """
        offsets = {}
        for tp, position in positions.items():
            state = self._partitions.get(tp)
            if state is not None and position != state.committed:
                offsets[tp] = OffsetAndMetadata(position, "", -1)
                state.committed = position
        return offsets

    def _commit_done(self, offsets: Any, response: Any) -> None:
        self._commit_in_flight = False
        if isinstance(response, Exception):
            logger.warning("offset commit failed (the windows will be judged again): %s", response)
            for tp in offsets:
                if tp in self._partitions:
                    self._partitions[tp].committed = None
