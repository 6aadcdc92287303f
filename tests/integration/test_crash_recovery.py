"""A consumer killed with SIGKILL and restarted loses no window and gives none a second id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from broker.settings import KafkaSettings
from consumer.archive import archived_verdicts
from consumer.events import DriftEvent
from demo.stack import wait_until
from tests.integration.streams import read_topic

ROWS = 2000
WINDOW = 50


def start_consumer(env: dict[str, str], artifact_root: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consumer",
                "--window-size",
                str(WINDOW),
                "--ks-backend",
                "fast",
                "--artifact-root",
                str(artifact_root),
                "--group-id",
                # Per test: a static member the other client's test killed stays in its
                # group for a session timeout, and would be handed this one's assignment.
                f"crash-test-{env['DRIFTLOOP_ROWS_TOPIC']}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_kill_9_and_restart_yields_every_window_once(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    consumer_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    tmp_path: Path,
) -> None:
    log = tmp_path / "consumer.log"

    def logged(text: str) -> int:
        return log.read_text().count(text) if log.exists() else 0

    def verdicts() -> list[DriftEvent]:
        # Each window once, however often it was judged (the last record wins).
        return [
            DriftEvent.from_bytes(v.data)
            for v in archived_verdicts(artifact_root, kafka_settings.rows_topic)
        ]

    consumer = start_consumer(consumer_env, artifact_root, log)
    processes = [consumer]
    try:
        # Rows start flowing once the first consumer reads, and keep flowing for about
        # ten seconds, so that the first kill lands mid-stream. The second lands a few
        # windows into the catch-up of the next consumer, which joins once the killed
        # one's session has timed out.
        wait_until(lambda: logged("consuming topic=") == 1, 60, "the first consumer consuming")
        # Every row noised: every window is drifted. Each finished window's verdict is
        # in the archive under its id; the drift topic has each episode's onset.
        producer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "producer",
                "--data",
                str(iris_csv),
                "--quiet",
                "--count",
                str(ROWS),
                "--rate",
                "200",
                "--drift-after",
                "0",
                "--seed",
                "3",
            ],
            env=kafka_env,
        )
        processes.append(producer)
        for kills in (1, 2):
            judged = logged(" window=")
            # A restarted consumer joins once the killed one's 45 s session is over.
            wait_until(
                lambda n=judged: logged(" window=") >= n + 4,
                timeout=120,
                what=f"four more windows before kill {kills}",
            )
            os.kill(consumer.pid, signal.SIGKILL)
            consumer.wait(timeout=10)
            consumer = start_consumer(consumer_env, artifact_root, log)
            processes.append(consumer)
        assert producer.wait(timeout=60) == 0
        expected = set(range(0, ROWS, WINDOW))

        def all_windows_archived() -> bool:
            return {v.window.first_offset for v in verdicts()} >= expected

        wait_until(all_windows_archived, timeout=120, what="every window's verdict")
        # Stopped once it owns the partition: while it waits for the killed consumer's
        # session to time out (45 s), kafka-python's poll does not return.
        wait_until(
            lambda: logged("assigned partitions") >= 3, 120, "the last consumer's assignment"
        )
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=30) == 0
        assert logged("stopped: ") == 1
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    # Every window judged once, under its id, with its verdict archived.
    archived = verdicts()
    assert sorted(v.window.first_offset for v in archived) == sorted(expected)
    for verdict in archived:
        first = verdict.window.first_offset
        assert verdict.event_id == f"{kafka_settings.rows_topic}-0-{first}-{first + WINDOW - 1}"
    # Announced windows keep their ids too: no window is published under two ids, and
    # every announcement is an episode's onset whose window is archived.
    ids_by_window: dict[int, set[str]] = defaultdict(set)
    for record in read_topic(kafka_settings, kafka_settings.drift_topic):
        event = DriftEvent.from_bytes(record.value)
        ids_by_window[event.window.first_offset].add(event.event_id)
        assert event.is_onset
    assert ids_by_window, "the noised stream opened a drift episode"
    assert set(ids_by_window) <= expected
    for first, ids in ids_by_window.items():
        assert ids == {f"{kafka_settings.rows_topic}-0-{first}-{first + WINDOW - 1}"}
