"""Writing the drift timeline's picture and page side by side into one directory."""

from __future__ import annotations

import logging
from pathlib import Path

from data.durable import write_atomic
from report.figure import draw
from report.page import page
from report.timeline import EmptyTimelineError, Timeline

logger = logging.getLogger(__name__)

PNG_NAME = "drift-timeline.png"
"""File name of the rendered picture inside the output directory."""
HTML_NAME = "drift-timeline.html"
"""File name of the self-contained page inside the output directory."""
DEFAULT_TITLE = "driftloop: drift timeline"
"""Title of the picture and the page unless one is given."""


def render(timeline: Timeline, out_dir: Path, title: str = DEFAULT_TITLE) -> tuple[Path, Path]:
    """Draw the timeline to ``drift-timeline.png`` and ``drift-timeline.html`` in ``out_dir``.

    The picture is 1400 x 800 px (see :func:`report.figure.draw`). The page embeds
    the same picture and a summary table, and needs nothing else to display (see
    :func:`report.page.page`).

    Parameters
    ----------
    timeline : Timeline
        What :func:`report.timeline.load_timeline` returned.
    out_dir : pathlib.Path
        Created if missing; files of the same names are replaced.
    title : str, default DEFAULT_TITLE
        Title of the picture and the page.

    Returns
    -------
    tuple of pathlib.Path
        The PNG and the HTML page.

    Raises
    ------
    EmptyTimelineError
        If the timeline holds no window.
    """
    if not timeline.events:
        raise EmptyTimelineError(f"nothing to plot: the timeline from {timeline.source} is empty")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = draw(timeline, title)
    png_path, html_path = out_dir / PNG_NAME, out_dir / HTML_NAME
    # Replaced whole, so a page open in a browser never reads half a file.
    write_atomic(png_path, png, fsync=False)
    write_atomic(html_path, page(timeline, title, png).encode(), fsync=False)
    logger.info(
        "drift timeline windows=%d drifted=%d switches=%d png=%s html=%s",
        len(timeline),
        timeline.drifted,
        len(timeline.switches),
        png_path,
        html_path,
    )
    return png_path, html_path
