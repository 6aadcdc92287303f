"""Command line for data sets: ``python -m data prepare [iris|penguins] [--out FILE]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from data.dataset import DatasetError, load_dataset
from data.shipped import PENGUINS_LABEL, SHIPPED

logger = logging.getLogger(__name__)

LABELS = {"penguins": PENGUINS_LABEL}
"""The label column of each shipped data set whose label is not ``target``."""


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
        help="write a shipped data set as CSV (no download): Iris (scikit-learn's) "
        "or the Palmer penguins (categorical features, missing values)",
    )
    prepare.add_argument(
        "name",
        nargs="?",
        default="iris",
        choices=sorted(SHIPPED),
        help="which data set (default iris)",
    )
    prepare.add_argument(
        "--out", type=Path, default=None, help="CSV to write (default data/<name>.csv)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(build(LogSettings, args), level=args.log_level)
    out = args.out if args.out is not None else Path("data") / f"{args.name}.csv"
    try:
        out = SHIPPED[args.name](out)
        dataset = load_dataset(out, label_column=LABELS.get(args.name, "target"))
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
