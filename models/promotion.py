"""ModelUpdate: the announcement that a new champion serves, and the messages that carry it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.registry import REFERENCE_FILE, ChampionPointer, Registry

SCHEMA_VERSION: Literal[1] = 1


class ModelUpdate(BaseModel):
    """Published on the model-updates topic after a challenger is promoted, or a version by hand.

    Every consumer instance reads every update and reloads the champion it names.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", use_attribute_docstrings=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    """Version of this contract."""
    model_name: str = Field(min_length=1)
    """The model whose champion changed; also the message key."""
    version: int = Field(ge=1)
    """The new champion version."""
    previous_version: int | None = Field(default=None, ge=1)
    """The champion it replaced."""
    drift_event_id: str | None = None
    """The drift event that caused the retrain."""
    challenger_metrics: dict[str, float]
    """The new version's scores on the held-out recent rows."""
    champion_metrics: dict[str, float]
    """The replaced champion's scores on the same rows."""
    model_path: str
    """Directory of the new version in the registry."""
    reference_path: str
    """The new version's reference data (``reference.npy``)."""
    reference_sha256: str
    """sha256 of the reference data, as the consumer's drift events will report it."""
    promoted_at: AwareDatetime
    """When the champion pointer switched (UTC)."""
    promoted_by: Literal["training", "retraining", "hand"] | None = None
    """Who switched it: a retrain's promotion gate, or a person (a rollback by hand)."""
    reason: str | None = None
    """Why, in the words of whoever switched it."""

    @classmethod
    def announcing(
        cls, registry: Registry, pointer: ChampionPointer, drift_event_id: str | None = None
    ) -> ModelUpdate:
        """The update that announces ``pointer``, the champion switch just made in ``registry``.

        The metrics are the new version's comparison with the champion it replaced
        when it was a challenger, else its own scores (and none for the other).
        """
        metadata = registry.metadata(pointer.version)
        directory = registry.version_dir(pointer.version)
        return cls(
            model_name=registry.model_name,
            version=pointer.version,
            previous_version=pointer.previous_version,
            drift_event_id=drift_event_id,
            challenger_metrics=metadata.challenger_metrics or metadata.metrics,
            champion_metrics=metadata.champion_metrics or {},
            model_path=directory.as_posix(),
            reference_path=(directory / REFERENCE_FILE).as_posix(),
            reference_sha256=metadata.reference_sha256,
            promoted_at=pointer.promoted_at,
            promoted_by=pointer.promoted_by,
            reason=pointer.reason,
        )

    def to_bytes(self) -> bytes:
        """UTF-8 JSON, the form on the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelUpdate:
        """Parse wire bytes; raises ``pydantic.ValidationError`` on anything malformed."""
        return cls.model_validate_json(data)


def update_messages(update_json: str) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) message for a ModelUpdate, for the Kafka provider's produce operator.

    ``update_json`` is the update as JSON text (how it travels between tasks).
    """
    update = ModelUpdate.model_validate_json(update_json)
    yield update.model_name.encode(), update.to_bytes()


def raise_on_delivery_error(err: object, message: object) -> None:
    """Delivery callback for the produce operator: fail the task if the update was not delivered.

    The provider's default callback only logs, which would let a run mark its event
    handled with no ModelUpdate on the topic. confluent-kafka re-raises this from ``flush()``.
    """
    if err is not None:
        raise RuntimeError(f"model update not delivered: {err}")
