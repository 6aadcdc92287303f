"""confluent-kafka clients that speak the part of kafka-python's interface driftloop uses.

The consumer's loop is written against kafka-python (the project's named client):
``poll()`` returning records grouped by partition, ``seek``, ``committed`` with
metadata, ``group_metadata``, a rebalance listener, and a transactional producer
whose ``send`` returns a future. :class:`RowsConsumer` and
:class:`TransactionalProducer` give the same calls on confluent-kafka (librdkafka),
which reads a topic several times faster, so ``--client confluent`` runs the very
same loop, with the same transactions and commits.

Errors are translated into kafka-python's classes (:func:`translate`): a fenced
producer or instance id raises ``ProducerFencedError`` / ``FencedInstanceIdError``,
anything else a ``KafkaError``, so the code that handles them is one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import TopicPartition as ConfluentPartition
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata, TopicPartition

from broker.clients import new_record
from broker.errors import BrokerUnavailableError
from broker.settings import KafkaSettings
from broker.topics import unreachable_message

logger = logging.getLogger(__name__)

BOOTSTRAP_TIMEOUT_S = 10.0

_NO_OFFSET = -1001
"""librdkafka's ``RD_KAFKA_OFFSET_INVALID``: no committed offset, no watermark known."""

_FENCED = {
    ConfluentError._FENCED,
    ConfluentError.PRODUCER_FENCED,
    ConfluentError.INVALID_PRODUCER_EPOCH,
}


def translate(err: KafkaException) -> kafka_errors.KafkaError:
    """The kafka-python error for a confluent-kafka one, its text kept.

    >>> type(translate(KafkaException(ConfluentError(ConfluentError.FENCED_INSTANCE_ID))))
    <class 'kafka.errors.FencedInstanceIdError'>
    >>> type(translate(KafkaException(ConfluentError(ConfluentError.PRODUCER_FENCED))))
    <class 'kafka.errors.ProducerFencedError'>
    """
    error = err.args[0] if err.args and isinstance(err.args[0], ConfluentError) else None
    code = error.code() if error is not None else None
    text = error.str() if error is not None else str(err)
    if code == ConfluentError.FENCED_INSTANCE_ID:
        return kafka_errors.FencedInstanceIdError(text)
    if code in _FENCED:
        return kafka_errors.ProducerFencedError(text)
    return kafka_errors.KafkaError(text)


def _partitions(found: Iterable[ConfluentPartition]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in found}


class RowsConsumer:
    """A confluent-kafka consumer in a group, read like kafka-python's ``KafkaConsumer``.

    Offsets are committed only by the transactional producer (auto commit off), from
    the earliest offset when the group has none, reading committed messages only.

    Parameters
    ----------
    settings : KafkaSettings
        Where the brokers are.
    group_id, client_id : str
        The group and this client's id.
    group_instance_id : str, optional
        A static member's name (restarts get the partitions back at once).
    session_timeout_ms, heartbeat_interval_ms : int
        As in kafka-python.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_S``.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        client_id: str,
        group_instance_id: str | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 2_500,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(settings.servers),
            "group.id": group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat_interval_ms,
            "error_cb": _log_error,
        }
        if group_instance_id is not None:
            config["group.instance.id"] = group_instance_id
        self._consumer = Consumer(config, logger=logging.getLogger("confluent_kafka.consumer"))
        _check_reachable(settings, lambda timeout: self._consumer.list_topics(timeout=timeout))
        self._assigned: set[TopicPartition] = set()
        self._lock = threading.Lock()

    def subscribe(self, topics: list[str], listener: Any) -> None:
        """Subscribe; ``listener`` is a kafka-python ``ConsumerRebalanceListener``.

        librdkafka calls back inside :meth:`poll`, on the polling thread.
        """

        def assigned(consumer: Consumer, found: list[ConfluentPartition]) -> None:
            gained = _partitions(found)
            with self._lock:
                self._assigned |= gained
            listener.on_partitions_assigned(gained)

        def revoked(consumer: Consumer, found: list[ConfluentPartition]) -> None:
            lost = _partitions(found)
            listener.on_partitions_revoked(lost)
            with self._lock:
                self._assigned -= lost

        def lost(consumer: Consumer, found: list[ConfluentPartition]) -> None:
            gone = _partitions(found)
            listener.on_partitions_lost(gone)
            with self._lock:
                self._assigned -= gone

        self._consumer.subscribe(topics, on_assign=assigned, on_revoke=revoked, on_lost=lost)

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list[Any]]:
        """Up to ``max_records`` messages, grouped by partition in offset order."""
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout_ms / 1000)
        except KafkaException as err:
            raise translate(err) from err
        batch: dict[TopicPartition, list[Any]] = {}
        keys: dict[tuple[str, int], TopicPartition] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == ConfluentError._PARTITION_EOF:
                    continue
                raise translate(KafkaException(error))
            # A message without an error has a topic, a partition and an offset.
            where = (cast(str, message.topic()), cast(int, message.partition()))
            tp = keys.get(where)
            if tp is None:
                tp = keys[where] = TopicPartition(*where)
                batch[tp] = []
            batch[tp].append(new_record((*where, message.offset(), message.key(), message.value())))
        return batch

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer owns now."""
        with self._lock:
            return set(self._assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on; messages fetched past it are dropped."""
        try:
            self._consumer.seek(ConfluentPartition(tp.topic, tp.partition, offset))
        except KafkaException as err:
            raise translate(err) from err

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end offset as last fetched, or None if not known yet."""
        _, high = self._consumer.get_watermark_offsets(
            ConfluentPartition(tp.topic, tp.partition), cached=True
        )
        return None if high < 0 else high

    def committed(self, tp: TopicPartition, metadata: bool = False) -> Any:
        """The group's committed offset of ``tp`` (with its metadata), or None."""
        try:
            (found,) = self._consumer.committed(
                [ConfluentPartition(tp.topic, tp.partition)], timeout=BOOTSTRAP_TIMEOUT_S
            )
        except KafkaException as err:
            raise translate(err) from err
        if found.error is not None:
            raise translate(KafkaException(found.error))
        if found.offset == _NO_OFFSET:
            return None
        if not metadata:
            return found.offset
        return OffsetAndMetadata(found.offset, found.metadata or "", -1)

    def group_metadata(self) -> Any:
        """The group's generation as the transactional producer sends it with offsets."""
        return self._consumer.consumer_group_metadata()

    def close(self, autocommit: bool = False) -> None:
        """Leave the group and close (nothing is committed here)."""
        self._consumer.close()


class _Delivery:
    """The future of one send: :meth:`get` raises the delivery error, if any."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: ConfluentError | None = None

    def __call__(self, error: ConfluentError | None, message: Message) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise translate(KafkaException(self.error))


class TransactionalProducer:
    """A confluent-kafka transactional producer, called like kafka-python's.

    ``init_transactions`` runs in the constructor: the open transaction of an
    earlier producer with the same ``transactional_id`` is aborted and that
    producer fenced off.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_S``.
    """

    def __init__(
        self, settings: KafkaSettings, client_id: str, transactional_id: str, timeout_ms: int
    ) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": ",".join(settings.servers),
                "client.id": client_id,
                "transactional.id": transactional_id,
                "transaction.timeout.ms": timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "error_cb": _log_error,
            },
            logger=logging.getLogger("confluent_kafka.producer"),
        )
        _check_reachable(settings, lambda timeout: self._producer.list_topics(timeout=timeout))
        self._call(self._producer.init_transactions, 30.0)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except KafkaException as err:
            raise translate(err) from err

    def begin_transaction(self) -> None:
        self._call(self._producer.begin_transaction)

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Any = None,
    ) -> _Delivery:
        """Queue a message in the open transaction; its future raises a delivery error."""
        delivery = _Delivery()
        try:
            self._producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=delivery
            )
        except BufferError:
            self._producer.poll(0.1)  # Queue full: serve deliveries, then once more.
            self._producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=delivery
            )
        except KafkaException as err:
            raise translate(err) from err
        return delivery

    def send_offsets_to_transaction(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], group: Any
    ) -> None:
        """Commit the consumer's offsets (with metadata) in the open transaction."""
        found = [
            ConfluentPartition(tp.topic, tp.partition, at.offset, metadata=at.metadata)
            for tp, at in offsets.items()
        ]
        self._call(self._producer.send_offsets_to_transaction, found, group, 30.0)

    def commit_transaction(self) -> None:
        """Deliver every message of the transaction, then commit it."""
        self._call(self._producer.commit_transaction, 30.0)

    def abort_transaction(self) -> None:
        self._call(self._producer.abort_transaction, 30.0)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(30.0 if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (up to ``timeout`` s); the client is freed with the object."""
        self._producer.flush(5.0 if timeout is None else timeout)


def _check_reachable(settings: KafkaSettings, list_topics: Callable[[float], Any]) -> None:
    try:
        list_topics(BOOTSTRAP_TIMEOUT_S)
    except KafkaException as err:
        raise BrokerUnavailableError(
            unreachable_message(settings.servers, BOOTSTRAP_TIMEOUT_S)
        ) from err


def _log_error(error: ConfluentError) -> None:
    """librdkafka's client-wide errors: fatal ones at ERROR, the rest (it retries) at DEBUG."""
    level = logging.ERROR if error.fatal() else logging.DEBUG
    logger.log(level, "confluent-kafka: %s", error.str())
