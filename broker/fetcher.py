"""kafka-python's fetching in a process of its own, beside the loop that judges the rows.

kafka-python parses the record batches it fetches in Python, on the thread that
polls: at the drift consumer's defaults that is half of its time per row, and in
one process it cannot run beside the judging on the machine's other core (the
GIL). :class:`FetchingConsumer` splits the client in two:

- in the consumer's process, a kafka-python member of the group
  (:func:`broker.clients.manual_commit_consumer`) that keeps the membership, the
  rebalance listener, the committed offsets and the group's metadata for the
  transactions, with every partition it owns paused: it fetches nothing;
- a child process (``python -m broker.fetcher``, no group) that reads the owned
  partitions from the offsets it is told (:meth:`FetchingConsumer.seek`, or the
  group's committed offset for a partition just assigned) and sends each poll's
  records over a pipe, as offsets, lengths and joined bytes. Its kafka-python
  decodes each record into an (offset, key, value) tuple only (`broker.records`),
  at about a third of the CPU its ``ConsumerRecord`` costs.

Order: every assignment, seek and revocation gives the partition a new epoch; the
fetcher tags what it sends with the epoch it read under, and records of an older
epoch are dropped on arrival, so nothing fetched before a seek, a revocation or a
lost partition is ever returned. The offsets committed are the loop's (in its
transactions, with this member's generation): the fetcher only reads, with
``read_committed`` like the member, so what it returns is what the member's own
poll would have returned.

If the fetcher fails, its error is raised by the next :meth:`FetchingConsumer.poll`
(as the same kafka-python error where it can be pickled); if it dies, a
:class:`FetcherError` says how. The fetcher exits when its parent closes the
command pipe, so it never outlives the consumer.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterable
from itertools import accumulate, repeat
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from broker.clients import BOOTSTRAP_TIMEOUT_S, PollWait, manual_commit_consumer, new_record
from broker.logformats import format_of, formatter
from broker.records import LeanRecord, lean_fetching

if TYPE_CHECKING:
    from broker.settings import KafkaSettings

logger = logging.getLogger(__name__)

GROUP_POLL_INTERVAL_S = 0.1
"""The longest :meth:`FetchingConsumer.poll` waits on the fetcher before it polls the
group member again (a rebalance is joined at most this late)."""

MEMBER_POLL_INTERVAL_S = 1.0
"""How often a member settled in its group is polled while records flow (every poll
that waits for records polls it too). Each poll of a kafka-python 3 member is a round
trip to its IO thread, 0.2-3 ms with the loop's threads holding the GIL in turn:
polled after every poll of the loop, it cost up to a tenth of the loop's time."""

JOIN_POLL_MS = 50
"""How long a poll of the member lasts while it finds its coordinator or (re)joins its
group. kafka-python 3.0 completes a join only inside a poll that lasts until the
group's answers arrive: polls of 0 ms abandon it each time and the member never
joins (polls of 1 ms neither, measured), and one poll lasts its whole timeout even
once joined (its partitions paused, nothing comes): the fetcher starts that much later."""

FETCHER_IDLE_POLL_MS = 100
"""The fetcher's longest poll: a seek or a new partition waits at most this long."""

PIPE_BYTES = 1 << 20
"""The records pipe's capacity asked of Linux (``F_SETPIPE_SZ``, at most
``/proc/sys/fs/pipe-max-size``): a few polls' records wait in it while the loop judges."""

START_TIMEOUT_S = 60.0
"""How long the fetcher may take to start (its interpreter and kafka-python, about half
a second of CPU, then its client's bootstrap) before :meth:`FetchingConsumer.poll`
gives up on it."""

OUTBOX_POLLS = 4
"""Polls the fetcher may have read ahead of the pipe (besides what the pipe holds)."""

STOP_TIMEOUT_S = 10.0
"""How long :meth:`FetchingConsumer.close` waits for the fetcher to exit before killing it."""


class FetcherError(RuntimeError):
    """The fetching process exited, or could not be started; the message says how."""


def join_bytes(items: list[bytes | None]) -> tuple[bytes, bytes] | None:
    """``items`` as (lengths, joined bytes), a None as length -1; None if all are None.

    >>> join_bytes([b"ab", None, b"c"])
    (b'\\x02\\x00\\x00\\x00\\xff\\xff\\xff\\xff\\x01\\x00\\x00\\x00', b'abc')
    >>> join_bytes([None, None]) is None
    True
    """
    if None not in items:
        return array("i", map(len, items)).tobytes(), b"".join(items)  # type: ignore[arg-type]
    if all(item is None for item in items):
        return None
    lengths = array("i", (-1 if item is None else len(item) for item in items))
    return lengths.tobytes(), b"".join(item for item in items if item is not None)


def split_bytes(joined: tuple[bytes, bytes] | None, count: int) -> list[bytes | None]:
    """The ``count`` items :func:`join_bytes` joined.

    >>> split_bytes(join_bytes([b"ab", None, b"", b"c"]), 4)
    [b'ab', None, b'', b'c']
    >>> split_bytes(None, 2)
    [None, None]
    """
    if joined is None:
        return [None] * count
    lengths = array("i")
    lengths.frombytes(joined[0])
    blob = joined[1]
    if len(lengths) != count:
        raise FetcherError(f"the fetcher sent {len(lengths)} lengths for {count} records")
    if count and min(lengths) >= 0:
        ends = list(accumulate(lengths))
        return list(map(blob.__getitem__, map(slice, [0, *ends[:-1]], ends)))
    items: list[bytes | None] = []
    at = 0
    for length in lengths:
        if length < 0:
            items.append(None)
        else:
            items.append(blob[at : at + length])
            at += length
    return items


def _joining(member: KafkaConsumer) -> bool:
    """Whether ``member`` is finding its coordinator or (re)joining its group.

    Settled in its group, a member's poll returns at once (its partitions paused,
    nothing to fetch); joining, it needs time. kafka-python has no public call that
    tells the two apart: this reads its coordinator (checked against kafka-python
    3.0.12). It also mends that version's lost join: a leader's rejoin, asked for
    because the topic's metadata changed (a topic created just before), that finishes
    after a poll gave up on it leaves the member believing it needs no rejoin while
    the assignment was never applied; asked to rejoin again, it joins anew.
    """
    coordinator = member._coordinator
    if coordinator.coordinator_unknown() or coordinator.need_rejoin():
        return True
    if coordinator.rejoining:
        coordinator.request_rejoin()
        return True
    return False


class _Paused(ConsumerRebalanceListener):
    """The member's listener: pauses what it is given, tells the fetcher, then the loop.

    kafka-python 3 calls it on its IO thread.
    """

    def __init__(self, owner: FetchingConsumer, inner: ConsumerRebalanceListener) -> None:
        self.owner = owner
        self.inner = inner

    def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            self.inner.on_partitions_revoked(revoked)
        finally:
            self.owner._drop(revoked)

    def on_partitions_lost(self, lost: Any) -> None:
        try:
            self.inner.on_partitions_lost(lost)
        finally:
            self.owner._drop(lost)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner._take(assigned)
        self.inner.on_partitions_assigned(assigned)


class FetchingConsumer:
    """A kafka-python group member whose records a child process fetches.

    The calls of kafka-python's ``KafkaConsumer`` the drift loop makes, as
    :class:`broker.confluent.RowsConsumer` gives them; see the module's docstring.

    Parameters
    ----------
    settings : KafkaSettings
        The broker.
    group_id, client_id : str
        The member's group and client id (the fetcher's client id adds ``-fetcher``).
    max_poll_records : int, default 500
        The most records the fetcher reads in one poll: what one :meth:`poll` returns
        at most.
    **member : Any
        The member's further kafka-python settings (``group_instance_id``,
        ``session_timeout_ms``, ...).

    Raises
    ------
    BrokerUnavailableError
        When no broker answers within ``BOOTSTRAP_TIMEOUT_S`` (the member's, here).
    FetcherError
        When the fetching process cannot be started.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        client_id: str,
        max_poll_records: int = 500,
        **member: Any,
    ) -> None:
        self._member = manual_commit_consumer(settings, group_id, client_id, **member)
        self._lock = threading.Lock()
        self._epochs: dict[TopicPartition, int] = {}
        self._next_epoch = 0
        self._starting: set[TopicPartition] = set()
        self._next_member_poll = 0.0
        self._highwater: dict[TopicPartition, int] = {}
        self._stopped = False
        self._ready = False
        self._start_deadline = time.monotonic() + START_TIMEOUT_S
        self.fetcher_cpu_seconds = 0.0
        """The fetching process's CPU time since it was ready to fetch (its start-up
        left out), as it last reported it."""
        try:
            self._start(settings, f"{client_id}-fetcher", max_poll_records)
        except BaseException:
            self._member.close(autocommit=False)
            raise

    def _start(self, settings: KafkaSettings, client_id: str, max_poll_records: int) -> None:
        commands_read, commands_write = os.pipe()
        records_read, records_write = os.pipe()
        with contextlib.suppress(OSError):  # a smaller pipe only makes the fetcher wait sooner
            fcntl.fcntl(records_write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "broker.fetcher",
                    "--commands-fd",
                    str(commands_read),
                    "--records-fd",
                    str(records_write),
                    "--log-format",
                    format_of(logging.getLogger()),
                ],
                pass_fds=(commands_read, records_write),
            )
        except OSError as err:
            os.close(commands_write)
            os.close(records_read)
            raise FetcherError(f"could not start the fetching process: {err}") from err
        finally:
            os.close(commands_read)
            os.close(records_write)
        self._commands = Connection(commands_write, readable=False)
        self._records = Connection(records_read, writable=False)
        self._send(("start", settings.servers, client_id, max_poll_records))

    # The calls the loop makes.

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        """Subscribe the member; ``listener`` hears of every assignment as usual.

        The fetcher looks the topics' partitions up meanwhile, so that it reads a
        partition as soon as one is assigned.
        """
        self._send(("topics", list(topics)))
        self._member.subscribe(topics, listener=_Paused(self, listener))

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        """The records of the fetcher's next poll, by partition in offset order; {} after
        ``timeout_ms`` without any. ``max_records`` is the fetcher's, set at construction.

        Raises
        ------
        FetcherError
            When the fetching process has exited, or did not start within
            ``START_TIMEOUT_S``.
        kafka.errors.KafkaError
            What the fetcher's own poll raised.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            if not self._ready and time.monotonic() > self._start_deadline:
                raise FetcherError(
                    f"the fetching process (pid {self._process.pid}) did not start within "
                    f"{START_TIMEOUT_S:.0f} s"
                )
            self._poll_member()
            left = deadline - time.monotonic()
            if self._records.poll(max(0.0, min(left, GROUP_POLL_INTERVAL_S))):
                batch = self._receive()
                if batch:
                    return batch
            elif left <= 0:
                return {}

    def assignment(self) -> set[TopicPartition]:
        """The partitions the member owns now."""
        return self._member.assignment()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on; records fetched before are dropped."""
        with self._lock:
            if tp not in self._epochs:
                raise ValueError(f"{tp.topic}/{tp.partition} is not assigned to this consumer")
            self._starting.discard(tp)
            self._seek(tp, offset)

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end offset as the fetcher last saw it, or None if not known yet."""
        return self._highwater.get(tp)

    def committed(self, tp: TopicPartition, metadata: bool = False) -> Any:
        """The group's committed offset of ``tp`` (with its metadata), or None."""
        return self._member.committed(tp, metadata=metadata)

    def group_metadata(self) -> Any:
        """The member's generation, as the transactional producer sends it with offsets."""
        return self._member.group_metadata()

    def close(self, autocommit: bool = False) -> None:
        """Stop the fetcher (killed after ``STOP_TIMEOUT_S``), then close the member."""
        try:
            self._stop()
        finally:
            self._member.close(autocommit=autocommit)

    # The member's side.

    def _take(self, assigned: Iterable[TopicPartition]) -> None:
        """On the IO thread: pause the newly assigned partitions, start them in the next poll."""
        assigned = list(assigned)
        self._member.pause(*assigned)
        with self._lock:
            for tp in assigned:
                self._epochs[tp] = self._new_epoch()
                self._starting.add(tp)

    def _drop(self, gone: Iterable[TopicPartition]) -> None:
        """On the IO thread: forget partitions revoked or lost, and tell the fetcher."""
        gone = list(gone)
        with self._lock:
            for tp in gone:
                self._epochs.pop(tp, None)
                self._starting.discard(tp)
                self._highwater.pop(tp, None)
            if not self._stopped:  # closing, the member revokes what it had
                self._send(("drop", [tuple(tp) for tp in gone]))

    def _poll_member(self) -> None:
        """Let the member heartbeat and rebalance (at most every ``MEMBER_POLL_INTERVAL_S``
        once it is settled in its group); start the partitions it was given."""
        joining = _joining(self._member)
        now = time.monotonic()
        if not joining and not self._starting and now < self._next_member_poll:
            return
        self._next_member_poll = now + MEMBER_POLL_INTERVAL_S
        fetched = self._member.poll(timeout_ms=JOIN_POLL_MS if joining else 0)
        if fetched:  # assigned and fetched before the listener paused them: the fetcher's
            logger.debug("dropped %d partitions' records the member fetched", len(fetched))
        with self._lock:
            starting = list(self._starting)
        for tp in starting:
            # Outside the lock: a request to the group coordinator.
            committed = self._member.committed(tp)
            with self._lock:
                if tp in self._starting:
                    self._starting.discard(tp)
                    self._seek(tp, committed)

    def _seek(self, tp: TopicPartition, offset: int | None) -> None:
        """Under the lock: read ``tp`` from ``offset`` (the reset policy's if None), anew."""
        epoch = self._epochs[tp] = self._new_epoch()
        self._send(("seek", tp.topic, tp.partition, offset, epoch))

    def _new_epoch(self) -> int:
        self._next_epoch += 1
        return self._next_epoch

    def _send(self, command: tuple[Any, ...]) -> None:
        try:
            self._commands.send(command)
        except OSError as err:
            raise self._exited() from err

    def _receive(self) -> dict[TopicPartition, list[Any]]:
        """One message of the fetcher: its poll's records still wanted, by partition."""
        try:
            kind, payload, cpu_seconds = pickle.loads(self._records.recv_bytes())
        except (EOFError, OSError) as err:
            raise self._exited() from err
        self.fetcher_cpu_seconds = cpu_seconds
        if kind == "error":
            raise payload
        if kind == "ready":
            self._ready = True
        batch: dict[TopicPartition, list[Any]] = {}
        if kind != "records":
            return batch
        for topic, partition, epoch, highwater, offsets, keys, values in payload:
            tp = TopicPartition(topic, partition)
            if self._epochs.get(tp) != epoch:
                continue  # read before a seek, a revocation or a loss
            if highwater is not None:
                self._highwater[tp] = highwater
            found = array("q")
            found.frombytes(offsets)
            count = len(found)
            batch[tp] = list(
                map(
                    new_record,
                    zip(
                        repeat(topic, count),
                        repeat(partition, count),
                        found.tolist(),
                        split_bytes(keys, count),
                        split_bytes(values, count),
                        strict=True,
                    ),
                )
            )
        return batch

    def _exited(self) -> FetcherError:
        code = self._process.poll()
        if code is None:
            return FetcherError(f"the fetching process (pid {self._process.pid}) stopped talking")
        return FetcherError(
            f"the fetching process (pid {self._process.pid}) exited with code {code}; "
            "its log lines say why"
        )

    def _stop(self) -> None:
        process = self._process
        with self._lock:
            self._stopped = True
        with contextlib.suppress(OSError):  # exited already
            self._commands.send(("stop",))
        deadline = time.monotonic() + STOP_TIMEOUT_S
        try:
            # Read what it still sends until it has stopped: it may be waiting on a full pipe.
            while time.monotonic() < deadline:
                if not self._records.poll(max(0.0, deadline - time.monotonic())):
                    break
                kind, _, cpu_seconds = pickle.loads(self._records.recv_bytes())
                self.fetcher_cpu_seconds = cpu_seconds
                if kind == "stopped":
                    break
        except (EOFError, OSError):
            pass
        finally:
            self._commands.close()
            self._records.close()
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("the fetching process (pid %d) did not stop: killed", process.pid)
            process.kill()
            process.wait()


# The fetcher's side: python -m broker.fetcher.


class _Outbox:
    """The fetcher's messages to the consumer, written into the pipe by a thread of
    their own: the next poll is fetched while the last one is still being written
    (kafka-python asks for the next fetch only inside a poll)."""

    def __init__(self, records: Connection, polls: int = OUTBOX_POLLS) -> None:
        self._records = records
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=polls)
        self._broken: OSError | None = None
        self.ready_cpu: float | None = None
        """The process's CPU time when it was ready to fetch; messages report the CPU
        time since (0 before)."""
        self._thread = threading.Thread(target=self._write, name="fetcher-outbox", daemon=True)
        self._thread.start()

    def put(self, kind: str, payload: Any) -> None:
        """Queue a message (waits while ``polls`` are queued); OSError once the pipe broke."""
        cpu = 0.0 if self.ready_cpu is None else time.process_time() - self.ready_cpu
        self._put(pickle.dumps((kind, payload, cpu), protocol=pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with contextlib.suppress(OSError):
            self._put(None)
        self._thread.join()

    def _put(self, message: bytes | None) -> None:
        while True:
            if self._broken is not None:
                raise self._broken
            with contextlib.suppress(queue.Full):
                self._queue.put(message, timeout=1.0)
                return

    def _write(self) -> None:
        while (message := self._queue.get()) is not None:
            try:
                self._records.send_bytes(message)
            except OSError as err:  # the consumer is gone
                self._broken = err
                return


class _Fetcher:
    """The child: reads the partitions it is told, from where it is told, and sends them."""

    def __init__(self, commands: Connection, outbox: _Outbox) -> None:
        self.commands = commands
        self.outbox = outbox
        self.consumer: KafkaConsumer | None = None
        self.max_records = 500
        self.epochs: dict[TopicPartition, int] = {}

    def run(self) -> None:
        wait = PollWait()
        while True:
            if not self._obey(block=not self.epochs):
                return
            consumer = self.consumer
            assert consumer is not None, "the first command starts the consumer"
            polled = consumer.poll(
                timeout_ms=min(wait.ms, FETCHER_IDLE_POLL_MS), max_records=self.max_records
            )
            wait.after(found=bool(polled))
            if polled:
                self.outbox.put("records", [self._pack(tp, found) for tp, found in polled.items()])

    def _pack(self, tp: TopicPartition, found: list[LeanRecord]) -> tuple[Any, ...]:
        assert self.consumer is not None
        offsets, keys, values = zip(*found, strict=True)
        return (
            tp.topic,
            tp.partition,
            self.epochs.get(tp),
            self.consumer.highwater(tp),
            array("q", offsets).tobytes(),
            join_bytes(list(keys)),
            join_bytes(list(values)),
        )

    def _obey(self, block: bool) -> bool:
        """Carry out the commands waiting (one at least if ``block``); False on stop."""
        seeks: list[tuple[TopicPartition, int | None]] = []
        assigned = set(self.epochs)
        while block or self.commands.poll():
            block = False
            try:
                command = self.commands.recv()
            except EOFError:
                return False  # the consumer is gone
            kind = command[0]
            if kind == "stop":
                return False
            if kind == "start":
                _, servers, client_id, self.max_records = command
                self.consumer = lean_fetching(
                    KafkaConsumer(
                        bootstrap_servers=servers,
                        client_id=client_id,
                        group_id=None,
                        enable_auto_commit=False,
                        auto_offset_reset="earliest",
                        isolation_level="read_committed",
                        bootstrap_timeout_ms=int(BOOTSTRAP_TIMEOUT_S * 1000),
                    )
                )
                block = not self.epochs
            elif kind == "topics":
                assert self.consumer is not None, "start comes first"
                for topic in command[1]:  # its partitions' leaders, before the first seek
                    self.consumer.partitions_for_topic(topic)
                self.outbox.ready_cpu = time.process_time()
                self.outbox.put("ready", None)
                block = not self.epochs
            elif kind == "seek":
                _, topic, partition, offset, epoch = command
                tp = TopicPartition(topic, partition)
                self.epochs[tp] = epoch
                seeks = [seek for seek in seeks if seek[0] != tp]
                seeks.append((tp, offset))
            elif kind == "drop":
                for where in command[1]:
                    tp = TopicPartition(*where)
                    self.epochs.pop(tp, None)
                    seeks = [seek for seek in seeks if seek[0] != tp]
                block = not self.epochs
        consumer = self.consumer
        if consumer is None:
            return True
        if set(self.epochs) != assigned:
            consumer.assign(list(self.epochs))
        for tp, offset in seeks:
            if offset is None:
                consumer.seek_to_beginning(tp)  # the member's auto_offset_reset, "earliest"
            else:
                consumer.seek(tp, offset)
        return True


def _under_fetcher(record: logging.LogRecord) -> bool:
    """Name the record's logger as the fetching process's (a logging filter)."""
    record.name = f"fetcher.{record.name}"
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--commands-fd", type=int, required=True)
    parser.add_argument("--records-fd", type=int, required=True)
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole process group: the consumer stops the fetcher itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # In its consumer's format, each logger's name under "fetcher." (kafka-python's too).
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(args.log_format))
    handler.addFilter(_under_fetcher)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    outbox = _Outbox(Connection(args.records_fd, readable=False))
    fetcher = _Fetcher(Connection(args.commands_fd, writable=False), outbox)
    try:
        fetcher.run()
    except Exception as err:
        try:
            pickle.dumps(err)
        except Exception:
            err = FetcherError(f"{type(err).__name__}: {err}")
        with contextlib.suppress(OSError):
            outbox.put("error", err)
        raise
    finally:
        if fetcher.consumer is not None:
            fetcher.consumer.close(autocommit=False)
        with contextlib.suppress(OSError):
            outbox.put("stopped", None)
        outbox.close()


if __name__ == "__main__":
    main()
