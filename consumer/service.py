"""The consumer's loop: poll, decode, window, judge, hand off, checkpoint.

Offsets are committed only once a window's results are durable: its archive
written and fsynced, then its drift event (if any) acknowledged by the broker,
and every dead letter acknowledged. The committed offset of a partition is the
first offset the next window still needs, so a consumer killed at any point
re-reads exactly the rows of the windows it had not finished, and judges them
under the same ids.

The loop reads and judges on the calling thread. Archiving a poll's windows and
publishing their drift events run on an archive thread while the next poll is
read and judged: they are mostly waiting on the disk and the broker. At most one
poll's windows are in flight; their offsets are committed once the thread is
done with them.

The commit rules live in `consumer.checkpoint`, the dead-letter topic in
`consumer.dead_letters`, the champion in `consumer.champion`; the DriftEvent of
a window is built by `consumer.events`, and `consumer.assembly` builds the whole
monitor from settings.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from consumer.alarms import EVERY, RankThresholds
from consumer.archive import WindowArchive
from consumer.calibration import CalibrationCache
from consumer.champion import Champion
from consumer.checkpoint import Checkpoint
from consumer.dead_letters import DeadLetters
from consumer.decoding import MalformedRowError
from consumer.detection import DriftResult
from consumer.episodes import Transition
from consumer.events import DriftEvent, event_id_for
from consumer.lanes import Lane
from consumer.metrics import ConsumerMetrics
from consumer.model_updates import ModelUpdateFollower
from consumer.settings import ConsumerSettings
from consumer.windowing import CountWindower, Window
from models.registry import Registry, RegistryError
from producer.messages import RowMessage

logger = logging.getLogger(__name__)

UPDATE_CHECK_INTERVAL_S = 0.5
"""Seconds between checks of the model-updates topic while rows keep arriving."""


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


@dataclass(frozen=True)
class _ArchivedWindow:
    """What the archive thread writes for one window, and the event it then publishes."""

    path: Path
    feature_names: list[str]
    label_column: str
    offsets: tuple[int, ...]
    event_times: list[datetime]
    values: np.ndarray
    labels: list[int | str | None]
    event: DriftEvent


@dataclass
class _Judged:
    tp: TopicPartition
    window: Window[RowMessage]
    values: np.ndarray
    result: DriftResult
    seconds: float


class DriftMonitor:
    """Runs the loop over a subscribed consumer; see the module docstring for the guarantees.

    `consumer.assembly.build_monitor` builds one from settings, as every process
    runs it.

    Parameters
    ----------
    settings
        Window, detector and topic settings.
    consumer
        A consumer with auto-commit off; :meth:`run` subscribes it.
    producer
        An idempotent ``acks=all`` producer for drift events and dead letters.
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
        self.checkpoint = Checkpoint(consumer)
        self.calibration = CalibrationCache(settings.artifact_root)
        if settings.alarm == "rank":
            # Shipped for the default baseline size; another size is simulated once and
            # cached, here at start-up rather than when the first baseline completes.
            self.calibration.get(settings.alarm_warmup_rows, EVERY)
        self._windowers: dict[TopicPartition, CountWindower[RowMessage]] = {}
        self._lanes: dict[TopicPartition, Lane] = {}
        self._writer: ThreadPoolExecutor | None = None

    # -- the loop ---------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], idle_timeout: float | None = None) -> Stats:
        """Poll and judge until ``should_stop()`` is true (or ``idle_timeout`` s without rows).

        Leaves every finished window committed. If judging, archiving or publishing
        fails, the error propagates and nothing past the last durable window is
        committed: a restarted consumer judges those windows again.
        """
        self.consumer.subscribe([self.settings.rows_topic], listener=_Rebalance(self))
        logger.info(
            "consuming topic=%s group=%s window=%d step=%d backend=%s alarm=%s "
            "false_alarm_rows=%d model=%s",
            self.settings.rows_topic,
            self.settings.group_id,
            self.settings.window_size,
            self.settings.step,
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
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftloop-archive")
        next_update_check = time.monotonic()
        try:
            while not should_stop():
                if time.monotonic() >= next_update_check:
                    # Each check is a poll of the updates topic, which waits on that
                    # client's IO thread: not after every poll of a busy rows topic.
                    self.follow_model_updates()
                    next_update_check = time.monotonic() + UPDATE_CHECK_INTERVAL_S
                batch = self.consumer.poll(
                    timeout_ms=500, max_records=self.settings.max_poll_records
                )
                if batch:
                    last_rows = time.monotonic()
                    self.process(batch)
                else:
                    self.checkpoint.settle(wait=False)
                    if idle_timeout is not None and time.monotonic() - last_rows > idle_timeout:
                        break
            # Only on a clean stop: after a failure the windows of the failed poll have
            # left their windowers unarchived, and committing now would skip them.
            self.checkpoint.settle(wait=True)
            self.checkpoint.commit()
        finally:
            self._writer.shutdown(wait=True)
            self._writer = None
            self.checkpoint.abandon()
            if thawed:
                gc.unfreeze()
        return self.stats

    def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Handle one poll's records: window them, judge, hand off; commit what became durable."""
        completed = self._window(batch)
        windows = self._judge(completed) if completed else []
        # Acknowledged before the poll's positions are handed to the checkpoint.
        self.dead_letters.wait()
        write = None
        if windows:
            assert self._writer is not None, "process() runs inside run()"
            write = partial(self._writer.submit, self._archive, windows)
        self.checkpoint.hand_off(write)

    def _window(
        self, batch: dict[TopicPartition, list[Any]]
    ) -> list[tuple[TopicPartition, Window[RowMessage]]]:
        """Decode a poll's records into their partitions' windowers; the windows completed.

        Malformed records go to the dead-letter topic. Each partition's position is
        stored in the checkpoint.
        """
        completed: list[tuple[TopicPartition, Window[RowMessage]]] = []
        decoder = self.champion.decoder
        for tp, records in batch.items():
            windower = self._windowers.get(tp)
            if windower is None:
                windower = self._windowers[tp] = CountWindower(
                    self.settings.window_size, self.settings.step
                )
            decoded = decoder.decode_all([record.value for record in records])
            for record, message in zip(records, decoded, strict=True):
                if isinstance(message, MalformedRowError):
                    self.dead_letters.send(record, message)
                    continue
                window = windower.add(record.offset, message)
                if window is not None:
                    completed.append((tp, window))
            self.stats.rows += len(records)
            self.metrics.rows.inc(len(records))
            if not records:
                continue
            last_offset = records[-1].offset
            self.checkpoint.store(tp, last_offset, windower.pending_offset)
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    highwater - last_offset - 1
                )
        return completed

    def _archive(self, windows: list[_ArchivedWindow]) -> None:
        """On the archive thread: write the windows, make them durable, publish drift events."""
        for window in windows:
            self.archive.write_rows(
                window.path,
                window.feature_names,
                window.offsets,
                window.event_times,
                window.values,
                window.labels,
                window.label_column,
            )
            self.archive.write_verdict(window.path, window.event)
        self.archive.sync()
        # Published only now: a reader of the event (the retraining DAG) finds the
        # window in the archive.
        self._publish([w.event for w in windows if w.event.announces])

    def _publish(self, events: list[DriftEvent]) -> None:
        """Send drift events and wait for the broker's acknowledgement of each."""
        sent = [
            (
                e,
                self.producer.send(
                    self.settings.drift_topic, key=e.stream.encode(), value=e.to_bytes()
                ),
            )
            for e in events
        ]
        if sent:
            self.producer.flush()
        for event, future in sent:
            future.get(timeout=0)  # Raises the delivery error: the poll is never committed.
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
        to is archived. A crash between the switch and the acknowledgement loses the
        announcement (the new champion is in the registry either way).
        """
        self.checkpoint.settle(wait=True)
        resolutions = []
        for lane in self._lanes.values():
            transition = lane.episodes.rebaseline(reason)
            if transition is not None and lane.last_event is not None:
                event = lane.last_event.resolution(reason, suffix, datetime.now(UTC))
                resolutions.append(event)
                self._log_resolution(event, transition)
        self._publish(resolutions)
        # The new champion's reference and features: the lanes start over, warming up.
        self._lanes.clear()
        self._count_open_episodes()

    def _lane(self, tp: TopicPartition) -> Lane:
        lane = self._lanes.get(tp)
        if lane is None:
            budget = float(self.settings.false_alarm_rows)
            calibration = self.calibration

            def thresholds(baseline_rows: int, features: int) -> RankThresholds:
                return calibration.get(baseline_rows, EVERY).thresholds(features, budget)

            lane = self._lanes[tp] = Lane(
                self.settings.alarm,
                self.champion.metadata.feature_names,
                n_reference=self.champion.metadata.reference_rows,
                window_step=self.settings.step,
                false_alarm_rows=budget,
                thresholds=thresholds,
                warmup_rows=self.settings.alarm_warmup_rows,
                resolve_after=self.settings.episode_clean_windows,
                seed=tp.partition,
            )
        return lane

    def _observe(self, judged: list[_Judged]) -> None:
        """Give each partition's alarm the rows of its closed windows it has not seen, at once.

        Per partition in one call, so that the alarm's cost is paid per poll, not per
        row or window. Its firings carry their row's offset, and each window takes
        those up to its last row, so the verdicts are what feeding rows one by one
        would give. (Rows of a window still open reach the alarm when it closes: its
        verdict cannot be announced sooner.)
        """
        by_partition: dict[TopicPartition, list[_Judged]] = {}
        for item in judged:
            by_partition.setdefault(item.tp, []).append(item)
        for tp, items in by_partition.items():
            lane = self._lane(tp)
            values, offsets = [], []
            seen = lane.observed_through
            for item in items:
                at = np.asarray(item.window.offsets, dtype=np.int64)
                new = at > seen
                values.append(item.values[new])
                offsets.append(at[new])
                seen = int(at[-1])
            lane.observe(np.concatenate(values), np.concatenate(offsets))

    def _matrix(self, rows: list[RowMessage]) -> np.ndarray:
        return np.array(list(map(self.champion.decoder.values, rows)), dtype=np.float64)

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

    def _judge(
        self, completed: list[tuple[TopicPartition, Window[RowMessage]]]
    ) -> list[_ArchivedWindow]:
        """Judge and log the completed windows; return what the archive thread is to write."""
        champion = self.champion
        judged: list[_Judged] = []
        for tp, window in completed:
            values = self._matrix(list(window.items))
            started = time.perf_counter()
            result = champion.detector.predict(values)
            judged.append(_Judged(tp, window, values, result, time.perf_counter() - started))
        self._observe(judged)
        accuracies = self._accuracies(judged)
        archived = []
        for item, (labeled, accuracy) in zip(judged, accuracies, strict=True):
            self.metrics.window(item.result, champion.metadata.feature_names, item.seconds)
            archived.append(self._record(item, labeled, accuracy))
        self._count_open_episodes()
        return archived

    def _count_open_episodes(self) -> None:
        """The open-episodes gauge, counted from the lanes rather than kept in step."""
        self.metrics.episodes_open.set(
            sum(lane.episodes.open is not None for lane in self._lanes.values())
        )

    def _accuracies(self, judged: list[_Judged]) -> list[tuple[int, float | None]]:
        """The champion's accuracy on each window's labeled rows, in one predict call."""
        rows: list[np.ndarray] = []
        labels: list[Any] = []
        counts: list[int] = []
        for item in judged:
            mask = np.array([m.label is not None for m in item.window.items])
            counts.append(int(mask.sum()))
            rows.append(item.values[mask])
            labels.extend(m.label for m in item.window.items if m.label is not None)
        if not labels:
            return [(0, None)] * len(judged)
        predicted = self.champion.predict_labels(np.concatenate(rows))
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
        champion, window, result, tp = self.champion, item.window, item.result, item.tp
        names = champion.metadata.feature_names
        path = self.archive.path_for(
            tp.topic, tp.partition, window.first_offset, window.last_offset
        )
        event_id = event_id_for(tp.topic, tp.partition, window.first_offset, window.last_offset)
        judged_at = datetime.now(UTC)
        lane = self._lane(tp)
        verdict = lane.judge(
            event_id,
            window.first_offset,
            window.last_offset,
            result.distances,
            len(window.items),
            judged_at,
            evidence=result.is_drift,
        )
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
        lowest = int(np.argmin(result.p_values))
        logger.info(
            "window=%s offsets=%d-%d size=%d min_p=%.3g min_p_feature=%s drift=%s alarm=%s%s "
            "model=%s%s",
            window_id := event.window.window_id,
            window.first_offset,
            window.last_offset,
            len(window.items),
            float(result.p_values[lowest]),
            names[lowest],
            "yes" if result.is_drift else "no",
            "yes" if verdict.alarm.fired else ("warmup" if verdict.alarm.warming_up else "no"),
            "" if verdict.episode is None else f" episode={verdict.episode.episode_id}",
            champion.label,
            "" if accuracy is None else f" accuracy={accuracy:.3f}",
        )
        if verdict.alarm.fired:
            self.stats.alarms += 1
            self.metrics.alarms.labels(kind=verdict.alarm.kind or "").inc()
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
        return _ArchivedWindow(
            path=path,
            feature_names=names,
            label_column=champion.metadata.label_column,
            offsets=window.offsets,
            event_times=[m.event_time for m in window.items],
            values=item.values,
            labels=[m.label for m in window.items],
            event=event,
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

    def _forget(self, revoked: list[TopicPartition]) -> None:
        """Drop revoked partitions' windows and offsets: another instance reads them now."""
        for tp in revoked:
            self._windowers.pop(tp, None)
            self._lanes.pop(tp, None)
        self.checkpoint.forget(revoked)


class _Rebalance(ConsumerRebalanceListener):
    """Forget a partition's windows when it moves to another instance.

    kafka-python 3 calls this on its IO thread, where nothing may block (a
    synchronous commit there raises). Nothing needs to: every poll's sends are
    acknowledged before :meth:`DriftMonitor.process` returns, and every durable
    window's offset is committed asynchronously right after. If a commit is still
    in flight, the partition's new owner judges those windows again, under the
    same ids and into the same archive files.
    """

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.monitor._forget(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info(
            "assigned partitions %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        )
