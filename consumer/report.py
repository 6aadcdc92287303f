"""Drift timeline: the consumer's archived window verdicts drawn as a PNG and an HTML page.

The consumer archives one :class:`~consumer.events.DriftEvent` per judged window,
drifted or not, under ``<artifact_root>/archive/<topic>/<partition>/``.
:func:`load_timeline` reads them back in detection order, :func:`render` draws them
and :func:`main` is ``python -m consumer report``. Nothing here talks to Kafka.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from pydantic import ValidationError

from consumer.events import DriftEvent, WindowRef
from data.durable import write_atomic
from models.registry import Registry, RegistryError, RegistrySettings, VersionMetadata

logger = logging.getLogger(__name__)

PNG_NAME = "drift-timeline.png"
"""File name of the rendered picture inside the output directory."""
HTML_NAME = "drift-timeline.html"
"""File name of the self-contained page inside the output directory."""
WIDTH_PX, HEIGHT_PX, DPI = 1400, 800, 100
"""Size of the picture: 14 x 8 inches at 100 dpi."""
DEFAULT_TITLE = "driftloop: drift timeline"
"""Title of the picture and the page unless one is given."""
SMALLEST_P = float(np.nextafter(0.0, 1.0))
"""The smallest positive float: the lowest floor a p-value of 0 can be drawn at."""
MAX_FEATURE_LINES = 10
"""Above this many features, they are drawn in grey with their per-window minimum on top."""
MAX_TICKS = 12
"""At most this many labelled ticks on the window axis."""

_DRIFT_COLOR = "#d62728"
_SWITCH_COLOR = "#5b3a99"
_ACCURACY_COLOR = "#1a7f37"
_DECADE_STRIDES = (1, 2, 3, 5, 10, 20, 25, 50, 100)


class EmptyTimelineError(ValueError):
    """There is no window verdict to draw; the message names the directory searched."""


@dataclass(frozen=True)
class ModelSwitch:
    """The first window judged by a model version other than the one before it.

    Attributes
    ----------
    index : int
        Position of that window in the timeline (detection order).
    model_name : str
        The model whose version changed.
    from_version, to_version : int
        The version that judged the model's previous window, and the new one.
    event : DriftEvent
        The verdict of the first window judged by ``to_version``.
    """

    index: int
    model_name: str
    from_version: int
    to_version: int
    event: DriftEvent


@dataclass(frozen=True)
class VersionSummary:
    """How the windows one model version judged went.

    Attributes
    ----------
    model_name : str
        The model.
    version : int
        Its version.
    windows : int
        Windows it judged.
    drifted : int
        Of those, the drifted ones: each was published as a drift event.
    metadata : VersionMetadata or None
        What the registry says about the version, when it could be read.
    """

    model_name: str
    version: int
    windows: int
    drifted: int
    metadata: VersionMetadata | None


@dataclass(frozen=True)
class Timeline:
    """Every window verdict found, in detection order, and what they add up to.

    Attributes
    ----------
    source : pathlib.Path
        The directory the verdicts were read from.
    events : tuple of DriftEvent
        The verdicts, ordered by detection time, then topic, partition and first offset.
    skipped : tuple of pathlib.Path
        Verdict files that could not be read or parsed.
    registered : Mapping
        ``(model_name, version)`` to the registry's metadata, for the versions found there.
    """

    source: Path
    events: tuple[DriftEvent, ...]
    skipped: tuple[Path, ...] = ()
    registered: Mapping[tuple[str, int], VersionMetadata] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    @cached_property
    def features(self) -> list[str]:
        """Every feature with a p-value, in the order first seen."""
        return list(dict.fromkeys(name for event in self.events for name in event.p_values))

    @property
    def drifted(self) -> int:
        """How many windows drifted."""
        return sum(event.is_drift for event in self.events)

    @cached_property
    def switches(self) -> list[ModelSwitch]:
        """Each window where a model's version differs from that model's previous window."""
        last: dict[str, int] = {}
        switches = []
        for index, event in enumerate(self.events):
            before = last.get(event.model_name)
            if before is not None and before != event.model_version:
                switches.append(
                    ModelSwitch(index, event.model_name, before, event.model_version, event)
                )
            last[event.model_name] = event.model_version
        return switches

    @cached_property
    def versions(self) -> list[VersionSummary]:
        """Windows and drifted windows per model version, in order of first use."""
        counts: dict[tuple[str, int], list[int]] = {}
        for event in self.events:
            tally = counts.setdefault((event.model_name, event.model_version), [0, 0])
            tally[0] += 1
            tally[1] += event.is_drift
        return [
            VersionSummary(name, version, windows, drifted, self.registered.get((name, version)))
            for (name, version), (windows, drifted) in counts.items()
        ]

    @property
    def p_floor(self) -> float:
        """Where a p-value of 0 is drawn: a decade below the smallest positive value shown.

        >>> Timeline(Path("."), ()).p_floor
        0.1
        """
        positive = [p for e in self.events for p in e.p_values.values() if p > 0]
        positive += [e.detector.threshold for e in self.events if e.detector.threshold > 0]
        smallest = min(positive, default=1.0)
        return max(10.0 ** (math.floor(math.log10(smallest)) - 1), SMALLEST_P)

    def version_label(self, model_name: str, version: int) -> str:
        """``v2``, or ``classifier v2`` when the timeline holds more than one model."""
        if len({event.model_name for event in self.events}) > 1:
            return f"{model_name} v{version}"
        return f"v{version}"

    def window_label(self, index: int) -> str:
        """Where a window lies: its first offset, with partition or topic when they vary.

        The ``/`` form is ``topic/partition:first_offset``; ``p1:200`` is partition 1.
        """
        window = self.events[index].window
        if len({event.window.topic for event in self.events}) > 1:
            return f"{window.topic}/{window.partition}:{window.first_offset}"
        if len({event.window.partition for event in self.events}) > 1:
            return f"p{window.partition}:{window.first_offset}"
        return str(window.first_offset)


def load_timeline(artifact_root: Path, topic: str | None = None) -> Timeline:
    """Read every archived window verdict, in detection order.

    Parameters
    ----------
    artifact_root : pathlib.Path
        The artifact root the consumer archives under (``<root>/archive/...``).
    topic : str, optional
        Only this topic's windows; every topic's by default.

    Returns
    -------
    Timeline
        The verdicts, ordered by detection time, then topic, partition and first
        offset, with the registry's metadata of the model versions that judged them.

    Raises
    ------
    ValueError
        If ``topic`` is not a plain topic name.
    EmptyTimelineError
        If no readable verdict was found; the message names the directory searched.

    Notes
    -----
    A verdict file that cannot be read or parsed is skipped with a warning: one
    damaged file never stops the report.
    """
    source = Path(artifact_root) / "archive"
    pattern = "*/*/*.json"
    if topic is not None:
        if not topic or "/" in topic or "\\" in topic or topic in (".", ".."):
            raise ValueError(f"topic must be a topic name, got {topic!r}")
        source = source / topic
        pattern = "*/*.json"
    events: list[DriftEvent] = []
    skipped: list[Path] = []
    paths = sorted(source.glob(pattern)) if source.is_dir() else []
    for path in paths:
        try:
            events.append(DriftEvent.model_validate_json(path.read_bytes()))
        except OSError as err:
            logger.warning("skipping unreadable verdict path=%s reason=%s", path, err)
            skipped.append(path)
        except ValidationError as err:
            logger.warning("skipping malformed verdict path=%s reason=%s", path, _first_error(err))
            skipped.append(path)
    if not events:
        raise EmptyTimelineError(_nothing_to_plot(source, len(paths)))
    events.sort(
        key=lambda e: (e.detected_at, e.window.topic, e.window.partition, e.window.first_offset)
    )
    return Timeline(source, tuple(events), tuple(skipped), _registered(artifact_root, events))


def render(timeline: Timeline, out_dir: Path, title: str = DEFAULT_TITLE) -> tuple[Path, Path]:
    """Draw the timeline to ``drift-timeline.png`` and ``drift-timeline.html`` in ``out_dir``.

    The picture is 1400 x 800 px. Top: each feature's p-value per window on a log
    scale, the detector's threshold, drifted windows shaded, model version changes
    as labelled vertical lines. Bottom: the champion's accuracy on each window's
    labeled rows, with gaps where a window had no labels. The page embeds the same
    picture and a summary table, and needs nothing else to display.

    Parameters
    ----------
    timeline : Timeline
        What :func:`load_timeline` returned.
    out_dir : pathlib.Path
        Created if missing; files of the same names are replaced.
    title : str, default DEFAULT_TITLE
        Title of the picture and the page.

    Returns
    -------
    tuple of pathlib.Path
        The PNG and the HTML page.
    """
    if not timeline.events:
        raise EmptyTimelineError(f"nothing to plot: the timeline from {timeline.source} is empty")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = _draw(timeline, title)
    png_path, html_path = out_dir / PNG_NAME, out_dir / HTML_NAME
    # Replaced whole, so a page open in a browser never reads half a file.
    write_atomic(png_path, png, fsync=False)
    write_atomic(html_path, _page(timeline, title, png).encode(), fsync=False)
    logger.info(
        "drift timeline windows=%d drifted=%d switches=%d png=%s html=%s",
        len(timeline),
        timeline.drifted,
        len(timeline.switches),
        png_path,
        html_path,
    )
    return png_path, html_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consumer report``: draw the drift timeline; print the PNG and HTML paths.

    Returns 0 once both files are written, 1 when there is nothing to report or they
    cannot be written, 2 on a bad setting.
    """
    parser = argparse.ArgumentParser(
        prog="python -m consumer report",
        description="Draw the drift timeline from the window verdicts the consumer archived "
        "under <artifact-root>/archive: each feature's p-value per window on a log scale, the "
        "threshold, drifted windows, model version changes and the champion's accuracy where "
        f"labels were present. Writes {PNG_NAME} and {HTML_NAME} (the same picture with a "
        "summary) and prints their paths. Needs no broker.",
    )
    parser.add_argument(
        "--artifact-root",
        type=Path,
        metavar="DIR",
        help="registry and archive root (default: env DRIFTLOOP_ARTIFACT_ROOT, else var)",
    )
    parser.add_argument(
        "--topic", metavar="TOPIC", help="only this rows topic (default: every topic archived)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="directory to write to (default: <artifact-root>/reports)",
    )
    parser.add_argument("--title", default=DEFAULT_TITLE, help="title of the picture and page")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    flags = {} if args.artifact_root is None else {"artifact_root": args.artifact_root}
    try:
        settings = RegistrySettings(**flags)
    except ValidationError as err:
        print(f"error: {_first_error(err)}", file=sys.stderr)
        return 2
    try:
        timeline = load_timeline(settings.artifact_root, args.topic)
    except EmptyTimelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out_dir = args.out if args.out is not None else settings.artifact_root / "reports"
    try:
        paths = render(timeline, out_dir, title=args.title)
    except OSError as err:
        print(f"error: cannot write the report to {out_dir}: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def _nothing_to_plot(source: Path, found: int) -> str:
    hint = "run `python -m consumer` first, or pass --artifact-root"
    if not source.is_dir():
        return (
            f"nothing to plot: {source} does not exist; the consumer archives each judged "
            f"window there ({hint})"
        )
    if found:
        return (
            f"nothing to plot: all {found} verdict files under {source} are malformed "
            "(see the warnings above)"
        )
    return (
        f"nothing to plot: no window verdicts (<partition>/<first>-<last>.json) under {source} "
        f"({hint})"
    )


def _registered(
    artifact_root: Path, events: Sequence[DriftEvent]
) -> dict[tuple[str, int], VersionMetadata]:
    """The registry's metadata of each version that judged a window, where it can be read."""
    found = {}
    for name, version in dict.fromkeys((e.model_name, e.model_version) for e in events):
        try:
            found[(name, version)] = Registry(Path(artifact_root), name).metadata(version)
        except (RegistryError, ValueError) as err:
            # The report stands on the verdicts alone; the registry only adds context.
            logger.debug("no registry metadata model=%s version=%d: %s", name, version, err)
    return found


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    return f"{where}: {first['msg']}"


# --- the picture ---------------------------------------------------------------------------


def _draw(timeline: Timeline, title: str) -> bytes:
    """The timeline as PNG bytes, 1400 x 800 px."""
    # A bare Figure on the Agg canvas: no pyplot state, no GUI backend, never a window.
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    n = len(timeline)
    x = np.arange(n)
    marker_size = float(np.clip(240 / n, 2.0, 6.0))

    _shade_drift(timeline, (top, bottom))
    _plot_p_values(timeline, top, x, marker_size)
    _plot_threshold(timeline, top)
    _plot_accuracy(timeline, bottom, x, marker_size)
    _mark_versions(timeline, (top, bottom))

    top.set_yscale("log")
    top.set_ylim(timeline.p_floor / 4, 3.0)
    # Decades counted down from 1, so the top tick is always p = 1.
    decades = -math.floor(math.log10(timeline.p_floor))
    stride = next((s for s in _DECADE_STRIDES if decades / s <= 8), _DECADE_STRIDES[-1])
    top.yaxis.set_major_locator(FixedLocator([10.0**-d for d in range(0, decades + 1, stride)]))
    top.yaxis.set_minor_locator(NullLocator())
    top.set_ylabel("p-value (log scale)")
    top.grid(True, which="major", axis="y", alpha=0.3)
    top.set_title(_subtitle(timeline), loc="left", fontsize=10, color="#444")

    bottom.set_ylim(-0.05, 1.08)
    bottom.set_ylabel("champion\naccuracy")
    bottom.grid(True, axis="y", alpha=0.3)
    bottom.set_xlim(-0.5, n - 0.5)
    step = max(1, math.ceil(n / MAX_TICKS))
    bottom.xaxis.set_major_locator(FixedLocator(list(range(0, n, step))))
    bottom.xaxis.set_minor_locator(NullLocator())
    bottom.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(timeline, v)))
    bottom.tick_params(axis="x", labelsize=8)
    bottom.set_xlabel("window, in detection order (first offset, detection time UTC)")

    fig.suptitle(title, fontsize=15, fontweight="bold")
    handles = _legend_handles(timeline, top, bottom)
    fig.legend(
        handles=handles,
        loc="outside right upper",
        fontsize=9,
        frameon=False,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _shade_drift(timeline: Timeline, axes: Sequence[Axes]) -> None:
    """A red band over each run of consecutive drifted windows."""
    for start, end in _runs([event.is_drift for event in timeline.events]):
        for ax in axes:
            ax.axvspan(start - 0.5, end + 0.5, color=_DRIFT_COLOR, alpha=0.12, lw=0, zorder=0)


def _plot_p_values(timeline: Timeline, ax: Axes, x: np.ndarray, marker_size: float) -> None:
    floor = timeline.p_floor
    table = {
        name: np.array([e.p_values.get(name, np.nan) for e in timeline.events], dtype=float)
        for name in timeline.features
    }
    if len(table) <= MAX_FEATURE_LINES:
        colors = [f"C{i}" for i in range(len(table))]
        for (name, p), color in zip(table.items(), colors, strict=True):
            shown = np.where(p <= 0, floor, p)
            ax.plot(x, shown, color=color, lw=1.6, marker="o", ms=marker_size, label=name)
            _mark_zeros(ax, x, p, floor, color, marker_size)
        return
    # Too many features for a legend entry each: grey lines, their minimum on top.
    for p in table.values():
        ax.plot(x, np.where(p <= 0, floor, p), color="0.6", lw=0.7, alpha=0.5)
    smallest = np.fmin.reduce(np.vstack(list(table.values())), axis=0)
    ax.plot(
        x,
        np.where(smallest <= 0, floor, smallest),
        color="black",
        lw=1.8,
        marker="o",
        ms=marker_size,
    )
    _mark_zeros(ax, x, smallest, floor, "black", marker_size)


def _mark_zeros(
    ax: Axes, x: np.ndarray, p: np.ndarray, floor: float, color: str, marker_size: float
) -> None:
    """A downward triangle where a p-value of 0 is drawn at the floor."""
    zero = p <= 0
    if zero.any():
        ax.plot(
            x[zero],
            np.full(int(zero.sum()), floor),
            ls="none",
            marker="v",
            ms=marker_size + 3,
            color=color,
            mec="black",
            mew=0.6,
            zorder=3,
        )


def _plot_threshold(timeline: Timeline, ax: Axes) -> None:
    """The threshold as stairs: one level per window, flat when it never varies."""
    floor = timeline.p_floor
    levels = np.array([max(e.detector.threshold, floor) for e in timeline.events])
    edges = np.arange(len(levels) + 1) - 0.5
    ax.stairs(levels, edges, color=_DRIFT_COLOR, lw=1.8, ls="--", baseline=None, zorder=2.5)


def _plot_accuracy(timeline: Timeline, ax: Axes, x: np.ndarray, marker_size: float) -> None:
    accuracy = np.array(
        [np.nan if e.accuracy is None else e.accuracy for e in timeline.events], dtype=float
    )
    if np.isnan(accuracy).all():
        ax.text(
            0.5,
            0.5,
            "no window had labeled rows",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
        return
    ax.plot(x, accuracy, color=_ACCURACY_COLOR, lw=1.6, marker="o", ms=marker_size)


def _mark_versions(timeline: Timeline, axes: Sequence[Axes]) -> None:
    """A line before each window judged by a new version; version names along the top edge.

    The names sit on a secondary axis above the plot, where no data point can hide them.
    """
    for switch in timeline.switches:
        for ax in axes:
            ax.axvline(switch.index - 0.5, color=_SWITCH_COLOR, lw=2, zorder=4)
    first = timeline.events[0]
    starts = [-0.5, *(switch.index - 0.5 for switch in timeline.switches)]
    names = [
        timeline.version_label(first.model_name, first.model_version),
        *(timeline.version_label(s.model_name, s.to_version) for s in timeline.switches),
    ]
    versions = axes[0].secondary_xaxis("top")
    versions.set_xticks(starts, labels=[f" model {name}" for name in names])
    versions.tick_params(axis="x", length=0, pad=2, labelcolor=_SWITCH_COLOR)
    for label in versions.get_xticklabels():
        label.set_horizontalalignment("left")
        label.set_fontweight("bold")


def _legend_handles(timeline: Timeline, top: Axes, bottom: Axes) -> list[Line2D | Patch]:
    handles: list[Line2D | Patch] = []
    features = timeline.features
    if len(features) <= MAX_FEATURE_LINES:
        handles += [line for line in top.get_lines() if not str(line.get_label()).startswith("_")]
    else:
        handles += [
            Line2D([], [], color="0.6", lw=0.7, label=f"each of {len(features)} features"),
            Line2D([], [], color="black", lw=1.8, marker="o", label="smallest p-value"),
        ]
    floor = timeline.p_floor
    if any(p <= 0 for e in timeline.events for p in e.p_values.values()):
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="v",
                ms=8,
                color="0.5",
                mec="black",
                mew=0.6,
                label=f"p = 0, drawn at {floor:.0e}",
            )
        )
    handles.append(
        Line2D([], [], color=_DRIFT_COLOR, lw=1.8, ls="--", label=_threshold_label(timeline))
    )
    handles.append(Patch(color=_DRIFT_COLOR, alpha=0.12, label="drifted window"))
    if timeline.switches:
        handles.append(Line2D([], [], color=_SWITCH_COLOR, lw=2, label="model version change"))
    if any(e.accuracy is not None for e in timeline.events):
        handles.append(
            Line2D(
                [],
                [],
                color=_ACCURACY_COLOR,
                lw=1.6,
                marker="o",
                label="champion accuracy\n(gap: window without labels)",
            )
        )
    return handles


def _threshold_label(timeline: Timeline) -> str:
    detectors = {(e.detector.correction, e.detector.p_val) for e in timeline.events}
    how = ", ".join(f"significance {p:g}, {c}" for c, p in sorted(detectors))
    levels = {e.detector.threshold for e in timeline.events}
    if len(levels) == 1:
        return f"threshold {levels.pop():.3g}\n({how})"
    return f"threshold per window\n({how})"


def _subtitle(timeline: Timeline) -> str:
    events = timeline.events
    topics = sorted({e.window.topic for e in events})
    where = f"topic {topics[0]}" if len(topics) == 1 else f"topics {', '.join(topics)}"
    versions = " → ".join(
        timeline.version_label(v.model_name, v.version) for v in timeline.versions
    )
    start, end = events[0].detected_at.astimezone(UTC), events[-1].detected_at.astimezone(UTC)
    return (
        f"{where} · {len(events)} windows, {timeline.drifted} drifted · "
        f"model {versions} · {start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC"
    )


def _tick(timeline: Timeline, value: float) -> str:
    index = round(value)
    if not 0 <= index < len(timeline) or abs(value - index) > 1e-6:
        return ""
    events = timeline.events
    span = events[-1].detected_at - events[0].detected_at
    when = events[index].detected_at.astimezone(UTC)
    clock = f"{when:%m-%d %H:%M}" if span > timedelta(days=1) else f"{when:%H:%M:%S}"
    return f"{timeline.window_label(index)}\n{clock}"


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """First and last index of each run of true flags.

    >>> _runs([False, True, True, False, True])
    [(1, 2), (4, 4)]
    """
    runs: list[tuple[int, int]] = []
    for index, flag in enumerate(flags):
        if not flag:
            continue
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


# --- the page ------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1440px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } .sub { color: #555; margin-top: 0; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.caption { color: #555; font-size: .9rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: .3rem .7rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #8a4b00; } footer { color: #777; font-size: .85rem; margin-top: 2rem; }
"""


def _page(timeline: Timeline, title: str, png: bytes) -> str:
    esc = html.escape
    image = base64.b64encode(png).decode("ascii")
    alt = f"Drift timeline: {len(timeline)} windows, {timeline.drifted} drifted" + "".join(
        f"; switch {_switch_text(timeline, s)} at offset {s.event.window.first_offset}"
        for s in timeline.switches
    )
    summary = [
        ("windows", str(len(timeline))),
        ("drifted windows (drift events)", str(timeline.drifted)),
        ("model switches", str(len(timeline.switches))),
        ("features", ", ".join(timeline.features)),
        ("threshold", _threshold_label(timeline).removeprefix("threshold ").replace("\n", " ")),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style></head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{esc(_subtitle(timeline))}</p>',
        f'<img src="data:image/png;base64,{image}" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
        f'alt="{esc(alt)}">',
        f'<p class="caption">{esc(_caption(timeline))}</p>',
        "<h2>Summary</h2>",
        "<table>",
        *(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in summary),
        "</table>",
        "<h2>Drift events by model version</h2>",
        _versions_table(timeline),
        "<h2>Model switches</h2>",
        _switches_table(timeline),
    ]
    if timeline.skipped:
        parts += [
            f'<p class="warn">Skipped {len(timeline.skipped)} malformed verdict file(s):</p>',
            "<ul>",
            *(f"<li><code>{esc(str(p))}</code></li>" for p in timeline.skipped),
            "</ul>",
        ]
    generated = datetime.now(UTC)
    parts += [
        f"<footer>From the window verdicts under <code>{esc(str(timeline.source))}</code>; "
        f"generated {generated:%Y-%m-%d %H:%M:%S} UTC by <code>python -m consumer report</code>."
        "</footer>",
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


def _caption(timeline: Timeline) -> str:
    text = (
        "Top: each feature's p-value per window (Kolmogorov-Smirnov against the champion's "
        "reference data), log scale; a feature drifts when its p-value is below the dashed "
        "threshold. Shaded: drifted windows. Vertical lines: the first window judged by a new "
        "model version. Bottom: the champion's accuracy on the window's labeled rows; a gap "
        "is a window without labels."
    )
    if any(p <= 0 for e in timeline.events for p in e.p_values.values()):
        text += (
            f" A p-value of exactly 0 (below what the test can represent) is drawn as a "
            f"triangle at {timeline.p_floor:.0e}."
        )
    return text


def _versions_table(timeline: Timeline) -> str:
    esc = html.escape
    rows = [
        "<table>",
        "<tr><th>model version</th><th>windows judged</th><th>drifted windows</th>"
        "<th>registered</th><th>decision</th><th>why it was trained</th></tr>",
    ]
    for v in timeline.versions:
        meta = v.metadata
        registered = f"{meta.created_at:%Y-%m-%d %H:%M:%S} UTC" if meta else "-"
        why = meta.cause if meta else "-"
        if meta and meta.drift_event_id:
            why += f" (drift event {meta.drift_event_id})"
        rows.append(
            f"<tr><td>{esc(timeline.version_label(v.model_name, v.version))}</td>"
            f'<td class="num">{v.windows}</td><td class="num">{v.drifted}</td>'
            f"<td>{esc(registered)}</td><td>{esc(meta.decision if meta else '-')}</td>"
            f"<td>{esc(why)}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _switches_table(timeline: Timeline) -> str:
    esc = html.escape
    if not timeline.switches:
        only = timeline.versions[0]
        return (
            f"<p>None: every window was judged by "
            f"{esc(timeline.version_label(only.model_name, only.version))}.</p>"
            if len(timeline.versions) == 1
            else "<p>None.</p>"
        )
    rows = [
        "<table>",
        "<tr><th>switch</th><th>first window judged by the new version</th>"
        "<th>detected at</th></tr>",
    ]
    for s in timeline.switches:
        when = s.event.detected_at.astimezone(UTC)
        rows.append(
            f"<tr><td>{esc(_switch_text(timeline, s))}</td>"
            f"<td>{esc(_window_text(s.event.window))}</td>"
            f"<td>{when:%Y-%m-%d %H:%M:%S} UTC</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _switch_text(timeline: Timeline, switch: ModelSwitch) -> str:
    before = timeline.version_label(switch.model_name, switch.from_version)
    return f"{before} → {timeline.version_label(switch.model_name, switch.to_version)}"


def _window_text(window: WindowRef) -> str:
    return (
        f"{window.topic} partition {window.partition}, "
        f"offsets {window.first_offset}-{window.last_offset}"
    )


if __name__ == "__main__":
    sys.exit(main())
