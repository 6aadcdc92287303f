"""The drift sensor's filter: which messages on the drift topic wake a DAG run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from consumer.events import DriftEvent
from models.registry import Registry
from retraining.decision import not_for_us, stale_reason
from retraining.ledger import HandledLedger

logger = logging.getLogger(__name__)


def actionable_drift_event(
    message: Any, *, artifact_root: str, model_name: str
) -> dict[str, Any] | None:
    """The Kafka sensor's ``apply_function``: the event as a dict if it calls for action.

    Called in Airflow's triggerer for each message on the drift topic. Lets through
    a parseable DriftEvent that opens a drift episode, for ``model_name``, judged against the
    current champion, and not in the handled-events ledger.

    The settings arrive as keyword arguments (the sensor's ``apply_function_kwargs``,
    serialized to the triggerer with the trigger), so the filter reads no environment
    and builds no settings per message.

    Parameters
    ----------
    message : confluent_kafka.Message
        Only ``value()`` (and, for logs, ``topic()``, ``partition()``, ``offset()``) is used.
    artifact_root : str
        The artifact root holding the registry and the ledger (``DRIFTLOOP_ARTIFACT_ROOT``).
    model_name : str
        The model this DAG retrains (``DRIFTLOOP_MODEL_NAME``).

    Returns
    -------
    dict or None
        The event as JSON-able data (the sensor's trigger event), or None to keep waiting.
        A malformed message is logged and passed over, never raised.

    Raises
    ------
    ValueError
        If ``model_name`` is not a safe directory name.
    models.registry.RegistryError
        If the registry or the ledger cannot be read: the message is then not
        committed, and the sensor fails and is retried instead of passing over an
        event it could not judge.
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
    reason = _not_actionable(event, Path(artifact_root), model_name)
    if reason is not None:
        logger.info("ignoring drift event=%s %s: %s", event.event_id, where, reason)
        return None
    logger.info("actionable drift event=%s %s", event.event_id, where)
    return event.model_dump(mode="json")


def _not_actionable(event: DriftEvent, root: Path, model_name: str) -> str | None:
    """Why the sensor should pass over an event, or None if it calls for action."""
    mismatch = not_for_us(event, model_name)
    if mismatch is not None:
        return mismatch
    record = HandledLedger(root, model_name).get(event.event_id)
    if record is not None:
        return f"duplicate: {record.summary()}"
    return stale_reason(event, Registry(root, model_name))


def _message_position(message: Any) -> str:
    """Where a message sits, for a log line; never fails, whatever ``message`` is."""
    try:
        return f"topic={message.topic()} partition={message.partition()} offset={message.offset()}"
    except Exception:
        return "(position unknown)"


def _one_line(err: BaseException) -> str:
    """An error's text on one line of at most 300 characters, for a log line."""
    return " ".join(str(err).split())[:300]
