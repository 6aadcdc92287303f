"""The handled-events ledger: which run took each drift event, and how it ended."""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from consumer.archive import stream_directory
from data.durable import fsync_dir, write_atomic, write_temp
from models.registry import Registry, RegistryError, RegistrySettings

logger = logging.getLogger(__name__)

HANDLED_DIR = "handled"
"""Directory of the handled-events ledger inside a model's registry directory."""
STREAMS_DIR = "streams"
"""Directory, inside the ledger's, of the retrain held per stream and champion version."""

STALE_HOLD_S = 3600.0
"""Age after which an unfinished retrain hold is taken to belong to a run that died."""

_EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")

Outcome = Literal["promoted", "rejected", "skipped"]
"""How a run ended for an event."""


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
    outcome: Outcome | None = None
    """How the run ended; None while the run has not finished."""
    detail: dict[str, Any] = Field(default_factory=dict)
    """The version trained, both scores, or the reason for a skip."""
    completed_at: AwareDatetime | None = None
    """When the outcome was recorded (UTC)."""

    def summary(self) -> str:
        """Who holds the event and how it stands, in a line for a skip or an error.

        >>> HandledRecord(
        ...     event_id="rows-0-0-49",
        ...     run_id="run-1",
        ...     claimed_at=datetime(2026, 1, 1, tzinfo=UTC),
        ...     outcome="promoted",
        ... ).summary()
        'event rows-0-0-49 was already handled by run run-1 (outcome promoted)'
        """
        if self.outcome is None:
            return (
                f"event {self.event_id} was claimed by run {self.run_id} at "
                f"{self.claimed_at.isoformat()}, which has not finished (clear that run's "
                "failed tasks to resume it)"
            )
        return (
            f"event {self.event_id} was already handled by run {self.run_id} "
            f"(outcome {self.outcome})"
        )


class HandledLedger:
    """Which drift events a run has taken, one file per event id.

    Layout under the artifact root::

        <root>/registry/<model_name>/handled/<event_id>.json

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

    def stream_path(self, stream: str, model_version: int) -> Path:
        """Where the retrain held for a stream against a champion version is recorded."""
        return self.directory / STREAMS_DIR / f"{stream_directory(stream)}-v{model_version}.json"

    def hold_stream(
        self, stream: str, model_version: int, event_id: str, run_id: str, busy_for: float
    ) -> HandledRecord:
        """Hold the retrain of ``stream`` against ``model_version`` for a run, or say who has it.

        A stream spread over partitions raises one onset per partition for one drift:
        the first run to get here retrains, and the others find it held. A hold ends
        when its event's outcome is recorded and ``busy_for`` seconds have passed since
        it was taken (the cooldown), or after ``STALE_HOLD_S`` (a run that died).

        Returns
        -------
        HandledRecord
            The hold now on disk; its ``run_id`` is ``run_id`` when this run holds it.
        """
        path = self.stream_path(stream, model_version)
        mine = HandledRecord(event_id=event_id, run_id=run_id, claimed_at=datetime.now(UTC))
        data = mine.model_dump_json(indent=2).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        if _create_exclusive(path, data):
            return mine
        try:
            held = HandledRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as err:
            raise RegistryError(f"cannot read the stream's retrain hold {path}: {err}") from err
        if held.run_id == run_id:
            return held
        age = (datetime.now(UTC) - held.claimed_at).total_seconds()
        event = self.get(held.event_id)
        finished = event is not None and event.outcome is not None
        if age < STALE_HOLD_S and (not finished or age < busy_for):
            return held
        write_atomic(path, data)
        return mine

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
        outcome: Outcome,
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


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` whole, only if it does not exist; True if created."""
    tmp = write_temp(path, data)
    try:
        # A hard link, unlike a rename, fails when the name exists: that failure is
        # what lets exactly one of several racing runs win the claim.
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
