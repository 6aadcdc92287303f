"""A long run's events, log lines and metrics, pinned: what the loop's faster paths keep.

One partition, two streams, clean rows, then a shift that opens episodes, then clean
rows again until they resolve; malformed and unlabeled rows in between. The windows'
DriftEvents (every field but the clock's), the consumer's INFO and WARNING lines and
the metrics' samples are compared with the golden files in ``golden/``, written by
the loop before its per-window costs were cut (at commit 6e19a75).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from consumer.events import DriftEvent
from consumer.service import DriftMonitor
from producer.messages import RowMessage
from tests.unit.test_monitor import FEATURES, Producer, Replay, monitor, record

GOLDEN = Path(__file__).parent / "golden"
CLOCK_FIELDS = ("detected_at", "opened_at")
"""Fields that hold when a window was judged: the only ones a second run changes."""


def stream_records(seed: int = 4) -> list[Any]:
    rng = np.random.default_rng(seed)
    records = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for offset in range(5000):
        if rng.random() < 0.01:
            value = b'{"schema_version": 1}'
        else:
            shift = 2.0 if 1800 <= offset < 2800 else 0.0
            value = RowMessage(
                stream="a" if rng.random() < 0.7 else "b",
                seq=offset,
                event_time=start + timedelta(milliseconds=20 * offset),
                features={
                    name: round(float(rng.normal()) + shift * (i == 0), 1 + offset % 3)
                    for i, name in enumerate(FEATURES)
                },
                label=None if rng.random() < 0.2 else int(rng.integers(0, 2)),
            ).to_bytes()
        records.append(record(offset, value))
    return records


def without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_clock(v) for k, v in value.items() if k not in CLOCK_FIELDS}
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    return value


def run(tmp_path: Path) -> tuple[list[DriftEvent], list[tuple[str, DriftEvent]], DriftMonitor]:
    producer = Producer()
    m = monitor(tmp_path, Replay(stream_records(), producer, size=500), producer)
    m.settings = m.settings.model_copy(update={"window_size": 50})
    m.champion.decoder = type(m.champion.decoder)(FEATURES, classes=[0, 1])
    events: list[DriftEvent] = []
    record_window = m._record

    def recorded(*args: Any) -> Any:
        archived = record_window(*args)
        events.append(archived.event)
        return archived

    m._record = recorded  # type: ignore[method-assign]
    m.run(lambda: False, idle_timeout=0)
    published = [
        (topic, DriftEvent.from_bytes(kw["value"]))
        for topic, kw in producer.sent
        if topic == "drift-events"
    ]
    return events, published, m


def metric_samples(m: DriftMonitor) -> list[list[Any]]:
    out = []
    for family in m.metrics.registry.collect():
        if family.name in ("driftloop_consumer_detection_seconds",):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out.append([sample.name, sorted(sample.labels.items()), sample.value])
    return sorted(out)


def observed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    with caplog.at_level(logging.INFO, logger="consumer.service"):
        events, published, m = run(tmp_path)
    observed = {
        "events": [without_clock(e.model_dump(mode="json")) for e in events],
        "published": [[t, without_clock(e.model_dump(mode="json"))] for t, e in published],
        "log": [
            [r.levelname, r.getMessage()]
            for r in caplog.records
            if r.name == "consumer.service" and r.levelno >= logging.INFO
        ],
        "metrics": metric_samples(m),
        "stats": [
            m.stats.windows,
            m.stats.drift_windows,
            m.stats.alarms,
            m.stats.episodes,
            m.stats.resolutions,
            dict(m.stats.dead_letters),
        ],
    }
    # Archive paths are compared below the run's temporary directory.
    return json.loads(json.dumps(observed).replace(str(tmp_path), "TMP"))


def test_a_long_run_gives_the_golden_events_log_lines_and_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    got = observed(tmp_path, caplog)
    golden = json.loads((GOLDEN / "monitor_run.json").read_text())
    # The run covers what it pins: drift, alarms, onsets and resolutions, dead letters.
    windows, drifted, alarms, episodes, resolutions, dead = golden["stats"]
    assert windows > 60 and drifted > 5 and alarms > 5 and episodes >= 2 and resolutions >= 1
    assert dead
    assert got["stats"] == golden["stats"]
    assert got["events"] == golden["events"]
    assert got["published"] == golden["published"]
    assert got["log"] == golden["log"]
    assert got["metrics"] == golden["metrics"]


def test_each_event_survives_its_own_wire_form(tmp_path: Path) -> None:
    # However cheaply an event is built, it is the event its bytes parse back to.
    events, published, _ = run(tmp_path)
    for event in [*events, *(e for _, e in published)]:
        again = DriftEvent.from_bytes(event.to_bytes())
        assert again == event
        assert again.to_bytes() == event.to_bytes()
        assert type(again.window.first_event_time) is type(event.window.first_event_time)


if __name__ == "__main__":  # regenerate: python -m tests.unit.test_monitor_events DIR
    import sys
    import tempfile

    class _Cap:
        def __init__(self) -> None:
            self.records: list[logging.LogRecord] = []
            self.handler = logging.Handler()
            self.handler.emit = self.records.append  # type: ignore[method-assign]

        def at_level(self, level: int, logger: str) -> Any:
            import contextlib

            log = logging.getLogger(logger)
            log.setLevel(level)
            log.addHandler(self.handler)
            return contextlib.nullcontext()

    with tempfile.TemporaryDirectory() as tmp:
        data = observed(Path(tmp), _Cap())  # type: ignore[arg-type]
    (GOLDEN / "monitor_run.json").write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    print(data["stats"], file=sys.stderr)
