"""`python -m report` (also `python -m consumer report`): draw the drift timeline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from models.registry import RegistrySettings
from report.render import DEFAULT_TITLE, HTML_NAME, PNG_NAME, render
from report.timeline import EmptyTimelineError, load_timeline


def main(argv: Sequence[str] | None = None, prog: str = "python -m consumer report") -> int:
    """Draw the drift timeline; print the PNG and HTML paths.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the command; ``sys.argv[1:]`` by default.
    prog : str, default "python -m consumer report"
        The command named in the usage line.

    Returns
    -------
    int
        0 once both files are written, 1 when there is nothing to report or they
        cannot be written, 2 on a bad setting.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Draw the drift timeline from the window verdicts the consumer archived "
        "under <artifact-root>/archive: each feature's p-value per window on a log scale, the "
        "threshold, drifted windows, model version changes and the champion's accuracy where "
        f"labels were present. Writes {PNG_NAME} and {HTML_NAME} (the same picture with a "
        "summary) and prints their paths. Needs no broker.",
    )
    add_flags(parser, RegistrySettings, exclude=frozenset({"model_name"}))
    add_flags(parser, LogSettings)
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
    configure_logging(build(LogSettings, args))
    settings = build(RegistrySettings, args)
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


if __name__ == "__main__":
    sys.exit(main(prog="python -m report"))
