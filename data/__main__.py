"""Command line for data sets: ``python -m data prepare [--out data/iris.csv]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from data.dataset import DatasetError, load_dataset, write_iris_csv

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("data/iris.csv")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``python -m data``."""
    common = argparse.ArgumentParser(add_help=False)
    add_flags(common, LogSettings)
    common.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default WARNING)",
    )
    parser = argparse.ArgumentParser(prog="python -m data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser(
        "prepare",
        parents=[common],
        help="write scikit-learn's bundled Iris as CSV (no download)",
    )
    prepare.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"CSV to write (default {DEFAULT_OUT})"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(build(LogSettings, args), level=args.log_level)
    try:
        out = write_iris_csv(args.out)
        dataset = load_dataset(out)
    except (DatasetError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {len(dataset)} rows, {len(dataset.feature_names)} features "
        f"to {out} (sha256 {dataset.sha256})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
