"""The challenger: trained on the drifted windows, compared, registered with its lineage."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from consumer.archive import resolve_window
from consumer.events import DriftEvent
from data.dataset import Dataset
from models.promotion import ModelUpdate
from models.registry import Registry
from models.training import train_and_register
from retraining.challenger import RetrainError, promotion_gate, train_challenger
from retraining.decision import decide
from retraining.settings import RetrainSettings
from tests.dags.scenario import drift_event, write_archive
from tests.unit.retraining.conftest import TOPIC


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
    # Lineage names segment and window, and reads back through the archive.
    assert all("#" in name for name in meta.training_windows)
    assert [resolve_window(name).first_offset for name in meta.training_windows] == list(
        range(200, 600, 50)
    )
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


def test_a_challenger_on_too_few_held_out_rows_is_rejected(
    root: Path, drifted: list[DriftEvent]
) -> None:
    settings = RetrainSettings(artifact_root=root, min_holdout_rows=10_000)
    result = train_challenger(drifted[6], settings, "run-1")
    assert result["decision"] == "rejected"
    assert result["model_update"] is None
    registry = Registry(root)
    assert registry.champion_version() == 1
    assert registry.metadata(2).decision == "rejected"
    assert registry.metadata(2).champion_metrics == result["champion_metrics"]
    comparison = registry.metadata(2).comparison
    assert comparison is not None and "fewer than 10000" in comparison["reason"]


def test_a_challenger_equal_to_the_champion_is_rejected(root: Path, iris: Dataset) -> None:
    champion = Registry(root).load(1).estimator
    rng = np.random.default_rng(11)
    x = iris.features.to_numpy(dtype=np.float64)
    y = iris.labels.to_numpy()
    picks = rng.integers(0, len(y), size=400)
    # Jittered rows: none repeats a training row, so all 200 held-out rows are compared.
    rows = x[picks] + rng.normal(0, 0.3, size=(400, x.shape[1]))
    verdict = promotion_gate(
        champion,
        champion,
        rows[:200],
        y[picks][:200],
        rows[200:],
        y[picks][200:],
        RetrainSettings(artifact_root=root),
    )
    assert (verdict.promote, verdict.test.rows, verdict.duplicates_removed) == (False, 200, 0)
    assert (verdict.test.challenger_only, verdict.test.champion_only) == (0, 0)
    assert verdict.test.p_value == 1.0
    assert "not shown better" in verdict.reason


def test_a_clearly_better_challenger_is_promoted_with_the_test_in_its_lineage(
    settings: RetrainSettings, drifted: list[DriftEvent]
) -> None:
    result = train_challenger(drifted[6], settings, "run-1")
    comparison = Registry(settings.artifact_root).metadata(2).comparison
    assert result["decision"] == "promoted"
    assert comparison is not None
    assert comparison["p_value"] < 0.05
    assert comparison["challenger_only"] > comparison["champion_only"]
    assert comparison["rows"] >= 30
    assert comparison["rows"] + comparison["duplicates_removed"] == result["holdout_rows"]


def test_held_out_copies_of_training_rows_are_removed_and_counted(
    root: Path, iris: Dataset
) -> None:
    # Clean Iris rows drawn with replacement: most held-out rows repeat a training row.
    events = write_archive(root, TOPIC, iris, drift_after=10_000)
    result = train_challenger(events[0], RetrainSettings(artifact_root=root), "run-1")
    comparison = Registry(root).metadata(2).comparison
    assert comparison is not None
    assert comparison["duplicates_removed"] > 0
    assert comparison["rows"] == result["holdout_rows"] - comparison["duplicates_removed"]


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


def test_a_challenger_learns_the_categories_of_its_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion knows islands A and B; from offset 300 the stream's rows come from a
    new island C, whose rows have the other label. The archive holds the consumer's
    codes (C as the unseen code 2) with their strings; the challenger is trained on the
    strings, so its categories have C, its reference codes it, and it beats the champion
    that cannot tell C's rows apart."""
    from consumer.archive import WindowArchive
    from data.dataset import load_dataset
    from tests.dags.scenario import T0

    rng = np.random.default_rng(4)
    lines = ["island,size,target"]
    for i in range(300):
        island = "AB"[i % 2]
        size = "NA" if i % 10 == 0 else f"{rng.normal(5, 1):.2f}"
        lines.append(f"{island},{size},{int(island == 'A')}")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    root = tmp_path / "var"
    train_and_register(Registry(root), load_dataset(tmp_path / "train.csv"), seed=7)
    assert Registry(root).metadata(1).categories == {"island": ["A", "B"]}

    archive = WindowArchive(root, fsync=False)
    events = []
    for first in range(0, 600, 50):
        offsets = list(range(first, first + 50))
        codes = np.array([2.0 if o >= 300 else float(o % 2) for o in offsets])
        sizes = rng.normal(5, 1, size=50)
        sizes[::7] = np.nan
        labels = [0 if o >= 300 else int(o % 2 == 0) for o in offsets]
        event = drift_event(TOPIC, first, first + 49, features=("island", "size"))
        events.append(
            archive.append(
                event,
                ["island", "size"],
                offsets,
                [T0 + timedelta(seconds=o) for o in offsets],
                np.column_stack([codes, sizes]),
                labels,
                "target",
                categories={"island": ["A", "B", "C"]},
            )
        )
    archive.close()
    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(root))
    monkeypatch.setenv("DRIFTLOOP_LOOKBACK_WINDOWS", "0")
    result = train_challenger(events[6], RetrainSettings(), "run-1")

    challenger = Registry(root).load(result["version"])
    assert challenger.metadata.categories == {"island": ["C"]}
    assert set(np.unique(challenger.reference[:, 0])) == {0.0}
    assert np.isnan(challenger.reference[:, 1]).any()
    assert result["challenger_metrics"]["accuracy"] == 1.0
    assert result["champion_metrics"]["accuracy"] < 0.9
