"""Fixtures of the retraining tests: a registry with champion v1, its settings, an archive.

No broker and no Airflow: the archive is written with the consumer's WindowArchive
(:func:`tests.dags.scenario.write_archive`), the registry with the real Registry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from consumer.events import DriftEvent
from data.dataset import Dataset, load_dataset, write_iris_csv
from models.registry import CHAMPION_FILE, Registry
from models.training import train_and_register
from retraining.settings import RetrainSettings
from tests.dags.scenario import write_archive

TOPIC = "rows"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

PromoteByRetrain = Callable[..., int]
"""``promote_by_retrain(promoted_at=None) -> version``."""


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
    """Settings for ``root``, read from the environment as the DAG's tasks read them."""
    for name in (
        "MIN_LABELED_ROWS",
        "PROMOTION_P_VALUE",
        "MIN_HOLDOUT_ROWS",
        "COOLDOWN_SECONDS",
        "MODEL_NAME",
    ):
        monkeypatch.delenv(f"DRIFTLOOP_{name}", raising=False)
    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(root))
    # These tests exercise the look-back too; the default is none.
    monkeypatch.setenv("DRIFTLOOP_LOOKBACK_WINDOWS", "2")
    return RetrainSettings()


@pytest.fixture
def drifted(root: Path, iris: Dataset) -> list[DriftEvent]:
    """An archive of 600 rows, drifted from offset 300; the events of every window."""
    return write_archive(root, TOPIC, iris)


@pytest.fixture
def promote_by_retrain(root: Path) -> PromoteByRetrain:
    """Register and promote a v2 the way a retrain does (decision ``promoted``)."""

    def promote(promoted_at: datetime | None = None) -> int:
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
            pointer = registry.champion_pointer()
            assert pointer is not None
            (registry.model_dir / CHAMPION_FILE).write_text(
                pointer.model_copy(update={"promoted_at": promoted_at}).model_dump_json()
            )
        return metadata.version

    return promote
