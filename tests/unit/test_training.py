"""Tests for models.training and ``python -m models``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.dataset import Dataset, load_dataset, write_iris_csv
from models.__main__ import main
from models.registry import Registry
from models.training import evaluate, split, train_and_register, train_classifier

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iris_csv(tmp_path_factory.mktemp("data") / "iris.csv")


@pytest.fixture(scope="module")
def iris(iris_csv: Path) -> Dataset:
    return load_dataset(iris_csv)


@pytest.fixture
def fruit_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    kinds = np.array(["apple", "pear"])[rng.integers(0, 2, size=40)]
    weight = np.where(kinds == "apple", 150.0, 120.0) + rng.normal(0, 5, size=40)
    frame = pd.DataFrame({"kind": kinds, "weight": weight, "diameter": rng.normal(7, 1, size=40)})
    path = tmp_path / "fruit.csv"
    frame.to_csv(path, index=False)
    return path


def test_split_is_stratified_and_seeded(iris: Dataset) -> None:
    x_train, x_test, _, y_test = split(iris.features, iris.labels, seed=7)
    assert (len(x_train), len(x_test)) == (120, 30)
    assert y_test.value_counts().to_dict() == {0: 10, 1: 10, 2: 10}
    assert list(x_train.columns) == iris.feature_names
    again = split(iris.features, iris.labels, seed=7)
    assert list(again[1].index) == list(x_test.index)


def test_split_without_stratifying_when_a_class_is_too_small() -> None:
    x = np.arange(20.0).reshape(10, 2)
    labels = ["a"] * 9 + ["b"]
    x_train, x_test, y_train, y_test = split(x, labels, test_size=0.3)
    assert (len(x_train), len(x_test)) == (7, 3)
    assert sorted([*y_train, *y_test]) == sorted(labels)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_test_size(iris: Dataset, test_size: float) -> None:
    with pytest.raises(ValueError, match="test_size"):
        split(iris.features, iris.labels, test_size=test_size)


def test_train_is_deterministic_and_accurate(iris: Dataset) -> None:
    x_train, x_test, y_train, y_test = split(iris.features, iris.labels)
    first = train_classifier(x_train, y_train, seed=3)
    second = train_classifier(x_train.to_numpy(), y_train.to_numpy(), seed=3)
    assert first.n_estimators == 100
    assert first.random_state == 3
    np.testing.assert_array_equal(
        first.predict_proba(x_test.to_numpy()), second.predict_proba(x_test.to_numpy())
    )
    metrics = evaluate(first, x_test, y_test)
    assert set(metrics) == {"accuracy", "f1_macro"}
    assert metrics["accuracy"] >= 0.9
    assert 0.0 <= metrics["f1_macro"] <= 1.0


def test_train_rejects_mismatched_labels() -> None:
    with pytest.raises(ValueError, match="labels"):
        train_classifier(np.zeros((4, 2)), [0, 1, 0])


def test_first_training_becomes_champion_second_does_not(tmp_path: Path, iris: Dataset) -> None:
    registry = Registry(tmp_path)
    first = train_and_register(registry, iris)
    assert first.version == 1
    assert first.decision == "initial"
    assert first.parent_version is None
    assert first.cause == f"initial training from {iris.path}"
    assert first.training_data_sha256 == iris.sha256
    assert first.feature_names == iris.feature_names
    assert first.label_column == "target"
    assert first.training_rows == first.reference_rows == 120
    assert set(first.metrics) == {"accuracy", "f1_macro"}
    assert registry.champion_version() == 1

    second = train_and_register(registry, iris, seed=11, cause="retrain for a test")
    assert second.version == 2
    assert second.decision == "registered"
    assert second.parent_version == 1
    assert second.cause == "retrain for a test"
    assert registry.champion_version() == 1


def test_reference_is_the_training_split(tmp_path: Path, iris: Dataset) -> None:
    registry = Registry(tmp_path)
    train_and_register(registry, iris, seed=7)
    x_train, _, y_train, _ = split(iris.features, iris.labels, seed=7)
    loaded = registry.load(1)
    assert loaded.reference.dtype == np.float64
    np.testing.assert_array_equal(loaded.reference, x_train.to_numpy())
    trained = train_classifier(x_train, y_train, seed=7)
    x = iris.features.to_numpy()
    np.testing.assert_array_equal(loaded.estimator.predict(x), trained.predict(x))


def test_string_labels_train_and_register(tmp_path: Path, fruit_csv: Path) -> None:
    dataset = load_dataset(fruit_csv, label_column="kind")
    registry = Registry(tmp_path, "fruit")
    metadata = train_and_register(registry, dataset)
    assert metadata.feature_names == ["weight", "diameter"]
    assert metadata.label_column == "kind"
    champion = registry.champion()
    assert champion is not None
    assert set(champion.estimator.predict(dataset.features.to_numpy())) <= {"apple", "pear"}


def test_cli_train_and_list_mark_the_champion(
    tmp_path: Path, iris_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ["--artifact-root", str(tmp_path)]
    assert main(["train", "--data", str(iris_csv), *root]) == 0
    out = capsys.readouterr().out
    assert "version 1" in out
    assert "accuracy=" in out
    assert "(champion)" in out
    assert main(["train", "--data", str(iris_csv), "--seed", "3", *root]) == 0
    assert "(not champion)" in capsys.readouterr().out

    assert main(["list", *root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "created", "decision", "accuracy", "cause"]
    assert lines[1].startswith("*")
    assert lines[1].split()[1:4:2] == ["1", "initial"]
    assert not lines[2].startswith("*")
    assert lines[2].split()[0:3:2] == ["2", "registered"]
    assert f"initial training from {iris_csv}" in lines[1]


def test_cli_flags_beat_environment(
    tmp_path: Path,
    iris_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("DRIFTLOOP_MODEL_NAME", "from-env")
    assert main(["train", "--data", str(iris_csv)]) == 0
    assert Registry(tmp_path / "env", "from-env").champion_version() == 1

    flag_root = tmp_path / "flag"
    args = ["--artifact-root", str(flag_root), "--model-name", "from-flag"]
    assert main(["train", "--data", str(iris_csv), *args]) == 0
    assert Registry(flag_root, "from-flag").champion_version() == 1
    assert Registry(tmp_path / "env", "from-env").versions()[-1].version == 1
    capsys.readouterr()


def test_cli_list_with_no_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--artifact-root", str(tmp_path)]) == 0
    assert "no versions" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "dataset file not found"),
        ("a,b\n1,2\n3,4\n", "label column 'target' not found"),
    ],
)
def test_cli_bad_data_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, message: str
) -> None:
    data = tmp_path / "data.csv"
    if text is not None:
        data.write_text(text)
    code = main(["train", "--data", str(data), "--artifact-root", str(tmp_path / "root")])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_cli_registry_error_is_one_line(
    tmp_path: Path, iris_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ["--artifact-root", str(tmp_path)]
    main(["train", "--data", str(iris_csv), *root])
    (tmp_path / "registry" / "classifier" / "versions" / "0001" / "metadata.json").write_text("{}")
    capsys.readouterr()
    assert main(["list", *root]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: metadata ")
    assert len(err.strip().splitlines()) == 1


def test_python_m_models_list_runs_as_a_process(tmp_path: Path, iris_csv: Path) -> None:
    assert main(["train", "--data", str(iris_csv), "--artifact-root", str(tmp_path)]) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "DRIFTLOOP_ARTIFACT_ROOT": str(tmp_path)}
    listed = subprocess.run(
        [sys.executable, "-m", "models", "list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:2] == ["*", "1"]


MIXED_CSV = "island,mass,sex,target\n" + "".join(
    f"{island},{mass},{sex},{label}\n"
    for i in range(120)
    for island, mass, sex, label in [
        (
            ["Biscoe", "Dream", "Torgersen"][i % 3],
            "NA" if i % 11 == 0 else 3.0 + (i % 3) + 0.01 * (i % 7),
            "" if i % 13 == 0 else ["male", "female"][i % 2],
            ["Adelie", "Gentoo", "Chinstrap"][i % 3],
        )
    ]
)


def test_a_mixed_csv_trains_a_pipeline_that_round_trips_through_the_registry(
    tmp_path: Path,
) -> None:
    """Categorical and missing values: a pipeline, its categories in the metadata, the
    reference as codes with NaN; loaded back, it predicts from the float matrix, unseen
    categories (a code past the list) and missing values included."""
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED_CSV)
    dataset = load_dataset(path)
    registry = Registry(tmp_path / "var")
    metadata = train_and_register(registry, dataset)
    assert metadata.categories == {
        "island": ["Biscoe", "Dream", "Torgersen"],
        "sex": ["female", "male"],
    }
    assert metadata.metrics["accuracy"] == 1.0  # the island says the label
    loaded = registry.load(metadata.version)
    assert type(loaded.estimator).__name__ == "Pipeline"
    reference = loaded.reference
    assert np.isnan(reference[:, 1]).any() and np.isnan(reference[:, 2]).any()
    assert set(np.unique(reference[:, 0])) == {0.0, 1.0, 2.0}
    x = np.array([[0.0, 3.0, 1.0], [1.0, np.nan, np.nan], [2.0, 5.0, 7.0], [9.0, 4.0, 0.0]])
    predicted = loaded.estimator.predict(x)
    assert predicted[:3].tolist() == ["Adelie", "Gentoo", "Chinstrap"]
    assert predicted[3] in {"Adelie", "Gentoo", "Chinstrap"}


def test_numeric_data_without_gaps_trains_a_bare_forest_that_predicts_gaps(iris: Dataset) -> None:
    """Iris keeps its forest (and the consumer's fast predictor); a missing value in a
    row is still predicted (scikit-learn's trees take NaN)."""
    estimator = train_classifier(iris.features, iris.labels)
    assert type(estimator).__name__ == "RandomForestClassifier"
    row = iris.features.to_numpy()[:1].copy()
    row[0, 2] = np.nan
    assert estimator.predict(row).shape == (1,)


def test_train_takes_categorical_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "years.csv"
    path.write_text(
        "year,x,target\n" + "".join(f"{2007 + i % 3},{i % 5},{i % 2}\n" for i in range(40))
    )
    root = tmp_path / "var"
    assert (
        main(["train", "--data", str(path), "--categorical", "year", "--artifact-root", str(root)])
        == 0
    )
    assert Registry(root).metadata(1).categories == {"year": ["2007", "2008", "2009"]}
    assert (
        main(["train", "--data", str(path), "--categorical", "nope", "--artifact-root", str(root)])
        == 1
    )
    assert "categorical column 'nope' not found" in capsys.readouterr().err
