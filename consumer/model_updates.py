"""Following the model-updates topic, so every consumer instance switches champions live."""

from __future__ import annotations

import logging

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from models.promotion import ModelUpdate

logger = logging.getLogger(__name__)


class ModelUpdateFollower:
    """Reads every ModelUpdate for one model name, from the moment it starts.

    Not part of a consumer group: every instance reads every update. Start it
    *before* loading the champion from the registry, so no promotion can fall
    between the registry read and the first update read.

    Parameters
    ----------
    consumer
        A KafkaConsumer without a group id.
    topic
        The model-updates topic.
    model_name
        Updates for other models are ignored.
    """

    def __init__(self, consumer: KafkaConsumer, topic: str, model_name: str) -> None:
        self.consumer = consumer
        self.topic = topic
        self.model_name = model_name
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise ValueError(f"topic {topic!r} has no partitions; create it first")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_end(*assigned)
        for tp in assigned:
            consumer.position(tp)  # Resolve the end offset now, not at the first poll.

    def poll(self) -> ModelUpdate | None:
        """The newest update for this model that arrived since the last call, if any."""
        newest: ModelUpdate | None = None
        for records in self.consumer.poll(timeout_ms=0).values():
            for record in records:
                try:
                    update = ModelUpdate.from_bytes(record.value)
                except (ValidationError, TypeError) as err:
                    logger.warning(
                        "ignoring malformed model update at offset %d: %s", record.offset, err
                    )
                    continue
                if update.model_name == self.model_name and (
                    newest is None or update.version > newest.version
                ):
                    newest = update
        return newest

    def close(self) -> None:
        self.consumer.close(autocommit=False)
