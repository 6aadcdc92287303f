"""The data sets driftloop ships, written as CSV from installed packages (no download)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pandas as pd

from data.dataset import write_iris_csv
from data.durable import write_atomic

logger = logging.getLogger(__name__)

PENGUINS_LABEL = "species"
"""The label column of the penguins CSV."""

PENGUINS_CATEGORICAL: tuple[str, ...] = ("island", "sex")
"""The penguins CSV's categorical feature columns."""

PENGUINS_DROPPED: tuple[str, ...] = ("year",)
"""Columns of the package's CSV left out: the study year says when a bird was measured,
not what it is."""


def write_penguins_csv(path: str | os.PathLike[str]) -> Path:
    """Write the Palmer penguins (the ``palmerpenguins`` package's CSV) for driftloop.

    344 penguins of three species (the label, ``species``), four numeric measurements
    and two categorical features (``island``, ``sex``); cells the study could not
    measure are ``NA`` (missing values, kept as they are). The study year is left out
    (:data:`PENGUINS_DROPPED`). Written whole or not at all.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; parent directories are created.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    source = resources.files("palmerpenguins") / "data" / "penguins.csv"
    with source.open("rb") as handle:
        # Every cell as text: NA stays NA and numbers keep their spelling.
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    frame = frame.drop(columns=list(PENGUINS_DROPPED))
    write_atomic(path, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    logger.info("wrote penguins path=%s rows=%d", path, len(frame))
    return path


SHIPPED: dict[str, Callable[[str | os.PathLike[str]], Path]] = {
    "iris": write_iris_csv,
    "penguins": write_penguins_csv,
}
"""Each shipped data set's name and the function that writes it as CSV."""
