"""Reading a drift event from whatever form a DAG task holds it in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from consumer.events import DriftEvent

EventLike = DriftEvent | Mapping[str, Any] | str | bytes
"""What a task may hold: the event, its dict (an XCom, a run's conf) or its JSON."""


def parse_event(event: EventLike) -> DriftEvent:
    """A DriftEvent from what a task holds: the event, its dict, or its JSON.

    Parameters
    ----------
    event : DriftEvent, mapping, str or bytes
        The event itself, its JSON-able dict or its JSON text.

    Returns
    -------
    DriftEvent
        ``event`` itself when it already is one.

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
