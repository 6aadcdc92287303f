"""Retraining on drift: which events to act on, the handled-events ledger, and the challenger.

The retraining DAG wires these functions into tasks; nothing here knows Airflow or
opens a Kafka client. The flow for one drift event:

1. :func:`actionable_drift_event` filters the drift topic in the sensor's trigger:
   only drift, for this model, judged against the current champion, not yet handled.
2. :func:`decide` re-checks at run time (the champion or the ledger may have changed
   while the sensor waited) and adds the cooldown and the labeled-row minimum. A
   ``retrain`` decision claims the event in the :class:`HandledLedger` for the run.
3. :func:`train_challenger` trains on the archived windows around and after the drift,
   scores challenger and champion on the same held-out recent rows, registers the
   challenger with its lineage and promotes it when it wins by more than the margin.
4. :func:`mark_handled` records the run's outcome once it is durable (the model update
   published, or the rejection or skip recorded).

Layout of the ledger under the artifact root::

    <root>/registry/<model_name>/handled/<event_id>.json
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from consumer.archive import WindowArchive
from consumer.events import DriftEvent
from data.durable import fsync_dir, write_atomic, write_temp
from models.promotion import ModelUpdate
from models.registry import (
    REFERENCE_FILE,
    LoadedModel,
    Registry,
    RegistryError,
    RegistrySettings,
    VersionMetadata,
)
from models.registry import Decision as VersionDecision

logger = logging.getLogger(__name__)

HANDLED_DIR = "handled"
"""Directory of the handled-events ledger inside a model's registry directory."""

_EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_WINDOW_FILE = re.compile(r"(\d{12})-(\d{12})\.csv")


class RetrainError(RuntimeError):
    """A retrain cannot go on: no champion, unreadable archive, an event claimed elsewhere."""


class RetrainSettings(RegistrySettings):
    """When and how to retrain; from ``DRIFTLOOP_*`` environment variables.

    Extends :class:`models.registry.RegistrySettings` (artifact root, model name).
    Keyword arguments beat the environment.

    Examples
    --------
    >>> RetrainSettings(min_labeled_rows=60).min_labeled_rows
    60
    """

    min_labeled_rows: int = 150
    """Fewest labeled rows worth retraining on (env ``DRIFTLOOP_MIN_LABELED_ROWS``)."""

    promotion_margin: float = 0.0
    """Challenger accuracy must exceed the champion's by more than this
    (env ``DRIFTLOOP_PROMOTION_MARGIN``)."""

    cooldown_seconds: float = 300.0
    """Seconds after a promotion by a retrain during which drift events are skipped
    (env ``DRIFTLOOP_COOLDOWN_SECONDS``); the initial model starts no cooldown."""

    holdout_fraction: float = 0.3
    """Fraction of the most recent rows held out to compare challenger and champion
    (env ``DRIFTLOOP_HOLDOUT_FRACTION``)."""

    lookback_windows: int = 0
    """Archived windows before the drift window to train on as well
    (env ``DRIFTLOOP_LOOKBACK_WINDOWS``). None by default: the challenger's reference
    data is what it was trained on, and pre-drift rows in it would keep the drifted
    windows alerting after the switch."""

    seed: int = 7
    """Seed of the challenger's forest (env ``DRIFTLOOP_SEED``)."""

    @field_validator("min_labeled_rows")
    @classmethod
    def _enough_rows(cls, value: int) -> int:
        if value < 2:
            raise ValueError(
                f"min_labeled_rows (env DRIFTLOOP_MIN_LABELED_ROWS) must be at least 2 "
                f"(one row to train on, one to evaluate), got {value}"
            )
        return value

    @field_validator("promotion_margin")
    @classmethod
    def _margin_in_range(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(
                f"promotion_margin (env DRIFTLOOP_PROMOTION_MARGIN) must be in [0, 1): an "
                f"accuracy gain the challenger must exceed, got {value}"
            )
        return value

    @field_validator("cooldown_seconds")
    @classmethod
    def _cooldown_not_negative(cls, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"cooldown_seconds (env DRIFTLOOP_COOLDOWN_SECONDS) must be a finite number "
                f"of seconds >= 0, got {value}"
            )
        return value

    @field_validator("holdout_fraction")
    @classmethod
    def _fraction_in_range(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(
                f"holdout_fraction (env DRIFTLOOP_HOLDOUT_FRACTION) must be strictly between "
                f"0 and 1, got {value}"
            )
        return value

    @field_validator("lookback_windows")
    @classmethod
    def _lookback_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(
                f"lookback_windows (env DRIFTLOOP_LOOKBACK_WINDOWS) must be >= 0, got {value}"
            )
        return value


@dataclass(frozen=True)
class Decision:
    """What to do with a drift event, and why.

    Attributes
    ----------
    action : {"retrain", "skip"}
        Train a challenger, or leave the champion as it is.
    reason : str
        One line a person can read, e.g. ``stale: ...``, ``duplicate: ...``,
        ``cooldown: ...`` or ``too few labeled rows: ...``.
    """

    action: Literal["retrain", "skip"]
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The decision as a JSON-able dict."""
        return {"action": self.action, "reason": self.reason}


# --------------------------------------------------------------------------- ledger


class HandledRecord(BaseModel):
    """Contents of ``handled/<event_id>.json``: who took an event and how it ended."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    schema_version: Literal[1] = 1
    """Version of this record format."""
    event_id: str
    """The drift event."""
    run_id: str
    """The run that claimed it; a retried task of that run may continue, others may not."""
    claimed_at: AwareDatetime
    """When the run claimed it (UTC)."""
    outcome: Literal["promoted", "rejected", "skipped"] | None = None
    """How the run ended; None while the run has not finished."""
    detail: dict[str, Any] = Field(default_factory=dict)
    """The version trained, both scores, or the reason for a skip."""
    completed_at: AwareDatetime | None = None
    """When the outcome was recorded (UTC)."""


class HandledLedger:
    """Which drift events a run has taken, one file per event id.

    A claim is created whole or not at all (written to a temporary file, then
    hard-linked to its name, which fails if the name exists), so two runs racing
    for one event cannot both win. The outcome later replaces the claim atomically.

    Parameters
    ----------
    root : pathlib.Path
        The artifact root.
    model_name : str
        The model whose events these are.

    Examples
    --------
    >>> HandledLedger(Path("var"), "classifier").path("rows-0-300-349").as_posix()
    'var/registry/classifier/handled/rows-0-300-349.json'
    """

    def __init__(self, root: Path, model_name: str) -> None:
        self.directory = Registry(root, model_name).model_dir / HANDLED_DIR

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> HandledLedger:
        """The ledger of the model the settings name."""
        return cls(settings.artifact_root, settings.model_name)

    def path(self, event_id: str) -> Path:
        """Where an event's record lies.

        Raises
        ------
        ValueError
            If ``event_id`` is not a safe file name (letters, digits, ``.``, ``_``, ``-``).
        """
        return self.directory / f"{self.check_event_id(event_id)}.json"

    @staticmethod
    def check_event_id(event_id: str) -> str:
        """Return ``event_id`` if it is a safe file name, else raise ``ValueError``.

        >>> HandledLedger.check_event_id("rows-0-300-349")
        'rows-0-300-349'
        """
        if not _EVENT_ID.fullmatch(event_id):
            raise ValueError(
                f"event_id must be letters, digits, '.', '_' or '-' (at most 201), got {event_id!r}"
            )
        return event_id

    def get(self, event_id: str) -> HandledRecord | None:
        """The event's record, or None if no run has taken it.

        Raises
        ------
        RegistryError
            If the record cannot be read or is malformed.
        """
        path = self.path(event_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise RegistryError(f"cannot read ledger record {path}: {err}") from err
        try:
            return HandledRecord.model_validate_json(raw)
        except ValidationError as err:
            raise RegistryError(f"ledger record {path} is malformed: {err}") from err

    def claim(self, event_id: str, run_id: str) -> HandledRecord:
        """Claim an event for a run, or return the record of whoever has it.

        Returns
        -------
        HandledRecord
            The record now on disk; its ``run_id`` is ``run_id`` when this run holds
            the claim (new, or claimed earlier by the same run).
        """
        path = self.path(event_id)
        record = HandledRecord(event_id=event_id, run_id=run_id, claimed_at=datetime.now(UTC))
        if _create_exclusive(path, record.model_dump_json(indent=2).encode()):
            logger.info("claimed event=%s run_id=%s", event_id, run_id)
            return record
        existing = self.get(event_id)
        if existing is None:  # Removed by hand between our link and read: try once more.
            return self.claim(event_id, run_id)
        return existing

    def complete(
        self,
        event_id: str,
        run_id: str,
        outcome: Literal["promoted", "rejected", "skipped"],
        detail: Mapping[str, Any],
    ) -> HandledRecord | None:
        """Record how a run ended; claims the event first if no run has.

        Returns
        -------
        HandledRecord or None
            The completed record, or None when another run holds the event (its
            record is left as it is).
        """
        claimed = self.claim(event_id, run_id)
        if claimed.run_id != run_id:
            logger.info(
                "event=%s belongs to run_id=%s; not recording run_id=%s",
                event_id,
                claimed.run_id,
                run_id,
            )
            return None
        record = HandledRecord(
            event_id=event_id,
            run_id=run_id,
            claimed_at=claimed.claimed_at,
            outcome=outcome,
            detail=dict(detail),
            completed_at=datetime.now(UTC),
        )
        write_atomic(self.path(event_id), record.model_dump_json(indent=2).encode())
        logger.info("handled event=%s outcome=%s run_id=%s", event_id, outcome, run_id)
        return record


# --------------------------------------------------------------------------- filtering


def parse_event(event: DriftEvent | Mapping[str, Any] | str | bytes) -> DriftEvent:
    """A DriftEvent from what a task holds: the event, its dict, or its JSON.

    Raises
    ------
    ValueError
        If it is not a valid DriftEvent; the message says which field is wrong.
    """
    if isinstance(event, DriftEvent):
        return event
    try:
        if isinstance(event, str | bytes):
            return DriftEvent.model_validate_json(event)
        return DriftEvent.model_validate(event)
    except ValidationError as err:
        raise ValueError(f"not a valid drift event: {err}") from err


def actionable_drift_event(message: Any) -> dict[str, Any] | None:
    """The Kafka sensor's ``apply_function``: the event as a dict if it calls for action.

    Called in Airflow's triggerer for each message on the drift topic. Lets through
    a parseable DriftEvent with ``is_drift``, for this model (``DRIFTLOOP_MODEL_NAME``),
    judged against the current champion, and not in the handled-events ledger.

    Parameters
    ----------
    message : confluent_kafka.Message
        Only ``value()`` (and, for logs, ``topic()``, ``partition()``, ``offset()``) is used.

    Returns
    -------
    dict or None
        The event as JSON-able data (the sensor's trigger event), or None to keep waiting.
        A malformed message is logged and passed over, never raised.

    Raises
    ------
    pydantic.ValidationError, RegistryError
        If the settings are invalid or the registry cannot be read: the message is
        then not committed, and the sensor fails and is retried instead of passing
        over an event it could not judge.
    """
    where = _message_position(message)
    try:
        raw = message.value()
        if raw is None:
            logger.info("ignoring empty message %s", where)
            return None
        event = DriftEvent.from_bytes(raw)
        HandledLedger.check_event_id(event.event_id)
    except (ValidationError, ValueError, TypeError, AttributeError) as err:
        logger.warning("ignoring malformed drift event %s: %s", where, _one_line(err))
        return None
    settings = RetrainSettings()
    reason = _not_actionable(event, settings)
    if reason is not None:
        logger.info("ignoring drift event=%s %s: %s", event.event_id, where, reason)
        return None
    logger.info("actionable drift event=%s %s", event.event_id, where)
    return event.model_dump(mode="json")


def _not_actionable(event: DriftEvent, settings: RetrainSettings) -> str | None:
    """Why the sensor should pass over an event, or None if it calls for action."""
    mismatch = _not_for_us(event, settings)
    if mismatch is not None:
        return mismatch
    record = HandledLedger.from_settings(settings).get(event.event_id)
    if record is not None:
        return f"duplicate: {_record_summary(record)}"
    return _stale_reason(event, Registry.from_settings(settings))


def _not_for_us(event: DriftEvent, settings: RetrainSettings) -> str | None:
    if not event.is_drift:
        return "not drift: the window did not drift"
    if event.model_name != settings.model_name:
        return (
            f"other model: judged for {event.model_name!r}, "
            f"this DAG retrains {settings.model_name!r}"
        )
    return None


def _stale_reason(event: DriftEvent, registry: Registry) -> str | None:
    champion = registry.champion_version()
    if champion is None:
        return f"stale: model {registry.model_name!r} has no champion"
    if event.model_version != champion:
        return (
            f"stale: the window was judged for v{event.model_version} "
            f"but the champion is v{champion}"
        )
    return None


# --------------------------------------------------------------------------- decision


def decide(
    event: DriftEvent | Mapping[str, Any] | str, settings: RetrainSettings, run_id: str
) -> Decision:
    """Retrain or skip, judged now; a ``retrain`` claims the event for ``run_id``.

    Checks, in order: the event is drift for this model; no other run has taken it
    (duplicate; a claim by ``run_id`` itself means a retried task resumes); it was
    judged for the current champion (stale); no retrain promoted a model in the last
    ``cooldown_seconds`` (cooldown); the windows a retrain would use hold at least
    ``min_labeled_rows`` labeled rows.

    Parameters
    ----------
    event : DriftEvent, dict or str
        The drift event (the sensor's output, or a run's conf).
    settings : RetrainSettings
        Registry location and thresholds.
    run_id : str
        The DAG run deciding.

    Returns
    -------
    Decision
        The action and its reason, also logged.

    Raises
    ------
    ValueError
        If ``event`` is not a valid DriftEvent.
    """
    parsed = parse_event(event)
    decision = _decide(parsed, settings, run_id)
    logger.info(
        "decision event=%s action=%s reason=%s", parsed.event_id, decision.action, decision.reason
    )
    return decision


def _decide(event: DriftEvent, settings: RetrainSettings, run_id: str) -> Decision:
    mismatch = _not_for_us(event, settings)
    if mismatch is not None:
        return Decision("skip", mismatch)
    ledger = HandledLedger.from_settings(settings)
    record = ledger.get(event.event_id)
    if record is not None:
        if record.run_id == run_id and record.outcome is None:
            return Decision("retrain", f"resuming: this run claimed event {event.event_id}")
        return Decision("skip", f"duplicate: {_record_summary(record)}")
    registry = Registry.from_settings(settings)
    stale = _stale_reason(event, registry)
    if stale is not None:
        return Decision("skip", stale)
    cooldown = _cooldown_reason(registry, settings.cooldown_seconds)
    if cooldown is not None:
        return Decision("skip", cooldown)
    windows = training_windows(settings.artifact_root, event, settings.lookback_windows)
    labeled = count_labeled_rows(windows, registry.metadata(event.model_version).label_column)
    if labeled < settings.min_labeled_rows:
        return Decision(
            "skip",
            f"too few labeled rows: {labeled} in {len(windows)} archived window(s), "
            f"min_labeled_rows={settings.min_labeled_rows}",
        )
    claimed = ledger.claim(event.event_id, run_id)
    if claimed.run_id != run_id:
        return Decision("skip", f"duplicate: {_record_summary(claimed)}")
    return Decision(
        "retrain",
        f"drift in {','.join(event.drifted_features) or 'no named feature'} for "
        f"v{event.model_version}; {labeled} labeled rows in {len(windows)} archived window(s)",
    )


def _cooldown_reason(registry: Registry, cooldown_seconds: float) -> str | None:
    """Why a retrain now would come too soon after the last promotion by a retrain."""
    if cooldown_seconds <= 0:
        return None
    pointer = registry.champion_pointer()
    if pointer is None:
        return None
    if registry.metadata(pointer.version).decision != "promoted":
        return None  # The initial model, or one promoted by hand, starts no cooldown.
    elapsed = (datetime.now(UTC) - pointer.promoted_at).total_seconds()
    if elapsed < cooldown_seconds:
        return (
            f"cooldown: v{pointer.version} was promoted by a retrain {elapsed:.0f} s ago, "
            f"cooldown_seconds={cooldown_seconds:g}"
        )
    return None


def _record_summary(record: HandledRecord) -> str:
    if record.outcome is None:
        return (
            f"event {record.event_id} was claimed by run {record.run_id} at "
            f"{record.claimed_at.isoformat()}, which has not finished (clear that run's "
            "failed tasks to resume it)"
        )
    return (
        f"event {record.event_id} was already handled by run {record.run_id} "
        f"(outcome {record.outcome})"
    )


# --------------------------------------------------------------------------- archive


def archived_windows(root: Path, topic: str, partition: int) -> list[Path]:
    """The archived windows (``.csv``) of a topic partition, in order of first offset."""
    directory = WindowArchive(root, fsync=False).path_for(topic, partition, 0, 0).parent
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(directory / name for name in names if _WINDOW_FILE.fullmatch(name))


def select_windows(windows: Sequence[Path], drift_first_offset: int, lookback: int) -> list[Path]:
    """The windows to train on: ``lookback`` windows before the drift window, and all after.

    Parameters
    ----------
    windows : sequence of pathlib.Path
        Archived window files named ``<first:012d>-<last:012d>.csv``, any order.
    drift_first_offset : int
        First offset of the drifted window.
    lookback : int
        How many windows starting before it to include.

    Returns
    -------
    list of pathlib.Path
        In order of first offset.

    Examples
    --------
    >>> names = [f"{f:012d}-{f + 49:012d}.csv" for f in range(0, 400, 50)]
    >>> [p.name[9:12] for p in select_windows([Path(n) for n in names], 200, 2)]
    ['100', '150', '200', '250', '300', '350']
    >>> [p.name[9:12] for p in select_windows([Path(n) for n in names], 200, 0)]
    ['200', '250', '300', '350']
    """
    ordered = sorted(windows, key=_first_offset)
    before = [w for w in ordered if _first_offset(w) < drift_first_offset]
    after = [w for w in ordered if _first_offset(w) >= drift_first_offset]
    return (before[-lookback:] if lookback else []) + after


def training_windows(root: Path, event: DriftEvent, lookback: int) -> list[Path]:
    """The archived windows a retrain for ``event`` uses (see :func:`select_windows`)."""
    window = event.window
    return select_windows(
        archived_windows(root, window.topic, window.partition), window.first_offset, lookback
    )


@dataclass(frozen=True, eq=False)
class LabeledRows:
    """Labeled rows of archived windows, one per offset, in offset order.

    Attributes
    ----------
    offsets : numpy.ndarray
        int64 offsets, ascending and unique.
    features : numpy.ndarray
        float64, shape ``(rows, len(feature_names))``.
    labels : list of str
        Labels as written in the archive.
    feature_names : list of str
        Column order of ``features``.
    """

    offsets: np.ndarray
    features: np.ndarray
    labels: list[str]
    feature_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def read_labeled_rows(
    windows: Iterable[Path], feature_names: Sequence[str], label_column: str
) -> LabeledRows:
    """Read the labeled rows of archived windows, deduplicated by offset and ordered.

    Sliding windows overlap, so a row may be archived more than once; it is kept once.

    Raises
    ------
    RetrainError
        If a window lacks a feature or the label column, or holds a malformed cell.
    """
    by_offset: dict[int, tuple[list[float], str]] = {}
    for path in windows:
        for offset, values, label in _read_window(path, feature_names, label_column):
            if label:
                by_offset.setdefault(offset, (values, label))
    offsets = sorted(by_offset)
    features = np.array([by_offset[o][0] for o in offsets], dtype=np.float64)
    return LabeledRows(
        offsets=np.array(offsets, dtype=np.int64),
        features=features.reshape(len(offsets), len(feature_names)),
        labels=[by_offset[o][1] for o in offsets],
        feature_names=list(feature_names),
    )


def count_labeled_rows(windows: Iterable[Path], label_column: str) -> int:
    """Labeled rows (distinct offsets) in archived windows.

    Raises
    ------
    RetrainError
        If a window lacks the label column or holds a malformed offset.
    """
    offsets: set[int] = set()
    for path in windows:
        for offset, _, label in _read_window(path, (), label_column):
            if label:
                offsets.add(offset)
    return len(offsets)


def _read_window(
    path: Path, feature_names: Sequence[str], label_column: str
) -> Iterable[tuple[int, list[float], str]]:
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None) or []
            missing = [c for c in ("offset", *feature_names, label_column) if c not in header]
            if missing:
                raise RetrainError(f"archived window {path} lacks column(s) {', '.join(missing)}")
            offset_at = header.index("offset")
            feature_at = [header.index(name) for name in feature_names]
            label_at = header.index(label_column)
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append(
                        (
                            int(row[offset_at]),
                            [float(row[i]) for i in feature_at],
                            row[label_at].strip(),
                        )
                    )
                except (ValueError, IndexError) as err:
                    raise RetrainError(f"archived window {path} line {line}: {err}") from err
    except OSError as err:
        raise RetrainError(f"cannot read archived window {path}: {err}") from err
    return rows


def _first_offset(path: Path) -> int:
    match = _WINDOW_FILE.fullmatch(path.name)
    if match is None:
        raise ValueError(f"not an archived window file name: {path.name!r}")
    return int(match.group(1))


# --------------------------------------------------------------------------- training


def train_challenger(
    event: DriftEvent | Mapping[str, Any] | str, settings: RetrainSettings, run_id: str
) -> dict[str, Any]:
    """Train a challenger on recent archived windows, compare it with the champion, register it.

    The labeled rows of the windows from ``lookback_windows`` before the drift window
    onward (all archived so far) are ordered by offset; the most recent
    ``holdout_fraction`` of them are held out. The challenger is fitted on the rest
    (seeded), both models are scored on the held-out rows, and the challenger is
    registered as a new version with its lineage, ``promoted`` (and made champion) when
    its accuracy exceeds the champion's by more than ``promotion_margin``, else
    ``rejected``.

    Idempotent for a run: if a version for this event already exists (a retried task),
    it is reused, and promoted if it won and the champion has not moved since.

    Parameters
    ----------
    event : DriftEvent, dict or str
        The drift event.
    settings : RetrainSettings
        Registry location and thresholds.
    run_id : str
        The DAG run; it must hold the event's claim, or take it if no run has.

    Returns
    -------
    dict
        ``event_id``, ``version``, ``decision``, ``challenger_metrics``,
        ``champion_metrics``, ``champion_version``, ``training_rows``,
        ``holdout_rows``, ``training_windows``, and ``model_update``: the
        ModelUpdate as JSON text for a promotion, else None.

    Raises
    ------
    RetrainError
        If another run holds the event, there is no champion, or the archive holds
        too few labeled rows to train and evaluate.
    """
    parsed = parse_event(event)
    registry = Registry.from_settings(settings)
    claim = HandledLedger.from_settings(settings).claim(parsed.event_id, run_id)
    if claim.run_id != run_id:
        raise RetrainError(f"cannot retrain: {_record_summary(claim)}")
    existing = _version_for_event(registry, parsed.event_id)
    if existing is not None:
        logger.info(
            "event=%s already trained v%d (%s); reusing it",
            parsed.event_id,
            existing.version,
            existing.decision,
        )
        return _finish(registry, existing, parsed, holdout_rows=None)

    champion = registry.champion()
    if champion is None:
        raise RetrainError(f"model {registry.model_name!r} has no champion to challenge")
    meta = champion.metadata
    windows = training_windows(settings.artifact_root, parsed, settings.lookback_windows)
    rows = read_labeled_rows(windows, meta.feature_names, meta.label_column)
    if len(rows) < 2:
        raise RetrainError(
            f"{len(rows)} labeled row(s) in {len(windows)} archived window(s) for event "
            f"{parsed.event_id}: need at least 2 to train and evaluate"
        )
    labels = _labels_like(rows.labels, champion)
    n_holdout = min(len(rows) - 1, max(1, math.ceil(settings.holdout_fraction * len(rows))))
    n_train = len(rows) - n_holdout
    x_train, y_train = rows.features[:n_train], labels[:n_train]
    x_holdout, y_holdout = rows.features[n_train:], labels[n_train:]

    # Imported here: scikit-learn costs seconds that the sensor's filter and the
    # decision, which share this module, do not need.
    from models.training import evaluate, train_classifier

    challenger = train_classifier(x_train, y_train, seed=settings.seed)
    challenger_metrics = evaluate(challenger, x_holdout, y_holdout)
    champion_metrics = evaluate(champion.estimator, x_holdout, y_holdout)
    won = challenger_metrics["accuracy"] > champion_metrics["accuracy"] + settings.promotion_margin
    decision: VersionDecision = "promoted" if won else "rejected"
    logger.info(
        "challenger event=%s decision=%s challenger_accuracy=%.4f champion_accuracy=%.4f "
        "margin=%g training_rows=%d holdout_rows=%d windows=%d",
        parsed.event_id,
        decision,
        challenger_metrics["accuracy"],
        champion_metrics["accuracy"],
        settings.promotion_margin,
        n_train,
        n_holdout,
        len(windows),
    )
    metadata = registry.register(
        challenger,
        x_train,
        feature_names=meta.feature_names,
        label_column=meta.label_column,
        training_data_sha256=_windows_digest(windows),
        metrics=challenger_metrics,
        cause=f"drift event {parsed.event_id}",
        decision=decision,
        parent_version=meta.version,
        drift_event_id=parsed.event_id,
        training_windows=[path.as_posix() for path in windows],
        training_rows=n_train,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
    )
    return _finish(registry, metadata, parsed, holdout_rows=n_holdout)


def _finish(
    registry: Registry, metadata: VersionMetadata, event: DriftEvent, holdout_rows: int | None
) -> dict[str, Any]:
    """Promote a winning version if the champion is still its parent; the task's result."""
    update: ModelUpdate | None = None
    if metadata.decision == "promoted":
        champion = registry.champion_version()
        if champion == metadata.parent_version:
            registry.promote(metadata.version)
        pointer = registry.champion_pointer()
        if pointer is None or pointer.version != metadata.version:
            raise RetrainError(
                f"v{metadata.version} won but the champion moved to "
                f"v{None if pointer is None else pointer.version} meanwhile"
            )
        update = ModelUpdate(
            model_name=registry.model_name,
            version=metadata.version,
            previous_version=metadata.parent_version,
            drift_event_id=event.event_id,
            challenger_metrics=metadata.challenger_metrics or metadata.metrics,
            champion_metrics=metadata.champion_metrics or {},
            model_path=registry.version_dir(metadata.version).as_posix(),
            reference_path=(registry.version_dir(metadata.version) / REFERENCE_FILE).as_posix(),
            reference_sha256=metadata.reference_sha256,
            promoted_at=pointer.promoted_at,
        )
    return {
        "event_id": event.event_id,
        "version": metadata.version,
        "decision": metadata.decision,
        "champion_version": metadata.parent_version,
        "challenger_metrics": metadata.challenger_metrics,
        "champion_metrics": metadata.champion_metrics,
        "training_rows": metadata.training_rows,
        "holdout_rows": holdout_rows,
        "training_windows": list(metadata.training_windows),
        "model_update": None if update is None else update.model_dump_json(),
    }


def _version_for_event(registry: Registry, event_id: str) -> VersionMetadata | None:
    for metadata in reversed(registry.versions()):
        if metadata.drift_event_id == event_id:
            return metadata
    return None


def _labels_like(labels: Sequence[str], champion: LoadedModel) -> np.ndarray:
    """Archived labels (text) in the dtype of the champion's classes, so both compare."""
    classes = np.asarray(getattr(champion.estimator, "classes_", np.array([], dtype=object)))
    if classes.dtype.kind in "iufb":
        try:
            return np.asarray(labels).astype(classes.dtype)
        except ValueError as err:
            raise RetrainError(
                f"archived labels do not match the champion's {classes.dtype} classes: {err}"
            ) from err
    return np.asarray(labels, dtype=object)


def _windows_digest(windows: Sequence[Path]) -> str:
    """sha256 over the archived windows' names and contents, in order."""
    digest = hashlib.sha256()
    for path in windows:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# --------------------------------------------------------------------------- outcome


def mark_handled(
    event: DriftEvent | Mapping[str, Any] | str,
    settings: RetrainSettings,
    run_id: str,
    outcome: Literal["promoted", "rejected", "skipped"],
    detail: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Record in the ledger how ``run_id`` ended for the event, once that outcome is durable.

    A skipped event is recorded too (a redelivery is then passed over), unless another
    run holds it: a duplicate leaves the other run's record alone.

    Returns
    -------
    dict or None
        The record as JSON-able data, or None when another run holds the event.
    """
    parsed = parse_event(event)
    record = HandledLedger.from_settings(settings).complete(
        parsed.event_id, run_id, outcome, _jsonable(detail)
    )
    return None if record is None else record.model_dump(mode="json")


def record_outcome(
    event: DriftEvent | Mapping[str, Any] | str,
    settings: RetrainSettings,
    run_id: str,
    decision: Mapping[str, Any],
    result: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """Mark the event handled with the run's outcome: skipped, promoted or rejected.

    Parameters
    ----------
    event : DriftEvent, dict or str
        The drift event the run decided on.
    settings : RetrainSettings
        Registry location.
    run_id : str
        The DAG run.
    decision : mapping
        :meth:`Decision.to_dict` of the run's decision.
    result : mapping or None
        What :func:`train_challenger` returned, for a retrain.

    Returns
    -------
    dict or None
        As :func:`mark_handled`.
    """
    if decision["action"] == "skip" or result is None:
        return mark_handled(event, settings, run_id, "skipped", decision)
    detail = {k: v for k, v in result.items() if k != "model_update"}
    return mark_handled(event, settings, run_id, result["decision"], detail)


def _jsonable(detail: Mapping[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(dict(detail), default=str)))


def _message_position(message: Any) -> str:
    try:
        return f"topic={message.topic()} partition={message.partition()} offset={message.offset()}"
    except Exception:
        return "(position unknown)"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]


# --------------------------------------------------------------------------- file helpers


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` whole, only if it does not exist; True if created."""
    tmp = write_temp(path, data)
    try:
        try:
            os.link(tmp, path)
        except OSError as err:
            if err.errno == errno.EEXIST:
                return False
            raise
        fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)
