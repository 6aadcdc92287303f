"""The champion's decoder takes the labels its estimator predicts, and no others."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from consumer.champion import Champion
from consumer.decoding import MalformedRowError
from consumer.settings import ConsumerSettings
from models.registry import LoadedModel, Registry, RegistryError

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
NAMES = np.array(["setosa", "versicolor", "virginica"], dtype=object)


def loaded(tmp_path: Path, labels: Any) -> LoadedModel:
    """Iris with ``labels`` (one per class 0, 1, 2), registered and loaded back."""
    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=5, random_state=7).fit(x, labels[y])
    registry = Registry(tmp_path)
    registry.register(
        forest,
        x,
        feature_names=FEATURES,
        label_column="target",
        training_data_sha256="0" * 64,
        metrics={"accuracy": 1.0, "f1_macro": 1.0},
        cause="test",
        decision="initial",
        training_rows=len(x),
    )
    return registry.load(1)


def row(label: object) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "stream": "iris",
            "seq": 0,
            "event_time": "2026-01-01T00:00:00Z",
            "features": dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True)),
            "label": label,
        }
    ).encode()


@pytest.mark.parametrize(
    ("labels", "classes", "good", "foreign"),
    [
        (np.array([0, 1, 2]), [0, 1, 2], 2, ["setosa", "2", True, 3]),
        (NAMES, ["setosa", "versicolor", "virginica"], "virginica", [2, "Virginica", True]),
        (NAMES.astype(str), ["setosa", "versicolor", "virginica"], "setosa", [0, "SETOSA"]),
    ],
    ids=["integers", "strings", "numpy-strings"],
)
def test_the_decoder_takes_the_estimators_classes_and_dead_letters_others(
    tmp_path: Path, labels: Any, classes: list[Any], good: object, foreign: list[object]
) -> None:
    model = loaded(tmp_path, labels)
    champion = Champion(model, ConsumerSettings(ks_backend="fast"))
    assert list(champion.decoder.classes) == classes
    assert champion.decoder.decode(row(good)).label == good
    assert champion.decoder.decode(row(None)).label is None
    for label in foreign:
        with pytest.raises(MalformedRowError) as caught:
            champion.decoder.decode(row(label))
        assert caught.value.reason == "unknown-label"
    # Labels and predictions are values of one kind, so comparing them is exact.
    predicted = np.asarray(champion.predict_labels(model.reference)).tolist()
    assert set(predicted) == set(classes)


class NoClasses:
    """An estimator with nothing to check labels against."""


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (NoClasses(), "has no classes_"),
        (type("Floats", (), {"classes_": np.array([0.0, 1.0])})(), "integers or strings"),
        (type("Bools", (), {"classes_": np.array([False, True])})(), "integers or strings"),
        (type("Empty", (), {"classes_": np.array([], dtype=np.int64)})(), "integers or strings"),
    ],
    ids=["none", "floats", "booleans", "empty"],
)
def test_a_version_without_usable_classes_is_a_registry_error(
    tmp_path: Path, estimator: object, message: str
) -> None:
    # A RegistryError: a model update to such a version is refused and the old champion kept.
    model = replace(loaded(tmp_path, np.array([0, 1, 2])), estimator=estimator)
    with pytest.raises(RegistryError, match=message):
        Champion(model, ConsumerSettings(ks_backend="fast"))
