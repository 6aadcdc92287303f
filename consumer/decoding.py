"""Turn a rows-topic message into a RowMessage, or say exactly why it is malformed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import ValidationError

from producer.messages import SCHEMA_VERSION, RowMessage

Reason = Literal[
    "not-json", "unknown-schema-version", "invalid-field", "non-finite-value", "wrong-feature-set"
]


class MalformedRowError(ValueError):
    """A message that cannot enter a window; ``reason`` is a short code for counting."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


class RowDecoder:
    """Parses and checks rows against the champion's feature set.

    Parameters
    ----------
    feature_names
        The features every row must carry, no more and no fewer.

    Examples
    --------
    >>> decoder = RowDecoder(["a", "b"])
    >>> row = decoder.decode(b'{"schema_version": 1, "stream": "s", "seq": 0,'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"a": 1, "b": 2}}')
    >>> row.features
    {'a': 1.0, 'b': 2.0}
    >>> try:
    ...     decoder.decode(b'{"schema_version": 1, "stream": "s", "seq": 0,'
    ...                    b' "event_time": "2026-01-01T00:00:00Z", "features": {"a": 1}}')
    ... except MalformedRowError as err:
    ...     print(err.reason, "-", err.detail)
    wrong-feature-set - missing b
    """

    def __init__(self, feature_names: Sequence[str]) -> None:
        if not feature_names:
            raise ValueError("feature_names must name at least one feature")
        self.feature_names = tuple(feature_names)
        self._expected = frozenset(feature_names)

    def decode(self, value: bytes | None) -> RowMessage:
        """Parse ``value``; raise MalformedRowError with the reason when it is unusable."""
        if value is None:
            raise MalformedRowError("not-json", "empty message (tombstone)")
        try:
            message = RowMessage.from_bytes(value)
        except ValidationError as err:
            raise _classify(err) from err
        # The schema gives schema_version a default for writers; on the wire it is required.
        if b'"schema_version"' not in value:
            raise MalformedRowError("unknown-schema-version", "schema_version is missing")
        if message.features.keys() != self._expected:
            got = message.features.keys()
            missing = sorted(self._expected - got)
            extra = sorted(got - self._expected)
            parts = [f"missing {','.join(missing)}"] if missing else []
            parts += [f"unexpected {','.join(extra)}"] if extra else []
            raise MalformedRowError("wrong-feature-set", "; ".join(parts))
        return message

    def values(self, message: RowMessage) -> list[float]:
        """The message's feature values in the champion's feature order."""
        features = message.features
        return [features[name] for name in self.feature_names]


def _classify(err: ValidationError) -> MalformedRowError:
    first = err.errors(include_url=False)[0]
    kind = first["type"]
    where = ".".join(str(part) for part in first["loc"])
    if kind in ("json_invalid", "json_type"):
        return MalformedRowError("not-json", first["msg"])
    if kind == "model_type":
        return MalformedRowError("not-json", "the message is JSON but not an object")
    if first["loc"] == ("schema_version",):
        return MalformedRowError(
            "unknown-schema-version",
            f"schema_version {first.get('input')!r} is not {SCHEMA_VERSION}",
        )
    if kind == "finite_number":
        return MalformedRowError("non-finite-value", f"{where} is {first.get('input')}")
    return MalformedRowError("invalid-field", f"{where}: {first['msg']}")
