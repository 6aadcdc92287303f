"""Turn a rows-topic message into a row, or say exactly why it is malformed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from pydantic import Json, StrictFloat, TypeAdapter, ValidationError

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

UNSEEN_CATEGORIES_MAX = 10_000
"""Most categories unseen in the reference a decoder gives codes of their own, per feature;
later ones share the code of :data:`OTHER_CATEGORY`, so that a stream of ever new strings
(ids sent as a category) cannot grow the consumer's memory without bound."""

OTHER_CATEGORY = "<other unseen categories>"
"""The category string archived for the unseen categories past :data:`UNSEEN_CATEGORIES_MAX`."""


class _NumericRow(RowMessage):
    """A RowMessage whose features are all numeric: the schema refuses a string at once."""

    features: dict[str, StrictFloat | None]  # type: ignore[assignment]


_MESSAGES: TypeAdapter[list[RowMessage]] = TypeAdapter(list[Json[RowMessage]])
"""Parses a list of wire values, each on its own, in one call."""
_NUMERIC_MESSAGES: TypeAdapter[list[_NumericRow]] = TypeAdapter(list[Json[_NumericRow]])
"""The same, for a champion without categorical features."""


def _field_adapter(name: str, many: bool) -> TypeAdapter[Any]:
    """RowMessage's validation of its field ``name`` (of a list of them when ``many``)."""
    field = RowMessage.model_fields[name]
    annotated: Any = Annotated[(field.annotation, *field.metadata)]
    return TypeAdapter(list[annotated] if many else annotated)


_EVENT_TIMES = _field_adapter("event_time", many=True)
"""RowMessage's event time rule (aware, in the years 1 to 9999 in UTC), over a poll's times."""
_EVENT_TIME = _field_adapter("event_time", many=False)
_STREAM = _field_adapter("stream", many=False)
"""RowMessage's stream name rule (``producer.messages.check_stream_name``)."""

_EVENT_TIME_OF = attrgetter("event_time")
_STREAM_OF = attrgetter("stream")
_VALUES_OF = attrgetter("values")

_TRIAL = 64
"""Values of a poll msgspec tries one by one before it gives up on the poll, should it
refuse at least half of them."""

_STREAMS_KEPT = 1024
"""Most stream names a decoder remembers as valid (as ``producer.messages`` does)."""


class DecodedRow(msgspec.Struct, frozen=True, gc=False):
    """A valid row as the consumer keeps it in a window: what :meth:`RowDecoder.decode_all` gives.

    ``stream``, ``seq``, ``event_time`` and ``label`` are the RowMessage's;
    ``values`` are its features in the decoder's feature order: floats for the
    numeric features, strings for the categorical ones, None for a missing value
    (:meth:`RowDecoder.values` turns the strings into codes).

    Examples
    --------
    >>> decoder = RowDecoder(["b", "a"], classes=[0])
    >>> [row] = decoder.decode_all([b'{"schema_version": 1, "stream": "s", "seq": 0,'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"a": 1, "b": 2}}'])
    >>> row.stream, row.seq, row.label, row.values
    ('s', 0, None, (2.0, 1.0))
    """

    stream: str
    seq: int
    event_time: datetime
    label: int | str | None
    values: tuple[float | str | None, ...]


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

    A decoded row's features are exactly ``feature_names``: finite floats for the
    numeric features, strings for the ``categories``' features, None (JSON null) for a
    missing value of either; its label is None (an unlabeled row) or one of
    ``classes``. A string for a numeric feature, or a number for a categorical one,
    is ``invalid-field``; ``NaN`` and ``Infinity`` are ``non-finite-value``. Labels match by type
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
    categories
        The categorical features' category lists (the version's ``categories``): a
        string's code in :meth:`values` is its position. A string not in its list gets
        the next free code, kept for as long as the decoder lives (see
        :attr:`categories`).

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

    A categorical feature's string becomes its code, an unseen one the next code, a
    null NaN:

    >>> decoder = RowDecoder(["c", "n"], classes=[0], categories={"c": ["x", "y"]})
    >>> rows = decoder.decode_all([b'{"schema_version": 1, "stream": "s", "seq": 0,'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"c": "z", "n": null}}',
    ...     b'{"schema_version": 1, "stream": "s", "seq": 1,'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"c": 1, "n": 2}}'])
    >>> decoder.values(rows[0]), decoder.categories["c"]
    ((2.0, None), ['x', 'y', 'z'])
    >>> print(rows[1].reason, "-", rows[1].detail)
    invalid-field - features.c: categorical, takes a string or null, got 1.0

    :meth:`decode_all` reads a poll with msgspec first, its event times and new
    stream names with RowMessage's own rules: a value so proven valid becomes a
    :class:`DecodedRow` at once; any other value (malformed, or merely unusual: a
    label written ``2.0``, a repeated key msgspec refuses, an extra field holding a
    list or an object) takes the pydantic path of :meth:`decode`, the one source of
    reasons and details, so both paths give the same row or the same error
    (``tests/unit/test_decoding_fast.py``).
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        classes: Sequence[int | str],
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not feature_names:
            raise ValueError("feature_names must name at least one feature")
        if not classes:
            raise ValueError("classes must name at least one class")
        odd = [c for c in classes if isinstance(c, bool) or not isinstance(c, int | str)]
        if odd:
            raise ValueError(f"classes must be integers or strings, got {odd[0]!r}")
        categories = dict(categories or {})
        unknown = sorted(set(categories) - set(feature_names))
        if unknown:
            raise ValueError(f"categories name features that are not in feature_names: {unknown}")
        self.feature_names = tuple(feature_names)
        self.categories: dict[str, list[str]] = {
            name: list(categories[name]) for name in self.feature_names if name in categories
        }
        """Each categorical feature's strings by code: the champion's, then the unseen ones
        in the order they came. Append-only: a code, once given, keeps its string."""
        self._codes = {
            name: {value: float(code) for code, value in enumerate(strings)}
            for name, strings in self.categories.items()
        }
        self._unseen_room = dict.fromkeys(self.categories, UNSEEN_CATEGORIES_MAX)
        self._slots = [
            (i, name) for i, name in enumerate(self.feature_names) if name in self.categories
        ]
        self._messages = _MESSAGES if self.categories else _NUMERIC_MESSAGES
        self._message_type: type[RowMessage] = RowMessage if self.categories else _NumericRow
        self.classes = tuple(dict.fromkeys(classes))
        """The champion's classes, each once, in the order given."""
        self._expected = frozenset(feature_names)
        # 1 and "1" differ in a set, and no label is a bool or a float (RowMessage).
        self._known = frozenset(self.classes)
        self._class_types = "/".join(sorted({type(c).__name__ for c in self.classes}))
        # itemgetter of one name returns the bare value, of several a tuple.
        pick = itemgetter(*self.feature_names)
        self._in_order: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            pick if len(self.feature_names) > 1 else lambda features: (pick(features),)
        )
        self._wire = _wire_decoders(self.feature_names, self.categories)
        # None is "no label": with the classes, one set lookup checks a label.
        self._labels = frozenset([*self.classes, None])
        self._streams: set[str] = set()
        """Stream names RowMessage's rule has passed, at most :data:`_STREAMS_KEPT`."""

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

    def decode_all(self, values: Sequence[bytes | None]) -> list[DecodedRow | MalformedRowError]:
        """Decode a poll's values: for each, a :class:`DecodedRow` or :meth:`decode`'s error.

        Each row is the :meth:`row` of the message :meth:`decode` returns, and each
        error has its reason and detail. A poll of values msgspec proves valid costs
        about a quarter of what pydantic's path does; the other values take that path
        (in one call when they all parse, else one by one, so that each malformed row
        gets its own reason). Raises nothing.
        """
        decoded: list[DecodedRow | None] = self._fast(values)
        slow = [i for i, row in enumerate(decoded) if row is None]
        if not slow:
            return decoded  # type: ignore[return-value]  # no None left
        out: list[DecodedRow | MalformedRowError] = decoded  # type: ignore[assignment]
        for i, message in zip(slow, self._slow([values[i] for i in slow]), strict=True):
            if isinstance(message, MalformedRowError):
                out[i] = message
            else:
                self._remember_stream(message.stream)
                out[i] = self.row(message)
        return out

    def row(self, message: RowMessage) -> DecodedRow:
        """``message`` as :meth:`decode_all` gives it: a :class:`DecodedRow`."""
        return DecodedRow(
            message.stream,
            message.seq,
            message.event_time,
            message.label,
            self._in_order(message.features),
        )

    def _fast(self, values: Sequence[bytes | None]) -> list[DecodedRow | None]:
        """The rows msgspec proves valid; None for every value pydantic must judge."""
        if self._wire is None:
            return [None] * len(values)
        try:
            wires = list(map(self._wire[0].decode, values))  # type: ignore[arg-type]  # None raises
        except Exception:
            return self._fast_some(values)
        return self._rows(wires)

    def _fast_some(self, values: Sequence[bytes | None]) -> list[DecodedRow | None]:
        """:meth:`_fast` of a poll some of whose values the strict decoder refuses.

        The lax decoder takes the rows that only carry a field RowMessage lacks (a
        newer producer's), if :func:`_skips_only_scalars` vouches for what it skipped.
        """
        assert self._wire is not None
        decode = self._wire[1].decode
        wires: list[Any]
        try:
            wires = list(map(decode, values))  # type: ignore[arg-type]  # None raises
        except Exception:
            wires = []
            for i, value in enumerate(values):
                if i == _TRIAL and sum(w is not None for w in wires) < _TRIAL // 2:
                    # Mostly refused: each attempt would cost a third of what pydantic's
                    # path does, for nothing.
                    wires += [None] * (len(values) - i)
                    break
                wires.append(_or_none(decode, value))
        wires = [
            None if w is None or not _skips_only_scalars(value) else w  # type: ignore[arg-type]
            for w, value in zip(wires, values, strict=True)
        ]
        taken = iter(self._rows([w for w in wires if w is not None]))
        return [None if w is None else next(taken) for w in wires]

    def _rows(self, wires: list[Any]) -> list[DecodedRow | None]:
        """The rows of msgspec's ``wires``; None for those RowMessage's rules must judge."""
        times = self._event_times(list(map(_EVENT_TIME_OF, wires)))
        streams, labels = self._streams, self._labels
        for name in set(map(_STREAM_OF, wires)) - streams:
            self._check_stream(name)
        astuple = msgspec.structs.astuple
        return [
            DecodedRow(w.stream, w.seq, time, w.label, astuple(w.features))
            if time is not None and w.stream in streams and w.label in labels
            else None
            for w, time in zip(wires, times, strict=True)
        ]

    def _event_times(self, texts: list[str]) -> list[datetime | None]:
        """RowMessage's event times of ``texts``: None where its rule refuses one."""
        try:
            return _EVENT_TIMES.validate_python(texts)
        except ValidationError:
            return [_or_none(_EVENT_TIME.validate_python, text) for text in texts]

    def _check_stream(self, name: str) -> None:
        """Remember ``name`` if RowMessage's rule takes it; else its rows take pydantic's path."""
        try:
            _STREAM.validate_python(name)
        except Exception:
            return  # pydantic's path says why (or that the rule itself failed)
        self._remember_stream(name)

    def _remember_stream(self, name: str) -> None:
        if len(self._streams) >= _STREAMS_KEPT:
            self._streams.clear()
        self._streams.add(name)

    def _slow(self, values: Sequence[bytes | None]) -> list[RowMessage | MalformedRowError]:
        """What :meth:`decode` gives for each value, with pydantic.

        When every value parses, they are parsed in one call, which costs a third
        less per row than a call each; otherwise row by row, so that each malformed
        row gets its own reason.
        """
        wire = [value for value in values if value is not None]
        if len(wire) == len(values):
            try:
                messages = self._messages.validate_python(wire)
                return [self._problem(message) or message for message in messages]
            except Exception:
                pass  # some row is malformed: row by row, each gets its own reason
        return [self._decode_or_error(value) for value in values]

    def _decode(self, value: bytes | None) -> RowMessage:
        if value is None:
            raise MalformedRowError("not-json", "empty message (tombstone)")
        try:
            message = self._message_type.model_validate_json(value)
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
        if self._slots:
            kind = self._wrong_kind(message.features)
            if kind is not None:
                return kind
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

    def _wrong_kind(self, features: dict[str, Any]) -> MalformedRowError | None:
        """A numeric feature given a string, or a categorical one a number."""
        for name, value in features.items():
            if value is None:
                continue
            if name in self._codes:
                if not isinstance(value, str):
                    return MalformedRowError(
                        "invalid-field",
                        f"features.{_short(name, 40)}: categorical, takes a string or null, "
                        f"got {_short(repr(value), 40)}",
                    )
            elif isinstance(value, str):
                return MalformedRowError(
                    "invalid-field",
                    f"features.{_short(name, 40)}: numeric, takes a number or null, "
                    f"got {_short(repr(value), 40)}",
                )
        return None

    def values(self, row: DecodedRow) -> tuple[float | None, ...]:
        """The row's feature values in the champion's feature order, categories as codes.

        None stands for a missing value (a float64 array built from the values holds
        NaN there). An unseen category gets the next code of its feature, in the order
        the rows are asked for. (A RowMessage from :meth:`decode`: ``values(row(message))``.)
        """
        values: Any = row.values
        if not self._slots:
            return values
        out = list(values)
        for i, name in self._slots:
            value = out[i]
            if value is not None:
                code = self._codes[name].get(value)
                out[i] = self._unseen(name, value) if code is None else code
        return tuple(out)

    def matrix(self, rows: Sequence[DecodedRow]) -> np.ndarray:
        """The rows' :meth:`values` as a float64 matrix (rows x features), NaN where missing.

        >>> decoder = RowDecoder(["a", "b"], classes=[0])
        >>> [row] = decoder.decode_all([b'{"schema_version": 1, "stream": "s", "seq": 0,'
        ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"a": 1, "b": null}}'])
        >>> decoder.matrix([row, row])
        array([[ 1., nan],
               [ 1., nan]])
        """
        if self._slots:
            return np.array([self.values(row) for row in rows], dtype=np.float64)
        if rows:
            # np.fromiter reads the values a third faster than np.array reads tuples, and
            # the same way (None is NaN); on anything odd, np.array gives its own answer.
            features = len(self.feature_names)
            flat = chain.from_iterable(map(_VALUES_OF, rows))
            try:
                every = np.fromiter(flat, np.float64, count=len(rows) * features)
            except (TypeError, ValueError):
                pass
            else:
                return every.reshape(len(rows), features)
        return np.array([row.values for row in rows], dtype=np.float64)

    def _unseen(self, name: str, value: str) -> float:
        """The code of a category the champion's reference lacks: the next free one."""
        codes, strings = self._codes[name], self.categories[name]
        if self._unseen_room[name] == 0:
            value = OTHER_CATEGORY
            if value in codes:
                return codes[value]
            logger.warning(
                "feature=%s has sent %d categories unseen in the reference; "
                "later ones share one code (%s)",
                name,
                UNSEEN_CATEGORIES_MAX,
                OTHER_CATEGORY,
            )
        else:
            self._unseen_room[name] -= 1
        code = codes[value] = float(len(strings))
        strings.append(value)
        return code

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
            where = ".".join(str(part) for part in loc[:2])
            return MalformedRowError("non-finite-value", f"{where} is {first.get('input')}")
        if len(loc) >= 2 and loc[0] == "features":
            name = str(loc[1])
            takes = (
                "categorical, takes a string or null"
                if name in self._codes
                else "numeric, takes a number or null"
                if name in self._expected
                else "takes a number, a string or null"
            )
            return MalformedRowError(
                "invalid-field",
                f"features.{_short(name, 40)}: {takes}, got {_short(repr(first.get('input')), 40)}",
            )
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


def _wire_decoders(
    feature_names: tuple[str, ...], categories: Mapping[str, Any]
) -> tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]] | None:
    """msgspec decoders of RowMessages that take only what RowMessage surely takes.

    Stricter than RowMessage, never laxer: schema_version present and 1, exactly the
    features, each a float or null (a string or null for a categorical one), a label
    that is an integer, a string or null (not ``2.0``). Their features come out as a
    struct whose fields are in ``feature_names``' order; the event time stays text, for
    RowMessage's own rule. The first takes no field beyond RowMessage's, so nothing is
    skipped unchecked; the second skips other fields, for :func:`_skips_only_scalars`
    to vouch for. None when feature names repeat (no struct holds them).
    """
    if len(set(feature_names)) != len(feature_names):
        return None
    slots = [f"f{i}" for i in range(len(feature_names))]
    features = msgspec.defstruct(
        "WireFeatures",
        [
            (slot, str | None if name in categories else float | None)
            for slot, name in zip(slots, feature_names, strict=True)
        ],
        rename=dict(zip(slots, feature_names, strict=True)),
        forbid_unknown_fields=True,
        gc=False,  # no cycles: the collector need not track a poll's worth of them
    )
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        ("schema_version", Literal[1]),
        ("stream", str),
        ("seq", Annotated[int, msgspec.Meta(ge=0)]),
        ("event_time", str),
        ("features", features),
        ("label", int | str | None, None),
    ]
    strict, lax = (
        msgspec.json.Decoder(
            msgspec.defstruct("WireRow", fields, forbid_unknown_fields=forbid, gc=False)
        )
        for forbid in (True, False)
    )
    return strict, lax


def _skips_only_scalars(value: bytes) -> bool:
    """Whether all a row's fields msgspec may have skipped are short scalars.

    msgspec checks the syntax of what it skips, but not all pydantic checks: that the
    bytes are UTF-8, that nesting stays within its depth, that an integer has at most
    4,300 digits. A row that msgspec read as a RowMessage holds two objects (itself and
    its features); with no other bracket, in UTF-8 and under 4,000 bytes, what it
    skipped are strings, numbers, booleans and nulls pydantic takes too.
    """
    return (
        len(value) < 4000
        and value.count(b"{") == 2
        and b"[" not in value
        and (value.isascii() or _or_none(bytes.decode, value) is not None)
    )


def _or_none(parse: Callable[[Any], Any], value: Any) -> Any:
    """``parse(value)``, or None if it raises."""
    try:
        return parse(value)
    except Exception:
        return None


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
