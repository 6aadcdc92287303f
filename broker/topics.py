"""Create driftloop's topics when they do not exist yet."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from broker.errors import BrokerUnavailableError

if TYPE_CHECKING:
    from broker.settings import KafkaSettings

logger = logging.getLogger(__name__)


def connect_admin(servers: list[str], timeout: float = 10.0) -> KafkaAdminClient:
    """An admin client for ``servers``, waiting up to ``timeout`` seconds for a broker.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers in time.
    """
    try:
        return KafkaAdminClient(
            bootstrap_servers=servers,
            request_timeout_ms=5000,
            bootstrap_timeout_ms=int(timeout * 1000),
            client_id="driftloop-admin",
        )
    except (KafkaError, OSError) as err:
        raise BrokerUnavailableError(unreachable_message(servers, timeout)) from err


def unreachable_message(servers: list[str], timeout: float) -> str:
    """The one-line reason every process gives when no broker answers."""
    return (
        f"no Kafka broker answered at {','.join(servers)} within {timeout:.0f} s "
        "(start one with `make broker-start`, or set KAFKA_BOOTSTRAP_SERVERS)"
    )


def ensure_topics(
    servers: list[str],
    topics: Iterable[str],
    partitions: int | Mapping[str, int] = 1,
    timeout: float = 10.0,
) -> None:
    """Create each topic in ``topics`` that does not exist yet; existing ones are left as they are.

    Parameters
    ----------
    servers
        Bootstrap servers.
    topics
        Topic names.
    partitions
        Partitions of each topic created: one number for all, or a number per topic
        name (1 for a topic it does not name).
    timeout
        Seconds to wait for a broker.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``timeout`` seconds.
    """
    wanted = list(dict.fromkeys(topics))
    counts = {
        t: partitions if isinstance(partitions, int) else partitions.get(t, 1) for t in wanted
    }
    for topic, count in counts.items():
        if count < 1:
            raise ValueError(f"partitions of topic {topic!r} must be >= 1, got {count}")
    admin = connect_admin(servers, timeout)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        present = [t for t in wanted if t in existing]
        if present:
            logger.info(
                "topics exist, left as they are: %s",
                ", ".join(_described(admin, present)),
            )
        if not missing:
            return
        try:
            admin.create_topics(
                [NewTopic(t, num_partitions=counts[t], replication_factor=1) for t in missing]
            )
        except TopicAlreadyExistsError:
            pass  # Another process created it between our list and create.
        except KafkaError as err:
            raise BrokerUnavailableError(f"could not create topics {missing}: {err}") from err
        logger.info(
            "created topics %s", ", ".join(f"{t} ({_partitions(counts[t])})" for t in missing)
        )
    finally:
        admin.close()


def ensure_loop_topics(settings: KafkaSettings, timeout: float = 10.0) -> None:
    """Create the loop's five topics that do not exist yet, the rows topic with
    ``settings.rows_partitions`` partitions and the others with one.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``timeout`` seconds.
    """
    ensure_topics(
        settings.servers,
        [
            settings.rows_topic,
            settings.drift_topic,
            settings.model_updates_topic,
            settings.dlq_topic,
            settings.labels_topic,
        ],
        partitions={settings.rows_topic: settings.rows_partitions},
        timeout=timeout,
    )


def _described(admin: KafkaAdminClient, topics: list[str]) -> list[str]:
    """Each existing topic with its partition count."""
    try:
        found = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(topics)}
    except KafkaError:
        return topics  # Only for the log line: not worth failing a start over.
    return [f"{t} ({_partitions(found[t])})" if t in found else t for t in topics]


def _partitions(count: int) -> str:
    """
    >>> _partitions(1), _partitions(4)
    ('1 partition', '4 partitions')
    """
    return f"{count} partition" + ("" if count == 1 else "s")
