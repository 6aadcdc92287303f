"""One logging setup for every entry point: key=value text for people, JSON lines for machines."""

from __future__ import annotations

import logging
from typing import TextIO

from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.logformats import TEXT_FORMAT, JsonFormatter, LogFormat, formatter

__all__ = ["TEXT_FORMAT", "JsonFormatter", "LogSettings", "configure_logging"]


class LogSettings(BaseSettings):
    """How a process logs: ``DRIFTLOOP_LOG_FORMAT``, and ``--log-format`` on top."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    log_format: LogFormat = "text"
    """text: key=value lines a person reads; json: one JSON object per line for machines."""


def configure_logging(
    settings: LogSettings, level: int | str = logging.INFO, stream: TextIO | None = None
) -> None:
    """Log records of ``level`` and above to ``stream`` (stderr) in ``settings.log_format``.

    Like :func:`logging.basicConfig`, which it calls, it leaves a root logger that
    already has handlers alone (pytest's log capture, an embedding program).
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(settings.log_format))
    logging.basicConfig(level=level, handlers=[handler])
