"""Turn a rows-topic message into a RowMessage, or say exactly why it is malformed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, Literal

from pydantic import Json, TypeAdapter, ValidationError

from producer.messages import SCHEMA_VERSION, LabelMessage, RowMessage

logger = logging.getLogger(__name__)

Reason = Literal[
    "not-json",
    "unknown-schema-version",
    "invalid-field",
    "non-finite-value",
    "wrong-feature-set",
    "unknown-label",
    "undecodable",
    "window-failed",
    "unknown-row",
]
"""Why a message is malformed. ``unknown-label``: a label that is not one of the
champion's classes, or of a type no class has. ``undecodable``: the decoder itself
failed on the message (a bug to report); the message is dead-lettered all the same.
``window-failed``: the row was valid, but judging its window failed (the detail
names the error); its window's rows are dead-lettered together. ``unknown-row``: a
Label for a row that cannot come any more (see ``consumer.labels``)."""

DETAIL_MAX_CHARS = 250
"""Longest detail a MalformedRowError keeps: a megabyte field name stays out of the logs,
and even in four-byte characters the detail fits the dead letter's 1000-byte header."""

_SHOWN = 10
"""Most names (features, classes) a detail lists."""

_MESSAGES: TypeAdapter[list[RowMessage]] = TypeAdapter(list[Json[RowMessage]])
"""Parses a list of wire values, each on its own, in one call."""


class MalformedRowError(ValueError):
    """A message that cannot enter a window; ``reason`` is a short code for counting.

    ``detail`` is cut to :data:`DETAIL_MAX_CHARS` characters and is always valid
    UTF-8 text, so it can go into a log line and a Kafka header as it is.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        detail = _short(detail, DETAIL_MAX_CHARS).encode("utf-8", "backslashreplace").decode()
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


class RowDecoder:
    """Parses and checks rows against the champion's feature set and classes.

    A decoded row's features are exactly ``feature_names``, finite floats, and its
    label is None (an unlabeled row) or one of ``classes``. Labels match by type
    and value: an integer class takes a JSON integer (or a number with no fractional
    part, ``1.0``), a string class the same string exactly (case and spaces count).
    ``"1"`` is not the integer class 1, ``1`` is not the string class ``"1"``, and
    ``true``/``false`` are no label at all. Any other label is ``unknown-label``.

    Parameters
    ----------
    feature_names
        The features every row must carry, no more and no fewer.
    classes
        The labels the champion knows (its estimator's ``classes_``): integers or
        strings, at least one.

    Raises
    ------
    ValueError
        If ``feature_names`` or ``classes`` is empty, or a class is neither an
        integer nor a string.

    Examples
    --------
    >>> decoder = RowDecoder(["a", "b"], classes=[0, 1, 2])
    >>> row = decoder.decode(b'{"schema_version": 1, "stream": "s", "seq": 0,'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"a": 1, "b": 2}, "label": 2}')
    >>> row.features, row.label
    ({'a': 1.0, 'b': 2.0}, 2)
    >>> try:
    ...     decoder.decode(b'{"schema_version": 1, "stream": "s", "seq": 0,'
    ...                    b' "event_time": "2026-01-01T00:00:00Z", "features": {"a": 1}}')
    ... except MalformedRowError as err:
    ...     print(err.reason, "-", err.detail)
    wrong-feature-set - missing b
    >>> try:
    ...     decoder.decode(b'{"schema_version": 1, "stream": "s", "seq": 0, "event_time":'
    ...         b' "2026-01-01T00:00:00Z", "features": {"a": 1, "b": 2}, "label": "setosa"}')
    ... except MalformedRowError as err:
    ...     print(err.reason, "-", err.detail)
    unknown-label - label 'setosa' (str) is not one of the model's 3 classes (int): 0, 1, 2
    """

    def __init__(self, feature_names: Sequence[str], classes: Sequence[int | str]) -> None:
        if not feature_names:
            raise ValueError("feature_names must name at least one feature")
        if not classes:
            raise ValueError("classes must name at least one class")
        odd = [c for c in classes if isinstance(c, bool) or not isinstance(c, int | str)]
        if odd:
            raise ValueError(f"classes must be integers or strings, got {odd[0]!r}")
        self.feature_names = tuple(feature_names)
        self.classes = tuple(dict.fromkeys(classes))
        """The champion's classes, each once, in the order given."""
        self._expected = frozenset(feature_names)
        # 1 and "1" differ in a set, and no label is a bool or a float (RowMessage).
        self._known = frozenset(self.classes)
        self._class_types = "/".join(sorted({type(c).__name__ for c in self.classes}))
        # itemgetter of one name returns the bare value, of several a tuple.
        pick = itemgetter(*self.feature_names)
        self._in_order: Callable[[dict[str, float]], tuple[float, ...]] = (
            pick if len(self.feature_names) > 1 else lambda features: (pick(features),)
        )

    def decode(self, value: bytes | None) -> RowMessage:
        """Parse ``value``; raise MalformedRowError with the reason when it is unusable.

        Nothing else is raised: should the decoder itself fail on a message, it is
        ``undecodable`` with the error's text, so that one message cannot stop the loop.
        """
        try:
            return self._decode(value)
        except MalformedRowError:
            raise
        except Exception as err:
            logger.exception("decoder failed on a message; dead-lettered as undecodable")
            raise MalformedRowError("undecodable", f"{type(err).__name__}: {err}") from err

    def decode_all(self, values: Sequence[bytes | None]) -> list[RowMessage | MalformedRowError]:
        """Decode a poll's values: for each, what :meth:`decode` returns or raises.

        When every value parses, they are parsed in one call, which costs a third
        less per row than a call each; otherwise row by row, so that each malformed
        row gets its own reason. Raises nothing.
        """
        wire = [value for value in values if value is not None]
        if len(wire) == len(values):
            try:
                messages = _MESSAGES.validate_python(wire)
                return [self._problem(message) or message for message in messages]
            except Exception:
                pass  # some row is malformed: row by row, each gets its own reason
        return [self._decode_or_error(value) for value in values]

    def _decode(self, value: bytes | None) -> RowMessage:
        if value is None:
            raise MalformedRowError("not-json", "empty message (tombstone)")
        try:
            message = RowMessage.from_bytes(value)
        except ValidationError as err:
            raise self._classify(err) from err
        problem = self._problem(message)
        if problem is not None:
            raise problem
        return message

    def _decode_or_error(self, value: bytes | None) -> RowMessage | MalformedRowError:
        try:
            return self.decode(value)
        except MalformedRowError as err:
            return err

    def _problem(self, message: RowMessage) -> MalformedRowError | None:
        """What is wrong with a parsed message that the schema alone lets through."""
        # The schema gives schema_version a default for writers; on the wire it is required.
        if "schema_version" not in message.model_fields_set:
            return MalformedRowError("unknown-schema-version", "schema_version is missing")
        if message.features.keys() != self._expected:
            got = message.features.keys()
            missing = sorted(self._expected - got)
            extra = sorted(got - self._expected)
            parts = [f"missing {_listing(missing)}"] if missing else []
            parts += [f"unexpected {_listing(extra)}"] if extra else []
            return MalformedRowError("wrong-feature-set", "; ".join(parts))
        label = message.label
        if label is not None and label not in self._known:
            return self._unknown_label(label)
        return None

    def _unknown_label(self, label: Any) -> MalformedRowError:
        return MalformedRowError(
            "unknown-label",
            f"label {_short(repr(label), 80)} ({type(label).__name__}) is not one of the "
            f"model's {len(self.classes)} classes ({self._class_types}): "
            f"{_listing(map(repr, self.classes), ', ')}",
        )

    def values(self, message: RowMessage) -> tuple[float, ...]:
        """The message's feature values in the champion's feature order."""
        return self._in_order(message.features)

    def _classify(self, err: ValidationError) -> MalformedRowError:
        first = err.errors(include_url=False)[0]
        kind = first["type"]
        loc = first["loc"]
        where = ".".join(str(part) for part in loc)
        if kind in ("json_invalid", "json_type"):
            return MalformedRowError("not-json", first["msg"])
        if kind == "model_type":
            return MalformedRowError("not-json", "the message is JSON but not an object")
        if loc == ("schema_version",):
            return MalformedRowError(
                "unknown-schema-version",
                f"schema_version {_short(repr(first.get('input')), 40)} is not {SCHEMA_VERSION}",
            )
        if loc and loc[0] == "label":
            # A label of no class's type (a float, a boolean, a list...) is foreign too.
            return self._unknown_label(first.get("input"))
        if kind == "finite_number":
            return MalformedRowError("non-finite-value", f"{where} is {first.get('input')}")
        return MalformedRowError("invalid-field", f"{where}: {first['msg']}")


class LabelDecoder(RowDecoder):
    """Parses and checks Labels (the labels topic) against the champion's classes.

    Malformed Labels get the reasons malformed rows get (``not-json``,
    ``unknown-schema-version``, ``invalid-field``, ``unknown-label``, ``undecodable``).

    Examples
    --------
    >>> decoder = LabelDecoder(classes=[0, 1, 2])
    >>> decoder.decode_label(b'{"schema_version": 1, "stream": "s", "seq": 4, "label": 2,'
    ...     b' "event_time": "2026-01-01T00:00:00Z"}').seq
    4
    >>> try:
    ...     decoder.decode_label(b'{"schema_version": 1, "stream": "s", "seq": 4, "label": 7,'
    ...                          b' "event_time": "2026-01-01T00:00:00Z"}')
    ... except MalformedRowError as err:
    ...     print(err.reason)
    unknown-label
    """

    def __init__(self, classes: Sequence[int | str]) -> None:
        super().__init__(["label"], classes)

    def decode_label(self, value: bytes | None) -> LabelMessage:
        """Parse ``value``; raise MalformedRowError with the reason when it is unusable."""
        try:
            if value is None:
                raise MalformedRowError("not-json", "empty message (tombstone)")
            try:
                message = LabelMessage.from_bytes(value)
            except ValidationError as err:
                raise self._classify(err) from err
            if "schema_version" not in message.model_fields_set:
                raise MalformedRowError("unknown-schema-version", "schema_version is missing")
            if message.label not in self._known:
                raise self._unknown_label(message.label)
            return message
        except MalformedRowError:
            raise
        except Exception as err:
            logger.exception("decoder failed on a label; dead-lettered as undecodable")
            raise MalformedRowError("undecodable", f"{type(err).__name__}: {err}") from err


def _short(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listing(names: Iterable[str], separator: str = ",") -> str:
    """Comma-separated names, at most :data:`_SHOWN` of them, each cut short."""
    shown: list[str] = []
    more = 0
    for name in names:
        if len(shown) < _SHOWN:
            shown.append(_short(name, 40))
        else:
            more += 1
    return separator.join(shown) + (f" and {more} more" if more else "")
