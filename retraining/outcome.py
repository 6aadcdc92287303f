"""The outcome of a run: the drift event marked handled, promoted, rejected or skipped."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from retraining.events import EventLike, parse_event
from retraining.ledger import HandledLedger, Outcome
from retraining.settings import RetrainSettings


def mark_handled(
    event: EventLike,
    settings: RetrainSettings,
    run_id: str,
    outcome: Outcome,
    detail: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Record in the ledger how ``run_id`` ended for the event, once that outcome is durable.

    A skipped event is recorded too (a redelivery is then passed over), unless another
    run holds it: a duplicate leaves the other run's record alone.

    Parameters
    ----------
    event : DriftEvent, dict or str
        The drift event.
    settings : RetrainSettings
        Registry location.
    run_id : str
        The DAG run.
    outcome : {"promoted", "rejected", "skipped"}
        How the run ended.
    detail : mapping
        What to keep with the outcome (the version and scores, or the skip's reason);
        values JSON cannot hold are kept as their text.

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
    event: EventLike,
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
        :meth:`retraining.decision.Decision.to_dict` of the run's decision.
    result : mapping or None
        What :func:`retraining.challenger.train_challenger` returned, for a retrain.

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
    """``detail`` as JSON-able data; what JSON cannot hold (a datetime, a path) as its text."""
    return dict(json.loads(json.dumps(dict(detail), default=str)))
