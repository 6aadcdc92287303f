"""Kafka clients configured the way every driftloop process uses them."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from broker.errors import BrokerUnavailableError
from broker.topics import unreachable_message

if TYPE_CHECKING:
    from broker.settings import KafkaSettings

BOOTSTRAP_TIMEOUT_S = 10.0

POLL_TIMEOUT_MS = 500
"""How long a poll waits for records when the last poll found none."""

BUSY_POLL_TIMEOUT_MS = 10
"""How long a poll waits for records while they keep coming.

kafka-python 3 (3.0.12) can find no fetch in flight just after one completed, and
then sleeps ``retry_backoff_ms`` (100 ms) inside the poll, whatever its timeout
asks (measured: three such sleeps in a 100,000-row read, a fifth of its time); a
short timeout bounds the sleep. librdkafka's ``consume(n, timeout)`` waits for n
messages or the timeout, so a short one returns what is there sooner."""


class Record(NamedTuple):
    """A consumed message as the loop reads it: kafka-python's attributes, no more.

    What `broker.confluent.RowsConsumer` and `broker.fetcher.FetchingConsumer` return.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


new_record = partial(tuple.__new__, Record)
"""Builds a Record from a tuple of its fields without a Python call: a poll builds
thousands."""


class PollWait:
    """The timeout of the next poll: short while records keep coming, long once none came.

    A short wait that comes back empty is followed by a long one, so an idle topic
    is polled at the long wait's pace, and found idle only after a long wait.

    >>> wait = PollWait()
    >>> wait.ms, wait.after(found=True), wait.ms
    (500, False, 10)
    >>> wait.after(found=False), wait.ms, wait.after(found=False)
    (False, 500, True)
    """

    def __init__(self) -> None:
        self.ms = POLL_TIMEOUT_MS

    def after(self, found: bool) -> bool:
        """Note what a poll found; True when it found nothing in a long wait (idle)."""
        if found:
            self.ms = BUSY_POLL_TIMEOUT_MS
            return False
        if self.ms == BUSY_POLL_TIMEOUT_MS:
            self.ms = POLL_TIMEOUT_MS
            return False
        return True


def reliable_producer(settings: KafkaSettings, client_id: str, **overrides: Any) -> KafkaProducer:
    """A producer that loses nothing: idempotent, acknowledged by all in-sync replicas.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_S``.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "bootstrap_timeout_ms": int(BOOTSTRAP_TIMEOUT_S * 1000),
        "max_block_ms": 30000,
    }
    config.update(overrides)
    try:
        # kafka-python bootstraps in the constructor, so an unreachable broker
        # is reported here, at start-up, not on the first send.
        return KafkaProducer(**config)
    except KafkaError as err:
        raise BrokerUnavailableError(
            unreachable_message(settings.servers, BOOTSTRAP_TIMEOUT_S)
        ) from err


TRANSACTION_RETRY_BACKOFF_MS = 20
"""The transactional producer's wait before it retries a request. A transaction's first
request to the coordinator is refused (CONCURRENT_TRANSACTIONS) while the one before is
still writing its markers; kafka-python then waits its default 100 ms (only a first
AddPartitionsToTxn gets Java's 20), and the consumer commits a transaction a second:
one in ten took 100-280 ms instead of 15 (measured), holding up the archive thread."""


def transactional_producer(
    settings: KafkaSettings, client_id: str, transactional_id: str, timeout_ms: int
) -> KafkaProducer:
    """A producer whose sends and consumer offsets commit together, or not at all.

    Its transactions are ready to begin: ``init_transactions`` has run, which
    aborts the open transaction of an earlier producer with the same
    ``transactional_id`` (a killed predecessor) and fences it off for good.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_S``.
    """
    producer = reliable_producer(
        settings,
        client_id,
        transactional_id=transactional_id,
        transaction_timeout_ms=timeout_ms,
        retry_backoff_ms=TRANSACTION_RETRY_BACKOFF_MS,
    )
    try:
        producer.init_transactions()
    except BaseException:
        producer.close(timeout=0)
        raise
    return producer


def manual_commit_consumer(
    settings: KafkaSettings, group_id: str, client_id: str, **overrides: Any
) -> KafkaConsumer:
    """A consumer in ``group_id`` that commits only when told to, from the earliest offset.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_S``.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "bootstrap_timeout_ms": int(BOOTSTRAP_TIMEOUT_S * 1000),
    }
    config.update(overrides)
    try:
        return KafkaConsumer(**config)
    except KafkaError as err:
        raise BrokerUnavailableError(
            unreachable_message(settings.servers, BOOTSTRAP_TIMEOUT_S)
        ) from err


def update_consumer(settings: KafkaSettings, client_id: str) -> KafkaConsumer:
    """A consumer outside any group, for topics every instance reads whole (model updates).

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_S``.
    """
    try:
        return KafkaConsumer(
            bootstrap_servers=settings.servers,
            group_id=None,
            client_id=client_id,
            enable_auto_commit=False,
            bootstrap_timeout_ms=int(BOOTSTRAP_TIMEOUT_S * 1000),
        )
    except KafkaError as err:
        raise BrokerUnavailableError(
            unreachable_message(settings.servers, BOOTSTRAP_TIMEOUT_S)
        ) from err


def quiet_client_logs() -> None:
    """Keep kafka-python's own logging to what a person running a service needs.

    Its connection layer logs every refused connection at ERROR while it retries;
    driftloop reports an unreachable broker itself, in one line. And on a normal
    start it logs at ERROR what it then retries and gets past: a subscribed topic
    not yet in the cluster metadata (it is being created), and a group
    coordinator that is still loading or moving. `ExpectedClientNoise` turns
    those into DEBUG lines; every other error kafka-python logs is kept.
    """
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("kafka.net").setLevel(logging.CRITICAL)
    for name in ExpectedClientNoise.LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExpectedClientNoise) for f in logger.filters):
            logger.addFilter(ExpectedClientNoise())


class ExpectedClientNoise(logging.Filter):
    """Demotes kafka-python's ERROR lines for conditions it retries and a start-up expects.

    Demoted to DEBUG (shown only when the ``kafka`` loggers are at DEBUG):

    - ``Topic %s not found in cluster metadata``: a subscribed topic the broker's
      metadata does not list yet; the client asks again until it does.
    - ``Error sending %s to node %s [%s]`` and ``Group Coordinator lookup for group
      %s failed: %s`` with a retriable error (coordinator loading, not the
      coordinator, a timeout, a dropped connection): the client finds the
      coordinator again.

    Filters apply to the logger they are added to, not to its children, hence
    one per logger in `LOGGERS`.
    """

    LOGGERS = ("kafka.cluster", "kafka.coordinator", "kafka.coordinator.consumer")
    """The loggers kafka-python logs these lines on."""

    _MISSING_TOPIC = "Topic %s not found in cluster metadata"
    _RETRIED = (
        "Error sending %s to node %s [%s]",
        "Group Coordinator lookup for group %s failed: %s",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not self._expected(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

    def _expected(self, record: logging.LogRecord) -> bool:
        if record.msg == self._MISSING_TOPIC:
            return True
        if record.msg in self._RETRIED and isinstance(record.args, tuple) and record.args:
            error = record.args[-1]
            return isinstance(error, KafkaError) and bool(error.retriable)
        return False
