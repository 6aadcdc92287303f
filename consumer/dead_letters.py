"""Dead letters: malformed rows sent to the dead-letter topic with their reason, and counted."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaProducer

from consumer.decoding import MalformedRowError

logger = logging.getLogger(__name__)

REASON_HEADER = "driftloop.error.reason"
"""Header naming why the row was rejected (a `MalformedRowError` reason)."""
DETAIL_HEADER = "driftloop.error.detail"
"""Header with the decoder's detail, cut to 1000 bytes."""
DETAIL_MAX_BYTES = 1000


def dead_letter_headers(
    topic: str, partition: int, offset: int, err: MalformedRowError
) -> list[tuple[str, bytes]]:
    """The headers of a dead letter: the reason, its detail and where the row came from.

    >>> err = MalformedRowError("not-json", "Expecting value")
    >>> dead_letter_headers("rows", 0, 42, err)  # doctest: +NORMALIZE_WHITESPACE
    [('driftloop.error.reason', b'not-json'), ('driftloop.error.detail', b'Expecting value'),
     ('driftloop.source.topic', b'rows'), ('driftloop.source.partition', b'0'),
     ('driftloop.source.offset', b'42')]
    """
    return [
        (REASON_HEADER, err.reason.encode()),
        (DETAIL_HEADER, err.detail.encode()[:DETAIL_MAX_BYTES]),
        ("driftloop.source.topic", topic.encode()),
        ("driftloop.source.partition", str(partition).encode()),
        ("driftloop.source.offset", str(offset).encode()),
    ]


class CountsDeadLetters(Protocol):
    """Metrics with a ``dead_letters`` counter by reason (the consumer's, the companion's)."""

    dead_letters: Any


@dataclass(frozen=True)
class DeadLetter:
    """A rejected row, as it goes to the dead-letter topic: its bytes unchanged, and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: MalformedRowError


class DeadLetters:
    """Counts and logs each rejected row; sends a poll's dead letters in its transaction.

    A rejected row never stops the loop: :meth:`note` logs it and counts it by reason
    (in :attr:`counts` and the metrics) when it is rejected; :meth:`send` sends a
    poll's letters inside the transaction that commits the poll's offsets, so each
    reaches the dead-letter topic exactly once, key and value unchanged.

    Parameters
    ----------
    producer : kafka.KafkaProducer
        The transactional producer.
    topic : str
        The dead-letter topic.
    metrics : ConsumerMetrics or LabelMetrics
        Where the count by reason also goes.
    """

    def __init__(self, producer: KafkaProducer, topic: str, metrics: CountsDeadLetters) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        """Rows rejected since the start, by reason."""

    def note(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        err: MalformedRowError,
    ) -> DeadLetter:
        """Count and log one rejected row; the letter to send with its poll."""
        self.counts[err.reason] += 1
        self.metrics.dead_letters.labels(reason=err.reason).inc()
        logger.warning(
            "dead-letter offset=%s/%d/%d reason=%s detail=%s",
            topic,
            partition,
            offset,
            err.reason,
            err.detail,
        )
        return DeadLetter(topic, partition, offset, key, value, err)

    def send(self, letters: list[DeadLetter]) -> list[Any]:
        """Send ``letters`` (inside the open transaction); their futures."""
        return [
            self.producer.send(
                self.topic,
                key=letter.key,
                value=letter.value if letter.value is not None else b"",
                headers=dead_letter_headers(
                    letter.topic, letter.partition, letter.offset, letter.error
                ),
            )
            for letter in letters
        ]
