"""The drift timeline as a self-contained HTML page: the picture, a summary and two tables."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import jinja2

from consumer.events import WindowRef
from report.figure import HEIGHT_PX, WIDTH_PX
from report.labels import subtitle, threshold_label
from report.timeline import ModelSwitch, Timeline

TEMPLATE = "drift-timeline.html.j2"
"""The page's template, in ``report/templates``."""


@dataclass(frozen=True)
class _VersionRow:
    """One line of the table of model versions, as the page shows it."""

    label: str
    windows: int
    drifted: int
    registered: str
    decision: str
    why: str


@dataclass(frozen=True)
class _SwitchRow:
    """One line of the table of model switches, as the page shows it."""

    switch: str
    window: str
    detected_at: str


@cache
def _environment() -> jinja2.Environment:
    # Autoescape for every template, whatever its name: each one is HTML, and a
    # ".html.j2" name would slip past select_autoescape's extension check.
    # StrictUndefined: a misspelt variable fails the render instead of showing blank.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def page(timeline: Timeline, title: str, png: bytes, generated: datetime | None = None) -> str:
    """The HTML page: the picture embedded, a summary, the versions and the switches.

    The page needs nothing else to display: the picture is inline and nothing is
    fetched. Every value is escaped by the template's autoescape.

    Parameters
    ----------
    timeline : Timeline
        A timeline with at least one window.
    title : str
        The page's title and heading.
    png : bytes
        The picture, as :func:`report.figure.draw` drew it.
    generated : datetime, optional
        When the page was made, for its footer; now by default.

    Returns
    -------
    str
        The page, ending with a newline.
    """
    generated = datetime.now(UTC) if generated is None else generated.astimezone(UTC)
    alt = f"Drift timeline: {len(timeline)} windows, {timeline.drifted} drifted" + "".join(
        f"; switch {_switch_text(timeline, s)} at offset {s.event.window.first_offset}"
        for s in timeline.switches
    )
    summary = [
        ("windows", str(len(timeline))),
        ("drifted windows (drift events)", str(timeline.drifted)),
        ("model switches", str(len(timeline.switches))),
        ("features", ", ".join(timeline.features)),
        ("threshold", threshold_label(timeline).removeprefix("threshold ").replace("\n", " ")),
    ]
    # The sentence in place of an empty switch table names the version only when
    # there is one: with several models, each judged by one version, there is none to name.
    only = timeline.versions[0]
    only_version = (
        timeline.version_label(only.model_name, only.version)
        if len(timeline.versions) == 1
        else None
    )
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=title,
            subtitle=subtitle(timeline),
            image=base64.b64encode(png).decode("ascii"),
            width=WIDTH_PX,
            height=HEIGHT_PX,
            alt=alt,
            caption=_caption(timeline),
            summary=summary,
            versions=_version_rows(timeline),
            switches=[
                _SwitchRow(
                    _switch_text(timeline, s),
                    _window_text(s.event.window),
                    f"{s.event.detected_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
                )
                for s in timeline.switches
            ],
            only_version=only_version,
            skipped=[str(path) for path in timeline.skipped],
            source=str(timeline.source),
            generated=f"{generated:%Y-%m-%d %H:%M:%S} UTC",
        )
    )


def _caption(timeline: Timeline) -> str:
    text = (
        "Top: each feature's p-value per window (Kolmogorov-Smirnov against the champion's "
        "reference data; chi-squared for a categorical feature), log scale; a feature drifts "
        "when its p-value is below the dashed threshold. Shaded: drifted windows. Vertical "
        "lines: the first window judged by a new model version. Bottom: the champion's "
        "accuracy on the window's labeled rows; a gap is a window without labels."
    )
    if any(a is not None for a in timeline.late_accuracy):
        text += (
            " Hollow circles: the accuracy on a window once its labels came later "
            "(python -m consumer.labels)."
        )
    if timeline.has_zero_p_values:
        text += (
            f" A p-value of exactly 0 (below what the test can represent) is drawn as a "
            f"triangle at {timeline.p_floor:.0e}."
        )
    return text


def _version_rows(timeline: Timeline) -> list[_VersionRow]:
    rows = []
    for v in timeline.versions:
        meta = v.metadata
        why = meta.cause if meta else "-"
        if meta and meta.drift_event_id:
            why += f" (drift event {meta.drift_event_id})"
        rows.append(
            _VersionRow(
                label=timeline.version_label(v.model_name, v.version),
                windows=v.windows,
                drifted=v.drifted,
                registered=f"{meta.created_at:%Y-%m-%d %H:%M:%S} UTC" if meta else "-",
                decision=meta.decision if meta else "-",
                why=why,
            )
        )
    return rows


def _switch_text(timeline: Timeline, switch: ModelSwitch) -> str:
    before = timeline.version_label(switch.model_name, switch.from_version)
    return f"{before} → {timeline.version_label(switch.model_name, switch.to_version)}"


def _window_text(window: WindowRef) -> str:
    return (
        f"{window.topic} partition {window.partition}, "
        f"offsets {window.first_offset}-{window.last_offset}"
    )
