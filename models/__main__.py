"""Command line for models: ``python -m models train``, ``list`` and ``promote``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from broker.settings import KafkaSettings
from data.dataset import DatasetError, load_dataset
from models.promotion import ModelUpdate
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
    train.add_argument(
        "--categorical",
        default="",
        metavar="COL,COL",
        help="feature columns to treat as categorical even if they hold numbers "
        "(a column that is not all numbers is categorical anyway)",
    )
    train.add_argument("--seed", type=int, default=7, help="seed of split and forest (default 7)")
    commands.add_parser("list", parents=[common], help="list versions; * marks the champion")
    promote = commands.add_parser(
        "promote",
        parents=[common],
        help="make a version champion by hand (a rollback, say) and announce it to every "
        "consumer on the model-updates topic",
    )
    promote.add_argument("version", type=int, help="the registered version to serve")
    promote.add_argument("--reason", required=True, help="why, kept in the lineage")
    add_flags(
        promote,
        KafkaSettings,
        exclude=frozenset({"rows_topic", "drift_topic", "dlq_topic", "labels_topic"}),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(build(LogSettings, args), level=args.log_level)
    settings = build(RegistrySettings, args)
    try:
        registry = Registry.from_settings(settings)
        if args.command == "train":
            categorical = [name.strip() for name in args.categorical.split(",") if name.strip()]
            _train(registry, args.data, args.label_column, args.seed, categorical)
        elif args.command == "promote":
            _promote(registry, build(KafkaSettings, args), args.version, args.reason)
        else:
            _list(registry)
    except (DatasetError, RegistryError, ValueError, OSError, AnnouncementError) as err:
        logger.debug("command failed", exc_info=True)
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 1
    return 0


def _train(
    registry: Registry, data: Path, label_column: str, seed: int, categorical: list[str]
) -> None:
    dataset = load_dataset(data, label_column=label_column, categorical=categorical)
    metadata = train_and_register(registry, dataset, seed=seed)
    role = "champion" if registry.champion_version() == metadata.version else "not champion"
    print(
        f"registered {metadata.model_name} version {metadata.version}: "
        f"accuracy={metadata.metrics['accuracy']:.3f} f1_macro={metadata.metrics['f1_macro']:.3f} "
        f"({role}) in {registry.version_dir(metadata.version)}"
    )


class AnnouncementError(RuntimeError):
    """The champion switched in the registry, but the broker did not take the announcement."""


def _promote(registry: Registry, kafka: KafkaSettings, version: int, reason: str) -> None:
    """Switch the champion, then publish the ModelUpdate and wait for the broker's ack.

    The registry first: a consumer that starts meanwhile reads the new champion from it.
    Promoting the serving version again announces it again, so a failed announcement
    is mended by running the same command once more.
    """
    if not reason.strip():
        raise ValueError("--reason must say why the version is promoted")
    # Imported here: train and list never need a Kafka client.
    from broker.clients import reliable_producer
    from broker.errors import BrokerUnavailableError

    pointer = registry.promote(version, by="hand", reason=reason.strip())
    update = ModelUpdate.announcing(registry, pointer)
    try:
        producer = reliable_producer(kafka, client_id="driftloop-models-promote")
    except BrokerUnavailableError as err:
        raise AnnouncementError(
            f"{registry.model_name} v{version} is champion in the registry, "
            f"but it was not announced: {err}; run this again"
        ) from err
    try:
        producer.send(
            kafka.model_updates_topic, key=update.model_name.encode(), value=update.to_bytes()
        ).get(timeout=30)
    except Exception as err:
        raise AnnouncementError(
            f"{registry.model_name} v{version} is champion in the registry, but the update "
            f"was not announced on {kafka.model_updates_topic}: {err}; run this again"
        ) from err
    finally:
        producer.close()
    print(
        f"{registry.model_name} v{version} is champion (was v{pointer.previous_version}), "
        f"promoted by hand: {pointer.reason}; announced on {kafka.model_updates_topic}"
    )


def _list(registry: Registry) -> None:
    versions = registry.versions()
    if not versions:
        print(f"no versions of {registry.model_name!r} under {registry.root}")
        return
    champion = registry.champion_version()
    print(_table(versions, champion))
    switches = registry.promotions()
    if switches:
        print("\nchampion switches:")
        for switch in switches:
            print(
                f"  {switch.promoted_at:%Y-%m-%dT%H:%M:%SZ} v{switch.previous_version} -> "
                f"v{switch.version} by {switch.promoted_by or '-'}: {switch.reason or '-'}"
            )


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
