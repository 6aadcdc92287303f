"""The sensor's filter, given real confluent-kafka Message objects built in memory."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from consumer.events import DriftEvent
from models.registry import CHAMPION_FILE, RegistryError
from retraining.ledger import HandledLedger
from retraining.sensor import actionable_drift_event
from retraining.settings import RetrainSettings
from tests.dags.scenario import drift_event
from tests.unit.retraining.conftest import TOPIC, PromoteByRetrain

Filter = Callable[[Message], dict[str, Any] | None]


def message(value: bytes | None, offset: int = 0) -> Message:
    return Message(topic="drift-events", partition=0, offset=offset, value=value)


@pytest.fixture
def admit(settings: RetrainSettings) -> Filter:
    """The filter as the trigger calls it: bound to the DAG's ``apply_function_kwargs``."""
    return partial(
        actionable_drift_event,
        artifact_root=str(settings.artifact_root),
        model_name=settings.model_name,
    )


def test_filter_lets_an_actionable_event_through_as_json(
    settings: RetrainSettings, admit: Filter
) -> None:
    event = drift_event(TOPIC, 300, 349, model_version=1)
    result = admit(message(event.to_bytes()))
    assert result == json.loads(event.model_dump_json())
    assert DriftEvent.model_validate(result) == event


@pytest.mark.parametrize(
    "value",
    [b"not json", b"{}", b'{"schema_version": 1}', "\u00e9t\u00e9".encode("latin-1"), None],
)
def test_filter_passes_over_malformed_messages(admit: Filter, value: bytes) -> None:
    assert admit(message(value)) is None


def test_filter_passes_over_an_unsafe_event_id(admit: Filter) -> None:
    event = drift_event(TOPIC, 0, 49).model_copy(update={"event_id": "../../etc/passwd"})
    assert admit(message(event.to_bytes())) is None


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (drift_event(TOPIC, 0, 49, is_drift=False), "not drift"),
        (drift_event(TOPIC, 0, 49, model_name="other"), "other model"),
        (drift_event(TOPIC, 0, 49, model_version=2), "stale"),
    ],
)
def test_filter_passes_over_events_that_call_for_nothing(
    admit: Filter, caplog: pytest.LogCaptureFixture, event: DriftEvent, why: str
) -> None:
    caplog.set_level("INFO", logger="retraining.sensor")
    assert admit(message(event.to_bytes())) is None
    assert why in caplog.text


def test_filter_passes_over_stale_and_handled_events(
    admit: Filter, root: Path, promote_by_retrain: PromoteByRetrain
) -> None:
    old = drift_event(TOPIC, 0, 49, model_version=1)
    assert admit(message(old.to_bytes())) is not None
    HandledLedger(root, "classifier").claim(old.event_id, "run-1")
    assert admit(message(old.to_bytes())) is None

    promote_by_retrain()
    assert admit(message(drift_event(TOPIC, 50, 99).to_bytes())) is None
    current = drift_event(TOPIC, 100, 149, model_version=2)
    assert admit(message(current.to_bytes())) is not None


def test_filter_raises_when_the_registry_is_unreadable(
    settings: RetrainSettings, admit: Filter
) -> None:
    (settings.artifact_root / "registry" / "classifier" / CHAMPION_FILE).write_text("{")
    with pytest.raises(RegistryError, match="champion pointer"):
        admit(message(drift_event(TOPIC, 0, 49).to_bytes()))


def test_filter_reads_no_environment(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Settings the tasks would refuse, and a root with no registry: the filter sees
    # neither, only the kwargs the DAG serialized with the trigger.
    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(root / "elsewhere"))
    monkeypatch.setenv("DRIFTLOOP_MODEL_NAME", "no/slashes")
    monkeypatch.setenv("DRIFTLOOP_MIN_LABELED_ROWS", "1")
    caplog.set_level("INFO", logger="retraining.sensor")
    event = drift_event(TOPIC, 0, 49)

    kwargs = {"artifact_root": str(root), "model_name": "classifier"}
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert actionable_drift_event(message(event.to_bytes()), **kwargs) is not None
    other = {"artifact_root": str(root), "model_name": "other"}
    assert actionable_drift_event(message(event.to_bytes()), **other) is None
    assert "this DAG retrains 'other'" in caplog.text


@pytest.mark.parametrize(
    ("state", "woken"), [("onset", True), ("ongoing", False), ("resolved", False)]
)
def test_only_an_episode_onset_wakes_the_dag(admit: Filter, state: str, woken: bool) -> None:
    from consumer.events import AlarmInfo, EpisodeInfo

    base = drift_event(TOPIC, 300, 349)
    event = base.model_copy(
        update={
            "schema_minor": 1,
            "alarm": AlarmInfo(name="rank", false_alarm_rows=1e6, fired=True, features=["a"]),
            "episode": EpisodeInfo(
                episode_id="rows-0-300-349",
                state=state,
                opened_at=base.detected_at,
                drifted_features=["petal_length"],
                alarmed_windows=1,
            ),
        }
    )
    assert (admit(message(event.to_bytes())) is not None) is woken
