"""Tests for data.dataset and ``python -m data prepare``."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from data.__main__ import main
from data.dataset import IRIS_COLUMNS, Dataset, DatasetError, file_sha256, load_dataset


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_prepare_writes_loadable_iris(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "iris.csv"
    assert main(["prepare", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out

    assert out.read_text().splitlines()[0] == ",".join(IRIS_COLUMNS)
    dataset = load_dataset(out)
    assert len(dataset) == 150
    assert dataset.feature_names == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert dataset.features.shape == (150, 4)
    assert (dataset.features.dtypes == np.float64).all()
    assert dataset.labels.dtype == np.int64
    assert dataset.labels.value_counts().to_dict() == {0: 50, 1: 50, 2: 50}
    assert dataset.label_column == "target"
    assert dataset.sha256 == file_sha256(out) == hashlib.sha256(out.read_bytes()).hexdigest()
    assert dataset.path == out
    assert dataset.features.iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2]


def test_prepare_defaults_to_data_iris_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["prepare"]) == 0
    assert "data/iris.csv" in capsys.readouterr().out
    assert len(load_dataset(tmp_path / "data" / "iris.csv")) == 150


def test_prepare_is_deterministic(tmp_path: Path) -> None:
    main(["prepare", "--out", str(tmp_path / "a.csv")])
    main(["prepare", "--out", str(tmp_path / "b.csv")])
    assert file_sha256(tmp_path / "a.csv") == file_sha256(tmp_path / "b.csv")


def test_prepare_penguins_writes_a_table_with_categories_and_missing_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "penguins"]) == 0
    out = tmp_path / "data" / "penguins.csv"
    assert f"wrote 344 rows, 6 features to {Path('data/penguins.csv')}" in capsys.readouterr().out

    dataset = load_dataset(out, label_column="species")
    assert dataset.categorical == ("island", "sex")
    assert dataset.labels.value_counts().to_dict() == {
        "Adelie": 152,
        "Gentoo": 124,
        "Chinstrap": 68,
    }
    assert sorted(set(dataset.features["island"])) == ["Biscoe", "Dream", "Torgersen"]
    # The study's NA cells are missing values: two birds without measurements, eleven
    # without a recorded sex; the study year is left out.
    assert dataset.features["bill_length_mm"].isna().sum() == 2
    assert sum(cell is None for cell in dataset.features["sex"]) == 11
    assert "year" not in dataset.feature_names


def test_prepare_names_the_data_sets_it_knows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "wine"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'wine' (choose from 'iris', 'penguins')" in capsys.readouterr().err


def test_string_labels_and_label_column_anywhere(tmp_path: Path) -> None:
    path = write(
        tmp_path / "fruit.csv",
        "weight,kind,diameter\n150.5,apple,7.1\n120,pear,6\n2e2,apple,8.25\n",
    )
    dataset = load_dataset(path, label_column="kind")
    assert dataset.feature_names == ["weight", "diameter"]
    assert dataset.features.to_numpy().tolist() == [[150.5, 7.1], [120.0, 6.0], [200.0, 8.25]]
    assert dataset.labels.tolist() == ["apple", "pear", "apple"]
    assert dataset.labels.name == "kind"


def test_windows_line_endings_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"\xef\xbb\xbfa, b ,target\r\n1,2,0\r\n\r\n3, 4 ,1\r\n")
    dataset = load_dataset(path)
    assert dataset.feature_names == ["a", "b"]
    assert dataset.features.to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert dataset.labels.tolist() == [0, 1]


def test_dataset_is_frozen(tmp_path: Path) -> None:
    dataset = load_dataset(write(tmp_path / "d.csv", "a,target\n1,0\n2,1\n"))
    assert isinstance(dataset, Dataset)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.label_column = "other"  # type: ignore[misc]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset file not found: .*nope\.csv"):
        load_dataset(tmp_path / "nope.csv")


def test_directory_is_not_a_csv(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is a directory"):
        load_dataset(tmp_path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", r"is empty: expected a header line", id="empty"),
        pytest.param("\n\n", r"is empty", id="blank-lines-only"),
        pytest.param(
            "a,b,label\n1,2,0\n3,4,1\n",
            r"label column 'target' not found; columns present: a, b, label",
            id="label-absent",
        ),
        pytest.param(
            "target\n0\n1\n",
            r"no feature columns besides label column 'target'",
            id="no-features",
        ),
        pytest.param(
            "a,b,target\n1,,0\n\n3,NA,1\n",
            r"feature column 'b' has no values, only missing cells",
            id="all-missing",
        ),
        pytest.param(
            "a,b,target\n1,2,0\n3,-inf,1\n",
            r"feature column 'b' has an infinite value '-inf' at line 3",
            id="infinite",
        ),
        pytest.param(
            "a,b,target\n1,2,0\n3,4,\n",
            r"label column 'target' has a missing value at line 3",
            id="missing-label",
        ),
        pytest.param(
            "a,b,target\n1,2,0\n",
            r"need at least 2 data rows, found 1",
            id="one-row",
        ),
        pytest.param("a,b,target\n", r"need at least 2 data rows, found 0", id="header-only"),
        pytest.param(
            "a,b,target\n1,2,0\n3,4\n",
            r"line 3 has 2 fields, the header has 3",
            id="ragged",
        ),
        pytest.param(
            "a,a,target\n1,2,0\n3,4,1\n",
            r"column 'a' appears more than once",
            id="duplicate-column",
        ),
        pytest.param(
            ",a,target\n0,1,0\n1,2,1\n",
            r"header column 1 has no name",
            id="unnamed-column",
        ),
        pytest.param(
            'a,b,target\n1,"2\n',
            r"malformed CSV at line 2",
            id="unterminated-quote",
        ),
    ],
)
def test_malformed_csv(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


def test_empty_label_column_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label_column"):
        load_dataset(write(tmp_path / "d.csv", "a,target\n1,0\n2,1\n"), label_column="")


# -- a key column: each row's entity, for the producer's message key -------------------

KEYED = "customer,a,b,target\nC-7,1.5,2.10,0\nC-9,3,4,1\n C-7 ,5,6,1\n"
"""A CSV with a column of text ids: loadable only with it as the key column."""
NUMBERS = "a,b,target\n1.5,2.10,0\n3,4,1\n5,6,1\n"


@pytest.mark.parametrize(
    ("text", "key_column", "keys"),
    [
        pytest.param(KEYED, "customer", ("C-7", "C-9", "C-7"), id="text-column-is-key-only"),
        pytest.param(NUMBERS, "b", ("2.10", "4", "6"), id="feature-stays-a-feature"),
        pytest.param(NUMBERS, "target", ("0", "1", "1"), id="label-stays-the-label"),
    ],
)
def test_a_key_column_keeps_each_rows_cell_as_written(
    tmp_path: Path, text: str, key_column: str, keys: tuple[str, ...]
) -> None:
    dataset = load_dataset(write(tmp_path / "keyed.csv", text), key_column=key_column)
    assert dataset.keys == keys
    assert dataset.feature_names == ["a", "b"]
    assert dataset.features.to_numpy().tolist() == [[1.5, 2.1], [3.0, 4.0], [5.0, 6.0]]
    assert dataset.labels.tolist() == [0, 1, 1]


def test_without_a_key_column_there_are_no_keys_and_text_is_a_category(tmp_path: Path) -> None:
    path = write(tmp_path / "keyed.csv", KEYED)
    assert load_dataset(write(tmp_path / "iris.csv", "a,target\n1,0\n2,1\n")).keys is None
    dataset = load_dataset(path)
    assert dataset.keys is None
    assert dataset.categorical == ("customer",)


@pytest.mark.parametrize(
    ("text", "key_column", "message"),
    [
        pytest.param(
            KEYED,
            "client",
            r"key column 'client' not found; columns present: customer, a, b, target",
            id="unknown",
        ),
        pytest.param(
            "customer,a,target\nC-1,1,0\n,2,1\n",
            "customer",
            r"key column 'customer' has a missing value at line 3",
            id="missing-key",
        ),
        pytest.param(
            "customer,target\nC-1,0\nC-2,1\n",
            "customer",
            r"no feature columns besides label column 'target' and key column 'customer'",
            id="key-is-the-only-other-column",
        ),
    ],
)
def test_a_bad_key_column_is_one_line_naming_it(
    tmp_path: Path, text: str, key_column: str, message: str
) -> None:
    path = write(tmp_path / "keyed.csv", text)
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(path, key_column=key_column)
    assert "\n" not in str(caught.value)


def test_text_columns_are_categorical_and_na_cells_missing(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.csv",
        "island,mass,sex,year,target\n"
        "Dream, 3.5 ,male,2007,a\n"
        "Biscoe,NA,,2008,b\n"
        " Dream ,,NA,2007,a\n"
        "Torgersen,4.25,female,2009,b\n",
    )
    dataset = load_dataset(path)
    assert dataset.categorical == ("island", "sex")
    assert dataset.feature_names == ["island", "mass", "sex", "year"]
    assert dataset.features["island"].tolist() == ["Dream", "Biscoe", "Dream", "Torgersen"]
    assert dataset.features["sex"].tolist() == ["male", None, None, "female"]
    mass = dataset.features["mass"]
    assert mass.dtype == np.float64
    assert mass.tolist()[0] == 3.5 and mass.tolist()[3] == 4.25
    assert mass.isna().tolist() == [False, True, True, False]
    assert dataset.features["year"].dtype == np.float64


def test_categorical_names_numeric_looking_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "years.csv", "year,x,target\n2007,1,0\n2008,,1\n,3,0\n")
    dataset = load_dataset(path, categorical=["year"])
    assert dataset.categorical == ("year",)
    assert dataset.features["year"].tolist() == ["2007", "2008", None]
    assert np.isnan(dataset.features["x"].iloc[1])


def test_an_infinity_in_a_numeric_column_is_still_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "inf.csv", "a,b,target\n1,2,0\n3,inf,1\n4,,1\n")
    with pytest.raises(DatasetError, match=r"column 'b' has an infinite value 'inf' at line 3"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("c", r"categorical column 'c' not found; columns present: a, b, target"),
        ("target", r"column 'target' is the label column; only features are categorical"),
    ],
)
def test_a_bad_categorical_name_is_refused(tmp_path: Path, name: str, message: str) -> None:
    path = write(tmp_path / "ab.csv", "a,b,target\n1,x,0\n3,4,1\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, categorical=[name])
