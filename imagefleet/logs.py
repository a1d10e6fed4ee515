"""Logging for every process: text by default, JSON lines with `FLEET_LOG_FORMAT=json`.
A job's id rides along in a context variable, so every line logged while a worker runs a
job carries it as a field. No URL's password reaches a line (imagefleet/redact.py)."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from imagefleet.redact import redacted

current_job: ContextVar[str | None] = ContextVar("current_job", default=None)


class _JobId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = current_job.get()
        return True


class TextFormatter(logging.Formatter):
    """One line per record, no URL's password in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redacted(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redacted(record.getMessage()),
        }
        job_id = getattr(record, "job_id", None)  # set by _JobId, absent on foreign handlers
        if job_id:
            line["job_id"] = job_id
        if record.exc_info:
            line["exception"] = redacted(self.formatException(record.exc_info))
        return json.dumps(line)


def setup(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobId())
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
