"""Command line for models: ``python -m models train`` and ``python -m models list``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from data.dataset import DatasetError, load_dataset
from models.registry import Registry, RegistryError, RegistrySettings, VersionMetadata
from models.training import train_and_register

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``python -m models``."""
    common = argparse.ArgumentParser(add_help=False)
    add_flags(common, RegistrySettings)
    add_flags(common, LogSettings)
    common.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default WARNING)",
    )
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", parents=[common], help="train on a CSV and register a version"
    )
    train.add_argument("--data", type=Path, required=True, help="CSV with a header line")
    train.add_argument(
        "--label-column", default="target", help="name of the label column (default target)"
    )
    train.add_argument("--seed", type=int, default=7, help="seed of split and forest (default 7)")
    commands.add_parser("list", parents=[common], help="list versions; * marks the champion")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(build(LogSettings, args), level=args.log_level)
    settings = build(RegistrySettings, args)
    try:
        registry = Registry.from_settings(settings)
        if args.command == "train":
            _train(registry, args.data, args.label_column, args.seed)
        else:
            _list(registry)
    except (DatasetError, RegistryError, ValueError, OSError) as err:
        logger.debug("command failed", exc_info=True)
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 1
    return 0


def _train(registry: Registry, data: Path, label_column: str, seed: int) -> None:
    dataset = load_dataset(data, label_column=label_column)
    metadata = train_and_register(registry, dataset, seed=seed)
    role = "champion" if registry.champion_version() == metadata.version else "not champion"
    print(
        f"registered {metadata.model_name} version {metadata.version}: "
        f"accuracy={metadata.metrics['accuracy']:.3f} f1_macro={metadata.metrics['f1_macro']:.3f} "
        f"({role}) in {registry.version_dir(metadata.version)}"
    )


def _list(registry: Registry) -> None:
    versions = registry.versions()
    if not versions:
        print(f"no versions of {registry.model_name!r} under {registry.root}")
        return
    champion = registry.champion_version()
    print(_table(versions, champion))


def _table(versions: list[VersionMetadata], champion: int | None) -> str:
    header = ("", "version", "created", "decision", "accuracy", "cause")
    rows = [
        (
            "*" if meta.version == champion else "",
            str(meta.version),
            meta.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            meta.decision,
            f"{meta.metrics['accuracy']:.3f}" if "accuracy" in meta.metrics else "-",
            meta.cause,
        )
        for meta in versions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _one_line(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        # Pydantic prefixes messages raised in validators with "Value error, ".
        return str(first["msg"]).removeprefix("Value error, ")
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
