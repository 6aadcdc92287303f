"""RowMessage and LabelMessage: a row on the rows topic, its late label on the labels topic."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    field_validator,
)

SCHEMA_VERSION: Literal[1] = 1

STREAM_MAX_BYTES = 200
"""Longest stream name, in bytes of UTF-8: it fits a file name (255 bytes on common
file systems) with room to spare, as it names archive directories and Kafka keys."""

_STREAM_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
"""Control characters (C0, DEL, C1) and path separators."""


def check_stream_name(name: str) -> str:
    """``name`` if it may name a stream, else a ``ValueError`` saying why.

    A stream name is 1 to :data:`STREAM_MAX_BYTES` bytes of UTF-8 without control
    characters or path separators (``/``, ``\\``), and not ``.`` or ``..``: it
    becomes a Kafka key and a directory name in the window archive.

    >>> check_stream_name("iris")
    'iris'
    >>> check_stream_name("../etc")
    Traceback (most recent call last):
    ...
    ValueError: a stream name holds no control character or path separator, got '/' in '../etc'
    """
    if name in ("", ".", ".."):
        raise ValueError(f"a stream name is not empty, '.' or '..', got {name!r}")
    try:
        size = len(name.encode())
    except UnicodeEncodeError as err:
        raise ValueError(f"a stream name is valid Unicode, got {name[:40]!r}") from err
    if size > STREAM_MAX_BYTES:
        raise ValueError(
            f"a stream name is at most {STREAM_MAX_BYTES} bytes of UTF-8, got {size} "
            f"starting {name[:40]!r}"
        )
    bad = _STREAM_FORBIDDEN.search(name)
    if bad is not None:
        raise ValueError(
            "a stream name holds no control character or path separator, "
            f"got {bad.group()!r} in {name[:40]!r}"
        )
    return name


def _valid_stream(name: str) -> str:
    # Per row, so a name already checked costs a set lookup.
    if name not in _VALID_STREAMS:
        check_stream_name(name)
        if len(_VALID_STREAMS) >= 1024:
            _VALID_STREAMS.clear()
        _VALID_STREAMS.add(name)
    return name


_VALID_STREAMS: set[str] = set()
"""Stream names `check_stream_name` has passed, at most 1024."""


def _utc_representable(value: datetime) -> datetime:
    # Only times in the years 1 and 9999 can fall off the calendar when read in UTC.
    if value.year in (1, 9999):
        try:
            value.astimezone(UTC)
        except OverflowError as err:
            raise ValueError(f"{value.isoformat()} is outside the years 1 to 9999 in UTC") from err
    return value


def _no_boolean(value: object) -> object:
    # int would take true as 1: a boolean is no class of an integer-labelled model.
    if isinstance(value, bool):
        raise ValueError(f"a label is an integer or a string, not the boolean {value}")
    return value


class RowMessage(BaseModel):
    """One row of a data set, as the producer sends it.

    Readers ignore fields they do not know, so a producer may add fields
    without a new schema version; removing or changing one needs a new version.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    schema_version: Literal[1] = SCHEMA_VERSION
    """Version of this contract; a reader rejects versions it does not know."""

    stream: Annotated[str, AfterValidator(_valid_stream)]
    """Name of the stream (the data set being replayed); rows of one stream share windows.
    See `check_stream_name` for what a name may be."""

    seq: int = Field(ge=0)
    """Position of the row in the producer's replay, from 0."""

    event_time: Annotated[AwareDatetime, AfterValidator(_utc_representable)]
    """When the producer emitted the row (ISO 8601, UTC); any offset is taken if the
    time exists in UTC (years 1 to 9999)."""

    features: dict[str, StrictFloat | StrictStr | None]
    """Feature name to value: a finite number for a numeric feature, a string for a
    categorical one, null (None) for a missing value of either. ``NaN`` and
    ``Infinity`` are no JSON numbers and are refused."""

    label: int | str | None = None
    """The row's label, when the data set has one: an integer or a string, the type
    of the data set's classes. A JSON number with no fractional part (``2.0``) is the
    integer; a boolean is not a label."""

    @field_validator("label", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        return _no_boolean(value)

    def to_bytes(self) -> bytes:
        """UTF-8 JSON, the form on the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RowMessage:
        """Parse wire bytes; raises ``pydantic.ValidationError`` on anything malformed."""
        return cls.model_validate_json(data)


class LabelMessage(BaseModel):
    """A row's label sent after the row, on the labels topic (key: the stream name).

    The row is named by its stream and its RowMessage's ``seq``. Readers ignore
    fields they do not know, as for RowMessage.

    Examples
    --------
    >>> message = LabelMessage(stream="iris", seq=7, label=2,
    ...                        event_time=datetime(2026, 12, 1, tzinfo=UTC))
    >>> message.to_bytes()
    b'{"schema_version":1,"stream":"iris","seq":7,"label":2,"event_time":"2026-12-01T00:00:00Z"}'
    >>> LabelMessage.from_bytes(message.to_bytes()) == message
    True
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    schema_version: Literal[1] = SCHEMA_VERSION
    """Version of this contract; a reader rejects versions it does not know."""

    stream: Annotated[str, AfterValidator(_valid_stream)]
    """The stream of the row the label is for (see `check_stream_name`)."""

    seq: int = Field(ge=0)
    """The row's ``seq`` in its stream: the row id."""

    label: Annotated[int | str, BeforeValidator(_no_boolean)]
    """The row's label, of the type of the data set's classes (as RowMessage's label)."""

    event_time: Annotated[AwareDatetime, AfterValidator(_utc_representable)]
    """When the label became known (ISO 8601, UTC)."""

    def to_bytes(self) -> bytes:
        """UTF-8 JSON, the form on the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelMessage:
        """Parse wire bytes; raises ``pydantic.ValidationError`` on anything malformed."""
        return cls.model_validate_json(data)
