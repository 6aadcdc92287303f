"""The consumer's loop: poll, decode, window, judge, archive, commit in a transaction.

Each partition's rows are windowed per stream. A poll's windows are written to the
archive as the poll is judged; at the end of a commit interval (``commit_interval_ms``),
or at once when a poll has a drift event to announce, the archive is fsynced and one
Kafka transaction carries the interval's drift events, its dead letters and the
partitions' offsets (with the metadata that says which rows past each offset are
done, see `consumer.checkpoint`). Readers of the
drift and dead-letter topics that read committed messages only see each event and
each dead letter exactly once, however often the consumer is killed: a killed
consumer's open transaction is aborted, and whoever takes its partitions (itself,
restarted, or another consumer of the group) judges the same windows again under
the same ids, into the same archive files.

The loop reads and judges on the calling thread. Archiving a poll's windows and
the transactions run on an archive thread while the next polls are read and judged:
they are mostly waiting on the disk and the broker. At most `POLLS_IN_FLIGHT` polls
are in flight; an idle consumer, one stopping and one handing partitions over
commit what the interval has archived first.

A row that cannot enter a window is dead-lettered with its reason; a window whose
judging fails is dead-lettered row by row with the error, and the loop goes on.

The commit's contents live in `consumer.checkpoint` and `consumer.partitions`, the
dead-letter topic in `consumer.dead_letters`, the champion in `consumer.champion`;
the DriftEvent of a window is built by `consumer.events`, and `consumer.assembly`
builds the whole monitor from settings.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
import zlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, cast

import numpy as np
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from broker.clients import PollWait
from consumer.alarms import EVERY, RankThresholds
from consumer.archive import WindowArchive
from consumer.calibration import CalibrationCache
from consumer.champion import Champion
from consumer.checkpoint import CheckpointError, InFlight, Resume
from consumer.dead_letters import DeadLetter, DeadLetters
from consumer.decoding import DecodedRow, MalformedRowError
from consumer.detection import DriftResult
from consumer.episodes import Transition
from consumer.events import DriftEvent, event_id_for
from consumer.lanes import Lane, LaneVerdict
from consumer.metrics import ConsumerMetrics
from consumer.model_updates import ModelUpdateFollower
from consumer.partitions import PartitionStreams
from consumer.settings import ConsumerSettings
from consumer.windowing import Merge, Window
from models.registry import Registry, RegistryError

logger = logging.getLogger(__name__)

POLLS_IN_FLIGHT = 4
"""Most polls handed to the archive thread and not yet archived and committed: the
loop reads and judges on while a transaction waits for the broker."""

YOUNG_GC_THRESHOLD = 50_000
"""Net new container objects between the cyclic garbage collector's young passes while
the loop runs (Python's default is 700).

A poll allocates some ten thousand of them (its rows, their windows, the verdicts) that
live until the archive thread is done with the poll, a few polls later. At 700 the
collector walks and promotes each poll's objects over and over, and its full passes walk
all the polls in flight: measured, 2 to 4 µs per row at window 50, a sixth of the
loop's time. At 50,000 a pass comes about once per hundred thousand rows; garbage that
only the collector frees (reference cycles, a few thousand objects per hundred thousand
rows) waits at most that long: a few MB."""

UPDATE_CHECK_INTERVAL_S = 0.5
"""Seconds between checks of the model-updates topic while rows keep arriving."""

STAGES = (
    "poll",
    "decode",
    "window",
    "detect",
    "alarm",
    "accuracy",
    "event",
    "wait",
    "archive",
    "commit",
)
"""The loop's stages, as `Stats.stage_seconds` times them: ``poll`` the client's fetch
and record parsing; ``decode`` rows from JSON; ``window`` rows into windows; ``detect``
the window matrix and its KS test; ``alarm`` the lanes' alarm and episodes; ``accuracy``
the champion's labels; ``event`` the DriftEvent, its log line and metrics; ``wait``
the loop waiting for the archive thread to take a poll (`POLLS_IN_FLIGHT`); ``archive``
writing and syncing the windows; ``commit`` the transaction (events, dead letters,
offsets)."""


@dataclass
class Stats:
    """What the consumer has done since it started, counted as windows are judged.

    ``drift_windows`` are windows whose KS verdict was drift (the evidence);
    ``alarms`` windows the alarm fired on; ``episodes`` and ``resolutions`` the drift
    episodes opened and closed. An episode's onset and its resolution are the drift
    events published, once their window is archived (the ``drift_events`` metric
    counts those publications).
    """

    rows: int = 0
    windows: int = 0
    drift_windows: int = 0
    alarms: int = 0
    episodes: int = 0
    resolutions: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    """Wall seconds spent per stage of the loop (see `STAGES`), summed over polls.

    ``archive`` and ``commit`` run on the archive thread, overlapping the next polls'
    stages on the loop's thread; the others (``wait`` too) run on the loop's thread. Taken with a
    few ``perf_counter`` calls per poll and per window, cheap enough to keep on.
    """

    thread_cpu_seconds: dict[str, float] = field(
        default_factory=lambda: {"loop": 0.0, "archive": 0.0}
    )
    """CPU seconds of the loop's thread (all of :meth:`DriftMonitor.run`) and of the
    archive thread (its stages); what else the process spends is its clients' threads."""

    @property
    def drift_events(self) -> int:
        """Drift events announced: onsets and resolutions."""
        return self.episodes + self.resolutions

    def summary(self) -> str:
        dead = ",".join(f"{k}:{v}" for k, v in sorted(self.dead_letters.items())) or "0"
        return (
            f"rows={self.rows} windows={self.windows} drift_windows={self.drift_windows} "
            f"alarms={self.alarms} episodes={self.episodes} resolved={self.resolutions} "
            f"dead_letters={dead}"
        )


class Row(NamedTuple):
    """A valid row in a window: the decoded message, and its record's bytes for a dead letter."""

    message: DecodedRow
    key: bytes | None
    value: bytes | None

    @property
    def stream(self) -> str:
        return self.message.stream

    @property
    def event_time(self) -> datetime:
        return self.message.event_time


_row = partial(tuple.__new__, Row)
"""Builds a Row from a tuple of its fields without a Python call: a poll builds thousands."""

# Read a poll's records and rows with map(), which runs no Python code per row.
_OFFSET_OF = attrgetter("offset")
_KEY_OF = attrgetter("key")
_VALUE_OF = attrgetter("value")
_STREAM_OF = attrgetter("stream")
_EVENT_TIME_OF = attrgetter("event_time")
_MESSAGE_OF = attrgetter("message")
_LABEL_OF = attrgetter("message.label")


@dataclass(frozen=True)
class _ArchivedWindow:
    """What the archive thread writes for one window, and the event it then publishes.

    ``path`` is the window's per-window name; the event published names its segment.
    """

    path: Path
    feature_names: list[str]
    label_column: str
    offsets: tuple[int, ...]
    event_times: list[datetime]
    values: np.ndarray
    labels: list[int | str | None]
    seqs: list[int]
    event: DriftEvent
    categories: dict[str, list[str]]
    """The decoder's category strings by code (append-only lists, read, never changed)."""


@dataclass
class _Judged:
    tp: TopicPartition
    stream: str
    window: Window[Row]
    values: np.ndarray
    result: DriftResult
    seconds: float


@dataclass
class _Uncommitted:
    """What the archive thread has archived and not committed yet: a commit interval's polls.

    ``offsets`` holds each partition's latest commit (its metadata describes every
    window archived before it), ``group`` the generation of the latest poll.
    """

    events: list[DriftEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    offsets: dict[TopicPartition, Any] = field(default_factory=dict)
    group: Any = None

    def __bool__(self) -> bool:
        return bool(self.events or self.dead or self.offsets)


@dataclass
class _Poll:
    """One poll's outcome: the windows it completed and the rows it rejected."""

    completed: list[tuple[TopicPartition, str, Window[Row]]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    partitions: list[TopicPartition] = field(default_factory=list)
    """The partitions whose records were taken (and whose positions are committed)."""


class DriftMonitor:
    """Runs the loop over a subscribed consumer; see the module docstring for the guarantees.

    `consumer.assembly.build_monitor` builds one from settings, as every process
    runs it.

    Parameters
    ----------
    settings
        Window, detector and topic settings.
    consumer
        A consumer with auto-commit off, reading committed messages only; :meth:`run`
        subscribes it.
    producer
        A transactional producer (``init_transactions`` done) for drift events and
        dead letters.
    champion
        The model to judge windows for.
    archive
        Where windows are written.
    registry, updates
        Where a new champion is loaded from, and the model-updates topic that says
        when; without them the champion never changes.
    metrics
        Where counts and gauges go (served or not); a private set by default.
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        champion: Champion,
        archive: WindowArchive,
        registry: Registry | None = None,
        updates: ModelUpdateFollower | None = None,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.champion = champion
        self.archive = archive
        self.registry = registry
        self.updates = updates
        self.metrics = metrics or ConsumerMetrics()
        self.metrics.model(champion.metadata.model_name, champion.metadata.version)
        self.dead_letters = DeadLetters(producer, settings.dlq_topic, self.metrics)
        self.stats = Stats(dead_letters=self.dead_letters.counts)
        self.in_flight = InFlight(POLLS_IN_FLIGHT)
        self._failed: BaseException | None = None
        """The archive thread's first failure: the work queued after it must not commit."""
        self.calibration = CalibrationCache(settings.artifact_root)
        if settings.alarm == "rank":
            # Shipped for the default baseline size; another size is simulated once and
            # cached, here at start-up rather than when the first baseline completes.
            self.calibration.get(settings.alarm_warmup_rows, EVERY)
        self._partitions: dict[TopicPartition, PartitionStreams[Row]] = {}
        self._lanes: dict[tuple[TopicPartition, str], Lane] = {}
        self._writer: ThreadPoolExecutor | None = None
        self._uncommitted = _Uncommitted()
        """Touched on the archive thread only (or with no poll in flight)."""
        self._committed_at = time.monotonic()

    # -- the loop ---------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], idle_timeout: float | None = None) -> Stats:
        """Poll and judge until ``should_stop()`` is true (or ``idle_timeout`` s without rows).

        Leaves every finished window committed. If archiving or the transaction
        fails, the error propagates and nothing of that poll is committed: whoever
        reads the partitions next judges those windows again.
        """
        self.consumer.subscribe([self.settings.rows_topic], listener=_Rebalance(self))
        logger.info(
            "consuming topic=%s group=%s instance=%s window=%d step=%d%s backend=%s alarm=%s "
            "false_alarm_rows=%d model=%s",
            self.settings.rows_topic,
            self.settings.group_id,
            self.settings.member_id,
            self.settings.window_size,
            self.settings.step,
            _time_windows(self.settings.window_time),
            self.settings.ks_backend,
            self.settings.alarm,
            self.settings.false_alarm_rows,
            self.champion.label,
        )
        last_rows = time.monotonic()
        # Start-up left a large heap that lives as long as the process: modules, the
        # model, its reference data. Rows held in windows keep the cyclic garbage
        # collector busy, and each of its full passes would walk all of that again;
        # frozen, it is skipped. Reference counting still frees frozen objects; only
        # reference cycles among them wait for the unfreeze when the loop ends.
        thawed = gc.get_freeze_count() == 0
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        if gc.isenabled() and 0 < thresholds[0] < YOUNG_GC_THRESHOLD:
            gc.set_threshold(YOUNG_GC_THRESHOLD, *thresholds[1:])
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftloop-archive")
        next_update_check = time.monotonic()
        wait = PollWait()
        cpu_started = time.thread_time()
        try:
            while not should_stop():
                if time.monotonic() >= next_update_check:
                    # Each check is a poll of the updates topic, which waits on that
                    # client's IO thread: not after every poll of a busy rows topic.
                    self.follow_model_updates()
                    next_update_check = time.monotonic() + UPDATE_CHECK_INTERVAL_S
                polled = time.perf_counter()
                batch = self.consumer.poll(
                    timeout_ms=wait.ms, max_records=self.settings.max_poll_records
                )
                self.stats.stage_seconds["poll"] += time.perf_counter() - polled
                if batch:
                    last_rows = time.monotonic()
                    self.process(batch)
                if wait.after(found=bool(batch)):  # idle
                    self.in_flight.settle(wait=False)
                    if not self.in_flight.busy:
                        self._commit_archived(wait=False)  # nothing waits on an idle stream
                    if idle_timeout is not None and time.monotonic() - last_rows > idle_timeout:
                        break
            self._commit_archived(wait=True)
        finally:
            self.stats.thread_cpu_seconds["loop"] += time.thread_time() - cpu_started
            self._writer.shutdown(wait=True)
            self._writer = None
            self.in_flight.abandon()
            gc.set_threshold(*thresholds)
            if thawed:
                gc.unfreeze()
        return self.stats

    def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Handle one poll's records: window, judge, then archive and commit (in flight)."""
        poll = self._window(batch)
        windows = self._judge(poll) if poll.completed else []
        offsets = {tp: self._partitions[tp].commit().commit() for tp in poll.partitions}
        # Taken now, on this thread: the generation the poll was read in, which the
        # broker checks when the transaction commits the offsets (KIP-447).
        group = self.consumer.group_metadata()
        assert self._writer is not None, "process() runs inside run()"
        waiting = time.perf_counter()
        self.in_flight.hand_off(
            partial(
                self._writer.submit,
                self._timed,
                partial(self._commit, windows, poll.dead, offsets, group),
            )
        )
        self.stats.stage_seconds["wait"] += time.perf_counter() - waiting

    def _commit_archived(self, wait: bool) -> None:
        """Commit what the archive thread has archived and not committed, once the polls
        in flight are done (see :meth:`_commit`); with ``wait``, wait for it.

        Raises whatever a poll in flight or the commit raised.
        """
        writer = self._writer
        if writer is None:
            return  # not running: run() committed everything before it returned
        self.in_flight.hand_off(partial(writer.submit, self._timed, self._flush))
        self.in_flight.settle(wait=wait)

    def _drop_in_flight(self) -> None:
        """Wait for the archive thread's queued work (it fails, after a failure), forget it."""
        with contextlib.suppress(Exception):  # the failure the caller handles, or its sequel
            self.in_flight.settle(wait=True)
        self._failed = None
        self._uncommitted = _Uncommitted()

    def _timed(self, work: Callable[[], None]) -> None:
        """On the archive thread: ``work``, timed (what the transaction did not take went
        to the archive); refused once earlier work failed (see `InFlight`)."""
        if self._failed is not None:
            raise RuntimeError(
                "not archived nor committed: the archive thread's work before it failed"
            ) from self._failed
        stages = self.stats.stage_seconds
        started, committing = time.perf_counter(), stages["commit"]
        cpu_started = time.thread_time()
        try:
            work()
        except BaseException as err:
            self._failed = err
            raise
        finally:
            stages["archive"] += time.perf_counter() - started - (stages["commit"] - committing)
            self.stats.thread_cpu_seconds["archive"] += time.thread_time() - cpu_started

    def _window(self, batch: dict[TopicPartition, list[Any]]) -> _Poll:
        """Decode a poll's records into their partition's stream windowers.

        Rows the partition's committed metadata names as done are skipped; rows that
        do not decode are noted as dead letters.
        """
        poll = _Poll()
        decoder = self.champion.decoder
        started = time.perf_counter()
        decoding = 0.0
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if not records or tp not in assigned:
                continue  # Revoked while the poll returned: its next owner reads them.
            part = self._partition(tp)
            if part.fresh and records[0].offset > part.resume.offset:
                # Fetched before this consumer took the partition (again): the rows from
                # the committed offset on are read anew, so no open window loses rows.
                part.fresh = False
                self.consumer.seek(tp, part.resume.offset)
                continue
            part.fresh = False
            poll.partitions.append(tp)
            decode_started = time.perf_counter()
            decoded = decoder.decode_all(list(map(_VALUE_OF, records)))
            decoding += time.perf_counter() - decode_started
            # Rows at or past what the commit read are all new: the steady state.
            replaying = records[0].offset < part.resume.read
            if replaying or set(map(type, decoded)) != {DecodedRow}:
                fresh = self._sort_out(tp, part, records, decoded, replaying, poll)
            else:
                # The steady state, every row valid (the types' set, one pass in C) and
                # new: the poll's rows go to the windowers in one call, no Python per row.
                self._add_valid(tp, part, records, cast(list[DecodedRow], decoded), poll)
                fresh = len(records)
            last_offset = records[-1].offset
            part.read_through(last_offset)
            self.stats.rows += fresh
            self.metrics.rows.inc(fresh)
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    highwater - last_offset - 1
                )
        stages = self.stats.stage_seconds
        stages["decode"] += decoding
        stages["window"] += time.perf_counter() - started - decoding
        return poll

    def _sort_out(
        self,
        tp: TopicPartition,
        part: PartitionStreams[Row],
        records: list[Any],
        decoded: list[DecodedRow | MalformedRowError],
        replaying: bool,
        poll: _Poll,
    ) -> int:
        """Window a poll with malformed rows, or one read again (``replaying``); the rows taken.

        Rows the commit names as dealt with are skipped; malformed rows are noted as
        dead letters, unless dead-lettered before the commit. The valid rows between
        two malformed ones are added in one call: each dead letter's log line keeps
        its place among the lines of the windows merged on time.
        """
        taken = 0
        valid: list[Any] = []
        rows: list[DecodedRow] = []
        for record, message in zip(records, decoded, strict=True):
            if isinstance(message, MalformedRowError):
                if replaying and not part.admits(record.offset, None):
                    continue  # Dead-lettered before the last commit.
                self._add_valid(tp, part, valid, rows, poll)
                valid, rows = [], []
                taken += 1
                poll.dead.append(
                    self.dead_letters.note(
                        tp.topic, tp.partition, record.offset, record.key, record.value, message
                    )
                )
                continue
            if replaying and not part.admits(record.offset, message.stream):
                continue  # Archived before the last commit.
            taken += 1
            valid.append(record)
            rows.append(message)
        self._add_valid(tp, part, valid, rows, poll)
        return taken

    def _add_valid(
        self,
        tp: TopicPartition,
        part: PartitionStreams[Row],
        records: list[Any],
        rows: list[DecodedRow],
        poll: _Poll,
    ) -> None:
        """Add the valid rows of ``records`` to their windows in one call; note those completed."""
        windows = part.add_many(
            list(map(_OFFSET_OF, records)),
            list(map(_STREAM_OF, rows)),
            list(map(_row, zip(rows, map(_KEY_OF, records), map(_VALUE_OF, records), strict=True))),
            None if part.time is None else list(map(_EVENT_TIME_OF, rows)),
        )
        poll.completed += [(tp, stream, window) for stream, window in windows]

    def _partition(self, tp: TopicPartition) -> PartitionStreams[Row]:
        """The partition's streams, resumed from its committed offset and metadata."""
        part = self._partitions.get(tp)
        if part is None:
            committed = self.consumer.committed(tp, metadata=True)
            resume = (
                Resume(0, 0)
                if committed is None
                else Resume.decode(committed.offset, committed.metadata)
            )
            self._check_shared_archive(tp, resume)
            timed = self.settings.window_time
            part = self._partitions[tp] = PartitionStreams(
                resume,
                self.settings.window_size,
                self.settings.step,
                seconds=None if timed is None else timed[0],
                min_rows=1 if timed is None else timed[1],
                on_merge=partial(_log_merge, tp),
            )
            if resume.streams:
                logger.info(
                    "resuming partition=%s/%d at offset=%d; archived already: %s",
                    tp.topic,
                    tp.partition,
                    resume.offset,
                    ", ".join(f"{s} below {o}" for s, o in sorted(resume.streams.items())),
                )
        return part

    def _check_shared_archive(self, tp: TopicPartition, resume: Resume) -> None:
        """Fail if the commit names archived windows this consumer's archive lacks.

        Consumers of one group must archive to one artifact root (a shared file
        system across hosts): the retraining reads a stream's windows from every
        partition, and a consumer resuming a partition relies on the windows its
        previous owner archived.
        """
        for stream in resume.streams:
            directory = self.archive.directory_for(tp.topic, stream, tp.partition)
            if not directory.is_dir():
                raise CheckpointError(
                    f"partition {tp.topic}/{tp.partition} was committed with archived "
                    f"windows of stream {stream!r}, but {directory} does not exist: every "
                    "consumer of a group must use the same artifact root (a shared file "
                    "system when they run on several hosts)"
                )

    def _commit(
        self,
        windows: list[_ArchivedWindow],
        dead: list[DeadLetter],
        offsets: dict[TopicPartition, Any],
        group: Any,
    ) -> None:
        """On the archive thread: archive the poll's windows; commit if the interval is up.

        The poll's drift events, dead letters and offsets join what the interval has
        archived; :meth:`_flush` commits them when the poll has an event to announce
        or ``commit_interval_ms`` has passed since the last transaction.
        """
        # Appended to the partitions' segments; _flush syncs each segment touched once.
        archived = self.archive.append_many(windows)
        uncommitted = self._uncommitted
        uncommitted.events.extend(event for event in archived if event.announces)
        uncommitted.dead.extend(dead)
        uncommitted.offsets.update(offsets)
        uncommitted.group = group
        interval = self.settings.commit_interval_ms / 1000
        if uncommitted.events or time.monotonic() - self._committed_at >= interval:
            self._flush()

    def _flush(self) -> None:
        """On the archive thread: sync the archive, then commit what it holds uncommitted.

        One transaction carries the drift events, dead letters and offsets; it is
        aborted if any part fails, and the error propagates: then nothing of it is
        committed (and it is not tried again: the partitions' next readers judge
        those windows again).
        """
        uncommitted, self._uncommitted = self._uncommitted, _Uncommitted()
        if not uncommitted:
            return
        self.archive.sync()
        # Published only now: a reader of the event (the retraining DAG) finds the
        # window in the archive, where the event's archive_path says.
        self._transaction(
            uncommitted.events, uncommitted.dead, uncommitted.offsets, uncommitted.group
        )
        self._committed_at = time.monotonic()

    def _transaction(
        self,
        events: list[DriftEvent],
        dead: list[DeadLetter],
        offsets: dict[TopicPartition, Any] | None = None,
        group: Any = None,
    ) -> None:
        """Send drift events and dead letters, and commit offsets, in one transaction."""
        if not events and not dead and not offsets:
            return
        started = time.perf_counter()
        try:
            self._send_in_transaction(events, dead, offsets, group)
        finally:
            self.stats.stage_seconds["commit"] += time.perf_counter() - started

    def _send_in_transaction(
        self,
        events: list[DriftEvent],
        dead: list[DeadLetter],
        offsets: dict[TopicPartition, Any] | None,
        group: Any,
    ) -> None:
        self.producer.begin_transaction()
        try:
            sent = [
                self.producer.send(
                    self.settings.drift_topic, key=e.stream.encode(), value=e.to_bytes()
                )
                for e in events
            ]
            letters = self.dead_letters.send(dead)
            if offsets:
                self.producer.send_offsets_to_transaction(offsets, group)
            self.producer.commit_transaction()
            for future in [*sent, *letters]:
                future.get(timeout=0)  # Raises a delivery error the commit did not.
        except BaseException:
            _abort(self.producer)
            raise
        for event in events:
            state = "onset" if event.episode is None else event.episode.state
            self.metrics.drift_events.labels(state=state).inc()

    def follow_model_updates(self) -> None:
        """Switch to the champion a ModelUpdate names; later windows are judged for it."""
        if self.updates is None or self.registry is None:
            return
        update = self.updates.poll()
        if update is None or update.version == self.champion.metadata.version:
            return
        old = self.champion
        try:
            new = Champion(self.registry.load(update.version), self.settings)
        except RegistryError as err:
            logger.error(
                "model update to v%d not applied, keeping %s: %s", update.version, old.label, err
            )
            return
        if new.metadata.feature_names != old.metadata.feature_names:
            logger.error(
                "model update to %s not applied, keeping %s: its features %s differ from %s",
                new.label,
                old.label,
                new.metadata.feature_names,
                old.metadata.feature_names,
            )
            return
        self._rebaseline(f"new champion {new.label}", f"resolved-v{new.metadata.version}")
        self.champion = new
        self.metrics.model(new.metadata.model_name, new.metadata.version)
        logger.warning(
            "MODEL SWITCH %s -> %s reference_sha256=%s drift_event=%s: "
            "windows completed from now on are judged against the new reference",
            old.label,
            new.label,
            new.metadata.reference_sha256[:12],
            update.drift_event_id,
        )

    def _rebaseline(self, reason: str, suffix: str) -> None:
        """Before a champion switch: resolve every open episode and announce it; new lanes.

        The in-flight poll is settled first, so the last window an announcement refers
        to is archived. A crash between the switch and the announcement's transaction
        loses the announcement (the new champion is in the registry either way).
        """
        self._commit_archived(wait=True)
        resolutions = []
        for lane in self._lanes.values():
            transition = lane.episodes.rebaseline(reason)
            if transition is not None and lane.last_event is not None:
                event = lane.last_event.resolution(reason, suffix, datetime.now(UTC))
                resolutions.append(event)
                self._log_resolution(event, transition)
        self._transaction(resolutions, [])
        # The new champion's reference and features: the lanes start over, warming up.
        self._lanes.clear()
        self._count_open_episodes()

    def _lane(self, tp: TopicPartition, stream: str) -> Lane:
        """The alarm and episodes of one stream in one partition."""
        lane = self._lanes.get((tp, stream))
        if lane is None:
            budget = float(self.settings.false_alarm_rows)
            calibration = self.calibration

            def thresholds(baseline_rows: int, features: int) -> RankThresholds:
                return calibration.get(baseline_rows, EVERY).thresholds(features, budget)

            lane = self._lanes[tp, stream] = Lane(
                self.settings.alarm,
                self.champion.metadata.feature_names,
                n_reference=self.champion.metadata.reference_rows,
                window_step=self.settings.step,
                false_alarm_rows=budget,
                thresholds=thresholds,
                warmup_rows=self.settings.alarm_warmup_rows,
                resolve_after=self.settings.episode_clean_windows,
                # Tie-breaking differs between lanes and repeats after a restart.
                seed=zlib.crc32(f"{tp.partition}/{stream}".encode()),
            )
        return lane

    def _observe(self, poll: _Poll, judged: list[_Judged]) -> list[_Judged]:
        """Give each lane's alarm the rows of its closed windows it has not seen, at once.

        Per lane in one call, so that the alarm's cost is paid per poll, not per row or
        window. Its firings carry their row's offset, and each window takes those up to
        its last row, so the verdicts are what feeding rows one by one would give.
        (Rows of a window still open reach the alarm when it closes: its verdict cannot
        be announced sooner.) A lane whose alarm fails is dropped and its windows are
        rejected; the others' are returned.
        """
        by_lane: dict[tuple[TopicPartition, str], list[_Judged]] = {}
        for item in judged:
            by_lane.setdefault((item.tp, item.stream), []).append(item)
        kept = []
        for (tp, stream), items in by_lane.items():
            lane = self._lane(tp, stream)
            values: list[np.ndarray] = []
            offsets: list[int] = []
            seen = lane.observed_through
            for item in items:
                # A window's offsets increase, so its new rows are a suffix, found without a
                # numpy call per window (a few µs each on 50 rows): all of them unless the
                # windows slide or a restart replays rows.
                at = item.window.offsets
                new = 0 if at[0] > seen else bisect_right(at, seen)
                values.append(item.values[new:])
                offsets.extend(at[new:])
                seen = at[-1]
            try:
                lane.observe(np.concatenate(values), np.array(offsets, dtype=np.int64))
            except Exception as err:  # a bad window must not stop the loop
                self._lanes.pop((tp, stream), None)
                for item in items:
                    self._reject(poll, item.tp, item.window, err)
                continue
            kept.extend(items)
        return kept

    def _matrix(self, rows: tuple[Row, ...]) -> np.ndarray:
        return self.champion.decoder.matrix(list(map(_MESSAGE_OF, rows)))

    def _matrices(self, windows: list[Window[Row]]) -> list[np.ndarray]:
        """Each window's feature matrix: views of one array built for the whole poll."""
        rows = chain.from_iterable(window.items for window in windows)
        every = self.champion.decoder.matrix(list(map(_MESSAGE_OF, rows)))
        ends = np.cumsum([len(window.items) for window in windows])
        return np.split(every, ends[:-1])

    def _reject(
        self, poll: _Poll, tp: TopicPartition, window: Window[Row], err: BaseException
    ) -> None:
        """Dead-letter a window whose judging failed, row by row, with the error."""
        logger.error(
            "window=%s/%d/%d could not be judged, dead-lettering its %d rows: %s: %s",
            tp.topic,
            tp.partition,
            window.first_offset,
            len(window.items),
            type(err).__name__,
            err,
            exc_info=err,
        )
        error = MalformedRowError("window-failed", f"{type(err).__name__}: {err}")
        for offset, row in zip(window.offsets, window.items, strict=True):
            poll.dead.append(
                self.dead_letters.note(tp.topic, tp.partition, offset, row.key, row.value, error)
            )

    def close(self) -> None:
        """Flush and close the clients the monitor was given."""
        try:
            self.producer.flush()
            self.producer.close()
        finally:
            try:
                self.consumer.close(autocommit=False)
            finally:
                if self.updates is not None:
                    self.updates.close()

    def __enter__(self) -> DriftMonitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- judging ----------------------------------------------------------------

    def _judge(self, poll: _Poll) -> list[_ArchivedWindow]:
        """Judge and log the poll's completed windows; what the archive thread is to write.

        A window whose judging raises is dead-lettered (see :meth:`_reject`); the
        others are judged as if it had not been there.
        """
        champion = self.champion
        stages = self.stats.stage_seconds
        began = time.perf_counter()
        judged = self._detect(poll)
        detected = time.perf_counter()
        judged = self._observe(poll, judged)
        observed = time.perf_counter()
        accuracies = self._accuracies(judged)
        scored_at = time.perf_counter()
        judging = stages["alarm"]
        archived = []
        results: list[DriftResult] = []
        seconds: list[float] = []
        for item, scored in zip(judged, accuracies, strict=True):
            try:
                if isinstance(scored, Exception):
                    raise scored
                archived.append(self._record(item, *scored))
            except Exception as err:  # a bad window must not stop the loop
                self._reject(poll, item.tp, item.window, err)
                continue
            results.append(item.result)
            seconds.append(item.seconds)
        # Counted once per poll: its gauges keep only the last window's values anyway.
        self.metrics.judged(results, champion.metadata.feature_names, seconds)
        self._count_open_episodes()
        ended = time.perf_counter()
        # _record added each window's lane.judge to "alarm"; the rest of its time is the event's.
        stages["event"] += ended - scored_at - (stages["alarm"] - judging)
        stages["detect"] += detected - began
        stages["alarm"] += observed - detected
        stages["accuracy"] += scored_at - observed
        return archived

    def _detect(self, poll: _Poll) -> list[_Judged]:
        """The KS verdict on each completed window, the poll's windows scored in one call.

        If the call fails, each window is judged on its own, and a window that fails
        alone is rejected (see :meth:`_reject`).
        """
        detector = self.champion.detector
        completed = poll.completed
        try:
            matrices = self._matrices([window for _, _, window in completed])
            started = time.perf_counter()
            results = detector.predict_many(matrices)
            seconds = (time.perf_counter() - started) / len(completed)
        except Exception:  # find the window that fails
            results, matrices, seconds = [], [], 0.0
        judged: list[_Judged] = []
        if len(results) == len(completed):
            for (tp, stream, window), values, result in zip(
                completed, matrices, results, strict=True
            ):
                if isinstance(result, Exception):
                    self._reject(poll, tp, window, result)
                    continue
                judged.append(_Judged(tp, stream, window, values, result, seconds))
            return judged
        for tp, stream, window in completed:
            try:
                values = self._matrix(window.items)
                started = time.perf_counter()
                result = detector.predict(values)
            except Exception as err:  # a bad window must not stop the loop
                self._reject(poll, tp, window, err)
                continue
            judged.append(
                _Judged(tp, stream, window, values, result, time.perf_counter() - started)
            )
        return judged

    def _count_open_episodes(self) -> None:
        """The open-episodes gauge, counted from the lanes rather than kept in step."""
        self.metrics.episodes_open.set(
            sum(lane.episodes.open is not None for lane in self._lanes.values())
        )

    def _accuracies(self, judged: list[_Judged]) -> list[tuple[int, float | None] | Exception]:
        """The champion's accuracy on each window's labeled rows, in one predict call.

        If the call fails, each window is scored on its own, and a window that fails
        alone gets its error in place of its accuracy.
        """
        try:
            return list(self._score(judged))
        except Exception:  # find the window that fails
            if len(judged) == 1:
                raise
        out: list[tuple[int, float | None] | Exception] = []
        for item in judged:
            try:
                out.extend(self._score([item]))
            except Exception as err:  # a bad window must not stop the loop
                out.append(err)
        return out

    def _score(self, judged: list[_Judged]) -> list[tuple[int, float | None]]:
        """Each window's labeled rows and the champion's accuracy on them (None: no label)."""
        labels: list[Any] = list(
            map(_LABEL_OF, chain.from_iterable(item.window.items for item in judged))
        )
        if labels.count(None) == len(labels):  # no labeled row (or no row)
            return [(0, None)] * len(judged)
        sizes = [len(item.window.items) for item in judged]
        values = np.concatenate([item.values for item in judged])
        counts = sizes
        if None in labels:
            # Some rows unlabeled: only the labeled ones are predicted and counted.
            labeled = np.array([label is not None for label in labels], dtype=bool)
            counts = [int(part.sum()) for part in np.split(labeled, np.cumsum(sizes)[:-1])]
            values = values[labeled]
            labels = [label for label in labels if label is not None]
        predicted = self.champion.predict_labels(values)
        correct = np.asarray(predicted) == np.asarray(labels, dtype=np.asarray(predicted).dtype)
        out: list[tuple[int, float | None]] = []
        start = 0
        for count in counts:
            hits = correct[start : start + count]
            out.append((count, float(hits.mean()) if count else None))
            start += count
        return out

    def _record(self, item: _Judged, labeled: int, accuracy: float | None) -> _ArchivedWindow:
        """Build the window's DriftEvent, log the window and any drift, count them."""
        champion, result, tp, window = self.champion, item.result, item.tp, item.window
        names = champion.metadata.feature_names
        path = self.archive.path_for(
            tp.topic, item.stream, tp.partition, window.first_offset, window.last_offset
        )
        event_id = event_id_for(tp.topic, tp.partition, window.first_offset, window.last_offset)
        judged_at = datetime.now(UTC)
        lane = self._lane(tp, item.stream)
        judging = time.perf_counter()
        verdict = lane.judge(
            event_id,
            window.first_offset,
            window.last_offset,
            result.distances,
            len(window.items),
            judged_at,
            evidence=result.is_drift,
            guard_p_values=result.guard_p_values,
        )
        self.stats.stage_seconds["alarm"] += time.perf_counter() - judging
        event = DriftEvent.for_window(
            tp.topic,
            tp.partition,
            window,
            result,
            model=champion.metadata,
            backend=champion.detector.backend,
            p_val=self.settings.p_val,
            correction=self.settings.correction,
            archive_path=path,
            labeled_rows=labeled,
            accuracy=accuracy,
            detected_at=judged_at,
            alarm=verdict.alarm,
            episode=verdict.episode,
        )
        lane.last_event = event
        self.stats.windows += 1
        self.stats.drift_windows += result.is_drift
        lowest = int(result.p_values.argmin())  # the method: np.argmin adds a dispatch
        window_id = event.window.window_id
        if logger.isEnabledFor(logging.INFO):  # its arguments cost more than the check
            self._log_window(item, window_id, result, lowest, verdict, accuracy)
        if verdict.alarm.fired:
            self.stats.alarms += 1
            self.metrics.alarm(verdict.alarm.kind or "")
        transition = verdict.transition
        if transition is not None and transition.change == "onset":
            self.stats.episodes += 1
            logger.warning(
                "DRIFT *** episode=%s window=%s features=%s alarm=%s kind=%s statistic=%.3g "
                "threshold=%.3g min_p=%.3g model=%s event_id=%s",
                transition.episode.episode_id,
                window_id,
                ",".join(verdict.alarm.features),
                verdict.alarm.name,
                verdict.alarm.kind,
                verdict.alarm.statistic or 0.0,
                verdict.alarm.threshold or 0.0,
                float(result.p_values[lowest]),
                champion.label,
                event.event_id,
            )
        elif transition is not None and transition.change == "update":
            logger.info(
                "drift episode=%s continues window=%s features=%s alarmed_windows=%d",
                transition.episode.episode_id,
                window_id,
                ",".join(verdict.alarm.features),
                transition.episode.alarmed_windows,
            )
        elif transition is not None:
            self._log_resolution(event, transition)
        messages = [row.message for row in window.items]
        return _ArchivedWindow(
            path=path,
            feature_names=names,
            label_column=champion.metadata.label_column,
            offsets=window.offsets,
            event_times=[message.event_time for message in messages],
            values=item.values,
            labels=[message.label for message in messages],
            seqs=[message.seq for message in messages],
            event=event,
            categories=champion.decoder.categories,
        )

    def _log_window(
        self,
        item: _Judged,
        window_id: str,
        result: DriftResult,
        lowest: int,
        verdict: LaneVerdict,
        accuracy: float | None,
    ) -> None:
        """The window's INFO line, the one line per window the README promises."""
        window = item.window
        alarm = verdict.alarm
        shares = result.missing_shares
        missing = (
            ""
            if shares is None
            else " missing="
            + ",".join(
                f"{name}:{share:.2f}"
                for name, share in zip(
                    self.champion.metadata.feature_names, shares.tolist(), strict=True
                )
                if share > 0
            )
        )
        logger.info(
            "window=%s stream=%s offsets=%d-%d size=%d%s min_p=%.3g min_p_feature=%s drift=%s "
            "alarm=%s%s%s model=%s%s",
            window_id,
            item.stream,
            window.first_offset,
            window.last_offset,
            len(window.items),
            "" if window.closed_by is None else f" closed_by={window.closed_by}",
            float(result.p_values[lowest]),
            self.champion.metadata.feature_names[lowest],
            "yes" if result.is_drift else "no",
            "yes" if alarm.fired else ("warmup" if alarm.warming_up else "no"),
            missing,
            "" if verdict.episode is None else f" episode={verdict.episode.episode_id}",
            self.champion.label,
            "" if accuracy is None else f" accuracy={accuracy:.3f}",
        )

    def _log_resolution(self, event: DriftEvent, transition: Transition) -> None:
        self.stats.resolutions += 1
        logger.warning(
            "DRIFT RESOLVED episode=%s reason=%s alarmed_windows=%d features=%s event_id=%s",
            transition.episode.episode_id,
            transition.reason,
            transition.episode.alarmed_windows,
            ",".join(transition.episode.drifted_features),
            event.event_id,
        )

    def _forget(self, revoked: list[TopicPartition], lost: bool = False) -> None:
        """Hand revoked partitions over: commit what is archived, then drop their state.

        The commit carries the revoked partitions' offsets while this consumer still
        owns them, so their next owner starts exactly where it ends. Partitions
        ``lost`` (the group moved on without this consumer) cannot be committed any
        more: the transaction fails, its windows are judged again by the lost
        partitions' next owner, and the kept partitions' by this consumer.
        """
        gone = set(revoked)
        try:
            self._commit_archived(wait=True)
        except Exception as err:
            if not lost:
                raise
            self._drop_in_flight()
            logger.warning(
                "partitions lost with windows archived and not committed: %s; every "
                "partition resumes from its committed offset",
                err,
            )
            # The failed transaction also held the kept partitions' dead letters and
            # events: they are read again from their commits, as a new owner would.
            gone |= set(self._partitions)
        for tp in gone:
            self._partitions.pop(tp, None)
        for key in [key for key in self._lanes if key[0] in gone]:
            del self._lanes[key]
        self._count_open_episodes()


def _time_windows(time: tuple[float, int] | None) -> str:
    """The start-up line's part about time windows (nothing when they are off).

    >>> _time_windows(None), _time_windows((60.0, 10))
    ('', ' window_seconds=60 window_min_rows=10')
    """
    return "" if time is None else f" window_seconds={time[0]:g} window_min_rows={time[1]}"


def _log_merge(tp: TopicPartition, stream: str, merge: Merge) -> None:
    """The line saying a window closed on time too small to judge, and stays open."""
    logger.info(
        "window merged window=%s/%d/%d stream=%s rows=%d < min %d (closed by time after "
        "%g s of event time): it stays open and takes the next rows",
        tp.topic,
        tp.partition,
        merge.first_offset,
        stream,
        merge.rows,
        merge.min_rows,
        merge.seconds,
    )


def _abort(producer: KafkaProducer) -> None:
    """Abort the open transaction, if the producer still can (a fatal error forbids it)."""
    try:
        producer.abort_transaction()
    except Exception as err:  # the original error is the one to raise
        logger.warning("could not abort the transaction: %s", err)


class _Rebalance(ConsumerRebalanceListener):
    """Finish the poll in flight, then forget a partition's windows, when it moves.

    kafka-python 3 calls this on its IO thread, before the consumer rejoins the group.
    Waiting there for the archive thread is safe (the transaction runs on the
    producer's own client) and is what keeps a partition's offsets and its windows
    together: its new owner can be assigned it only after this returns.
    """

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.monitor._forget(list(revoked))

    def on_partitions_lost(self, lost: Any) -> None:
        self.monitor._forget(list(lost), lost=True)

    def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info(
            "assigned partitions %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        )
        topic = self.monitor.settings.rows_topic
        foreign = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned if tp.topic != topic)
        if foreign:
            # A static member rejoining its group is handed the assignment it had: a
            # group that read another topic under this instance id keeps giving it.
            logger.error(
                "assigned partitions of another topic than %s: %s; this instance id (%s) "
                "was a member of group %s when it read that topic, and the group hands a "
                "rejoining static member its old assignment: use a group id of its own "
                "for each rows topic (or wait for the old members' session to end)",
                topic,
                ", ".join(foreign),
                self.monitor.settings.member_id,
                self.monitor.settings.group_id,
            )
