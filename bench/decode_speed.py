"""Decoding speed: a poll's ``decode_all`` and ``values`` per row, before and after a change.

Run: ``.venv/bin/python -m bench.decode_speed [--base COMMIT] [--repeats 15]``. The
decoder of ``--base`` (``consumer/decoding.py`` as git holds it there) and the one in the
working tree decode the same polls of 2,000 rows in alternation, each timed in CPU
seconds, so that a shared machine's load falls on both alike; the ratio of their medians
is the figure. Two streams: Iris as the benchmark sends it (4 numeric features, labels,
the second half noised; ``bench.workload``), and the same rows with a field the
decoder does not know (each row takes the pydantic path), and the Palmer penguins (two
categorical features with nulls, four numeric ones with nulls, string labels), replayed
in order.
Before timing, both decoders must give the same rows and values.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from bench.workload import encode_rows
from data.shipped import PENGUINS_CATEGORICAL, PENGUINS_LABEL, write_penguins_csv
from producer.messages import RowMessage

POLL = 2000
ROWS = 4 * POLL
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def module_at(commit: str) -> ModuleType:
    """``consumer/decoding.py`` as it was at ``commit``, imported as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{commit}:consumer/decoding.py"], check=True, capture_output=True
    ).stdout
    module = ModuleType("decoding_before")
    # Registered before it runs: dataclasses and msgspec look their module up by name.
    sys.modules[module.__name__] = module
    exec(compile(source, f"{commit}:consumer/decoding.py", "exec"), module.__dict__)
    return module


def penguin_rows(rows: int) -> tuple[list[bytes], list[str], list[str], dict[str, list[str]]]:
    """The penguins as RowMessages (nulls where the CSV lacks a value), repeated to ``rows``."""
    with tempfile.TemporaryDirectory() as scratch:
        frame = pd.read_csv(write_penguins_csv(Path(scratch) / "penguins.csv"))
    names = [c for c in frame.columns if c != PENGUINS_LABEL]
    categories = {c: sorted(frame[c].dropna().unique().tolist()) for c in PENGUINS_CATEGORICAL}
    records = frame.to_dict("records")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    values = []
    for seq in range(rows):
        record = records[seq % len(records)]
        features = {
            n: None if isinstance(record[n], float) and math.isnan(record[n]) else record[n]
            for n in names
        }
        values.append(
            RowMessage(
                stream="penguins",
                seq=seq,
                event_time=start + seq * timedelta(milliseconds=20),
                features=features,
                label=record[PENGUINS_LABEL],
            ).to_bytes()
        )
    classes = sorted(frame[PENGUINS_LABEL].unique().tolist())
    return values, names, classes, categories


def decode_polls(decoder: Any, polls: list[list[bytes]]) -> None:
    """What the consumer does with a poll: decode it, then each row's values."""
    values = decoder.values
    for poll in polls:
        [values(row) for row in decoder.decode_all(poll)]


def decoded(decoder: Any, polls: list[list[bytes]]) -> list[tuple[Any, ...]]:
    """Each row as the consumer uses it, its event time to the microsecond and offset."""
    return [
        (row.stream, row.seq, row.event_time.isoformat(), row.label, decoder.values(row))
        for poll in polls
        for row in decoder.decode_all(poll)
    ]


def cpu_seconds(run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def compare(name: str, before: ModuleType, after: ModuleType, repeats: int, **kw: Any) -> None:
    values: list[bytes] = kw.pop("values")
    polls = [values[i : i + POLL] for i in range(0, len(values), POLL)]
    old, new = before.RowDecoder(**kw), after.RowDecoder(**kw)
    assert decoded(old, polls) == decoded(new, polls), f"{name}: the decoders differ"
    times: dict[str, list[float]] = {"before": [], "after": []}
    # As the consumer runs: what lives at start-up frozen out of the collector's scans.
    gc.collect()
    gc.freeze()
    for _ in range(repeats):  # alternating, so that the machine's load falls on both
        times["before"].append(cpu_seconds(lambda: decode_polls(old, polls)))
        times["after"].append(cpu_seconds(lambda: decode_polls(new, polls)))
    per_row = {k: statistics.median(v) / len(values) * 1e6 for k, v in times.items()}
    gc.unfreeze()
    print(
        f"{name:10s} before {per_row['before']:5.2f} µs/row  after {per_row['after']:5.2f} µs/row"
        f"  after/before {per_row['after'] / per_row['before']:.3f}"
        f"  (CPU, medians of {repeats}, polls of {POLL}, {len(values)} rows)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="df79b56", help="commit of the decoder before")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    before, after = module_at(args.base), importlib.import_module("consumer.decoding")
    iris = encode_rows(Path("data/iris.csv"), ROWS).values
    compare("iris", before, after, args.repeats, values=iris, feature_names=IRIS, classes=[0, 1, 2])
    # Every row unusual (a field the decoder does not know): pydantic's path throughout.
    noted = [value.replace(b',"label"', b',"note":1,"label"') for value in iris]
    compare(
        "iris+note",
        before,
        after,
        args.repeats,
        values=noted,
        feature_names=IRIS,
        classes=[0, 1, 2],
    )
    values, names, classes, categories = penguin_rows(ROWS)
    compare(
        "penguins",
        before,
        after,
        args.repeats,
        values=values,
        feature_names=names,
        classes=classes,
        categories=categories,
    )


if __name__ == "__main__":
    main()
