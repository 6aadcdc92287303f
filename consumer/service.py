"""The consumer's loop: poll, dead-letter, window, judge, archive, publish, commit.

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
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumer.archive import WindowArchive
from consumer.decoding import MalformedRowError, RowDecoder
from consumer.detection import DriftResult, make_detector
from consumer.events import DetectorInfo, DriftEvent, WindowRef, event_id_for
from consumer.metrics import ConsumerMetrics
from consumer.model_updates import ModelUpdateFollower
from consumer.settings import ConsumerSettings
from consumer.windowing import CountWindower, Window
from models.registry import LoadedModel, Registry, RegistryError
from producer.messages import RowMessage

logger = logging.getLogger(__name__)

UPDATE_CHECK_INTERVAL_S = 0.5
"""Seconds between checks of the model-updates topic while rows keep arriving."""

DLQ_REASON_HEADER = "driftloop.error.reason"
DLQ_DETAIL_HEADER = "driftloop.error.detail"


class NoChampionError(RuntimeError):
    """The registry has no champion model to judge windows against."""


@dataclass
class Stats:
    """What the consumer has done since it started."""

    rows: int = 0
    windows: int = 0
    drift_events: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        dead = ",".join(f"{k}:{v}" for k, v in sorted(self.dead_letters.items())) or "0"
        return (
            f"rows={self.rows} windows={self.windows} drift_events={self.drift_events} "
            f"dead_letters={dead}"
        )


class Champion:
    """The model windows are judged for: its estimator, reference data and KS detector."""

    def __init__(self, loaded: LoadedModel, settings: ConsumerSettings) -> None:
        self.loaded = loaded
        self.metadata = loaded.metadata
        self.decoder = RowDecoder(loaded.metadata.feature_names)
        self.detector = make_detector(
            loaded.reference,
            p_val=settings.p_val,
            correction=settings.correction,
            backend=settings.ks_backend,
        )
        self.predict_labels = label_predictor(loaded.estimator, loaded.reference)
        """The estimator's ``predict``, or an equal and cheaper one; see `label_predictor`."""

    @classmethod
    def from_registry(cls, registry: Registry, settings: ConsumerSettings) -> Champion:
        loaded = registry.champion()
        if loaded is None:
            raise NoChampionError(
                f"no champion model in {registry.root}: train one first with "
                "`python -m models train --data data/iris.csv`"
            )
        return cls(loaded, settings)

    @property
    def label(self) -> str:
        return f"{self.metadata.model_name}:v{self.metadata.version}"


def label_predictor(estimator: Any, reference: np.ndarray) -> Callable[[np.ndarray], Any]:
    """``estimator.predict``, or for a random forest an equal loop that skips joblib.

    ``RandomForestClassifier.predict`` adds up its trees' class probabilities in
    tree order, divides by the number of trees and returns the class with the
    highest mean. It hands each tree to joblib through a wrapper that sets up
    configuration and warning filters and checks the input again; on a poll's
    rows that costs several times what the trees do. The loop returned here does
    the same arithmetic in the same order without the dispatch, so its labels are
    the same, ties included. It is used only for a fitted single-output forest
    trained on a plain array, only on finite input of the trained width (anything
    else goes to ``estimator.predict``, errors included), and only if it gives
    exactly ``estimator.predict``'s labels on ``reference``.

    Parameters
    ----------
    estimator : Any
        The champion's fitted classifier.
    reference : numpy.ndarray
        Rows to check the loop against ``estimator.predict`` on.

    Returns
    -------
    Callable
        Takes a float64 array of shape (rows, features), returns one label per row.
    """
    # Imported here, not with the module: reading this module does not load
    # scikit-learn (loading a model does).
    from sklearn.ensemble import RandomForestClassifier

    if (
        type(estimator) is not RandomForestClassifier
        or getattr(estimator, "n_outputs_", None) != 1
        or hasattr(estimator, "feature_names_in_")
    ):
        return estimator.predict
    # Each tree's predict_proba(X, check_input=False) is its fitted tree_.predict(X)
    # cut to its classes, after checks that cost more than the lookup on a poll's rows.
    trees = [(tree.tree_, tree.n_classes_) for tree in estimator.estimators_]
    classes = estimator.classes_
    n_features = estimator.n_features_in_
    n_classes = estimator.n_classes_

    def predict(x: np.ndarray) -> Any:
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != n_features or not np.isfinite(x).all():
            return estimator.predict(x)
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        proba = np.zeros((x32.shape[0], n_classes), dtype=np.float64)
        for tree, tree_classes in trees:
            proba += tree.predict(x32)[:, :tree_classes]
        proba /= len(trees)
        return classes.take(np.argmax(proba, axis=1), axis=0)

    check = np.asarray(reference, dtype=np.float64)
    if not np.array_equal(predict(check), estimator.predict(check)):
        return estimator.predict
    return predict


@dataclass
class _Partition:
    windower: CountWindower[RowMessage]
    last_offset: int | None = None
    committed: int | None = None

    def commit_position(self) -> int | None:
        """The first offset the next window still needs, or past everything consumed."""
        pending = self.windower.pending_offset
        if pending is not None:
            return pending
        return None if self.last_offset is None else self.last_offset + 1


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


@dataclass(frozen=True)
class _InFlight:
    """A poll's windows on the archive thread, and the positions to commit once done."""

    done: Future[None]
    positions: dict[TopicPartition, int]


@dataclass
class _Judged:
    tp: TopicPartition
    window: Window[RowMessage]
    values: np.ndarray
    result: DriftResult
    seconds: float


class DriftMonitor:
    """Runs the loop over a subscribed consumer; see the module docstring for the guarantees.

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
        self.stats = Stats()
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._sends: list[Any] = []
        self._commit_in_flight = False
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: _InFlight | None = None
        self._durable: dict[TopicPartition, int] = {}
        """Positions whose windows are all durable, not yet committed."""

    # -- the loop ---------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], idle_timeout: float | None = None) -> Stats:
        """Poll and judge until ``should_stop()`` is true (or ``idle_timeout`` s without rows).

        Leaves every finished window committed. If judging, archiving or publishing
        fails, the error propagates and nothing past the last durable window is
        committed: a restarted consumer judges those windows again.
        """
        self.consumer.subscribe([self.settings.rows_topic], listener=_Rebalance(self))
        logger.info(
            "consuming topic=%s group=%s window=%d step=%d backend=%s model=%s",
            self.settings.rows_topic,
            self.settings.group_id,
            self.settings.window_size,
            self.settings.step,
            self.settings.ks_backend,
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
                    self._settle(wait=False)
                    if idle_timeout is not None and time.monotonic() - last_rows > idle_timeout:
                        break
            # Only on a clean stop: after a failure the windows of the failed poll have
            # left their windowers unarchived, and committing now would skip them.
            self._settle(wait=True)
            self.commit()
        finally:
            self._writer.shutdown(wait=True)
            self._writer = None
            self._in_flight = None
            if thawed:
                gc.unfreeze()
        return self.stats

    def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Handle one poll's records; commit what became durable."""
        completed: list[tuple[TopicPartition, Window[RowMessage]]] = []
        decoder = self.champion.decoder
        for tp, records in batch.items():
            state = self._partitions.get(tp)
            if state is None:
                state = self._partitions[tp] = self._new_partition()
            windower = state.windower
            decoded = decoder.decode_all([record.value for record in records])
            for record, message in zip(records, decoded, strict=True):
                if isinstance(message, MalformedRowError):
                    self._dead_letter(record, message)
                    continue
                window = windower.add(record.offset, message)
                if window is not None:
                    completed.append((tp, window))
            if records:
                state.last_offset = records[-1].offset
            self.stats.rows += len(records)
            self.metrics.rows.inc(len(records))
            highwater = self.consumer.highwater(tp)
            if highwater is not None and state.last_offset is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    highwater - state.last_offset - 1
                )
        windows = self._judge(completed) if completed else []
        if self._sends:
            self._await_sends()
        positions = self._positions()
        # One poll in flight at most: the previous poll's windows are usually written
        # by now, while this poll was read and judged.
        self._settle(wait=True)
        if windows:
            assert self._writer is not None, "process() runs inside run()"
            self._in_flight = _InFlight(self._writer.submit(self._archive, windows), positions)
        else:
            self._durable.update(positions)
            self._commit_durable()

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
        sent = [
            self.producer.send(
                self.settings.drift_topic, key=w.event.stream.encode(), value=w.event.to_bytes()
            )
            for w in windows
            if w.event.is_drift
        ]
        if sent:
            self.producer.flush()
        for future in sent:
            future.get(timeout=0)  # Raises the delivery error: the poll is never committed.

    def _settle(self, wait: bool) -> None:
        """Commit the in-flight poll's positions if it is done (or once done, with ``wait``).

        Raises whatever archiving or publishing that poll raised.
        """
        in_flight = self._in_flight
        if in_flight is not None and (wait or in_flight.done.done()):
            self._in_flight = None
            in_flight.done.result()
            self._durable.update(in_flight.positions)
        self._commit_durable()

    def _commit_durable(self) -> None:
        """Commit the durable positions asynchronously, unless a commit is in flight."""
        if self._commit_in_flight or not self._durable:
            return  # The next call carries these offsets too.
        durable, self._durable = self._durable, {}
        offsets = self._moved(durable)
        if offsets:
            # Safe to commit asynchronously: if it is lost, the windows are judged
            # again under the same ids and archived to the same files.
            self._commit_in_flight = True
            self.consumer.commit_async(offsets, callback=self._commit_done)

    def commit(self) -> None:
        """Commit, and wait for, each partition's first offset still needed.

        Only for when no poll is in flight (see :meth:`_settle`): then every
        completed window is durable.
        """
        if self._in_flight is not None:
            raise RuntimeError("a poll's windows are still being archived; settle them first")
        self._durable = {}
        offsets = self._moved(self._positions())
        if offsets:
            self.consumer.commit(offsets)

    def _positions(self) -> dict[TopicPartition, int]:
        """Each partition's commit position now (see `_Partition.commit_position`)."""
        return {
            tp: position
            for tp, state in self._partitions.items()
            if (position := state.commit_position()) is not None
        }

    def _moved(self, positions: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        """The positions that differ from the last commit, as offsets; marks them committed.

        Partitions revoked since the positions were taken are left out: not ours to commit.
        """
        offsets = {}
        for tp, position in positions.items():
            state = self._partitions.get(tp)
            if state is not None and position != state.committed:
                offsets[tp] = OffsetAndMetadata(position, "", -1)
                state.committed = position
        return offsets

    def _commit_done(self, offsets: Any, response: Any) -> None:
        self._commit_in_flight = False
        if isinstance(response, Exception):
            logger.warning("offset commit failed (the windows will be judged again): %s", response)
            for tp in offsets:
                if tp in self._partitions:
                    self._partitions[tp].committed = None

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

    # -- judging ----------------------------------------------------------------

    def _judge(
        self, completed: list[tuple[TopicPartition, Window[RowMessage]]]
    ) -> list[_ArchivedWindow]:
        """Judge and log the completed windows; return what the archive thread is to write."""
        champion = self.champion
        judged: list[_Judged] = []
        for tp, window in completed:
            values = np.array(list(map(champion.decoder.values, window.items)), dtype=np.float64)
            started = time.perf_counter()
            result = champion.detector.predict(values)
            judged.append(_Judged(tp, window, values, result, time.perf_counter() - started))
        accuracies = self._accuracies(judged)
        archived = []
        for item, (labeled, accuracy) in zip(judged, accuracies, strict=True):
            self.metrics.window(item.result, champion.metadata.feature_names, item.seconds)
            archived.append(self._record(item, labeled, accuracy))
        return archived

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
        first, last = window.items[0], window.items[-1]
        path = self.archive.path_for(
            tp.topic, tp.partition, window.first_offset, window.last_offset
        )
        event = DriftEvent(
            event_id=event_id_for(tp.topic, tp.partition, window.first_offset, window.last_offset),
            stream=first.stream,
            detected_at=datetime.now(UTC),
            window=WindowRef(
                topic=tp.topic,
                partition=tp.partition,
                first_offset=window.first_offset,
                last_offset=window.last_offset,
                size=len(window.items),
                first_event_time=first.event_time,
                last_event_time=last.event_time,
            ),
            detector=DetectorInfo(
                backend=champion.detector.backend,
                p_val=self.settings.p_val,
                correction=self.settings.correction,
                threshold=result.threshold,
            ),
            is_drift=result.is_drift,
            p_values=dict(zip(names, result.p_values.tolist(), strict=True)),
            distances=dict(zip(names, result.distances.tolist(), strict=True)),
            drifted_features=[names[i] for i in result.drifted],
            model_name=champion.metadata.model_name,
            model_version=champion.metadata.version,
            reference_sha256=champion.metadata.reference_sha256,
            archive_path=str(path),
            labeled_rows=labeled,
            accuracy=accuracy,
        )
        self.stats.windows += 1
        lowest = int(np.argmin(result.p_values))
        logger.info(
            "window=%s offsets=%d-%d size=%d min_p=%.3g min_p_feature=%s drift=%s model=%s%s",
            window_id := event.window.window_id,
            window.first_offset,
            window.last_offset,
            len(window.items),
            float(result.p_values[lowest]),
            names[lowest],
            "yes" if result.is_drift else "no",
            champion.label,
            "" if accuracy is None else f" accuracy={accuracy:.3f}",
        )
        if result.is_drift:
            self.stats.drift_events += 1
            self.metrics.drift_events.inc()
            logger.warning(
                "DRIFT *** window=%s features=%s min_p=%.3g model=%s event_id=%s",
                window_id,
                ",".join(event.drifted_features),
                float(result.p_values[lowest]),
                champion.label,
                event.event_id,
            )
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

    # -- dead letters and delivery ----------------------------------------------

    def _dead_letter(self, record: Any, err: MalformedRowError) -> None:
        self.stats.dead_letters[err.reason] += 1
        self.metrics.dead_letters.labels(reason=err.reason).inc()
        logger.warning(
            "dead-letter offset=%s/%d/%d reason=%s detail=%s",
            record.topic,
            record.partition,
            record.offset,
            err.reason,
            err.detail,
        )
        headers = [
            (DLQ_REASON_HEADER, err.reason.encode()),
            (DLQ_DETAIL_HEADER, err.detail.encode()[:1000]),
            ("driftloop.source.topic", record.topic.encode()),
            ("driftloop.source.partition", str(record.partition).encode()),
            ("driftloop.source.offset", str(record.offset).encode()),
        ]
        self._sends.append(
            self.producer.send(
                self.settings.dlq_topic,
                key=record.key,
                value=record.value if record.value is not None else b"",
                headers=headers,
            )
        )

    def _await_sends(self) -> None:
        """Wait for every event and dead letter to be acknowledged; raise if one failed."""
        self.producer.flush()
        sends, self._sends = self._sends, []
        for future in sends:
            # Raises the delivery error: nothing is committed past an unsent result.
            future.get(timeout=0)

    def _new_partition(self) -> _Partition:
        return _Partition(CountWindower(self.settings.window_size, self.settings.step))

    def _drop_partitions(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self._partitions.pop(tp, None)


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
        self.monitor._drop_partitions(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info(
            "assigned partitions %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        )
