"""Tests for models.retraining: settings, the sensor's filter, decisions, the ledger, training.

No broker and no Airflow: the filter is given real confluent-kafka Message objects
built in memory, and the archive is written with the consumer's WindowArchive.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Message
from pydantic import ValidationError

from consumer.events import DriftEvent
from data.dataset import Dataset, load_dataset, write_iris_csv
from models.promotion import ModelUpdate
from models.registry import CHAMPION_FILE, ChampionPointer, Registry, RegistryError
from models.retraining import (
    HandledLedger,
    RetrainError,
    RetrainSettings,
    actionable_drift_event,
    count_labeled_rows,
    decide,
    mark_handled,
    read_labeled_rows,
    select_windows,
    train_challenger,
    training_windows,
)
from models.training import train_and_register
from tests.dags.scenario import drift_event, write_archive

TOPIC = "rows"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_dataset(write_iris_csv(tmp_path_factory.mktemp("data") / "iris.csv"))


@pytest.fixture
def root(tmp_path: Path, iris: Dataset) -> Path:
    """An artifact root with champion v1 trained on Iris."""
    train_and_register(Registry(tmp_path), iris, seed=7)
    return tmp_path


@pytest.fixture
def settings(root: Path, monkeypatch: pytest.MonkeyPatch) -> RetrainSettings:
    """Settings for ``root``, also in the environment (the sensor's filter reads it)."""
    for name in ("MIN_LABELED_ROWS", "PROMOTION_MARGIN", "COOLDOWN_SECONDS", "MODEL_NAME"):
        monkeypatch.delenv(f"DRIFTLOOP_{name}", raising=False)
    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(root))
    # These tests exercise the look-back too; the default is none.
    monkeypatch.setenv("DRIFTLOOP_LOOKBACK_WINDOWS", "2")
    return RetrainSettings()


def message(value: bytes | None, offset: int = 0) -> Message:
    return Message(topic="drift-events", partition=0, offset=offset, value=value)


def promote_by_retrain(root: Path, iris: Dataset, promoted_at: datetime | None = None) -> int:
    """Register and promote a v2 the way a retrain does (decision ``promoted``)."""
    registry = Registry(root)
    loaded = registry.load(1)
    metadata = registry.register(
        loaded.estimator,
        loaded.reference,
        feature_names=loaded.metadata.feature_names,
        label_column="target",
        training_data_sha256="0" * 64,
        metrics={"accuracy": 1.0},
        cause="drift event earlier",
        decision="promoted",
        parent_version=1,
        drift_event_id="rows-0-0-49",
        training_rows=10,
    )
    registry.promote(metadata.version)
    if promoted_at is not None:
        path = registry.model_dir / CHAMPION_FILE
        pointer = ChampionPointer.model_validate_json(path.read_bytes())
        path.write_text(pointer.model_copy(update={"promoted_at": promoted_at}).model_dump_json())
    return metadata.version


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("DRIFTLOOP_MIN_LABELED_ROWS", "1"),
        ("DRIFTLOOP_PROMOTION_MARGIN", "-0.1"),
        ("DRIFTLOOP_PROMOTION_MARGIN", "1"),
        ("DRIFTLOOP_COOLDOWN_SECONDS", "-5"),
        ("DRIFTLOOP_COOLDOWN_SECONDS", "inf"),
        ("DRIFTLOOP_HOLDOUT_FRACTION", "0"),
        ("DRIFTLOOP_HOLDOUT_FRACTION", "1"),
        ("DRIFTLOOP_LOOKBACK_WINDOWS", "-1"),
    ],
)
def test_settings_name_the_variable_they_reject(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=env):
        RetrainSettings()


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RetrainSettings.model_fields:
        monkeypatch.delenv(f"DRIFTLOOP_{name.upper()}", raising=False)
    settings = RetrainSettings()
    assert (
        settings.min_labeled_rows,
        settings.promotion_margin,
        settings.cooldown_seconds,
        settings.holdout_fraction,
        settings.lookback_windows,
    ) == (150, 0.0, 300.0, 0.3, 0)


# --------------------------------------------------------------------------- windows


def names(paths: list[Path]) -> list[int]:
    return [int(p.name[:12]) for p in paths]


def window_paths(firsts: range, size: int = 50) -> list[Path]:
    return [Path(f"{f:012d}-{f + size - 1:012d}.csv") for f in firsts]


@pytest.mark.parametrize(
    ("drift_first", "lookback", "expected"),
    [
        (300, 2, [200, 250, 300, 350, 400, 450, 500, 550]),
        (300, 0, [300, 350, 400, 450, 500, 550]),
        (50, 5, [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550]),
        (550, 1, [500, 550]),
        (325, 1, [300, 350, 400, 450, 500, 550]),  # drift window not archived: from the next
    ],
)
def test_select_windows(drift_first: int, lookback: int, expected: list[int]) -> None:
    shuffled = window_paths(range(0, 600, 50))[::-1]
    assert names(select_windows(shuffled, drift_first, lookback)) == expected


def test_select_sliding_windows() -> None:
    sliding = window_paths(range(0, 300, 25))
    assert names(select_windows(sliding, 100, 2)) == [50, 75, *range(100, 300, 25)]


def test_training_windows_read_the_consumers_archive_layout(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, rows=300, drift_after=150)
    (root / "archive" / TOPIC / "0" / "notes.txt").write_text("not a window")
    windows = training_windows(root, events[3], lookback=1)
    assert names(windows) == [100, 150, 200, 250]
    assert all(w.parent == root / "archive" / TOPIC / "0" for w in windows)
    assert training_windows(root, drift_event("other-topic", 0, 49), lookback=2) == []


def test_labeled_rows_are_deduplicated_ordered_and_labeled_only(root: Path, iris: Dataset) -> None:
    write_archive(root, TOPIC, iris, rows=200, window=50, labeled_every=2)
    directory = root / "archive" / TOPIC / "0"
    # A sliding window overlapping two tumbling ones repeats rows 25..74.
    header, *rows = [
        line
        for path in sorted(directory.glob("*.csv"))[:2]
        for line in path.read_text().splitlines()
    ]
    overlap = [r for r in rows if not r.startswith("offset") and 25 <= int(r.split(",")[0]) < 75]
    (directory / "000000000025-000000000074.csv").write_text("\n".join([header, *overlap]) + "\n")
    windows = training_windows(root, drift_event(TOPIC, 50, 99), lookback=2)
    assert names(windows) == [0, 25, 50, 100, 150]

    rows_read = read_labeled_rows(windows, FEATURES, "target")

    assert rows_read.offsets.tolist() == list(range(0, 200, 2))
    assert rows_read.features.shape == (100, 4)
    assert set(rows_read.labels) == {"0", "1", "2"}
    assert count_labeled_rows(windows, "target") == 100


def test_a_window_without_the_label_column_is_an_error(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, rows=100)
    windows = training_windows(root, events[0], lookback=0)
    with pytest.raises(RetrainError, match="lacks column"):
        read_labeled_rows(windows, FEATURES, "species")


# --------------------------------------------------------------------------- the sensor's filter


def test_filter_lets_an_actionable_event_through_as_json(settings: RetrainSettings) -> None:
    event = drift_event(TOPIC, 300, 349, model_version=1)
    result = actionable_drift_event(message(event.to_bytes()))
    assert result == json.loads(event.model_dump_json())
    assert DriftEvent.model_validate(result) == event


@pytest.mark.parametrize(
    "value",
    [b"not json", b"{}", b'{"schema_version": 1}', "\u00e9t\u00e9".encode("latin-1"), None],
)
def test_filter_passes_over_malformed_messages(settings: RetrainSettings, value: bytes) -> None:
    assert actionable_drift_event(message(value)) is None


def test_filter_passes_over_an_unsafe_event_id(settings: RetrainSettings) -> None:
    event = drift_event(TOPIC, 0, 49).model_copy(update={"event_id": "../../etc/passwd"})
    assert actionable_drift_event(message(event.to_bytes())) is None


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (drift_event(TOPIC, 0, 49, is_drift=False), "not drift"),
        (drift_event(TOPIC, 0, 49, model_name="other"), "other model"),
        (drift_event(TOPIC, 0, 49, model_version=2), "stale"),
    ],
)
def test_filter_passes_over_events_that_call_for_nothing(
    settings: RetrainSettings, caplog: pytest.LogCaptureFixture, event: DriftEvent, why: str
) -> None:
    caplog.set_level("INFO", logger="models.retraining")
    assert actionable_drift_event(message(event.to_bytes())) is None
    assert why in caplog.text


def test_filter_passes_over_stale_and_handled_events(
    settings: RetrainSettings, root: Path, iris: Dataset
) -> None:
    old = drift_event(TOPIC, 0, 49, model_version=1)
    assert actionable_drift_event(message(old.to_bytes())) is not None
    HandledLedger(root, "classifier").claim(old.event_id, "run-1")
    assert actionable_drift_event(message(old.to_bytes())) is None

    promote_by_retrain(root, iris)
    assert actionable_drift_event(message(drift_event(TOPIC, 50, 99).to_bytes())) is None
    current = drift_event(TOPIC, 100, 149, model_version=2)
    assert actionable_drift_event(message(current.to_bytes())) is not None


def test_filter_raises_when_the_registry_is_unreadable(settings: RetrainSettings) -> None:
    (settings.artifact_root / "registry" / "classifier" / CHAMPION_FILE).write_text("{")
    with pytest.raises(RegistryError, match="champion pointer"):
        actionable_drift_event(message(drift_event(TOPIC, 0, 49).to_bytes()))


# --------------------------------------------------------------------------- decisions


@pytest.fixture
def drifted(root: Path, iris: Dataset) -> list[DriftEvent]:
    """An archive of 600 rows, drifted from offset 300; the events of every window."""
    return write_archive(root, TOPIC, iris)


def test_decide_retrains_and_claims_the_event(
    settings: RetrainSettings, drifted: list[DriftEvent], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="models.retraining")
    event = drifted[6]

    decision = decide(event.model_dump(mode="json"), settings, "run-1")

    assert decision.action == "retrain"
    assert "400 labeled rows in 8 archived window(s)" in decision.reason
    assert f"action=retrain reason={decision.reason}" in caplog.text
    record = HandledLedger.from_settings(settings).get(event.event_id)
    assert record is not None and (record.run_id, record.outcome) == ("run-1", None)
    # The same run, retried, resumes; another run sees a duplicate.
    assert decide(event, settings, "run-1").action == "retrain"
    other = decide(event, settings, "run-2")
    assert other.action == "skip"
    assert other.reason.startswith("duplicate:")
    assert "run-1" in other.reason and "has not finished" in other.reason


def test_decide_skips_a_handled_event(settings: RetrainSettings, drifted: list[DriftEvent]) -> None:
    ledger = HandledLedger.from_settings(settings)
    ledger.complete(drifted[6].event_id, "run-1", "promoted", {"version": 2})
    decision = decide(drifted[6], settings, "run-2")
    assert decision.action == "skip"
    assert decision.reason == (
        f"duplicate: event {drifted[6].event_id} was already handled by run run-1 "
        "(outcome promoted)"
    )


def test_decide_skips_a_stale_event(
    settings: RetrainSettings, drifted: list[DriftEvent], root: Path, iris: Dataset
) -> None:
    promote_by_retrain(root, iris, promoted_at=datetime.now(UTC) - timedelta(hours=1))
    decision = decide(drifted[6], settings, "run-1")
    assert decision.action == "skip"
    assert decision.reason == "stale: the window was judged for v1 but the champion is v2"
    assert HandledLedger.from_settings(settings).get(drifted[6].event_id) is None


@pytest.mark.parametrize(
    ("age", "cooldown", "action"),
    [(10.0, 300.0, "skip"), (400.0, 300.0, "retrain"), (10.0, 0.0, "retrain")],
)
def test_cooldown_follows_a_promotion_by_a_retrain(
    root: Path, iris: Dataset, age: float, cooldown: float, action: str
) -> None:
    write_archive(root, TOPIC, iris, model_version=2)
    version = promote_by_retrain(root, iris, datetime.now(UTC) - timedelta(seconds=age))
    settings = RetrainSettings(artifact_root=root, cooldown_seconds=cooldown)
    decision = decide(drift_event(TOPIC, 300, 349, model_version=version), settings, "run-1")
    assert decision.action == action
    if action == "skip":
        # The age is at least 10 s by now, and far below the cooldown.
        assert re.fullmatch(
            rf"cooldown: v{version} was promoted by a retrain 1\d s ago, cooldown_seconds=300",
            decision.reason,
        ), decision.reason


def test_the_initial_model_starts_no_cooldown(
    settings: RetrainSettings, drifted: list[DriftEvent]
) -> None:
    assert settings.cooldown_seconds == 300
    assert decide(drifted[6], settings, "run-1").action == "retrain"


def test_decide_skips_when_too_few_rows_are_labeled(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, labeled_every=3)
    settings = RetrainSettings(artifact_root=root, min_labeled_rows=150, lookback_windows=2)
    decision = decide(events[6], settings, "run-1")
    assert decision.action == "skip"
    assert decision.reason == (
        "too few labeled rows: 133 in 8 archived window(s), min_labeled_rows=150"
    )
    earlier = drift_event(TOPIC, 200, 249)  # 166 labeled rows from offset 100 on
    assert decide(earlier, settings, "run-1").action == "retrain"


def test_decide_rejects_a_malformed_event(settings: RetrainSettings) -> None:
    with pytest.raises(ValueError, match="not a valid drift event"):
        decide({"event_id": "x"}, settings, "run-1")


# --------------------------------------------------------------------------- ledger


def test_one_claim_wins_among_racing_runs(root: Path) -> None:
    ledger = HandledLedger(root, "classifier")
    barrier = threading.Barrier(16)
    winners: list[str] = []

    def claim(run_id: str) -> None:
        barrier.wait()
        winners.append(ledger.claim("rows-0-0-49", run_id).run_id)

    threads = [threading.Thread(target=claim, args=(f"run-{i}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(winners)) == 1
    assert sorted(p.name for p in ledger.directory.iterdir()) == ["rows-0-0-49.json"]


def test_completion_by_another_run_leaves_the_record(root: Path) -> None:
    ledger = HandledLedger(root, "classifier")
    ledger.claim("rows-0-0-49", "run-1")
    assert ledger.complete("rows-0-0-49", "run-2", "skipped", {"reason": "x"}) is None
    done = ledger.complete("rows-0-0-49", "run-1", "rejected", {"version": 3})
    assert done is not None and done.outcome == "rejected" and done.completed_at is not None
    assert ledger.get("rows-0-0-49") == done


@pytest.mark.parametrize("event_id", ["", "../x", "a/b", ".hidden", "x" * 300])
def test_the_ledger_refuses_unsafe_event_ids(root: Path, event_id: str) -> None:
    with pytest.raises(ValueError, match="event_id"):
        HandledLedger(root, "classifier").path(event_id)


def test_mark_handled_records_a_skip_but_not_over_another_run(
    settings: RetrainSettings,
) -> None:
    event = drift_event(TOPIC, 0, 49)
    record = mark_handled(event, settings, "run-1", "skipped", {"reason": "stale: ..."})
    assert record is not None and record["outcome"] == "skipped"
    assert mark_handled(event, settings, "run-2", "skipped", {"reason": "duplicate"}) is None


# --------------------------------------------------------------------------- training


def test_challenger_trained_on_drifted_windows_is_promoted_with_lineage(
    settings: RetrainSettings, drifted: list[DriftEvent]
) -> None:
    event = drifted[6]
    assert decide(event, settings, "run-1").action == "retrain"

    result = train_challenger(event.model_dump(mode="json"), settings, "run-1")

    assert result["decision"] == "promoted"
    assert (result["version"], result["champion_version"]) == (2, 1)
    assert (result["training_rows"], result["holdout_rows"]) == (280, 120)
    assert result["challenger_metrics"]["accuracy"] > result["champion_metrics"]["accuracy"]
    registry = Registry.from_settings(settings)
    assert registry.champion_version() == 2
    meta = registry.metadata(2)
    assert meta.cause == f"drift event {event.event_id}"
    assert meta.drift_event_id == event.event_id
    assert (meta.parent_version, meta.decision) == (1, "promoted")
    assert [Path(p).name[:12] for p in meta.training_windows] == [
        f"{f:012d}" for f in range(200, 600, 50)
    ]
    assert meta.challenger_metrics == result["challenger_metrics"] == meta.metrics
    assert meta.champion_metrics == result["champion_metrics"]
    assert (meta.training_rows, meta.reference_rows) == (280, 280)
    update = ModelUpdate.model_validate_json(result["model_update"])
    assert (update.version, update.previous_version, update.drift_event_id) == (
        2,
        1,
        event.event_id,
    )
    assert update.reference_sha256 == meta.reference_sha256
    assert Path(update.reference_path).is_file()
    assert json.loads(json.dumps(result)) == result


def test_a_retried_training_reuses_its_version(
    settings: RetrainSettings, drifted: list[DriftEvent]
) -> None:
    first = train_challenger(drifted[6], settings, "run-1")
    again = train_challenger(drifted[6], settings, "run-1")
    assert again["version"] == first["version"] == 2
    assert again["model_update"] == first["model_update"]
    assert [m.version for m in Registry.from_settings(settings).versions()] == [1, 2]
    with pytest.raises(RetrainError, match="run-1"):
        train_challenger(drifted[6], settings, "run-2")


def test_a_challenger_within_the_margin_is_rejected(root: Path, drifted: list[DriftEvent]) -> None:
    settings = RetrainSettings(artifact_root=root, promotion_margin=0.99)
    result = train_challenger(drifted[6], settings, "run-1")
    assert result["decision"] == "rejected"
    assert result["model_update"] is None
    registry = Registry(root)
    assert registry.champion_version() == 1
    assert registry.metadata(2).decision == "rejected"
    assert registry.metadata(2).champion_metrics == result["champion_metrics"]


def test_training_is_deterministic(tmp_path: Path, iris: Dataset) -> None:
    results = []
    for name in ("a", "b"):
        root = tmp_path / name
        train_and_register(Registry(root), iris, seed=7)
        events = write_archive(root, TOPIC, iris)
        result = train_challenger(events[6], RetrainSettings(artifact_root=root), "run")
        results.append({k: result[k] for k in ("challenger_metrics", "champion_metrics")})
    assert results[0] == results[1]


def test_training_needs_rows(settings: RetrainSettings) -> None:
    with pytest.raises(RetrainError, match="need at least 2"):
        train_challenger(drift_event(TOPIC, 0, 49), settings, "run-1")
