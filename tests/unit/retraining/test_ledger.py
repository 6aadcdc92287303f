"""The handled-events ledger: one claim wins, outcomes stay with their run, safe names."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from retraining.ledger import HandledLedger


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
