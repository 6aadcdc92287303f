"""DriftEvent: the result of judging one window, the consumer's contract."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

if TYPE_CHECKING:
    # For annotations only: readers of the contract (the retraining DAG) do not
    # pay for importing the detector's SciPy or the registry.
    from consumer.detection import Backend, Correction, DriftResult
    from consumer.windowing import Window
    from models.registry import VersionMetadata

SCHEMA_VERSION: Literal[1] = 1
SCHEMA_MINOR = 2
"""Additions to version 1 that old readers may ignore: 1 adds ``alarm`` and ``episode``;
2 adds ``categorical_features`` and ``missing_shares``.

``window.closed_by`` is written only by consumers whose windows close on time
(absent otherwise), so it needs no minor of its own: events of consumers without
time windows keep their exact form."""


class TimedRow(Protocol):
    """What an event reads of a window's rows: a `RowMessage`, or the consumer's row."""

    @property
    def stream(self) -> str: ...

    @property
    def event_time(self) -> datetime: ...


class WindowRef(BaseModel):
    """Where a window's rows lie in Kafka."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: str
    """Topic the rows were read from."""
    partition: int = Field(ge=0)
    """Partition the rows were read from; windows never span partitions."""
    first_offset: int = Field(ge=0)
    """Offset of the window's first row."""
    last_offset: int = Field(ge=0)
    """Offset of the window's last row (dead-lettered offsets may lie between)."""
    size: int = Field(gt=0)
    """Number of rows in the window."""
    first_event_time: AwareDatetime
    """Event time of the first row."""
    last_event_time: AwareDatetime
    """Event time of the last row."""
    closed_by: Literal["rows", "time"] | None = None
    """Why the window closed, when the consumer closes windows on time too
    (``--window-seconds``): ``rows`` (it was full) or ``time`` (its span of event
    time was over). Absent (None) when windows close on rows only: every window is
    full."""

    @model_serializer(mode="wrap")
    def _closed_by_when_known(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # Left out, not null, when windows close on rows only: such events keep the
        # exact form they had before time windows.
        data: dict[str, object] = handler(self)
        if self.closed_by is None:
            data.pop("closed_by", None)
        return data

    @property
    def window_id(self) -> str:
        """``topic/partition/first_offset``: what identifies a window."""
        return f"{self.topic}/{self.partition}/{self.first_offset}"


class DetectorInfo(BaseModel):
    """Which test judged the window, and with what settings."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: Literal["KSDrift"] = "KSDrift"
    """The detector: Alibi Detect's feature-wise Kolmogorov-Smirnov test."""
    backend: Literal["alibi", "fast"]
    """``alibi`` runs Alibi Detect's KSDrift; ``fast`` the equal-p-value sorted-reference path."""
    p_val: float = Field(gt=0, lt=1)
    """Significance level before correction."""
    correction: Literal["bonferroni", "fdr"]
    """Multiple-testing correction over the features."""
    threshold: float
    """The p-value threshold after correction: a feature drifts when its p-value is below."""


class AlarmInfo(BaseModel):
    """What the alarm said on a window: the false-alarm budget, and whether and why it fired."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: Literal["rank", "ks"]
    """``rank``: the sequential rank alarm; ``ks``: a KS-drifted window at the budget's level."""
    false_alarm_rows: float = Field(gt=0)
    """The budget: clean rows per false alarm, on average, at least."""
    fired: bool
    """Whether the alarm fired on this window's rows."""
    warming_up: bool = False
    """True while the rank alarm's baseline forms (the KS rule guards those windows)."""
    kind: str | None = None
    """What fired: ``location``, ``scale``, ``shape`` (rank) or ``ks``."""
    rows: int | None = None
    """Rows of the statistic that fired (its sum or its window)."""
    statistic: float | None = None
    """Its value: ``|z|`` (rank) or ``-log10 p`` (ks)."""
    threshold: float | None = None
    """What it passed, on the same scale."""
    features: list[str] = Field(default_factory=list)
    """Features the alarm fired on."""


class EpisodeInfo(BaseModel):
    """The drift episode a window belongs to: opened by an alarm, resolved later."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    episode_id: str
    """The event id of the window whose alarm opened it."""
    state: Literal["onset", "ongoing", "resolved"]
    """``onset`` (announced: it wakes the DAG), ``ongoing`` (not announced), ``resolved``
    (announced)."""
    opened_at: AwareDatetime
    """When the onset window was judged."""
    drifted_features: list[str]
    """Features the episode's alarms fired on, in order of first appearance."""
    alarmed_windows: int = Field(ge=1)
    """Windows of the episode on which the alarm fired."""
    reason: str | None = None
    """Why it opened (``alarm``) or resolved (clean windows, a new champion)."""


class DriftEvent(BaseModel):
    """One judged window. The consumer archives every one and publishes those that open or
    resolve a drift episode (:attr:`announces`); events without an episode (from before
    episodes) are published when ``is_drift``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    """Version of this contract; it changes only when an old reader could no longer parse."""
    schema_minor: int = 0
    """Additions since (see `SCHEMA_MINOR`); 0 for events written before them."""
    event_id: str
    """``topic-partition-first-last``: deterministic, so a replayed window keeps its id."""
    stream: str
    """Stream name of the window's rows."""
    detected_at: AwareDatetime
    """When the window was judged (UTC)."""
    window: WindowRef
    """Where the rows lie."""
    detector: DetectorInfo
    """The test and its settings."""
    is_drift: bool
    """Whether the window drifted after the correction."""
    p_values: dict[str, float]
    """Feature name to p-value."""
    distances: dict[str, float]
    """Feature name to its test's statistic: KS for a numeric feature, chi-squared for a
    categorical one (see ``categorical_features``)."""
    drifted_features: list[str]
    """Features whose p-value is below the threshold."""
    categorical_features: list[str] = Field(default_factory=list)
    """The features tested by chi-squared on their category counts (minor 2)."""
    missing_shares: dict[str, float] = Field(default_factory=dict)
    """Feature name to the share of the window's rows missing it (minor 2; empty in
    earlier events, where no value could be missing)."""
    model_name: str
    """The champion model the window was judged for."""
    model_version: int
    """Its version; an event for an older version is stale."""
    reference_sha256: str
    """sha256 of the reference data the window was compared with."""
    archive_path: str
    """Where the window's rows (features and labels) are archived."""
    labeled_rows: int = 0
    """How many of the window's rows carried a label."""
    accuracy: float | None = None
    """The champion's accuracy on the labeled rows, when there were any."""
    alarm: AlarmInfo | None = None
    """What the alarm said on this window (None in events from before alarms)."""
    episode: EpisodeInfo | None = None
    """The drift episode the window belongs to, if any."""

    @property
    def announces(self) -> bool:
        """Whether this event goes on the drift topic: it opens or resolves an episode."""
        if self.episode is None:
            return self.alarm is None and self.is_drift
        return self.episode.state != "ongoing"

    @property
    def is_onset(self) -> bool:
        """Whether this event opens a drift episode (or, from before episodes, is drift)."""
        if self.episode is None:
            return self.alarm is None and self.is_drift
        return self.episode.state == "onset"

    @classmethod
    def for_window(
        cls,
        topic: str,
        partition: int,
        window: Window[TimedRow],
        result: DriftResult,
        *,
        model: VersionMetadata,
        backend: Backend,
        p_val: float,
        correction: Correction,
        archive_path: Path | str,
        labeled_rows: int = 0,
        accuracy: float | None = None,
        detected_at: datetime | None = None,
        alarm: AlarmInfo | None = None,
        episode: EpisodeInfo | None = None,
    ) -> DriftEvent:
        """The event for ``window`` of ``topic``/``partition``, judged ``result`` for ``model``.

        Parameters
        ----------
        topic, partition : str, int
            Where the window's rows were read.
        window : Window
            The window, its rows in offset order (`RowMessage` or any row with its
            ``stream`` and ``event_time``).
        result : DriftResult
            The detector's verdict on it; its arrays follow ``model.feature_names``.
        model : VersionMetadata
            The champion it was judged for.
        backend, p_val, correction
            The detector's settings.
        archive_path : pathlib.Path or str
            Where the window's rows are archived.
        labeled_rows, accuracy
            How many rows carried a label, and the champion's accuracy on them.
        alarm, episode
            What the alarm said, and the episode the window belongs to.
        detected_at : datetime, optional
            When the window was judged; now (UTC) by default.

        Returns
        -------
        DriftEvent
            Its ``event_id`` is `event_id_for` the window, so a window judged again
            after a restart keeps its id.
        """
        shared = _ChampionEvents.of(model, backend, p_val, correction)
        names = shared.names
        first, last = window.items[0], window.items[-1]
        shares = result.missing_shares
        # Validated, not built with ``model_construct``: pydantic-core validates these
        # fields faster than ``model_construct`` sets them in Python (2.9 against 4.5 µs
        # for the event, pydantic 2.14), and copies the dicts and lists it is given.
        return cls(
            schema_minor=SCHEMA_MINOR,
            event_id=event_id_for(topic, partition, window.first_offset, window.last_offset),
            stream=first.stream,
            detected_at=datetime.now(UTC) if detected_at is None else detected_at,
            window=WindowRef(
                topic=topic,
                partition=partition,
                first_offset=window.first_offset,
                last_offset=window.last_offset,
                size=len(window.items),
                first_event_time=first.event_time,
                last_event_time=last.event_time,
                closed_by=window.closed_by,
            ),
            detector=shared.detector(result.threshold),
            is_drift=result.is_drift,
            p_values=dict(zip(names, result.p_values.tolist(), strict=True)),
            distances=dict(zip(names, result.distances.tolist(), strict=True)),
            drifted_features=[names[i] for i in result.drifted],
            categorical_features=shared.categorical,
            missing_shares=shared.none_missing
            if shares is None
            else dict(zip(names, shares.tolist(), strict=True)),
            model_name=model.model_name,
            model_version=model.version,
            reference_sha256=model.reference_sha256,
            archive_path=str(archive_path),
            labeled_rows=labeled_rows,
            accuracy=accuracy,
            alarm=alarm,
            episode=episode,
        )

    def resolution(self, reason: str, suffix: str, detected_at: datetime) -> DriftEvent:
        """The event announcing that this event's episode resolved, with this event's window.

        Parameters
        ----------
        reason : str
            Why it resolved.
        suffix : str
            Appended to this event's id to name the resolution, deterministically.
        detected_at : datetime
            When it resolved.
        """
        if self.episode is None:
            raise ValueError(f"event {self.event_id} belongs to no episode")
        episode = self.episode.model_copy(update={"state": "resolved", "reason": reason})
        return self.model_copy(
            update={
                "event_id": f"{self.event_id}-{suffix}",
                "detected_at": detected_at,
                "episode": episode,
            }
        )

    def to_bytes(self) -> bytes:
        """UTF-8 JSON, the form on the wire: the bytes of ``model_dump_json().encode()``."""
        # The serializer writes bytes; model_dump_json decodes them to a str, which
        # encode() would copy back. Asked directly, with model_dump_json's defaults.
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> DriftEvent:
        """Parse wire bytes; raises ``pydantic.ValidationError`` on anything malformed."""
        return cls.model_validate_json(data)


class _ChampionEvents:
    """What the events of one champion's windows share, worked out once, not per window.

    `DriftEvent.for_window` keeps the last one (`of`): a consumer judges every window
    for one champion and detector setting until a model update brings the next.
    Its list and dict are handed to the event's validation, which copies them, so
    no event shares them. The ``DetectorInfo`` is shared: it is frozen and holds no
    list or dict.
    """

    _last: _ChampionEvents | None = None

    def __init__(
        self, model: VersionMetadata, backend: Backend, p_val: float, correction: Correction
    ) -> None:
        self.model = model
        """Kept, so the memo's identity check cannot meet another model at its address."""
        self.settings = (backend, p_val, correction)
        self.names: tuple[str, ...] = tuple(model.feature_names)
        self.categorical = [name for name in self.names if name in model.categories]
        self.none_missing = dict.fromkeys(self.names, 0.0)
        self._detector: tuple[float, DetectorInfo] | None = None

    @classmethod
    def of(
        cls, model: VersionMetadata, backend: Backend, p_val: float, correction: Correction
    ) -> _ChampionEvents:
        """The shared parts for ``model`` and the settings: the last ones if they match."""
        last = cls._last
        if last is None or last.model is not model or last.settings != (backend, p_val, correction):
            # By identity: a champion's metadata is frozen, a new champion is a new object.
            last = cls._last = cls(model, backend, p_val, correction)
        return last

    def detector(self, threshold: float) -> DetectorInfo:
        """The detector's info at ``threshold``: with ``bonferroni`` the same every window,
        with ``fdr`` the same on every window without drift, so the last one is kept."""
        last = self._detector  # one attribute: consumers on other threads may share this
        # The same type and value, so the info is what validating this threshold gives
        # (a threshold is p_val / n > 0: no -0.0 to meet 0.0).
        if last is not None and type(last[0]) is type(threshold) and last[0] == threshold:
            return last[1]
        backend, p_val, correction = self.settings
        info = DetectorInfo(
            backend=backend, p_val=p_val, correction=correction, threshold=threshold
        )
        self._detector = (threshold, info)
        return info


def event_id_for(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """The deterministic id of the event for a window.

    >>> event_id_for("rows", 0, 100, 149)
    'rows-0-100-149'
    """
    return f"{topic}-{partition}-{first_offset}-{last_offset}"
