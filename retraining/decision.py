"""The decision for a drift event: retrain, or skip and say why."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from consumer.archive import count_labeled_rows
from consumer.events import DriftEvent
from consumer.labels.store import late_labels
from models.registry import Registry
from retraining.events import EventLike, parse_event
from retraining.ledger import HandledLedger
from retraining.settings import RetrainSettings
from retraining.windows import training_windows

logger = logging.getLogger(__name__)


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

    Examples
    --------
    >>> Decision("skip", "not drift: the window did not drift").to_dict()
    {'action': 'skip', 'reason': 'not drift: the window did not drift'}
    """

    action: Literal["retrain", "skip"]
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The decision as a JSON-able dict."""
        return {"action": self.action, "reason": self.reason}


def decide(event: EventLike, settings: RetrainSettings, run_id: str) -> Decision:
    """Retrain or skip, judged now; a ``retrain`` claims the event for ``run_id``.

    Checks, in order: the event is drift for this model; no other run has taken it
    (duplicate; a claim by ``run_id`` itself means a retried task resumes); it was
    judged for the current champion (stale); no retrain promoted a model in the last
    ``cooldown_seconds`` (cooldown); the windows a retrain would use hold at least
    ``min_labeled_rows`` labeled rows; no other run retrains the same stream against
    the same champion (the onsets of one drift in several partitions: duplicate).

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
    consumer.archive.ArchiveError
        If an archived window cannot be read.
    """
    parsed = parse_event(event)
    decision = _decide(parsed, settings, run_id)
    logger.info(
        "decision event=%s action=%s reason=%s", parsed.event_id, decision.action, decision.reason
    )
    return decision


def not_for_us(event: DriftEvent, model_name: str) -> str | None:
    """Why an event is none of this DAG's business (no episode onset, another model), or None.

    Only the onset of a drift episode wakes the DAG; the resolution and windows inside
    an episode do not. An event from before episodes counts when it is drift.

    Shared with the sensor's filter, which checks the same before waking a run.
    """
    if not event.is_onset:
        if event.episode is not None:
            return f"not an onset: drift episode {event.episode.episode_id} {event.episode.state}"
        return "not drift: the window did not drift"
    if event.model_name != model_name:
        return f"other model: judged for {event.model_name!r}, this DAG retrains {model_name!r}"
    return None


def stale_reason(event: DriftEvent, registry: Registry) -> str | None:
    """Why an event was judged against a model that no longer serves, or None.

    Shared with the sensor's filter, which checks the same before waking a run.

    Raises
    ------
    models.registry.RegistryError
        If the champion pointer cannot be read.
    """
    champion = registry.champion_version()
    if champion is None:
        return f"stale: model {registry.model_name!r} has no champion"
    if event.model_version != champion:
        return (
            f"stale: the window was judged for v{event.model_version} "
            f"but the champion is v{champion}"
        )
    return None


def _decide(event: DriftEvent, settings: RetrainSettings, run_id: str) -> Decision:
    mismatch = not_for_us(event, settings.model_name)
    if mismatch is not None:
        return Decision("skip", mismatch)
    ledger = HandledLedger.from_settings(settings)
    record = ledger.get(event.event_id)
    if record is not None:
        if record.run_id == run_id and record.outcome is None:
            return Decision("retrain", f"resuming: this run claimed event {event.event_id}")
        return Decision("skip", f"duplicate: {record.summary()}")
    registry = Registry.from_settings(settings)
    stale = stale_reason(event, registry)
    if stale is not None:
        return Decision("skip", stale)
    cooldown = _cooldown_reason(registry, settings.cooldown_seconds)
    if cooldown is not None:
        return Decision("skip", cooldown)
    windows = training_windows(settings.artifact_root, event, settings.lookback_windows)
    labeled = count_labeled_rows(
        windows,
        registry.metadata(event.model_version).label_column,
        late_labels(settings.artifact_root, settings.labels_topic),
    )
    if labeled < settings.min_labeled_rows:
        return Decision(
            "skip",
            f"too few labeled rows: {labeled} in {len(windows)} archived window(s), "
            f"min_labeled_rows={settings.min_labeled_rows}",
        )
    # One retrain per stream and champion version: a stream spread over partitions
    # raises an onset in each for one drift.
    held = ledger.hold_stream(
        event.stream, event.model_version, event.event_id, run_id, settings.cooldown_seconds
    )
    if held.run_id != run_id:
        return Decision(
            "skip",
            f"duplicate: stream {event.stream!r} is retrained against v{event.model_version} "
            f"for event {held.event_id} by run {held.run_id}",
        )
    # Claimed only once every check passed, so a claim always means a retrain; of two
    # runs that got this far, one wins and the other skips as a duplicate.
    claimed = ledger.claim(event.event_id, run_id)
    if claimed.run_id != run_id:
        return Decision("skip", f"duplicate: {claimed.summary()}")
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
