"""The words the picture and the page both show: the subtitle and the threshold's label."""

from __future__ import annotations

from datetime import UTC

from report.timeline import Timeline


def subtitle(timeline: Timeline) -> str:
    """Where the windows came from, how many drifted, which versions judged them, and when.

    Parameters
    ----------
    timeline : Timeline
        A timeline with at least one window.

    Returns
    -------
    str
        One line, such as ``topic rows · 12 windows, 4 drifted · model v1 → v2 ·
        2026-11-27 02:08:00 to 02:08:11 UTC``.
    """
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


def threshold_label(timeline: Timeline) -> str:
    """The detector's threshold and how it was set, in two lines, for the legend.

    Parameters
    ----------
    timeline : Timeline
        A timeline with at least one window.

    Returns
    -------
    str
        ``threshold 0.0125`` when every window had the same threshold, else
        ``threshold per window``; then, in brackets, each significance level and
        correction used, such as ``(significance 0.05, bonferroni)``.
    """
    detectors = {(e.detector.correction, e.detector.p_val) for e in timeline.events}
    how = ", ".join(f"significance {p:g}, {c}" for c, p in sorted(detectors))
    levels = {e.detector.threshold for e in timeline.events}
    if len(levels) == 1:
        return f"threshold {levels.pop():.3g}\n({how})"
    return f"threshold per window\n({how})"
