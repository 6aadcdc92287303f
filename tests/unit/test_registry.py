"""Tests for models.registry: immutable versions, champion pointer, verified loading."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from pydantic import ValidationError
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from models.registry import (
    LoadedModel,
    Registry,
    RegistryError,
    RegistrySettings,
    TamperedArtifactError,
    VersionMetadata,
)

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class NotAnEstimator:
    """A type no allow-list holds."""

    def predict(self, x: Any) -> Any:
        return x


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y)


@pytest.fixture(scope="module")
def forest(iris: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    x, y = iris
    return RandomForestClassifier(n_estimators=10, random_state=7).fit(x, y)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "artifacts")


def register(
    registry: Registry, estimator: Any, reference: np.ndarray, **overrides: Any
) -> VersionMetadata:
    kwargs: dict[str, Any] = {
        "feature_names": FEATURES,
        "label_column": "target",
        "training_data_sha256": "0" * 64,
        "metrics": {"accuracy": 0.95, "f1_macro": 0.94},
        "cause": "initial training from data/iris.csv",
        "decision": "initial",
        "training_rows": len(reference),
    }
    kwargs.update(overrides)
    return registry.register(estimator, reference, **kwargs)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_register_writes_the_layout(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    metadata = register(registry, forest, iris[0])

    version_dir = registry.root / "registry" / "classifier" / "versions" / "0001"
    assert registry.version_dir(1) == version_dir
    assert sorted(p.name for p in version_dir.iterdir()) == [
        "metadata.json",
        "model.skops",
        "reference.npy",
    ]
    assert metadata.version == 1
    assert metadata.model_name == "classifier"
    assert metadata.created_at.tzinfo is not None
    assert metadata.created_at.utcoffset() == UTC.utcoffset(None)
    assert metadata.reference_rows == 150
    assert metadata.parent_version is None
    assert metadata.training_windows == []
    assert VersionMetadata.model_validate_json((version_dir / "metadata.json").read_bytes()) == (
        metadata
    )
    # Nothing but finished versions lies in versions/.
    assert os.listdir(registry.versions_dir) == ["0001"]
    # Registering alone does not make a champion.
    assert registry.champion_version() is None
    assert registry.champion() is None


def test_versions_are_immutable(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    first = register(registry, forest, iris[0])
    before = snapshot(registry.version_dir(1))

    second = register(
        registry,
        forest,
        iris[0][:100],
        decision="registered",
        parent_version=1,
        cause="drift event rows-0-300-349",
        drift_event_id="rows-0-300-349",
        training_windows=["windows/rows/0/300.csv"],
    )

    assert second.version == 2
    assert registry.version_dir(2).is_dir()
    assert snapshot(registry.version_dir(1)) == before
    assert registry.metadata(1) == first
    assert registry.metadata(2) == second
    assert second.parent_version == 1
    assert second.drift_event_id == "rows-0-300-349"
    assert second.training_windows == ["windows/rows/0/300.csv"]
    assert [m.version for m in registry.versions()] == [1, 2]


def test_promote_switches_the_champion_pointer(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    register(registry, forest, iris[0])
    register(registry, forest, iris[0][:50], decision="promoted", parent_version=1)

    registry.promote(1)
    assert registry.champion_version() == 1
    registry.promote(2)
    assert registry.champion_version() == 2

    pointer = json.loads((registry.model_dir / "champion.json").read_text())
    assert pointer["version"] == 2
    assert pointer["previous_version"] == 1
    read = registry.champion_pointer()
    assert read is not None
    assert (read.model_name, read.version, read.previous_version) == ("classifier", 2, 1)
    assert read.promoted_at.isoformat() == pointer["promoted_at"].replace("Z", "+00:00")
    champion = registry.champion()
    assert champion is not None
    assert champion.metadata.version == 2
    assert champion.reference.shape == (50, 4)
    # The switch leaves no temporary files behind.
    assert sorted(p.name for p in registry.model_dir.iterdir()) == [
        "champion.json",
        "promotions",
        "versions",
    ]
    assert all(p.suffix == ".json" for p in (registry.model_dir / "promotions").iterdir())
    assert [(p.version, p.previous_version) for p in registry.promotions()][-1] == (2, 1)


def test_promote_a_missing_version(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.promote(7)
    assert registry.champion_version() is None
    assert registry.champion_pointer() is None


def test_load_a_missing_version(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    register(registry, forest, iris[0])
    with pytest.raises(RegistryError, match="'classifier' has no version 3"):
        registry.load(3)


def test_loaded_model_predicts_like_the_trained_one(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = iris
    register(registry, forest, x)
    loaded = registry.load(1)
    assert isinstance(loaded, LoadedModel)
    assert isinstance(loaded.estimator, RandomForestClassifier)
    np.testing.assert_array_equal(loaded.estimator.predict(x), forest.predict(x))
    np.testing.assert_array_equal(loaded.estimator.predict_proba(x), forest.predict_proba(x))
    assert loaded.reference.dtype == np.float64
    np.testing.assert_array_equal(loaded.reference, x)
    assert loaded.metadata.feature_names == FEATURES


def test_string_labels_round_trip(registry: Registry, iris: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = iris
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    forest = RandomForestClassifier(n_estimators=5, random_state=7).fit(x, names)
    register(registry, forest, x)
    assert list(registry.load(1).estimator.predict(x[:1])) == ["setosa"]


@pytest.mark.parametrize("name", ["model.skops", "reference.npy"])
def test_tampered_file_is_refused(
    registry: Registry,
    forest: RandomForestClassifier,
    iris: tuple[np.ndarray, np.ndarray],
    name: str,
) -> None:
    metadata = register(registry, forest, iris[0])
    registry.promote(1)
    path = registry.version_dir(1) / name
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    expected = metadata.model_sha256 if name == "model.skops" else metadata.reference_sha256
    with pytest.raises(TamperedArtifactError) as caught:
        registry.load(1)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    with pytest.raises(TamperedArtifactError):
        registry.champion()
    with pytest.raises(TamperedArtifactError):
        registry.promote(1)


def test_disallowed_type_is_never_loaded(
    registry: Registry,
    forest: RandomForestClassifier,
    iris: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    # Someone who can rewrite both the model and its metadata still cannot make the
    # registry load a type outside the allow-list.
    register(registry, forest, iris[0])
    evil = tmp_path / "evil.skops"
    skops.io.dump(NotAnEstimator(), evil)
    version_dir = registry.version_dir(1)
    (version_dir / "model.skops").write_bytes(evil.read_bytes())
    metadata = json.loads((version_dir / "metadata.json").read_text())
    metadata["model_sha256"] = hashlib.sha256(evil.read_bytes()).hexdigest()
    (version_dir / "metadata.json").write_text(json.dumps(metadata))

    with pytest.raises(RegistryError, match="NotAnEstimator"):
        registry.load(1)


def test_disallowed_estimator_is_not_registered(
    registry: Registry, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    with pytest.raises(RegistryError, match="not allowed"):
        register(registry, NotAnEstimator(), iris[0])
    assert registry.versions() == []
    assert os.listdir(registry.versions_dir) == []


def test_register_takes_the_next_number_when_another_process_wins(
    registry: Registry,
    forest: RandomForestClassifier,
    iris: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(registry, forest, iris[0])
    before = snapshot(registry.version_dir(1))
    # Simulate a stale directory listing: the first attempt picks version 1, which a
    # concurrent process has already published.
    real = Registry._version_numbers
    calls = []

    def stale_then_real(self: Registry) -> list[int]:
        calls.append(1)
        return [] if len(calls) == 1 else real(self)

    monkeypatch.setattr(Registry, "_version_numbers", stale_then_real)
    second = register(registry, forest, iris[0][:10], decision="registered")

    assert second.version == 2
    assert registry.metadata(2).reference_rows == 10
    assert snapshot(registry.version_dir(1)) == before


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"feature_names": ["a", "a", "b", "c"]}, "feature_names"),
        ({"feature_names": ["a", "b"]}, "feature_names"),
        ({"training_rows": 0}, "training_rows"),
    ],
)
def test_register_rejects_bad_parameters(
    registry: Registry,
    forest: RandomForestClassifier,
    iris: tuple[np.ndarray, np.ndarray],
    overrides: dict[str, Any],
    parameter: str,
) -> None:
    with pytest.raises(ValueError, match=parameter):
        register(registry, forest, iris[0], **overrides)
    assert registry.versions() == []


def test_register_rejects_an_infinite_reference_and_keeps_nan_as_missing(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    reference = iris[0].copy()
    reference[3, 1] = np.inf
    with pytest.raises(ValueError, match="reference must hold no infinite values"):
        register(registry, forest, reference)
    reference[3, 1] = np.nan
    register(registry, forest, reference)
    assert np.isnan(registry.load(1).reference[3, 1])


def test_register_checks_categories_against_the_reference_codes(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    with pytest.raises(ValueError, match=r"reference column 'sepal_length' must hold codes 0\.\.1"):
        register(registry, forest, iris[0], categories={"sepal_length": ["a", "b"]})
    with pytest.raises(ValueError, match="not one of feature_names"):
        register(registry, forest, iris[0], categories={"colour": ["a"]})
    codes = iris[0].copy()
    codes[:, 0] = np.arange(len(codes)) % 2
    codes[0, 0] = np.nan
    metadata = register(registry, forest, codes, categories={names[0]: ["a", "b"]})
    assert metadata.categories == {names[0]: ["a", "b"]}
    assert registry.load(metadata.version).metadata.categories == {names[0]: ["a", "b"]}


def test_register_requires_an_existing_parent(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    with pytest.raises(RegistryError, match="no version 4"):
        register(registry, forest, iris[0], parent_version=4)


def test_model_names_are_kept_apart(
    tmp_path: Path, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    a = Registry(tmp_path, "a")
    b = Registry(tmp_path, "b")
    register(a, forest, iris[0])
    a.promote(1)
    assert b.versions() == []
    assert b.champion_version() is None


def test_model_name_must_be_a_safe_directory_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_name"):
        Registry(tmp_path, "../elsewhere")


def test_settings_from_environment_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLOOP_ARTIFACT_ROOT", raising=False)
    monkeypatch.delenv("DRIFTLOOP_MODEL_NAME", raising=False)
    defaults = RegistrySettings()
    assert defaults.artifact_root == Path("var")
    assert defaults.model_name == "classifier"

    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("DRIFTLOOP_MODEL_NAME", "iris")
    from_env = Registry.from_settings(RegistrySettings())
    assert from_env.root == tmp_path / "env"
    assert from_env.model_name == "iris"

    flags = RegistrySettings(artifact_root=tmp_path / "flag", model_name="other")
    assert flags.artifact_root == tmp_path / "flag"
    assert flags.model_name == "other"

    monkeypatch.setenv("DRIFTLOOP_MODEL_NAME", "no/slashes")
    with pytest.raises(ValidationError, match="DRIFTLOOP_MODEL_NAME"):
        RegistrySettings()


def test_malformed_champion_pointer(registry: Registry) -> None:
    registry.model_dir.mkdir(parents=True)
    (registry.model_dir / "champion.json").write_text("{not json")
    with pytest.raises(RegistryError, match=r"champion pointer .* is malformed"):
        registry.champion_version()


def test_champion_pointer_of_another_model_is_refused(registry: Registry) -> None:
    registry.model_dir.mkdir(parents=True)
    (registry.model_dir / "champion.json").write_text(
        '{"model_name": "other", "version": 1, "promoted_at": "2026-01-01T00:00:00Z"}'
    )
    with pytest.raises(RegistryError, match="names model 'other'"):
        registry.champion_pointer()
    with pytest.raises(RegistryError, match="names model 'other'"):
        registry.champion_version()


def test_a_promotion_by_hand_keeps_who_and_why_in_the_switch_history(
    registry: Registry, forest: RandomForestClassifier, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    for _ in range(2):
        register(registry, forest, iris[0][:50])
    registry.promote(1, by="training", reason="first")
    registry.promote(2, by="retraining", reason="drift event e")
    pointer = registry.promote(1, by="hand", reason="rollback: v2 misbehaves")
    assert registry.champion_pointer() == pointer
    assert [(p.version, p.promoted_by, p.reason) for p in registry.promotions()] == [
        (1, "training", "first"),
        (2, "retraining", "drift event e"),
        (1, "hand", "rollback: v2 misbehaves"),
    ]
    assert pointer.previous_version == 2
