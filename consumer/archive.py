"""The window archive: every judged window's rows and verdict, for retraining and reports."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from consumer.events import DriftEvent

_CSV_SPECIALS = (",", '"', "\r", "\n")
"""Characters that make the csv module quote a field (the delimiter, the quote, line breaks)."""


def _written_as_is(fields: Iterable[str]) -> bool:
    """Whether ``fields`` are all strings that the csv module writes unquoted and unchanged."""
    try:
        text = "".join(fields)
    except TypeError:
        return False
    return not any(char in text for char in _CSV_SPECIALS)


class WindowArchive:
    """Writes each window once, atomically, under ``<root>/archive/<topic>/<partition>/``.

    A window's rows go to ``<first>-<last>.csv`` (offset, event time, features,
    label) and its verdict to ``<first>-<last>.json`` (the DriftEvent, drifted or
    not). A window judged again after a restart has the same name and the same
    content, so rewriting it changes nothing.
    """

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root) / "archive"
        self.fsync = fsync

    def path_for(self, topic: str, partition: int, first_offset: int, last_offset: int) -> Path:
        """Where the rows of a window are archived (the ``.csv``)."""
        return self.root / topic / str(partition) / f"{first_offset:012d}-{last_offset:012d}.csv"

    def write_rows(
        self,
        path: Path,
        feature_names: Sequence[str],
        offsets: Sequence[int],
        event_times: Sequence[str],
        values: Sequence[Sequence[float]],
        labels: Sequence[int | str | None],
        label_column: str,
    ) -> None:
        """Write a window's rows to ``path`` (from :meth:`path_for`)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["offset", "event_time", *feature_names, label_column])
        cells = ["" if label is None else label for label in labels]
        rows = zip(offsets, event_times, values, cells, strict=True)
        if _written_as_is(event_times) and _written_as_is(c for c in cells if isinstance(c, str)):
            # No field needs quoting (offsets, float reprs and int labels never do), so
            # the csv module would write each as is: joining the lines gives the same
            # bytes for half the cost.
            buffer.writelines(
                [
                    ",".join([f"{offset}", f"{when}", *map(repr, row), f"{cell}"]) + "\n"
                    for offset, when, row, cell in rows
                ]
            )
        else:
            for offset, when, row, cell in rows:
                writer.writerow([offset, when, *map(repr, row), cell])
        self._write_atomic(path, buffer.getvalue().encode())

    def write_verdict(self, path: Path, event: DriftEvent) -> None:
        """Write the window's DriftEvent next to its rows."""
        self._write_atomic(path.with_suffix(".json"), event.to_bytes())

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as out:
            out.write(data)
            if self.fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
        if self.fsync:
            dir_fd = os.open(path.parent, os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
