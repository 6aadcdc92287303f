"""The drift timeline as a picture: p-values, threshold, drift, versions and accuracy."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import UTC, timedelta

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from report.labels import subtitle, threshold_label
from report.timeline import Timeline

WIDTH_PX, HEIGHT_PX, DPI = 1400, 800, 100
"""Size of the picture: 14 x 8 inches at 100 dpi."""
MAX_FEATURE_LINES = 10
"""Above this many features, they are drawn in grey with their per-window minimum on top."""
MAX_TICKS = 12
"""At most this many labelled ticks on the window axis."""

_DRIFT_COLOR = "#d62728"
_SWITCH_COLOR = "#5b3a99"
_EPISODE_COLOR = "#ff7f0e"
_ACCURACY_COLOR = "#1a7f37"
_DECADE_STRIDES = (1, 2, 3, 5, 10, 20, 25, 50, 100)


def draw(timeline: Timeline, title: str) -> bytes:
    """Draw the timeline as a PNG of ``WIDTH_PX`` x ``HEIGHT_PX`` (1400 x 800 px).

    Top: each feature's p-value per window on a log scale, the detector's
    threshold, drifted windows shaded, model version changes as labelled vertical
    lines. Bottom: the champion's accuracy on each window's labeled rows, with gaps
    where a window had no labels.

    Parameters
    ----------
    timeline : Timeline
        A timeline with at least one window.
    title : str
        The picture's title.

    Returns
    -------
    bytes
        The PNG file's contents.
    """
    # A bare Figure on the Agg canvas: no pyplot state, no GUI backend, never a window.
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    n = len(timeline)
    x = np.arange(n)
    marker_size = float(np.clip(240 / n, 2.0, 6.0))

    _shade_drift(timeline, (top, bottom))
    _band_episodes(timeline, top)
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
    top.set_title(subtitle(timeline), loc="left", fontsize=10, color="#444")

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


def _band_episodes(timeline: Timeline, ax: Axes) -> None:
    """A strip along the top of the p-value panel over each drift episode, onset to end."""
    for _, start, end in timeline.episodes:
        ax.axvspan(
            start - 0.5, end + 0.5, ymin=0.94, ymax=1.0, color=_EPISODE_COLOR, lw=0, zorder=1
        )


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
    late = np.array([np.nan if a is None else a for a in timeline.late_accuracy], dtype=float)
    if not np.isnan(late).all():
        # Labels that came later: hollow markers, no line (they arrive out of order).
        ax.plot(
            x,
            late,
            ls="none",
            marker="o",
            ms=marker_size + 1,
            mfc="none",
            mec=_ACCURACY_COLOR,
            mew=1.4,
        )
    if np.isnan(accuracy).all():
        if not np.isnan(late).all():
            return
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
    if timeline.has_zero_p_values:
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
        Line2D([], [], color=_DRIFT_COLOR, lw=1.8, ls="--", label=threshold_label(timeline))
    )
    handles.append(Patch(color=_DRIFT_COLOR, alpha=0.12, label="drifted window (KS evidence)"))
    if timeline.episodes:
        handles.append(Patch(color=_EPISODE_COLOR, label="drift episode (alarm, onset to end)"))
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
    if any(a is not None for a in timeline.late_accuracy):
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="o",
                mfc="none",
                mec=_ACCURACY_COLOR,
                mew=1.4,
                label="champion accuracy,\nlabels that came later",
            )
        )
    return handles


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
