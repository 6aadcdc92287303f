"""decide: retrain or skip (not drift, duplicate, stale, cooldown, too few labeled rows)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumer.events import DriftEvent
from consumer.labels.store import LabelStore
from data.dataset import Dataset
from producer.messages import LabelMessage
from retraining.decision import decide
from retraining.ledger import HandledLedger
from retraining.settings import RetrainSettings
from tests.dags.scenario import drift_event, write_archive
from tests.unit.retraining.conftest import TOPIC, PromoteByRetrain


def test_decide_retrains_and_claims_the_event(
    settings: RetrainSettings, drifted: list[DriftEvent], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="retraining.decision")
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
    settings: RetrainSettings, drifted: list[DriftEvent], promote_by_retrain: PromoteByRetrain
) -> None:
    promote_by_retrain(promoted_at=datetime.now(UTC) - timedelta(hours=1))
    decision = decide(drifted[6], settings, "run-1")
    assert decision.action == "skip"
    assert decision.reason == "stale: the window was judged for v1 but the champion is v2"
    assert HandledLedger.from_settings(settings).get(drifted[6].event_id) is None


@pytest.mark.parametrize(
    ("age", "cooldown", "action"),
    [(10.0, 300.0, "skip"), (400.0, 300.0, "retrain"), (10.0, 0.0, "retrain")],
)
def test_cooldown_follows_a_promotion_by_a_retrain(
    root: Path,
    iris: Dataset,
    promote_by_retrain: PromoteByRetrain,
    age: float,
    cooldown: float,
    action: str,
) -> None:
    write_archive(root, TOPIC, iris, model_version=2)
    version = promote_by_retrain(datetime.now(UTC) - timedelta(seconds=age))
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


def test_decide_counts_the_labels_that_came_later(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, labeled_every=3)
    # Offsets 200-599 are the windows decide counts (lookback 2 from offset 300).
    late = [o for o in range(200, 600) if o % 3 and o % 2 == 0][:17]
    store = LabelStore(root, "labels", fsync=False)
    store.add(
        (LabelMessage(stream="iris", seq=o, label=0, event_time=datetime.now(UTC)), 0, i, b"{}")
        for i, o in enumerate(late)
    )
    store.close()
    settings = RetrainSettings(artifact_root=root, min_labeled_rows=150, lookback_windows=2)
    decision = decide(events[6], settings, "run-1")
    assert decision.action == "retrain"
    assert "150 labeled rows in 8 archived window(s)" in decision.reason


def test_decide_rejects_a_malformed_event(settings: RetrainSettings) -> None:
    with pytest.raises(ValueError, match="not a valid drift event"):
        decide({"event_id": "x"}, settings, "run-1")


def test_onsets_of_one_stream_in_several_partitions_retrain_once(root: Path, iris: Dataset) -> None:
    # One drift of a stream spread over three partitions: three onsets, three runs.
    onsets = [write_archive(root, TOPIC, iris, partition=p)[6] for p in (0, 1, 2)]
    settings = RetrainSettings(artifact_root=root, cooldown_seconds=300)
    decisions = [decide(e, settings, f"run-{i}") for i, e in enumerate(onsets)]
    assert [d.action for d in decisions] == ["retrain", "skip", "skip"]
    assert decisions[1].reason == (
        f"duplicate: stream 'iris' is retrained against v1 for event {onsets[0].event_id} "
        "by run run-0"
    )
    # The retrying task of the run that holds it goes on.
    assert decide(onsets[0], settings, "run-0").action == "retrain"


def test_a_finished_retrain_frees_the_stream_after_the_cooldown(root: Path, iris: Dataset) -> None:
    onsets = [write_archive(root, TOPIC, iris, partition=p)[6] for p in (0, 1)]
    settings = RetrainSettings(artifact_root=root, cooldown_seconds=0)
    assert decide(onsets[0], settings, "run-0").action == "retrain"
    # Still running: the second onset waits on it.
    assert decide(onsets[1], settings, "run-1").action == "skip"
    HandledLedger.from_settings(settings).complete(onsets[0].event_id, "run-0", "rejected", {})
    assert decide(onsets[1], settings, "run-1").action == "retrain"
