"""The challenger: trained on the drifted windows, scored against the champion, registered."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from consumer.archive import ArchivedWindow, LabeledRows, raw_windows, read_labeled_rows
from consumer.events import DriftEvent
from consumer.labels.store import late_labels
from data.encoding import category_lists, encode_table
from models.comparison import McNemarResult, mcnemar_exact, unseen_rows
from models.promotion import ModelUpdate
from models.registry import Decision as VersionDecision
from models.registry import LoadedModel, Registry, VersionMetadata
from models.training import scores, train_classifier
from retraining.events import EventLike, parse_event
from retraining.ledger import HandledLedger
from retraining.settings import RetrainSettings
from retraining.windows import training_windows

logger = logging.getLogger(__name__)


class RetrainError(RuntimeError):
    """A retrain cannot go on: no champion, too few labeled rows, an event claimed elsewhere."""


def train_challenger(event: EventLike, settings: RetrainSettings, run_id: str) -> dict[str, Any]:
    """Train a challenger on recent archived windows, compare it with the champion, register it.

    The labeled rows of the windows from ``lookback_windows`` before the drift window
    onward (all archived so far) are ordered by offset; the most recent
    ``holdout_fraction`` of them are held out. The challenger is fitted on the rest
    (seeded), both models are scored on the held-out rows, and the challenger is
    registered as a new version with its lineage, ``promoted`` (and made champion) only
    when :func:`promotion_gate` says so, else ``rejected``.

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
    consumer.archive.ArchiveError
        If an archived window cannot be read.
    """
    parsed = parse_event(event)
    registry = Registry.from_settings(settings)
    claim = HandledLedger.from_settings(settings).claim(parsed.event_id, run_id)
    if claim.run_id != run_id:
        raise RetrainError(f"cannot retrain: {claim.summary()}")
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
    late = late_labels(settings.artifact_root, settings.labels_topic)
    rows = read_labeled_rows(windows, meta.feature_names, meta.label_column, late)
    if len(rows) < 2:
        raise RetrainError(
            f"{len(rows)} labeled row(s) in {len(windows)} archived window(s) for event "
            f"{parsed.event_id}: need at least 2 to train and evaluate"
        )
    labels = _labels_like(rows.labels, champion)
    # The newest rows are held out, as they are closest to what the winner will serve;
    # at least one row each is left to train on and to score on.
    n_holdout = min(len(rows) - 1, max(1, math.ceil(settings.holdout_fraction * len(rows))))
    n_train = len(rows) - n_holdout
    y_train, y_holdout = labels[:n_train], labels[n_train:]
    coded = _coded(rows, meta, n_train)
    x_train, x_holdout = coded.train, coded.holdout

    challenger = train_classifier(
        x_train, y_train, seed=settings.seed, categorical=coded.categorical
    )
    gate = promotion_gate(
        challenger,
        champion.estimator,
        x_train,
        y_train,
        x_holdout,
        y_holdout,
        settings,
        champion_holdout=coded.champion_holdout,
    )
    decision: VersionDecision = "promoted" if gate.promote else "rejected"
    logger.info(
        "challenger event=%s decision=%s reason=%r challenger=%s champion=%s "
        "mcnemar_p=%.3g challenger_only=%d champion_only=%d compared_rows=%d "
        "duplicates_removed=%d training_rows=%d windows=%d",
        parsed.event_id,
        decision,
        gate.reason,
        gate.challenger_metrics,
        gate.champion_metrics,
        gate.test.p_value,
        gate.test.challenger_only,
        gate.test.champion_only,
        gate.test.rows,
        gate.duplicates_removed,
        n_train,
        len(windows),
    )
    challenger_metrics, champion_metrics = gate.challenger_metrics, gate.champion_metrics
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
        training_windows=[str(window) for window in windows],
        training_rows=n_train,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        comparison=gate.to_dict(),
        categories=coded.categories,
    )
    return _finish(registry, metadata, parsed, holdout_rows=n_holdout)


@dataclass(frozen=True)
class _Coded:
    """The archived rows as each model reads them: the float matrices of `data.encoding`."""

    train: np.ndarray
    holdout: np.ndarray
    """In the challenger's codes (its categories are its training rows')."""
    champion_holdout: np.ndarray
    """The held-out rows in the champion's codes, for the champion to predict."""
    categories: dict[str, list[str]]
    """The challenger's categories: the sorted categories of its training rows."""
    categorical: list[int]
    """Column indices of the categorical features."""


def _coded(rows: LabeledRows, meta: VersionMetadata, n_train: int) -> _Coded:
    """Split the rows and code them: the challenger learns the categories its rows hold.

    A category the champion never saw (the drift, maybe) is one the challenger knows;
    the champion gets it as an unseen code, which its one-hot encoder ignores.
    """
    names = meta.feature_names
    kinds = [name for name in names if name in meta.categories or name in rows.categorical]
    if not kinds:
        features = np.asarray(rows.features, dtype=np.float64)
        train, holdout = features[:n_train], features[n_train:]
        return _Coded(train, holdout, holdout, {}, [])
    train_cells = {name: rows.features[:n_train, j].tolist() for j, name in enumerate(names)}
    holdout_cells = {name: rows.features[n_train:, j].tolist() for j, name in enumerate(names)}
    categories = category_lists(train_cells, kinds)
    return _Coded(
        train=encode_table(train_cells, names, categories),
        holdout=encode_table(holdout_cells, names, categories),
        champion_holdout=encode_table(holdout_cells, names, meta.categories),
        categories=categories,
        categorical=[names.index(name) for name in kinds],
    )


@dataclass(frozen=True)
class GateVerdict:
    """Whether the challenger is promoted, the paired test behind it, and why.

    Attributes
    ----------
    promote : bool
        True only if the test says the challenger is better at the gate's level, on
        enough held-out rows.
    test : McNemarResult
        McNemar's exact test on the held-out rows compared.
    challenger_metrics, champion_metrics : dict
        Both models' scores on those same rows (empty when no row was left).
    duplicates_removed : int
        Held-out rows left out as copies of training rows.
    level, min_rows : float, int
        The gate's settings.
    reason : str
        One line a person can read.
    """

    promote: bool
    test: McNemarResult
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    duplicates_removed: int
    level: float
    min_rows: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-able lineage."""
        return {
            **self.test.to_dict(),
            "level": self.level,
            "min_rows": self.min_rows,
            "duplicates_removed": self.duplicates_removed,
            "promote": self.promote,
            "reason": self.reason,
        }


def promotion_gate(
    challenger: Any,
    champion: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_holdout: np.ndarray,
    y_holdout: np.ndarray,
    settings: RetrainSettings,
    champion_holdout: np.ndarray | None = None,
) -> GateVerdict:
    """Compare the two models on the held-out rows no training row repeats, by McNemar's test.

    Parameters
    ----------
    challenger, champion : estimator
        Fitted classifiers.
    x_train, y_train : numpy.ndarray
        The challenger's training rows and labels.
    x_holdout, y_holdout : numpy.ndarray
        Held-out rows and labels; exact copies of a training row (features and label)
        are removed before comparing.
    settings : RetrainSettings
        ``promotion_p_value`` and ``min_holdout_rows``.
    champion_holdout : numpy.ndarray, optional
        The same held-out rows as the champion reads them (its own category codes);
        ``x_holdout`` when not given.

    Returns
    -------
    GateVerdict
    """
    keep = unseen_rows(x_train, y_train, x_holdout, y_holdout)
    x_eval, y_eval = x_holdout[keep], y_holdout[keep]
    removed = int((~keep).sum())
    if len(y_eval) == 0:
        test = mcnemar_exact(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
        metrics: tuple[dict[str, float], dict[str, float]] = ({}, {})
    else:
        # Each model predicts the rows once: the paired test and the scores share it.
        by_challenger = np.asarray(challenger.predict(x_eval))
        champion_rows = x_holdout if champion_holdout is None else champion_holdout
        by_champion = np.asarray(champion.predict(champion_rows[keep]))
        test = mcnemar_exact(by_champion == y_eval, by_challenger == y_eval)
        metrics = (scores(y_eval, by_challenger), scores(y_eval, by_champion))
    level, min_rows = settings.promotion_p_value, settings.min_holdout_rows
    if test.rows < min_rows:
        promote, reason = False, f"{test.rows} held-out rows compared, fewer than {min_rows}"
    elif test.p_value < level:
        promote, reason = True, f"better by McNemar's exact test: p={test.p_value:.3g} < {level}"
    else:
        promote, reason = False, f"not shown better: McNemar p={test.p_value:.3g} >= {level}"
    return GateVerdict(promote, test, *metrics, removed, level, min_rows, reason)


def _finish(
    registry: Registry, metadata: VersionMetadata, event: DriftEvent, holdout_rows: int | None
) -> dict[str, Any]:
    """Promote a winning version if the champion is still its parent; the task's result."""
    update: ModelUpdate | None = None
    if metadata.decision == "promoted":
        champion = registry.champion_version()
        if champion == metadata.parent_version:
            gate = (metadata.comparison or {}).get("reason")
            registry.promote(
                metadata.version,
                by="retraining",
                reason=f"drift event {event.event_id}" + (f": {gate}" if gate else ""),
            )
        pointer = registry.champion_pointer()
        if pointer is None or pointer.version != metadata.version:
            raise RetrainError(
                f"v{metadata.version} won but the champion moved to "
                f"v{None if pointer is None else pointer.version} meanwhile"
            )
        update = ModelUpdate.announcing(registry, pointer, drift_event_id=event.event_id)
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


def _windows_digest(windows: Sequence[ArchivedWindow]) -> str:
    """sha256 over the archived windows' names and archived bytes, in order."""
    digest = hashlib.sha256()
    for window, data in zip(windows, raw_windows(windows), strict=True):
        digest.update(window.name.encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()
