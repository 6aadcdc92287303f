"""The two log line formats, without the settings that choose one (no pydantic to import).

`broker.logs` configures a process's logging with them; the fetching process
(`broker.fetcher`) logs in the format its consumer logs in (:func:`format_of`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


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


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def format_of(logger: logging.Logger) -> LogFormat:
    """The format ``logger``'s handlers write: json if one writes JSON lines, else text.

    >>> demo = logging.getLogger("demo.format_of")
    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(JsonFormatter())
    >>> demo.addHandler(handler)
    >>> format_of(demo)
    'json'
    """
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return "json"
    return "text"
