"""What the benchmark prints: the machine, the client's CRC path and the table of rates."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.timing import Measurement
from consumer.settings import ConsumerSettings

TARGET_RATIO = 0.80
"""With every default setting, the consumer should read at least this fraction of the
plain reader's rate, at every window size measured (issue 10)."""

TARGET_CPU_RATIO = 0.60
"""... and at least this fraction of the plain reader's rows per CPU-second."""

TARGET_CONFLUENT_OVER_KAFKA_PYTHON = 3.0
"""On ``--client confluent`` the consumer should read at least this multiple of the
plain kafka-python reader's rate (issue 10) ..."""

TARGET_CONFLUENT_RATIO = 0.5
"""... and at least this fraction of the plain confluent-kafka reader's."""

DEFAULT_BACKEND = ConsumerSettings.model_fields["ks_backend"].default
"""The consumer's default KS backend (read from its settings, which import no SciPy)."""

ARCHIVE_THREAD = ("archive", "commit")
"""Stages that run on the archive thread, overlapping the loop's."""


def percentile_ms(seconds: list[float], q: float) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds (NaN when empty).

    >>> percentile_ms([0.001, 0.002, 0.003], 50)
    2.0
    """
    if not seconds:
        return float("nan")
    return float(np.percentile(np.asarray(seconds), q) * 1000.0)


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def crc32c_status() -> str:
    """Whether the ``crc32c`` package is installed and kafka-python's CRC checks use it.

    kafka-python's ``kafka.record.util`` imports ``crc32c.crc32c`` when it can and
    binds it as the default argument of ``calc_crc32c``, which checks every
    record batch; without it the checks run in pure Python.
    """
    try:
        import crc32c
    except ImportError:
        return "crc32c not installed: kafka-python checks record batch CRCs in pure Python"
    from kafka.record import util

    defaults: tuple[Any, ...] = getattr(util.calc_crc32c, "__defaults__", None) or ()
    in_use = bool(defaults) and defaults[0] is crc32c.crc32c
    hardware = getattr(crc32c, "hardware_based", None)
    kind = "hardware" if hardware is True else "software" if hardware is False else "unknown"
    return f"crc32c {importlib.metadata.version('crc32c')} installed ({kind} implementation); " + (
        "kafka-python's calc_crc32c uses it"
        if in_use
        else "but kafka-python's calc_crc32c does NOT use it"
    )


def machine_lines(load_at_start: str) -> list[str]:
    """One line each: CPU and load, Python and client versions, CRC path."""
    return [
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}); load average (1, 5, 15 min) "
        f"{load_at_start} at the start, {load_average()} at the end",
        f"python {platform.python_version()}, kafka-python "
        f"{importlib.metadata.version('kafka-python')}, confluent-kafka "
        f"{importlib.metadata.version('confluent-kafka')}, scikit-learn "
        f"{importlib.metadata.version('scikit-learn')}",
        crc32c_status(),
    ]


@dataclass
class Series:
    """The repeated measurements of one reader configuration, with their paired baselines.

    Attributes
    ----------
    label : str
        ``plain reader`` or ``consumer``.
    client : str
        The Kafka client: ``kafka-python`` or ``confluent``.
    window : int or None
        Window size; None for the plain reader.
    backend : str or None
        KS backend; None for the plain reader.
    archive : bool
        False for the consumer with its archive's writes left out (bench only).
    fetch_process : bool
        False for the kafka-python consumer fetching in its own process
        (``--no-fetch-process``); True otherwise (confluent-kafka ignores it).
    runs : list of Measurement
        One per round.
    baselines : list of Measurement
        The same client's plain reader's measurement of the same round, one per run.
    kafka_python_baselines : list of Measurement
        The plain kafka-python reader's measurement of the same round, one per run.
    """

    label: str
    client: str = "kafka-python"
    window: int | None = None
    backend: str | None = None
    archive: bool = True
    fetch_process: bool = True
    runs: list[Measurement] = field(default_factory=list)
    baselines: list[Measurement] = field(default_factory=list)
    kafka_python_baselines: list[Measurement] = field(default_factory=list)

    @property
    def median_rate(self) -> float:
        """Median rows per second over the runs."""
        return statistics.median(m.rate for m in self.runs)

    @property
    def median_cpu_rate(self) -> float:
        """Median rows per CPU-second (all threads) over the runs."""
        return statistics.median(m.cpu_rate for m in self.runs)

    @property
    def median_ratio(self) -> float:
        """Median over the rounds of this run's rate over the plain reader's in that round."""
        return statistics.median(
            m.rate / b.rate for m, b in zip(self.runs, self.baselines, strict=True)
        )

    @property
    def median_ratio_to_kafka_python(self) -> float:
        """As :attr:`median_ratio`, against the plain kafka-python reader of each round."""
        return statistics.median(
            m.rate / b.rate for m, b in zip(self.runs, self.kafka_python_baselines, strict=True)
        )

    @property
    def median_cpu_ratio(self) -> float:
        """As :attr:`median_ratio`, with rows per CPU-second instead of rows per second."""
        return statistics.median(
            m.cpu_rate / b.cpu_rate for m, b in zip(self.runs, self.baselines, strict=True)
        )

    @property
    def detect_seconds(self) -> list[float]:
        """Every window's detection time over all runs."""
        return [s for m in self.runs for s in m.detect_seconds]


def table(series: list[Series]) -> str:
    """A Markdown table of the median rates, ratios and detection times.

    Rates and ratios are medians over the rounds; a ratio compares a run with the
    plain reader of the same client (and, in its own column, the plain kafka-python
    reader) in the same round. Detection times pool every window of every round.
    """
    header = (
        "| reader | client | window | KS backend | rows/s | rows/CPU-s | x plain reader "
        "| x plain reader, CPU time | x plain kafka-python reader "
        "| detect ms/window mean | detect ms/window p95 | detect share of time | runs |"
    )
    lines = [header, "|" + "---|" * 13]
    for s in series:
        detect = s.detect_seconds
        if detect:
            mean = f"{sum(detect) / len(detect) * 1000:.2f}"
            p95 = f"{percentile_ms(detect, 95):.2f}"
            share = f"{statistics.median(m.detect_share for m in s.runs):.0%}"
        else:
            mean = p95 = share = "-"
        lines.append(
            f"| {s.label} | {s.client} | {s.window or '-'} | {s.backend or '-'} "
            f"| {s.median_rate:,.0f} | {s.median_cpu_rate:,.0f} | {s.median_ratio:.2f} "
            f"| {s.median_cpu_ratio:.2f} "
            f"| {s.median_ratio_to_kafka_python:.2f} | {mean} | {p95} | {share} | {len(s.runs)} |"
        )
    return "\n".join(lines)


def stage_table(series: list[Series]) -> str:
    """A Markdown table of where each consumer's time goes, in microseconds per row.

    Each stage is the consumer's own clock (`consumer.service.Stats.stage_seconds`),
    median over the rounds. ``loop`` adds up the stages of the loop's thread; the
    archive thread's stages (``archive``, ``commit``) overlap them; both are wall
    time, waits for the disk, the broker and the GIL included. ``wall`` and ``CPU``
    are the whole run's time per row, all threads in CPU; ``loop CPU`` and ``archive
    CPU`` the CPU of those two threads, ``fetcher CPU`` the fetching process's
    (`broker.fetcher`; in ``CPU``), ``clients CPU`` the rest (the Kafka clients'
    own threads); ``gc`` the cyclic garbage collector's passes, on whichever thread
    (within the stages, not beside them). The plain reader's row has its ``poll`` and
    its ``json.loads`` (as ``decode``), its wall, CPU and gc.
    """
    # The consumer's clock names every stage, in `consumer.service.STAGES`' order; the
    # plain reader's only its own two.
    stages = max((list(m.stage_seconds) for s in series for m in s.runs), key=len, default=[])
    header = (
        "| reader | client | window | KS backend | "
        + " | ".join(stages)
        + " | loop thread | archive thread | wall | CPU | loop CPU | archive CPU | fetcher CPU"
        + " | clients CPU"
        + " | gc |"
    )
    lines = [header, "|" + "---|" * (len(stages) + 13)]
    for s in series:
        runs = [m for m in s.runs if m.stage_seconds]
        if not runs:
            continue

        def median_us(stages: tuple[str, ...], runs: list[Measurement] = runs) -> str:
            if any(x not in m.stage_seconds for m in runs for x in stages):
                return "-"
            return (
                f"{statistics.median(sum(m.stage_us_per_row(x) for x in stages) for m in runs):.2f}"
            )

        loop = tuple(x for x in stages if x not in ARCHIVE_THREAD and x in runs[0].stage_seconds)
        wall = statistics.median(m.seconds / m.rows * 1e6 for m in runs)
        cpu = statistics.median(m.cpu_seconds / m.rows * 1e6 for m in runs)
        collector = statistics.median(m.gc_seconds / m.rows * 1e6 for m in runs)
        lines.append(
            f"| {s.label} | {s.client} | {s.window or '-'} | {s.backend or '-'} | "
            + " | ".join(median_us((x,)) for x in stages)
            + f" | {median_us(loop)} | {median_us(ARCHIVE_THREAD)} | {wall:.2f} | {cpu:.2f} | "
            + " | ".join(_thread_cpu_us(runs))
            + f" | {collector:.2f} |"
        )
    return "\n".join(lines)


def _thread_cpu_us(runs: list[Measurement]) -> list[str]:
    """Median CPU µs per row of the loop's thread, the archive thread, the fetching
    process ("-" without one) and the rest."""
    if not all(m.thread_cpu_seconds for m in runs):
        return ["-", "-", "-", "-"]

    def median(part: Callable[[Measurement], float]) -> str:
        return f"{statistics.median(part(m) / m.rows * 1e6 for m in runs):.2f}"

    fetcher = (
        median(lambda m: m.thread_cpu_seconds["fetcher"])
        if all("fetcher" in m.thread_cpu_seconds for m in runs)
        else "-"
    )
    return [
        median(lambda m: m.thread_cpu_seconds["loop"]),
        median(lambda m: m.thread_cpu_seconds["archive"]),
        fetcher,
        median(lambda m: m.cpu_seconds - sum(m.thread_cpu_seconds.values())),
    ]


def verdict(series: list[Series], floors: Sequence[Series] = ()) -> list[str]:
    """One line per consumer run with the default backend, against the targets; one per
    floor (`bench.floor`), against the confluent target it bounds."""
    lines = []
    for s in series:
        if s.backend != DEFAULT_BACKEND or not s.archive or not s.fetch_process:
            continue
        ratio, cpu = s.median_ratio, s.median_cpu_ratio
        if s.client == "confluent":
            over = s.median_ratio_to_kafka_python
            met = over >= TARGET_CONFLUENT_OVER_KAFKA_PYTHON and ratio >= TARGET_CONFLUENT_RATIO
            lines.append(
                f"target: consumer window {s.window} {s.backend} on confluent: {over:.2f} x "
                f"plain kafka-python reader, {ratio:.2f} x plain confluent reader "
                f"{'meets' if met else 'misses'} the {TARGET_CONFLUENT_OVER_KAFKA_PYTHON:.1f} "
                f"and {TARGET_CONFLUENT_RATIO:.2f} targets"
            )
            continue
        mark = "meets" if ratio >= TARGET_RATIO and cpu >= TARGET_CPU_RATIO else "misses"
        lines.append(
            f"target: consumer window {s.window} {s.backend}: {ratio:.2f} x plain reader "
            f"({cpu:.2f} in CPU time) {mark} the {TARGET_RATIO:.2f} ({TARGET_CPU_RATIO:.2f} "
            "in CPU time) target"
        )
    for s in floors:
        over = s.median_ratio_to_kafka_python
        lines.append(
            f"floor window {s.window} on confluent (decode, predictions, KS only): {over:.2f} x "
            f"plain kafka-python reader, {s.median_ratio:.2f} x plain confluent reader: a "
            "consumer on confluent reaches at most that "
            f"({'above' if over >= TARGET_CONFLUENT_OVER_KAFKA_PYTHON else 'below'} the "
            f"{TARGET_CONFLUENT_OVER_KAFKA_PYTHON:.1f} target)"
        )
    return lines
