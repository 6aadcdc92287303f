"""The drift timeline's data: the consumer's archived window verdicts, read back in order."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from consumer.archive import ArchiveError, archived_verdicts
from consumer.events import DriftEvent
from consumer.labels.store import late_accuracies
from models.registry import Registry, RegistryError, VersionMetadata

logger = logging.getLogger(__name__)

SMALLEST_P = math.nextafter(0.0, 1.0)
"""The smallest positive float: the lowest floor a p-value of 0 can be drawn at."""


class EmptyTimelineError(ValueError):
    """There is no window verdict to draw; the message names the directory searched."""


@dataclass(frozen=True)
class ModelSwitch:
    """The first window judged by a model version other than the one before it.

    Attributes
    ----------
    index : int
        Position of that window in the timeline (detection order).
    model_name : str
        The model whose version changed.
    from_version, to_version : int
        The version that judged the model's previous window, and the new one.
    event : DriftEvent
        The verdict of the first window judged by ``to_version``.
    """

    index: int
    model_name: str
    from_version: int
    to_version: int
    event: DriftEvent


@dataclass(frozen=True)
class VersionSummary:
    """How the windows one model version judged went.

    Attributes
    ----------
    model_name : str
        The model.
    version : int
        Its version.
    windows : int
        Windows it judged.
    drifted : int
        Of those, the drifted ones: each was published as a drift event.
    metadata : VersionMetadata or None
        What the registry says about the version, when it could be read.
    """

    model_name: str
    version: int
    windows: int
    drifted: int
    metadata: VersionMetadata | None


@dataclass(frozen=True)
class Timeline:
    """Every window verdict found, in detection order, and what they add up to.

    Attributes
    ----------
    source : pathlib.Path
        The directory the verdicts were read from.
    events : tuple of DriftEvent
        The verdicts, ordered by detection time, then topic, partition and first offset.
    skipped : tuple of pathlib.Path
        Verdict files that could not be read or parsed.
    registered : Mapping
        ``(model_name, version)`` to the registry's metadata, for the versions found there.
    late : Mapping
        ``(topic, partition, first offset)`` of a window to the champion's accuracy on
        it once its labels came later (``python -m consumer.labels``).
    """

    source: Path
    events: tuple[DriftEvent, ...]
    skipped: tuple[Path, ...] = ()
    registered: Mapping[tuple[str, int], VersionMetadata] = field(default_factory=dict)
    late: Mapping[tuple[str, int, int], float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    @cached_property
    def features(self) -> list[str]:
        """Every feature with a p-value, in the order first seen."""
        return list(dict.fromkeys(name for event in self.events for name in event.p_values))

    @cached_property
    def late_accuracy(self) -> list[float | None]:
        """Each window's late accuracy (labels that came after it was judged), or None."""
        return [
            self.late.get((e.window.topic, e.window.partition, e.window.first_offset))
            for e in self.events
        ]

    @property
    def drifted(self) -> int:
        """How many windows drifted."""
        return sum(event.is_drift for event in self.events)

    @cached_property
    def episodes(self) -> list[tuple[str, int, int]]:
        """Each drift episode as (episode id, index of its first and last window), in order.

        Windows archived before episodes existed belong to none.
        """
        spans: dict[str, list[int]] = {}
        for index, event in enumerate(self.events):
            if event.episode is not None:
                spans.setdefault(event.episode.episode_id, []).append(index)
        return [(episode, min(at), max(at)) for episode, at in spans.items()]

    @cached_property
    def switches(self) -> list[ModelSwitch]:
        """Each window where a model's version differs from that model's previous window."""
        last: dict[str, int] = {}
        switches = []
        for index, event in enumerate(self.events):
            before = last.get(event.model_name)
            if before is not None and before != event.model_version:
                switches.append(
                    ModelSwitch(index, event.model_name, before, event.model_version, event)
                )
            last[event.model_name] = event.model_version
        return switches

    @cached_property
    def versions(self) -> list[VersionSummary]:
        """Windows and drifted windows per model version, in order of first use."""
        counts: dict[tuple[str, int], list[int]] = {}
        for event in self.events:
            tally = counts.setdefault((event.model_name, event.model_version), [0, 0])
            tally[0] += 1
            tally[1] += event.is_drift
        return [
            VersionSummary(name, version, windows, drifted, self.registered.get((name, version)))
            for (name, version), (windows, drifted) in counts.items()
        ]

    @property
    def has_zero_p_values(self) -> bool:
        """Whether some feature's p-value is exactly 0, drawn at :attr:`p_floor`."""
        return any(p <= 0 for e in self.events for p in e.p_values.values())

    @property
    def p_floor(self) -> float:
        """Where a p-value of 0 is drawn: a decade below the smallest positive value shown.

        >>> Timeline(Path("."), ()).p_floor
        0.1
        """
        positive = [p for e in self.events for p in e.p_values.values() if p > 0]
        positive += [e.detector.threshold for e in self.events if e.detector.threshold > 0]
        smallest = min(positive, default=1.0)
        return max(10.0 ** (math.floor(math.log10(smallest)) - 1), SMALLEST_P)

    def version_label(self, model_name: str, version: int) -> str:
        """``v2``, or ``classifier v2`` when the timeline holds more than one model."""
        if len({event.model_name for event in self.events}) > 1:
            return f"{model_name} v{version}"
        return f"v{version}"

    def window_label(self, index: int) -> str:
        """Where a window lies: its first offset, with partition or topic when they vary.

        The ``/`` form is ``topic/partition:first_offset``; ``p1:200`` is partition 1.
        """
        window = self.events[index].window
        if len({event.window.topic for event in self.events}) > 1:
            return f"{window.topic}/{window.partition}:{window.first_offset}"
        if len({event.window.partition for event in self.events}) > 1:
            return f"p{window.partition}:{window.first_offset}"
        return str(window.first_offset)


def load_timeline(artifact_root: Path, topic: str | None = None) -> Timeline:
    """Read every archived window verdict, in detection order.

    The consumer archives one :class:`~consumer.events.DriftEvent` per judged
    window, drifted or not, under ``<artifact_root>/archive/<topic>/<stream>/<partition>/``
    (in segments, or per-window ``.json`` files of older archives).

    Parameters
    ----------
    artifact_root : pathlib.Path
        The artifact root the consumer archives under (``<root>/archive/...``).
    topic : str, optional
        Only this topic's windows; every topic's by default.

    Returns
    -------
    Timeline
        The verdicts, ordered by detection time, then topic, partition and first
        offset, with the registry's metadata of the model versions that judged them.

    Raises
    ------
    ValueError
        If ``topic`` is not a plain topic name.
    EmptyTimelineError
        If no readable verdict was found; the message names the directory searched.

    Notes
    -----
    A verdict that cannot be read or parsed is skipped with a warning: one damaged
    file never stops the report (a segment's torn tail is never read at all).
    """
    source = Path(artifact_root) / "archive"
    if topic is not None:
        if not topic or "/" in topic or "\\" in topic or topic in (".", ".."):
            raise ValueError(f"topic must be a topic name, got {topic!r}")
        source = source / topic
    events: list[DriftEvent] = []
    skipped: list[Path] = []
    try:
        found = archived_verdicts(Path(artifact_root), topic)
    except ArchiveError as err:
        raise EmptyTimelineError(f"nothing to plot: {err}") from err
    for verdict in found:
        path = Path(verdict.source)
        if not verdict.data:
            logger.warning("skipping unreadable verdict path=%s reason=empty or unreadable", path)
            skipped.append(path)
            continue
        try:
            events.append(DriftEvent.model_validate_json(verdict.data))
        except ValidationError as err:
            logger.warning("skipping malformed verdict path=%s reason=%s", path, _first_error(err))
            skipped.append(path)
    if not events:
        raise EmptyTimelineError(_nothing_to_plot(source, len(found)))
    events.sort(
        key=lambda e: (e.detected_at, e.window.topic, e.window.partition, e.window.first_offset)
    )
    late = {
        (point.topic, point.partition, point.first_offset): point.accuracy
        for point in late_accuracies(Path(artifact_root))
        if topic is None or point.topic == topic
    }
    return Timeline(source, tuple(events), tuple(skipped), _registered(artifact_root, events), late)


def _nothing_to_plot(source: Path, found: int) -> str:
    hint = "run `python -m consumer` first, or pass --artifact-root"
    if not source.is_dir():
        return (
            f"nothing to plot: {source} does not exist; the consumer archives each judged "
            f"window there ({hint})"
        )
    if found:
        return (
            f"nothing to plot: all {found} verdict files under {source} are malformed "
            "(see the warnings above)"
        )
    return (
        f"nothing to plot: no window verdicts (<stream>/<partition>/*.seg) under {source} ({hint})"
    )


def _registered(
    artifact_root: Path, events: Sequence[DriftEvent]
) -> dict[tuple[str, int], VersionMetadata]:
    """The registry's metadata of each version that judged a window, where it can be read."""
    found = {}
    for name, version in dict.fromkeys((e.model_name, e.model_version) for e in events):
        try:
            found[(name, version)] = Registry(Path(artifact_root), name).metadata(version)
        except (RegistryError, ValueError) as err:
            # The report stands on the verdicts alone; the registry only adds context.
            logger.debug("no registry metadata model=%s version=%d: %s", name, version, err)
    return found


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    return f"{where}: {first['msg']}"
