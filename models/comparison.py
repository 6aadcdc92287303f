"""Comparing a challenger with the champion on the same held-out rows, by a paired test."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test that the challenger is right more often than the champion.

    Attributes
    ----------
    challenger_only : int
        Held-out rows only the challenger got right.
    champion_only : int
        Held-out rows only the champion got right.
    rows : int
        Held-out rows compared.
    p_value : float
        One-sided exact p-value: the chance of at least ``challenger_only`` wins among
        the ``challenger_only + champion_only`` discordant rows if both models were
        equally good (a fair coin per discordant row). 1.0 with no discordant row.
    """

    challenger_only: int
    champion_only: int
    rows: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able data, with the test's name."""
        return {"test": "mcnemar-exact", **asdict(self)}


def mcnemar_exact(
    champion_correct: npt.ArrayLike, challenger_correct: npt.ArrayLike
) -> McNemarResult:
    """McNemar's exact test on paired per-row correctness, one-sided for the challenger.

    Parameters
    ----------
    champion_correct, challenger_correct : array_like of bool
        Per held-out row, whether each model predicted its label; same rows, same order.

    Returns
    -------
    McNemarResult

    Raises
    ------
    ValueError
        If the two arrays differ in length.

    Examples
    --------
    >>> r = mcnemar_exact([True] * 10 + [False] * 10, [True] * 20)
    >>> r.challenger_only, r.champion_only, round(r.p_value, 6)
    (10, 0, 0.000977)
    >>> mcnemar_exact([True, False], [False, True]).p_value
    0.75
    >>> mcnemar_exact([True], [True]).p_value
    1.0
    """
    champion = np.asarray(champion_correct, dtype=bool)
    challenger = np.asarray(challenger_correct, dtype=bool)
    if champion.shape != challenger.shape or champion.ndim != 1:
        raise ValueError(
            f"champion_correct and challenger_correct must be 1-D of one length, got "
            f"{champion.shape} and {challenger.shape}"
        )
    wins = int((challenger & ~champion).sum())
    losses = int((champion & ~challenger).sum())
    discordant = wins + losses
    p = 1.0 if discordant == 0 else float(binomtest(wins, discordant, 0.5, "greater").pvalue)
    return McNemarResult(wins, losses, int(champion.size), p)


def unseen_rows(
    train: npt.NDArray[Any],
    train_labels: npt.ArrayLike,
    rows: npt.NDArray[Any],
    labels: npt.ArrayLike,
) -> npt.NDArray[np.bool_]:
    """Which of ``rows`` (with their labels) are not exact copies of a training row.

    A held-out row that repeats a training row (same features, same label) would test
    the challenger on what it learned: such rows are left out of the comparison.

    >>> train = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> held = np.array([[1.0, 2.0], [1.0, 2.0], [5.0, 6.0]])
    >>> unseen_rows(train, [0, 1], held, [0, 1, 0]).tolist()
    [False, True, True]
    >>> unseen_rows(np.array([[np.nan]]), [0], np.array([[np.nan]]), [0]).tolist()
    [False]
    """
    seen = {
        (_key(row), str(label))
        for row, label in zip(np.asarray(train), np.asarray(train_labels), strict=True)
    }
    return np.array(
        [
            (_key(row), str(label)) not in seen
            for row, label in zip(np.asarray(rows), np.asarray(labels), strict=True)
        ],
        dtype=bool,
    )


def _key(row: npt.NDArray[Any]) -> tuple[float | None, ...]:
    """A row as a set key; a missing value (NaN, never equal to itself) as None."""
    return tuple(None if value != value else value for value in map(float, row))
