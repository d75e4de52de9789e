"""Logging for a run: human text for a shell, one JSON object per line for a service.

    configure_logging("json")   # {"ts": "...", "level": "warning", "logger": ..., "msg": ...}

Fields passed as `extra=` (node, packet_id) become keys of the JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Literal

__all__ = ["LogFormat", "configure_logging"]

LogFormat = Literal["text", "json"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with `extra=` fields as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`HH:MM:SS level node: message` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        node = getattr(record, "node", None)
        where = f" {node}:" if node else ""
        text = f"{clock} {record.levelname.lower():7}{where} {record.getMessage()}"
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(
    log_format: LogFormat, level: int = logging.INFO, path: Path | None = None
) -> logging.Logger:
    """Send schnitzel's logs to stderr (or, with `path`, append them to that file, as the
    console does: its screen is the terminal) in `log_format`; return the `schnitzel` logger.
    Raises OSError when the file cannot be opened."""
    logger = logging.getLogger("schnitzel")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger
