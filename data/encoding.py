"""Categorical features as codes: the one float64 matrix the loop's parts share.

A categorical feature's value is a string; in a feature matrix (a window, the
reference data, the archive) it is the float *code* of that string, its position in
the feature's category list, and a missing value of any feature is NaN. A version's
category lists are the sorted categories of its reference data
(:func:`category_lists`); a string not in the list has a code at or past its end
(the consumer extends its own copy, see `consumer.decoding.RowDecoder`).

Examples
--------
>>> cells = {"island": ["Dream", None, "Biscoe", "Dream"]}
>>> categories = category_lists(cells, ["island"])
>>> categories
{'island': ['Biscoe', 'Dream']}
>>> codes = encode_column(cells["island"] + ["Torgersen"], categories["island"])
>>> codes.tolist()
[1.0, nan, 0.0, 1.0, 2.0]
>>> decode_column(codes[:4], categories["island"])
['Dream', None, 'Biscoe', 'Dream']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def category_lists(
    columns: Mapping[str, Sequence[Any]], categorical: Sequence[str]
) -> dict[str, list[str]]:
    """Each categorical column's distinct strings, sorted; missing cells (None, NaN) left out.

    Parameters
    ----------
    columns : mapping of str to sequence
        Column name to cells (a DataFrame works).
    categorical : sequence of str
        The categorical columns, in any order.

    Returns
    -------
    dict of str to list of str
        In the order of ``categorical``.
    """
    return {
        name: sorted({str(cell) for cell in columns[name] if not _missing(cell)})
        for name in categorical
    }


def encode_column(cells: Sequence[Any], categories: Sequence[str]) -> npt.NDArray[np.float64]:
    """Codes of one categorical column's cells: position in ``categories``, NaN if missing.

    A string not in ``categories`` gets ``len(categories)``: unseen, one code for all
    (a model's one-hot encoder ignores it).
    """
    index = {name: float(i) for i, name in enumerate(categories)}
    unseen = float(len(categories))
    return np.array(
        [math.nan if _missing(cell) else index.get(str(cell), unseen) for cell in cells],
        dtype=np.float64,
    )


def decode_column(codes: npt.ArrayLike, strings: Sequence[str]) -> list[str | None]:
    """The strings of codes (``strings[code]``), None for NaN.

    Raises
    ------
    ValueError
        If a code is not an index into ``strings``.
    """
    out: list[str | None] = []
    for code in np.asarray(codes, dtype=np.float64).tolist():
        if math.isnan(code):
            out.append(None)
            continue
        if not (code == int(code) and 0 <= code < len(strings)):
            raise ValueError(f"code {code} is not one of the {len(strings)} categories' codes")
        out.append(strings[int(code)])
    return out


def encode_table(
    columns: Mapping[str, Sequence[Any]],
    feature_names: Sequence[str],
    categories: Mapping[str, Sequence[str]],
) -> npt.NDArray[np.float64]:
    """The float64 matrix of a table: numbers as they are, categories as codes, NaN if missing.

    Parameters
    ----------
    columns : mapping of str to sequence
        Column name to cells (a DataFrame works): numbers (NaN missing) for a numeric
        feature, strings (None missing) for a categorical one.
    feature_names : sequence of str
        The matrix's columns, in order.
    categories : mapping of str to sequence of str
        The categorical features' category lists; every other feature is numeric.

    Returns
    -------
    numpy.ndarray
        Shape ``(rows, len(feature_names))``.

    Raises
    ------
    ValueError
        If a numeric feature holds something that is not a number.
    """
    out = []
    for name in feature_names:
        cells = columns[name]
        if name in categories:
            out.append(encode_column(list(cells), categories[name]))
            continue
        try:
            out.append(
                np.array([math.nan if _missing(c) else c for c in cells], dtype=np.float64).reshape(
                    -1
                )
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"numeric feature {name!r} holds a value that is no number") from err
    if not out:
        return np.empty((0, 0))
    return np.ascontiguousarray(np.column_stack(out), dtype=np.float64)


def _missing(cell: Any) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell))
