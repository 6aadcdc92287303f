"""The replay plan: which rows go out in which order, and which get noise."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DriftPlan:
    """Gaussian noise added to chosen features from a given row on.

    A categorical feature cannot take noise: a drifted row's category is the
    feature's rarest in the data set instead (ties: the first in sorted order), a
    change of its distribution as plain as noise of mean 3 is of a number's. A
    missing value stays missing.

    Parameters
    ----------
    after
        Index (from 0) of the first noised row; None means no noise at all.
    mean, std
        The noise distribution: the original tutorial's 3 and 1.
    features
        Names of the noised features; None means all.
    """

    after: int | None = None
    mean: float = 3.0
    std: float = 1.0
    features: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.after is not None and self.after < 0:
            raise ValueError(f"drift_after must be >= 0, got {self.after}")
        if not self.std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {self.std}")
        if not np.isfinite(self.mean):
            raise ValueError(f"noise_mean must be a finite number, got {self.mean}")
        if self.features is not None and not self.features:
            raise ValueError("drift_features must name at least one feature when given")


@dataclass(frozen=True)
class Row:
    """One row to send: its replay position, feature values, label and message key."""

    seq: int
    features: dict[str, float | str | None]
    """Feature values: numbers, strings for categorical features, None where missing."""
    label: int | str | None
    key: str | None = None
    """The row's entity key (its key column's cell); None sends the row unkeyed."""


def replay(
    features: np.ndarray,
    labels: Sequence[int | str] | None,
    feature_names: Sequence[str],
    *,
    count: int | None,
    drift: DriftPlan = DriftPlan(),
    seed: int | None = None,
    shuffle: bool = True,
    keys: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
) -> Iterator[Row]:
    """Yield rows of a data set for replay, shuffled per pass, noised per ``drift``.

    Parameters
    ----------
    features
        The data set's feature matrix, shape (rows, features): numbers (NaN where
        missing), strings (None where missing) in the ``categorical`` columns.
    labels
        One label per row, or None.
    feature_names
        Column names of ``features``.
    count
        How many rows to yield; None replays forever. Past the end of the
        data the replay starts another pass.
    drift
        Where, and to which features, noise is added.
    seed
        Makes the order and the noise repeatable.
    shuffle
        Shuffle each pass (a CSV sorted by class would otherwise look like drift).
    keys
        One key per row (its entity, e.g. a customer id), which each row keeps
        wherever the shuffle puts it, and whatever noise its features get; None
        leaves every row unkeyed.
    categorical
        Names of the categorical features: their cells are sent as strings.

    Examples
    --------
    >>> x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    >>> rows = replay(x, [0, 1, 2], ["a", "b"], count=4, shuffle=False,
    ...               drift=DriftPlan(after=3, mean=100.0, std=0.0, features=("b",)))
    >>> for r in rows:
    ...     print(r.seq, r.features, r.label)
    0 {'a': 1.0, 'b': 10.0} 0
    1 {'a': 2.0, 'b': 20.0} 1
    2 {'a': 3.0, 'b': 30.0} 2
    3 {'a': 1.0, 'b': 110.0} 0

    A row's key goes with it:

    >>> rows = replay(x, [0, 1, 2], ["a", "b"], count=3, seed=1, keys=["u", "v", "w"])
    >>> sorted((r.key, r.label) for r in rows)
    [('u', 0), ('v', 1), ('w', 2)]

    A categorical feature is sent as text, a missing value as None; drifted, a
    categorical feature takes its rarest category:

    >>> x = np.array([["a", 1.0], ["a", np.nan], ["b", 3.0]], dtype=object)
    >>> rows = replay(x, None, ["c", "n"], count=4, shuffle=False, categorical=["c"],
    ...               drift=DriftPlan(after=3, mean=1.0, std=0.0))
    >>> [r.features for r in rows]
    [{'c': 'a', 'n': 1.0}, {'c': 'a', 'n': None}, {'c': 'b', 'n': 3.0}, {'c': 'b', 'n': 2.0}]
    """
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    names = list(feature_names)
    if features.ndim != 2 or features.shape[1] != len(names) or len(features) == 0:
        raise ValueError(
            f"features must be a non-empty (rows, {len(names)}) matrix, got shape {features.shape}"
        )
    if labels is not None and len(labels) != len(features):
        raise ValueError(f"labels has {len(labels)} entries for {len(features)} rows")
    if keys is not None and len(keys) != len(features):
        raise ValueError(f"keys has {len(keys)} entries for {len(features)} rows")
    noised = names if drift.features is None else list(drift.features)
    unknown = sorted(set(noised) - set(names))
    if unknown:
        raise ValueError(f"drift_features {unknown} are not columns of the data set {names}")
    unknown = sorted(set(categorical) - set(names))
    if unknown:
        raise ValueError(f"categorical {unknown} are not columns of the data set {names}")
    kinds = [name in categorical for name in names]
    numeric = [i for i, is_category in enumerate(kinds) if not is_category]
    numbers = np.asarray(features[:, numeric], dtype=np.float64)
    cells = [_cells(features[:, i]) if is_category else None for i, is_category in enumerate(kinds)]
    noise_mask = np.array([names[i] in noised for i in numeric], dtype=bool)
    rarest = {
        i: _rarest(column)
        for i, column in enumerate(cells)
        if column is not None and names[i] in noised
    }
    rng = np.random.default_rng(seed)

    seq = 0
    while count is None or seq < count:
        order = rng.permutation(len(features)) if shuffle else np.arange(len(features))
        for index in order:
            if count is not None and seq >= count:
                return
            values = numbers[index].copy()
            drifted = drift.after is not None and seq >= drift.after
            if drifted and noise_mask.any():
                values[noise_mask] += rng.normal(drift.mean, drift.std, int(noise_mask.sum()))
            row = _row(names, kinds, values.tolist(), cells, index, rarest if drifted else {})
            label = None if labels is None else labels[index]
            key = None if keys is None else keys[index]
            yield Row(seq, row, label, key)
            seq += 1


def replayed_time(start: datetime, interval: float, seq: int) -> datetime:
    """The event time of the row at replay position ``seq``: ``interval`` seconds apart.

    >>> from datetime import UTC
    >>> replayed_time(datetime(2025, 1, 1, tzinfo=UTC), 90.0, 3).isoformat()
    '2025-01-01T00:04:30+00:00'
    """
    return start + timedelta(seconds=seq * interval)


def _cells(column: np.ndarray) -> list[str | None]:
    """A categorical column's cells as text, None where missing."""
    return [None if _is_missing(cell) else str(cell) for cell in column.tolist()]


def _is_missing(cell: Any) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell))


def _rarest(cells: list[str | None]) -> str | None:
    """The least common category (ties: the first in sorted order); None if there is none."""
    counts = Counter(cell for cell in cells if cell is not None)
    return min(sorted(counts), key=counts.__getitem__, default=None)


def _row(
    names: list[str],
    kinds: list[bool],
    numbers: list[float],
    cells: list[list[str | None] | None],
    index: int,
    rarest: dict[int, str | None],
) -> dict[str, float | str | None]:
    out: dict[str, float | str | None] = {}
    at = 0
    for i, name in enumerate(names):
        if kinds[i]:
            column = cells[i]
            assert column is not None
            cell = column[index]
            out[name] = rarest[i] if i in rarest and cell is not None else cell
        else:
            value = numbers[at]
            at += 1
            out[name] = None if math.isnan(value) else value
    return out


class Pacer:
    """Spaces events at ``rate`` per second on a fixed schedule (0 means no waiting).

    Sleeping to a schedule rather than a fixed gap keeps the average rate even
    when sending takes time.
    """

    def __init__(self, rate: float, clock=None, sleep=None) -> None:
        import time

        if not rate >= 0:
            raise ValueError(f"rate must be >= 0 rows per second, got {rate}")
        self._interval = 0.0 if rate == 0 else 1.0 / rate
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._start: float | None = None
        self._sent = 0

    def wait(self) -> None:
        """Block until the next event is due."""
        if self._interval == 0.0:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        due = self._start + self._sent * self._interval
        if due > now:
            self._sleep(due - now)
        self._sent += 1
