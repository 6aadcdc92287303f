"""Dead letters: malformed rows sent to the dead-letter topic with their reason, and counted."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from kafka import KafkaProducer

from consumer.decoding import MalformedRowError
from consumer.metrics import ConsumerMetrics

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


class DeadLetters:
    """Sends each malformed record to the dead-letter topic, key and value unchanged.

    A malformed record never stops the loop: it is logged, counted by reason
    (in :attr:`counts` and the metrics) and sent. :meth:`wait` returns once every
    send is acknowledged, and raises if one failed: nothing past an unsent dead
    letter may be committed.

    Parameters
    ----------
    producer : kafka.KafkaProducer
        An idempotent ``acks=all`` producer.
    topic : str
        The dead-letter topic.
    metrics : ConsumerMetrics
        Where the count by reason also goes.
    """

    def __init__(self, producer: KafkaProducer, topic: str, metrics: ConsumerMetrics) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        """Dead letters sent since the start, by reason."""
        self._sends: list[Any] = []

    def send(self, record: Any, err: MalformedRowError) -> None:
        """Count, log and send one malformed ``record`` (a kafka-python ``ConsumerRecord``)."""
        self.counts[err.reason] += 1
        self.metrics.dead_letters.labels(reason=err.reason).inc()
        logger.warning(
            "dead-letter offset=%s/%d/%d reason=%s detail=%s",
            record.topic,
            record.partition,
            record.offset,
            err.reason,
            err.detail,
        )
        self._sends.append(
            self.producer.send(
                self.topic,
                key=record.key,
                value=record.value if record.value is not None else b"",
                headers=dead_letter_headers(record.topic, record.partition, record.offset, err),
            )
        )

    def wait(self) -> None:
        """Wait until every send is acknowledged; raise the delivery error if one failed.

        Returns at once when nothing was sent since the last call.
        """
        if not self._sends:
            return
        self.producer.flush()
        sends, self._sends = self._sends, []
        for future in sends:
            # Raises the delivery error: nothing is committed past an unsent dead letter.
            future.get(timeout=0)
