"""Assembly: the drift monitor built from settings, as every process that runs it needs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from broker import confluent
from broker.clients import manual_commit_consumer, transactional_producer, update_consumer
from broker.fetcher import FetchingConsumer
from broker.topics import ensure_loop_topics
from consumer.archive import WindowArchive
from consumer.champion import Champion, NoChampionError
from consumer.metrics import ConsumerMetrics
from consumer.model_updates import ModelUpdateFollower
from consumer.service import DriftMonitor
from consumer.settings import ConsumerSettings
from models.registry import Registry

logger = logging.getLogger(__name__)


def build_monitor(
    settings: ConsumerSettings,
    *,
    client_id: str = "driftloop-consumer",
    archive_root: Path | None = None,
    wrap_consumer: Callable[[Any], Any] | None = None,
) -> DriftMonitor:
    """The drift monitor for ``settings``, its clients connected; close it with ``close()``.

    In order: the registry must have a champion (checked before any broker is
    contacted); the four topics exist (created if missing, in one call; the rows topic with
    ``settings.rows_partitions`` partitions); the
    model-updates follower starts *before* the champion is loaded, so a promotion
    between the two is seen as an update rather than missed; then the
    transactional producer (which aborts a killed predecessor's transaction), the
    rows consumer (a static member of the group, as ``settings.member_id``) and
    the champion; the producer and the rows consumer are ``settings.client``'s
    (:mod:`broker.confluent` gives confluent-kafka kafka-python's calls; with
    kafka-python and ``settings.fetch_process``, the rows consumer's fetching runs in a
    process of its own, :mod:`broker.fetcher`). Metrics are served when
    ``settings.metrics_port`` is set. If a step fails, the clients already built
    are closed.

    Parameters
    ----------
    settings : ConsumerSettings
        Everything the consumer reads.
    client_id : str, default "driftloop-consumer"
        The rows consumer's client id; the producer's and the update follower's
        add ``-events`` and ``-updates``.
    archive_root : pathlib.Path, optional
        Where the archive goes (``<archive_root>/archive/...``); the artifact root
        by default.
    wrap_consumer : callable, optional
        Applied to the rows consumer before the monitor gets it (the benchmark
        clocks the partition assignment this way).

    Returns
    -------
    DriftMonitor

    Raises
    ------
    NoChampionError
        When no model has been promoted yet.
    models.registry.RegistryError
        When the champion's pointer or files are missing, corrupt or tampered with.
    broker.errors.BrokerUnavailableError
        When no broker answers, or the topics cannot be created.
    """
    registry = Registry.from_settings(settings)
    if registry.champion_version() is None:
        raise NoChampionError.in_registry(registry)
    ensure_loop_topics(settings)
    with ExitStack() as built:
        follower = update_consumer(settings, client_id=f"{client_id}-updates")
        built.callback(follower.close, autocommit=False)
        updates = ModelUpdateFollower(follower, settings.model_updates_topic, settings.model_name)
        confluent_kafka = settings.client == "confluent"
        producer = (confluent.TransactionalProducer if confluent_kafka else transactional_producer)(
            settings,
            client_id=f"{client_id}-events",
            transactional_id=settings.transactional_id,
            timeout_ms=settings.transaction_timeout_ms,
        )
        built.callback(producer.close)
        member: dict[str, Any] = {
            "group_id": settings.group_id,
            "client_id": client_id,
            "group_instance_id": settings.member_id,
            "session_timeout_ms": settings.session_timeout_ms,
            "heartbeat_interval_ms": settings.session_timeout_ms // 4,
        }
        consumer: confluent.RowsConsumer | FetchingConsumer | KafkaConsumer
        if confluent_kafka:
            consumer = confluent.RowsConsumer(settings, **member)
        elif settings.fetch_process:
            consumer = FetchingConsumer(
                settings, max_poll_records=settings.max_poll_records, **member
            )
        else:
            consumer = manual_commit_consumer(settings, **member)
        built.callback(consumer.close, autocommit=False)
        champion = Champion.from_registry(registry, settings)
        metrics = ConsumerMetrics()
        if settings.metrics_port is not None:
            metrics.serve(settings.metrics_port, settings.metrics_host)
            logger.info(
                "metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
            )
        monitor = DriftMonitor(
            settings,
            consumer if wrap_consumer is None else wrap_consumer(consumer),
            producer,
            champion,
            WindowArchive(
                settings.artifact_root if archive_root is None else archive_root,
                fsync=settings.archive_fsync,
                segment_bytes=int(settings.archive_segment_mib * 2**20),
                segment_seconds=settings.archive_segment_hours * 3600,
                retention_hours=settings.archive_retention_hours,
                retention_rows=settings.archive_retention_rows,
            ),
            registry=registry,
            updates=updates,
            metrics=metrics,
        )
        built.pop_all()  # Built: the monitor owns the clients now.
    return monitor
