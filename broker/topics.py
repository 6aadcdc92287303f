"""Create driftloop's topics when they do not exist yet."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from broker.errors import BrokerUnavailableError

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
    servers: list[str], topics: Iterable[str], partitions: int = 1, timeout: float = 10.0
) -> None:
    """Create each topic in ``topics`` that does not exist yet; existing ones are left as they are.

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``timeout`` seconds.
    """
    admin = connect_admin(servers, timeout)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if not missing:
            return
        try:
            admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
        except TopicAlreadyExistsError:
            pass  # Another process created it between our list and create.
        except KafkaError as err:
            raise BrokerUnavailableError(f"could not create topics {missing}: {err}") from err
        logger.info("created topics %s", ",".join(missing))
    finally:
        admin.close()
