"""Archive write and read speed, and disk bytes per row: segments against per-window files.

Run: ``.venv/bin/python -m tests.archive_speed [--rows 100000]``. Iris rows (clean,
then with the tutorial's noise from half way), tumbling windows of 50 and 500, written
in polls of 2000 rows as the consumer does (fsync on: per-window files fsync each file
and the directory per poll; segments fsync each touched segment per poll), then read
back as retraining reads them (``read_labeled_rows`` over every window).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from consumer.archive import PendingWindow, WindowArchive, archived_windows, read_labeled_rows
from data.durable import fsync_dir
from tests.dags.scenario import T0, drift_event
from tests.legacy_archive import write_window_files

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
POLL = 2000


def iris_rows(rows: int) -> tuple[np.ndarray, np.ndarray]:
    iris = load_iris()
    rng = np.random.default_rng(7)
    picks = rng.integers(0, len(iris.target), size=rows)
    values = iris.data[picks].astype(np.float64)
    values[rows // 2 :] += rng.normal(3.0, 1.0, size=(rows - rows // 2, 4))
    return values, iris.target[picks]


def write(root: Path, layout: str, values: np.ndarray, labels: np.ndarray, window: int) -> float:
    archive = WindowArchive(root, fsync=True)
    start = time.perf_counter()
    for poll in range(0, len(values), POLL):
        windows = []
        for first in range(poll, min(poll + POLL, len(values)), window):
            offsets = list(range(first, first + window))
            times = [T0 + timedelta(seconds=o) for o in offsets]
            event = drift_event("rows", first, first + window - 1, features=tuple(FEATURES))
            chunk, tags = values[first : first + window], labels[first : first + window].tolist()
            if layout == "segments":
                windows.append(
                    PendingWindow(event, FEATURES, offsets, times, chunk, tags, "target")
                )
            else:
                write_window_files(
                    root, event, FEATURES, offsets, times, chunk, tags, "target", True
                )
        if layout == "segments":
            archive.append_many(windows)
            archive.sync()
        else:
            fsync_dir(archive.directory_for("rows", "iris", 0))
    archive.close()
    return time.perf_counter() - start


def disk(root: Path) -> tuple[int, int]:
    """Bytes written (file sizes) and bytes allocated (blocks) under ``root``."""
    size = blocks = 0
    for directory, _, names in os.walk(root):
        for name in names:
            stat = os.stat(Path(directory) / name)
            size += stat.st_size
            blocks += stat.st_blocks * 512
    return size, blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    values, labels = iris_rows(args.rows)
    print(
        f"{'window':>6} {'layout':<17} {'write rows/s':>12} {'read rows/s':>11} "
        f"{'bytes/row':>9} {'on disk/row':>11} {'files':>6}"
    )
    for window in (50, 500):
        for layout in ("per-window files", "segments"):
            root = Path(tempfile.mkdtemp(prefix="archive-speed-", dir="var"))
            try:
                wrote = write(root, layout, values, labels, window)
                start = time.perf_counter()
                rows = read_labeled_rows(
                    archived_windows(root, "rows", "iris", 0), FEATURES, "target"
                )
                read = time.perf_counter() - start
                assert len(rows) == args.rows and rows.features.tobytes() == values.tobytes()
                size, blocks = disk(root / "archive")
                files = sum(len(n) for _, _, n in os.walk(root / "archive"))
                print(
                    f"{window:>6} {layout:<17} {args.rows / wrote:>12,.0f} "
                    f"{args.rows / read:>11,.0f} {size / args.rows:>9.1f} "
                    f"{blocks / args.rows:>11.1f} {files:>6}"
                )
            finally:
                shutil.rmtree(root)


if __name__ == "__main__":
    main()
