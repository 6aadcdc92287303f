"""Marking a drift event handled: a skip is recorded, another run's record is left alone."""

from __future__ import annotations

from retraining.outcome import mark_handled
from retraining.settings import RetrainSettings
from tests.dags.scenario import drift_event
from tests.unit.retraining.conftest import TOPIC


def test_mark_handled_records_a_skip_but_not_over_another_run(
    settings: RetrainSettings,
) -> None:
    event = drift_event(TOPIC, 0, 49)
    record = mark_handled(event, settings, "run-1", "skipped", {"reason": "stale: ..."})
    assert record is not None and record["outcome"] == "skipped"
    assert mark_handled(event, settings, "run-2", "skipped", {"reason": "duplicate"}) is None
