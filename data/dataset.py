"""Dataset: a labelled CSV of numeric and categorical features, loaded and checked."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.durable import write_atomic

logger = logging.getLogger(__name__)

IRIS_COLUMNS: tuple[str, ...] = (
    "sepal_length",
    "sepal_width",
    "petal_length",
    "petal_width",
    "target",
)
"""Column names of the Iris CSV that ``python -m data prepare`` writes."""

# Cells that spell "no value" in CSVs written by pandas, R or spreadsheets.
_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "-nan", "#n/a"})
_HASH_CHUNK = 1 << 20


class DatasetError(ValueError):
    """A data set file is missing or malformed; the message says where and why."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled data set read from a CSV file.

    Attributes
    ----------
    features : pandas.DataFrame
        One column per feature, in CSV order: float64 for a numeric feature (NaN for
        a missing value), strings for a categorical one (None for a missing value).
    labels : pandas.Series
        One label per row: int64 when every label is an integer, else strings.
    label_column : str
        Name of the label column in the CSV.
    sha256 : str
        Hex sha256 of the file's bytes, as read.
    path : pathlib.Path
        The file the data set was read from.
    keys : tuple of str or None
        With a ``key_column``: each row's cell of that column as written in the
        CSV (stripped), in row order; None otherwise.
    categorical : tuple of str
        The categorical features, in CSV order; every other feature is numeric.
    """

    features: pd.DataFrame
    labels: pd.Series
    label_column: str
    sha256: str
    path: Path
    keys: tuple[str, ...] | None = None
    categorical: tuple[str, ...] = ()

    @property
    def feature_names(self) -> list[str]:
        """Feature column names, in CSV order."""
        return [str(name) for name in self.features.columns]

    def __len__(self) -> int:
        return len(self.features)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The file to hash.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_dataset(
    path: str | os.PathLike[str],
    label_column: str = "target",
    key_column: str | None = None,
    categorical: Sequence[str] = (),
) -> Dataset:
    """Read a CSV of feature columns plus one label column.

    Every column other than ``label_column`` is a feature. A feature column whose
    cells are all numbers (or missing) is numeric: finite numbers, NaN where a cell
    is missing. Any other feature column, and any named in ``categorical``, is
    categorical: its cells as text (stripped), None where missing. A missing cell is
    an empty one or an NA token (``NA``, ``N/A``, ``NaN``, ``null``, ``None``,
    ``#N/A``, any case). A feature column must hold at least one value. Labels may be
    integers or strings, but none may be missing. A ``key_column`` keeps its role
    (the label, or a feature when it holds numbers), and its cells are kept as text in
    ``keys``; a key column holding text is the key only, not a feature.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file with a header line.
    label_column : str, default "target"
        Name of the column holding the labels.
    key_column : str, optional
        Name of a column whose cells identify each row's entity (a customer id);
        none may be missing.
    categorical : sequence of str, default ()
        Feature columns to read as categorical even if they hold numbers (a year,
        a zip code).

    Returns
    -------
    Dataset
        Features as float64 in CSV column order, labels, the file's sha256 and,
        with a ``key_column``, the keys.

    Raises
    ------
    DatasetError
        With a one-line message naming the file and, where it applies, the column,
        the offending value and its line number.
    ValueError
        If ``label_column`` or ``key_column`` is empty.
    """
    if not label_column:
        raise ValueError("label_column must be a non-empty column name")
    if key_column is not None and not key_column:
        raise ValueError("key_column must be a non-empty column name when given")
    path = Path(path)
    raw = _read_bytes(path)
    sha256 = hashlib.sha256(raw).hexdigest()
    header, rows, line_numbers = _parse_csv(path, raw)

    if label_column not in header:
        present = ", ".join(header)
        raise DatasetError(
            f"{path}: label column {label_column!r} not found; columns present: {present}"
        )
    if key_column is not None and key_column not in header:
        present = ", ".join(header)
        raise DatasetError(
            f"{path}: key column {key_column!r} not found; columns present: {present}"
        )
    feature_names = [name for name in header if name != label_column]
    if not feature_names:
        raise DatasetError(f"{path}: no feature columns besides label column {label_column!r}")
    if len(rows) < 2:
        raise DatasetError(f"{path}: need at least 2 data rows, found {len(rows)}")

    columns = list(zip(*rows, strict=True))
    by_name = dict(zip(header, columns, strict=True))
    keys = None
    if key_column is not None:
        keys = _key_column(path, key_column, by_name[key_column], line_numbers)
        if key_column in feature_names and not _all_numbers(keys):
            # Text (a customer id) cannot be a feature: the column is the key only.
            feature_names.remove(key_column)
            if not feature_names:
                raise DatasetError(
                    f"{path}: no feature columns besides label column {label_column!r} "
                    f"and key column {key_column!r}"
                )
    named = _check_categorical(path, categorical, header, label_column, key_column, feature_names)
    read: dict[str, pd.Series] = {}
    for name in feature_names:
        cells = by_name[name]
        if name in named or not _all_numbers(cells, missing_ok=True):
            read[name] = _categorical_column(path, name, cells)
        else:
            read[name] = _numeric_column(path, name, cells, line_numbers)
    features = pd.DataFrame(read, columns=feature_names)
    kinds = tuple(name for name in feature_names if read[name].dtype == object)
    labels = _label_column(path, label_column, by_name[label_column], line_numbers)
    logger.debug(
        "loaded dataset path=%s rows=%d features=%d sha256=%s",
        path,
        len(features),
        len(feature_names),
        sha256,
    )
    return Dataset(
        features=features,
        labels=labels,
        label_column=label_column,
        sha256=sha256,
        path=path,
        keys=keys,
        categorical=kinds,
    )


def write_iris_csv(path: str | os.PathLike[str]) -> Path:
    """Write scikit-learn's bundled Iris data set as CSV (no download).

    The columns are :data:`IRIS_COLUMNS`; ``target`` holds the class as 0, 1 or 2.
    The file is written whole or not at all (:func:`data.durable.write_atomic`), so a
    reader never sees half a file.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; parent directories are created.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from sklearn.datasets import load_iris

    path = Path(path)
    iris = load_iris()
    frame = pd.DataFrame(np.asarray(iris.data, dtype=np.float64), columns=list(IRIS_COLUMNS[:-1]))
    frame[IRIS_COLUMNS[-1]] = np.asarray(iris.target, dtype=np.int64)
    write_atomic(path, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    logger.info("wrote iris path=%s rows=%d", path, len(frame))
    return path


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DatasetError(f"dataset file not found: {path}")
    if path.is_dir():
        raise DatasetError(f"{path} is a directory, not a CSV file")
    try:
        return path.read_bytes()
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err.strerror or err}") from err


def _parse_csv(path: Path, raw: bytes) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and the file line on which each data row starts."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(
            f"{path} is not UTF-8 text (bad byte at offset {err.start}); is it a CSV file?"
        ) from err
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    last_line = 0
    try:
        for record in reader:
            start_line = last_line + 1
            last_line = reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if header is None:
                header = _check_header(path, record)
                continue
            if len(record) != len(header):
                raise DatasetError(
                    f"{path}: line {start_line} has {len(record)} fields, "
                    f"the header has {len(header)}"
                )
            rows.append(record)
            line_numbers.append(start_line)
    except csv.Error as err:
        raise DatasetError(f"{path}: malformed CSV at line {reader.line_num}: {err}") from err
    if header is None:
        raise DatasetError(f"{path} is empty: expected a header line of column names")
    return header, rows, line_numbers


def _check_header(path: Path, record: list[str]) -> list[str]:
    header = [name.strip() for name in record]
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not name:
            raise DatasetError(f"{path}: header column {position} has no name")
        if name in seen:
            raise DatasetError(f"{path}: column {name!r} appears more than once in the header")
        seen.add(name)
    return header


def _missing_mask(cells: pd.Series) -> pd.Series:
    return cells.str.lower().isin(_MISSING_TOKENS)


def _check_categorical(
    path: Path,
    categorical: Sequence[str],
    header: list[str],
    label_column: str,
    key_column: str | None,
    feature_names: list[str],
) -> frozenset[str]:
    """The columns named categorical, each checked to be a feature column."""
    if isinstance(categorical, str):
        raise ValueError(f"categorical must be a sequence of column names, got {categorical!r}")
    for name in categorical:
        if name == label_column:
            raise DatasetError(
                f"{path}: column {name!r} is the label column; only features are categorical"
            )
        if name == key_column and name not in feature_names:
            raise DatasetError(f"{path}: column {name!r} is the key column of text, not a feature")
        if name not in header:
            raise DatasetError(
                f"{path}: categorical column {name!r} not found; columns present: "
                + ", ".join(header)
            )
    return frozenset(categorical)


def _numeric_column(
    path: Path, name: str, values: tuple[str, ...], line_numbers: list[int]
) -> pd.Series:
    cells = pd.Series(values, dtype=object).str.strip()
    missing = _missing_mask(cells)
    numbers = pd.to_numeric(cells.mask(missing), errors="coerce").astype(np.float64)
    if bool(missing.all()):
        raise DatasetError(f"{path}: feature column {name!r} has no values, only missing cells")
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DatasetError(
            f"{path}: feature column {name!r} has an infinite value {values[row]!r} "
            f"at line {line_numbers[row]}"
        )
    return numbers.rename(name)


def _categorical_column(path: Path, name: str, values: tuple[str, ...]) -> pd.Series:
    cells = pd.Series(values, dtype=object).str.strip()
    missing = _missing_mask(cells)
    if bool(missing.all()):
        raise DatasetError(f"{path}: feature column {name!r} has no values, only missing cells")
    return cells.where(~missing, None).astype(object).rename(name)


def _key_column(
    path: Path, name: str, values: tuple[str, ...], line_numbers: list[int]
) -> tuple[str, ...]:
    keys = tuple(value.strip() for value in values)
    for key, line in zip(keys, line_numbers, strict=True):
        if key.lower() in _MISSING_TOKENS:
            raise DatasetError(f"{path}: key column {name!r} has a missing value at line {line}")
    return keys


def _all_numbers(cells: tuple[str, ...], missing_ok: bool = False) -> bool:
    """Whether every cell is a number (finite, or with ``missing_ok`` an infinity or missing).

    Infinities count as numbers there so that a numeric column's infinity is refused
    with its line, not read as a category.
    """
    series = pd.Series(cells, dtype=object).str.strip()
    numbers = pd.to_numeric(series, errors="coerce").astype(np.float64)
    if not missing_ok:
        return bool(np.isfinite(numbers).all())
    return bool((numbers.notna() | _missing_mask(series)).all())


def _label_column(
    path: Path, name: str, values: tuple[str, ...], line_numbers: list[int]
) -> pd.Series:
    cells = pd.Series(values, dtype=object).str.strip()
    missing = _missing_mask(cells)
    if missing.any():
        line = line_numbers[int(np.flatnonzero(missing.to_numpy())[0])]
        raise DatasetError(f"{path}: label column {name!r} has a missing value at line {line}")
    numbers = pd.to_numeric(cells, errors="coerce").astype(np.float64)
    whole = numbers.notna() & np.isfinite(numbers) & (numbers == np.floor(numbers))
    if whole.all():
        return numbers.astype(np.int64).rename(name)
    return cells.astype(object).rename(name)
