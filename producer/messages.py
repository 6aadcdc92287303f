"""RowMessage: one data set row on the rows topic, the producer's contract."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat

SCHEMA_VERSION: Literal[1] = 1


class RowMessage(BaseModel):
    """One row of a data set, as the producer sends it.

    Readers ignore fields they do not know, so a producer may add fields
    without a new schema version; removing or changing one needs a new version.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    schema_version: Literal[1] = SCHEMA_VERSION
    """Version of this contract; a reader rejects versions it does not know."""

    stream: str = Field(min_length=1)
    """Name of the stream (the data set being replayed); also the message key."""

    seq: int = Field(ge=0)
    """Position of the row in the producer's replay, from 0."""

    event_time: AwareDatetime
    """When the producer emitted the row (ISO 8601, UTC)."""

    features: dict[str, StrictFloat]
    """Feature name to value; finite numbers only."""

    label: int | str | None = None
    """The row's label, when the data set has one."""

    def to_bytes(self) -> bytes:
        """UTF-8 JSON, the form on the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RowMessage:
        """Parse wire bytes; raises ``pydantic.ValidationError`` on anything malformed."""
        return cls.model_validate_json(data)
