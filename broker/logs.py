"""One logging setup for every entry point: key=value text for people, JSON lines for machines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal, TextIO

from pydantic_settings import BaseSettings, SettingsConfigDict

TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class LogSettings(BaseSettings):
    """How a process logs: ``DRIFTLOOP_LOG_FORMAT``, and ``--log-format`` on top."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    log_format: Literal["text", "json"] = "text"
    """text: key=value lines a person reads; json: one JSON object per line for machines."""


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``.

    A traceback, if any, goes in ``exc``, so that a line is still one object.

    >>> record = logging.makeLogRecord(
    ...     {"name": "demo", "levelname": "INFO", "msg": "n=%d", "args": (3,), "created": 0}
    ... )
    >>> print(JsonFormatter().format(record))
    {"time": "1970-01-01T00:00:00.000+00:00", "level": "INFO", "logger": "demo", "message": "n=3"}
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    settings: LogSettings, level: int | str = logging.INFO, stream: TextIO | None = None
) -> None:
    """Log records of ``level`` and above to ``stream`` (stderr) in ``settings.log_format``.

    Like :func:`logging.basicConfig`, which it calls, it leaves a root logger that
    already has handlers alone (pytest's log capture, an embedding program).
    """
    handler = logging.StreamHandler(stream)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
